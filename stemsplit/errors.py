"""Exceptions raised for bad input; the CLI prints their message on one line and exits with code 2."""

from __future__ import annotations

__all__ = [
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


class StemsplitError(Exception):
    """Base class of every error stemsplit raises on purpose."""


class AudioError(StemsplitError):
    """The audio given cannot be separated."""


class AudioFileError(AudioError):
    """An audio file is missing, unreadable or cannot be decoded."""


class InvalidAudioError(AudioError):
    """Samples are empty, non-finite, wrongly shaped or at an unsupported sample rate."""


class OutputError(StemsplitError):
    """An output file or folder cannot be written (a file in the way, no permission, a full disk)."""


class TargetError(StemsplitError):
    """A target description is malformed."""


class UnknownTargetError(TargetError):
    """No target of that name is known."""


class CheckpointError(StemsplitError):
    """A checkpoint is corrupt, incompatible or cannot be written."""


class MissingCheckpointError(CheckpointError):
    """A target has no trained checkpoint yet."""


class OptionError(StemsplitError):
    """An option has a value outside what it accepts."""


class DependencyError(StemsplitError):
    """A program or package stemsplit needs is not installed."""


class DataError(StemsplitError):
    """A training or evaluation dataset is missing or malformed."""


class StemsplitWarning(UserWarning):
    """Base class of the warnings stemsplit gives; the CLI prints each as one ``stemsplit: warning:`` line."""


class SilentAudioWarning(StemsplitWarning):
    """The audio holds only digital silence: its stems are silent too."""


class ClippingWarning(StemsplitWarning):
    """Stem samples beyond full scale were clamped when written as PCM."""
