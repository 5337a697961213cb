"""Offline separation: the :class:`Separator` runs the engine (:mod:`stemsplit.engine`) over a signal or a file,
block by block.

Each block of output samples needs the STFT frames that overlap it, and each of those frames needs 12 frames
of context for the model, so a block reads its samples plus a margin. The inverse STFT normalises by the
window weights of exactly the frames that exist, which makes block processing give the same samples as
processing the whole signal at once, with memory bounded by the block size whatever the length.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import _compile_cache, spectral
from . import audio as audio_io
from .engine import (
    BLOCK_MARGIN,
    LoadedTarget,
    ModelRunner,
    ProgressFn,
    StemMaker,
    context_features,
    find_targets,
    load_target,
    residual_name,
)
from .errors import ClippingWarning, OptionError, OutputError, SilentAudioWarning
from .targets import get_targets, sanitize_name

__all__ = ["Separator", "StemFiles", "LoadedTarget", "load_target", "residual_name", "ModelRunner", "ProgressFn",
           "BLOCK_FRAMES", "WIENER_BLOCK_FRAMES"]

#: STFT frames per processing block by default. With the context and margin a block's models score 256 frames,
#: and the shipped vocals model's compiled pass then needs 28 MiB of scratch memory: under the 32 MiB up to which
#: glibc's allocator learns to reuse such buffers instead of mapping (and page-faulting) fresh memory on every
#: call. 512-frame blocks need 55 MiB and ran the vocals-only path ~1.25x slower (docs/performance.md).
BLOCK_FRAMES = 248
#: the block with ``mask="wiener"``: the filter's statistics come from one block, and ~6 s of audio is what it
#: was measured with (docs/results.md)
WIENER_BLOCK_FRAMES = 512


class Separator:
    """Separates audio into stems with trained target models, loading them once.

    Parameters
    ----------
    targets : sequence of str
        Target names, e.g. ``("vocals",)`` or ``("vocals", "drums", "bass", "other")``.
    residual : bool
        Also return what no target takes (``"accompaniment"`` for vocals alone, ``"residual"`` otherwise), so the
        stems add up to the mix. Without it, several targets share every bin among themselves (bins no target
        claims go to the highest score) and still add up to the mix; a single target then simply drops the rest.
    mask : {"binary", "soft", "wiener"}
        Binary masks under the dominance rule, ratio masks from the scores, or ratio masks refined by a
        multichannel Wiener filter (:func:`stemsplit.masks.wiener`; fitted per block of ``block_frames``, slower,
        offline only).
    targets_dir : sequence of path-like, optional
        Extra folders of target TOML files (searched before the built-in ones).
    checkpoint_dirs : sequence of path-like, optional
        Extra folders to look for checkpoints in.
    block_frames : int, optional
        STFT frames per processing block; bounds memory. Default :data:`BLOCK_FRAMES` (248 frames, ~2.9 s of
        audio), which keeps a block's model pass in memory the allocator reuses (docs/performance.md), and
        :data:`WIENER_BLOCK_FRAMES` (512, ~6 s) with ``mask="wiener"``, whose filter is fitted per block.
    loaded : sequence of LoadedTarget, optional
        Already loaded targets (skips the lookup).
    gate_vocals : bool
        Silence the vocals stem in frames where the vocal activity detector (target ``gate_target``) finds no
        voice; what it removes goes to the residual.
    gate_target : str or LoadedTarget
        The activity target used for gating.
    rule : {"lead", "priority", "score"}
        Binary masks, who gets a bin several targets claim (:func:`stemsplit.masks.combine`): by default the
        highest-priority target (vocals) keeps what it claims and the others share the rest by score, so the
        vocals stem does not depend on the other targets requested (the better on real songs: docs/results.md).

    Examples
    --------
    >>> sep = Separator(("vocals", "drums", "bass", "other"))          # doctest: +SKIP
    >>> stems = sep.separate(audio, 44100)                             # doctest: +SKIP
    >>> sep.separate_file("song.mp3", "out/")                          # doctest: +SKIP
    """

    def __init__(self, targets: Sequence[str] = ("vocals",), *, residual: bool = True, mask: str = "binary",
                 targets_dir: Sequence[str | os.PathLike] | None = None,
                 checkpoint_dirs: Sequence[str | os.PathLike] = (), block_frames: int | None = None,
                 loaded: Sequence[LoadedTarget] | None = None, gate_vocals: bool = False,
                 gate_target: str | LoadedTarget = "vocal-activity", rule: str = "lead"):
        if isinstance(targets, str):
            targets = [targets]
        if block_frames is None:
            block_frames = WIENER_BLOCK_FRAMES if mask == "wiener" else BLOCK_FRAMES
        if not isinstance(block_frames, int) or block_frames < 64:
            raise OptionError(f"block_frames must be an integer >= 64, got {block_frames!r}.")
        specs = [t.spec for t in loaded] if loaded is not None else find_targets(targets, task="mask",
                                                                               targets_dir=targets_dir)
        preloaded_gate = isinstance(gate_target, LoadedTarget)
        gate_spec = None
        if gate_vocals:
            gate_spec = gate_target.spec if preloaded_gate else get_targets([gate_target], targets_dir)[0]
        StemMaker(specs, mask=mask, residual=residual, gate=gate_spec, rule=rule)  # options checked before loading
        _compile_cache.enable()
        self.targets = list(loaded) if loaded is not None else [load_target(s, checkpoint_dirs) for s in specs]
        self.specs = [t.spec for t in self.targets]
        self.gate: LoadedTarget | None = None
        if gate_vocals:
            self.gate = gate_target if preloaded_gate else load_target(gate_spec, checkpoint_dirs)
        # the loaded specs carry the thresholds calibrated for their checkpoints
        self.maker = StemMaker(self.specs, mask=mask, residual=residual,
                               gate=self.gate.spec if self.gate else None, rule=rule)
        self.block_frames = block_frames
        self.frontend = spectral.FRONTEND
        self.runner = ModelRunner([t.model for t in self.targets] + ([self.gate.model] if self.gate else []))

    # what the stem maker owns, not copied
    @property
    def residual(self) -> bool:
        """Whether a residual stem is produced."""
        return self.maker.residual

    @property
    def mask(self) -> str:
        """The mask mode."""
        return self.maker.mask

    @property
    def stem_names(self) -> list[str]:
        """Names of the stems produced, in order."""
        return self.maker.stem_names

    # -- core -----------------------------------------------------------------------------------------------
    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Model scores for features already padded with the context frames each side
        (``runner.half_context``: 12 frames for models without context layers).

        Parameters
        ----------
        feats : np.ndarray
            shape ``(frames + 2 * runner.half_context, 513)``.

        Returns
        -------
        np.ndarray
            shape ``(targets, 513, frames)``.
        """
        return self.maker.scores(self.runner(feats, self.block_frames + BLOCK_MARGIN))

    def signal_scores(self, feats: np.ndarray) -> np.ndarray:
        """Model scores ``(targets, 513, frames)`` for a whole signal's features ``(frames, 513)``, with the
        zero context offline separation gives the first and last frames."""
        hc = self.runner.half_context
        return self.scores(np.pad(feats, ((hc, hc), (0, 0))))

    def stem_masks(self, scores: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Masks on an input grid with ``n_bins`` bins from model scores (targets, 513, frames), and the
        residual's share (without vocal gating)."""
        return self.maker.masks_from_scores(scores, n_bins)

    def _blocks(self, reader, grid: spectral.Grid, sink: Callable[[int, np.ndarray, list[np.ndarray]], None],
                progress: ProgressFn | None) -> None:
        """Run every block of ``reader``'s signal, handing (start sample, mix block, stems in :attr:`stem_names`
        order) to ``sink``.

        Two stages overlap: while block ``i`` is masked and inverted in numpy, the models already run on block
        ``i + 1`` (JAX dispatches asynchronously).
        """
        n = reader.frames
        total = grid.n_frames(n)
        step = self.block_frames * grid.hop
        cap = self.block_frames + BLOCK_MARGIN

        def prepare(a: int):
            b = min(n, a + step)
            lo, hi = spectral.frames_overlapping(grid, a, b, total)
            ctx = context_features(reader, grid, lo, hi, total, self.runner.half_context)
            # digital silence all around: every stem is zero whatever the masks, so the models need not run
            pending = self.runner.dispatch(ctx.features, cap) if ctx.segment.any() else None
            return a, b, lo, hi, ctx, pending

        starts = list(range(0, n, step))
        job = prepare(starts[0])
        for i in range(len(starts)):
            ahead = prepare(starts[i + 1]) if i + 1 < len(starts) else None
            a, b, lo, hi, ctx, pending = job
            mix = ctx.samples(a, b)
            if pending is None:
                stems = self.maker.silent(mix)
            else:
                stems = self.maker.stems(self.runner.collect(pending), ctx.frames(lo, hi), grid, lo, total, a, b,
                                         mix)
            sink(a, mix, stems)
            if progress is not None:
                progress(b, n)
            job = ahead

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

        def sink(start: int, mix: np.ndarray, stems: list[np.ndarray]) -> None:
            for name, block in zip(self.stem_names, stems, strict=True):
                out[name][:, start:start + block.shape[1]] = block

        self._blocks(audio_io.ArrayReader(a, sr), grid, sink, progress)
        return {k: (v[0] if was_1d else v) for k, v in out.items()}

    def separate_file(self, path: str | os.PathLike, outdir: str | os.PathLike, *, fmt: str | audio_io.Encoding = "wav",
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
        fmt : {"wav", "flac", "ogg", "mp3"} or Encoding
            The file format, or a whole :class:`~stemsplit.audio.Encoding` (then ``sample_format`` and ``clip``
            are taken from it).
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
        enc = fmt if isinstance(fmt, audio_io.Encoding) else audio_io.Encoding(fmt, sample_format, clip)
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

            def sink(start: int, mix: np.ndarray, stems: list[np.ndarray]) -> None:
                nonlocal peak
                peak = max(peak, float(np.abs(mix).max(initial=0.0)))
                for name, block in zip(self.stem_names, stems, strict=True):
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
