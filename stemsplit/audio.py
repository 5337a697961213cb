"""Audio in and out: decoding files (whole or block by block), validating samples, writing stems atomically.

Audio in memory is float32 shaped ``(channels, samples)`` with its sample rate passed beside it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .checkpoint import atomic_path
from .errors import AudioFileError, InvalidAudioError, OptionError, OutputError
from .spectral import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

__all__ = ["atomic_path", "FORMATS", "SAMPLE_FORMATS", "CLIP_MODES", "Encoding", "as_float32", "as_channels_first",
           "validate", "is_silent", "load", "open_reader", "AudioReader", "ArrayReader", "StemWriter", "write",
           "resample", "check_output_dir"]

#: output format -> (soundfile container, subtype for lossy formats; PCM formats take theirs from the Encoding)
FORMATS: dict[str, tuple[str, str | None]] = {
    "wav": ("WAV", None),
    "flac": ("FLAC", None),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}

#: sample format -> (soundfile subtype, integer full scale or None for float)
SAMPLE_FORMATS: dict[str, tuple[str, int | None]] = {
    "int16": ("PCM_16", 2 ** 15),
    "int24": ("PCM_24", 2 ** 23),
    "float32": ("FLOAT", None),
}

#: what happens to samples beyond full scale: clamped to it, or kept (float32 only)
CLIP_MODES = ("clamp", "none")

_LOSSLESS_SAMPLE_FORMATS = {"wav": ("int16", "int24", "float32"), "flac": ("int16", "int24")}


@dataclass(frozen=True)
class Encoding:
    """How stems are stored in files.

    Parameters
    ----------
    format : {"wav", "flac", "ogg", "mp3"}
        The container.
    sample_format : {"int16", "int24", "float32"} or None
        wav and flac only (flac has no float32); None means 16-bit PCM for wav and flac. Integer samples are
        rounded to the nearest step, without dither.
    clip : {"clamp", "none"}
        Samples beyond full scale (a stem of a loud master can exceed it where the other stems cancel it in the
        mix) are clamped to full scale, or kept as they are (``"none"``: float32 WAV only).

    Examples
    --------
    >>> Encoding("wav")                                          # 16-bit PCM, clamped
    Encoding(format='wav', sample_format='int16', clip='clamp')
    >>> Encoding("wav", "float32", clip="none").subtype
    'FLOAT'
    """

    format: str = "wav"
    sample_format: str | None = None
    clip: str = "clamp"

    def __post_init__(self) -> None:
        fmt = check_format(self.format)
        object.__setattr__(self, "format", fmt)
        allowed = _LOSSLESS_SAMPLE_FORMATS.get(fmt, ())
        sample = self.sample_format
        if sample is None:
            sample = "int16" if allowed else None
        elif sample not in SAMPLE_FORMATS:
            raise OptionError(f"Unknown sample format {sample!r}; choose one of {', '.join(SAMPLE_FORMATS)}.")
        elif sample not in allowed:
            raise OptionError(f"{fmt} cannot store {sample} samples"
                              + (f"; choose {' or '.join(allowed)}." if allowed else
                                 " (a lossy format has no sample format): choose wav or flac."))
        object.__setattr__(self, "sample_format", sample)
        if self.clip not in CLIP_MODES:
            raise OptionError(f"Unknown clip mode {self.clip!r}; choose one of {', '.join(CLIP_MODES)}.")
        if self.clip == "none" and sample != "float32":
            raise OptionError("Keeping samples beyond full scale (clip 'none') needs float32 WAV: integer and "
                              "lossy formats cannot store them.")

    @classmethod
    def exact(cls, fmt: str) -> Encoding:
        """The most faithful encoding of ``fmt``: float32 WAV unclamped, 24-bit FLAC (training data, mixes)."""
        fmt = check_format(fmt)
        if fmt == "wav":
            return cls(fmt, "float32", clip="none")
        return cls(fmt, "int24" if fmt == "flac" else None)

    @property
    def subtype(self) -> str | None:
        """The soundfile subtype written."""
        return SAMPLE_FORMATS[self.sample_format][0] if self.sample_format else FORMATS[self.format][1]

    def quantise(self, block: np.ndarray) -> np.ndarray:
        """Samples ``(channels, n)`` float32 as written: clamped per :attr:`clip`, then rounded to the nearest
        integer step for PCM (an int16 array, or int24 steps held in the top bits of an int32 array)."""
        if self.clip == "clamp":
            block = np.clip(block, -1.0, 1.0)
        scale = SAMPLE_FORMATS[self.sample_format][1] if self.sample_format else None
        if scale is None:
            return np.asarray(block, dtype=np.float32)
        q = np.clip(np.rint(block.astype(np.float64) * scale), -scale, scale - 1)
        if self.sample_format == "int16":
            return q.astype(np.int16)
        return q.astype(np.int32) << 8  # soundfile's int32 full scale is 2**31: 24-bit steps sit in the top bits


def as_float32(audio: np.ndarray) -> np.ndarray:
    """Samples as float32 (integers scaled to full scale), any shape."""
    a = np.asarray(audio)
    if a.dtype.kind in "iu":
        return (a.astype(np.float32) / float(np.iinfo(a.dtype).max)).astype(np.float32, copy=False)
    if a.dtype.kind != "f":
        raise InvalidAudioError(f"Audio must be a numeric array, got dtype {a.dtype}.")
    return a.astype(np.float32, copy=False)


def as_channels_first(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``(audio as (channels, samples) float32, whether the input was 1-D)``."""
    a = as_float32(audio)
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
        Empty, non-finite, wrongly shaped, or an unsupported rate. (Silence is valid: see :func:`is_silent`.)
    """
    a, was_1d = as_channels_first(audio)
    sr = check_rate(sr)
    if a.shape[-1] == 0 or a.shape[0] == 0:
        raise InvalidAudioError(f"{name} is empty (zero samples).")
    check_block(a, name)
    return a, sr, was_1d


def is_silent(audio: np.ndarray) -> bool:
    """True when every sample is zero (digital silence)."""
    return not np.any(audio)


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
            except (sf.LibsndfileError, RuntimeError):
                raise AudioFileError(f"Could not decode {self.path} past {buf_end / self.sr:.1f} s: the file is "
                                     "damaged or cut short.") from None
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
    except Exception:  # audioread raises many unrelated types, none of them news to a musician
        hint = "" if shutil.which("ffmpeg") else (
            " (ffmpeg is not installed: apt-get install ffmpeg, or bash scripts/install-system-deps.sh in a "
            "stemsplit checkout)")
        raise AudioFileError(f"Could not decode {p}: not an audio file, or a format ffmpeg cannot read{hint}.") \
            from None
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


def check_output_dir(folder: str | os.PathLike) -> Path:
    """Make sure files can be created in ``folder`` (or in the folders that would be made for it), before any
    work starts; creates nothing.

    Raises
    ------
    OutputError
        A file stands where a folder is needed, or the nearest existing folder cannot be written.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            raise OutputError(f"Cannot write into {folder}: {probe} is a broken link.")
        probe = probe.parent
    if not probe.is_dir():
        where = "it is" if probe == folder else f"{probe} is"
        raise OutputError(f"Cannot write into {folder}: {where} a file, not a folder.")
    try:
        probe_writable(probe)
    except OSError as e:
        raise OutputError(f"Cannot write into {folder}: {_os_reason(e)}.") from None
    return folder


def probe_writable(folder: Path) -> None:
    """Create and remove a file in an existing ``folder``; raises ``OSError`` when that fails (``os.access`` says
    yes to root on read-only mounts and /proc: only creating a file tells)."""
    fd, tmp = tempfile.mkstemp(prefix=".stemsplit-probe-", dir=folder)
    os.close(fd)
    os.unlink(tmp)


def _os_reason(e: OSError) -> str:
    """An OS error as a musician reads it."""
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied" if e.errno != errno.EROFS else "the disk is read-only"
    return (e.strerror or str(e)).rstrip(".").lower()


class StemWriter:
    """Writes one stem block by block into a temporary file; :meth:`commit` renames it into place.

    Parameters
    ----------
    path : Path
        The final file.
    sr, channels : int
    encoding : Encoding or str
        How samples are stored; a format name means :meth:`Encoding.exact` (float32 WAV, 24-bit FLAC).

    Attributes
    ----------
    peak : float
        Largest absolute sample handed to :meth:`write` (before clamping).
    clipped : int
        Samples beyond full scale so far (clamped unless ``encoding.clip`` is ``"none"``).
    """

    def __init__(self, path: Path, sr: int, channels: int, encoding: Encoding | str):
        self.path = path
        enc = encoding if isinstance(encoding, Encoding) else Encoding.exact(encoding)
        self.encoding = enc
        self.peak, self.clipped = 0.0, 0
        major = FORMATS[enc.format][0]
        if enc.format == "mp3" and sr not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000):
            raise OptionError(f"mp3 cannot store {sr} Hz audio; choose wav or flac.")
        self._atomic = atomic_path(path, "." + enc.format)
        try:
            tmp = self._atomic.__enter__()
        except OSError as e:
            raise OutputError(f"Cannot write {path}: {_os_reason(e)}.") from None
        try:
            self._sf = sf.SoundFile(str(tmp), "w", samplerate=sr, channels=channels, format=major,
                                    subtype=enc.subtype)
        except (sf.LibsndfileError, RuntimeError) as e:
            self._atomic.__exit__(type(e), e, None)
            raise OptionError(f"Cannot write {enc.format} at {sr} Hz with {channels} channels: {e}") from None

    def write(self, block: np.ndarray) -> None:
        """Append samples shaped (channels, n)."""
        if block.size:
            self.peak = max(self.peak, float(np.abs(block).max()))
            self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))
        try:
            self._sf.write(np.ascontiguousarray(self.encoding.quantise(block).T))
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise OutputError(f"Could not write {self.path}: {_write_reason(e, self._sf.name)}.") from None

    def commit(self) -> Path:
        """Close the file and rename it into place; returns the final path."""
        try:
            self._sf.close()
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            self._atomic.__exit__(type(e), e, None)
            raise OutputError(f"Could not write {self.path}: {_write_reason(e, self._sf.name)}.") from None
        try:
            self._atomic.__exit__(None, None, None)
        except OSError as e:
            self._atomic.__exit__(type(e), e, None)
            why = "a folder of that name is in the way" if self.path.is_dir() else _os_reason(e)
            raise OutputError(f"Could not write {self.path}: {why}.") from None
        return self.path

    def abort(self) -> None:
        """Close and remove the temporary file."""
        try:
            self._sf.close()
        except (sf.LibsndfileError, RuntimeError, OSError):
            pass  # a full disk can fail the final flush too; the file goes anyway
        self._atomic.__exit__(RuntimeError, None, None)


def _write_reason(e: Exception, name: str) -> str:
    """Why a write failed: the OS error, or the free space libsndfile does not name."""
    if isinstance(e, OSError):
        return _os_reason(e)
    try:
        if shutil.disk_usage(os.path.dirname(name) or ".").free < 1 << 20:
            return "the disk is full"
    except OSError:
        pass
    return "the disk refused the data (full, removed or read-only?)"


def write(path: str | os.PathLike, audio: np.ndarray, sr: int, *, fmt: str | None = None,
          encoding: Encoding | None = None) -> Path:
    """Write a whole signal ``(channels, samples)`` or ``(samples,)`` atomically.

    By default in the format's most faithful encoding (:meth:`Encoding.exact`: float32 WAV keeps training data
    exact); pass ``encoding`` to choose.
    """
    path = Path(path)
    a, _ = as_channels_first(audio)
    w = StemWriter(path, int(sr), a.shape[0], encoding or (fmt or path.suffix.lstrip(".") or "wav"))
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
