"""The pair builder: align a mix with its a cappella (or instrumental) and write a MUSDB-layout training track.

Steps (all on the mix's sample rate; the stem is resampled to it with librosa first):

1. **Coarse offset**, two candidates: the peak of the whitened (phase-transform) cross-correlation (sharp and
   exact when the speeds match) and the peak of the loudness envelopes' cross-correlation (robust to a speed
   difference); steps 2-3 run from each and the one with the higher confidence wins.
2. **Speed**: local offsets of 8 windows of the stem against the mix (whitened cross-correlation, sub-sample
   peak interpolation);
   a straight line through them gives the speed ratio of a re-timed or mislabelled-rate release. The stem is
   resampled by that ratio when it differs from 1 by more than 2 ppm.
3. **Fine offset**: the full-rate cross-correlation peak, then the fractional part that maximises the
   correlation evaluated in the frequency domain (a bounded 1-D search), so the stem is shifted by a fraction of
   a sample exactly (phase ramp).
4. **Gain and polarity**: least squares, ``g = <mix, stem> / <stem, stem>`` over every channel (negative for a
   polarity flip).
5. **Confidence**: the peak-to-sidelobe ratio (PSR) of the final cross-correlation: the peak's height over the
   standard deviation of the correlation away from it. Related audio gives PSR in the hundreds; unrelated audio
   stays under ~6. Below ``min_psr`` (default 12) the pair is refused unless forced.

The track written holds the part of the mix the stem covers: ``mixture.wav``, ``vocals.wav`` and
``accompaniment.wav`` (one of the last two is the aligned stem, the other the mixture minus it).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sp_fft
from scipy import optimize, signal

from . import audio as audio_io
from .errors import DataError, OptionError
from .targets import sanitize_name

__all__ = ["KINDS", "Alignment", "AlignmentRefused", "estimate", "apply", "align_pair", "build_track",
           "build_many", "MIN_PSR"]

KINDS = ("acapella", "instrumental")
MIN_PSR = 12.0


class AlignmentRefused(DataError):
    """The stem does not line up with the mix well enough to make training data."""


@dataclass(frozen=True)
class Alignment:
    """How a stem lines up with a mix.

    Attributes
    ----------
    offset : float
        Samples (at ``sr``, fractional) to delay the stem by so it lines up with the mix: stem sample ``i``
        sits at mix sample ``i + offset`` (negative: the stem starts before the mix).
    gain : float
        Linear gain to apply to the stem (negative for a polarity flip).
    speed : float
        Ratio of the stem's duration to the mix's for the same music (1.0 = same speed).
    psr : float
        Peak-to-sidelobe ratio of the final cross-correlation (confidence).
    correlation : float
        Normalised correlation of mix and aligned stem over their overlap.
    sr : int
        Rate the numbers refer to (the mix's).
    """

    offset: float
    gain: float
    speed: float
    psr: float
    correlation: float
    sr: int

    @property
    def offset_seconds(self) -> float:
        return self.offset / self.sr

    @property
    def gain_db(self) -> float:
        return float(20 * np.log10(abs(self.gain) + 1e-30))

    def to_dict(self) -> dict:
        return {**asdict(self), "offset_seconds": self.offset_seconds, "gain_db": self.gain_db,
                "polarity": "inverted" if self.gain < 0 else "normal"}


def _xcorr(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-correlation of 1-D ``a`` (mix) and ``b`` (stem): lags where ``a[n] ~ b[n - lag]``."""
    c = signal.correlate(a, b, mode="full", method="fft")
    lags = signal.correlation_lags(a.size, b.size, mode="full")
    return c, lags


def _phat(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whitened (phase-transform) cross-correlation of ``a`` (mix) and ``b`` (stem), with its lags."""
    n = sp_fft.next_fast_len(a.size + b.size)
    cross = np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n))
    c = np.fft.irfft(cross / (np.abs(cross) + 1e-9 * np.abs(cross).max()), n)
    lags = np.arange(n)
    lags[lags > n - b.size] -= n  # negative lags wrap around
    return c, lags


def _parabolic(c: np.ndarray, i: int) -> float:
    """Sub-sample position of the peak at ``i`` from a parabola through its neighbours."""
    if 0 < i < c.size - 1:
        y0, y1, y2 = c[i - 1], c[i], c[i + 1]
        den = y0 - 2 * y1 + y2
        if den != 0:
            return i + 0.5 * (y0 - y2) / den
    return float(i)


def _psr(c: np.ndarray, i: int, guard: int) -> float:
    """Peak-to-sidelobe ratio: |peak| over the standard deviation of the correlation outside +-guard."""
    mask = np.ones(c.size, dtype=bool)
    mask[max(0, i - guard):i + guard + 1] = False
    side = c[mask]
    if side.size < 10:
        return 0.0
    return float(abs(c[i]) / (np.std(side) + 1e-30))


def _mono(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).mean(axis=0)


def _shift(x: np.ndarray, delay: float, length: int) -> np.ndarray:
    """``x`` (channels, n) delayed by ``delay`` samples (fractional, band-limited) into ``length`` samples."""
    n = x.shape[1]
    whole = int(np.floor(delay))
    frac = delay - whole
    size = sp_fft.next_fast_len(n + 2)  # room for the fractional shift's spread
    spec = np.fft.rfft(x, n=size, axis=1)
    k = np.arange(spec.shape[1])
    spec *= np.exp(-2j * np.pi * k * frac / size)
    moved = np.fft.irfft(spec, n=size, axis=1)[:, :n + 1]
    out = np.zeros((x.shape[0], length), dtype=np.float64)
    lo, hi = max(0, whole), min(length, whole + moved.shape[1])
    if hi > lo:
        out[:, lo:hi] = moved[:, lo - whole:hi - whole]
    return out


def _resample_speed(x: np.ndarray, speed: float, sr: int) -> np.ndarray:
    """Play ``x`` at 1/``speed`` of its speed (stretch it by ``speed``)."""
    import librosa

    return librosa.resample(np.asarray(x, np.float64), orig_sr=sr, target_sr=sr * speed, res_type="soxr_vhq")


def _fine_offset(m: np.ndarray, s: np.ndarray, expected: float, tol: int) -> tuple[float, float, float]:
    """Full-rate offset near ``expected`` (within ``tol`` samples) with a fractional refinement; returns
    ``(offset, psr, correlation at the peak)``. The PSR is measured over every lag."""
    # one cross-spectrum serves the plain correlation, the whitened one and the fractional search
    n = sp_fft.next_fast_len(m.size + s.size)
    cross = np.fft.rfft(m, n) * np.conj(np.fft.rfft(s, n))
    lags = np.arange(-(s.size - 1), m.size)
    c = np.fft.irfft(cross, n)[lags % n]
    near = np.abs(lags - expected) <= tol
    i = int(np.flatnonzero(near)[np.argmax(np.abs(c[near]))])
    lag = int(lags[i])
    # confidence on the phase-transform (whitened) correlation: a pitched signal's plain correlation has
    # strong periodic sidelobes, the whitened one a single sharp peak when the two really line up
    phat = np.fft.irfft(cross / (np.abs(cross) + 1e-12 * np.abs(cross).max()), n)
    p = lag % n
    psr = _psr(phat, p, guard=8)
    # fractional part: maximise the correlation at lag + d, evaluated through the cross-spectrum
    w = 2 * np.pi * np.arange(cross.size) / n
    sign = np.sign(c[i]) or 1.0

    def neg_corr(d: float) -> float:
        tau = lag + d
        # correlation at lag tau = inverse transform of the cross-spectrum at tau (one-sided, real part)
        val = (cross * np.exp(1j * w * tau)).real
        val[1:-1] *= 2
        return -sign * float(val.sum()) / n

    d = optimize.minimize_scalar(neg_corr, bounds=(-1.0, 1.0), method="bounded",
                                 options={"xatol": 1e-4}).x
    return lag + float(d), psr, float(c[i])


def _drift(m: np.ndarray, s: np.ndarray, coarse: float, sr: int) -> tuple[float, float] | None:
    """Line through the local offsets of 8 windows of the stem ``s`` against the mix ``m``:
    ``(slope, intercept)`` with offset(p) = intercept + slope * p, or None when too few windows are clear."""
    from scipy.stats import theilslopes

    win = s.size // 8
    search = int(0.05 * sr) + int(4e-3 * s.size)  # room for up to ~0.4 % of drift
    centres, offs, weights = [], [], []
    for k in range(8):
        a = k * win
        seg = s[a:a + win]
        lo = int(round(a + coarse)) - search
        ref = m[max(0, lo):max(0, lo) + win + 2 * search]
        if ref.size < win // 2 or not np.any(seg):
            continue
        cc, ll = _phat(ref, seg)
        # only lags where the window lies wholly inside the searched stretch (partial overlaps at the edges
        # make whitened spikes)
        inside = np.flatnonzero((ll >= 0) & (ll <= ref.size - seg.size))
        if inside.size == 0:
            continue
        j = int(inside[np.argmax(np.abs(cc[inside]))])
        psr = _psr(cc, j, guard=8)
        if psr < 5.0:  # short windows over a busy mix: weaker peaks; outliers are removed below
            continue
        pos = _parabolic(np.abs(cc), j) - j + ll[j] + max(0, lo)
        centres.append(a)
        offs.append(pos - a)
        weights.append(psr)
    if len(centres) < 3:
        return None
    c, o, w = np.array(centres), np.array(offs), np.array(weights)
    slope, intercept, _, _ = theilslopes(o, c)  # robust first line
    res = np.abs(o - (intercept + slope * c))
    good = res <= max(4.0, 3 * 1.4826 * np.median(res))
    if good.sum() >= 3:
        slope, intercept = np.polyfit(c[good], o[good], 1, w=np.sqrt(w[good]))
    return float(slope), float(intercept)


def _refine(m: np.ndarray, stem: np.ndarray, coarse: float, sr: int,
            fix_speed: bool) -> tuple[float, float, float, np.ndarray]:
    """Speed and fine offset from a coarse offset: ``(offset, psr, speed, speed-corrected stem)``."""
    s = _mono(stem)
    speed = 1.0
    original = stem
    # speed from local offsets along the stem; a second pass refines what the first corrected
    for _ in range(3 if fix_speed and s.size > 8 * sr else 0):
        fit = _drift(m, s, coarse, sr)
        if fit is None:
            break
        slope, intercept = fit
        coarse = intercept
        if abs(slope) <= 2e-6:
            break
        # mix position of stem sample p is intercept + p * (1 + slope): stretch by (1 + slope)
        speed *= 1.0 + slope
        stem = _resample_speed(original, speed, sr)
        s = _mono(stem)
    start = max(0, int(round(coarse)) - int(0.02 * sr))
    region = m[start:max(start, int(round(coarse)) + s.size + int(0.02 * sr))]
    if region.size == 0:
        return coarse, 0.0, speed, stem
    off, psr, _ = _fine_offset(region, s, expected=coarse - start, tol=int(0.01 * sr) + 2)
    return off + start, psr, speed, stem


def estimate(mix: np.ndarray, stem: np.ndarray, sr: int, *, max_offset: float | None = None,
             fix_speed: bool = True) -> tuple[Alignment, np.ndarray]:
    """Estimate how ``stem`` lines up with ``mix`` (both ``(channels, samples)`` at ``sr``).

    Parameters
    ----------
    max_offset : float, optional
        Largest offset searched, in seconds (default: any).
    fix_speed : bool
        Estimate and correct a speed difference.

    Returns
    -------
    alignment : Alignment
    stem : np.ndarray
        The stem after speed correction (before shifting and gain), ``(channels, samples)`` float64.
    """
    m, s = _mono(mix), _mono(stem)
    if not np.any(s) or not np.any(m):
        raise AlignmentRefused("The mix or the stem is silent: nothing to align.")
    import librosa

    # 1. coarse offset candidates: the whitened correlation's peak (sharp, exact when the speeds match) and
    #    the loudness envelopes' (robust to a speed difference)
    c, lags = _phat(m, s)
    hop = max(1, sr // 200)
    env_m = np.log1p(1e3 * librosa.feature.rms(y=m, frame_length=4 * hop, hop_length=hop)[0])
    env_s = np.log1p(1e3 * librosa.feature.rms(y=s, frame_length=4 * hop, hop_length=hop)[0])
    ce, lags_e = _xcorr(env_m - env_m.mean(), env_s - env_s.mean())
    lags_e = lags_e * hop
    if max_offset is not None:
        keep, keep_e = np.abs(lags) <= max_offset * sr, np.abs(lags_e) <= max_offset * sr + hop
        c, lags, ce, lags_e = c[keep], lags[keep], ce[keep_e], lags_e[keep_e]
    candidates = [float(lags[int(np.argmax(np.abs(c)))]), float(lags_e[int(np.argmax(ce))])]
    best = None
    original = np.asarray(stem, np.float64)
    for coarse in candidates:
        found = _refine(m, original, coarse, sr, fix_speed)
        if best is None or found[1] > best[1]:
            best = found
    offset, psr, speed, stem = best
    # 4. gain over every channel
    shifted = _shift(stem, offset, mix.shape[1])
    den = float(np.sum(shifted ** 2))
    gain = float(np.sum(mix * shifted) / den) if den > 0 else 0.0
    overlap = np.any(shifted != 0, axis=0)
    mm, ss = mix[:, overlap], shifted[:, overlap]
    corr = float(np.sum(mm * ss) / (np.sqrt(np.sum(mm ** 2) * np.sum(ss ** 2)) + 1e-30))
    return Alignment(offset=float(offset), gain=gain, speed=speed, psr=psr, correlation=corr, sr=sr), stem


def apply(alignment: Alignment, stem: np.ndarray, length: int) -> np.ndarray:
    """The stem shifted and scaled onto the mix's timeline, ``(channels, length)``."""
    return alignment.gain * _shift(np.asarray(stem, np.float64), alignment.offset, length)


def align_pair(mix: np.ndarray, mix_sr: int, stem: np.ndarray, stem_sr: int, *, kind: str = "acapella",
               min_psr: float = MIN_PSR, force: bool = False, max_offset: float | None = None,
               fix_speed: bool = True) -> tuple[Alignment, dict[str, np.ndarray]]:
    """Align a stem with its mix and split the mix into vocals and accompaniment.

    Parameters
    ----------
    mix, stem : np.ndarray
        ``(channels, samples)`` or ``(samples,)``; a mono stem is used on every channel of the mix.
    mix_sr, stem_sr : int
        Their rates (the stem is resampled to the mix's).
    kind : {"acapella", "instrumental"}
        What the stem is.
    min_psr : float
        Confidence below which the pair is refused.
    force : bool
        Keep a pair even below ``min_psr``.

    Returns
    -------
    alignment : Alignment
    track : dict
        ``{"mixture", "vocals", "accompaniment"}`` float32 ``(channels, n)`` over the part of the mix the stem
        covers, at ``mix_sr``; vocals + accompaniment == mixture.

    Raises
    ------
    AlignmentRefused
        When the confidence is below ``min_psr`` (and not ``force``) or nothing overlaps.
    """
    if kind not in KINDS:
        raise OptionError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    mix, mix_sr, _ = audio_io.validate(mix, mix_sr, name="The mix")
    stem, stem_sr, _ = audio_io.validate(stem, stem_sr, name="The stem")
    stem = audio_io.resample(stem, stem_sr, mix_sr)
    if stem.shape[0] == 1 and mix.shape[0] > 1:
        stem = np.repeat(stem, mix.shape[0], axis=0)
    elif stem.shape[0] != mix.shape[0]:
        stem = np.repeat(stem.mean(axis=0, keepdims=True), mix.shape[0], axis=0)
    al, stem = estimate(mix, stem, mix_sr, max_offset=max_offset, fix_speed=fix_speed)
    if al.psr < min_psr and not force:
        raise AlignmentRefused(
            f"The stem does not line up with the mix (confidence PSR {al.psr:.1f} < {min_psr:g}); they may be "
            "different recordings, versions or edits. Use --force to write it anyway.")
    placed = apply(al, stem, mix.shape[1])
    start = int(np.clip(np.ceil(al.offset - 0.01), 0, mix.shape[1]))  # (a hair of tolerance for rounding)
    stop = int(np.clip(np.floor(al.offset + stem.shape[1] + 0.01), 0, mix.shape[1]))
    if stop - start < mix_sr // 10:
        raise AlignmentRefused("The aligned stem overlaps less than 0.1 s of the mix.")
    mixture = mix[:, start:stop].astype(np.float64)
    aligned = placed[:, start:stop]
    other = mixture - aligned
    vocals, accompaniment = (aligned, other) if kind == "acapella" else (other, aligned)
    track = {"mixture": mixture, "vocals": vocals, "accompaniment": accompaniment}
    return al, {k: v.astype(np.float32) for k, v in track.items()}


def build_track(mix_path: str | os.PathLike, stem_path: str | os.PathLike, dataset: str | os.PathLike,
                name: str | None = None, *, kind: str = "acapella", split: str = "train", force: bool = False,
                min_psr: float = MIN_PSR, max_offset: float | None = None) -> tuple[Alignment, Path]:
    """Align two files into ``DATASET/<split>/<name>/{mixture,vocals,accompaniment}.wav`` (+ ``alignment.json``).

    Parameters
    ----------
    mix_path, stem_path : path-like
        The released mix and its a cappella (``kind="acapella"``) or instrumental.
    dataset : path-like
        Dataset root (MUSDB layout).
    name : str, optional
        Track folder name (default: the mix file's name).

    Returns
    -------
    alignment : Alignment
    folder : Path
        The track folder written.
    """
    import json

    if split not in ("train", "test"):
        raise OptionError(f"split must be train or test, not {split!r}")
    mix, mix_sr = audio_io.load(mix_path)
    stem, stem_sr = audio_io.load(stem_path)
    al, track = align_pair(mix, mix_sr, stem, stem_sr, kind=kind, force=force, min_psr=min_psr,
                           max_offset=max_offset)
    folder = Path(dataset) / split / sanitize_name(name or Path(mix_path).stem)
    for stem_name, data in track.items():
        audio_io.write(folder / f"{stem_name}.wav", data, mix_sr)
    meta = {"mix": str(mix_path), "stem": str(stem_path), "kind": kind, **al.to_dict()}
    (folder / "alignment.json").write_text(json.dumps(meta, indent=2))
    return al, folder


def _pairs_from_folder(folder: Path) -> list[tuple[Path, Path, str, str]]:
    """``NAME.mix.EXT`` beside ``NAME.acapella.EXT`` or ``NAME.instrumental.EXT``."""
    pairs = []
    for mix in sorted(folder.iterdir()):
        parts = mix.name.split(".")
        if len(parts) < 3 or parts[-2] != "mix":
            continue
        name = ".".join(parts[:-2])
        for kind in KINDS:
            stems = sorted(folder.glob(f"{name}.{kind}.*"))
            if stems:
                pairs.append((mix, stems[0], kind, name))
    return pairs


def _pairs_from_csv(path: Path) -> list[tuple[Path, Path, str, str]]:
    """Rows ``mix,stem,kind[,name]`` (paths relative to the CSV's folder)."""
    pairs = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if not {"mix", "stem", "kind"} <= set(row):
                raise OptionError(f"{path}: columns must include mix, stem and kind")
            mix = (path.parent / row["mix"]).resolve()
            pairs.append((mix, (path.parent / row["stem"]).resolve(), row["kind"],
                          row.get("name") or mix.stem))
    return pairs


def build_many(source: str | os.PathLike, out: str | os.PathLike, *, split: str = "train", force: bool = False,
               min_psr: float = MIN_PSR,
               progress: Callable[[int, int, str], None] | None = None) -> dict[str, list]:
    """Align every pair of a folder (``NAME.mix.*`` with ``NAME.acapella.*`` / ``NAME.instrumental.*``) or of a
    CSV (``mix,stem,kind[,name]``) into the dataset ``out``.

    Returns
    -------
    dict
        ``{"accepted": [(name, Alignment)], "refused": [(name, reason)]}``.
    """
    from .errors import StemsplitError

    source = Path(source)
    pairs = _pairs_from_csv(source) if source.is_file() else _pairs_from_folder(source)
    if not pairs:
        raise DataError(f"No pairs found in {source} (expected NAME.mix.* with NAME.acapella.* or "
                        "NAME.instrumental.*, or a CSV with mix,stem,kind columns).")
    result: dict[str, list] = {"accepted": [], "refused": []}
    for i, (mix, stem, kind, name) in enumerate(pairs):
        try:
            al, _ = build_track(mix, stem, out, name, kind=kind, split=split, force=force, min_psr=min_psr)
            result["accepted"].append((name, al))
        except StemsplitError as e:
            result["refused"].append((name, str(e)))
        if progress is not None:
            progress(i + 1, len(pairs), name)
    return result
