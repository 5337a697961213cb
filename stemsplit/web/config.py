"""Settings of ``stemsplit serve``: one frozen dataclass, checked when it is built."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import OptionError

__all__ = ["ServerConfig", "LOCAL_HOSTS"]

#: hosts that only this computer can reach; any other binding draws a warning
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerConfig:
    """What the web server listens on and how much work it accepts.

    Parameters
    ----------
    host : str
        Address to listen on. Anything but 127.0.0.1/localhost/::1 makes the page reachable from other machines.
    port : int
        TCP port (0 picks a free one).
    max_upload_mb : float
        Largest upload accepted, in MiB; bigger ones are refused with 413 while they stream in.
    keep_minutes : float
        Finished jobs (their upload and stems) are removed this long after they end.
    queue : int
        Songs that may wait (or be uploading) for a free worker; one more gets 503.
    workers : int
        Separations run at the same time (each one uses every core through JAX already).
    targets_dir : tuple of str
        Extra folders of target TOML files.
    checkpoint_dirs : tuple of str
        Extra folders to look for checkpoints in.
    mask_view_seconds : float
        Longest stretch the mask picture covers.

    Examples
    --------
    >>> ServerConfig(port=8080, max_upload_mb=50).max_upload_bytes
    52428800
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 200.0
    keep_minutes: float = 60.0
    queue: int = 8
    workers: int = 1
    targets_dir: tuple[str, ...] = ()
    checkpoint_dirs: tuple[str, ...] = ()
    mask_view_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise OptionError("--host needs an address, e.g. 127.0.0.1.")
        _check_int("--port", self.port, 0, 65535)
        _check_positive("--max-upload-mb", self.max_upload_mb)
        _check_positive("--keep-minutes", self.keep_minutes)
        _check_int("--queue", self.queue, 1, 10_000)
        _check_int("--workers", self.workers, 1, 64)
        _check_positive("mask_view_seconds", self.mask_view_seconds)
        object.__setattr__(self, "targets_dir", tuple(str(d) for d in self.targets_dir))
        object.__setattr__(self, "checkpoint_dirs", tuple(str(d) for d in self.checkpoint_dirs))

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 2 ** 20)

    @property
    def keep_seconds(self) -> float:
        """How long finished jobs are kept, in seconds."""
        return self.keep_minutes * 60.0

    @property
    def is_local(self) -> bool:
        """Whether only this computer can reach the server."""
        return self.host.strip().lower() in LOCAL_HOSTS

    @classmethod
    def from_options(cls, *, host: str = "127.0.0.1", port: str | int = 8000, max_upload_mb: str | float = 200,
                     keep_minutes: str | float = 60, queue: str | int = 8, workers: str | int = 1,
                     targets_dir: Sequence[str | os.PathLike] | None = None,
                     checkpoint_dirs: Sequence[str | os.PathLike] | None = None) -> ServerConfig:
        """Build a config from command-line text, with one clear :class:`OptionError` per bad value.

        Examples
        --------
        >>> ServerConfig.from_options(port="8080").port
        8080
        """
        return cls(host=host, port=_int("--port", port), max_upload_mb=_float("--max-upload-mb", max_upload_mb),
                   keep_minutes=_float("--keep-minutes", keep_minutes), queue=_int("--queue", queue),
                   workers=_int("--workers", workers), targets_dir=tuple(targets_dir or ()),
                   checkpoint_dirs=tuple(checkpoint_dirs or ()))


def _int(option: str, value: str | int) -> int:
    """``value`` as an int, or an OptionError naming the option."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise OptionError(f"{option} expects a whole number, got {value!r}.") from None


def _float(option: str, value: str | float) -> float:
    """``value`` as a float, or an OptionError naming the option."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise OptionError(f"{option} expects a number, got {value!r}.") from None


def _check_int(option: str, value: int, lo: int, hi: int) -> None:
    """Raise unless ``value`` is an int in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise OptionError(f"{option} must be a whole number from {lo} to {hi}, got {value!r}.")


def _check_positive(option: str, value: float) -> None:
    """Raise unless ``value`` is a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise OptionError(f"{option} must be a number above 0, got {value!r}.")
