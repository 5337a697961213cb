"""Two checkouts of stemsplit timed in alternation on one file: did a code change make separation faster?

    python benchmarks/ab_code.py --old PATH/TO/OTHER/CHECKOUT [--new .] --audio SONG [--repeat 2] [--tile 2]
    python benchmarks/ab_code.py --old . --new-models CKDIR [TARGETS_DIR] --audio SONG   # two sets of models

Each checkout runs in its own process (``sys.path`` points at it), separates ``--audio`` (tiled ``--tile``
times) with the vocals-only and the four-target paths, warmed up, best of three; the processes alternate
``--repeat`` times so that a noisy machine hits both alike. Prints the real-time factors and new ÷ old. Make the
other checkout with ``git worktree add PATH COMMIT``. ``--old-models`` / ``--new-models`` give a side its own
checkpoint folder (and target-file folder), so that one checkout times a candidate model against the shipped one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import stemsplit
from stemsplit import audio as audio_io
from stemsplit.separate import Separator
a, sr = audio_io.load(sys.argv[2])
a = np.tile(a, (1, int(sys.argv[3])))
models = sys.argv[4:]
kw = {"checkpoint_dirs": models[:1], "targets_dir": models[1:] or None}
out = {"path": stemsplit.__file__}
for targets in (["vocals"], ["vocals", "drums", "bass", "other"]):
    sep = Separator(targets, **kw)
    sep.separate(a, sr)
    ts = []
    for _ in range(3):
        t = time.perf_counter(); sep.separate(a, sr); ts.append(time.perf_counter() - t)
    out[str(len(targets))] = a.shape[1] / sr / min(ts)
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", default=".")
    ap.add_argument("--audio", required=True)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tile", type=int, default=2)
    for side in ("old", "new"):
        ap.add_argument(f"--{side}-models", nargs="+", default=[], metavar="DIR",
                        help="checkpoint folder [target-file folder] for this side (default: the shipped models)")
    args = ap.parse_args(argv)
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.repeat):
        for label in ("old", "new"):
            res = subprocess.run([sys.executable, "-c", CHILD, getattr(args, label), args.audio, str(args.tile),
                                  *getattr(args, f"{label}_models")],
                                 capture_output=True, text=True, check=True)
            runs[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    for key, name in (("1", "vocals-only"), ("4", "four targets")):
        old = [r[key] for r in runs["old"]]
        new = [r[key] for r in runs["new"]]
        print(f"{name}: old {', '.join(f'{v:.1f}x' for v in old)} | new {', '.join(f'{v:.1f}x' for v in new)} | "
              f"new / old (best of each) {max(new) / max(old):.3f}")


if __name__ == "__main__":
    main()
