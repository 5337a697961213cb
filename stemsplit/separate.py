"""Offline separation: the :class:`Separator` runs the whole pipeline over a signal or a file, block by block.

Each block of output samples needs the STFT frames that overlap it, and each of those frames needs 12 frames
of context for the model, so a block reads its samples plus a margin. The inverse STFT normalises by the
window weights of exactly the frames that exist, which makes block processing give the same samples as
processing the whole signal at once, with memory bounded by the block size whatever the length.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from . import _compile_cache, checkpoint, masks, spectral
from . import audio as audio_io
from .errors import (
    CheckpointError,
    ClippingWarning,
    MissingCheckpointError,
    OptionError,
    OutputError,
    SilentAudioWarning,
)
from .model import MaskCNN
from .targets import TargetSpec, get_targets, sanitize_name

__all__ = ["Separator", "StemFiles", "LoadedTarget", "load_target", "residual_name", "ModelRunner"]

ProgressFn = Callable[[int, int], None]


DEFAULT_THRESHOLD = 0.5


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


def residual_name(specs: Sequence[TargetSpec]) -> str:
    """Name of the stem holding what no target takes."""
    return "accompaniment" if [s.name for s in specs] == ["vocals"] else "residual"


class ModelRunner:
    """Runs several targets' models on one features block inside a single compiled function.

    (A ``vmap`` over stacked parameters turns the convolutions into batched-kernel convolutions, which XLA's
    CPU backend runs about 15x slower than one plain convolution per model; see docs/performance.md.)
    Inputs are padded to a few fixed lengths so each compiles once.
    """

    def __init__(self, models: Sequence[MaskCNN]):
        split = [nnx.split(m) for m in models]
        self.graphdefs = tuple(g for g, _ in split)
        self.states = tuple(s for _, s in split)

    @staticmethod
    @functools.partial(jax.jit, static_argnums=0)
    def _apply(graphdefs, states, x):
        return [jax.nn.sigmoid(nnx.merge(g, s)(x[None])[0]) for g, s in zip(graphdefs, states, strict=True)]

    def dispatch(self, x: np.ndarray) -> list[jax.Array]:
        """Start the models on features ``x`` (frames + 24 + padding, bins); returns without waiting."""
        return self._apply(self.graphdefs, self.states, jnp.asarray(x))

    @staticmethod
    def collect(outs: list[jax.Array], frames: int) -> list[np.ndarray]:
        """Wait for :meth:`dispatch`'s results: one (frames, outputs) array per model."""
        return [np.asarray(o)[:frames] for o in outs]

    def __call__(self, x: np.ndarray, frames: int) -> list[np.ndarray]:
        """Scores for ``frames`` frames from features ``x`` (frames + 24 + padding, bins), one array per model."""
        return self.collect(self.dispatch(x), frames)


#: frames a block's inverse transform needs beyond its own (the window spans ~4 hops) plus slack
_BLOCK_MARGIN = 8


@dataclass(frozen=True)
class ContextFeatures:
    """Model input for frames ``[lo, hi)`` of a signal, with their context.

    Attributes
    ----------
    features : np.ndarray
        ``(hi - lo + 24, 513)``: zeros where context frames fall outside the signal.
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


def context_features(reader, grid: spectral.Grid, lo: int, hi: int, total: int) -> ContextFeatures:
    """Read and analyse what the models need to score frames ``[lo, hi)`` of a ``total``-frame signal."""
    hc = grid.frontend.half_context
    f_lo, f_hi = max(0, lo - hc), min(total, hi + hc)
    s0, s1 = spectral.frame_span(grid, f_lo, f_hi - f_lo)
    seg = reader.read(s0, s1)
    spec = spectral.stft(seg, grid)
    feats = np.zeros((hi - lo + 2 * hc, grid.frontend.n_bins), dtype=np.float32)
    feats[f_lo - (lo - hc):f_hi - (lo - hc)] = spectral.features(spec, grid)
    return ContextFeatures(features=feats, spec=spec, first=f_lo, segment=seg, start=s0)


def _bucket(n: int, cap: int, smallest: int = 64) -> int:
    """A padded length for ``n`` frames (few distinct shapes, so few compilations): ``cap`` for full blocks,
    else the next power of two from ``smallest`` (``n`` itself past ``cap``: a caller scoring a long signal at
    once)."""
    if n > cap:
        return n
    size = smallest
    while size < n:
        size *= 2
    return min(size, cap)


class Separator:
    """Separates audio into stems with trained target models, loading them once.

    Parameters
    ----------
    targets : sequence of str
        Target names, e.g. ``("vocals",)`` or ``("vocals", "drums", "bass", "other")``.
    residual : bool
        Also return what no target takes (``"accompaniment"`` for vocals alone, ``"residual"`` otherwise), so the
        stems add up to the mix. Without it, several targets share every bin among themselves (highest score
        wins) and still add up to the mix; a single target then simply drops the rest.
    mask : {"binary", "soft"}
        Binary masks under the dominance rule, or ratio masks from the scores.
    targets_dir : sequence of path-like, optional
        Extra folders of target TOML files (searched before the built-in ones).
    checkpoint_dirs : sequence of path-like, optional
        Extra folders to look for checkpoints in.
    block_frames : int
        STFT frames per processing block (512 frames is ~6 s of audio); bounds memory.
    loaded : sequence of LoadedTarget, optional
        Already loaded targets (skips the lookup).
    gate_vocals : bool
        Silence the vocals stem in frames where the vocal activity detector (target ``gate_target``) finds no
        voice; what it removes goes to the residual.
    gate_target : str or LoadedTarget
        The activity target used for gating.

    Examples
    --------
    >>> sep = Separator(("vocals", "drums", "bass", "other"))          # doctest: +SKIP
    >>> stems = sep.separate(audio, 44100)                             # doctest: +SKIP
    >>> sep.separate_file("song.mp3", "out/")                          # doctest: +SKIP
    """

    def __init__(self, targets: Sequence[str] = ("vocals",), *, residual: bool = True, mask: str = "binary",
                 targets_dir: Sequence[str | os.PathLike] | None = None,
                 checkpoint_dirs: Sequence[str | os.PathLike] = (), block_frames: int = 512,
                 loaded: Sequence[LoadedTarget] | None = None, gate_vocals: bool = False,
                 gate_target: str | LoadedTarget = "vocal-activity"):
        if isinstance(targets, str):
            targets = [targets]
        if mask not in masks.MASK_MODES:
            raise OptionError(f"Unknown mask mode {mask!r}; choose one of {', '.join(masks.MASK_MODES)}.")
        if not isinstance(block_frames, int) or block_frames < 64:
            raise OptionError(f"block_frames must be an integer >= 64, got {block_frames!r}.")
        _compile_cache.enable()
        if loaded is None:
            specs = get_targets(list(targets), targets_dir)
            for s in specs:
                if s.task != "mask":
                    raise OptionError(f"Target {s.name!r} detects activity; it cannot separate a stem "
                                      "(use stemsplit.detect_vocals).")
            loaded = [load_target(s, checkpoint_dirs) for s in specs]
        self.targets = list(loaded)
        self.specs = [t.spec for t in self.targets]
        self.residual = residual
        self.mask = mask
        self.block_frames = block_frames
        self.frontend = spectral.FRONTEND
        self.gate: LoadedTarget | None = None
        if gate_vocals:
            if "vocals" not in [s.name for s in self.specs]:
                raise OptionError("gate_vocals needs the vocals target among the targets.")
            self.gate = gate_target if isinstance(gate_target, LoadedTarget) else load_target(
                get_targets([gate_target], targets_dir)[0], checkpoint_dirs)
            if self.gate.spec.task != "activity":
                raise OptionError(f"Target {self.gate.spec.name!r} is not an activity detector.")
        self.runner = ModelRunner([t.model for t in self.targets] + ([self.gate.model] if self.gate else []))
        self.stem_names = [s.name for s in self.specs] + ([residual_name(self.specs)] if residual else [])

    # -- core -----------------------------------------------------------------------------------------------
    def _dispatch(self, feats: np.ndarray) -> tuple[list[jax.Array], int]:
        """Start the models on padded features (frames + 24, 513); returns (pending outputs, frames)."""
        hc = self.frontend.half_context
        frames = feats.shape[0] - 2 * hc
        size = _bucket(frames, self.block_frames + _BLOCK_MARGIN)
        x = np.zeros((size + 2 * hc, feats.shape[1]), dtype=np.float32)
        x[:feats.shape[0]] = feats
        return self.runner.dispatch(x), frames

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Model scores for features already padded with 12 context frames each side.

        Parameters
        ----------
        feats : np.ndarray
            shape ``(frames + 24, 513)``.

        Returns
        -------
        np.ndarray
            shape ``(targets, 513, frames)``.
        """
        outs = self.runner.collect(*self._dispatch(feats))
        return np.stack([np.swapaxes(o, 0, 1) for o in outs[:len(self.specs)]])

    def signal_scores(self, feats: np.ndarray) -> np.ndarray:
        """Model scores ``(targets, 513, frames)`` for a whole signal's features ``(frames, 513)``, with the
        zero context offline separation gives the first and last frames."""
        hc = self.frontend.half_context
        return self.scores(np.pad(feats, ((hc, hc), (0, 0))))

    def stem_masks(self, scores: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Masks on an input grid with ``n_bins`` bins from model scores (targets, 513, frames)."""
        return masks.combine_on_grid(scores, n_bins, thresholds=[s.threshold for s in self.specs],
                                     priorities=[s.priority for s in self.specs], mode=self.mask,
                                     exhaustive=not self.residual and len(self.specs) > 1)

    def _prepare(self, reader, grid: spectral.Grid, a: int, b: int, total: int) -> dict:
        """Read and analyse output samples ``[a, b)`` of a ``total``-frame signal and start the models on them."""
        lo, hi = spectral.frames_overlapping(grid, a, b, total)
        ctx = context_features(reader, grid, lo, hi, total)
        # digital silence all around: every stem is zero whatever the masks, so the models need not run
        pending = self._dispatch(ctx.features) if ctx.segment.any() else None
        return {"a": a, "b": b, "lo": lo, "own": ctx.spec[:, :, lo - ctx.first:hi - ctx.first],
                "mix": ctx.segment[:, a - ctx.start:b - ctx.start], "pending": pending}

    def _finish(self, job: dict, grid: spectral.Grid, total: int) -> tuple[np.ndarray, np.ndarray]:
        """Masks and inverse STFT of a prepared block: ``(mix (C, n), target stems (K, C, n))``."""
        if job["pending"] is None:
            return job["mix"], np.zeros((len(self.specs), *job["mix"].shape), np.float32)
        outs = self.runner.collect(*job["pending"])
        scores = np.stack([np.swapaxes(o, 0, 1) for o in outs[:len(self.specs)]])
        m, _ = self.stem_masks(scores, grid.n_bins)
        if self.gate is not None:
            m = self._gate(m, outs[-1][:, 0])
        # one stem at a time keeps the inverse transform's buffers to one stem's size
        stems = np.stack([spectral.overlap_add(mk[None] * job["own"], grid, job["lo"], total, job["a"], job["b"])
                          for mk in m])
        return job["mix"], stems

    def _blocks(self, reader, grid: spectral.Grid, sink: Callable[[int, np.ndarray, np.ndarray], None],
                progress: ProgressFn | None) -> None:
        """Run every block of ``reader``'s signal, handing (start, mix block, stems (K, C, n)) to ``sink``.

        Two stages overlap: while block ``i`` is masked and inverted in numpy, the models already run on block
        ``i + 1`` (JAX dispatches asynchronously).
        """
        n = reader.frames
        total = grid.n_frames(n)
        step = self.block_frames * grid.hop
        starts = list(range(0, n, step))
        job = self._prepare(reader, grid, starts[0], min(n, starts[0] + step), total)
        for i in range(len(starts)):
            ahead = (self._prepare(reader, grid, starts[i + 1], min(n, starts[i + 1] + step), total)
                     if i + 1 < len(starts) else None)
            mix, stems = self._finish(job, grid, total)
            sink(job["a"], mix, stems)
            if progress is not None:
                progress(job["b"], n)
            job = ahead

    def _gate(self, m: np.ndarray, activity: np.ndarray) -> np.ndarray:
        """Zero the vocals mask in frames whose activity probability is under the detector's threshold."""
        k = [s.name for s in self.specs].index("vocals")
        m = m.copy()
        m[k] *= (activity >= self.gate.spec.threshold)[None, :]
        return m

    def _assemble(self, mix: np.ndarray, stems: np.ndarray) -> list[np.ndarray]:
        """Stem blocks in :attr:`stem_names` order (residual = mix minus the targets, so all add up exactly)."""
        out = list(stems)
        if self.residual:
            out.append(mix - stems.sum(axis=0))
        return out

    # -- public -----------------------------------------------------------------------------------------------
    def separate(self, audio: np.ndarray, sr: int, *, progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        """Separate a signal held in memory.

        Parameters
        ----------
        audio : np.ndarray
            Shape ``(channels, samples)`` (any channel count) or ``(samples,)`` for mono.
        sr : int
            Its sample rate (8-192 kHz).
        progress : callable, optional
            Called as ``progress(samples_done, samples_total)`` after each block.

        Returns
        -------
        dict of str to np.ndarray
            One entry per name in :attr:`stem_names`, each shaped like ``audio``, at ``sr``.

        Warns
        -----
        SilentAudioWarning
            ``audio`` is all zeros (digital silence): the stems are too, and the models do not run.
        """
        a, sr, was_1d = audio_io.validate(audio, sr)
        if audio_io.is_silent(a):
            warnings.warn("The audio is silent (all samples are zero): its stems are silent too.",
                          SilentAudioWarning, stacklevel=2)
        grid = self.frontend.grid(sr)
        out = {name: np.empty_like(a) for name in self.stem_names}

        def sink(start: int, mix: np.ndarray, stems: np.ndarray) -> None:
            for name, block in zip(self.stem_names, self._assemble(mix, stems), strict=True):
                out[name][:, start:start + block.shape[1]] = block

        self._blocks(audio_io.ArrayReader(a, sr), grid, sink, progress)
        return {k: (v[0] if was_1d else v) for k, v in out.items()}

    def separate_file(self, path: str | os.PathLike, outdir: str | os.PathLike, *, fmt: str = "wav",
                      sample_format: str | None = None, clip: str = "clamp",
                      progress: ProgressFn | None = None) -> StemFiles:
        """Separate a file into ``outdir/<file name>/<stem>.<fmt>``, reading and writing block by block.

        Memory stays bounded whatever the length. Stems are written to temporary files that are renamed only
        when the whole file has been separated, so a failure leaves no partial output. The output folder is
        checked before any work starts.

        Parameters
        ----------
        path : path-like
            Any file soundfile or ffmpeg decodes.
        outdir : path-like
            Folder that receives ``<file name>/``.
        fmt : {"wav", "flac", "ogg", "mp3"}
        sample_format : {"int16", "int24", "float32"}, optional
            wav and flac only; default 16-bit PCM, rounded without dither.
        clip : {"clamp", "none"}
            Samples beyond full scale are clamped to it (default; a :class:`~stemsplit.ClippingWarning` gives
            the peak), or kept (``"none"``, float32 WAV only).
        progress : callable, optional
            ``progress(samples_done, samples_total)`` after each block.

        Returns
        -------
        StemFiles
            The stem files written, by stem name, with each stem's energy.

        Warns
        -----
        SilentAudioWarning
            The file holds only digital silence (its stems are written, silent).
        ClippingWarning
            Some stem samples went beyond full scale and were clamped.
        """
        enc = audio_io.Encoding(fmt, sample_format, clip)
        dest = Path(outdir) / sanitize_name(Path(path).stem)
        paths = {name: dest / f"{sanitize_name(name)}.{enc.format}" for name in self.stem_names}
        audio_io.check_output_dir(dest)
        for p in paths.values():
            if p.is_dir():
                raise OutputError(f"Cannot write {p}: a folder of that name is in the way.")
        reader = audio_io.open_reader(path)
        made = [d for d in (dest, *dest.parents) if not d.exists()]  # folders to remove again on failure
        writers: dict[str, audio_io.StemWriter] = {}
        energy = dict.fromkeys(self.stem_names, 0.0)
        peak = 0.0
        try:
            grid = self.frontend.grid(reader.sr)
            for name in self.stem_names:
                writers[name] = audio_io.StemWriter(paths[name], reader.sr, reader.channels, enc)

            def sink(start: int, mix: np.ndarray, stems: np.ndarray) -> None:
                nonlocal peak
                peak = max(peak, float(np.abs(mix).max(initial=0.0)))
                for name, block in zip(self.stem_names, self._assemble(mix, stems), strict=True):
                    energy[name] += float(np.sum(np.square(block, dtype=np.float64)))
                    writers[name].write(block)

            self._blocks(reader, grid, sink, progress)
            committed: list[Path] = []
            try:
                for w in writers.values():
                    committed.append(w.commit())
            except BaseException:
                for p in committed:  # a later stem failed (a full disk): no half set of stems either
                    p.unlink(missing_ok=True)
                raise
            written = StemFiles(dict(zip(writers, committed, strict=True)), energy=energy)
        except BaseException:
            for w in writers.values():
                w.abort()
            for d in made:
                _remove_if_empty(d)
            raise
        finally:
            reader.close()
        if peak == 0.0:
            warnings.warn(f"{path} is silent (all samples are zero): its stems are silent too.",
                          SilentAudioWarning, stacklevel=2)
        clipped = {name: w for name, w in writers.items() if w.clipped and enc.clip == "clamp"}
        if clipped:
            worst = max(clipped.values(), key=lambda w: w.peak)
            warnings.warn(
                f"{path}: {sum(w.clipped for w in clipped.values()):,} samples of {', '.join(clipped)} went beyond "
                f"full scale and were clamped (peak {worst.peak:.2f} = {20 * np.log10(worst.peak):+.1f} dBFS in "
                f"{next(n for n, w in clipped.items() if w is worst)}); float32 WAV without clipping keeps them.",
                ClippingWarning, stacklevel=2)
        return written


class StemFiles(dict):
    """The stem files :meth:`Separator.separate_file` wrote, ``{stem name: Path}``, with each stem's energy.

    Attributes
    ----------
    energy : dict of str to float
        Sum of squared samples of each stem (all channels), before clamping and rounding.
    """

    def __init__(self, files: dict[str, Path], *, energy: dict[str, float]):
        super().__init__(files)
        self.energy = dict(energy)

    def shares(self) -> dict[str, float]:
        """Each stem's share of the stems' total energy (0-1; all zero for silence)."""
        total = sum(self.energy.values())
        return {k: (v / total if total > 0 else 0.0) for k, v in self.energy.items()}


def _remove_if_empty(folder: Path) -> None:
    """Remove a folder we created if it stayed empty."""
    try:
        folder.rmdir()
    except OSError:
        pass
