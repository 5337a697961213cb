"""stemsplit: split music into stems (vocals, drums, bass, other) with small, fast mask CNNs.

The public API::

    import stemsplit
    stems = stemsplit.separate(audio, sr, targets=("vocals", "drums", "bass", "other"))
    vocals, accompaniment = stemsplit.isolate_vocals(audio, sr)
    sep = stemsplit.Separator(("vocals",)); sep.separate_file("song.mp3", "out/")
    stream = stemsplit.StreamSeparator(("vocals",), sr=44100, channels=2); stream.push(chunk); stream.flush()
    stemsplit.list_targets()
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .errors import (
    AudioError,
    AudioFileError,
    CheckpointError,
    ClippingWarning,
    DataError,
    DependencyError,
    InvalidAudioError,
    MissingCheckpointError,
    OptionError,
    OutputError,
    SilentAudioWarning,
    StemsplitError,
    StemsplitWarning,
    TargetError,
    UnknownTargetError,
)
from .separate import ProgressFn, Separator
from .stream import StreamSeparator
from .targets import TargetSpec, discover
from .vad import detect_vocals, vocal_segments

__all__ = [
    "separate",
    "isolate_vocals",
    "detect_vocals",
    "vocal_segments",
    "Separator",
    "StreamSeparator",
    "list_targets",
    "TargetSpec",
    "StemsplitError",
    "AudioError",
    "AudioFileError",
    "InvalidAudioError",
    "OutputError",
    "TargetError",
    "UnknownTargetError",
    "CheckpointError",
    "MissingCheckpointError",
    "OptionError",
    "DependencyError",
    "DataError",
    "StemsplitWarning",
    "SilentAudioWarning",
    "ClippingWarning",
]

__version__ = "0.1.0"


def separate(audio: np.ndarray, sr: int, targets: Sequence[str] = ("vocals",), *, residual: bool = True,
             mask: str = "binary", progress: ProgressFn | None = None,
             targets_dir: Sequence[str | os.PathLike] | None = None,
             gate_vocals: bool = False) -> dict[str, np.ndarray]:
    """Split audio into stems.

    Parameters
    ----------
    audio : np.ndarray
        Samples shaped ``(channels, samples)`` (any channel count) or ``(samples,)``, at any rate 8-192 kHz.
    sr : int
        Sample rate of ``audio`` in Hz.
    targets : sequence of str
        Targets to extract, e.g. ``("vocals",)`` or ``("vocals", "drums", "bass", "other")``.
    residual : bool
        Add a stem with what no target takes (``"accompaniment"`` for vocals alone, else ``"residual"``).
    mask : {"binary", "soft", "wiener"}
        Binary masks under the dominance rule (the seed method), ratio masks, or ratio masks refined by a
        multichannel Wiener filter (slower).
    progress : callable, optional
        ``progress(samples_done, samples_total)``.
    targets_dir : sequence of path-like, optional
        Extra folders with target TOML files.
    gate_vocals : bool
        Silence the vocals stem where the vocal activity detector hears no voice (needs its checkpoint).

    Returns
    -------
    dict of str to np.ndarray
        Stems shaped like ``audio``, at ``sr``; with the residual they add up to ``audio``.

    Warns
    -----
    SilentAudioWarning
        ``audio`` is all zeros: the stems are too.

    Examples
    --------
    >>> stems = stemsplit.separate(audio, 44100, targets=("vocals", "drums"))   # doctest: +SKIP
    >>> sorted(stems)                                                            # doctest: +SKIP
    ['drums', 'residual', 'vocals']
    """
    sep = Separator(targets, residual=residual, mask=mask, targets_dir=targets_dir, gate_vocals=gate_vocals)
    return sep.separate(audio, sr, progress=progress)


def isolate_vocals(audio: np.ndarray, sr: int, *, mask: str = "binary",
                   progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split a song into ``(vocals, accompaniment)``, each shaped like ``audio``; they add up to it.

    Examples
    --------
    >>> vocals, accompaniment = stemsplit.isolate_vocals(audio, 44100)   # doctest: +SKIP
    """
    stems = separate(audio, sr, ("vocals",), residual=True, mask=mask, progress=progress)
    return stems["vocals"], stems["accompaniment"]


def list_targets(targets_dir: Sequence[str | os.PathLike] | None = None) -> list[dict]:
    """Known targets with whether each has a checkpoint: ``[{"name", "description", "task", "checkpoint"}]``."""
    rows = []
    for name, spec in sorted(discover(targets_dir).items()):
        ck = spec.find_checkpoint()
        rows.append({"name": name, "description": spec.description, "task": spec.task,
                     "checkpoint": str(ck) if ck else None})
    return rows
