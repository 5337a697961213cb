"""Batch throughput: `stemsplit batch` with 1 and 2 local workers against a plain loop over
`Separator.separate_file`, measured in the same run, with each worker's peak memory.

    python benchmarks/bench_batch.py [--files 8] [--seconds 25] [--targets vocals,drums,bass,other]
                                     [--workers 1,2] [--json out.json]

Inputs: ``--files`` generated stereo 44.1 kHz songs of ``--seconds`` each (a gated tone, a bass line and noise
bursts, a different seed per song; speed does not depend on the content). Models: the shipped checkpoints.
Every run starts new processes, as a user would: the plain loop is a fresh Python process that builds one
``Separator`` and calls ``separate_file`` on each file (what ``stemsplit separate`` does; XLA may use every
core); each batch run is ``python -m stemsplit batch FOLDER --workers N`` (a LocalCluster of N single-threaded
worker processes). One file of the same length goes through both first, unmeasured, so that every measured run
finds JAX's persistent compilation cache in the same state (filled), whatever order they run in. Reported:

- wall time end to end (process start, imports, loading the models, compiling, separating, writing);
- throughput = seconds of audio / wall seconds (× real time) and its ratio to the plain loop's;
- the cores it got: all its processes' CPU time over its wall time (on a busy machine, less than it could use);
- steady state: the speed without each process's first file (which pays for loading and compiling), i.e. what
  a long catalogue approaches, in × real time and in seconds of audio per CPU second (the fair comparison on
  a machine other jobs share: it does not depend on how much CPU the run was given);
- peak resident memory per worker process (the manifest's ``worker_peak_mb``; for the loop, the process's).

The outputs of every run are compared sample for sample with the plain loop's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf


def write_songs(folder: Path, files: int, seconds: float, sr: int = 44100) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        rng = np.random.default_rng(i)
        t = np.arange(int(seconds * sr)) / sr
        f0 = rng.uniform(180, 400)
        voice = sum(0.15 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 6)) * (np.sin(2 * np.pi * t) > 0)
        bass = 0.2 * np.sin(2 * np.pi * rng.uniform(40, 80) * t)
        hits = rng.standard_normal(t.size) * 0.2 * (np.mod(t, 0.5) < 0.05)
        mono = voice + bass + hits
        stereo = np.stack([mono + 0.01 * rng.standard_normal(t.size), 0.8 * mono]).astype(np.float32)
        p = folder / f"song{i:02d}.wav"
        sf.write(p, stereo.T, sr, subtype="PCM_16")
        paths.append(p)
    return paths


def _loop_child(out: str, targets: str, files: list[str]) -> None:
    """The baseline, run in its own process: one Separator, separate_file on each file in turn."""
    from stemsplit.separate import Separator

    sep = Separator(targets.split(","))
    per_file, cpu = [], []
    for f in files:
        t, c = time.perf_counter(), time.process_time()
        sep.separate_file(f, out)
        per_file.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"per_file": per_file, "cpu": cpu, "peak_mb": peak_mb}))


def _children_cpu() -> float:
    """CPU seconds of every finished descendant process so far (workers are reaped by their nanny)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _same_outputs(a: Path, b: Path) -> bool:
    files = sorted(a.rglob("*.wav"))
    return bool(files) and all(
        np.array_equal(sf.read(f, dtype="float32")[0], sf.read(b / f.relative_to(a), dtype="float32")[0])
        for f in files)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--seconds", type=float, default=25.0)
    p.add_argument("--targets", default="vocals,drums,bass,other")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--json")
    p.add_argument("--loop-child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.loop_child:
        _loop_child(args.loop_child[0], args.targets, args.loop_child[1:])
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    songs = write_songs(tmp / "songs", args.files, args.seconds)
    audio = args.files * args.seconds
    warm = write_songs(tmp / "warm", 1, args.seconds)
    subprocess.run([sys.executable, __file__, "--targets", args.targets, "--loop-child", str(tmp / "warm-loop"),
                    str(warm[0])], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "stemsplit", "batch", str(warm[0]), "-o", str(tmp / "warm-batch"), "-t",
                    args.targets, "--workers", "1", "-q"], check=True)
    load_before = os.getloadavg()[0]
    rows = []

    t, c = time.perf_counter(), _children_cpu()
    res = subprocess.run([sys.executable, __file__, "--targets", args.targets, "--loop-child", str(tmp / "loop"),
                          *map(str, songs)], check=True, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t, _children_cpu() - c
    child = json.loads(res.stdout.strip().splitlines()[-1])
    later = slice(1, None) if args.files > 1 else slice(None)
    rows.append({"run": "plain loop over `Separator.separate_file`, 1 process", "workers": 0, "wall": wall,
                 "cpu": cpu, "speed": audio / wall,
                 "steady": args.seconds * len(child["per_file"][later]) / sum(child["per_file"][later]),
                 "per_cpu": args.seconds * len(child["cpu"][later]) / sum(child["cpu"][later]),
                 "peak_mb": [child["peak_mb"]], "identical": True})

    for n in [int(w) for w in args.workers.split(",")]:
        out = tmp / f"batch{n}"
        t, c = time.perf_counter(), _children_cpu()
        subprocess.run([sys.executable, "-m", "stemsplit", "batch", str(tmp / "songs"), "-o", str(out), "-t",
                        args.targets, "--workers", str(n), "-q"], check=True)
        wall, cpu = time.perf_counter() - t, _children_cpu() - c
        recs = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
        assert all(r["status"] == "done" for r in recs), [r["error"] for r in recs]
        by_worker = defaultdict(list)
        for r in sorted(recs, key=lambda r: r["finished"]):
            by_worker[r["worker"]].append(r)
        later = [r for rs in by_worker.values() for r in rs[1:]] or recs
        # each worker's speed on its later files, summed over the workers that ran side by side
        steady = sum(sum(r["audio_seconds"] for r in rs[1:]) / sum(r["wall_seconds"] for r in rs[1:])
                     for rs in by_worker.values() if len(rs) > 1) or float("nan")
        peaks = [max(r["worker_peak_mb"] for r in rs) for rs in by_worker.values()]
        rows.append({"run": f"`stemsplit batch --workers {n}`", "workers": n, "wall": wall, "cpu": cpu,
                     "speed": audio / wall, "steady": steady,
                     "per_cpu": sum(r["audio_seconds"] for r in later) / sum(r["cpu_seconds"] for r in later),
                     "peak_mb": peaks, "identical": _same_outputs(tmp / "loop", out)})
    load_after = os.getloadavg()[0]

    base = rows[0]
    print(f"\n{args.files} files x {args.seconds:g} s stereo 44.1 kHz = {audio:g} s of audio, targets "
          f"{args.targets}; {os.cpu_count()} cores; load average {load_before:.1f} before, {load_after:.1f} after\n")
    print("| run | wall | throughput | vs plain loop | cores it got (CPU s / wall s) | steady state | "
          "audio s per CPU s, steady (vs loop) | peak memory per process | same stems as the loop |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        peaks = ", ".join(f"{m:,.0f} MB" for m in r["peak_mb"])
        print(f"| {r['run']} | {r['wall']:.1f} s | {r['speed']:.1f}× real time | {r['speed'] / base['speed']:.2f}× | "
              f"{r['cpu'] / r['wall']:.2f} | {r['steady']:.1f}× real time | "
              f"{r['per_cpu']:.1f} ({r['per_cpu'] / base['per_cpu']:.2f}×) | {peaks} | "
              f"{'yes' if r['identical'] else 'NO'} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"files": args.files, "seconds": args.seconds, "targets": args.targets,
                                               "load": [load_before, load_after], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
