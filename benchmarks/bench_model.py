"""Model time of the presets: one fully convolutional pass over a 2,048-frame block (batch 1), median of 7.

    python benchmarks/bench_model.py [PRESET ...]      # default: article, article-local, article-dec

Ratios against ``article`` are measured in the same run (the machine is noisy; absolute times are not the point).
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from stemsplit.model import MaskCNN, model_config, receptive_field


def model_time(preset: str, frames: int = 2048, repeats: int = 7) -> float:
    """Median seconds of one jitted pass of ``preset`` over ``frames`` frames."""
    m = MaskCNN(model_config(preset), rngs=nnx.Rngs(0))
    m.eval()
    graphdef, state = nnx.split(m)
    f = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, frames + receptive_field(m.config) - 1, 513)).astype(np.float32))
    f(state, x).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(state, x).block_until_ready()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(presets: list[str]) -> None:
    times = {p: model_time(p) for p in presets}
    base = times.get("article", next(iter(times.values())))
    print("| preset | ms per 2,048 frames | ÷ article |")
    print("| --- | --- | --- |")
    for p, t in times.items():
        print(f"| {p} | {1000 * t:.1f} | {t / base:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["article", "article-local", "article-dec"])
