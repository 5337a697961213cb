"""Start-up of ``stemsplit separate``: cold (empty compilation cache), warm (second run) and without the cache.

Each run is a fresh ``python`` process running the CLI on a short file, timed from the moment it is started:

- ``imported``: ``stemsplit.cli`` imported (Python, NumPy, JAX, Flax);
- ``models``: the Separator built (target files and checkpoints read);
- ``first update``: the progress bar's first move (the first block separated: XLA compilation, unless the
  persistent cache already holds the programs, plus one block of work);
- ``total``: the process has exited (every block, files written).

Usage::

    python benchmarks/bench_startup.py [--input examples/example.flac] [--targets vocals,drums,bass,other]
                                       [--repeats 3]

Prints a Markdown table of medians and the cold/warm ratios (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DRIVER = r"""
import json, sys, time
t = {"start": float(sys.argv[1])}
from stemsplit import cli
S = sys.modules["stemsplit.separate"]  # (the package's separate() function hides the module's name)
t["imported"] = time.time()
make_bar, init = cli._progress_bar, S.Separator.__init__

def bar(*a, **k):
    b, update = make_bar(*a, **k)
    def first(done, total):
        t.setdefault("first update", time.time())
        update(done, total)
    return b, first

def built(self, *a, **k):
    init(self, *a, **k)
    t.setdefault("models", time.time())

cli._progress_bar, S.Separator.__init__ = bar, built
code = cli.main(sys.argv[2:])
print(json.dumps(t))
sys.exit(code)
"""

PHASES = ("imported", "models", "first update", "total")


def run_once(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """One CLI run in a new process; seconds from its start to each phase."""
    start = time.time()
    r = subprocess.run([sys.executable, "-c", DRIVER, repr(start), *argv], env=env, capture_output=True, text=True)
    end = time.time()
    if r.returncode != 0:
        raise SystemExit(f"run failed ({r.returncode}):\n{r.stderr[-3000:]}")
    stamps = json.loads(r.stdout.strip().splitlines()[-1])
    out = {k: stamps[k] - start for k in PHASES[:-1]}
    out["total"] = end - start
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", default=str(ROOT / "examples" / "example.flac"))
    p.add_argument("--targets", default="vocals,drums,bass,other")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    results: dict[str, list[dict[str, float]]] = {"no cache": [], "cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["separate", args.input, "--targets", args.targets, "-o", os.path.join(tmp, "out")]
        base = {k: v for k, v in os.environ.items() if k != "STEMSPLIT_NO_COMPILE_CACHE"}
        for i in range(args.repeats):
            results["no cache"].append(run_once(argv, {**base, "STEMSPLIT_NO_COMPILE_CACHE": "1"}))
            env = {**base, "XDG_CACHE_HOME": os.path.join(tmp, f"cache{i}")}  # empty: cold
            results["cold"].append(run_once(argv, env))
            results["warm"].append(run_once(argv, env))  # the same folder, now filled
            print(f"repeat {i + 1}/{args.repeats}: " + ", ".join(
                f"{k} {v[-1]['first update']:.1f}/{v[-1]['total']:.1f} s" for k, v in results.items()),
                file=sys.stderr)
    med = {k: {ph: statistics.median(r[ph] for r in rs) for ph in PHASES} for k, rs in results.items()}
    print(f"`stemsplit separate {Path(args.input).name} --targets {args.targets}`, medians of {args.repeats} runs "
          f"(seconds from process start; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)\n")
    print("| run | " + " | ".join(PHASES) + " |")
    print("| --- |" + " ---: |" * len(PHASES))
    for k, m in med.items():
        print(f"| {k} | " + " | ".join(f"{m[ph]:.1f}" for ph in PHASES) + " |")
    for ph in ("first update", "total"):
        print(f"\n{ph}: cold / warm = {med['cold'][ph] / med['warm'][ph]:.2f}x, "
              f"no cache / warm = {med['no cache'][ph] / med['warm'][ph]:.2f}x", end="")
    print()


if __name__ == "__main__":
    main()
