"""Audio in and out: decoding files (whole or block by block), validating samples, writing stems atomically.

Audio in memory is float32 shaped ``(channels, samples)`` with its sample rate passed beside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from .checkpoint import atomic_path
from .errors import AudioFileError, InvalidAudioError, OptionError, SilentAudioError
from .spectral import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

__all__ = ["atomic_path", "FORMATS", "as_channels_first", "validate", "load", "open_reader", "AudioReader", "ArrayReader",
           "StemWriter", "write", "resample"]

#: output format -> (soundfile format, subtype); float WAV keeps stems exact and free of clipping
FORMATS: dict[str, tuple[str, str | None]] = {
    "wav": ("WAV", "FLOAT"),
    "flac": ("FLAC", "PCM_24"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def as_channels_first(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``(audio as (channels, samples) float32, whether the input was 1-D)``."""
    a = np.asarray(audio)
    if a.dtype.kind in "iu":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    elif a.dtype.kind != "f":
        raise InvalidAudioError(f"Audio must be a numeric array, got dtype {a.dtype}.")
    if a.ndim == 1:
        return a[None, :].astype(np.float32, copy=False), True
    if a.ndim != 2:
        raise InvalidAudioError(f"Audio must be shaped (channels, samples) or (samples,), got shape {a.shape}.")
    if a.shape[0] > a.shape[1] > 0:
        raise InvalidAudioError(
            f"Audio shaped {a.shape} has more channels than samples; pass it as (channels, samples).")
    return a.astype(np.float32, copy=False), False


def check_rate(sr: float) -> int:
    """The sample rate as an int, or a clear error."""
    if not isinstance(sr, (int, np.integer)) and not (isinstance(sr, float) and sr.is_integer()):
        raise InvalidAudioError(f"Sample rate must be a whole number of Hz, got {sr!r}.")
    sr = int(sr)
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"Unsupported sample rate {sr} Hz: stemsplit handles {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz.")
    return sr


def check_block(block: np.ndarray, where: str, offset_s: float = 0.0) -> None:
    """Raise if a block holds NaN or infinite samples."""
    if not np.all(np.isfinite(block)):
        bad = int(np.argwhere(~np.isfinite(block))[0][-1])
        raise InvalidAudioError(f"{where} contains NaN or infinite samples (first at {offset_s:.2f} s + {bad}).")


def validate(audio: np.ndarray, sr: float, *, name: str = "The audio") -> tuple[np.ndarray, int, bool]:
    """Check samples and rate for separation.

    Parameters
    ----------
    audio : np.ndarray
        Shape ``(channels, samples)`` or ``(samples,)``.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    audio : np.ndarray
        float32 ``(channels, samples)``.
    sr : int
    was_1d : bool

    Raises
    ------
    InvalidAudioError
        Empty, non-finite, wrongly shaped, or an unsupported rate.
    SilentAudioError
        Only zeros.
    """
    a, was_1d = as_channels_first(audio)
    sr = check_rate(sr)
    if a.shape[-1] == 0 or a.shape[0] == 0:
        raise InvalidAudioError(f"{name} is empty (zero samples).")
    check_block(a, name)
    if not np.any(a):
        raise SilentAudioError(f"{name} is silent (all samples are zero): nothing to separate.")
    return a, sr, was_1d


class ArrayReader:
    """Reads ``[start, stop)`` of an in-memory signal, zeros outside it."""

    def __init__(self, audio: np.ndarray, sr: int):
        self.audio, self.sr = audio, sr
        self.channels, self.frames = audio.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        from .spectral import padded_slice

        return padded_slice(self.audio, start, stop)

    def close(self) -> None:
        pass


class AudioReader:
    """Decodes a file front to back, serving overlapping ranges from a small buffer (bounded memory).

    Ranges must not start before the start of the previous one.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self._sf = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioFileError(f"Could not decode {path}: {e}") from None
        self.sr, self.channels, self.frames = self._sf.samplerate, self._sf.channels, self._sf.frames
        self._buf = np.zeros((self.channels, 0), dtype=np.float32)
        self._buf_start = 0

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as (channels, n), zeros outside the file."""
        if max(start, 0) < self._buf_start:
            raise ValueError("AudioReader reads forward only")
        buf_end = self._buf_start + self._buf.shape[1]
        want = min(stop, self.frames)
        if want > buf_end:
            try:
                new = self._sf.read(want - buf_end, dtype="float32", always_2d=True).T
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioFileError(f"Could not decode {self.path}: {e}") from None
            check_block(new, str(self.path), buf_end / self.sr)
            if new.shape[1] < want - buf_end:  # the header promised more than the stream holds
                self.frames = buf_end + new.shape[1]
            self._buf = np.concatenate([self._buf, new], axis=1)
        keep = max(0, min(start, self._buf_start + self._buf.shape[1]) - self._buf_start)
        if keep:
            self._buf = self._buf[:, keep:]
            self._buf_start += keep
        out = np.zeros((self.channels, stop - start), dtype=np.float32)
        lo, hi = max(start, self._buf_start), min(stop, self._buf_start + self._buf.shape[1])
        if hi > lo:
            out[:, lo - start:hi - start] = self._buf[:, lo - self._buf_start:hi - self._buf_start]
        return out

    def close(self) -> None:
        self._sf.close()


def _check_path(path: str | os.PathLike) -> Path:
    """The path, if it is an existing regular file."""
    p = Path(path)
    if not p.exists():
        raise AudioFileError(f"No such file: {p}")
    if not p.is_file():
        raise AudioFileError(f"Not a file: {p}")
    if p.stat().st_size == 0:
        raise AudioFileError(f"{p} is empty (0 bytes).")
    return p


def open_reader(path: str | os.PathLike) -> AudioReader | ArrayReader:
    """A block reader for any file soundfile decodes; other formats (m4a, wma...) are decoded whole via
    librosa/ffmpeg."""
    p = _check_path(path)
    try:
        reader: AudioReader | ArrayReader = AudioReader(p)
    except AudioFileError:
        audio, sr = _decode_with_librosa(p)
        reader = ArrayReader(audio, sr)
    if reader.frames == 0:
        reader.close()
        raise InvalidAudioError(f"{p} holds no audio (zero samples).")
    check_rate(reader.sr)
    return reader


def _decode_with_librosa(p: Path) -> tuple[np.ndarray, int]:
    """Whole-file decode through librosa's audioread (ffmpeg) fallback."""
    import warnings

    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, sr = librosa.load(str(p), sr=None, mono=False)
    except Exception as e:  # audioread raises many unrelated types
        raise AudioFileError(f"Could not decode {p}: {type(e).__name__}: {e}".rstrip(": ")) from None
    y = np.atleast_2d(y).astype(np.float32)
    check_block(y, str(p))
    return y, int(sr)


def load(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a whole file.

    Parameters
    ----------
    path : path-like
        Any format soundfile (wav, flac, ogg, mp3, aiff...) or ffmpeg can decode.

    Returns
    -------
    audio : np.ndarray
        float32, shape ``(channels, samples)``.
    sr : int
    """
    reader = open_reader(path)
    try:
        audio = reader.read(0, reader.frames)
        return audio[:, :reader.frames], reader.sr
    finally:
        reader.close()


def check_format(fmt: str) -> str:
    """A supported output format name, or a clear error."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise OptionError(f"Unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if FORMATS[fmt][0] not in sf.available_formats():
        raise OptionError(f"This libsndfile cannot write {fmt}; choose wav or flac.")
    return fmt


class StemWriter:
    """Writes one stem block by block into a temporary file; :meth:`commit` renames it into place."""

    def __init__(self, path: Path, sr: int, channels: int, fmt: str):
        self.path = path
        fmt = check_format(fmt)
        major, subtype = FORMATS[fmt]
        if fmt == "mp3" and sr not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000):
            raise OptionError(f"mp3 cannot store {sr} Hz audio; choose wav or flac.")
        self._atomic = atomic_path(path, "." + fmt)
        tmp = self._atomic.__enter__()
        try:
            self._sf = sf.SoundFile(str(tmp), "w", samplerate=sr, channels=channels, format=major, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError) as e:
            self._atomic.__exit__(type(e), e, None)
            raise OptionError(f"Cannot write {fmt} at {sr} Hz with {channels} channels: {e}") from None

    def write(self, block: np.ndarray) -> None:
        """Append samples shaped (channels, n)."""
        self._sf.write(np.ascontiguousarray(block.T))

    def commit(self) -> Path:
        self._sf.close()
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        self._sf.close()
        self._atomic.__exit__(RuntimeError, None, None)


def write(path: str | os.PathLike, audio: np.ndarray, sr: int, *, fmt: str | None = None) -> Path:
    """Write a whole signal ``(channels, samples)`` or ``(samples,)`` atomically."""
    path = Path(path)
    a, _ = as_channels_first(audio)
    w = StemWriter(path, int(sr), a.shape[0], fmt or path.suffix.lstrip(".") or "wav")
    try:
        w.write(a)
    except BaseException:
        w.abort()
        raise
    return w.commit()


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(..., samples)`` with librosa's default (soxr) resampler."""
    import librosa

    if orig_sr == target_sr:
        return np.asarray(audio, dtype=np.float32)
    return librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr)


ProgressFn = Callable[[int, int], None]
