"""The engine under offline separation, streaming and vocal activity: targets and their models, running the
models over blocks of features, and turning their scores into stems.

- :func:`find_targets` / :func:`load_target`: target files, then their checkpoints, as :class:`LoadedTarget`.
- :class:`ModelRunner`: several models over one block of features in one compiled call, padded to a few
  bucket sizes (:func:`bucket`) so each compiles once. :class:`StreamRunner` feeds the same models row by row,
  keeping every layer's tail (each frame computed once).
- :func:`context_features`: what scoring frames ``[lo, hi)`` of a signal reads, with their context.
- :class:`StemMaker`: scores -> masks (dominance rule, soft ratios or a Wiener post-filter, optional vocal
  gating) -> inverse STFT -> stems that add up to the mix.

:class:`~stemsplit.separate.Separator`, :class:`~stemsplit.stream.StreamSeparator` and
:class:`~stemsplit.vad.ActivityDetector` are thin drivers over these pieces.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from . import _alloc, checkpoint, masks, spectral
from . import model as model_lib
from .errors import CheckpointError, MissingCheckpointError, OptionError
from .model import MaskCNN
from .targets import TargetSpec, get_targets

__all__ = ["DEFAULT_THRESHOLD", "LoadedTarget", "load_target", "find_targets", "residual_name", "bucket",
           "context_plan", "ModelRunner", "Pending", "StreamRunner", "ContextFeatures", "context_features", "StemMaker",
           "BLOCK_MARGIN", "ProgressFn"]

#: ``progress(samples_done, samples_total)``, called after each block
ProgressFn = Callable[[int, int], None]

DEFAULT_THRESHOLD = 0.5

#: frames a block's inverse transform needs beyond its own (the window spans ~4 hops) plus slack
BLOCK_MARGIN = 8


# -- targets ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadedTarget:
    """A target with its trained model.

    A spec without a threshold takes the one calibrated for the checkpoint (``metadata["training"]
    ["threshold"]``), else :data:`DEFAULT_THRESHOLD`; ``spec.threshold`` is always a number here.
    """

    spec: TargetSpec
    model: MaskCNN
    checkpoint: Path | None
    metadata: dict

    def __post_init__(self) -> None:
        if self.spec.threshold is None:
            t = (self.metadata.get("training") or {}).get("threshold", DEFAULT_THRESHOLD)
            object.__setattr__(self, "spec", replace(self.spec, threshold=float(t)))


def load_target(spec: TargetSpec, checkpoint_dirs: Sequence[str | os.PathLike] = ()) -> LoadedTarget:
    """Load a target's checkpoint; a missing one raises an error saying how to train it."""
    path = spec.find_checkpoint(checkpoint_dirs)
    if path is None:
        where = spec.checkpoint_candidates(checkpoint_dirs)
        raise MissingCheckpointError(
            f"Target {spec.name!r} has no trained checkpoint (looked for {where[0] if where else spec.checkpoint_file}"
            f"{' and elsewhere' if len(where) > 1 else ''}). Train one with: "
            f"stemsplit train --target {spec.name} --musdb-root PATH/TO/MUSDB18")
    model, stored, meta = checkpoint.load_model(path)
    if stored.model != spec.model or stored.task != spec.task:
        raise CheckpointError(f"Checkpoint {path} was trained for a different {spec.name!r} model "
                              f"({stored.task}, {stored.model}); retrain it or fix the target file.")
    return LoadedTarget(spec=spec, model=model, checkpoint=path, metadata=meta)


def find_targets(names: Sequence[str], *, task: str,
                 targets_dir: Sequence[str | os.PathLike] | None = None) -> list[TargetSpec]:
    """Target specs by name, each checked to be of ``task`` (``"mask"`` or ``"activity"``); reads no checkpoint."""
    specs = get_targets(list(names), targets_dir)
    for s in specs:
        if s.task != task:
            if task == "mask":
                raise OptionError(f"Target {s.name!r} detects activity; it cannot separate a stem "
                                  "(use stemsplit.detect_vocals).")
            raise OptionError(f"Target {s.name!r} separates a stem; vocal activity needs an activity target "
                              "such as 'vocal-activity'.")
    return specs


def residual_name(specs: Sequence[TargetSpec]) -> str:
    """Name of the stem holding what no target takes."""
    return "accompaniment" if [s.name for s in specs] == ["vocals"] else "residual"


# -- running the models ----------------------------------------------------------------------------------------
def bucket(n: int, cap: int | None = None, smallest: int = 64) -> int:
    """A padded length for ``n`` frames, so that few shapes (few compilations) occur: the next power of two from
    ``smallest``, at most ``cap`` (``n`` itself past ``cap``: a caller scoring a long signal at once)."""
    if cap is not None and n > cap:
        return n
    size = smallest
    while size < n:
        size *= 2
    return size if cap is None else min(size, cap)


@dataclass
class Pending:
    """Model outputs under way (JAX dispatches asynchronously); :meth:`ModelRunner.collect` waits for them."""

    outputs: list[jax.Array]
    frames: int


def context_plan(models: Sequence[MaskCNN]) -> tuple[int, tuple[int, ...]]:
    """How models with different windows share one features stream: the frames of context it carries on each
    side of a frame (the widest model's half window; the article's 12 for no model), and per model the rows by
    which its own window falls short of that on each side (what it skips offline, or is held back in a stream)."""
    fields = [model_lib.receptive_field(m.config) for m in models]
    half = max(fields, default=model_lib.receptive_field()) // 2
    return half, tuple(half - f // 2 for f in fields)


class ModelRunner:
    """Runs several targets' models on one features block inside a single compiled function.

    (A ``vmap`` over stacked parameters turns the convolutions into batched-kernel convolutions, which XLA's
    CPU backend runs about 15x slower than one plain convolution per model; see docs/performance.md.)
    Inputs are padded to :func:`bucket` sizes so each compiles once. Models may see different spans of context
    (:func:`stemsplit.model.receptive_field`): the features carry the widest, and each model reads the middle
    of them it needs. Creating one raises the C allocator's thresholds (:func:`stemsplit._alloc.tune`), so
    that each call's scratch memory is reused instead of mapped afresh.
    """

    def __init__(self, models: Sequence[MaskCNN]):
        _alloc.tune()
        split = [nnx.split(m) for m in models]
        self.graphdefs = tuple(g for g, _ in split)
        self.states = tuple(s for _, s in split)
        #: frames of context the features carry on each side of the frames to score, and the rows each model
        #: skips at either end of the features (:func:`context_plan`)
        self.half_context, self.crops = context_plan(models)
        self.context = 2 * self.half_context  # rows of context the features carry beyond the frames

    @staticmethod
    @functools.partial(jax.jit, static_argnums=(0, 1))
    def _apply(graphdefs, crops, states, x):
        return [jax.nn.sigmoid(nnx.merge(g, s)(x[None, c:x.shape[0] - c])[0])
                for g, c, s in zip(graphdefs, crops, states, strict=True)]

    def scratch_bytes(self, frames: int, n_bins: int = 513) -> int:
        """Scratch memory (bytes) the compiled call allocates and frees each time it scores ``frames`` frames of
        ``n_bins``-bin features (XLA's memory analysis; compiles that shape)."""
        x = jnp.zeros((frames + self.context, n_bins), jnp.float32)
        compiled = self._apply.lower(self.graphdefs, self.crops, self.states, x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    def dispatch(self, feats: np.ndarray, cap: int | None = None) -> Pending:
        """Start the models on features ``(frames + context, bins)`` (the frames to score with their context,
        as :func:`context_features` gives), padded to ``bucket(frames, cap)``; returns without waiting."""
        frames = feats.shape[0] - self.context
        size = bucket(frames, cap)
        x = np.zeros((size + self.context, feats.shape[1]), dtype=np.float32)
        x[:feats.shape[0]] = feats
        return Pending(self._apply(self.graphdefs, self.crops, self.states, jnp.asarray(x)), frames)

    @staticmethod
    def collect(pending: Pending) -> list[np.ndarray]:
        """Wait for :meth:`dispatch`'s results: one ``(frames, outputs)`` array per model."""
        return [np.asarray(o)[:pending.frames] for o in pending.outputs]

    def __call__(self, feats: np.ndarray, cap: int | None = None) -> list[np.ndarray]:
        """Scores of the frames of ``feats`` (frames + context, bins): one ``(frames, outputs)`` array per model."""
        return self.collect(self.dispatch(feats, cap))


class StreamRunner:
    """The same models fed row by row (:func:`stemsplit.model.stream_apply`), each frame computed once.

    Output row ``j`` of a fresh runner is the frame whose window (the widest model's) ends at input row ``j``:
    the first :attr:`warmup` rows precede the first frame. A model with a narrower window sees its input delayed
    by the difference, so that every model's row ``j`` is the same frame.
    """

    def __init__(self, models: Sequence[MaskCNN]):
        split = [nnx.split(m) for m in models]
        self.graphdefs = tuple(g for g, _ in split)
        self.states = tuple(st for _, st in split)
        #: frames of context each side of a frame (the widest model's; :func:`context_plan`)
        self.half_context, delays = context_plan(models)
        self.warmup = 2 * self.half_context
        # per model: the input rows still held back (its delay), then every layer's tail
        self.tails = [[jnp.zeros((d, m.config.n_bins), jnp.float32)] + model_lib.stream_init(m)
                      for m, d in zip(models, delays, strict=True)]

    @staticmethod
    @functools.partial(jax.jit, static_argnums=0)
    def _apply(graphdefs, states, tails, x, n):
        outs, new = [], []
        for g, st, t in zip(graphdefs, states, tails, strict=True):
            held, delay = t[0], t[0].shape[0]
            xd = jnp.concatenate([held, x])  # this model's input, ``delay`` rows behind
            o, t2 = model_lib.stream_apply(nnx.merge(g, st), t[1:], xd[:x.shape[0]], n)
            outs.append(jax.nn.sigmoid(o))
            new.append([jax.lax.dynamic_slice_in_dim(xd, n, delay)] + t2)
        return outs, new

    def __call__(self, rows: np.ndarray) -> list[np.ndarray]:
        """Feed feature rows ``(n, bins)``; one ``(n, outputs)`` array per model."""
        n = rows.shape[0]
        x = np.zeros((bucket(n, smallest=1), rows.shape[1]), np.float32)
        x[:n] = rows
        outs, self.tails = self._apply(self.graphdefs, self.states, self.tails, jnp.asarray(x), n)
        return [np.asarray(o)[:n] for o in outs]


@dataclass(frozen=True)
class ContextFeatures:
    """Model input for frames ``[lo, hi)`` of a signal, with their context.

    Attributes
    ----------
    features : np.ndarray
        ``(hi - lo + context, bins)``: zeros where context frames fall outside the signal.
    spec : np.ndarray
        Complex STFT of the frames read, ``(channels, bins, frames)``, starting at frame ``first``.
    first : int
        Index of ``spec``'s first frame.
    segment : np.ndarray
        The samples read, starting at sample ``start`` (may be negative: zeros before the signal).
    start : int
    """

    features: np.ndarray
    spec: np.ndarray
    first: int
    segment: np.ndarray
    start: int

    def frames(self, lo: int, hi: int) -> np.ndarray:
        """The complex STFT of frames ``[lo, hi)`` (within what was read)."""
        return self.spec[:, :, lo - self.first:hi - self.first]

    def samples(self, a: int, b: int) -> np.ndarray:
        """Samples ``[a, b)`` of the signal (within what was read)."""
        return self.segment[:, a - self.start:b - self.start]


def context_features(reader, grid: spectral.Grid, lo: int, hi: int, total: int,
                     half_context: int | None = None) -> ContextFeatures:
    """Read and analyse what the models need to score frames ``[lo, hi)`` of a ``total``-frame signal, with
    ``half_context`` frames of context each side (the :class:`ModelRunner`'s; by default the article's 12)."""
    hc = grid.frontend.half_context if half_context is None else half_context
    f_lo, f_hi = max(0, lo - hc), min(total, hi + hc)
    s0, s1 = spectral.frame_span(grid, f_lo, f_hi - f_lo)
    seg = reader.read(s0, s1)
    spec = spectral.stft(seg, grid)
    feats = np.zeros((hi - lo + 2 * hc, grid.frontend.n_bins), dtype=np.float32)
    feats[f_lo - (lo - hc):f_hi - (lo - hc)] = spectral.features(spec, grid)
    return ContextFeatures(features=feats, spec=spec, first=f_lo, segment=seg, start=s0)


# -- scores to stems -------------------------------------------------------------------------------------------
class StemMaker:
    """Turns the models' scores for a stretch of frames into stems: the rule every driver shares.

    Parameters
    ----------
    specs : sequence of TargetSpec
        The mask targets, in output order (thresholds set).
    mask : {"binary", "soft", "wiener"}
        Validated here (:func:`stemsplit.masks.check_mode`).
    residual : bool
        Also produce what no target takes (named by :func:`residual_name`).
    gate : TargetSpec, optional
        An activity target whose frame scores (the last model's output) silence the vocals mask where no voice
        is heard; what it removes goes to the residual.
    rule : {"lead", "priority", "score"}
        Who gets a bin several targets claim (:func:`stemsplit.masks.combine`); the other rules are kept for
        comparisons (``benchmarks/compare_checkpoints.py --rules``).
    """

    def __init__(self, specs: Sequence[TargetSpec], *, mask: str = "binary", residual: bool = True,
                 gate: TargetSpec | None = None, rule: str = "lead"):
        self.mask = masks.check_mode(mask)
        self.rule = masks.check_rule(rule)
        self.specs = list(specs)
        self.residual = residual
        self.gate = gate
        if gate is not None:
            if "vocals" not in [s.name for s in self.specs]:
                raise OptionError("gate_vocals needs the vocals target among the targets.")
            if gate.task != "activity":
                raise OptionError(f"Target {gate.name!r} is not an activity detector.")
        self.stem_names = [s.name for s in self.specs] + ([residual_name(self.specs)] if residual else [])

    def scores(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        """The targets' scores ``(targets, bins, frames)`` from the runners' per-model ``(frames, bins)``."""
        # a transposed view of the outputs' frame-by-frame memory: the masks keep that order
        # (stemsplit.masks), and so multiply the spectrum, laid out the same way, without a copy
        return np.swapaxes(np.stack(outputs[:len(self.specs)]), 1, 2)

    def masks_from_scores(self, scores: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Target masks ``(targets, n_bins, frames)`` on an input grid from scores ``(targets, bins, frames)``,
        and the residual's share ``(n_bins, frames)`` (a Wiener filter starts from the soft masks)."""
        return masks.combine_on_grid(scores, n_bins, thresholds=[s.threshold for s in self.specs],
                                     priorities=[s.priority for s in self.specs], mode=self.mask,
                                     exhaustive=not self.residual and len(self.specs) > 1, rule=self.rule)

    def masks(self, outputs: Sequence[np.ndarray], n_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`masks_from_scores` of the runners' outputs, with the vocals gated by the activity model."""
        m, rest = self.masks_from_scores(self.scores(outputs), n_bins)
        if self.gate is not None:
            voiced = (outputs[-1][:, 0] >= self.gate.threshold)[None, :]
            k = [s.name for s in self.specs].index("vocals")
            m = m.copy(order="K")
            rest = rest + m[k] * ~voiced
            m[k] *= voiced
        return m, rest

    def stems(self, outputs: Sequence[np.ndarray], spec: np.ndarray, grid: spectral.Grid, lo: int, total: int,
              a: int, b: int, mix: np.ndarray) -> list[np.ndarray]:
        """Stem samples ``[a, b)`` in :attr:`stem_names` order.

        Parameters
        ----------
        outputs : sequence of np.ndarray
            Per model (targets, then the gate), ``(frames, outputs)`` for frames ``[lo, lo + frames)``: every
            frame overlapping ``[a, b)`` (:func:`stemsplit.spectral.frames_overlapping`).
        spec : np.ndarray
            The mix's complex STFT of those frames, ``(channels, bins, frames)``.
        mix : np.ndarray
            The mix's samples ``[a, b)``; the residual is the mix minus the targets, so all add up exactly.
        """
        m, rest = self.masks(outputs, grid.n_bins)
        if self.mask == "wiener":
            est = masks.wiener(m, rest, spec)
            targets = [spectral.overlap_add(e, grid, lo, total, a, b) for e in est]
        else:  # one stem at a time keeps the inverse transform's buffers to one stem's size
            # products in the spectrum's frame-by-frame memory order, which the inverse transform reads without a copy
            frames_first = np.swapaxes(spec, -1, -2)
            targets = [spectral.overlap_add(np.swapaxes(mk.T[None] * frames_first, -1, -2), grid, lo, total, a, b)
                       for mk in m]
        out = list(targets)
        if self.residual:
            out.append(mix - np.sum(targets, axis=0) if targets else mix)
        return out

    def silent(self, mix: np.ndarray) -> list[np.ndarray]:
        """The stems of a block of digital silence (no model needs to run)."""
        return [np.zeros_like(mix) for _ in self.specs] + ([mix] if self.residual else [])
