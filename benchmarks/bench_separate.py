"""Separation speed: end-to-end real-time factor beside the article's per-frame sliding window, same run.

    python benchmarks/bench_separate.py [--seconds 180] [--targets vocals,drums,bass,other] [--json out.json]

Audio: a generated stereo 44.1 kHz signal (speed does not depend on content). Models: the shipped checkpoints
when present, else random weights of the same size (speed does not depend on the weights either).
Reported:
- ``fully_convolutional``: ``Separator.separate`` end to end (STFT, 4 models, dominance masks, inverse STFT),
  warmed up (compilation excluded, measured separately);
- ``sliding_window_per_frame``: the article's inference, one 25-frame window per model call, timed on a few
  hundred frames and extrapolated to the file;
- ``sliding_window_batched``: the same windows, 512 per call (a generous version of the per-frame method).
Real-time factor = audio seconds / wall seconds (higher is faster); ratios are the robust figure on a noisy box.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from stemsplit import spectral
from stemsplit.model import MaskCNN
from stemsplit.separate import LoadedTarget, Separator, load_target
from stemsplit.targets import get_targets


def _loaded(names: list[str]) -> tuple[list[LoadedTarget], str]:
    specs = get_targets(names)
    out, kinds = [], set()
    for i, s in enumerate(specs):
        if s.find_checkpoint() is not None:
            out.append(load_target(s))
            kinds.add("shipped checkpoints")
        else:
            m = MaskCNN(s.model, rngs=nnx.Rngs(i))
            m.eval()
            out.append(LoadedTarget(s, m, None, {}))
            kinds.add("random weights")
    return out, " + ".join(sorted(kinds))


def _signal(seconds: float, sr: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    return np.stack([tone + 0.05 * rng.standard_normal(t.size), tone + 0.05 * rng.standard_normal(t.size)]
                    ).astype(np.float32)


def per_frame_seconds(models: list[MaskCNN], frames_total: int, *, batch: int, probe: int) -> float:
    """Wall time the sliding-window method needs for ``frames_total`` frames per model (extrapolated)."""
    total = 0.0
    for m in models:
        gd, st = nnx.split(m)
        fn = jax.jit(lambda s, x, gd=gd: jax.nn.sigmoid(nnx.merge(gd, s).sliding_window(x)))
        x = jnp.asarray(np.random.default_rng(0).standard_normal((1, batch + 24, 513)).astype(np.float32))
        fn(st, x).block_until_ready()
        calls = max(1, probe // batch)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(st, x).block_until_ready()
        per_frame = (time.perf_counter() - t0) / (calls * batch)
        total += per_frame * frames_total
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--targets", default="vocals,drums,bass,other")
    p.add_argument("--sr", type=int, default=44100)
    p.add_argument("--json", help="write the figures here too")
    args = p.parse_args()
    names = args.targets.split(",")
    loaded, kind = _loaded(names)
    x = _signal(args.seconds, args.sr)
    sep = Separator(loaded=loaded)
    t0 = time.perf_counter()
    sep.separate(x[:, : args.sr * 30], args.sr)  # compiles the block shapes used below
    compile_s = time.perf_counter() - t0
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        sep.separate(x, args.sr)
        runs.append(time.perf_counter() - t0)
    fc = min(runs)
    frames = spectral.FRONTEND.grid(args.sr).n_frames(x.shape[1])
    models = [t.model for t in loaded]
    pf = per_frame_seconds(models, frames, batch=1, probe=200)
    pb = per_frame_seconds(models, frames, batch=512, probe=2048)
    res = {
        "audio_seconds": args.seconds, "sample_rate": args.sr, "channels": 2, "targets": names, "models": kind,
        "frames_per_target": frames, "devices": str(jax.devices()), "warmup_compile_s": round(compile_s, 2),
        "fully_convolutional_s": round(fc, 3), "fully_convolutional_rtf": round(args.seconds / fc, 1),
        "sliding_window_per_frame_s": round(pf, 1), "sliding_window_per_frame_rtf": round(args.seconds / pf, 2),
        "sliding_window_batched_s": round(pb, 1), "sliding_window_batched_rtf": round(args.seconds / pb, 2),
        "speedup_vs_per_frame": round(pf / fc, 1), "speedup_vs_batched_windows": round(pb / fc, 1),
    }
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
