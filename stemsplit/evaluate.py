"""Quality scores: BSSEval v4 (museval, SiSEC18 protocol), oracle masks and the article's classic baseline.

Methods, all through stemsplit's own frontend (same grid, same mix phase, same one-mask-for-all-channels rule):

- ``model``: the trained target models under the dominance rule (what ``separate`` does); ``model-soft`` with
  ratio masks, ``model-wiener`` with ratio masks and the multichannel Wiener post-filter, ``model-gated`` with
  the vocals silenced where the activity detector hears no voice;
- ``ibm``: ideal binary masks: every bin to the source (targets + residual) with the largest channel-averaged
  magnitude: the ceiling of any binary-mask model here;
- ``irm``: ideal ratio masks, ``|S_i|^2 / sum_j |S_j|^2`` on channel-averaged magnitudes;
- ``pyin``: the article's naive "V1.0" for vocals: pYIN f0 tracking, a harmonic comb mask at multiples of f0
  where voiced, everything else to the accompaniment;
- ``mix``: the mixture itself as every estimate (the floor any method must clear).

Scores: BSSEval v4 with 1 s windows and hops, the median over windows per track (silent reference windows
excluded, as museval does), then the median over tracks. ``quick=True`` gives a plain whole-signal SDR instead,
for fast checks; it is labelled "quick SDR (not BSSEval)" wherever it appears. ``windowed=True`` gives BSSEval's
SDR without its distortion filter (:func:`windowed_sdr`): the same windows and medians, SDR only, in a small
fraction of museval's time and memory; for mask estimates the two agree to within 0.01 dB where measured.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import masks, spectral
from .errors import OptionError
from .targets import TargetSpec, get_targets, sanitize_name

__all__ = ["METHODS", "METRICS", "quick_sdr", "windowed_sdr", "window_sdrs", "score", "oracle_separate", "pyin_separate", "evaluate_dataset",
           "Results", "write_report", "track_labels", "evaluate_activity", "calibration_tracks",
           "calibrate_set", "held_by_default", "store_set_calibration"]

METHODS = ("model", "model-soft", "model-wiener", "model-gated", "ibm", "irm", "pyin", "mix")
#: the mask mode of each model method
_MODEL_MASKS = {"model": "binary", "model-soft": "soft", "model-wiener": "wiener", "model-gated": "binary"}
METRICS = ("SDR", "SIR", "SAR", "ISR")


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


def window_sdrs(reference: np.ndarray, estimate: np.ndarray, mix: np.ndarray, sr: int, *,
                window_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The windows :func:`windowed_sdr` scores: ``(start sample of each counted window, its SDR in dB)``."""
    ref, est, mix = (np.atleast_2d(np.asarray(a, np.float64)) for a in (reference, estimate, mix))
    if not ref.shape == est.shape == mix.shape:
        raise OptionError(f"reference {ref.shape}, estimate {est.shape} and mix {mix.shape} differ in shape")
    return _window_sdrs(ref, mix - ref, est, mix - est, sr, window_s)


def _window_sdrs(ref: np.ndarray, rest: np.ndarray, est: np.ndarray, rest_est: np.ndarray, sr: int,
                 window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`window_sdrs` with the rest of the references and of the estimates given (2-D float64 arrays)."""
    win = int(round(window_s * sr))
    if win < 1:
        raise OptionError(f"window_s must cover at least one sample, got {window_s}")
    starts, sdr = [], []
    for a in range(0, ref.shape[-1] - win + 1, win):
        w = slice(a, a + win)
        if any(not np.any(x[:, w].sum(0)) for x in (ref, rest, est, rest_est)):
            continue
        starts.append(a)
        sdr.append(quick_sdr(ref[:, w], est[:, w]))
    return np.asarray(starts, np.int64), np.asarray(sdr, np.float64)


def windowed_sdr(reference: np.ndarray, estimate: np.ndarray, mix: np.ndarray, sr: int, *,
                 window_s: float = 1.0) -> float:
    """SiSEC18-style median of per-window SDR, without BSSEval's distortion filter: a fast stand-in for
    :func:`score`'s BSSEval v4 SDR of one stem scored against the rest of the mix.

    The signal is cut into windows of ``window_s`` (hop = window, as SiSEC18); a window counts only when none of
    the four signals museval would see there is silent (the reference, the rest of the mix ``mix - reference``,
    the estimate and ``mix - estimate``: museval leaves such windows out), and scores
    ``10 log10(|s|^2 / |s - s_hat|^2)`` on that window (:func:`window_sdrs`). Mask estimates are neither
    delayed nor filtered, so BSSEval's 512-tap projection changes little: ``benchmarks/windowed_sdr_check.py``
    measures the two on the same separations (docs/training.md), at a small fraction of museval's time and
    memory.

    Parameters
    ----------
    reference, estimate, mix : np.ndarray
        Same shape ``(channels, samples)`` (or ``(samples,)``).
    sr : int

    Returns
    -------
    float
        The median over the counted windows, NaN when none counts (a short or silent signal).
    """
    return _median(window_sdrs(reference, estimate, mix, sr, window_s=window_s)[1])


def _median(sdr: np.ndarray) -> float:
    """The median of per-window SDRs, NaN when no window counted."""
    return float(np.median(sdr)) if sdr.size else float("nan")


def _metric_sdr(metric: str, ref64: np.ndarray, rest64: np.ndarray, mix64: np.ndarray, est: np.ndarray,
                sr: int) -> float:
    """One estimate's SDR by a calibration metric (``SDR_METRICS``): the reference, the rest of the mix and the
    mix as 2-D float64 arrays, the rest precomputed because every candidate mask is scored against it."""
    if metric == "quick":
        return quick_sdr(ref64, est)
    est64 = np.atleast_2d(np.asarray(est, np.float64))
    return _median(_window_sdrs(ref64, rest64, est64, mix64 - est64, sr, 1.0)[1])


def _mean_sdr(values: Sequence[float]) -> float:
    """The mean of per-track SDRs that are numbers, NaN when none is."""
    return float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")


def coordinate_ascent(objective: Callable[[tuple[float, ...]], float], start: Sequence[float],
                      free: Sequence[int], candidates: Sequence[float], rounds: int = 3) -> tuple[float, ...]:
    """Maximise ``objective`` over the entries ``free`` of a tuple of thresholds: one entry at a time swept over
    ``candidates`` with the others fixed, keeping any strict improvement, for up to ``rounds`` rounds (until
    none moves). ``objective`` is called many times with the same tuples, so it should cache."""
    best = tuple(float(v) for v in start)
    for _ in range(rounds):
        moved = False
        for i in free:
            for c in candidates:
                trial = best[:i] + (float(c),) + best[i + 1:]
                if objective(trial) > objective(best) + 1e-9:
                    best, moved = trial, True
        if not moved:
            break
    return best


def _require_museval():
    """museval imports musdb, which needs ffmpeg at import time."""
    from .data.tracks import require_ffmpeg

    require_ffmpeg()
    import museval

    if not hasattr(np.linalg, "linalg"):
        # museval 0.4.1 names np.linalg.linalg.LinAlgError in an except clause (when a projection is singular);
        # numpy 2.4 removed that alias, so the clause itself raised AttributeError
        np.linalg.linalg = np.linalg

    return museval


def score(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], sr: int, *,
          quick: bool = False, window_s: float = 1.0, joint: bool = False,
          windowed: bool = False) -> dict[str, dict[str, float]]:
    """Score estimates against references.

    Parameters
    ----------
    references, estimates : dict of str to np.ndarray
        Same keys; arrays ``(channels, samples)`` (or ``(samples,)``); the references should add up to the mix.
    sr : int
    quick : bool
        Plain whole-signal SDR (key ``"SDR"`` only) instead of BSSEval v4.
    windowed : bool
        BSSEval's SDR without its distortion filter (key ``"SDR"`` only; :func:`windowed_sdr`): the same
        windows, silent-window rule and median, each stem against the rest, many times faster and lighter; equal
        to BSSEval's SDR for mask estimates to within 0.01 dB where measured (docs/training.md).
    window_s : float
        BSSEval window and hop in seconds (SiSEC18: 1 s).
    joint : bool
        Score all sources in one BSSEval call, as SiSEC18 does. museval leaves out every window in which *any*
        reference or estimate is silent, so on songs where some stem rests (a song without bass, a break
        without drums) the joint score of every stem rests on the few windows where all of them sound (on
        one held-out song, 14 of 294). By default each stem is scored against the rest instead: references
        ``(stem, sum of the other references)``, estimates ``(estimate, sum of the other estimates)``, so a
        stem's windows are those where it and the rest sound (a stem's metrics depend only on its own estimate
        and the references; the rest's estimate only decides which windows are silent). With two sources
        (vocals, accompaniment) both ways are the same.

    Returns
    -------
    dict
        ``{name: {"SDR": dB, "SIR": ..., "SAR": ..., "ISR": ...}}``: medians over the scored windows (NaN where
        the reference is silent throughout).

    Examples
    --------
    >>> score({"vocals": v, "accompaniment": a}, {"vocals": v_hat, "accompaniment": a_hat}, 44100)  # doctest: +SKIP
    {'vocals': {'SDR': 6.1, 'SIR': 14.2, 'SAR': 7.0, 'ISR': 11.3}, 'accompaniment': {...}}
    """
    names = list(references)
    if set(names) != set(estimates):
        raise OptionError(f"references {sorted(names)} and estimates {sorted(estimates)} differ")
    ref = {k: np.atleast_2d(np.asarray(v, np.float64)) for k, v in references.items()}
    est = {k: np.atleast_2d(np.asarray(estimates[k], np.float64)) for k in names}
    if quick:
        return {k: {"SDR": quick_sdr(ref[k], est[k])} for k in names}
    if windowed:
        if joint:
            raise OptionError("windowed scores each stem against the rest; it has no joint form")
        out = {}
        for k in names:
            rest = sum((ref[j] for j in names if j != k), np.zeros_like(ref[k]))
            rest_est = sum((est[j] for j in names if j != k), np.zeros_like(est[k]))
            sdr = _window_sdrs(ref[k], rest, est[k], rest_est, sr, window_s)[1] if np.any(ref[k]) else np.empty(0)
            out[k] = {"SDR": _median(sdr)}
        return out
    museval = _require_museval()
    # museval refuses all-zero references (an absent stem): they score NaN and leave the joint evaluation
    active = [k for k in names if np.any(ref[k])]
    out = {k: {m: float("nan") for m in METRICS} for k in names if k not in active}
    if not active:
        return out
    win = int(round(window_s * sr))

    def medians(r: list[np.ndarray], e: list[np.ndarray]) -> list[dict[str, float]]:
        """Per source, the median over windows of each metric (one museval call)."""
        metrics = museval.evaluate(np.stack([x.T for x in r]), np.stack([x.T for x in e]), win=win, hop=win)
        rows = []
        for i in range(len(r)):
            vals = {}
            for name, arr in zip(("SDR", "ISR", "SIR", "SAR"), metrics, strict=True):
                frames = np.asarray(arr[i], np.float64)
                frames = frames[~np.isnan(frames)]  # windows with a silent source; +inf (perfect) stays
                vals[name] = float(np.median(frames)) if frames.size else float("nan")
            rows.append({m: vals[m] for m in METRICS})
        return rows

    if joint or len(active) <= 2:
        out.update(zip(active, medians([ref[k] for k in active], [est[k] for k in active]), strict=True))
        return out
    for k in active:
        rest_ref = sum(ref[j] for j in names if j != k)
        rest_est = sum(est[j] for j in names if j != k)
        out[k] = medians([ref[k], rest_ref], [est[k], rest_est])[0]
    return out


def _apply_masks(mix: np.ndarray, sr: int, mask_fn: Callable[[np.ndarray, spectral.Grid], np.ndarray],
                 names: Sequence[str]) -> dict[str, np.ndarray]:
    """Masks from ``mask_fn(mix_spec, grid) -> (stems, bins, frames)`` applied to the mix (mix phase)."""
    g = spectral.FRONTEND.grid(sr)
    spec = spectral.signal_stft(mix, g)
    m = mask_fn(spec, g)
    stems = spectral.overlap_add(m[:, None] * spec[None], g, 0, spec.shape[-1], 0, mix.shape[-1])
    return {n: stems[i] for i, n in enumerate(names)}


def oracle_separate(sources: dict[str, np.ndarray], sr: int, method: str = "ibm") -> dict[str, np.ndarray]:
    """Oracle separation of a mix made of ``sources`` (which must add up to it) through the frontend.

    Parameters
    ----------
    sources : dict of str to np.ndarray
        Every stem of the mix, ``(channels, samples)``; the mix is their sum.
    method : {"ibm", "irm"}

    Returns
    -------
    dict of str to np.ndarray
        One estimate per source.
    """
    names = list(sources)
    mix = sum(sources.values())
    g = spectral.FRONTEND.grid(sr)
    specs = np.stack([spectral.signal_stft(sources[n], g) for n in names])  # (S, C, bins, frames)
    mag = np.abs(specs).mean(axis=1)  # one mask for all channels, as the models do
    if method == "ibm":
        winner = mag.argmax(axis=0)
        m = (np.arange(len(names))[:, None, None] == winner[None]).astype(np.float32)
    elif method == "irm":
        m = masks.ideal_ratio_mask(mag, power=2.0)
    else:
        raise OptionError(f"unknown oracle {method!r}; choose ibm or irm")
    return _apply_masks(mix, sr, lambda spec, grid: m, names)


def pyin_separate(mix: np.ndarray, sr: int, *, fmin: float = 70.0, fmax: float = 1000.0, harmonics: int = 40,
                  width_bins: float = 1.5) -> dict[str, np.ndarray]:
    """The article's naive vocals baseline: pYIN f0 -> harmonic comb mask where voiced.

    Parameters
    ----------
    mix : np.ndarray
        ``(channels, samples)``.
    fmin, fmax : float
        f0 search range in Hz.
    harmonics : int
        Harmonics of f0 kept (up to the model band's 11 kHz).
    width_bins : float
        Half-width of each comb tooth in bins (the Hann window's main lobe is about 2 bins each side).

    Returns
    -------
    dict
        ``{"vocals": ..., "accompaniment": ...}``.
    """
    import librosa

    g = spectral.FRONTEND.grid(sr)

    def comb(spec: np.ndarray, grid: spectral.Grid) -> np.ndarray:
        mono = mix.mean(axis=0)
        f0, voiced, _ = librosa.pyin(mono, fmin=fmin, fmax=fmax, sr=sr, frame_length=grid.n_fft,
                                     hop_length=grid.hop, center=True, pad_mode="constant")
        frames = spec.shape[-1]
        f0, voiced = f0[:frames], voiced[:frames]
        bins = np.arange(grid.n_bins)[:, None]
        hz_per_bin = grid.sr / grid.n_fft
        m = np.zeros((grid.n_bins, frames), np.float32)
        f0 = np.where(voiced & np.isfinite(f0), f0, np.nan)
        for h in range(1, harmonics + 1):
            centre = h * f0 / hz_per_bin  # (frames,)
            ok = np.isfinite(centre) & (h * f0 < grid.frontend.sample_rate / 2)
            tooth = (np.abs(bins - np.nan_to_num(centre)[None]) <= width_bins) & ok[None]
            m = np.maximum(m, tooth.astype(np.float32))
        return np.stack([m, 1.0 - m])

    return _apply_masks(mix, g.sr, comb, ["vocals", "accompaniment"])


@dataclass
class Results:
    """Scores of an evaluation run.

    Attributes
    ----------
    rows : list of dict
        One per (method, track, stem): ``{"method", "track", "stem", "SDR", "SIR", "SAR", "ISR"}``.
    quick : bool
        Whether scores are the quick SDR (not BSSEval).
    windowed : bool
        Whether scores are the windowed SDR (BSSEval's SDR without its distortion filter).
    """

    rows: list[dict] = field(default_factory=list)
    quick: bool = False
    windowed: bool = False

    @property
    def sdr_only(self) -> bool:
        """Whether only SDR was scored (no SIR, SAR, ISR)."""
        return self.quick or self.windowed

    @property
    def label(self) -> str:
        """What the scores are, for reports."""
        if self.quick:
            return "quick SDR (not BSSEval)"
        if self.windowed:
            return "windowed SDR: BSSEval's 1 s windows and median, without its distortion filter"
        return "BSSEval v4, 1 s windows, median over windows"

    def summary(self) -> list[dict]:
        """Median over tracks per (method, stem), NaN-aware."""
        out = []
        keys = sorted({(r["method"], r["stem"]) for r in self.rows}, key=lambda k: (METHODS.index(k[0])
                                                                                    if k[0] in METHODS else 99, k[1]))
        for method, stem in keys:
            sel = [r for r in self.rows if r["method"] == method and r["stem"] == stem]
            sdr = np.array([r.get("SDR", np.nan) for r in sel], np.float64)
            row = {"method": method, "stem": stem, "tracks": int(np.sum(~np.isnan(sdr)))}  # scored tracks
            for m in METRICS if not self.sdr_only else ("SDR",):
                vals = np.array([r.get(m, np.nan) for r in sel], np.float64)
                vals = vals[~np.isnan(vals)]
                row[m] = float(np.median(vals)) if vals.size else float("nan")
            out.append(row)
        return out


def _track_sources(track, specs: Sequence[TargetSpec], max_samples: int | None) -> tuple[dict, np.ndarray]:
    """References per target (+ residual) and the mix of a dataset track."""
    n = track.length if max_samples is None else min(track.length, max_samples)
    refs = {s.name: sum(track.read(st, 0, n) for st in s.stems) for s in specs}
    channels = min(2, track.channels)
    refs = {k: v[:channels] for k, v in refs.items()}
    mix = track.mix(0, n)[:channels]
    from .engine import residual_name

    rest = mix - sum(refs.values())
    if np.max(np.abs(rest), initial=0.0) > 1e-4:
        refs[residual_name(specs)] = rest
    return refs, mix


#: thresholds :func:`calibrate_threshold` tries
CALIBRATION_THRESHOLDS = tuple(round(0.1 + 0.05 * i, 2) for i in range(13))  # 0.10 ... 0.70


def target_excerpt(track, stems: Sequence[str], seconds: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mix, target)`` of a track's first ``seconds``, or None when the target is silent there (its SDR would
    mean nothing)."""
    n = min(track.length, int(seconds * track.sr))
    ref = _sounding(track, stems, n)
    mix = track.mix(0, n)
    if not np.any(mix) or ref is None:
        return None
    return mix, ref


def _sounding(track, stems: Sequence[str], n: int) -> np.ndarray | None:
    """The sum of a track's ``stems`` over its first ``n`` samples, or None where it is silent (RMS < 1e-3)."""
    ref = sum(track.read(s, 0, n) for s in stems)
    return ref if np.sqrt(np.mean(np.square(ref))) >= 1e-3 else None


def calibration_tracks(roots: Sequence[str | os.PathLike], *, is_wav: bool = True, subset: str = "train",
                       names: Sequence[str] | None = None, max_tracks: int = 12) -> list:
    """The tracks to calibrate a threshold on: those named, else an even, fixed spread of at most
    ``max_tracks`` over every root's tracks; raises :class:`~stemsplit.DataError` when none is found."""
    from .data.tracks import find_tracks
    from .errors import DataError

    tracks = [t for root in roots for t in find_tracks(root, is_wav=is_wav, subset=subset)
              if not names or t.name in names]
    if not names and len(tracks) > max_tracks:
        tracks = [tracks[i] for i in np.linspace(0, len(tracks) - 1, max_tracks).round().astype(int)]
    if not tracks:
        raise DataError("No tracks to calibrate on" + (f" named {', '.join(names)}" if names else "") + ".")
    return tracks


def calibrate_threshold(loaded, tracks: Sequence, *, seconds: float = 30.0,
                        candidates: Sequence[float] = CALIBRATION_THRESHOLDS, metric: str = "quick") -> dict:
    """The binary-mask threshold that maximises a mask target's separation quality on some tracks.

    A model trained with MSE on binary labels outputs something like the chance that a bin belongs to the target;
    cutting it at 0.5 maximises bin accuracy, not SDR (a missed loud bin costs more than a wrong quiet one). For
    each track (first ``seconds``) the model runs once; every candidate threshold then masks the mix and the
    quick SDR of the target is averaged over tracks.

    Parameters
    ----------
    loaded : LoadedTarget
        The target and its model (task ``mask``).
    tracks : sequence of Track
        Tracks that have the target's stems (silent ones are skipped).
    metric : str
        ``"quick"`` (the whole excerpt's SDR, :func:`quick_sdr`) or ``"windowed"`` (the median of 1 s windows,
        :func:`windowed_sdr`, as BSSEval reports it: quiet passages count as much as loud ones).

    Returns
    -------
    dict
        ``{"threshold": best, "sdr": {threshold: mean SDR}, "tracks": [names], "metric": metric}``.
    """
    if loaded.spec.task != "mask":
        raise OptionError(f"Target {loaded.spec.name!r} is not a mask target; only mask thresholds are calibrated.")
    sdr, names = threshold_sdr(loaded, tracks, seconds=seconds, candidates=candidates, metric=metric)
    if not names:
        raise OptionError(f"No track with a non-silent {loaded.spec.name!r} target to calibrate on.")
    mean = {t: _mean_sdr(v) for t, v in sdr.items()}
    if all(math.isnan(v) for v in mean.values()):
        raise OptionError("No 1 s window to score on: the tracks are too short or their target is silent throughout.")
    best = max((t for t in mean if not math.isnan(mean[t])), key=mean.get)
    return {"threshold": best, "sdr": mean, "tracks": names, "metric": metric}


#: the separation quality measures :func:`threshold_sdr` can report
SDR_METRICS = ("quick", "windowed")


def threshold_sdr(loaded, tracks: Sequence, *, seconds: float, candidates: Sequence[float],
                  metric: str = "quick") -> tuple[dict[float, list[float]], list[str]]:
    """SDR of a mask target's binary-mask separation at each candidate threshold, per track (first
    ``seconds``; tracks whose target is silent are skipped). The model runs once per track.

    ``metric``: ``"quick"`` (:func:`quick_sdr`, whole excerpt) or ``"windowed"`` (:func:`windowed_sdr`, the
    median of 1 s windows as BSSEval reports it).

    Returns ``({threshold: [sdr per track]}, [track names])``.
    """
    sdr, names = threshold_sdrs(loaded, tracks, seconds=seconds, candidates=candidates, metrics=(metric,))
    return sdr[metric], names


def threshold_sdrs(loaded, tracks: Sequence, *, seconds: float, candidates: Sequence[float],
                   metrics: Sequence[str] = SDR_METRICS, soft: bool = False
                   ) -> tuple[dict[str, dict[float | str, list[float]]], list[str]]:
    """:func:`threshold_sdr` for several metrics at once (``{metric: {threshold: [sdr per track]}}``); with
    ``soft``, each metric also scores the soft masks under the key ``"soft"``. The model runs once per track."""
    from .separate import Separator

    unknown = set(metrics) - set(SDR_METRICS)
    if unknown:
        raise OptionError(f"unknown SDR metric(s) {sorted(unknown)}; choose from {', '.join(SDR_METRICS)}")
    sep = Separator(loaded=[loaded], residual=False)
    keys: list[float | str] = [float(t) for t in candidates] + (["soft"] if soft else [])
    sdr: dict[str, dict[float | str, list[float]]] = {m: {k: [] for k in keys} for m in metrics}
    names = []
    for track in tracks:
        pair = target_excerpt(track, loaded.spec.stems, seconds)
        if pair is None:
            continue
        mix, ref = pair
        g = spectral.FRONTEND.grid(track.sr)
        spec = spectral.signal_stft(mix, g)
        scores = sep.signal_scores(spectral.features(spec, g))
        ref64, mix64 = (np.atleast_2d(np.asarray(a, np.float64)) for a in (ref, mix))
        rest64 = mix64 - ref64
        for k in keys:
            if k == "soft":
                m, _ = masks.combine_on_grid(scores, g.n_bins, thresholds=[0.5], priorities=[0], mode="soft")
            else:
                m, _ = masks.combine_on_grid(scores, g.n_bins, thresholds=[k], priorities=[0])
            est = spectral.istft(m[0][None] * spec, g, mix.shape[-1])
            for metric in metrics:
                sdr[metric][k].append(_metric_sdr(metric, ref64, rest64, mix64, est, track.sr))
        names.append(track.name)
    return sdr, names


def calibrate_checkpoint(path: str | os.PathLike, tracks: Sequence, *, seconds: float = 30.0,
                         data: str = "", metric: str = "quick") -> dict:
    """:func:`calibrate_threshold` for the model in a checkpoint, then store the result in it (rewritten
    atomically): ``metadata["training"]["threshold"]``, used by targets whose file sets no threshold."""
    from . import checkpoint
    from .engine import LoadedTarget

    model, spec, meta = checkpoint.load_model(path)
    res = calibrate_threshold(LoadedTarget(spec, model, Path(path), meta), tracks, seconds=seconds, metric=metric)
    _store_threshold(path, res["threshold"], {"data": _calibration_data(data, seconds), **res}, (model, spec, meta))
    return res


def _calibration_data(data: str, seconds: float) -> str:
    return f"{data}{', ' if data else ''}first {seconds:g} s"


def _store_threshold(path: str | os.PathLike, threshold: float, record: dict, stored: tuple | None = None) -> None:
    """Rewrite a checkpoint (atomically) with ``threshold`` and the calibration ``record`` in its training
    metadata, the weights and stored spec unchanged (``stored``: what ``checkpoint.load_model`` gave, if read)."""
    from . import checkpoint

    model, spec, meta = stored if stored is not None else checkpoint.load_model(path)
    checkpoint.save_model(path, model, spec,
                          training={**meta.get("training", {}), "threshold": threshold, "calibration": record})


def _joint_excerpt(track, specs: Sequence[TargetSpec], seconds: float) -> tuple[np.ndarray, list] | None:
    """``(mix, [reference or None per target])`` of a track's first ``seconds`` (None where the target is silent
    there), or None when the mix is silent or every target is."""
    n = min(track.length, int(seconds * track.sr))
    mix = track.mix(0, n)
    refs = [_sounding(track, s.stems, n) for s in specs]
    if not np.any(mix) or all(r is None for r in refs):
        return None
    return mix, refs


def held_by_default(specs: Sequence[TargetSpec], rule: str = "lead") -> list[str]:
    """The targets :func:`calibrate_set` leaves alone unless told otherwise: under the ``"lead"`` rule the lead
    target (highest priority) of several, whose stem does not depend on the others; none otherwise."""
    if rule != "lead" or len(specs) < 2:
        return []
    return [max(specs, key=lambda s: s.priority).name]


def calibrate_set(loaded: Sequence, tracks: Sequence, *, seconds: float = 30.0,
                  candidates: Sequence[float] = CALIBRATION_THRESHOLDS, metric: str = "quick", rule: str = "lead",
                  hold: Sequence[str] | None = None, rounds: int = 3,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Binary-mask thresholds for mask targets that separate **together**, chosen in the separation itself.

    :func:`calibrate_threshold` scores a target alone (its mask against everything else); in a four-stem
    separation its claims also compete with the other targets' under the dominance rule, so the threshold that
    is best alone need not be best together. Here every model runs once per track (first ``seconds``), and the
    thresholds are chosen by coordinate ascent: one target's threshold at a time swept over ``candidates`` with
    the others fixed, keeping the best, for up to ``rounds`` rounds (until none moves). The objective is the mean,
    over the tuned targets, of each target's mean SDR over the tracks where it sounds.

    Parameters
    ----------
    loaded : sequence of LoadedTarget
        The mask targets of the separation (thresholds set: the starting point).
    tracks : sequence of Track
        Tracks with the targets' stems.
    metric : {"quick", "windowed"}
        As :func:`calibrate_threshold`.
    rule : {"lead", "priority", "score"}
        The rule the separation settles contested bins with (:func:`stemsplit.masks.combine`).
    hold : sequence of str, optional
        Targets whose thresholds stay as they are. Default: under the ``"lead"`` rule the lead target (highest
        priority), whose stem does not depend on the others, so its own calibration stands; none otherwise.

    Returns
    -------
    dict
        ``{"thresholds": {target: t}, "start": {target: t}, "sdr": {target: mean SDR}, "start_sdr": {...},
        "tuned": [targets], "tracks": [names], "metric": metric, "rule": rule, "evaluations": n}``.
    """
    from .separate import Separator

    if metric not in SDR_METRICS:
        raise OptionError(f"unknown SDR metric {metric!r}; choose from {', '.join(SDR_METRICS)}")
    specs = [t.spec for t in loaded]
    names_t = [s.name for s in specs]
    if len(set(names_t)) != len(names_t):
        raise OptionError("each target may appear once in a joint calibration")
    for s in specs:
        if s.task != "mask":
            raise OptionError(f"Target {s.name!r} is not a mask target; only mask thresholds are calibrated.")
    masks.check_rule(rule)
    prio = [s.priority for s in specs]
    if hold is None:
        hold = held_by_default(specs, rule)
    unknown = set(hold) - set(names_t)
    if unknown:
        raise OptionError(f"cannot hold {sorted(unknown)}: not among the targets {', '.join(names_t)}")
    tuned = [i for i, n in enumerate(names_t) if n not in hold]
    if not tuned:
        raise OptionError("every target is held; nothing to calibrate")

    sep = Separator(loaded=list(loaded), residual=True, rule=rule)
    songs = []  # per track: grid, spectrum, scores, mix, (reference, rest) per target, rate
    names = []
    for track in tracks:
        pair = _joint_excerpt(track, specs, seconds)
        if pair is None or all(pair[1][i] is None for i in tuned):
            continue
        mix, refs = pair
        g = spectral.FRONTEND.grid(track.sr)
        spec = spectral.signal_stft(mix, g)
        scores = np.ascontiguousarray(sep.signal_scores(spectral.features(spec, g)))
        mix64 = np.atleast_2d(np.asarray(mix, np.float64))
        pairs = []  # each reference with the rest of the mix (what windowed SDR scores it against), made once
        for r in refs:
            ref64 = None if r is None else np.atleast_2d(np.asarray(r, np.float64))
            pairs.append(None if ref64 is None else (ref64, mix64 - ref64))
        songs.append((g, spec, scores, mix64, pairs, track.sr))
        names.append(track.name)
        if progress:
            progress(track.name)
    if not songs:
        raise OptionError("No track in which a tuned target sounds, to calibrate on.")

    cache: dict[tuple[float, ...], dict[str, float]] = {}

    def evaluate(th: tuple[float, ...]) -> dict[str, float]:
        if th in cache:
            return cache[th]
        per: dict[int, list[float]] = {i: [] for i in tuned}
        for g, spec, scores, mix64, pairs, sr in songs:
            m, _ = masks.combine_on_grid(scores, g.n_bins, thresholds=list(th), priorities=prio, rule=rule)
            for i in tuned:
                if pairs[i] is None:
                    continue
                est = spectral.istft(m[i][None] * spec, g, mix64.shape[-1])
                per[i].append(_metric_sdr(metric, *pairs[i], mix64, est, sr))
        out = {names_t[i]: _mean_sdr(v) for i, v in per.items()}
        cache[th] = out
        return out

    def objective(th: tuple[float, ...]) -> float:
        vals = [v for v in evaluate(th).values() if not math.isnan(v)]
        return float(np.mean(vals)) if vals else float("-inf")

    start = tuple(float(s.threshold) for s in specs)
    best = coordinate_ascent(objective, start, tuned, candidates, rounds)
    return {"thresholds": dict(zip(names_t, best, strict=True)), "start": dict(zip(names_t, start, strict=True)),
            "sdr": evaluate(best), "start_sdr": evaluate(start), "objective": objective(best),
            "start_objective": objective(start), "tuned": [names_t[i] for i in tuned], "tracks": names,
            "metric": metric, "rule": rule, "evaluations": len(cache)}


def store_set_calibration(loaded: Sequence, result: dict, *, seconds: float, data: str = "") -> list[Path]:
    """Write the thresholds :func:`calibrate_set` chose into the tuned targets' checkpoints (each rewritten
    atomically; ``metadata["training"]["threshold"]``, with the calibration's record naming the targets it was
    made with). Returns the paths written."""
    written = []
    together = [t.spec.name for t in loaded]
    for t in loaded:
        name = t.spec.name
        if name not in result["tuned"]:
            continue
        record = {"data": _calibration_data(data, seconds), "threshold": result["thresholds"][name],
                  "together_with": [n for n in together if n != name], "rule": result["rule"],
                  "metric": result["metric"], "sdr": result["sdr"][name], "start": result["start"][name],
                  "start_sdr": result["start_sdr"][name], "tracks": result["tracks"]}
        _store_threshold(t.checkpoint, result["thresholds"][name], record)
        written.append(Path(t.checkpoint))
    return written


def evaluate_dataset(root: str | os.PathLike, *, is_wav: bool = True, subset: str = "test",
                     targets: Sequence[str] = ("vocals", "drums", "bass", "other"),
                     methods: Sequence[str] = ("model",), quick: bool = False, windowed: bool = False,
                     max_seconds: float | None = None,
                     tracks: Sequence[str] | None = None, targets_dir: Sequence[str | os.PathLike] | None = None,
                     out: str | os.PathLike | None = None,
                     progress: Callable[[str, str], None] | None = None,
                     checkpoint_dirs: Sequence[str | os.PathLike] = (), joint: bool = False) -> Results:
    """Separate every track of a MUSDB-layout subset with each method and score it.

    Parameters
    ----------
    root : path-like
        Dataset root.
    subset : {"test", "train"}
    targets : sequence of str
        Targets to evaluate; the rest of the mix is scored as the residual.
    methods : sequence of str
        Any of :data:`METHODS`.
    quick : bool
        Quick whole-signal SDR instead of BSSEval v4.
    windowed : bool
        BSSEval's SDR without its distortion filter (:func:`score`): SDR only, fast.
    max_seconds : float, optional
        Score only the first seconds of each track.
    tracks : sequence of str, optional
        Only these track names.
    out : path-like, optional
        Folder for per-track JSON (``OUT/<method>/<track>.json``) and the summary files.
    checkpoint_dirs : sequence of path-like
        Extra folders to look for checkpoints in.
    joint : bool
        Score all stems in one BSSEval call (SiSEC18) instead of each against the rest (see :func:`score`).

    Returns
    -------
    Results
    """
    from .data.tracks import find_tracks
    from .separate import Separator

    for m in methods:
        if m not in METHODS:
            raise OptionError(f"Unknown method {m!r}; choose from {', '.join(METHODS)}.")
    if quick and windowed:
        raise OptionError("Choose one of quick and windowed scores.")
    if windowed and joint:
        raise OptionError("windowed scores each stem against the rest; it has no joint form.")
    specs = get_targets(targets, targets_dir)
    if "pyin" in methods and [s.name for s in specs] != ["vocals"]:
        raise OptionError("The pyin baseline separates vocals only: use --targets vocals.")
    found = find_tracks(root, is_wav=is_wav, subset=subset)
    if tracks:
        found = [t for t in found if t.name in tracks]
    if not found:
        from .errors import DataError

        raise DataError(f"No tracks in {root}/{subset}" + (f" named {', '.join(tracks)}" if tracks else ""))
    if "model-gated" in methods and "vocals" not in [s.name for s in specs]:
        raise OptionError("model-gated gates the vocals stem with the vocal activity detector: include vocals.")
    seps, loaded = {}, None
    for m in (m for m in methods if m.startswith("model")):
        seps[m] = Separator([s.name for s in specs], targets_dir=targets_dir, loaded=loaded,
                            checkpoint_dirs=checkpoint_dirs,
                            mask=_MODEL_MASKS[m], gate_vocals=m == "model-gated")
        loaded = seps[m].targets
    res = Results(quick=quick, windowed=windowed)
    for track in found:
        max_samples = None if max_seconds is None else int(max_seconds * track.sr)
        refs, mix = _track_sources(track, specs, max_samples)
        for method in methods:
            if progress:
                progress(track.name, method)
            if method in seps:
                est = seps[method].separate(mix, track.sr)
                est = {k: est[k] for k in refs}
            elif method in ("ibm", "irm"):
                est = oracle_separate(refs, track.sr, method)
            elif method == "pyin":
                est = pyin_separate(mix, track.sr)
                est = {k: est["vocals" if k == "vocals" else "accompaniment"] for k in refs}
            else:
                est = {k: mix for k in refs}
            scores = score(refs, est, track.sr, quick=quick, joint=joint, windowed=windowed)
            for stem, vals in scores.items():
                res.rows.append({"method": method, "track": track.name, "stem": stem, **vals})
            if out is not None:
                folder = Path(out) / method
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{sanitize_name(track.name)}.json").write_text(json.dumps(
                    {"track": track.name, "method": method,
                     "metric": res.label + ("" if quick else ", stems jointly" if joint else ", each stem against the rest"),
                     "scores": scores}, indent=2, allow_nan=True))
    if out is not None:
        write_report(res, out)
    return res


def _fmt(v: float) -> str:
    if v is None or np.isnan(v):
        return "—"
    return f"{v:.2f}" if np.isfinite(v) else ("inf" if v > 0 else "-inf")


def write_report(results: Results, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.csv`` and ``summary.png`` (SDR bar chart) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = results.summary()
    metrics = ("SDR",) if results.sdr_only else METRICS
    title = ("quick SDR in dB (plain whole-signal SDR, NOT BSSEval)" if results.quick else
             "windowed SDR in dB (BSSEval's 1 s windows without its distortion filter): median over windows, "
             "then median over tracks" if results.windowed else
             "BSSEval v4 (museval), dB: median over 1 s windows, then median over tracks")
    lines = [f"# Evaluation: {title}", "", "(tracks: how many tracks have a non-silent reference for the stem)", "",
             "| method | stem | tracks | " + " | ".join(metrics) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in metrics) + " |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['stem']} | {r['tracks']} | "
                     + " | ".join(_fmt(r[m]) for m in metrics) + " |")
    md = out / "summary.md"
    md.write_text("\n".join(lines) + "\n")
    csv_path = out / "summary.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["method", "stem", "tracks", *metrics])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in ["method", "stem", "tracks", *metrics]})
    stems = sorted({r["stem"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(stems) * max(1, len(methods)) / 2), 4))
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        vals = [next((r["SDR"] for r in rows if r["method"] == m and r["stem"] == s), np.nan) for s in stems]
        ax.bar(np.arange(len(stems)) + i * width, np.nan_to_num(vals, nan=0.0), width, label=m)
    ax.set_xticks(np.arange(len(stems)) + width * (len(methods) - 1) / 2, stems)
    ax.set_ylabel("SDR (dB)")
    ax.set_title(title, fontsize=9)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend()
    fig.tight_layout()
    png = out / "summary.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return {"md": md, "csv": csv_path, "png": png}


def track_labels(track, stems: Sequence[str], threshold_db: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Reference activity labels of a dataset track: ``(labels (frames,), mix (channels, samples), sr)``."""
    from .data.dataset import activity_labels

    n = track.length
    target = sum(track.read(s, 0, n) for s in stems)
    mix = track.mix(0, n)
    grid = spectral.FRONTEND.grid(track.sr)
    mb = grid.model_bins
    labels = activity_labels(spectral.signal_stft(target, grid)[:, :mb], spectral.signal_stft(mix, grid)[:, :mb],
                             threshold_db, grid)
    return labels, mix, track.sr


def evaluate_activity(root: str | os.PathLike, *, is_wav: bool = True, subset: str = "test",
                      target: str = "vocal-activity", tracks: Sequence[str] | None = None,
                      targets_dir: Sequence[str | os.PathLike] | None = None,
                      detector=None) -> dict:
    """Frame accuracy, precision, recall and F1 of the detector on a MUSDB-layout subset.

    ``detector`` : an :class:`~stemsplit.vad.ActivityDetector` already built (else one for ``target``).
    Labels follow the training rule of the target (its stems' energy within ``activity_db`` of the mix and
    above -60 dBFS). Returns ``{"tracks": {name: scores}, "all": scores over every frame pooled,
    "segments": the same for the frames inside :func:`vocal_segments` (default hysteresis and durations: what
    ``stemsplit vad INPUT`` reports)}``.
    """
    from .data.tracks import find_tracks
    from .vad import ActivityDetector, activity_scores, segments_to_frames, vocal_segments

    det = detector or ActivityDetector(target, targets_dir=targets_dir)
    spec = det.target.spec
    found = [t for t in find_tracks(root, is_wav=is_wav, subset=subset) if not tracks or t.name in tracks]
    per, preds, seg_preds, labs = {}, [], [], []
    for t in found:
        labels, mix, sr = track_labels(t, spec.stems, spec.activity_db)
        times, probs = det(mix, sr)
        pred = probs >= det.threshold
        per[t.name] = activity_scores(pred, labels)
        preds.append(pred)
        seg_preds.append(segments_to_frames(times, vocal_segments(times, probs)))
        labs.append(labels)
    if not preds:
        return {"tracks": per, "all": {}, "segments": {}}
    labels = np.concatenate(labs)
    return {"tracks": per, "all": activity_scores(np.concatenate(preds), labels),
            "segments": activity_scores(np.concatenate(seg_preds), labels)}
