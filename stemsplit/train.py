"""Training a target's mask CNN (or vocal activity detector) on MUSDB-layout data.

``train_step`` is a pure function, jitted where it is called, data-parallel over every JAX device through
``jax.sharding`` (batch split along a ``data`` mesh axis, parameters replicated) and over several hosts with
``jax.distributed``. Runs write a resumable state (parameters, optimizer state, step; the data sampler needs
no state since each batch depends only on the seed and the step), the best model, and metrics as JSON lines.
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import checkpoint
from .data.dataset import AugmentConfig, ExampleSampler
from .data.tracks import Track, split_tracks
from .errors import CheckpointError, DataError, OptionError, StemsplitError
from .evaluate import calibrate_checkpoint
from .model import MaskCNN, ModelConfig, receptive_field
from .model import layers as model_layers  # the trunk's layer list (``layers`` is a common local name here)
from .targets import TargetSpec

__all__ = ["TrainConfig", "Trainer", "make_optimizer", "loss_fn", "train_step", "train", "plot_metrics"]

LOSSES = ("mse", "bce", "wbce", "ebce", "tbce")
#: the losses on magnitude-ratio labels whose bins are weighted by the mix, and the power of its magnitude used
WEIGHTED_LOSSES = {"wbce": 1.0, "ebce": 2.0, "tbce": 1.0}
#: ``tbce``: the lowest target level, relative to the mix's, that an example is normalised by (so an example
#: without the target counts at most 1 / 0.2 = 5 times an example that is all target)
TARGET_LEVEL_FLOOR = 0.2
STATS_STREAM = 1_000_003  # sampler stream of the input statistics (training uses one stream per process)


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (all overridable from the command line).

    Parameters
    ----------
    steps : int
        Optimizer steps in total.
    batch : int
        Examples per step (global, over all devices and hosts).
    frames : int
        Frames predicted per example (1 = the article's 25-frame window to one centre frame).
    lr, warmup, min_lr_ratio : float, int, float
        Adam learning rate, linear warm-up steps, and the cosine decay's final fraction.
    clip : float
        Global gradient-norm clip.
    weight_decay : float
        Decoupled weight decay (AdamW) on the convolution and dense kernels, relative to the learning rate
        (0 = plain Adam). Biases and the input standardisation are not decayed.
    loss : {"mse", "bce", "wbce", "ebce", "tbce"}
        The article's mean squared error on sigmoid outputs against binary masks, binary cross-entropy against
        them, or ``"wbce"``: cross-entropy against magnitude-ratio labels (``|S| / (|S| + |R|)``), each bin
        weighted by the mix magnitude (normalised per example), so that loud bins, which carry the error SDR
        measures, count and near-silent ones do not; a score above 0.5 still means "the target dominates".
        ``"ebce"``: the same labels, each bin weighted by the mix's energy (magnitude squared, normalised per
        example), as SDR weighs errors. ``"tbce"``: as ``"wbce"``, but each example normalised by the level of
        the target it holds instead of the mix's (floored at :data:`TARGET_LEVEL_FLOOR` of the mix's), then to
        mean 1 over the batch: an excerpt's errors count relative to its target, as BSSEval's per-window SDR
        counts them, so excerpts where the target is quiet or absent weigh more.
    ema : float
        Decay of the exponential moving average of the weights that validation, the best model and the
        written checkpoint use (0 = the raw weights).
    seed : int
    val_every : int
        Steps between validations (loss on fixed excerpts, SDR of separated validation tracks).
    val_batches : int
        Fixed validation batches.
    val_seconds : float
        Seconds of each validation track separated for the SDR.
    patience : int
        Stop after this many validations without improvement (0 = never).
    save_every_s : float
        Seconds between resumable state writes.
    augment : AugmentConfig
    """

    steps: int = 20_000
    batch: int = 16
    frames: int = 64
    lr: float = 1e-3
    warmup: int = 200
    min_lr_ratio: float = 0.05
    clip: float = 1.0
    weight_decay: float = 0.0
    loss: str = "mse"
    ema: float = 0.0
    seed: int = 0
    val_every: int = 500
    val_batches: int = 8
    val_seconds: float = 30.0
    patience: int = 0
    save_every_s: float = 180.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise OptionError(f"Unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}.")
        for name in ("steps", "batch", "frames", "val_every"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.lr <= 0:
            raise OptionError(f"lr must be positive, got {self.lr}.")
        if not 0.0 <= self.weight_decay < 1.0:
            raise OptionError(f"weight_decay must be in [0, 1), got {self.weight_decay}.")
        if not 0.0 <= self.ema < 1.0:
            raise OptionError(f"ema must be in [0, 1), got {self.ema}.")

    @property
    def labels(self) -> str:
        """The mask labels the loss is defined on."""
        return "ratio" if self.loss in WEIGHTED_LOSSES else "binary"


def set_input_stats(model: MaskCNN, sampler: ExampleSampler, seed: int, batches: int = 8) -> None:
    """Start the model's per-bin input standardisation (``in_shift``, ``in_scale``) at the training data's
    mean and 1/std, as open-unmix does; both stay trainable. Drawn from a sampler stream the training batches
    never use, so the run stays a function of its seed."""
    x = np.concatenate([sampler.batch(seed, i, 16, stream=STATS_STREAM)[0].reshape(-1, model.config.n_bins)
                        for i in range(batches)])
    model.in_shift[...] = jnp.asarray(x.mean(axis=0))
    model.in_scale[...] = jnp.asarray(1.0 / (x.std(axis=0) + 0.1))


def _kernels(params):
    """True for the leaves of ``params`` that are weight matrices (``kernel``), False for the rest."""
    return jax.tree_util.tree_map_with_path(lambda path, _: "kernel" in jax.tree_util.keystr(path), params)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Adam (AdamW with ``cfg.weight_decay``) with warm-up and cosine decay, after global-norm clipping."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.lr, warmup_steps=min(cfg.warmup, max(cfg.steps - 1, 1)),
        decay_steps=max(cfg.steps, cfg.warmup + 1), end_value=cfg.lr * cfg.min_lr_ratio)
    if cfg.weight_decay:
        opt = optax.adamw(schedule, weight_decay=cfg.weight_decay, mask=_kernels)
    else:  # plain Adam keeps the optimizer state of runs started before weight decay existed
        opt = optax.adam(schedule)
    return optax.chain(optax.clip_by_global_norm(cfg.clip), opt)


def mix_weights(x: jax.Array, frames: int, power: float = 1.0, labels: jax.Array | None = None) -> jax.Array:
    """Per-bin loss weights from the model's input features ``(batch, frames + context, bins)``: the mix magnitude
    at the predicted frames (features are ``log1p`` of a scaled magnitude) to ``power`` (2: energy), normalised
    to mean 1 per example so that a quiet excerpt counts as much as a loud one. Shape ``(batch, frames, bins)``.

    With ``labels`` (magnitude ratios ``|S| / (|S| + |R|)``, ``(batch, frames, bins)``), each example is
    normalised by its target's level instead, ``mean(labels * |X|)`` (floored at :data:`TARGET_LEVEL_FLOOR`
    times the mix's), and the weights then to mean 1 over the batch (the ``"tbce"`` loss)."""
    half = (x.shape[1] - frames) // 2
    mag = jnp.expm1(x[:, half:half + frames])
    if power != 1.0:
        mag = mag ** power
    level = mag.mean(axis=(1, 2), keepdims=True)
    if labels is None:
        return mag / (level + 1e-8)
    target = (labels * mag).mean(axis=(1, 2), keepdims=True)
    w = mag / (jnp.maximum(target, TARGET_LEVEL_FLOOR * level) + 1e-8)
    return w / (w.mean() + 1e-8)


def loss_fn(logits: jax.Array, labels: jax.Array, kind: str, x: jax.Array | None = None) -> jax.Array:
    """Mean loss of sigmoid outputs against labels (see :class:`TrainConfig` ``loss``).

    ``x`` (the input features) gives the ``"wbce"`` and ``"ebce"`` weights; targets with one output (vocal
    activity) take plain cross-entropy.
    """
    if kind in WEIGHTED_LOSSES and x is not None and logits.shape[-1] == x.shape[-1]:
        w = mix_weights(x, logits.shape[1], WEIGHTED_LOSSES[kind], labels if kind == "tbce" else None)
        return (optax.sigmoid_binary_cross_entropy(logits, labels) * w).mean()
    if kind == "bce" or kind in WEIGHTED_LOSSES:
        return optax.sigmoid_binary_cross_entropy(logits, labels).mean()
    return jnp.mean((jax.nn.sigmoid(logits) - labels) ** 2)


def train_step(graphdef, params, rest, opt_state, ema, x, y, key, step, *, tx, loss_kind, ema_decay):
    """One optimizer step; pure. Returns ``(params, opt_state, ema, loss)``.

    ``ema`` is the moving average of the parameters (None when ``ema_decay`` is 0); its decay at ``step`` is
    ``min(ema_decay, (1 + step) / (10 + step))``, so that early averages are not dominated by the initial
    weights."""

    def objective(p):
        model = nnx.merge(graphdef, p, rest)
        return loss_fn(model(x, rngs=nnx.Rngs(dropout=key)), y, loss_kind, x)

    loss, grads = jax.value_and_grad(objective)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if ema_decay:
        d = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
        ema = jax.tree.map(lambda e, p: d * e + (1 - d) * p, ema, params)
    return params, opt_state, ema, loss


def eval_loss(graphdef, params, rest, x, y, *, loss_kind):
    """Loss and logits without dropout; pure."""
    logits = nnx.merge(graphdef, params, rest)(x)
    return loss_fn(logits, y, loss_kind, x), logits


class _Prefetcher:
    """Builds batches in a background thread (numpy STFTs release the GIL) while the step runs."""

    def __init__(self, make: Callable[[int], tuple[np.ndarray, np.ndarray]], start: int, stop: int, depth: int = 3):
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make, start, stop), daemon=True)
        self._thread.start()

    def _run(self, make, start, stop) -> None:
        try:
            for step in range(start, stop):
                item = (step, make(step))
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as e:  # surfaces in the consumer
            self._q.put((None, e))

    def get(self) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
        step, item = self._q.get()
        if step is None:
            raise item
        return step, item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Trainer:
    """A training run of one target.

    Parameters
    ----------
    spec : TargetSpec
    train_tracks, valid_tracks : list of Track
    config : TrainConfig
    run_dir : path-like
        Folder for ``state.npz``, ``best.npz``, ``metrics.jsonl``, ``config.json``.
    resume : bool
        Continue from ``run_dir/state.npz`` if present (else refuse to overwrite an existing run).
    data_note : str
        Where the data came from (kept in the checkpoint metadata).
    init : path-like, optional
        A model checkpoint of this target's model to start from (fine-tuning): its weights, including the input
        standardisation, replace the random initialisation; optimizer, schedule and step count start afresh.
        Used when the run starts; a resumed run continues from its own state.
    """

    def __init__(self, spec: TargetSpec, train_tracks: Sequence[Track], valid_tracks: Sequence[Track],
                 config: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False, data_note: str = "",
                 init: str | os.PathLike | None = None):
        self.spec, self.cfg, self.run_dir = spec, config, Path(run_dir)
        self.data_note = data_note
        self.init = None
        self.process, self.processes = jax.process_index(), jax.process_count()
        devices = jax.devices()
        if config.batch % len(devices):
            raise OptionError(f"batch {config.batch} must be a multiple of the {len(devices)} devices.")
        if config.batch % self.processes:
            raise OptionError(f"batch {config.batch} must be a multiple of the {self.processes} processes.")
        self.mesh = Mesh(np.array(devices), ("data",))
        self.data_sharding = NamedSharding(self.mesh, PartitionSpec("data"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        context = receptive_field(spec.model)
        self.sampler = ExampleSampler(train_tracks, spec.stems, frames=config.frames, task=spec.task,
                                      augment=config.augment, activity_threshold_db=spec.activity_db,
                                      labels=config.labels, context=context)
        self.valid_tracks = [t for t in valid_tracks if all(s in t.stems for s in spec.stems)
                             or t.musdb_track is not None]
        self.val_sampler = (ExampleSampler(self.valid_tracks, spec.stems, frames=config.frames, task=spec.task,
                                           augment=None, activity_threshold_db=spec.activity_db,
                                           labels=config.labels, context=context)
                            if self.valid_tracks else None)
        model = MaskCNN(spec.model, rngs=nnx.Rngs(config.seed))
        if not (self.run_dir / "state.npz").exists():
            if init is not None:
                self.init = _init_from(model, spec, init)
            # standardise the inputs from the data unless the start checkpoint lent its own statistics
            if init is None or "in_shift" not in self.init.get("layers", ["in_shift"]):
                set_input_stats(model, self.sampler, config.seed)
        model.train()
        self.graphdef, params, self.rest = nnx.split(model, nnx.Param, ...)
        eval_model = nnx.merge(self.graphdef, params, self.rest)
        eval_model.eval()
        self.eval_graphdef = nnx.split(eval_model, nnx.Param, ...)[0]
        self.tx = make_optimizer(config)
        opt_state = self.tx.init(params)
        self.step, self.best, self.bad_evals = 0, -math.inf, 0
        self.elapsed = 0.0
        state_path = self.run_dir / "state.npz"
        if state_path.exists():
            if not resume:
                raise OptionError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose "
                                  "another --run-dir.")
            params, opt_state, ema = self._load_state(state_path, params, opt_state)
        else:
            ema = jax.tree.map(jnp.copy, params) if config.ema else None
        self.params = jax.device_put(params, self.replicated)
        self.opt_state = jax.device_put(opt_state, self.replicated)
        self.ema = jax.device_put(ema, self.replicated)
        self._step = jax.jit(
            lambda p, o, e, x, y, k, i: train_step(self.graphdef, p, self.rest, o, e, x, y, k, i, tx=self.tx,
                                                   loss_kind=config.loss, ema_decay=config.ema),
            in_shardings=(self.replicated, self.replicated, self.replicated, self.data_sharding,
                          self.data_sharding, self.replicated, self.replicated),
            out_shardings=(self.replicated, self.replicated, self.replicated, self.replicated),
            donate_argnums=(0, 1, 2) if config.ema else (0, 1))
        self._eval = jax.jit(lambda p, x, y: eval_loss(self.eval_graphdef, p, self.rest, x, y,
                                                       loss_kind=config.loss))
        self.key = jax.random.key(config.seed)

    # -- state -------------------------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"kind": "train-state", "target": self.spec.to_dict(), "config": _jsonable(asdict(self.cfg)),
                "step": self.step, "best": self.best, "bad_evals": self.bad_evals, "elapsed": self.elapsed,
                "init": self.init}

    def _save_state(self) -> None:
        if self.process != 0:
            return
        arrays = {**checkpoint.tree_to_arrays(self.params, "param/"),
                  **checkpoint.tree_to_arrays(self.opt_state, "opt/")}
        if self.cfg.ema:
            arrays.update(checkpoint.tree_to_arrays(self.ema, "ema/"))
        checkpoint.save(self.run_dir / "state.npz", arrays, self._meta())

    def _load_state(self, path: Path, params, opt_state):
        arrays, meta = checkpoint.load(path)
        if meta.get("kind") != "train-state":
            raise CheckpointError(f"{path} is not a training state.")
        try:  # as a config, not a dict: settings added since the state was written take their defaults
            same = ModelConfig(**meta["target"]["model"]) == self.spec.model
        except (TypeError, StemsplitError):
            same = False
        if not same or meta["target"]["task"] != self.spec.task:
            raise CheckpointError(f"{path} was trained with a different model for {self.spec.name!r}.")
        saved = meta["config"]
        for k in ("batch", "frames", "loss", "seed", "steps", "ema", "weight_decay"):
            was = saved.get(k, TrainConfig.__dataclass_fields__[k].default)  # settings added later: their default
            if was != getattr(self.cfg, k):
                raise OptionError(f"Cannot resume {self.run_dir}: it was started with {k}={was}, "
                                  f"now {k}={getattr(self.cfg, k)}.")
        self.init = meta.get("init")
        self.step, self.best = int(meta["step"]), float(meta["best"])
        self.bad_evals, self.elapsed = int(meta["bad_evals"]), float(meta.get("elapsed", 0.0))
        params = checkpoint.arrays_to_tree(params, arrays, "param/", source=str(path))
        ema = checkpoint.arrays_to_tree(params, arrays, "ema/", source=str(path)) if self.cfg.ema else None
        return params, checkpoint.arrays_to_tree(opt_state, arrays, "opt/", source=str(path)), ema

    def model(self) -> MaskCNN:
        """The current parameters (their moving average when ``ema`` is set) as an evaluation-mode model."""
        m = nnx.merge(self.eval_graphdef, jax.device_get(self.ema if self.cfg.ema else self.params), self.rest)
        m.eval()
        return m

    def _log(self, record: dict) -> None:
        if self.process == 0:
            with open(self.run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")

    # -- data ----------------------------------------------------------------------------------------------
    def _local_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        per_process = self.cfg.batch // self.processes
        return self.sampler.batch(self.cfg.seed, step, per_process, stream=self.process)

    def _global(self, local: np.ndarray) -> jax.Array:
        if self.processes == 1:
            return jax.device_put(local, self.data_sharding)
        return jax.make_array_from_process_local_data(self.data_sharding, local)

    # -- validation ----------------------------------------------------------------------------------------
    def validate(self) -> dict:
        """Validation loss on fixed excerpts and, for mask targets, median SDR of separated validation tracks."""
        if self.val_sampler is None:
            return {}
        losses, correct = [], []
        for i in range(self.cfg.val_batches):
            x, y = self.val_sampler.batch(self.cfg.seed + 1_000_003, i, self.cfg.batch)
            loss, logits = self._eval(self.ema if self.cfg.ema else self.params, jnp.asarray(x), jnp.asarray(y))
            losses.append(float(loss))
            correct.append(np.mean((np.asarray(logits) >= 0) == (y >= 0.5)))
        out = {"val_loss": float(np.mean(losses))}
        if self.spec.task == "mask":
            out.update(self.validation_sdr())
        else:
            out["val_accuracy"] = float(np.mean(correct))
        return out

    #: binary-mask thresholds validated besides the target's own
    VAL_THRESHOLDS = (0.3, 0.4, 0.5)

    def _loaded(self):
        """The current (averaged) model as a separation target; its threshold is the target file's, else the
        default (a run has no calibrated one until its end)."""
        from .engine import LoadedTarget

        return LoadedTarget(self.spec, self.model(), None, {})

    def validation_sdr(self, loaded=None) -> dict:
        """Separation quality on the validation tracks (first ``val_seconds``; the model runs once per track),
        medians over tracks: ``val_sdr``, binary masks at the target's threshold (what picks the best model), and
        ``val_sdr_by_threshold`` at it and :attr:`VAL_THRESHOLDS` (the best threshold drifts as a model trains, and
        a step is best judged at its own; docs/training.md), ``val_sdr_soft`` for soft masks: quick SDR of the
        whole excerpt. ``val_wsdr``, ``val_wsdr_by_threshold``, ``val_wsdr_soft``: the same with
        :func:`~stemsplit.evaluate.windowed_sdr`, the median of 1 s windows as BSSEval reports it."""
        from .evaluate import threshold_sdrs

        loaded = loaded or self._loaded()
        grid = sorted({*self.VAL_THRESHOLDS, loaded.spec.threshold})
        sdr, _ = threshold_sdrs(loaded, self.valid_tracks, seconds=self.cfg.val_seconds, candidates=grid, soft=True)
        out = {}
        for metric, key in (("quick", "val_sdr"), ("windowed", "val_wsdr")):
            # NaN where no track counts (windowed: an excerpt shorter than a window)
            med = {t: float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
                   for t, v in sdr[metric].items()}
            out[key] = med[loaded.spec.threshold]
            out[f"{key}_by_threshold"] = {f"{t:.2f}": med[t] for t in grid}
            out[f"{key}_soft"] = med["soft"]
        return out

    # -- loop ------------------------------------------------------------------------------------------------
    def run(self, *, out: str | os.PathLike | None = None, progress: bool = True,
            until: int | None = None) -> Path | None:
        """Train to ``config.steps`` (or early stop); write the best model to ``out`` and return its path.

        ``until`` stops early at that step after saving the resumable state, as an interruption would
        (returns None).
        """
        from tqdm import tqdm

        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.process == 0:
            (self.run_dir / "config.json").write_text(json.dumps(
                {"target": self.spec.to_dict(), "config": _jsonable(asdict(self.cfg))}, indent=2))
        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {self.spec.name}", unit="step",
                   disable=not progress or self.process != 0, dynamic_ncols=True)
        stop_step = min(cfg.steps, until) if until is not None else cfg.steps
        prefetch = _Prefetcher(self._local_batch, self.step, stop_step)
        last_save, t_last, frames_done, stopped = time.time(), time.time(), 0, False
        losses: list[float] = []
        # a stop by SIGTERM (the end of a session, `kill`) finishes the current step, saves the state and ends
        # as Ctrl-C does; the handler only sets a flag, so no step is cut between donating and storing the weights
        term = threading.Event()
        on_term = (signal.signal(signal.SIGTERM, lambda *_: term.set())
                   if threading.current_thread() is threading.main_thread() else None)
        try:
            while self.step < stop_step and not stopped and not term.is_set():
                step, (x, y) = prefetch.get()
                key = jax.random.fold_in(self.key, step)
                self.params, self.opt_state, self.ema, loss = self._step(
                    self.params, self.opt_state, self.ema, self._global(x), self._global(y), key,
                    jnp.asarray(step, jnp.float32))
                self.step = step + 1
                frames_done += cfg.batch * cfg.frames
                losses.append(float(loss))
                if self.step % 20 == 0 or self.step == cfg.steps:
                    now = time.time()
                    self.elapsed += now - t_last
                    fps = frames_done / max(now - t_last, 1e-9)
                    rec = {"step": self.step, "loss": float(np.mean(losses)), "frames_per_s": round(fps, 1),
                           "time": round(self.elapsed, 1)}
                    self._log(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", fps=f"{fps:.0f}")
                    bar.update(self.step - bar.n)
                    losses, frames_done, t_last = [], 0, now
                if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                    stopped = self._validate_and_keep_best()
                    t_last = time.time()
                if (time.time() - last_save > cfg.save_every_s or self.step in (cfg.steps, stop_step)
                        or stopped):
                    self._save_state()
                    last_save = time.time()
        except KeyboardInterrupt:
            self._save_state()
            raise
        finally:
            prefetch.close()
            bar.close()
            if on_term is not None:
                signal.signal(signal.SIGTERM, on_term)
        if term.is_set():
            self._save_state()
            raise KeyboardInterrupt
        if self.step < cfg.steps and not stopped:
            return None
        return self._finish(out)

    def _validate_and_keep_best(self) -> bool:
        """Validate, keep the best model; True when early stopping says stop."""
        metrics = self.validate()
        self._log({"step": self.step, **metrics})
        # every validated model is kept, so that a step can be chosen afterwards on other evidence than the run's
        # own validation (e.g. BSSEval, or a threshold calibrated on songs the run never saw); the best is a copy
        kept = self.run_dir / "validated" / f"step-{self.step:06d}.npz"
        if self.process == 0:
            checkpoint.save_model(kept, self.model(), self.spec, training=self._summary(metrics))
        if not metrics:
            score = float(self.step)  # no validation data: the latest model is the best we know
        else:
            score = metrics.get("val_sdr", metrics.get("val_accuracy", float("nan")))
            if math.isnan(score):
                score = -metrics["val_loss"]
        if score > self.best:
            self.best, self.bad_evals = score, 0
            if self.process == 0:
                with checkpoint.atomic_path(self.run_dir / "best.npz", ".npz") as tmp:
                    shutil.copyfile(kept, tmp)
        else:
            self.bad_evals += 1
        return bool(self.cfg.patience) and self.bad_evals >= self.cfg.patience

    def _summary(self, metrics: dict) -> dict:
        return {"step": self.step, "steps_planned": self.cfg.steps, "wall_time_s": round(self.elapsed, 1),
                "devices": jax.device_count(), "processes": self.processes, "data": self.data_note,
                "config": _jsonable(asdict(self.cfg)), **({"init": self.init} if self.init else {}), **metrics}

    def _finish(self, out: str | os.PathLike | None) -> Path | None:
        if self.process != 0:
            return None
        best = self.run_dir / "best.npz"
        if not best.exists():
            checkpoint.save_model(best, self.model(), self.spec, training=self._summary({}))
        dest = Path(out) if out else self.run_dir / f"{self.spec.name}.npz"  # never into the shipped models
        arrays, meta = checkpoint.load(best)
        checkpoint.save(dest, arrays, meta)
        if self.spec.task == "mask":
            self.calibrate(dest)
        return dest

    def calibrate(self, path: Path, tracks: int = 8) -> dict:
        """Calibrate the binary-mask threshold of the checkpoint at ``path`` on training tracks (drawn as the
        sampler draws them, so the mix of data sources is the training one; validation tracks stay untouched)."""
        s = self.sampler
        pick = np.random.default_rng(self.cfg.seed).choice(len(s.tracks), size=min(tracks, len(s.tracks)),
                                                          replace=False, p=s.probabilities)
        res = calibrate_checkpoint(path, [s.tracks[i] for i in sorted(pick)], seconds=self.cfg.val_seconds,
                                   data="training tracks")
        self._log({"calibrated_threshold": res["threshold"], "calibration_sdr": res["sdr"]})
        return res


def transfer_layers(config: ModelConfig) -> tuple[str, ...]:
    """Layers of a model with ``config`` that a checkpoint of another model can lend it when their shapes agree
    (everything but the heads): the input standardisation, the trunk's convolutions (context layers included)
    and the hidden dense layer."""
    convs = [name for name, kind, _ in model_layers(config) if kind == "conv"]
    return ("in_shift", "in_scale", *convs, "dense")


def _param_arrays(model) -> dict[str, np.ndarray]:
    """A model's parameters by name (``conv1/kernel``, ...)."""
    return checkpoint.tree_to_arrays(nnx.state(model, nnx.Param))


def check_init(spec: TargetSpec, path: str | os.PathLike):
    """Load the model checkpoint ``path`` to start training ``spec`` from; raise a clear error unless it holds
    the same model and task, or one whose convolutions have the same shapes (a transfer: then only the layers in
    :func:`transfer_layers` whose shapes agree are copied, and the heads too when the task is the same). Returns
    ``(model, metadata, layers copied)``."""
    if not os.path.isfile(path):
        raise CheckpointError(f"--init {path}: no such checkpoint file.")
    loaded, saved, meta = checkpoint.load_model(path)
    if saved.model == spec.model and saved.task == spec.task:
        return loaded, meta, None
    src = _param_arrays(loaded)
    dst = _param_arrays(MaskCNN(spec.model, rngs=nnx.Rngs(0)))
    layer = lambda k: k.split("/")[0]  # noqa: E731
    # the same task (a mask model widened, say) also keeps its heads and decoder where their shapes agree
    candidates = list(transfer_layers(spec.model))
    if saved.task == spec.task:
        candidates += [n for n in dict.fromkeys(map(layer, dst)) if n not in candidates]
    layers = [n for n in candidates if any(layer(k) == n for k in dst)
              and all(k in src and src[k].shape == v.shape for k, v in dst.items() if layer(k) == n)]
    if not {"conv1", "conv2", "conv3", "conv4"} <= set(layers):
        raise CheckpointError(f"--init {path} holds a {saved.task} model {saved.model}, not the {spec.task} model "
                              f"{spec.model} of target {spec.name!r}, and its convolutions differ in shape.")
    return loaded, meta, layers


def _init_from(model: MaskCNN, spec: TargetSpec, path: str | os.PathLike) -> dict:
    """Copy a saved model's weights into ``model`` (all of them for the same target model and task, the shared
    layers for a transfer); returns its provenance."""
    loaded, meta, layers = check_init(spec, path)
    training = meta.get("training") or {}
    record = {"path": os.path.basename(os.fspath(path)), "sha256": meta.get("sha256"),
              "step": training.get("step"), "data": training.get("data")}
    if layers is None:
        nnx.update(model, nnx.state(loaded, nnx.Param))
        return record
    src = _param_arrays(loaded)
    mine = _param_arrays(model)
    mine.update({k: v for k, v in src.items() if k in mine and k.split("/")[0] in layers})
    identity = _identity_context(spec.model, layers, mine)
    nnx.update(model, checkpoint.arrays_to_tree(nnx.state(model, nnx.Param), mine))
    return {**record, "layers": layers, **({"identity": identity} if identity else {})}


def _identity_context(config: ModelConfig, copied: Sequence[str], params: dict[str, np.ndarray]) -> list[str]:
    """Context layers a transfer could not copy (the source has a narrower window; the trunk below them always
    was, :func:`check_init`) start as the identity (the centre tap passes each channel through, zero bias), so
    the widened model starts out computing what the source computed (up to the leaky ReLU applied once more to
    negative values) and the copied dense layer reads the features it was trained on. Changes ``params`` in
    place; returns the layers set."""
    ctx = [name for name, _, _ in model_layers(config)[len(model_layers()):] if name not in copied]
    for name in ctx:
        kernel = np.zeros_like(params[f"{name}/kernel"])
        kernel[1, 1] = np.eye(kernel.shape[-1], dtype=kernel.dtype)
        params[f"{name}/kernel"] = kernel
        params[f"{name}/bias"] = np.zeros_like(params[f"{name}/bias"])
    return ctx


def _jsonable(d):
    """Dataclass dicts with tuples as lists."""
    return json.loads(json.dumps(d))


def train(spec: TargetSpec, roots: Sequence[str | os.PathLike], *, is_wav: bool = True,
          config: TrainConfig = TrainConfig(), run_dir: str | os.PathLike = "runs/default",
          resume: bool = False, out: str | os.PathLike | None = None, valid_tracks: Sequence[str] | None = None,
          shares: Sequence[float] | None = None, progress: bool = True,
          init: str | os.PathLike | None = None, exclude_tracks: Sequence[str] | None = None) -> Path | None:
    """Train ``spec`` on MUSDB-layout data and write its checkpoint.

    Parameters
    ----------
    spec : TargetSpec
        Which stems form the target, the model size, the task.
    roots : sequence of path-like
        Dataset roots (MUSDB18 or folders in its layout); tracks are pooled.
    is_wav : bool
        Decoded wav layout, or ``.stem.mp4``.
    config : TrainConfig
    run_dir : path-like
    resume : bool
    out : path-like, optional
        Where the finished checkpoint goes (default: ``run_dir/NAME.npz``).
    valid_tracks : sequence of str, optional
        Names of tracks to hold out for validation.
    shares : sequence of float, optional
        How often examples come from each root (default: every track equally often).
    progress : bool
    init : path-like, optional
        Fine-tune: start from this checkpoint of the target's model (see :class:`Trainer`).
    exclude_tracks : sequence of str, optional
        Names of tracks never trained or validated on (e.g. the songs one tests on).

    Returns
    -------
    Path or None
        The checkpoint written (None on hosts other than the first).
    """
    excluded: list[str] = []
    train_tracks, valid = split_tracks(roots, is_wav=is_wav, valid_names=valid_tracks, shares=shares,
                                       exclude_names=exclude_tracks, excluded=excluded)
    share_note = f" (shares {', '.join(map(str, shares))})" if shares else ""
    if exclude_tracks:
        share_note += f", {len(excluded)} named tracks excluded"
    # folder names, not paths: the note travels inside checkpoints that are shared and shipped
    note = (f"{len(train_tracks)} training tracks from folders {', '.join(Path(r).name for r in roots)}{share_note}; "
            f"validation: {', '.join(t.name for t in valid) or 'none'}")
    trainer = Trainer(spec, train_tracks, valid, config, run_dir, resume=resume, data_note=note, init=init)
    return trainer.run(out=out, progress=progress)


def plot_metrics(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw a run's loss, validation and throughput curves to a PNG (default ``RUN/curves.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise DataError(f"No metrics in {run_dir} (expected {path}).")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train_rows = [r for r in rows if "loss" in r]
    val_rows = [r for r in rows if "val_loss" in r]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], label="train")
    if val_rows:
        axes[0].plot([r["step"] for r in val_rows], [r["val_loss"] for r in val_rows], "o-", label="validation")
    axes[0].set(xlabel="step", ylabel="loss", title="loss")
    axes[0].legend()
    for key, label in (("val_sdr", "quick (whole excerpt)"), ("val_wsdr", "windowed (1 s median, as BSSEval)")):
        sdr = [r for r in val_rows if r.get(key) is not None and not math.isnan(r[key])]
        if sdr:
            axes[1].plot([r["step"] for r in sdr], [r[key] for r in sdr], "o-", label=label)
    if axes[1].lines:
        axes[1].legend()
    axes[1].set(xlabel="step", ylabel="dB", title="validation SDR, binary masks")
    axes[2].plot([r["step"] for r in train_rows], [r["frames_per_s"] for r in train_rows])
    axes[2].set(xlabel="step", ylabel="target frames / s", title="throughput")
    fig.tight_layout()
    dest = Path(out) if out else run_dir / "curves.png"
    fig.savefig(dest, dpi=100)
    plt.close(fig)
    return dest
