"""Quality scores: BSSEval v4 through museval, and a quick plain SDR for development."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["quick_sdr"]


def quick_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-10) -> float:
    """Plain whole-signal SDR in dB, **not BSSEval**: ``10 log10(|s|^2 / |s - s_hat|^2)``.

    Parameters
    ----------
    reference, estimate : np.ndarray
        Same shape, e.g. ``(channels, samples)``.
    """
    num = float(np.sum(np.square(reference, dtype=np.float64)))
    den = float(np.sum(np.square(np.asarray(reference, np.float64) - estimate)))
    return 10.0 * math.log10((num + eps) / (den + eps))
