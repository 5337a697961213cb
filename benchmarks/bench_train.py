"""Training throughput in target frames per second: fully convolutional examples vs the article's single frame.

    python benchmarks/bench_train.py [--root DATASET] [--steps 30] [--json out.json]

For each example length (``--frames`` 64, 16 and 1 = the article's 25-frame window to one centre frame) it times
(a) the jitted optimizer step alone on a prepared batch and (b) the data pipeline alone (reading, augmenting,
STFT, labels), both after warm-up. Without ``--root`` a small generated MUSDB-layout folder is used.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from stemsplit.data.tracks import split_tracks
from stemsplit.targets import get_target
from stemsplit.train import TrainConfig, Trainer


def _generated_root(tmp: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.conftest import make_musdb

    return make_musdb(tmp, tracks=4, seconds=20.0, sr=44100)


def measure(spec, train, valid, frames: int, batch: int, steps: int, run_dir: Path) -> dict:
    cfg = TrainConfig(steps=10_000, batch=batch, frames=frames, val_every=10**9)
    tr = Trainer(spec, train, valid, cfg, run_dir)
    x, y = tr.sampler.batch(0, 0, batch)
    xg, yg = tr._global(x), tr._global(y)
    key = jax.random.key(0)
    params, opt, ema = tr.params, tr.opt_state, tr.ema
    for i in range(3):
        params, opt, ema, loss = tr._step(params, opt, ema, xg, yg, key, jnp.asarray(i, jnp.float32))
    jnp.asarray(loss).block_until_ready()
    t0 = time.perf_counter()
    for i in range(steps):
        params, opt, ema, loss = tr._step(params, opt, ema, xg, yg, key, jnp.asarray(3 + i, jnp.float32))
    jnp.asarray(loss).block_until_ready()
    step_s = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    n_data = max(3, steps // 5)
    for i in range(n_data):
        tr.sampler.batch(0, i + 1, batch)
    data_s = (time.perf_counter() - t0) / n_data
    return {"frames_per_example": frames, "batch": batch, "target_frames_per_step": batch * frames,
            "step_s": round(step_s, 4), "step_frames_per_s": round(batch * frames / step_s),
            "data_s": round(data_s, 4), "data_frames_per_s": round(batch * frames / data_s)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="MUSDB-layout wav folder (default: generated)")
    p.add_argument("--target", default="vocals")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--json")
    args = p.parse_args()
    spec = get_target(args.target)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else _generated_root(Path(tmp) / "data")
        train, valid = split_tracks([root], is_wav=True)
        rows = []
        for frames, batch in ((64, 16), (16, 64), (1, 256)):
            rows.append(measure(spec, train, valid, frames, batch, args.steps, Path(tmp) / f"run{frames}"))
            print(json.dumps(rows[-1]), flush=True)
    fc = rows[0]["step_frames_per_s"]
    art = rows[-1]["step_frames_per_s"]
    res = {"devices": str(jax.devices()), "model": spec.model.to_dict(), "rows": rows,
           "fully_convolutional_speedup_per_frame": round(fc / art, 1)}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
