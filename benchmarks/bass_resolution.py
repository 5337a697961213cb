"""Would a finer frequency grid help bass? A probe of what the mix's low band tells apart, before building one.

    python benchmarks/bass_resolution.py --fit-root ROOT [--fit-root ROOT2 ...] \\
        --musdb-root ROOT --tracks "NAME,NAME" [--musdb-root ROOT2 --tracks NAME ...] [--steps 3000] [--seeds 2]

The shipped grid has 21.5 Hz bins (1,024 samples at 22.05 kHz), so 120-250 Hz, where the bass model cannot tell
bass from the rest on new songs (docs/training.md, "Bass: a generalisation gap"), is six bins, and the notes of a
bass line (a semitone is 6-15 Hz there) are not resolved. Peers analyse with 4,096 samples at 44.1 kHz (10.8 Hz
bins). This script asks whether the finer spectrum carries information about *who dominates those six bins* that
carries over to new songs, with the same small probe on two inputs:

- ``coarse``: the mixture's log magnitude on the shipped grid, bins 0-580 Hz, 25 frames (the model's window);
- ``fine``: the same band from an STFT four times longer (5.4 Hz bins), same hop, 7 frames (its window already
  spans 0.19 s, so both see about 0.3 s).

The probe is a one-hidden-layer network (128 units) with six outputs, one per bin from 120 to 250 Hz, trained
on the ``--fit-root`` songs (tracks named in ``--tracks`` are left out) to the ideal binary label (bass louder
than the rest of the mix in that bin), each bin weighted by the mix magnitude. It is judged on the held-out
tracks by the energy-weighted ROC AUC of its score against that label, beside the shipped bass model's own
score on the same bins. A finer grid is worth building if the ``fine`` probe beats the ``coarse`` one on songs
it never saw, not only on its training songs (both are printed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from stereo_cue import fit_and_held  # noqa: E402

from stemsplit import spectral  # noqa: E402
from stemsplit.separate import Separator  # noqa: E402

BAND_HZ = (120.0, 250.0)   # the bins the probe labels (centre frequencies)
INPUT_HZ = 580.0           # the input band of both probes
INPUTS = {"coarse": (1, 25), "fine": (4, 7)}   # FFT length factor, frames of context


def _context(x: np.ndarray, frames: int) -> np.ndarray:
    """(time, bins) -> (time, frames * bins): each frame with its neighbours (zero beyond the ends)."""
    h = frames // 2
    p = np.pad(x, ((h, h), (0, 0)))
    return np.concatenate([p[i:i + len(x)] for i in range(frames)], axis=1)


def song(sep: Separator, mix: np.ndarray, ref: np.ndarray, sr: int, stride: int) -> dict:
    """Inputs, labels, weights and the shipped model's scores on the six bins for one song."""
    g = spectral.FRONTEND.grid(sr)
    bin_hz = sr / g.n_fft
    band = [k for k in range(g.n_bins) if BAND_HZ[0] <= k * bin_hz <= BAND_HZ[1]]
    mono = mix.mean(0, keepdims=True)
    coarse = spectral.signal_stft(mono, g)[0]
    tgt = spectral.signal_stft(ref.mean(0, keepdims=True), g)[0, band]
    mag = np.abs(coarse)
    out = {"y": (np.abs(tgt) > np.abs(coarse[band] - tgt)).T.astype(np.float32), "w": mag[band].T.copy()}
    for name, (factor, frames) in INPUTS.items():
        grid = g if factor == 1 else spectral.Frontend(n_fft=spectral.FRONTEND.n_fft * factor).grid(sr)
        m = mag if factor == 1 else np.abs(spectral.signal_stft(mono, grid)[0])
        top = int(INPUT_HZ / (sr / grid.n_fft)) + 1
        feats = np.log1p(m[:top].T * (spectral.FRONTEND.n_fft / grid.n_fft) / spectral.FRONTEND.log_floor)
        out[name] = _context(feats.astype(np.float32), frames)
    spec = spectral.signal_stft(mix, g)
    out["model"] = sep.signal_scores(spectral.features(spec, g))[0][band].T
    return {k: v[::stride] for k, v in out.items()}


def weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    """ROC AUC of scores ``s`` for labels ``y``, each sample weighted by ``w`` (ties count half)."""
    order = np.argsort(s.ravel(), kind="stable")
    y, s, w = y.ravel()[order], s.ravel()[order], w.ravel()[order]
    _, first = np.unique(s, return_index=True)
    neg = np.add.reduceat(w * (1 - y), first)
    pos = np.add.reduceat(w * y, first)
    below = np.cumsum(neg) - neg
    return float(np.sum(pos * (below + 0.5 * neg)) / max(pos.sum() * neg.sum(), 1e-12))


def train_probe(X: np.ndarray, y: np.ndarray, w: np.ndarray, steps: int, seed: int = 0):
    """A 128-unit probe fitted by Adam on weighted binary cross-entropy; returns a scoring function."""
    mu, sd = X.mean(0), X.std(0) + 1e-3
    w = w / w.mean()
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    d, out = X.shape[1], y.shape[1]
    params = {"w1": jax.random.normal(k1, (d, 128)) * np.sqrt(2.0 / d), "b1": jnp.zeros(128),
              "w2": jax.random.normal(k2, (128, out)) * np.sqrt(1.0 / 128), "b2": jnp.zeros(out)}

    def logits(p, x):
        return jax.nn.leaky_relu((x - mu) / sd @ p["w1"] + p["b1"], 0.01) @ p["w2"] + p["b2"]

    def loss(p, x, t, v):
        z = logits(p, x)
        return jnp.mean(v * optax.sigmoid_binary_cross_entropy(z, t))

    opt = optax.adamw(optax.cosine_decay_schedule(1e-3, steps, 0.05), weight_decay=1e-4)
    state = opt.init(params)

    @jax.jit
    def step(p, st, x, t, v):
        g = jax.grad(loss)(p, x, t, v)
        upd, st = opt.update(g, st, p)
        return optax.apply_updates(p, upd), st

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        i = rng.integers(0, len(X), 1024)
        params, state = step(params, state, X[i], y[i], w[i])
    return lambda x: np.asarray(jax.nn.sigmoid(logits(params, jnp.asarray(x))))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit-root", action="append", required=True, help="MUSDB-layout folder of training songs")
    ap.add_argument("--fit-seconds", type=float, default=120.0)
    ap.add_argument("--musdb-root", action="append", required=True)
    ap.add_argument("--tracks", action="append", required=True, help="comma-separated names, one list per root")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--stride", type=int, default=2, help="keep every n-th training frame")
    ap.add_argument("--seeds", type=int, default=2, help="probes trained per input (their spread is the noise)")
    args = ap.parse_args(argv)
    sep = Separator(["bass"], residual=False)
    fit, held = fit_and_held(args, sep.maker.specs[0].stems,
                             lambda mix, ref, sr, is_held: song(sep, mix, ref, sr, 1 if is_held else args.stride))
    cat = {k: np.concatenate([s[k] for s in fit]) for k in fit[0]}
    print(f"probes fitted on {len(fit)} songs, {len(cat['y'])} frames x {cat['y'].shape[1]} bins "
          f"({cat['y'].mean():.2f} of the bins bass-dominated); held out: {', '.join(n for n, _ in held)}")
    rows = {"shipped bass model's score": ([weighted_auc(s["y"], s["model"], s["w"]) for _, s in held],
                                           weighted_auc(cat["y"], cat["model"], cat["w"]))}
    for name in INPUTS:
        for seed in range(args.seeds):
            probe = train_probe(cat[name], cat["y"], cat["w"], args.steps, seed)
            rows[f"probe on the {name} input ({cat[name].shape[1]} values), seed {seed}"] = (
                [weighted_auc(s["y"], probe(s[name]), s["w"]) for _, s in held],
                weighted_auc(cat["y"], probe(cat[name]), cat["w"]))
    print("\nenergy-weighted ROC AUC in 120-250 Hz (bass dominates the bin or not):\n")
    print("| score | " + " | ".join(n for n, _ in held) + " | training songs |")
    print("| --- |" + " --- |" * (len(held) + 1))
    for label, (vals, train_auc) in rows.items():
        print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {train_auc:.3f} |")


if __name__ == "__main__":
    main()
