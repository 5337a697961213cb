"""A/B of learning speed: which features, normalisation, dropout and width make a mask CNN learn fastest.

    python benchmarks/ab_learning.py --root /work/corpus/synth --root /work/corpus/real \
        --root ../shared/data/real-stems --valid "MusicDelta - Beatles,MusicDelta - Grunge" \
        [--target vocals] [--batches 150] [--epochs 2] [--variants base,nodrop_norm,...]

Every variant trains on the same fixed in-memory batches (built once from the training sampler, raw magnitudes
cached in ``--cache``) and is scored on the same validation excerpts every 150 steps: validation MSE against the
label-prior baseline, bin accuracy, precision and recall at 0.5. Results are in docs/training.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import stemsplit.data.dataset as dataset
from stemsplit.data.dataset import ExampleSampler
from stemsplit.data.tracks import split_tracks
from stemsplit.model import MaskCNN, model_config

#: name -> (features, standardise inputs, lr, dropout or None for the article's, preset)
VARIANTS = {
    "base": ("log1p", False, 1e-3, None, "article"),
    "norm": ("log1p", True, 1e-3, None, "article"),
    "floor_norm": ("floor", True, 1e-3, None, "article"),
    "nodrop": ("log1p", False, 3e-3, 0.0, "article"),
    "nodrop_floor_norm": ("floor", True, 3e-3, 0.0, "article"),
    "nodrop_floor_norm_small": ("floor", True, 3e-3, 0.0, "small"),
    "nodrop_floor_norm_local": ("floor", True, 3e-3, 0.0, "article-local"),
    "nodrop_floor_norm_small_local": ("floor", True, 3e-3, 0.0, "small-local"),
}


def _raw_magnitudes(spec, grid):
    """What ``spectral.features`` averages and crops, before the log (so every feature variant can be built)."""
    mag = np.abs(spec[:, :grid.model_bins]).mean(axis=0) * grid.feature_scale
    out = np.zeros((grid.frontend.n_bins, spec.shape[-1]), np.float32)
    out[:grid.model_bins] = mag
    return np.ascontiguousarray(out.T)


def build(args) -> dict[str, np.ndarray]:
    cache = Path(args.cache)
    if cache.exists():
        return dict(np.load(cache))
    train, valid = split_tracks(args.root, is_wav=True, valid_names=args.valid.split(","))
    features = dataset.spectral.features
    dataset.spectral.features = _raw_magnitudes
    try:
        s = ExampleSampler(train, [args.target], frames=64)
        vs = ExampleSampler(valid, [args.target], frames=64)
        b = [s.batch(1, i, 16) for i in range(args.batches)]
        vb = [vs.batch(7, i, 16) for i in range(8)]
    finally:
        dataset.spectral.features = features
    data = {"M": np.stack([x for x, _ in b]), "Y": np.stack([y for _, y in b]),
            "VM": np.stack([x for x, _ in vb]), "VY": np.stack([y for _, y in vb])}
    np.savez(cache, **data)
    return data


def run(name: str, data: dict, epochs: int) -> list[tuple]:
    kind, norm, lr, drop, preset = VARIANTS[name]
    feat = (lambda m: np.log1p(m)) if kind == "log1p" else (lambda m: np.log1p(m / 1e-3))
    x_all, vx = feat(data["M"]).astype(np.float32), feat(data["VM"]).astype(np.float32)
    y_all, vy = data["Y"], data["VY"]
    over = {} if drop is None else {"conv_dropout": drop, "dense_dropout": drop}
    model = MaskCNN(model_config(preset, **over), rngs=nnx.Rngs(params=0, dropout=1))
    if norm:
        flat = x_all.reshape(-1, x_all.shape[-1])
        model.in_shift[...] = jnp.asarray(flat.mean(0))
        model.in_scale[...] = jnp.asarray(1.0 / (flat.std(0) + 0.1))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    n = len(x_all) * epochs
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adam(optax.warmup_cosine_decay_schedule(0.0, lr, 50, n, lr * 0.05)))
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x, y, key):
        def objective(p):
            logits = nnx.merge(graphdef, p, rest)(x, rngs=nnx.Rngs(dropout=key))
            return jnp.mean((jax.nn.sigmoid(logits) - y) ** 2)
        loss, g = jax.value_and_grad(objective)(params)
        u, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, u), opt, loss

    @jax.jit
    def evaluate(params, x, y):
        m = nnx.merge(graphdef, params, rest)
        m.eval()
        prob = jax.nn.sigmoid(m(x))
        p, t = prob > 0.5, y > 0.5
        tp = jnp.sum(p & t)
        return jnp.mean((prob - y) ** 2), jnp.mean(p == t), tp / (jnp.sum(p) + 1), tp / (jnp.sum(t) + 1)

    key, t0, rows = jax.random.PRNGKey(0), time.time(), []
    for i in range(n):
        key, k = jax.random.split(key)
        params, opt, loss = step(params, opt, x_all[i % len(x_all)], y_all[i % len(x_all)], k)
        if (i + 1) % 150 == 0 or i == n - 1:
            r = np.mean([evaluate(params, vx[j], vy[j]) for j in range(len(vx))], axis=0)
            rows.append((i + 1, float(loss), *map(float, r), time.time() - t0))
            print(f"{name} step {i + 1} loss {float(loss):.4f} val mse {r[0]:.4f} acc {r[1]:.3f} "
                  f"prec {r[2]:.3f} rec {r[3]:.3f} t {time.time() - t0:.0f}s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", action="append", required=True, help="MUSDB-layout folder (repeatable)")
    ap.add_argument("--valid", required=True, help="comma-separated validation track names")
    ap.add_argument("--target", default="vocals")
    ap.add_argument("--batches", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--cache", default="ab_learning_cache.npz")
    args = ap.parse_args()
    data = build(args)
    prior = float(np.mean((data["VY"] - data["Y"].mean()) ** 2))
    print(f"label prior {data['Y'].mean():.3f}; predicting it gives val mse {prior:.4f}")
    for v in args.variants.split(","):
        run(v, data, args.epochs)


if __name__ == "__main__":
    main()
