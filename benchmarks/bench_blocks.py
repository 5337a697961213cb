"""Block size, the models' scratch memory and page faults: why separation runs in 248-frame blocks with glibc's
mmap threshold raised (docs/performance.md, "Separation speed").

    python benchmarks/bench_blocks.py [--targets vocals] [--blocks 120,248,376,504] [--calls 30] [--json OUT]
    python benchmarks/bench_blocks.py --targets vocal-activity --blocks 256,2048   # the activity detector

For each block size (frames scored per model call: the block plus its margin), a fresh process per allocator
setting loads the shipped models of ``--targets``, compiles their pass for that size and reports:

- the compiled pass's scratch memory (XLA's ``memory_analysis().temp_size_in_bytes``), which the pass
  allocates and frees on every call;
- per model call, after warm-up: wall milliseconds, microseconds per frame, and the process's minor page faults
  and system CPU time (``getrusage``), i.e. the cost of memory mapped afresh for a call;

once with stemsplit's allocator setting (``stemsplit/_alloc.py``) and once without it
(``STEMSPLIT_NO_MALLOC_TUNING=1``, glibc's own adaptive threshold, which stops at 32 MiB). The two processes
alternate per block size, so that a noisy machine hits both alike. Inputs are random features: speed does not
depend on them. Only the model calls are timed (no STFT, masks or inverse STFT; ``benchmarks/ab_code.py``
times separation end to end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
from stemsplit import _alloc
from stemsplit.engine import BLOCK_MARGIN
from stemsplit.separate import Separator
targets, block, calls = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
if targets == ["vocal-activity"]:  # the detector scores the frames of a call without a margin
    from stemsplit.vad import ActivityDetector
    r, frames = ActivityDetector().runner, block  # ModelRunner tunes the allocator unless opted out
else:
    r, frames = Separator(targets).runner, block + BLOCK_MARGIN
x = np.random.default_rng(0).standard_normal((frames + r.context, 513)).astype(np.float32)
scratch = r.scratch_bytes(frames)
for _ in range(3):
    r(x, frames)
u0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(calls):
    r(x, frames)
wall, u1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"tuned": _alloc.tune(), "frames": frames, "scratch_mib": scratch / 2 ** 20,
                  "ms_per_call": 1e3 * wall / calls, "us_per_frame": 1e6 * wall / calls / frames,
                  "faults_per_call": (u1.ru_minflt - u0.ru_minflt) / calls,
                  "sys_ms_per_call": 1e3 * (u1.ru_stime - u0.ru_stime) / calls}))
"""


def run(targets: str, block: int, calls: int, tuned: bool) -> dict:
    env = dict(os.environ)
    env.pop("STEMSPLIT_NO_MALLOC_TUNING", None)
    if not tuned:
        env["STEMSPLIT_NO_MALLOC_TUNING"] = "1"
    res = subprocess.run([sys.executable, "-c", CHILD, targets, str(block), str(calls)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="vocals", help="comma-separated shipped targets run together")
    ap.add_argument("--blocks", default="120,248,376,504", help="comma-separated block sizes (frames)")
    ap.add_argument("--calls", type=int, default=30, help="timed model calls per process")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    rows = []
    for block in (int(b) for b in args.blocks.split(",")):
        for tuned in (False, True):
            rows.append({"block": block, **run(args.targets, block, args.calls, tuned)})
    print(f"targets {args.targets}; {os.cpu_count()} cores; {args.calls} timed calls per row\n")
    print("| block (frames scored) | allocator | scratch | ms per call | µs per frame | page faults per call | "
          "system CPU per call |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        setting = "stemsplit's setting" if r["tuned"] else "glibc default"
        print(f"| {r['block']} ({r['frames']}) | {setting} | {r['scratch_mib']:.1f} MiB | {r['ms_per_call']:.1f} | "
              f"{r['us_per_frame']:.1f} | {r['faults_per_call']:.0f} | {r['sys_ms_per_call']:.1f} ms |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"targets": args.targets, "calls": args.calls, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
