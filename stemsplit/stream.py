"""Streaming separation: chunks in, stems out, with a fixed latency and the same answer as offline.

A :class:`StreamSeparator` analyses each STFT frame once, as its samples arrive, and feeds it to models that
keep the tail of every layer's input, so each frame's network work is done once; masks, the inverse STFT and
the residual are the offline separator's own (:class:`stemsplit.engine.StemMaker`). An output sample is final
once every STFT frame overlapping it
has its mask, and a frame's mask needs the frames up to 12 ahead of it (half the 25-frame context; more for
models with context layers) to be complete: so the stream lags the input by a fixed number of samples,
:attr:`StreamSeparator.latency` (8,191 samples = 186 ms at 44.1 kHz: 12 frames of look-ahead plus the STFT
window; 17,407 samples = 395 ms with ``gate_vocals``, whose detector has two context layers and looks 30 frames
ahead). Output sample ``k`` is the
offline stem's sample ``k - latency`` (zeros before), so the concatenated output equals ``separate()`` on the
whole signal, shifted by the latency.

:func:`run_pipeline` connects a source, a stream and a sink through three threads (reader -> model -> writer)
and bounded queues: a slow writer holds the reader back, and the first error in any stage stops every stage
and is raised once.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from . import audio as audio_io
from . import spectral
from .engine import StreamRunner
from .errors import InvalidAudioError, OptionError, OutputError
from .separate import Separator

__all__ = ["StreamSeparator", "run_pipeline", "StreamOutput", "file_chunks", "pcm_chunks", "AlignedWriter"]


class _Buffer:
    """The pushed samples still needed, addressed by absolute sample index; zeros outside the signal."""

    def __init__(self, channels: int):
        self.data = np.zeros((channels, 0), dtype=np.float32)
        self.start = 0
        self.frames = 0  # samples pushed so far (the signal's length once flushed)

    def append(self, chunk: np.ndarray) -> None:
        self.data = np.concatenate([self.data, chunk], axis=1)
        self.frames += chunk.shape[1]

    def drop_before(self, index: int) -> None:
        k = min(max(0, index - self.start), self.data.shape[1])
        if k:
            self.data = self.data[:, k:]
            self.start += k

    def read(self, start: int, stop: int) -> np.ndarray:
        if max(start, 0) < self.start:
            raise ValueError("samples already dropped from the stream buffer")
        return spectral.padded_slice(self.data, start - self.start, stop - self.start)


class StreamSeparator:
    """Separate audio that arrives in chunks.

    Each STFT frame is analysed once, as soon as its samples have arrived, and fed to the models, which keep the
    tail of every layer's input (:func:`stemsplit.model.stream_apply`), so each frame's network work is done
    once too. An output sample is final when every frame overlapping it has its masks.

    Parameters
    ----------
    targets : sequence of str
        As for :class:`~stemsplit.separate.Separator`.
    sr : int
        Sample rate of the stream.
    channels : int
        Channels of every chunk.
    residual, mask, targets_dir, checkpoint_dirs, gate_vocals
        As for :class:`~stemsplit.separate.Separator`.
    separator : Separator, optional
        An already built separator (its models are reused).

    Examples
    --------
    >>> s = StreamSeparator(("vocals",), sr=44100, channels=2)               # doctest: +SKIP
    >>> for chunk in chunks:                                                 # doctest: +SKIP
    ...     out = s.push(chunk)            # {"vocals": (2, n), "accompaniment": (2, n)}, n = len(chunk)
    >>> tail = s.flush()                   # the last ``s.latency`` samples
    """

    def __init__(self, targets: Sequence[str] = ("vocals",), *, sr: int, channels: int, residual: bool = True,
                 mask: str = "binary", targets_dir: Sequence[str | os.PathLike] | None = None,
                 checkpoint_dirs: Sequence[str | os.PathLike] = (), gate_vocals: bool = False,
                 separator: Separator | None = None):
        self.sr = audio_io.check_rate(sr)
        if not isinstance(channels, (int, np.integer)) or channels < 1:
            raise OptionError(f"channels must be a positive integer, got {channels!r}")
        self.channels = int(channels)
        if (separator.mask if separator is not None else mask) == "wiener":
            raise OptionError("The Wiener filter fits each source over a whole block of frames; a stream has no "
                              "such block. Stream with --mask binary or soft, or separate offline.")
        self.sep = separator or Separator(targets, residual=residual, mask=mask, targets_dir=targets_dir,
                                          checkpoint_dirs=checkpoint_dirs, gate_vocals=gate_vocals)
        self.grid = spectral.FRONTEND.grid(self.sr)
        self.stem_names = list(self.sep.stem_names)
        models = [t.model for t in self.sep.targets] + ([self.sep.gate.model] if self.sep.gate else [])
        self._runner = StreamRunner(models)
        self.latency = self._latency()
        self._buf = _Buffer(self.channels)
        hc = self._runner.half_context
        # frames -hc..-1 do not exist: zero features, as in offline separation
        self._warm = self._runner.warmup
        self._feed(np.zeros((hc, self.grid.frontend.n_bins), np.float32))
        self._n_stft = 0              # frames analysed: [0, n_stft)
        self._spec = np.zeros((self.channels, self.grid.n_bins, 0), np.complex64)
        self._spec_first = 0          # frame index of _spec[..., 0]
        self._scores: list[np.ndarray] = [np.zeros((0, m.config.outputs), np.float32) for m in models]
        self._scores_first = 0        # frame index of the first row of each _scores array
        self._done = 0                # stem samples final so far: [0, done)
        self._emitted = 0             # output samples returned so far (the first `latency` are zeros)
        self._ready: dict[str, list[np.ndarray]] = {n: [] for n in self.stem_names}
        self._flushed = False

    def check_stem(self, stem: str) -> str:
        """``stem`` if this stream produces it; else an :class:`~stemsplit.OptionError` naming those it does."""
        if stem not in self.stem_names:
            raise OptionError(f"--stem {stem!r} is not produced; choose one of {', '.join(self.stem_names)}.")
        return stem

    @property
    def latency_seconds(self) -> float:
        """The fixed delay between a sample going in and its stems coming out, in seconds."""
        return self.latency / self.sr

    def _final_until(self, available: int) -> int:
        """Stem samples that are final once ``available`` input samples have arrived."""
        g, hc = self.grid, self._runner.half_context
        complete = (available + g.pad - g.n_fft) // g.hop  # last frame whose samples have all arrived
        return max(0, (complete - hc + 1) * g.hop - g.pad)

    def _latency(self) -> int:
        """The largest lag of final output behind the input, over every phase of the hop."""
        base = 1000 * self.grid.hop
        return max(base + r - self._final_until(base + r) for r in range(self.grid.hop))

    @property
    def _n_scored(self) -> int:
        return self._scores_first + self._scores[0].shape[0]

    def _feed(self, rows: np.ndarray) -> None:
        """Feature rows to the models; keep the scores of real frames."""
        if rows.shape[0] == 0:
            return
        outs = self._runner(rows)
        skip = min(self._warm, rows.shape[0])
        self._warm -= skip
        if skip < rows.shape[0]:
            self._scores = [np.concatenate([s, o[skip:]]) for s, o in zip(self._scores, outs, strict=True)]

    def _analyse(self, upto: int) -> None:
        """STFT and model for frames ``[n_stft, upto)``."""
        count = upto - self._n_stft
        if count <= 0:
            return
        start, stop = spectral.frame_span(self.grid, self._n_stft, count)
        spec = spectral.stft(self._buf.read(start, stop), self.grid)
        self._spec = np.concatenate([self._spec, spec], axis=2)
        self._n_stft = upto
        self._feed(spectral.features(spec, self.grid))

    def _render(self, stop: int, total: int) -> None:
        """Make stem samples ``[done, stop)`` final from the scored frames (``total`` = frames that exist)."""
        if stop <= self._done:
            return
        lo, hi = spectral.frames_overlapping(self.grid, self._done, stop, total)
        rows = slice(lo - self._scores_first, hi - self._scores_first)
        own = self._spec[:, :, lo - self._spec_first:hi - self._spec_first]
        mix = self._buf.read(self._done, stop)
        stems = self.sep.maker.stems([s[rows] for s in self._scores], own, self.grid, lo, total, self._done, stop,
                                     mix)
        for name, block in zip(self.stem_names, stems, strict=True):
            self._ready[name].append(block)
        self._done = stop
        # forget what the next block cannot need
        keep, _ = spectral.frames_overlapping(self.grid, stop, stop + 1, max(total, hi + 1))
        self._spec = self._spec[:, :, keep - self._spec_first:]
        self._spec_first = keep
        self._scores = [s[keep - self._scores_first:] for s in self._scores]
        self._scores_first = keep
        self._buf.drop_before(min(stop, spectral.frame_span(self.grid, self._n_stft, 1)[0]))

    def _emit(self, upto: int) -> dict[str, np.ndarray]:
        """Output samples ``[emitted, upto)``: zeros for the first ``latency``, then the final stems."""
        n = upto - self._emitted
        if n <= 0:
            return {}
        zeros = max(0, min(upto, self.latency) - self._emitted)
        take = n - zeros
        out = {}
        for name in self.stem_names:
            parts = [np.zeros((self.channels, zeros), np.float32)]
            if take:
                ready = np.concatenate(self._ready[name], axis=1) if self._ready[name] else \
                    np.zeros((self.channels, 0), np.float32)
                if ready.shape[1] < take:
                    raise RuntimeError("stream output is not final yet")  # guarded by the latency
                parts.append(ready[:, :take])
                self._ready[name] = [ready[:, take:]]
            out[name] = np.concatenate(parts, axis=1)
        self._emitted = upto
        return out

    def _check(self, chunk: np.ndarray) -> np.ndarray:
        a = np.asarray(chunk)
        if a.ndim == 1 and self.channels == 1:
            a = a[None]
        if a.ndim != 2 or a.shape[0] != self.channels:
            raise InvalidAudioError(f"Chunks must be shaped ({self.channels}, samples), got {a.shape}.")
        if a.dtype.kind not in "fiu":
            raise InvalidAudioError(f"Chunks must be numeric, got dtype {a.dtype}.")
        a = audio_io.as_float32(a)  # (the shape is known: a stereo chunk of one sample is fine)
        audio_io.check_block(a, "The stream", self._buf.frames / self.sr)
        return a

    def push(self, chunk: np.ndarray) -> dict[str, np.ndarray]:
        """Feed samples; get back as many output samples per stem as were pushed (delayed by the latency).

        Parameters
        ----------
        chunk : np.ndarray
            ``(channels, n)`` (or ``(n,)`` for a mono stream), any ``n``.

        Returns
        -------
        dict of str to np.ndarray
            ``(channels, n)`` per stem (empty dict when ``n`` is 0).
        """
        if self._flushed:
            raise OptionError("This stream was flushed; start a new StreamSeparator.")
        a = self._check(chunk)
        if a.shape[1] == 0:
            return {}
        self._buf.append(a)
        g = self.grid
        complete = (self._buf.frames + g.pad - g.n_fft) // g.hop
        self._analyse(complete + 1)
        n_scored = self._n_scored
        self._render(min(self._final_until(self._buf.frames), max(0, n_scored * g.hop - g.pad)), n_scored)
        return self._emit(self._buf.frames)

    def flush(self) -> dict[str, np.ndarray]:
        """End of stream: the remaining ``latency`` samples of every stem."""
        if self._flushed:
            return {}
        self._flushed = True
        n = self._buf.frames
        if n == 0:
            return {}
        total = self.grid.n_frames(n)
        self._analyse(total)
        # frames past the end do not exist: zero features, as in offline separation
        self._feed(np.zeros((self._runner.half_context, self.grid.frontend.n_bins), np.float32))
        self._render(n, total)
        return self._emit(n + self.latency)


_END = object()


def run_pipeline(source: Iterable[np.ndarray], stream: StreamSeparator,
                 sink: Callable[[dict[str, np.ndarray]], None], *, queue_size: int = 4,
                 timeout: float = 0.1) -> None:
    """Run ``source`` -> ``stream`` -> ``sink`` in three threads joined by bounded queues.

    Parameters
    ----------
    source : iterable of np.ndarray
        Chunks ``(channels, n)`` (e.g. read from a file or a pipe); consumed by the reader thread.
    stream : StreamSeparator
        Its ``push`` and ``flush`` run in the model thread.
    sink : callable
        Called with each non-empty output dict, in order, in the writer (calling) thread.
    queue_size : int
        Chunks each queue holds; a slow sink blocks the model, which blocks the reader (back-pressure).

    Raises
    ------
    Exception
        The first error of any stage, once, after every thread has stopped.
    """
    q_in: queue.Queue = queue.Queue(maxsize=queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def fail(e: BaseException) -> None:
        with lock:
            if not errors:
                errors.append(e)
        stop.set()

    def put(q: queue.Queue, item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=timeout)
                return True
            except queue.Full:
                continue
        return False

    def get(q: queue.Queue):
        while not stop.is_set():
            try:
                return q.get(timeout=timeout)
            except queue.Empty:
                continue
        return _END

    def reader() -> None:
        try:
            for chunk in source:
                if not put(q_in, chunk):
                    return
            put(q_in, _END)
        except BaseException as e:
            fail(e)

    def model() -> None:
        try:
            while True:
                chunk = get(q_in)
                if chunk is _END:
                    break
                out = stream.push(chunk)
                if out and not put(q_out, out):
                    return
            if stop.is_set():
                return
            tail = stream.flush()
            if tail:
                put(q_out, tail)
            put(q_out, _END)
        except BaseException as e:
            fail(e)

    threads = [threading.Thread(target=reader, name="stemsplit-reader", daemon=True),
               threading.Thread(target=model, name="stemsplit-model", daemon=True)]
    for t in threads:
        t.start()
    try:
        while True:
            item = get(q_out)
            if item is _END:
                break
            sink(item)
    except BaseException as e:
        fail(e)
    finally:
        if errors:
            stop.set()
        threads[1].join()
        # the reader may sit in a blocking read (a pipe with nothing to say); it is a daemon and stops at its
        # next chunk, so it is given a moment but never waited on forever
        threads[0].join(timeout=1.0)
    if errors:
        raise errors[0]


def file_chunks(path: str | os.PathLike, chunk: int) -> tuple[Iterable[np.ndarray], int, int]:
    """``(chunks (channels, n), sr, channels)`` read progressively from a file soundfile can decode."""
    import soundfile as sf

    reader = audio_io.open_reader(path)
    sr, channels = reader.sr, reader.channels
    reader.close()

    def gen():
        try:
            with sf.SoundFile(str(path)) as fh:
                while True:
                    block = fh.read(chunk, dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        return
                    yield block.T
        except sf.LibsndfileError as e:
            raise audio_io.AudioFileError(f"Could not decode {path}: {e}") from None

    return gen(), sr, channels


def pcm_chunks(stream, chunk: int, channels: int) -> Iterable[np.ndarray]:
    """Chunks ``(channels, n)`` from raw interleaved float32 little-endian PCM (e.g. ``sys.stdin.buffer``)."""
    frame_bytes = 4 * channels
    pending = b""
    while True:
        data = stream.read(chunk * frame_bytes - len(pending))
        if not data:
            if pending:
                raise InvalidAudioError(f"The PCM stream ended inside a frame ({len(pending)} stray bytes).")
            return
        pending += data
        whole = len(pending) // frame_bytes * frame_bytes
        if whole:
            yield np.frombuffer(pending[:whole], dtype="<f4").reshape(-1, channels).T.copy()
            pending = pending[whole:]


class AlignedWriter:
    """Writes one stem of a stream's output without its leading ``latency`` samples, so the result lines up
    with the input sample for sample (and has its length)."""

    def __init__(self, write: Callable[[np.ndarray], None], stem: str, latency: int):
        self.write, self.stem, self.skip = write, stem, latency

    def __call__(self, out: dict[str, np.ndarray]) -> None:
        block = out[self.stem]
        if self.skip:
            cut = min(self.skip, block.shape[1])
            block, self.skip = block[:, cut:], self.skip - cut
        if block.shape[1]:
            self.write(block)


class StreamOutput:
    """Where a stream's one stem goes: raw float32 little-endian PCM to a binary pipe (``"-"``, e.g. standard
    output) or to a file, or a wav/flac file. The destination and encoding are checked when this is built,
    before any model loads; files are written to a temporary name and renamed when the stream has ended.

    Parameters
    ----------
    output : str
        ``"-"`` for ``pipe``, else a file path.
    fmt : {"f32le", "wav", "flac"}, optional
        Default: ``f32le`` for ``"-"``, else ``wav``.
    sample_format, clip
        As :class:`~stemsplit.audio.Encoding` (wav and flac only).
    sr, channels : int
        Of the stream.
    pipe : binary file, optional
        What ``"-"`` writes to (default: standard output).
    """

    FORMATS = ("f32le", "wav", "flac")

    def __init__(self, output: str, *, fmt: str | None = None, sample_format: str | None = None,
                 clip: str = "clamp", sr: int, channels: int, pipe=None):
        self.output = str(output)
        self.fmt = fmt or ("f32le" if self.output == "-" else "wav")
        if self.fmt not in self.FORMATS:
            raise OptionError(f"Unknown stream format {self.fmt!r}; choose one of {', '.join(self.FORMATS)}.")
        if self.output == "-" and self.fmt != "f32le":
            raise OptionError("Standard output takes raw PCM only: use --format f32le.")
        if self.fmt == "f32le" and (sample_format or clip != "clamp"):
            raise OptionError("--int24, --float32 and --clip apply to wav and flac output; raw PCM is float32 as is.")
        self.encoding = None if self.fmt == "f32le" else audio_io.Encoding(self.fmt, sample_format, clip)
        if self.output != "-":
            from pathlib import Path

            audio_io.check_output_dir(Path(self.output).parent)
            if Path(self.output).is_dir():
                raise OutputError(f"Cannot write {self.output}: it is a folder; give a file name.")
        self.sr, self.channels = sr, channels
        self.pipe = pipe
        self.clipped, self.peak = 0, 0.0

    def run(self, source: Iterable[np.ndarray], stream: StreamSeparator, stem: str) -> None:
        """Stream ``source`` through ``stream`` and write ``stem``, lined up with the input sample for sample."""
        stream.check_stem(stem)
        if self.output == "-":
            import sys

            out = self.pipe or sys.stdout.buffer

            def write(block):
                out.write(np.ascontiguousarray(block.T, dtype="<f4").tobytes())
                out.flush()

            run_pipeline(source, stream, AlignedWriter(write, stem, stream.latency))
            return
        if self.encoding is None:
            with audio_io.atomic_path(self.output, ".raw") as tmp, open(tmp, "wb") as fh:
                run_pipeline(source, stream, AlignedWriter(
                    lambda b: fh.write(np.ascontiguousarray(b.T, dtype="<f4").tobytes()), stem, stream.latency))
            return
        from pathlib import Path

        writer = audio_io.StemWriter(Path(self.output), self.sr, self.channels, self.encoding)
        try:
            run_pipeline(source, stream, AlignedWriter(writer.write, stem, stream.latency))
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        if writer.clipped and self.encoding.clip == "clamp":
            self.clipped, self.peak = writer.clipped, writer.peak
