"""Jobs of the web server: a bounded queue, worker threads that run the library's :class:`Separator`, the files
each job produced, and their expiry.

A job's folder (``<root>/<id>/``) holds the upload (``input.<ext>``), the stems ``separate_file`` writes
(``out/input/<stem>.wav``), the decoded mixture (``mixture.wav``) and, once asked for, FLAC copies and the zip.
Files are only ever found through the job's own dict of what it produced; no path is built from request text.
"""

from __future__ import annotations

import logging
import queue
import secrets
import shutil
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import audio as audio_io
from ..engine import find_targets
from ..errors import MissingCheckpointError, StemsplitError
from ..masks import check_mode
from ..separate import Separator
from ..targets import discover, parse_target_list, sanitize_name
from .config import ServerConfig

__all__ = ["Job", "JobManager", "QueueFullError", "JobCancelled", "available_targets", "parse_job_options",
           "QUEUED", "RUNNING", "DONE", "FAILED"]

log = logging.getLogger("stemsplit.web")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
#: share of a job's progress bar each phase ends at: models loaded, stems separated and written, mixture written
_LOADED, _SEPARATED = 0.05, 0.9
_BLOCK = 1 << 18


class QueueFullError(StemsplitError):
    """Every place in the queue is taken; the client should try again later."""


class JobCancelled(Exception):
    """Raised inside a running separation (from its progress callback) when its job was deleted."""


def available_targets(config: ServerConfig) -> list[str]:
    """Names of the mask targets that have a checkpoint, sorted.

    Raises
    ------
    TargetError
        A targets folder given in ``config`` does not exist.
    """
    return sorted(name for name, spec in discover(config.targets_dir or None).items()
                  if spec.task == "mask" and spec.find_checkpoint(config.checkpoint_dirs) is not None)


def parse_job_options(fields: dict[str, str], config: ServerConfig) -> tuple[tuple[str, ...], str]:
    """The targets and mask mode of a job from its form fields (defaults: vocals, binary), checked.

    Raises
    ------
    OptionError, UnknownTargetError, MissingCheckpointError
        With the message the library gives for the same mistake.
    """
    names = parse_target_list(fields["targets"]) if "targets" in fields else ["vocals"]
    mask = fields.get("mask", "binary").strip() or "binary"
    check_mode(mask)
    for spec in find_targets(names, task="mask", targets_dir=config.targets_dir or None):
        if spec.find_checkpoint(config.checkpoint_dirs) is None:
            raise MissingCheckpointError(f"Target {spec.name!r} has no trained checkpoint on this server.")
    return tuple(names), mask


@dataclass(eq=False)
class Job:
    """One uploaded song and what became of it.

    Attributes
    ----------
    id : str
        Random, URL-safe (``secrets.token_urlsafe``).
    folder : Path
        The job's own folder under the server's temporary root.
    input : Path
        The uploaded file.
    filename : str
        The client's name for it (messages and download names only).
    targets : tuple of str
    mask : str
    state : str
        ``queued``, ``running``, ``done`` or ``failed``.
    progress : float
        0 to 1.
    stems : dict of str to Path
        Stem name to its WAV, filled when the job is done (the only way files are found).
    mixture : Path or None
        The decoded input as a WAV at the same rate and length as the stems.
    error : str or None
        Why the job failed, in the words the command line would use.
    """

    id: str
    folder: Path
    input: Path
    filename: str
    targets: tuple[str, ...]
    mask: str
    state: str = QUEUED
    progress: float = 0.0
    stems: dict[str, Path] | None = None
    mixture: Path | None = None
    error: str | None = None
    finished_at: float | None = None

    def __post_init__(self) -> None:
        self.stems = dict(self.stems or {})
        self.cancel = threading.Event()
        self.lock = threading.Lock()  # guards the lazily made FLAC copies and zip

    @property
    def title(self) -> str:
        """The song's name for download file names: the client's name without its extension, made safe."""
        return sanitize_name(Path(self.filename).stem)

    def status(self) -> dict:
        """The job as the API reports it."""
        return {"state": self.state, "progress": round(float(self.progress), 4),
                "stems": list(self.stems) if self.state == DONE else [], "error": self.error}

    def stem_file(self, stem: str, fmt: str) -> Path | None:
        """The file of a produced stem in ``wav`` or ``flac`` (made on first request), or None if unknown."""
        wav = self.stems.get(stem)
        if wav is None or fmt not in ("wav", "flac"):
            return None
        if fmt == "wav":
            return wav
        flac = wav.with_suffix(".flac")
        with self.lock:
            if not flac.exists():
                _transcode(wav, flac, "flac")
        return flac

    def zip_file(self) -> Path:
        """All stems as WAVs in one zip (made on first request, stored uncompressed: float WAV barely shrinks)."""
        dest = self.folder / "stems.zip"
        with self.lock:
            if not dest.exists():
                tmp = dest.with_suffix(".zip.part")
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                    for name, path in self.stems.items():
                        zf.write(path, f"{self.title}/{sanitize_name(name)}.wav")
                tmp.replace(dest)
        return dest

    def public_message(self, message: str) -> str:
        """A library message with the server's temporary path replaced by the client's file name."""
        return message.replace(str(self.input), self.filename)


class JobManager:
    """Accepts jobs into a bounded queue and runs them on worker threads, one separation per worker.

    Separators are cached per ``(targets, mask)``, so models load (and compile) once per process.

    Parameters
    ----------
    config : ServerConfig
    root : Path
        An existing folder that holds every job's files; removed by :meth:`close`.
    """

    def __init__(self, config: ServerConfig, root: Path):
        self.config = config
        self.root = root
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._reserved = 0  # places held by uploads in flight and jobs waiting
        self.max_waiting = 0  # high-water mark of ``_reserved``, for tests and logs
        self._separators: dict[tuple[tuple[str, ...], str], Separator] = {}
        self._separator_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"stemsplit-worker-{i}", daemon=True)
                         for i in range(config.workers)]
        self._threads.append(threading.Thread(target=self._sweep, name="stemsplit-expiry", daemon=True))
        for t in self._threads:
            t.start()

    # -- admission ------------------------------------------------------------------------------------------
    def reserve(self) -> None:
        """Hold a place in the queue for an upload about to stream in; :class:`QueueFullError` if none is free."""
        with self._lock:
            if self._reserved >= self.config.queue:
                raise QueueFullError(f"The server is busy: {self.config.queue} songs are already waiting. "
                                     "Try again in a minute.")
            self._reserved += 1
            self.max_waiting = max(self.max_waiting, self._reserved)

    def release(self) -> None:
        """Give back a place reserved by :meth:`reserve` (an upload that was refused, a job that started)."""
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    def new_folder(self) -> tuple[str, Path]:
        """A fresh random job id and its (created) folder."""
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def submit(self, job: Job) -> None:
        """Queue a job whose place was reserved."""
        with self._lock:
            self.jobs[job.id] = job
        self._queue.put(job)

    # -- lookup and removal ---------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None."""
        with self._lock:
            return self.jobs.get(job_id)

    def delete(self, job_id: str) -> bool:
        """Forget a job and remove its files (a running one stops at its next block); False if unknown."""
        with self._lock:
            job = self.jobs.pop(job_id, None)
        if job is None:
            return False
        job.cancel.set()
        if job.state != RUNNING:  # a running job's worker removes the folder when it stops
            shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def expire(self, now: float | None = None) -> list[str]:
        """Delete the finished jobs older than ``keep_minutes``; returns their ids."""
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [j.id for j in self.jobs.values()
                   if j.finished_at is not None and now - j.finished_at > self.config.keep_seconds]
        for job_id in old:
            self.delete(job_id)
        return old

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers (a running separation stops at its next block) and remove every job's files."""
        self._stop.set()
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            job.cancel.set()
        for _ in range(self.config.workers):
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        shutil.rmtree(self.root, ignore_errors=True)

    # -- work -----------------------------------------------------------------------------------------------
    def separator(self, targets: Sequence[str], mask: str) -> Separator:
        """The cached :class:`Separator` for these targets and mask mode (loaded on first use)."""
        key = (tuple(targets), mask)
        with self._separator_lock:
            sep = self._separators.get(key)
            if sep is None:
                sep = Separator(key[0], residual=True, mask=mask, targets_dir=self.config.targets_dir or None,
                                checkpoint_dirs=self.config.checkpoint_dirs)
                self._separators[key] = sep
            return sep

    def _work(self) -> None:
        """A worker: take jobs off the queue until :meth:`close`."""
        while True:
            job = self._queue.get()
            if job is None or self._stop.is_set():
                return
            self.release()
            if job.cancel.is_set():
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        """Separate one job, recording its outcome on it; never raises."""
        job.state = RUNNING
        try:
            sep = self.separator(job.targets, job.mask)
            job.progress = _LOADED

            def progress(done: int, total: int) -> None:
                if job.cancel.is_set():
                    raise JobCancelled
                job.progress = _LOADED + (_SEPARATED - _LOADED) * done / max(total, 1)

            # float WAV without clamping: the stems the page plays add up to the mixture exactly
            stems = sep.separate_file(job.input, job.folder / "out", fmt="wav", sample_format="float32",
                                      clip="none", progress=progress)
            job.mixture = _write_mixture(job, job.folder / "mixture.wav")
            job.stems = dict(stems)
            job.progress = 1.0
            job.state = DONE
        except JobCancelled:
            job.state = FAILED
            job.error = "The job was deleted."
        except StemsplitError as e:
            job.state, job.error = FAILED, job.public_message(str(e))
        except Exception as e:  # a bug or a full disk: this job fails, the server goes on
            log.exception("job %s failed", job.id)
            job.state, job.error = FAILED, f"Separation failed unexpectedly ({type(e).__name__}: {e})."
        finally:
            job.finished_at = time.monotonic()
            if job.cancel.is_set():
                shutil.rmtree(job.folder, ignore_errors=True)

    def _sweep(self) -> None:
        """Expire old jobs every so often until :meth:`close`."""
        interval = min(60.0, max(0.5, self.config.keep_seconds / 4))
        while not self._stop.wait(interval):
            try:
                self.expire()
            except Exception:  # pragma: no cover - keep sweeping whatever one pass met
                log.exception("expiring jobs failed")


def _write_mixture(job: Job, dest: Path) -> Path:
    """Decode the upload block by block into a float WAV beside the stems (the page plays it in step)."""
    reader = audio_io.open_reader(job.input)
    try:
        writer = audio_io.StemWriter(dest, reader.sr, reader.channels, "wav")
        try:
            for start in range(0, reader.frames, _BLOCK):
                if job.cancel.is_set():
                    raise JobCancelled
                writer.write(reader.read(start, min(reader.frames, start + _BLOCK)))
                job.progress = _SEPARATED + (0.99 - _SEPARATED) * min(1.0, (start + _BLOCK) / reader.frames)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()
    finally:
        reader.close()


def _transcode(src: Path, dest: Path, fmt: str) -> None:
    """Re-encode an audio file block by block (atomically: a half-written copy is never served)."""
    with sf.SoundFile(str(src)) as f:
        writer = audio_io.StemWriter(dest, f.samplerate, f.channels, fmt)
        try:
            while True:
                block = f.read(_BLOCK, dtype="float32", always_2d=True)
                if not len(block):
                    break
                writer.write(np.clip(block.T, -1.0, 1.0))  # FLAC stores integers: clip rather than wrap
        except BaseException:
            writer.abort()
            raise
        writer.commit()
