"""The shared STFT frontend: its settings, the STFT and the inverse STFT.

Nothing else in stemsplit knows the FFT size or the hop. The models see the seed method's frontend
(22.05 kHz, window 1024, hop 256, 513 bins, 25 frames of context). Audio at any other rate is analysed on the
*matching grid* at its own rate: the window and hop are scaled by ``sr / 22050`` so that bins are ~21.5 Hz apart
and frames ~11.6 ms apart whatever the rate (2048/512 at 44.1 kHz). The first 513 bins of that grid are the
model's band (0 to 11.025 kHz) and feed the model directly, with no resampling; masks are applied on the full
input-rate grid, so stems come back full band, at the input's rate and exact length.

Frames follow librosa's ``center=True`` convention with zero padding: frame ``t`` is centred on sample
``t * hop`` and a signal of ``n`` samples has ``1 + n // hop`` frames.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from .errors import InvalidAudioError

__all__ = ["Frontend", "Grid", "FRONTEND", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "stft", "overlap_add", "istft",
           "features", "frame_span", "frames_overlapping", "signal_stft", "padded_slice"]

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000


@dataclass(frozen=True)
class Frontend:
    """Settings of the model's spectral frontend.

    Parameters
    ----------
    sample_rate : int
        Rate at which the model's grid is defined (Hz).
    n_fft : int
        Window and FFT length at ``sample_rate``.
    hop_length : int
        Hop between frames at ``sample_rate``.
    context : int
        Frames the model looks at to predict one frame (odd).
    log_floor : float
        Features are ``log(1 + |X| / log_floor)``: a log magnitude that resolves quiet bins down to about this
        magnitude (on the model grid's scale) instead of flattening them to zero as ``log(1 + |X|)`` would.
    """

    sample_rate: int = 22_050
    n_fft: int = 1024
    hop_length: int = 256
    context: int = 25
    log_floor: float = 1e-3

    @property
    def n_bins(self) -> int:
        """Frequency bins the model sees (DC included)."""
        return self.n_fft // 2 + 1

    @property
    def half_context(self) -> int:
        """Frames of context on each side of the predicted frame."""
        return self.context // 2

    def grid(self, sr: int) -> Grid:
        """The STFT grid at rate ``sr`` that matches the model's bins and hop."""
        return _grid(self, int(sr))

    def to_dict(self) -> dict[str, int | float]:
        """Plain values, for checkpoint metadata."""
        return {"sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop_length,
                "context": self.context, "log_floor": self.log_floor}


FRONTEND = Frontend()


@dataclass(frozen=True, eq=False)
class Grid:
    """An STFT grid at one sample rate, matching a :class:`Frontend`.

    Attributes
    ----------
    sr : int
        Sample rate of the audio on this grid.
    n_fft, hop : int
        Window length and hop in samples at ``sr``.
    window : np.ndarray
        Periodic Hann window, shape ``(n_fft,)``.
    frontend : Frontend
        The model frontend this grid matches.
    """

    sr: int
    n_fft: int
    hop: int
    window: np.ndarray
    frontend: Frontend

    @property
    def n_bins(self) -> int:
        """Bins of the one-sided spectrum at this rate."""
        return self.n_fft // 2 + 1

    @property
    def model_bins(self) -> int:
        """How many of this grid's bins fall in the model's band."""
        return min(self.n_bins, self.frontend.n_bins)

    @property
    def pad(self) -> int:
        """Samples between a frame's start and its centre."""
        return self.n_fft // 2

    @property
    def feature_scale(self) -> float:
        """Factor that brings magnitudes on this grid to the model grid's scale."""
        return self.frontend.n_fft / self.n_fft

    def n_frames(self, n_samples: int) -> int:
        """Frames of a signal of ``n_samples`` samples (``center=True``)."""
        return 1 + int(n_samples) // self.hop

    @property
    def latency_frames(self) -> int:
        """Frames a centred frame reaches ahead of its centre, rounded up to whole hops."""
        return math.ceil((self.n_fft - self.pad) / self.hop)


@functools.lru_cache(maxsize=64)
def _grid(frontend: Frontend, sr: int) -> Grid:
    """Build (and cache) the grid for one rate."""
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"Unsupported sample rate {sr} Hz: stemsplit handles {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz.")
    ratio = sr / frontend.sample_rate
    n_fft = int(round(frontend.n_fft * ratio))
    hop = max(1, int(round(frontend.hop_length * ratio)))
    # periodic Hann, as librosa/scipy's get_window("hann", n_fft, fftbins=True); computed here because importing
    # their filters module (scipy.signal, numba) takes seconds of every start-up
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    return Grid(sr=sr, n_fft=n_fft, hop=hop, window=window, frontend=frontend)


def frame_span(grid: Grid, first: int, count: int) -> tuple[int, int]:
    """Sample range ``[start, stop)`` that frames ``first .. first+count-1`` read (may reach past the signal)."""
    start = first * grid.hop - grid.pad
    return start, start + (count - 1) * grid.hop + grid.n_fft


def frames_overlapping(grid: Grid, start: int, stop: int, total_frames: int) -> tuple[int, int]:
    """Frames ``[lo, hi)`` of a signal (of ``total_frames`` frames) whose windows overlap samples ``[start, stop)``."""
    lo = max(0, (start + grid.pad - grid.n_fft) // grid.hop + 1)
    hi = min(total_frames, -(-(stop + grid.pad) // grid.hop))
    return lo, hi


def stft(segment: np.ndarray, grid: Grid) -> np.ndarray:
    """Frames of an already padded segment, with no centring of its own.

    Parameters
    ----------
    segment : np.ndarray
        Samples, shape ``(channels, samples)``; frame ``k`` starts at sample ``k * grid.hop`` of it.
        Use :func:`frame_span` to cut the segment for a range of a signal's frames.
    grid : Grid
        The grid to analyse on.

    Returns
    -------
    np.ndarray
        Complex spectrum, shape ``(channels, grid.n_bins, frames)``, complex64. Its memory runs frame by frame
        (the transform's own layout, a transposed view rather than a copy), which :func:`overlap_add` reads back
        without a copy.
    """
    segment = np.ascontiguousarray(segment, dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(segment, grid.n_fft, axis=-1)[..., ::grid.hop, :]
    # scipy's transform keeps float32 (numpy's forward transform was the slower of the two on these shapes)
    spec = scipy.fft.rfft(frames * grid.window, axis=-1, overwrite_x=True)  # (channels, frames, bins)
    return np.swapaxes(spec.astype(np.complex64, copy=False), -1, -2)


def signal_stft(audio: np.ndarray, grid: Grid) -> np.ndarray:
    """Centred STFT of a whole signal, shape ``(channels, bins, 1 + samples // hop)``; equals librosa's
    ``stft(center=True, pad_mode="constant")`` on the same grid."""
    n = audio.shape[-1]
    start, stop = frame_span(grid, 0, grid.n_frames(n))
    return stft(padded_slice(audio, start, stop), grid)


def padded_slice(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of ``audio`` (channels, samples), zeros where the range leaves the signal."""
    n = audio.shape[-1]
    out = np.zeros(audio.shape[:-1] + (stop - start,), dtype=np.float32)
    lo, hi = max(start, 0), min(stop, n)
    if hi > lo:
        out[..., lo - start:hi - start] = audio[..., lo:hi]
    return out


def overlap_add(spec: np.ndarray, grid: Grid, first: int, total_frames: int, out_start: int,
                out_stop: int) -> np.ndarray:
    """Inverse STFT of frames ``first ..`` of a signal, for the samples ``[out_start, out_stop)``.

    The frames given must be every existing frame (``0 <= t < total_frames``) that overlaps the output range;
    the window-square normalisation is then exact, so cutting a signal into blocks changes nothing.

    Parameters
    ----------
    spec : np.ndarray
        Complex frames, shape ``(channels, grid.n_bins, count)``.
    grid : Grid
        The grid they were analysed on.
    first : int
        Index of the first frame in the whole signal.
    total_frames : int
        Frames of the whole signal (frames past it are absent, which matters at its ends).
    out_start, out_stop : int
        Output sample range, in samples of the whole signal.

    Returns
    -------
    np.ndarray
        Samples, shape ``(channels, out_stop - out_start)``, float32.
    """
    count = spec.shape[-1]
    lo, hi = frames_overlapping(grid, out_start, out_stop, total_frames)
    if first > lo or first + count < hi or first < 0 or first + count > total_frames:
        raise ValueError(f"frames {first}..{first + count} given; samples {out_start}..{out_stop} need {lo}..{hi} "
                         f"(of {total_frames})")
    # transform along the bins: (..., count, bins) -> (..., count, n_fft); contiguous for a spectrum laid out as
    # stft() gives it; scipy keeps float32
    frames = scipy.fft.irfft(np.swapaxes(spec, -1, -2), n=grid.n_fft, axis=-1)
    frames = frames.astype(np.float32, copy=False)
    frames *= grid.window
    numer = _ola(frames, grid.hop)
    denom = _ola(np.broadcast_to(grid.window ** 2, (count, grid.n_fft)), grid.hop)
    base = first * grid.hop - grid.pad
    lo, hi = out_start - base, out_stop - base
    if lo < 0 or hi > numer.shape[-1]:
        raise ValueError("output range not covered by the frames given")
    d = denom[lo:hi]
    if np.any(d <= 1e-8):
        raise ValueError("window weights sum to zero inside the output range")
    return numer[..., lo:hi] / d


def _ola(frames: np.ndarray, hop: int) -> np.ndarray:
    """Overlap-add frames ``(..., count, n_fft)`` at ``hop``, vectorised over hop-sized pieces."""
    count, n_fft = frames.shape[-2], frames.shape[-1]
    pieces = -(-n_fft // hop)
    lead = frames.shape[:-2]
    if pieces * hop != n_fft:
        padded = np.zeros(lead + (count, pieces * hop), dtype=np.float32)
        padded[..., :n_fft] = frames
        frames = padded
    frames = frames.reshape(lead + (count, pieces, hop))  # piece k of frame t lands on hop-block t + k
    out = np.zeros(lead + (count + pieces - 1, hop), dtype=np.float32)
    for k in range(pieces):
        out[..., k:k + count, :] += frames[..., :, k, :]
    return out.reshape(lead + ((count + pieces - 1) * hop,))


def istft(spec: np.ndarray, grid: Grid, length: int) -> np.ndarray:
    """Inverse of :func:`signal_stft`: samples ``(channels, length)`` from all the frames of a signal."""
    return overlap_add(spec, grid, 0, spec.shape[-1], 0, length)


def features(spec: np.ndarray, grid: Grid) -> np.ndarray:
    """Model input from a complex spectrum on ``grid``.

    The magnitude is averaged over channels (one mask serves every channel), brought to the model grid's
    scale, cut to the model's band (zero-padded above a low rate's Nyquist) and log-compressed.

    Parameters
    ----------
    spec : np.ndarray
        Complex spectrum, shape ``(channels, grid.n_bins, frames)``.

    Returns
    -------
    np.ndarray
        Features, shape ``(frames, frontend.n_bins)``, float32.
    """
    mag = np.abs(spec[:, :grid.model_bins]).mean(axis=0) * (grid.feature_scale / grid.frontend.log_floor)
    out = np.zeros((grid.frontend.n_bins, spec.shape[-1]), dtype=np.float32)
    out[:grid.model_bins] = np.log1p(mag)
    return np.ascontiguousarray(out.T)
