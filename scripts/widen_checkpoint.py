"""Widen a trained mask CNN without changing what it computes (Net2Net's "wider" step), so that a wider model
can continue training from a trained narrow one instead of from random weights.

    python scripts/widen_checkpoint.py checkpoints/vocals.npz WIDE.npz --conv-channels 24
    stemsplit train --target vocals --targets-dir DIR_WITH_A_24_FILTER_VOCALS_TOML --init WIDE.npz ...

Every convolution of the trunk gets ``--conv-channels`` filters instead of its ``c``: the first ``c`` are the
trained ones, each new one copies a trained filter chosen at random (kernel and bias). Wherever the trunk's
channels are read (the next convolution, the dense layer over the pooled maps, the local head, the decoder's skip
inputs), the weights that read a filter and its copies are that filter's trained weights divided by the number
of copies. Leaky ReLU and max pooling act channel by channel, so the wider model's logits equal the narrow
one's (``--noise 0``: to float rounding). ``--noise S`` (default 0.01) adds Gaussian noise of ``S`` times each
kernel's standard deviation to the copies' kernels, so that the copies can learn apart; the output then moves a
little (the script prints by how much, on random features). The checkpoint written is an ordinary one of the
wider model (its target spec has the new ``conv_channels``; ``training.widened_from`` records the source file's
name, hash and width); no code is executed on load, as for every checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def widen(model, spec, channels: int, *, noise: float = 0.01, seed: int = 0):
    """The wider model (``channels`` filters per trunk convolution) and its spec; see the module docstring."""
    import jax.numpy as jnp
    from flax import nnx

    from stemsplit.model import MaskCNN, layers

    cfg = model.config
    c = cfg.conv_channels
    if channels < c:
        raise SystemExit(f"--conv-channels {channels} is narrower than the checkpoint's {c}")
    rng = np.random.default_rng(seed)
    src = np.concatenate([np.arange(c), rng.integers(0, c, channels - c)]).astype(int)  # new channel -> old one
    count = np.bincount(src, minlength=c).astype(np.float32)
    share = (1.0 / count)[src]  # each reader's weight for a channel is split over its copies

    new_cfg = dataclasses.replace(cfg, conv_channels=channels)
    new_spec = dataclasses.replace(spec, model=new_cfg)
    wide = MaskCNN(new_cfg, rngs=nnx.Rngs(params=seed, dropout=seed))
    get = lambda p: np.asarray(p[...], np.float32)  # noqa: E731

    def out_copies(k: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k, b = k[..., src], b[src]
        if noise and channels > c:
            k = k.copy()
            k[..., c:] += rng.normal(0.0, noise * float(k[..., :c].std()), k[..., c:].shape).astype(np.float32)
        return k, b

    wide.in_shift[...] = model.in_shift[...]
    wide.in_scale[...] = model.in_scale[...]
    for name, kind, _ in layers(cfg):
        if kind != "conv":
            continue
        old, new = getattr(model, name), getattr(wide, name)
        k = get(old.kernel)  # (kh, kw, in, out)
        if name != "conv1":  # reads the trunk's channels
            k = k[:, :, src, :] * share[None, None, :, None]
        k, b = out_copies(k, get(old.bias))
        new.kernel[...], new.bias[...] = jnp.asarray(k), jnp.asarray(b)
    dk = get(model.dense.kernel)  # ((freq/9) * c, units), input index f * c + channel
    f = dk.shape[0] // c
    dk = dk.reshape(f, c, -1)[:, src, :] * share[None, :, None]
    wide.dense.kernel[...] = jnp.asarray(dk.reshape(f * channels, -1))
    wide.dense.bias[...] = model.dense.bias[...]
    wide.head.kernel[...], wide.head.bias[...] = model.head.kernel[...], model.head.bias[...]
    if model.local is not None:
        wide.local.kernel[...] = jnp.asarray(get(model.local.kernel)[src, :] * share[:, None])
        wide.local.bias[...] = model.local.bias[...]
    if cfg.decoder:
        n = cfg.decoder
        k3 = get(model.dec3.kernel)  # (1, 3, c, k)
        wide.dec3.kernel[...] = jnp.asarray(k3[:, :, src, :] * share[None, None, :, None])
        wide.dec3.bias[...] = model.dec3.bias[...]
        for name in ("dec2", "dec1"):  # inputs: [the decoder's n channels, the skip's c channels]
            old, new = getattr(model, name), getattr(wide, name)
            k = get(old.kernel)
            skip = k[:, :, n:, :][:, :, src, :] * share[None, None, :, None]
            new.kernel[...] = jnp.asarray(np.concatenate([k[:, :, :n, :], skip], axis=2))
            new.bias[...] = old.bias[...]
        wide.dec_out.kernel[...], wide.dec_out.bias[...] = model.dec_out.kernel[...], model.dec_out.bias[...]
    return wide, new_spec


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--conv-channels", type=int, required=True, help="filters per trunk convolution")
    ap.add_argument("--noise", type=float, default=0.01, help="noise on the copies' kernels, x the kernel's std")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import jax
    import jax.numpy as jnp

    from stemsplit import checkpoint
    from stemsplit.model import receptive_field

    if not args.checkpoint.is_file():
        raise SystemExit(f"{args.checkpoint}: no such checkpoint")
    if args.out.resolve() == args.checkpoint.resolve():
        raise SystemExit("write the wider checkpoint to a new file")
    model, spec, meta = checkpoint.load_model(args.checkpoint)
    wide, wide_spec = widen(model, spec, args.conv_channels, noise=args.noise, seed=args.seed)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, receptive_field(model.config) + 15, model.config.n_bins))
    a, b = np.asarray(jax.nn.sigmoid(model(x))), np.asarray(jax.nn.sigmoid(wide(x)))
    training = {**meta.get("training", {}),  # the content hash, as `stemsplit train --init` records its start
                "widened_from": {"path": args.checkpoint.name, "sha256": meta.get("sha256"),
                                 "conv_channels": model.config.conv_channels, "noise": args.noise, "seed": args.seed}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_model(args.out, wide, wide_spec, training=training)
    print(f"{args.checkpoint.name}: {model.config.conv_channels} -> {args.conv_channels} filters; mask values on "
          f"random features differ by at most {float(jnp.max(jnp.abs(a - b))):.2e}; written to {args.out}")


if __name__ == "__main__":
    main()
