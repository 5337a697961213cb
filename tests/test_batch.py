"""Batch separation on a Dask LocalCluster over loopback (two single-threaded worker processes): inputs, outputs
equal to ``Separator.separate_file``'s, the manifest, resuming, a worker killed mid-file, and the CLI. The tests
marked slow share one cluster (its start and the workers' first compilation take most of their time)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemsplit import batch
from stemsplit.batch import BatchInput, BatchSettings, collect_inputs, read_manifest, separate_many
from stemsplit.cli import main
from stemsplit.errors import AudioFileError, CheckpointError, OptionError, StemsplitError
from stemsplit.separate import Separator

from .conftest import tone_mix, write_tiny_target

TWO = ("vocals", "drums")  # two tiny models: the least compilation that still exercises the dominance rule
# short enough that every file runs in the same padded block shape (one compilation per worker)
GOOD = {"a.wav": (22050, 2, 1.4), "sub/b.flac": (44100, 1, 1.0), "sub/deeper/c.wav": (48000, 2, 1.2)}


def _write(path: Path, sr: int, channels: int, seconds: float, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone_mix(sr, seconds, channels, seed=seed).T, sr)
    return path


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    with batch._start_local_cluster(2) as cluster, Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    """Three short songs in nested folders, a corrupt one, and files a folder search must ignore."""
    root = tmp_path_factory.mktemp("music")
    for i, (name, (sr, ch, sec)) in enumerate(GOOD.items()):
        _write(root / name, sr, ch, sec, seed=i)
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00 not really a wave file " * 40)
    (root / "notes.txt").write_text("not audio\n")
    _write(root / ".hidden.wav", 22050, 1, 0.5)
    return root


@pytest.fixture(scope="module")
def pair(tiny_targets) -> Separator:
    return Separator(TWO, targets_dir=[tiny_targets])


@pytest.fixture(scope="module")
def first_run(client, music, tiny_targets, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch-out")
    seen = []
    records = separate_many([music], out, targets=TWO, targets_dir=[tiny_targets], client=client,
                            progress=seen.append)
    return out, records, seen


def _stats(client) -> dict:
    return client.run(batch.worker_stats)


# -- inputs ---------------------------------------------------------------------------------------------------
def test_collect_inputs_folders_lists_and_files(tmp_path):
    for name in ("x/1.wav", "x/deep/2.flac", "x/deep/skip.txt", "x/.hid/3.wav", "y/4.mp3", "z.ogg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "list.m3u").write_text("# a playlist\n\ny/4.mp3\n" + str(tmp_path / "x") + "\n")
    got = collect_inputs([tmp_path / "z.ogg", tmp_path / "list.m3u", tmp_path / "x/1.wav"])
    assert [(i.path.relative_to(tmp_path).as_posix(), i.subdir) for i in got] == [
        ("z.ogg", ""), ("y/4.mp3", ""), ("x/1.wav", ""), ("x/deep/2.flac", "deep")]
    assert all(i.path.is_absolute() for i in got)


def test_collect_inputs_errors_and_output_folder(tmp_path):
    with pytest.raises(AudioFileError, match="No such file or folder: .*missing.wav"):
        collect_inputs([tmp_path / "missing.wav"])
    (tmp_path / "list.txt").write_text("gone.flac\n")
    with pytest.raises(AudioFileError, match="listed in"):
        collect_inputs([tmp_path / "list.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioFileError, match="No audio files found"):
        collect_inputs([tmp_path / "empty"])
    _write(tmp_path / "in" / "song.wav", 22050, 1, 0.2)
    _write(tmp_path / "in" / "out" / "song" / "vocals.wav", 22050, 1, 0.2)  # an earlier run's stems
    assert [i.path.name for i in collect_inputs([tmp_path / "in"], exclude=[tmp_path / "in" / "out"])] == ["song.wav"]
    with pytest.raises(OptionError, match="also an input folder"):
        collect_inputs([tmp_path / "in"], exclude=[tmp_path / "in"])


def test_same_name_in_two_folders_is_refused_before_work(tmp_path, tiny_targets, monkeypatch):
    monkeypatch.setattr(batch, "_connect", _no_cluster)
    _write(tmp_path / "one" / "song.wav", 22050, 1, 0.2)
    _write(tmp_path / "two" / "song.flac", 22050, 1, 0.2)
    with pytest.raises(OptionError, match="would both be written to"):
        separate_many([tmp_path / "one", tmp_path / "two"], tmp_path / "out", targets_dir=[tiny_targets])
    assert BatchInput(tmp_path / "a" / "Song (live).mp3", "x/y").dest(tmp_path) == tmp_path / "x/y/Song_live"


# -- a run on the cluster -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_outputs_equal_separate_file(first_run, music, pair, tmp_path):
    out, records, _ = first_run
    for name in GOOD:
        subdir = str(Path(name).parent) if "/" in name else ""
        ref = pair.separate_file(music / name, tmp_path / subdir)
        got_dir = out / subdir / Path(name).stem
        assert sorted(p.name for p in got_dir.iterdir()) == sorted(p.name for p in ref.values())
        for p in ref.values():
            want, sr = sf.read(p, dtype="float32")
            got, got_sr = sf.read(got_dir / p.name, dtype="float32")
            assert got_sr == sr and np.array_equal(got, want), (name, p.name)


@pytest.mark.slow
def test_manifest_records(first_run, music, pair, client, tmp_path):
    out, records, seen = first_run
    by_name = {Path(r["input"]).name: r for r in records}
    assert [Path(r["input"]).relative_to(music).as_posix() for r in records] == [
        "a.wav", "corrupt.wav", "sub/b.flac", "sub/deeper/c.wav"]
    workers = set(client.scheduler_info()["workers"])
    for name, (_sr, _ch, seconds) in GOOD.items():
        r = by_name[Path(name).name]
        assert r["status"] == "done" and r["error"] is None and r["worker"] in workers
        assert r["audio_seconds"] == pytest.approx(seconds, abs=1e-3) and r["wall_seconds"] > 0
        assert list(r["energy_share"]) == pair.stem_names == list(r["stems"])
        energy = {k: float(np.sum(sf.read(p, dtype="float64")[0] ** 2)) for k, p in r["stems"].items()}
        assert r["energy_share"] == pytest.approx({k: v / sum(energy.values()) for k, v in energy.items()},
                                                  abs=2e-3)
        assert all(Path(p).is_file() for p in r["stems"].values()) and r["worker_peak_mb"] > 50
    with pytest.raises(StemsplitError) as e:
        pair.separate_file(music / "corrupt.wav", tmp_path)
    bad = by_name["corrupt.wav"]
    assert bad["status"] == "failed" and bad["error"] == str(e.value) and bad["stems"] == {}
    assert not (out / "corrupt").exists()
    assert sorted(r["input"] for r in seen) == sorted(r["input"] for r in records)
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert lines == records
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.slow
def test_each_worker_loads_targets_once(first_run, client):
    stats = _stats(client)
    assert sum(s["files"] for s in stats.values()) >= len(GOOD)
    assert all(s["loads"] <= 1 for s in stats.values()), stats
    threads = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert set(threads.values()) == {"1"}
    trim = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))  # Dask's default costs ~30 % CPU
    assert set(trim.values()) == {os.environ.get("MALLOC_TRIM_THRESHOLD_")}


@pytest.mark.slow
def test_rerun_does_no_work(first_run, music, tiny_targets, client):
    out, records, _ = first_run
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*.wav")}
    files_before = sum(s["files"] for s in _stats(client).values())
    again = separate_many([music], out, targets=TWO, targets_dir=[tiny_targets], client=client)
    assert [r["status"] for r in again] == ["skipped", "failed", "skipped", "skipped"]
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*.wav")} == before
    assert sum(s["files"] for s in _stats(client).values()) == files_before
    skipped = again[0]
    assert skipped["wall_seconds"] == 0.0 and skipped["energy_share"] == records[0]["energy_share"]
    assert len((out / "manifest.jsonl").read_text().splitlines()) == len(records)


@pytest.mark.slow
def test_rerun_redoes_incomplete_or_changed_outputs(first_run, music, tiny_targets, tmp_path):
    out, records, _ = first_run
    settings = BatchSettings(TWO, fingerprint=records[0]["settings"]["fingerprint"])
    item = BatchInput(music / "a.wav")
    rec = records[0]
    assert batch._complete(rec, item, item.dest(out), settings)
    assert not batch._complete(rec, item, item.dest(out), BatchSettings(TWO, fingerprint="other"))
    assert not batch._complete({**rec, "input_stat": [1, 2]}, item, item.dest(out), settings)
    assert not batch._complete({**rec, "stems": {"vocals": str(tmp_path / "gone.wav")}}, item, item.dest(out),
                               settings)
    assert not batch._complete({**rec, "status": "failed"}, item, item.dest(out), settings)


def test_worker_refuses_other_models(tiny_targets):
    s = BatchSettings(("vocals",), targets_dir=(str(tiny_targets),), fingerprint="0123456789abcdef")
    with pytest.raises(CheckpointError, match="differ from the ones"):
        batch._separator(s)


@pytest.mark.slow
def test_missing_stem_is_redone_and_the_rest_skipped(client, music, tiny_targets, tmp_path):
    out = tmp_path / "out"
    kw = dict(targets=TWO, targets_dir=[tiny_targets], client=client)
    first = separate_many([music / "a.wav", music / "sub"], out, **kw)
    assert [r["status"] for r in first] == ["done", "done", "done"]
    (out / "b" / "vocals.wav").unlink()
    (out / "deeper" / "c").rename(tmp_path / "moved")  # its record stays, its outputs are gone
    again = separate_many([music / "a.wav", music / "sub"], out, **kw)
    assert [r["status"] for r in again] == ["skipped", "done", "done"]
    assert sorted(p.name for p in (out / "b").iterdir()) == sorted(f"{n}.wav" for n in (*TWO, "residual"))
    forced = separate_many([music / "a.wav"], out, force=True, **kw)
    assert forced[0]["status"] == "done"
    assert len(read_manifest(out / "manifest.jsonl")) == 3


# -- the command line -----------------------------------------------------------------------------------------
def _no_cluster(*args, **kwargs):
    raise AssertionError("a Dask cluster was reached before the inputs and options were checked")


@pytest.mark.slow
def test_cli_batch_exit_codes_summary_and_progress(client, music, tiny_targets, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["-o", str(out), "-t", ",".join(TWO), "--targets-dir", str(tiny_targets), "--scheduler",
              client.scheduler.address]
    assert main(["batch", str(music / "a.wav"), *common]) == 0
    io = capsys.readouterr()
    assert "1 files: 1 separated (1.4 s of audio), 0 skipped (already done), 0 failed" in io.out
    assert "files 1/1" in io.err and "real time" in io.err
    assert sorted(p.name for p in (out / "a").iterdir()) == sorted(f"{n}.wav" for n in (*TWO, "residual"))
    code = main(["batch", str(music / "a.wav"), str(music / "corrupt.wav"), *common, "-q"])
    io = capsys.readouterr()
    assert code == 1 and io.out == ""
    error = read_manifest(out / "manifest.jsonl")[str(music / "corrupt.wav")]["error"]
    assert error.startswith(f"Could not decode {music / 'corrupt.wav'}")
    assert io.err.strip().splitlines() == [f"stemsplit: failed: {error}"]


@pytest.mark.parametrize("args,match", [
    (["{music}/missing.wav"], "No such file or folder"),
    (["{music}", "--targets", "kazoo"], "Unknown target 'kazoo'"),
    (["{music}", "-o", "{afile}"], "is a file"),
    (["{music}", "-o", "{afile}/below"], "Cannot write to the output folder"),
    (["{music}", "--manifest", "{tmp}"], "is a folder"),
    (["{music}", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "cannot be combined"),
    (["{tmp}/list.txt"], "listed in"),
    (["{music}", "--targets", "lonely"], "has no trained checkpoint"),
    (["{music}", "-o", "{music}"], "also an input folder"),
])
def test_cli_errors_exit_2_before_any_work(music, tiny_targets, tmp_path, capsys, monkeypatch, args, match):
    monkeypatch.setattr(batch, "_connect", _no_cluster)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "list.txt").write_text(f"{music / 'a.wav'}\nnot-there.flac\n")
    extra = tmp_path / "extra-targets"
    write_tiny_target(extra, "lonely").with_suffix(".npz").unlink()
    fill = {"music": str(music), "afile": str(tmp_path / "afile"), "tmp": str(tmp_path)}
    argv = ["batch", *[a.format(**fill) for a in args], "--targets-dir", str(tiny_targets),
            "--targets-dir", str(extra)]
    if "-o" not in args:
        argv += ["-o", str(tmp_path / "out")]
    assert main(argv) == 2
    io = capsys.readouterr()
    lines = io.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stemsplit: error: ") and match in lines[0], io.err
    assert io.out == ""


def test_cli_unreachable_scheduler(music, tiny_targets, tmp_path, capsys):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["batch", str(music / "a.wav"), "-o", str(tmp_path / "out"), "--targets-dir",
                     str(tiny_targets), "--scheduler", "tcp://127.0.0.1:9", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("stemsplit: error: Could not reach the Dask scheduler")
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


@pytest.mark.slow
def test_killed_worker_loses_nothing(client, music, tiny_targets, pair, tmp_path):
    """SIGKILL the worker process while it works on the long file (its first file of that length, so it
    compiles for seconds before writing): Dask runs the file again on the other worker, the outputs equal
    separate_file's and no partial output remains. (Last in the file: the cluster is one worker short while the
    nanny restarts the killed process.)"""
    src = tmp_path / "in"
    _write(src / "long.wav", 16000, 1, 8.0, seed=5)
    _write(src / "short.wav", 22050, 1, 1.0, seed=6)
    out = tmp_path / "out"
    pids = client.run(os.getpid)
    killed: dict = {}

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for d in (out / batch.STAGING_DIR).glob("*/*/long"):
                started = False
                with contextlib.suppress(OSError):
                    started = any(d.iterdir())  # the worker has begun writing this file's stems
                if started:
                    pid = int(d.parent.name.split("-")[1])
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
                    return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    records = separate_many([src], out, targets=TWO, targets_dir=[tiny_targets], client=client)
    watcher.join(5)
    assert killed.get("pid") in pids.values(), "the long file finished before a worker could be killed"
    dead = [addr for addr, pid in pids.items() if pid == killed["pid"]][0]
    assert [r["status"] for r in records] == ["done", "done"]
    assert records[0]["worker"] != dead
    for p in pair.separate_file(src / "long.wav", tmp_path / "ref").values():
        assert np.array_equal(sf.read(out / "long" / p.name, dtype="float32")[0], sf.read(p, dtype="float32")[0])
    assert [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"] == []
