"""Vocal activity detection: the article's first model (is someone singing in this frame?) as a feature.

The detector is a target with ``task = "activity"`` (``targets/vocal-activity.toml``): the same conv stack as the
mask CNNs with a one-unit sigmoid head, trained with binary cross-entropy by ``stemsplit train``. It runs fully
convolutionally over the whole signal, block by block, like separation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from . import audio as audio_io
from . import spectral
from .engine import LoadedTarget, ModelRunner, context_features, find_targets, load_target
from .errors import OptionError

__all__ = ["ActivityDetector", "detect_vocals", "vocal_segments", "segments_to_frames", "activity_scores",
           "plot_activity", "activity_report", "DEFAULT_TARGET"]

DEFAULT_TARGET = "vocal-activity"


class ActivityDetector:
    """Frame-wise vocal activity probabilities from an activity target's model.

    Parameters
    ----------
    target : str
        Name of an activity target.
    targets_dir, checkpoint_dirs : sequence of path-like, optional
    loaded : LoadedTarget, optional
        An already loaded target (skips the lookup).
    block_frames : int
        Frames per model call (bounds memory). The default 256 keeps the detector's compiled pass (20 MiB of
        scratch memory) under what the C allocator reuses by itself; 2,048-frame calls need 132 MiB, which is
        mapped afresh on every call (docs/performance.md).
    """

    def __init__(self, target: str = DEFAULT_TARGET, *, targets_dir: Sequence[str | os.PathLike] | None = None,
                 checkpoint_dirs: Sequence[str | os.PathLike] = (), loaded: LoadedTarget | None = None,
                 block_frames: int = 256):
        if loaded is None:
            loaded = load_target(find_targets([target], task="activity", targets_dir=targets_dir)[0],
                                 checkpoint_dirs)
        self.target = loaded
        self.runner = ModelRunner([loaded.model])
        self.block_frames = block_frames

    @property
    def threshold(self) -> float:
        """Probability above which a frame counts as voiced (from the target file)."""
        return self.target.spec.threshold

    def _run(self, reader, grid: spectral.Grid) -> np.ndarray:
        total = grid.n_frames(reader.frames)
        out = np.empty(total, dtype=np.float32)
        for lo in range(0, total, self.block_frames):
            hi = min(total, lo + self.block_frames)
            ctx = context_features(reader, grid, lo, hi, total, self.runner.half_context)
            out[lo:hi] = self.runner(ctx.features, self.block_frames)[0][:, 0]
        return out

    def __call__(self, audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """Activity of a signal.

        Parameters
        ----------
        audio : np.ndarray
            ``(channels, samples)`` or ``(samples,)``.
        sr : int

        Returns
        -------
        times : np.ndarray
            Frame centres in seconds, shape ``(frames,)`` (one every ~11.6 ms).
        probabilities : np.ndarray
            Probability of voice per frame, shape ``(frames,)``.
        """
        a, sr, _ = audio_io.validate(audio, sr)
        grid = spectral.FRONTEND.grid(sr)
        probs = self._run(audio_io.ArrayReader(a, sr), grid)
        return np.arange(probs.size) * grid.hop / sr, probs

    def file(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, int]:
        """Like calling the detector, on a file read block by block; also returns its sample rate."""
        reader = audio_io.open_reader(path)
        try:
            grid = spectral.FRONTEND.grid(reader.sr)
            probs = self._run(reader, grid)
        finally:
            reader.close()
        return np.arange(probs.size) * grid.hop / reader.sr, probs, reader.sr


def detect_vocals(audio: np.ndarray, sr: int, *, target: str = DEFAULT_TARGET,
                  targets_dir: Sequence[str | os.PathLike] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Probability of singing voice in every frame.

    Parameters
    ----------
    audio : np.ndarray
        ``(channels, samples)`` or ``(samples,)``, any rate 8-192 kHz.
    sr : int

    Returns
    -------
    times : np.ndarray
        Frame centres in seconds, ``(frames,)``.
    probabilities : np.ndarray
        ``(frames,)`` in [0, 1].

    Examples
    --------
    >>> times, p = stemsplit.detect_vocals(audio, 44100)          # doctest: +SKIP
    >>> stemsplit.vocal_segments(times, p)                         # doctest: +SKIP
    [(0.52, 3.91), (6.10, 11.77)]
    """
    return ActivityDetector(target, targets_dir=targets_dir)(audio, sr)


def vocal_segments(times: np.ndarray, probabilities: np.ndarray, *, on: float = 0.6, off: float = 0.4,
                   min_duration: float = 0.25, min_gap: float = 0.2) -> list[tuple[float, float]]:
    """Voiced segments from frame probabilities, with hysteresis and minimum durations.

    A segment starts where the probability reaches ``on`` and ends where it falls below ``off``; gaps shorter
    than ``min_gap`` seconds are bridged, then segments shorter than ``min_duration`` seconds are dropped.

    Parameters
    ----------
    times, probabilities : np.ndarray
        As returned by :func:`detect_vocals`.
    on, off : float
        Hysteresis thresholds (``off <= on``).
    min_duration, min_gap : float
        Seconds.

    Returns
    -------
    list of (float, float)
        ``(start, end)`` in seconds.
    """
    if not 0.0 <= off <= on <= 1.0:
        raise OptionError(f"need 0 <= off <= on <= 1, got on={on}, off={off}")
    if min_duration < 0 or min_gap < 0:
        raise OptionError("min_duration and min_gap must not be negative")
    times = np.asarray(times, dtype=np.float64)
    probs = np.asarray(probabilities, dtype=np.float64)
    if times.size == 0:
        return []
    step = float(times[1] - times[0]) if times.size > 1 else 0.0
    segments: list[list[float]] = []
    active, start = False, 0.0
    for t, p in zip(times, probs, strict=True):
        if not active and p >= on:
            active, start = True, t
        elif active and p < off:
            active = False
            segments.append([start, t])
    if active:
        segments.append([start, float(times[-1]) + step])
    merged: list[list[float]] = []
    for s in segments:
        if merged and s[0] - merged[-1][1] < min_gap:
            merged[-1][1] = s[1]
        else:
            merged.append(list(s))
    return [(round(float(a), 4), round(float(b), 4)) for a, b in merged if b - a >= min_duration]


def activity_report(detector: ActivityDetector, path: str | os.PathLike, *, on: float = 0.6, off: float = 0.4,
                    min_duration: float = 0.25, min_gap: float = 0.2,
                    plot: str | os.PathLike | None = None) -> dict:
    """What ``stemsplit vad FILE`` reports for one file: ``{"segments": [(start, end), ...], "voiced_seconds",
    "duration"}`` (seconds; segments as :func:`vocal_segments` finds them with these settings). With ``plot``,
    also draws the spectrogram and activity curve to that PNG (:func:`plot_activity`)."""
    times, probs, _ = detector.file(path)
    segs = vocal_segments(times, probs, on=on, off=off, min_duration=min_duration, min_gap=min_gap)
    if plot is not None:
        audio, sr = audio_io.load(path)
        plot_activity(audio, sr, times, probs, segs, plot, threshold=detector.threshold)
    return {"segments": segs, "voiced_seconds": round(sum(e - s for s, e in segs), 3),
            "duration": round(float(times[-1]) if times.size else 0.0, 3)}


def segments_to_frames(times: np.ndarray, segments: Sequence[tuple[float, float]]) -> np.ndarray:
    """Boolean per frame: whether its time falls inside one of ``segments`` (the inverse of
    :func:`vocal_segments`, for scoring segment decisions frame by frame)."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(times.shape, dtype=bool)
    for start, end in segments:
        out |= (times >= start) & (times < end)
    return out


def activity_scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Frame accuracy, precision, recall and F1 of 0/1 predictions against 0/1 labels."""
    p = np.asarray(predicted).astype(bool)
    y = np.asarray(labels).astype(bool)
    tp, fp, fn = int(np.sum(p & y)), int(np.sum(p & ~y)), int(np.sum(~p & y))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else (0.0 if fp + fn else float("nan"))
    return {"accuracy": float(np.mean(p == y)), "precision": precision, "recall": recall, "f1": f1,
            "frames": int(p.size), "voiced_fraction": float(np.mean(y))}


def plot_activity(audio: np.ndarray, sr: int, times: np.ndarray, probabilities: np.ndarray,
                  segments: list[tuple[float, float]], out: str | os.PathLike, *, threshold: float = 0.5) -> None:
    """PNG with the log spectrogram (model band) above the activity curve and the voiced segments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, sr, _ = audio_io.validate(audio, sr)
    grid = spectral.FRONTEND.grid(sr)
    feats = spectral.features(spectral.signal_stft(a, grid), grid)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top = grid.model_bins * grid.sr / grid.n_fft / 1000
    ax1.imshow(feats[:, :grid.model_bins].T, origin="lower", aspect="auto", cmap="magma",
               extent=(0, times[-1] if times.size else 0, 0, top))
    ax1.set_ylabel("kHz")
    ax1.set_title("spectrogram (log magnitude) and vocal activity")
    ax2.plot(times, probabilities, lw=1, label="P(voice)")
    ax2.axhline(threshold, color="gray", lw=0.5, ls="--")
    for s, e in segments:
        ax2.axvspan(s, e, color="tab:green", alpha=0.25)
    ax2.set(ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="probability")
    ax2.legend(loc="upper right")
    fig.tight_layout()
    with audio_io.atomic_path(out, ".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
