"""Peak memory of separating a long file: `stemsplit separate` on a generated N-minute stereo 44.1 kHz FLAC.

    python benchmarks/bench_memory.py [--minutes 60] [--targets vocals,drums,bass,other] [--json out.json]

Runs the command line in a child process and reads its peak resident set size (``ru_maxrss``), beside the size
the input alone would take decoded in memory. Uses the shipped checkpoints when present, else a temporary
targets folder of random-weight models of the same size (memory does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def write_long_file(path: Path, minutes: float, sr: int = 44100) -> None:
    """Write the file in pieces so this process stays small too."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, format="FLAC", subtype="PCM_16") as fh:
        for i in range(int(minutes * 6)):
            t = (np.arange(sr * 10) + i * sr * 10) / sr
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
            fh.write(np.stack([tone + 0.05 * rng.standard_normal(t.size),
                               tone + 0.05 * rng.standard_normal(t.size)], axis=1))


def random_targets(folder: Path, names: list[str]) -> None:
    from flax import nnx

    from stemsplit import checkpoint
    from stemsplit.model import MaskCNN
    from stemsplit.targets import get_target, load_spec

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        src = get_target(name).source
        (folder / f"{name}.toml").write_text(src.read_text())
        spec = load_spec(folder / f"{name}.toml")
        checkpoint.save_model(folder / spec.checkpoint_file, MaskCNN(spec.model, rngs=nnx.Rngs(i)), spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--targets", default="vocals,drums,bass,other")
    p.add_argument("--json")
    args = p.parse_args()
    names = args.targets.split(",")
    from stemsplit.targets import get_targets

    shipped = all(s.find_checkpoint() for s in get_targets(names))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "long.flac"
        write_long_file(src, args.minutes)
        cmd = [sys.executable, "-m", "stemsplit", "separate", str(src), "-o", str(tmp / "out"), "--targets",
               args.targets, "-q"]
        if not shipped:
            random_targets(tmp / "targets", names)
            cmd += ["--targets-dir", str(tmp / "targets")]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        outputs = sorted(os.listdir(tmp / "out" / "long"))
    decoded_mb = args.minutes * 60 * 44100 * 2 * 4 / 2**20
    res = {"minutes": args.minutes, "targets": names, "models": "shipped" if shipped else "random weights",
           "peak_rss_mb": round(peak_mb), "input_decoded_mb": round(decoded_mb),
           "all_stems_in_memory_mb": round(decoded_mb * (len(names) + 2)), "wall_s": round(wall, 1),
           "real_time_factor": round(args.minutes * 60 / wall, 1), "outputs": outputs}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
