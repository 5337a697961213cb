"""Training examples: excerpt sampling, remixing and augmentation over the tracks :mod:`stemsplit.data.tracks`
finds (MUSDB18 or any folder in its layout).

Augmentation follows the peers (open-unmix, demucs): random gain per source, random channel swap, a random speed
change (pitch and tempo together, as demucs's repitch without its tempo correction), a random EQ (a boosted or
cut low or high band) and a random synthetic room (reverb) per source, sources drawn from
different tracks at different offsets (tracks drawn by the same per-root shares as plain examples, so a large
synthetic root cannot crowd the real ones out of the remix), optionally each accompaniment stem from its own
track (open-unmix's random track mix), and silent excerpts skipped. Every example depends only on
``(seed, step, index)``, so a run is reproducible and resumable without storing a sampler state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import masks, spectral
from ..errors import DataError
from .tracks import Track

__all__ = ["AugmentConfig", "ExampleSampler", "activity_labels", "activity_ratio_db"]

SILENCE_RMS = 1e-4  # -80 dBFS: an excerpt quieter than this is skipped


@dataclass(frozen=True)
class AugmentConfig:
    """How training excerpts are varied.

    Parameters
    ----------
    gain_db : (float, float)
        Range of the random gain per source.
    channel_swap : float
        Probability of swapping left and right per source.
    remix : float
        Probability that an example's sources come from different tracks at different offsets: the target
        from one track, everything else from another (each drawn with the tracks' shares).
    remix_sources : float
        With remix, probability that each stem of the rest (drums, bass, other: everything but the target)
        comes from its own track and offset, drawn with the shares among the tracks that have that stem,
        instead of all from the one rest track: the drums of one song, the bass of a second, the other
        instruments of a third (open-unmix's random track mix). New accompaniments from the same few songs, at
        the price of keys and tempi that do not agree. A rest that is one stem (an accompaniment, or the mix
        minus the target) stays whole.
    keep_silent_target : float
        Probability of keeping an excerpt whose target is silent (such examples teach "no target here").
    eq : float
        Probability of a random EQ per source: a first-order low or high band (corner 150 Hz-5 kHz) boosted or
        cut by up to 9 dB.
    reverb : float
        Probability of a random synthetic room per source: exponentially decaying noise (RT60 0.2-1.2 s) mixed in
        at 10-40 %. The target's label includes its reverb, as MUSDB's stems do.
    speed : float
        Probability of playing a source (with remix) or the whole example (without) at a random speed, up to
        ``speed_semitones`` up or down: resampled, so pitch and tempo change together. New voices, basses and
        instruments from the same few songs; sources of one track keep their alignment.
    speed_semitones : float
        Largest speed change, in semitones of pitch (2 = a speed factor between 0.89 and 1.12).
    drop_target : float
        Probability of leaving the target out of the mix altogether (its label is then "absent" everywhere):
        real accompaniments of every root become examples of "no target here", not only the few songs that
        lack the target (for vocal activity, a whole instrumental excerpt must read as unvoiced).
    """

    gain_db: tuple[float, float] = (-12.0, 3.0)
    channel_swap: float = 0.5
    remix: float = 0.5
    remix_sources: float = 0.0
    keep_silent_target: float = 0.2
    eq: float = 0.0
    reverb: float = 0.0
    speed: float = 0.0
    speed_semitones: float = 2.0
    drop_target: float = 0.0


def random_eq(a: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``a`` (channels, n) with a first-order low or high band boosted or cut (see :class:`AugmentConfig`)."""
    from scipy.signal import lfilter

    corner = float(np.exp(rng.uniform(np.log(150.0), np.log(5000.0))))
    k = np.tan(np.pi * min(corner, 0.45 * sr) / sr)
    b_lo, a_lo = np.array([k, k]) / (1 + k), np.array([1.0, (k - 1) / (1 + k)])  # bilinear first-order lowpass
    band = lfilter(b_lo, a_lo, a, axis=-1)
    if rng.random() < 0.5:
        band = a - band  # the high band
    gain = 10 ** (rng.uniform(-9.0, 9.0) / 20) - 1.0
    return (a + gain * band).astype(np.float32)


def speed_factor(rng: np.random.Generator, semitones: float) -> float:
    """A random speed factor, uniform in pitch within ``semitones`` up or down."""
    return float(2.0 ** (rng.uniform(-semitones, semitones) / 12.0))


#: samples read beyond each end of a sped-up excerpt, so the resampler's edges fall outside it
_SPEED_PAD = 256


def read_at_speed(read, offset: int, n: int, factor: float) -> np.ndarray:
    """``n`` samples of a source played ``factor`` times faster from ``offset`` (pitch and tempo scaled).

    ``read(offset, count)`` returns ``(channels, count)`` from the source (zeros past its ends are fine). Reads
    about ``n * factor`` samples and resamples them to ``n`` (soxr, band-limited).
    """
    import soxr

    m = int(np.ceil(n * factor)) + 2 * _SPEED_PAD
    a = read(offset - _SPEED_PAD, m) if offset >= _SPEED_PAD else np.pad(
        read(0, m - (_SPEED_PAD - offset)), ((0, 0), (_SPEED_PAD - offset, 0)))
    y = soxr.resample(np.ascontiguousarray(a.T, dtype=np.float32), factor, 1.0).T  # rate factor -> 1
    lead = int(round(_SPEED_PAD / factor))
    y = y[:, lead:lead + n]
    if y.shape[1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return np.ascontiguousarray(y, dtype=np.float32)


def random_reverb(a: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``a`` (channels, n) through a random synthetic room (see :class:`AugmentConfig`), same length."""
    rt60 = rng.uniform(0.2, 1.2)
    n_ir = int(rt60 * sr)
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal((a.shape[0], n_ir)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir /= np.sqrt(np.sum(ir ** 2, axis=-1, keepdims=True)) + 1e-12
    n = a.shape[1] + n_ir - 1
    size = 1 << (n - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(ir, size), size)[:, :a.shape[1]]
    mix = rng.uniform(0.1, 0.4)
    return ((1 - mix) * a + mix * wet).astype(np.float32)


def activity_labels(target: np.ndarray, mix: np.ndarray, threshold_db: float, grid: spectral.Grid,
                    floor_db: float = -60.0) -> np.ndarray:
    """Frame labels for vocal activity: 1 where the target's energy in the model band is within ``threshold_db``
    of the mix's and its RMS level is above ``floor_db`` dBFS.

    Parameters
    ----------
    target, mix : np.ndarray
        Complex spectra on ``grid``, ``(channels, bins, frames)`` (model band).

    Returns
    -------
    np.ndarray
        ``(frames,)`` of 0/1.
    """
    ratio, level = activity_ratio_db(target, mix, grid)
    return ((ratio > threshold_db) & (level > floor_db)).astype(np.float32)


def activity_ratio_db(target: np.ndarray, mix: np.ndarray, grid: spectral.Grid) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`activity_labels` thresholds, per frame: ``(target-to-mix energy ratio in dB, the target's RMS
    level in dBFS)``, both over the channels' mean energy in the model band. Spectra as in :func:`activity_labels`."""
    et = (np.abs(target) ** 2).mean(axis=0).sum(axis=0)
    em = (np.abs(mix) ** 2).mean(axis=0).sum(axis=0)
    # Parseval on the one-sided spectrum: the frame's RMS level in dBFS (a full-scale sine reads -3)
    level = 10 * np.log10(et / (grid.n_fft * np.sum(grid.window ** 2) / 2) + 1e-20)
    ratio = 10 * np.log10((et + 1e-20) / (em + 1e-20))
    return ratio, level


class ExampleSampler:
    """Draws training examples (features, target mask frames) from tracks.

    Parameters
    ----------
    tracks : list of Track
    target_stems : sequence of str
        Stems summed to form the target.
    frames : int
        Frames predicted per example (1 = the article's single centre frame; more trains the fully
        convolutional model on many frames at once, much cheaper per frame).
    task : {"mask", "activity"}
    augment : AugmentConfig or None
        None gives plain excerpts of one track (validation).
    activity_threshold_db : float
        Label threshold for the activity task.
    labels : {"binary", "ratio"}
        Mask labels: the ideal binary mask (the article's), or the magnitude ratio ``|S| / (|S| + |X - S|)``
        (channels averaged), which is above 0.5 exactly where the binary mask is 1 and says by how much.
    context : int, optional
        Frames one predicted frame depends on (the model's :func:`~stemsplit.model.receptive_field`, odd; by
        default the frontend's 25): each example carries ``context // 2`` frames of it on either side.
    """

    def __init__(self, tracks: Sequence[Track], target_stems: Sequence[str], *, frames: int, task: str = "mask",
                 augment: AugmentConfig | None = AugmentConfig(), activity_threshold_db: float = -15.0,
                 frontend: spectral.Frontend = spectral.FRONTEND, labels: str = "binary",
                 context: int | None = None):
        if labels not in ("binary", "ratio"):
            raise DataError(f"labels must be 'binary' or 'ratio', got {labels!r}")
        self.labels = labels
        self.target_stems = tuple(target_stems)
        self.tracks = [t for t in tracks if self._usable(t)]
        if not self.tracks:
            raise DataError(f"No track has the stem(s) {', '.join(self.target_stems)} "
                            f"(found: {sorted({s for t in tracks for s in t.stems}) or 'none'}).")
        w = np.array([t.weight for t in self.tracks], dtype=np.float64)
        #: chance of drawing each of :attr:`tracks` (their weights, normalised)
        self.probabilities = w / w.sum()
        self.frames, self.task, self.augment = frames, task, augment
        self.activity_threshold_db = activity_threshold_db
        self.frontend = frontend
        #: frames of context on either side of the predicted frames
        self.half_context = frontend.half_context if context is None else int(context) // 2
        #: frames one example reads
        self.context = frames + 2 * self.half_context

    def _usable(self, t: Track) -> bool:
        if t.musdb_track is not None:
            return all(s in ("vocals", "drums", "bass", "other") for s in self.target_stems)
        return all(s in t.stems for s in self.target_stems)

    def excerpt_samples(self, sr: int) -> int:
        """Samples one example reads at rate ``sr``."""
        g = self.frontend.grid(sr)
        start, stop = spectral.frame_span(g, 0, self.context)
        return stop - start

    def _rest_sources(self, track: Track) -> list[str]:
        """What forms "everything but the target" in a track: its other stems, else its accompaniment stem,
        else ``"_rest"`` (the mixture minus the target)."""
        if track.musdb_track is not None:
            return [s for s in ("vocals", "drums", "bass", "other") if s not in self.target_stems]
        others = [s for s in track.stems if s not in self.target_stems and s != "accompaniment"]
        if others:
            return others
        return ["accompaniment"] if "accompaniment" in track.stems else ["_rest"]

    def _read(self, track: Track, source: str, offset: int, n: int) -> np.ndarray:
        if source == "_rest":  # a track of the target's stems and its mixture only
            return track.mix(offset, n) - sum(track.read(s, offset, n) for s in self.target_stems)
        return track.read(source, offset, n)

    def _has(self, track: Track, source: str) -> bool:
        return track.musdb_track is not None or source in track.stems or (
            source == "_rest" and self._rest_sources(track) == ["_rest"])

    def _draw(self, rng: np.random.Generator, sr: int | None = None, source: str | None = None) -> Track:
        """A track drawn with the tracks' shares (among those at rate ``sr`` holding ``source`` when given)."""
        if sr is None:
            return self.tracks[rng.choice(len(self.tracks), p=self.probabilities)]
        idx = [i for i, u in enumerate(self.tracks) if u.sr == sr and (source is None or self._has(u, source))]
        p = self.probabilities[idx]
        return self.tracks[idx[rng.choice(len(idx), p=p / p.sum())]]

    def _sources(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, bool]:
        """(target, rest) excerpts, each (2, n), their rate, and whether the target was dropped."""
        track = self._draw(rng)
        sr, n = track.sr, self.excerpt_samples(track.sr)
        aug = self.augment
        remix = aug is not None and rng.random() < aug.remix
        # without remix, one speed for the whole example keeps its sources aligned; with remix, one per source
        shared = (speed_factor(rng, aug.speed_semitones)
                  if aug is not None and aug.speed and not remix and rng.random() < aug.speed else 1.0)
        base_offset = int(rng.integers(0, max(1, track.length - int(np.ceil(n * max(shared, 1.0))))))
        # with remix, everything but the target comes from another track (drawn with the shares)
        rest_track = self._draw(rng, sr) if remix else track
        # a dropped target is neither read nor augmented (no draw at all when drop_target is 0)
        dropped = bool(aug is not None and aug.drop_target and rng.random() < aug.drop_target)
        rest = [(rest_track, s) for s in self._rest_sources(rest_track)]
        if remix and aug.remix_sources and len(rest) > 1:  # no draw at all when remix_sources is 0
            rest = [(self._draw(rng, sr, s) if rng.random() < aug.remix_sources else t, s) for t, s in rest]
        parts: list[tuple[bool, np.ndarray]] = []
        for is_target, t, source in [(True, track, s) for s in self.target_stems if not dropped] + [
                (False, t, s) for t, s in rest]:
            factor = shared
            if remix and aug.speed and rng.random() < aug.speed:
                factor = speed_factor(rng, aug.speed_semitones)
            span = int(np.ceil(n * max(factor, 1.0)))
            off = int(rng.integers(0, max(1, t.length - span))) if remix else base_offset
            if factor == 1.0:
                a = self._read(t, source, off, n)
            else:
                a = read_at_speed(lambda o, c, t=t, source=source: self._read(t, source, o, c), off, n, factor)
            if aug is not None:
                lo, hi = aug.gain_db
                a = a * np.float32(10 ** (rng.uniform(lo, hi) / 20))
                if rng.random() < aug.channel_swap:
                    a = a[::-1]
                if aug.eq and rng.random() < aug.eq:
                    a = random_eq(a, sr, rng)
                if aug.reverb and rng.random() < aug.reverb:
                    a = random_reverb(a, sr, rng)
            parts.append((is_target, a))
        target = sum((a for is_t, a in parts if is_t), np.zeros((2, n), np.float32))
        other = sum((a for is_t, a in parts if not is_t), np.zeros((2, n), np.float32))
        return target.astype(np.float32), other.astype(np.float32), sr, dropped

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One example: features ``(frames + 2 * half_context, 513)`` (24 context frames by default) and labels
        ``(frames, 513)`` (or ``(frames, 1)``)."""
        for _ in range(20):
            target, other, sr, dropped = self._sources(rng)
            mix = target + other
            if np.sqrt(np.mean(mix ** 2)) < SILENCE_RMS:
                continue
            silent_target = not dropped and np.sqrt(np.mean(target ** 2)) < SILENCE_RMS
            keep = self.augment.keep_silent_target if self.augment is not None else 1.0
            if silent_target and rng.random() >= keep:
                continue
            break
        g = self.frontend.grid(sr)
        spec_mix = spectral.stft(mix, g)
        spec_t = spectral.stft(target, g)
        x = spectral.features(spec_mix, g)
        hc = self.half_context
        centre = slice(hc, hc + self.frames)
        if self.task == "activity":
            y = activity_labels(spec_t[:, :g.model_bins, centre], spec_mix[:, :g.model_bins, centre],
                                self.activity_threshold_db, g)[:, None]
        else:
            y = np.zeros((self.frontend.n_bins, self.frames), np.float32)
            label = masks.ideal_binary_mask if self.labels == "binary" else masks.magnitude_ratio_mask
            y[:g.model_bins] = label(spec_t[:, :g.model_bins, centre], spec_mix[:, :g.model_bins, centre],
                                     channel_axis=0)
            y = y.T
        return x, np.ascontiguousarray(y, dtype=np.float32)

    def batch(self, seed: int, step: int, size: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A batch that depends only on ``(seed, step, stream)``: (size, :attr:`context`, 513), (size, frames,
        out)."""
        rng = np.random.default_rng([seed, stream, step])
        xs, ys = zip(*(self.example(rng) for _ in range(size)), strict=True)
        return np.stack(xs), np.stack(ys)
