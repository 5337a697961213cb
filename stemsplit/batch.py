"""Many files on a Dask cluster: :func:`separate_many` and the ``stemsplit batch`` command behind it.

The client (this process) finds the inputs, checks every option before any heavy work, skips inputs whose
outputs are already complete, and hands one task per file to Dask workers: single-threaded worker processes of a
``LocalCluster`` started here, or any existing Dask cluster reached by its scheduler address. Each worker process
loads the targets once (a per-process cache keyed by the settings) and runs :meth:`Separator.separate_file`, so
the stems are exactly those of ``stemsplit separate``.

No partial output: a task writes into a private staging folder under ``OUTDIR/.stemsplit-partial/`` and moves
the finished stem folder into place with one rename; a worker that dies mid-file (killed, out of memory) leaves
only staging files, which the client removes when the run ends, and Dask runs the file again on another worker.

The manifest (``OUTDIR/manifest.jsonl`` by default) holds one JSON record per input::

    {"input": "/abs/song.flac", "status": "done" | "failed" | "skipped",
     "output": "/abs/OUTDIR/song", "stems": {"vocals": "/abs/OUTDIR/song/vocals.wav", ...},
     "audio_seconds": 212.4, "wall_seconds": 7.9, "cpu_seconds": 7.6, "worker": "tcp://127.0.0.1:40117",
     "energy_share": {"vocals": 0.21, ...}, "worker_peak_mb": 412.0, "warnings": [], "error": null,
     "input_stat": [bytes, mtime_ns],
     "settings": {"targets": [...], "mask": "binary", "residual": true, "gate_vocals": false,
                  "format": "wav", "fingerprint": "..."}, "finished": "2025-01-01T12:00:00.000+00:00"}

``energy_share`` is each stem's energy over the sum of the stems' energies; ``worker_peak_mb`` the worker
process's peak resident memory so far (for sizing workers); ``cpu_seconds`` the worker process's CPU time
for the file; ``wall_seconds`` of a worker's first file includes loading the targets and compiling the models. A ``skipped`` record keeps the figures of the run that wrote the
outputs (``wall_seconds`` is 0: no work this time). ``error`` is the one-line message ``stemsplit separate``
would print for that file; ``warnings`` the messages of stemsplit's warnings for it (say, clipping). Records
are appended as files finish (a stopped run keeps what it did) and the file is rewritten with one record per
input when the run ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf
from distributed import WorkerPlugin

from . import audio as audio_io
from .checkpoint import atomic_path
from .errors import AudioFileError, CheckpointError, OptionError, StemsplitError
from .targets import sanitize_name

__all__ = ["separate_many", "collect_inputs", "BatchInput", "BatchSettings", "read_manifest", "manifest_path",
           "AUDIO_EXTENSIONS", "LIST_EXTENSIONS", "WORKER_ENV", "STAGING_DIR"]

#: file name endings searched for in folders (any other file given by name is still tried)
AUDIO_EXTENSIONS = frozenset({"wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "m4a", "mp4", "aac", "aif",
                              "aiff", "aifc", "wma", "webm", "caf", "w64", "au", "snd", "wv", "mka"})
#: an INPUT with one of these endings is a list of paths, one per line (``#`` starts a comment, as in .m3u)
LIST_EXTENSIONS = frozenset({"txt", "lst", "list", "m3u", "m3u8"})
#: the hidden folder under OUTDIR where unfinished outputs live until they are complete
STAGING_DIR = ".stemsplit-partial"
#: environment of the local cluster's worker processes, set before they start: one thread for the numeric
#: libraries' own pools. XLA keeps its thread pool (as wide as the cores the process may use): a worker's models
#: use idle cores between the other workers' blocks. Holding XLA to one thread (``PJRT_NPROC=1``; the flag
#: ``--xla_cpu_multi_thread_eigen=false`` no longer does it) made two workers on two cores no faster
#: (docs/batch.md).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "2"}

Record = dict
ProgressCallback = Callable[[Record], None]


# -- inputs ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchInput:
    """One file to separate.

    Attributes
    ----------
    path : Path
        Absolute path of the audio file.
    subdir : str
        Folder under OUTDIR its stem folder goes in: the file's folder relative to the INPUT folder it was found
        in (so ``Artist/Album/01.flac`` and ``Other/Album/01.flac`` do not collide), ``""`` for files named
        directly or in a list.
    """

    path: Path
    subdir: str = ""

    def dest(self, outdir: Path) -> Path:
        """The folder its stems go to: ``outdir/subdir/<sanitised name>`` (as ``stemsplit separate``)."""
        return outdir / self.subdir / sanitize_name(self.path.stem)


def _suffix(p: Path) -> str:
    return p.suffix.lower().lstrip(".")


def _search(folder: Path, exclude: Sequence[Path]) -> Iterator[BatchInput]:
    """Audio files under ``folder``, recursively, sorted; hidden files and folders and ``exclude`` skipped."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (here / d).resolve() not in exclude)
        rel = here.relative_to(folder)
        for name in sorted(files):
            if not name.startswith(".") and _suffix(Path(name)) in AUDIO_EXTENSIONS:
                yield BatchInput((here / name).absolute(), "" if rel == Path(".") else str(rel))


def _read_list(path: Path) -> list[Path]:
    """Paths listed one per line; relative ones are relative to the list's folder."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AudioFileError(f"Could not read the list of inputs {path}: {e}") from None
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line).expanduser()
            out.append(p if p.is_absolute() else path.parent / p)
    return out


def collect_inputs(inputs: Iterable[str | os.PathLike], *, exclude: Iterable[str | os.PathLike] = ()
                   ) -> list[BatchInput]:
    """Expand files, folders and lists of paths into the audio files to separate.

    Parameters
    ----------
    inputs : iterable of path-like
        Audio files (taken as given, whatever their ending), folders (searched recursively for files ending in
        one of :data:`AUDIO_EXTENSIONS`, hidden ones skipped) and text files ending in one of
        :data:`LIST_EXTENSIONS` holding one file or folder per line (relative to the list's folder; blank lines
        and lines starting with ``#`` are ignored).
    exclude : iterable of path-like
        Folders never searched (the output folder, when it lies inside an input folder).

    Returns
    -------
    list of BatchInput
        In the order given, each folder's files sorted; a file reached twice is kept once.

    Raises
    ------
    AudioFileError
        A path that does not exist, an unreadable list, or no audio file at all.
    OptionError
        An input folder that is one of ``exclude``.

    Examples
    --------
    >>> [i.path.name for i in collect_inputs(["album/", "extra.mp3"])]     # doctest: +SKIP
    ['01.flac', '02.flac', 'extra.mp3']
    """
    skip = [Path(e).resolve() for e in exclude]
    found: dict[Path, BatchInput] = {}

    def add(p: Path, listed_in: Path | None) -> None:
        if not p.exists():
            where = f" (listed in {listed_in})" if listed_in else ""
            raise AudioFileError(f"No such file or folder: {p}{where}")
        if p.is_dir():
            if p.resolve() in skip:
                raise OptionError(f"The output folder {p} is also an input folder; choose another output folder "
                                  "(stems written there would be found as inputs next time).")
            items: Iterable[BatchInput] = _search(p.absolute(), skip)
        elif listed_in is None and _suffix(p) in LIST_EXTENSIONS:
            for q in _read_list(p):
                add(q, p)
            return
        else:
            items = [BatchInput(p.absolute())]
        for item in items:
            found.setdefault(item.path.resolve(), item)

    given = [Path(i).expanduser() for i in inputs]
    for p in given:
        add(p, None)
    if not found:
        raise AudioFileError(f"No audio files found in {', '.join(map(str, given)) or 'the inputs'} "
                             f"(searched for {', '.join(sorted(AUDIO_EXTENSIONS))}).")
    return list(found.values())


# -- settings -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSettings:
    """How every file of a run is separated (sent to the workers; also the key of their cache).

    ``fingerprint`` identifies the models (checkpoint hashes, thresholds, priorities) with the other settings;
    the client fills it in, a worker whose targets differ refuses to run, and a rerun skips only outputs made
    with the same fingerprint.
    """

    targets: tuple[str, ...]
    mask: str = "binary"
    residual: bool = True
    gate_vocals: bool = False
    fmt: str = "wav"
    targets_dir: tuple[str, ...] = ()
    checkpoint_dirs: tuple[str, ...] = ()
    fingerprint: str = ""

    def separator(self):
        """A :class:`Separator` with these settings (loads the checkpoints)."""
        from .separate import Separator

        return Separator(list(self.targets), residual=self.residual, mask=self.mask,
                         targets_dir=list(self.targets_dir) or None, checkpoint_dirs=list(self.checkpoint_dirs),
                         gate_vocals=self.gate_vocals)

    def describe(self) -> dict:
        """The settings as the manifest records them."""
        return {"targets": list(self.targets), "mask": self.mask, "residual": self.residual,
                "gate_vocals": self.gate_vocals, "format": self.fmt, "fingerprint": self.fingerprint}


def _fingerprint(sep, fmt: str) -> str:
    """A short hash of what decides the output: models, thresholds, priorities, mask mode, stems, format."""
    loaded = list(sep.targets) + ([sep.gate] if sep.gate is not None else [])
    parts = {"stems": sep.stem_names, "mask": sep.mask, "residual": sep.residual, "format": fmt,
             "models": [[t.spec.name, t.metadata.get("sha256"), t.spec.threshold, t.spec.priority] for t in loaded]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _absolute_dirs(dirs: Sequence[str | os.PathLike] | None, *, with_env: bool = False) -> tuple[str, ...]:
    """Folders as absolute paths (workers may run elsewhere); ``$STEMSPLIT_TARGETS`` folders appended."""
    out = [str(Path(d).expanduser().absolute()) for d in (dirs or [])]
    if with_env:  # remote workers do not share this process's environment
        out += [str(Path(d).absolute()) for d in os.environ.get("STEMSPLIT_TARGETS", "").split(os.pathsep)
                if d and Path(d).is_dir() and str(Path(d).absolute()) not in out]
    return tuple(out)


# -- output folder and manifest -------------------------------------------------------------------------------
def _writable_folder(outdir: str | os.PathLike) -> Path:
    """The output folder, created if needed, after checking a file can be written in it."""
    out = Path(outdir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise OptionError(f"The output folder {out} is a file.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        audio_io.probe_writable(out)
    except OSError as e:
        raise OptionError(f"Cannot write to the output folder {out}: {e.strerror or e}.") from None
    return out


def manifest_path(outdir: str | os.PathLike, manifest: str | os.PathLike | None = None) -> Path:
    """Where the manifest of a run into ``outdir`` goes: ``manifest``, else ``outdir/manifest.jsonl``."""
    return Path(manifest).expanduser().absolute() if manifest else Path(outdir).expanduser().absolute() / \
        "manifest.jsonl"


def _check_manifest(path: Path) -> None:
    """Raise unless the manifest can be appended to."""
    if path.is_dir():
        raise OptionError(f"The manifest {path} is a folder; give a file name.")
    try:
        if path.exists():
            with open(path, "a", encoding="utf-8"):
                pass
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            audio_io.probe_writable(path.parent)
    except OSError as e:
        raise OptionError(f"Cannot write the manifest {path}: {e.strerror or e}.") from None


def read_manifest(path: str | os.PathLike) -> dict[str, Record]:
    """The latest record per input of a manifest (``{}`` if there is none); unreadable lines are skipped.

    Parameters
    ----------
    path : path-like
        A JSON-lines manifest written by :func:`separate_many`.

    Returns
    -------
    dict of str to dict
        Input path -> its last record, in the order inputs first appear.
    """
    out: dict[str, Record] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return out
    except OSError as e:
        raise OptionError(f"Cannot read the manifest {path}: {e.strerror or e}.") from None
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a run stopped mid-line
            continue
        if isinstance(rec, dict) and isinstance(rec.get("input"), str):
            out[rec["input"]] = rec
    return out


def _input_stat(p: Path) -> list[int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _complete(prev: Record | None, item: BatchInput, dest: Path, settings: BatchSettings) -> bool:
    """Whether an earlier run left complete outputs for this input with these settings."""
    if not prev or prev.get("status") not in ("done", "skipped") or prev.get("output") != str(dest):
        return False
    if (prev.get("settings") or {}).get("fingerprint") != settings.fingerprint:
        return False
    if prev.get("input_stat") != _input_stat(item.path):
        return False
    stems = prev.get("stems") or {}
    return bool(stems) and all(Path(p).is_file() for p in stems.values())


# -- the worker side ------------------------------------------------------------------------------------------
class _WorkerSetup(WorkerPlugin):
    """Sets a worker's environment (:data:`WORKER_ENV`, where not set already) before it separates anything.

    The libraries read these variables when their thread pools start (for JAX, at the first computation, not at
    import), so this works on workers started by ``dask worker`` too, as long as they have not computed yet.
    """

    idempotent = True

    def setup(self, worker) -> None:
        for k, v in WORKER_ENV.items():
            os.environ.setdefault(k, v)


#: per-process cache: settings -> Separator (at most two kept, so a long-lived worker serving runs with
#: different settings does not grow without bound)
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_STATS = {"loads": 0, "files": 0}


def worker_stats() -> dict:
    """This process's counters: target loads, files separated (run it on workers with ``client.run``)."""
    return dict(_STATS, pid=os.getpid())


def _separator(settings: BatchSettings):
    """The separator for ``settings``, loaded once per process."""
    with _CACHE_LOCK:
        if settings in _CACHE:
            _CACHE.move_to_end(settings)
            return _CACHE[settings]
        sep = settings.separator()
        _STATS["loads"] += 1
        if settings.fingerprint and _fingerprint(sep, settings.fmt) != settings.fingerprint:
            raise CheckpointError(f"This worker's targets ({', '.join(settings.targets)}) differ from the ones the "
                                  "batch was started with: install the same checkpoints and target files on "
                                  "every machine.")
        _CACHE[settings] = sep
        while len(_CACHE) > 2:
            _CACHE.popitem(last=False)
        return sep


def _energy_shares(files: dict[str, Path]) -> tuple[dict[str, float], float]:
    """Each stem's share of the stems' total energy, and the audio's length in seconds.

    The energies come with the files when ``separate_file`` reports them (its ``StemFiles``), else they are
    read back from the files written.
    """
    with sf.SoundFile(str(next(iter(files.values())))) as fh:
        seconds = fh.frames / fh.samplerate
    energy = getattr(files, "energy", None)
    if energy is None:
        energy = {}
        for name, p in files.items():
            with sf.SoundFile(str(p)) as fh:
                energy[name] = sum(float(np.square(b, dtype=np.float64).sum())
                                   for b in fh.blocks(blocksize=1 << 16, dtype="float32", always_2d=True))
    whole = sum(energy.values())
    return {k: round(v / whole, 4) if whole > 0 else 0.0 for k, v in energy.items()}, seconds


def _commit(folder: Path, dest: Path) -> None:
    """Move a finished stem folder into place: one atomic rename, or file by file onto an existing folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(folder, dest)  # replaces a missing or empty folder in one step
    except OSError:
        dest.mkdir(exist_ok=True)
        for f in sorted(folder.iterdir()):
            os.replace(f, dest / f.name)


def _peak_mb() -> float | None:
    """This process's peak resident memory in MB (None where the platform does not tell)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class _Job:
    index: int
    path: str
    dest: str
    staging: str


def _worker_address() -> str:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # called outside a Dask worker
        return f"pid:{os.getpid()}"


def _run_job(job: _Job, settings: BatchSettings) -> Record:
    """Separate one file on a worker; a bad file gives a ``failed`` record, anything else raises (Dask retries)."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    base = {"input": job.path, "output": job.dest, "worker": _worker_address(),
            "input_stat": _input_stat(Path(job.path)), "settings": settings.describe()}
    # the pid in the name says which process a leftover belongs to
    staging = Path(job.staging) / f"{job.index:06d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # stemsplit's warnings (clipping, near silence...) would be lost in a worker's log: the record keeps them
    # (the warnings filters are process-wide; workers run one task at a time)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            sep = _separator(settings)
            written = sep.separate_file(job.path, staging, fmt=settings.fmt)
            shares, seconds = _energy_shares(written)
            dest = Path(job.dest)
            _commit(next(iter(written.values())).parent, dest)
        except StemsplitError as e:
            return {**base, "status": "failed", "stems": {}, "audio_seconds": None,
                    "wall_seconds": round(time.perf_counter() - t0, 3), "energy_share": {}, "worker_peak_mb": None,
                    "warnings": _stemsplit_warnings(caught), "error": _one_line(e), "finished": _now()}
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _STATS["files"] += 1
    return {**base, "status": "done", "stems": {k: str(dest / p.name) for k, p in written.items()},
            "audio_seconds": round(seconds, 3), "wall_seconds": round(time.perf_counter() - t0, 3),
            "cpu_seconds": round(time.process_time() - cpu0, 3), "energy_share": shares, "worker_peak_mb": _peak_mb(), "warnings": _stemsplit_warnings(caught),
            "error": None, "finished": _now()}


def _stemsplit_warnings(caught: list) -> list[str]:
    """The messages of warnings stemsplit itself issued, once each."""
    out: list[str] = []
    for w in caught:
        msg = _one_line(w.message)
        if w.category.__module__.split(".")[0] == "stemsplit" and msg not in out:
            out.append(msg)
    return out


# -- the client side ------------------------------------------------------------------------------------------
def _failed(job: _Job, settings: BatchSettings, message: str, worker: str | None = None) -> Record:
    return {"input": job.path, "output": job.dest, "worker": worker, "input_stat": _input_stat(Path(job.path)),
            "settings": settings.describe(), "status": "failed", "stems": {}, "audio_seconds": None,
            "wall_seconds": None, "energy_share": {}, "worker_peak_mb": None, "warnings": [], "error": message,
            "finished": _now()}


def _duration(p: Path) -> float | None:
    """Length in seconds from the file's header, None when soundfile cannot tell."""
    try:
        return float(sf.info(str(p)).duration)
    except Exception:  # soundfile raises several types for unreadable files
        return None


def _start_local_cluster(workers: int):
    """A LocalCluster of ``workers`` single-threaded worker processes on the loopback interface.

    Dask starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536``, which also switches off glibc's adaptive
    mmap threshold: every block's large numpy buffers are then mapped and unmapped anew, which cost about 30 %
    more CPU per file here (benchmarks/bench_batch.py). Ours start with the allocator's defaults, as
    ``stemsplit separate`` runs.
    """
    import logging

    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None, env=dict(WORKER_ENV), silence_logs=logging.ERROR)


def default_workers() -> int:
    """Worker processes a local cluster gets by default: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _connect(client, scheduler: str | None, workers: int | None) -> Iterator:
    """The Dask client to use; closes whatever it started itself."""
    from distributed import Client

    if client is not None:
        yield client
        return
    if scheduler:
        try:
            c = Client(scheduler)
        except (OSError, ValueError) as e:  # TimeoutError is an OSError; a malformed address a ValueError
            raise OptionError(f"Could not reach the Dask scheduler at {scheduler}: {_one_line(e)}") from None
        try:
            yield c
        finally:
            c.close()
        return
    with _start_local_cluster(workers or default_workers()) as cluster, Client(cluster) as c:
        yield c


class _Bar:
    """One tqdm bar over seconds of audio, with files done, failures and throughput (× real time) after it."""

    def __init__(self, total_seconds: float, files: int, skipped: int, enabled: bool):
        from tqdm import tqdm

        self.files, self.skipped, self.done, self.failed, self.seconds = files, skipped, skipped, 0, 0.0
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=round(total_seconds, 1), desc="separating", unit="s", disable=not enabled,
                        file=sys.stderr, dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
                                   "[{elapsed}<{remaining}{postfix}]")
        self._postfix()

    def _postfix(self) -> None:
        speed = self.seconds / max(time.perf_counter() - self.t0, 1e-9)
        text = f"files {self.done}/{self.files}"
        if self.skipped:
            text += f", {self.skipped} skipped"
        if self.failed:
            text += f", {self.failed} failed"
        self.bar.set_postfix_str(text + (f", {speed:.1f}× real time" if self.seconds else ""), refresh=False)

    def update(self, rec: Record, expected: float | None) -> None:
        self.done += 1
        self.failed += rec["status"] == "failed"
        got = rec.get("audio_seconds") or 0.0
        self.seconds += got
        if expected is None:  # the header did not tell; count the file now
            self.bar.total = round(self.bar.total + got, 1)
        self.bar.n = round(self.bar.n + (got if expected is None else expected), 1)
        self._postfix()
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def separate_many(inputs: Iterable[str | os.PathLike], outdir: str | os.PathLike, *,
                  targets: Sequence[str] = ("vocals",), mask: str = "binary", residual: bool = True,
                  gate_vocals: bool = False, fmt: str = "wav",
                  targets_dir: Sequence[str | os.PathLike] | None = None,
                  checkpoint_dirs: Sequence[str | os.PathLike] = (), client=None, workers: int | None = None,
                  scheduler: str | None = None, manifest: str | os.PathLike | None = None, retries: int = 2,
                  force: bool = False, progress: bool | ProgressCallback = False) -> list[Record]:
    """Separate many files on a Dask cluster into ``outdir/.../<name>/<stem>.<fmt>``, resuming earlier runs.

    Every option, input and target is checked before a worker starts. Inputs whose outputs an earlier run
    completed with the same settings and models are skipped; a file that cannot be separated is recorded as
    ``failed`` and the others go on; a worker that dies mid-file has the file run again elsewhere.

    Parameters
    ----------
    inputs : iterable of path-like
        Audio files, folders (searched recursively) and lists of paths; see :func:`collect_inputs`. A file
        found in a folder ``F`` at ``F/a/b/x.flac`` goes to ``outdir/a/b/x/``; files named directly to
        ``outdir/x/``, as with ``stemsplit separate``.
    outdir : path-like
        Output folder (created). On a multi-machine cluster, a folder every worker sees at the same path.
    targets, mask, residual, gate_vocals, targets_dir, checkpoint_dirs
        As for :class:`~stemsplit.separate.Separator`.
    fmt : {"wav", "flac", "ogg", "mp3"}
        Output format.
    client : distributed.Client, optional
        An existing Dask client to run on (left open).
    workers : int, optional
        Worker processes of the local cluster started when neither ``client`` nor ``scheduler`` is given
        (default: one per core). Each is single-threaded and separates one file at a time.
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``"tcp://host:8786"``.
    manifest : path-like, optional
        JSON-lines manifest (default ``outdir/manifest.jsonl``); read to skip finished inputs, then updated.
    retries : int
        Times Dask reruns a file whose task raised something other than a stemsplit error (a network
        filesystem hiccup, say). Worker deaths are retried by the scheduler
        (``distributed.scheduler.allowed-failures``, 3 by default).
    force : bool
        Separate every input again, even when complete outputs exist.
    progress : bool or callable
        ``True`` draws a progress bar on stderr; a callable is called with each record as its file finishes.

    Returns
    -------
    list of dict
        One manifest record per input, in input order (fields in the module docstring).

    Raises
    ------
    StemsplitError
        A bad option, a missing input, an unknown target, a missing or corrupt checkpoint, an output folder
        or manifest that cannot be written, two inputs that would write the same folder, or an unreachable
        scheduler. Bad audio files do not raise: they are ``failed`` records.

    Examples
    --------
    >>> recs = separate_many(["catalogue/"], "stems", targets=("vocals", "drums", "bass", "other"),
    ...                      workers=4)                                              # doctest: +SKIP
    >>> sum(r["status"] == "failed" for r in recs)                                   # doctest: +SKIP
    0
    """
    # cheap checks first: options, output folder, manifest, inputs; then the targets (loads checkpoints)
    if client is not None and scheduler:
        raise OptionError("Give either a Dask client or a scheduler address, not both.")
    if workers is not None:
        if client is not None or scheduler:
            raise OptionError("workers sets the size of a local cluster; it cannot be combined with a scheduler "
                              "address or a client (size that cluster where it is started).")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise OptionError(f"workers must be a whole number >= 1, got {workers!r}.")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise OptionError(f"retries must be a whole number >= 0, got {retries!r}.")
    if isinstance(targets, str):
        targets = [targets]
    fmt = audio_io.check_format(fmt)
    from .masks import check_mode

    check_mode(mask)
    out = _writable_folder(outdir)
    mpath = manifest_path(out, manifest)
    _check_manifest(mpath)
    items = collect_inputs(inputs, exclude=[out])
    dests: dict[Path, BatchInput] = {}
    for item in items:
        d = item.dest(out)
        if d in dests:
            raise OptionError(f"{dests[d].path} and {item.path} would both be written to {d}/; rename one or "
                              "separate them into different output folders.")
        dests[d] = item

    settings = BatchSettings(tuple(targets), mask=mask, residual=residual, gate_vocals=gate_vocals, fmt=fmt,
                             targets_dir=_absolute_dirs(targets_dir, with_env=True),
                             checkpoint_dirs=_absolute_dirs(checkpoint_dirs))
    sep = settings.separator()  # the errors `stemsplit separate` gives, here, before any worker starts
    settings = replace(settings, fingerprint=_fingerprint(sep, fmt))
    del sep

    previous = read_manifest(mpath)
    run = uuid.uuid4().hex[:8]
    staging = out / STAGING_DIR / run
    records: dict[str, Record] = {}
    todo: list[tuple[_Job, float | None]] = []
    for i, item in enumerate(items):
        key, dest = str(item.path), item.dest(out)
        prev = previous.get(key)
        if not force and _complete(prev, item, dest, settings):
            records[key] = {**prev, "status": "skipped", "wall_seconds": 0.0}
        else:
            todo.append((_Job(i, key, str(dest), str(staging)), _duration(item.path)))
    callback = progress if callable(progress) else None
    started = False
    try:
        # connect first: an unreachable scheduler is a bad option, reported before anything is written
        with (_connect(client, scheduler, workers) if todo else contextlib.nullcontext()) as c, \
                open(mpath, "a", encoding="utf-8") as log:
            started = True

            def note(rec: Record) -> None:
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if callback is not None:
                    callback(rec)

            for rec in records.values():
                note(rec)
            if todo:
                # made here, not by a worker, so a failing worker's clean-up never removes it under the others
                staging.mkdir(parents=True, exist_ok=True)
                bar = _Bar(sum(d or 0.0 for _, d in todo), len(items), len(records), enabled=progress is True)
                try:
                    _run_all(c, run, todo, settings, retries, records, note, bar)
                finally:
                    bar.close()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            (out / STAGING_DIR).rmdir()
        ordered = {str(i.path): records[str(i.path)] for i in items if str(i.path) in records}
        if started:
            _rewrite_manifest(mpath, previous, ordered)
    return list(ordered.values())


def _run_all(c, run: str, todo: list[tuple[_Job, float | None]], settings: BatchSettings, retries: int,
             records: dict[str, Record], note: Callable[[Record], None], bar: _Bar) -> None:
    """Submit one task per job to client ``c`` and collect the records as they finish."""
    import dask
    from distributed import KilledWorker, as_completed

    allowed = dask.config.get("distributed.scheduler.allowed-failures", 3)
    c.register_plugin(_WorkerSetup(), name="stemsplit-batch-setup")
    futures = {}
    for job, seconds in todo:
        # longest files first: the run ends sooner when the last files to start are short ones
        fut = c.submit(_run_job, job, settings, key=f"stemsplit-separate-{run}-{job.index:06d}", pure=False,
                       retries=retries, priority=int(seconds or 0))
        futures[fut] = (job, seconds)
    try:
        for fut in as_completed(list(futures)):
            job, seconds = futures[fut]
            try:
                rec = fut.result()
            except KilledWorker:
                rec = _failed(job, settings, f"{job.path}: the worker separating it died {allowed + 1} times "
                                             "(killed, or out of memory); gave up on this file.")
            except Exception as e:  # raised on the worker after its retries: keep the others going
                rec = _failed(job, settings, f"{job.path}: {type(e).__name__}: {_one_line(e)}")
            records[job.path] = rec
            note(rec)
            bar.update(rec, seconds)
    finally:
        c.cancel([f for f in futures if not f.done()])


def _rewrite_manifest(path: Path, previous: dict[str, Record], records: dict[str, Record]) -> None:
    """Rewrite the manifest with one record per input: earlier inputs kept, this run's records on top."""
    merged = dict(previous)
    merged.update(records)
    with contextlib.suppress(OSError), atomic_path(path, ".jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in merged.values()), encoding="utf-8")
