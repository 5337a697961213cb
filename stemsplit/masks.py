"""Masks: ideal masks for training and evaluation, and the rules that turn model scores into stem masks.

All functions are pure numpy on arrays shaped ``(..., bins, frames)``.

**Dominance rule.** A time-frequency bin belongs to the target that owns it. For training, target ``t`` owns a
bin when its magnitude is larger than the magnitude of everything else in the mix summed (``|S_t| > |M - S_t|``,
the ideal binary mask; ties go to "not the target"). At inference each target's CNN scores every bin in [0, 1]
("how likely this target dominates"); a score reaching the target's threshold is its claim on the bin.
:func:`combine` gives a bin the highest-priority target (vocals) claims to it, any other claimed bin to its
claimant of highest score, and an unclaimed bin to the residual (two targets cannot both dominate a bin, so a
second claim is a model error; trusting the lead target beat trusting the higher score on held-out real songs).
The masks therefore partition the spectrogram and the stems (plus the residual) add up to the mix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import OptionError

__all__ = ["MASK_MODES", "COMBINE_RULES", "check_mode", "check_rule", "ideal_binary_mask", "magnitude_ratio_mask",
           "ideal_ratio_mask", "combine", "extend_band", "combine_on_grid", "wiener"]

#: how scores become stems: binary masks under the dominance rule (the default), the scores as ratio masks, or
#: ratio masks refined by a multichannel Wiener filter (:func:`wiener`)
MASK_MODES = ("binary", "soft", "wiener")

#: how binary masks settle a bin that several targets claim (:func:`combine`)
COMBINE_RULES = ("lead", "priority", "score")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MASK_MODES`; else an :class:`~stemsplit.OptionError` listing them. The one
    check of the mask mode: every entry point (library, command, web page, batch) calls it."""
    if mode not in MASK_MODES:
        raise OptionError(f"Unknown mask mode {mode!r}; choose one of {', '.join(MASK_MODES)}.")
    return mode


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`COMBINE_RULES`; else an :class:`~stemsplit.OptionError` listing them."""
    if rule not in COMBINE_RULES:
        raise OptionError(f"Unknown rule {rule!r} for contested bins; choose one of {', '.join(COMBINE_RULES)}.")
    return rule


def ideal_binary_mask(target: np.ndarray, mix: np.ndarray, *, channel_axis: int | None = None) -> np.ndarray:
    """Ideal binary mask of a target: 1 where it is louder than the rest of the mix combined.

    Parameters
    ----------
    target, mix : np.ndarray
        Complex spectra of the target and of the mixture, same shape ``(..., bins, frames)``.
    channel_axis : int, optional
        Average magnitudes over this axis first, giving one mask for all channels (what the models learn,
        since one mask serves every channel).

    Returns
    -------
    np.ndarray
        float32 mask of 0s and 1s, shape of the inputs (without ``channel_axis``).
    """
    t, r = np.abs(target), np.abs(mix - target)
    if channel_axis is not None:
        t, r = t.mean(axis=channel_axis), r.mean(axis=channel_axis)
    return (t > r).astype(np.float32)


def magnitude_ratio_mask(target: np.ndarray, mix: np.ndarray, *, channel_axis: int | None = None) -> np.ndarray:
    """Magnitude ratio of a target against the rest of the mix, ``|S| / (|S| + |X - S|)``: the training label
    of the energy-aware losses. Above 0.5 exactly where :func:`ideal_binary_mask` is 1; 0 where both are silent.

    Parameters and returns as :func:`ideal_binary_mask` (values in [0, 1]).
    """
    t, r = np.abs(target), np.abs(mix - target)
    if channel_axis is not None:
        t, r = t.mean(axis=channel_axis), r.mean(axis=channel_axis)
    total = t + r
    return np.where(total > 0, t / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)


def ideal_ratio_mask(sources: np.ndarray, *, power: float = 2.0, eps: float = 1e-10) -> np.ndarray:
    """Ideal ratio masks of several sources that together make the mix.

    Parameters
    ----------
    sources : np.ndarray
        Complex spectra, shape ``(sources, ..., bins, frames)``.
    power : float
        Magnitude exponent (2 gives the Wiener-like "IRM2" of the SiSEC oracles, 1 the plain ratio).

    Returns
    -------
    np.ndarray
        float32 masks, same shape, summing to 1 over sources (uniform where all are silent).
    """
    mag = np.abs(sources).astype(np.float64) ** power
    total = mag.sum(axis=0, keepdims=True)
    out = np.where(total > eps, mag / np.maximum(total, eps), 1.0 / sources.shape[0])
    return out.astype(np.float32)


def combine(scores: np.ndarray, *, thresholds: Sequence[float], priorities: Sequence[int] | None = None,
            mode: str = "binary", exhaustive: bool = False, rule: str = "lead") -> tuple[np.ndarray, np.ndarray]:
    """Turn per-target scores into masks under the dominance rule.

    A score at or above a target's threshold is that target's claim to dominate the bin (be louder there than
    everything else in the mix together). Two targets cannot both dominate a bin, so a bin claimed twice is a
    model error, and the rule decides whom to trust. By default (``"lead"``) the target of highest priority
    (vocals) keeps every bin it claims and the others share the rest by score, so the vocals stem is the same
    whichever targets run beside it (measured on held-out real songs, docs/results.md: the vocals no longer lose
    bins to a more confident but less accurate ``other``, and the other stems keep the score rule's balance).

    Parameters
    ----------
    scores : np.ndarray
        Model outputs in [0, 1], shape ``(targets, bins, frames)``.
    thresholds : sequence of float
        Per target: the score a bin needs for the target to own it (binary mode).
    priorities : sequence of int, optional
        Per target: the highest is the lead target; higher also wins exact ties of score (see ``rule``).
        Defaults to the order given.
    mode : {"binary", "soft", "wiener"}
        ``"binary"``: each bin goes wholly to one target or to the residual. ``"soft"`` (and ``"wiener"``, whose
        filter starts from them): the scores are kept as ratio masks, scaled down where they sum past 1.
    exhaustive : bool
        Share every bin among the targets (no residual): binary bins no target claims go to the best score,
        soft masks are normalised to sum to 1.
    rule : {"lead", "priority", "score"}
        Binary mode, who gets a bin several targets claim: ``"score"``, the claimant with the highest score
        (exact ties to the higher priority); ``"priority"``, the claimant of highest priority; ``"lead"`` (the
        default), the highest-priority target if it claims the bin, else the score rule.

    Returns
    -------
    masks : np.ndarray
        float32, shape ``(targets, bins, frames)``.
    residual : np.ndarray
        float32, shape ``(bins, frames)``: what no target takes; ``masks.sum(0) + residual == 1``.
    """
    scores = np.asarray(scores, dtype=np.float32)
    k = scores.shape[0]
    if len(thresholds) != k:
        raise ValueError("one threshold per target")
    check_mode(mode)
    check_rule(rule)
    if mode != "binary":  # soft (a Wiener filter starts from the soft masks)
        total = scores.sum(axis=0)
        masks = scores / (np.maximum(total, 1e-12) if exhaustive else np.maximum(total, 1.0))
        return masks, np.clip(1.0 - masks.sum(axis=0), 0.0, 1.0)
    if k == 1 and not exhaustive:  # one target (the vocals-only path): its claims are its mask, whatever the rule
        owned = scores[0] >= np.float32(thresholds[0])
        return owned[None].astype(np.float32), (~owned).astype(np.float32)
    prio = np.arange(k)[::-1] if priorities is None else np.asarray(priorities)
    order = np.argsort(-prio, kind="stable")  # highest priority first: it wins exact ties of score
    # one pass per target over its own scores, in priority order, keeping the winner so far and its score (the
    # working arrays in the scores' memory order: np.full_like keeps it)
    winner = np.full_like(scores[0], -1, dtype=np.int8)
    best = np.full_like(scores[0], -1.0)
    free = None  # under the lead rule, after the first target: the bins it does not claim, which the others may take
    for rank, j in enumerate(order):
        claim = scores[j] >= np.float32(thresholds[j])
        if rule == "priority":
            take = claim & (winner < 0)  # the first claimant in priority order
        else:  # the best-scoring claimant; strictly better, so an exact tie stays with the higher priority
            take = claim & (scores[j] > best)
            if free is not None:
                take &= free
            np.copyto(best, scores[j], where=take)
        np.copyto(winner, np.int8(j), where=take)
        if rank == 0 and rule == "lead":
            free = ~claim
    owned = winner >= 0
    if exhaustive:  # the unclaimed bins go to the best score (exact ties to the higher priority)
        top = np.full_like(scores[0], -np.inf)
        best_any = np.zeros_like(scores[0], dtype=np.int8)
        for j in order:
            better = scores[j] > top
            np.copyto(top, scores[j], where=better)
            np.copyto(best_any, np.int8(j), where=better)
        winner = np.where(owned, winner, best_any)
        owned = np.ones_like(owned)
    masks = np.empty_like(scores)
    for j in range(k):
        np.equal(winner, j, out=masks[j], casting="unsafe")
    return masks, (~owned).astype(np.float32)


def extend_band(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Map model-band scores onto an input grid's bins.

    Bins the model sees keep their score. Bins above the model's band (above 11.025 kHz, present when the
    input rate exceeds 22.05 kHz) take, frame by frame, the mean score of the model band's top octave
    (5.5-11 kHz): air and sibilance follow whoever owns the upper treble. Low rates simply drop the bins past
    their Nyquist.

    Parameters
    ----------
    scores : np.ndarray
        shape ``(..., model_bins, frames)``.
    n_bins : int
        Bins of the input grid.

    Returns
    -------
    np.ndarray
        shape ``(..., n_bins, frames)``.
    """
    model_bins = scores.shape[-2]
    if n_bins <= model_bins:
        return scores[..., :n_bins, :]
    out = _empty_like_layout(scores, n_bins)
    out[..., :model_bins, :] = scores
    out[..., model_bins:, :] = scores[..., model_bins // 2:, :].mean(axis=-2, keepdims=True)
    return out


def _empty_like_layout(a: np.ndarray, n_bins: int) -> np.ndarray:
    """An empty ``(..., n_bins, frames)`` array with ``a``'s dtype and memory order: frame by frame (a transposed
    view, as the models' outputs and the STFT are laid out) when ``a`` is, so that elementwise work and the
    products with the spectrum read memory in order."""
    if a.ndim >= 2 and a.strides[-1] > a.strides[-2]:  # frames-major memory
        return np.swapaxes(np.empty(a.shape[:-2] + (a.shape[-1], n_bins), dtype=a.dtype), -1, -2)
    return np.empty(a.shape[:-2] + (n_bins, a.shape[-1]), dtype=a.dtype)


def combine_on_grid(scores: np.ndarray, n_bins: int, **kw) -> tuple[np.ndarray, np.ndarray]:
    """:func:`combine` of :func:`extend_band` scores, without repeating the rule on identical high bins.

    Every bin above the model's band carries the same scores within a frame, so the rule runs once on one
    summary row and its result is broadcast: same masks as ``combine(extend_band(scores, n_bins), **kw)``.

    Parameters
    ----------
    scores : np.ndarray
        shape ``(targets, model_bins, frames)``.
    n_bins : int
        Bins of the input grid.

    Returns
    -------
    masks : np.ndarray
        shape ``(targets, n_bins, frames)``.
    residual : np.ndarray
        shape ``(n_bins, frames)``.
    """
    model_bins = scores.shape[-2]
    if n_bins <= model_bins:
        return combine(scores[..., :n_bins, :], **kw)
    m, r = combine(extend_band(scores, model_bins + 1), **kw)
    out_m, out_r = _empty_like_layout(m, n_bins), _empty_like_layout(r, n_bins)
    for full, small in ((out_m, m), (out_r, r)):  # the summary row broadcast over the high bins
        full[..., :model_bins, :] = small[..., :model_bins, :]
        full[..., model_bins:, :] = small[..., model_bins:, :]
    return out_m, out_r


def wiener(target_masks: np.ndarray, residual: np.ndarray, spec: np.ndarray, *, iterations: int = 1) -> np.ndarray:
    """Multichannel Wiener post-filter of soft masks (``norbert``, as open-unmix uses it).

    Each source's magnitude is first estimated as its mask times the mix magnitude (the residual counts as one
    more source, so the sources add up to the mix); ``iterations`` rounds of expectation-maximisation then fit
    every source's power spectrogram and spatial covariance over the frames given, and each bin of the mix is
    split by the multichannel Wiener gains. Stereo images come out right where one mask per bin cannot (a
    source panned left and another right in the same bin); on mono it sharpens the masks (power ratios).

    Parameters
    ----------
    target_masks : np.ndarray
        ``(targets, bins, frames)`` soft masks.
    residual : np.ndarray
        ``(bins, frames)``: what no target takes (``target_masks.sum(0) + residual == 1``).
    spec : np.ndarray
        The mix's complex STFT, ``(channels, bins, frames)``.
    iterations : int
        EM rounds (0 keeps the soft-mask estimates).

    Returns
    -------
    np.ndarray
        complex64 STFTs of the targets, ``(targets, channels, bins, frames)``.
    """
    import norbert

    mag = np.abs(spec).astype(np.float64)                                  # (C, F, T)
    shares = np.concatenate([target_masks, residual[None]], axis=0)       # (K + 1, F, T)
    v = (shares[:, None] * mag[None]).transpose(3, 2, 1, 0)               # (T, F, C, K + 1)
    x = spec.transpose(2, 1, 0).astype(np.complex128)                      # (T, F, C)
    y = norbert.wiener(v, x, iterations=iterations, use_softmask=False)   # (T, F, C, K + 1)
    return np.ascontiguousarray(y[..., :-1].transpose(3, 2, 1, 0)).astype(np.complex64)
