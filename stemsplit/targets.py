"""Targets are data: each ``targets/NAME.toml`` describes one stem model; this module reads them.

A target file looks like::

    name = "vocals"
    description = "Lead and backing vocals"
    stems = ["vocals"]          # dataset stems summed to form the target
    task = "mask"               # "mask" (513-bin mask) or "activity" (one probability per frame)
    checkpoint = "vocals.npz"   # file name, looked up beside the checkpoints folder
    threshold = 0.5             # optional: score a bin needs to belong to this target (default: calibrated)
    priority = 40               # a bin two targets claim goes to the higher priority
    activity_db = -15.0         # activity targets: a frame is voiced when the stems' energy is within this of the mix
    [model]
    preset = "article"          # "article" (16 filters, 64 units), "small" or "tiny"; fields may be overridden

Search order for targets: folders passed by the caller, then ``$STEMSPLIT_TARGETS`` (``os.pathsep``-separated),
then the built-in folder. A name found earlier hides the same name later, so a user can replace a built-in.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from .errors import OptionError, TargetError, UnknownTargetError
from .model import ModelConfig, model_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TargetSpec", "TASKS", "builtin_targets_dir", "search_dirs", "discover", "get_target", "get_targets",
           "parse_target_list", "sanitize_name", "load_spec", "shipped_checkpoint_dirs", "is_shipped_checkpoint"]

TASKS = ("mask", "activity")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_targets_dir() -> Path:
    """The shipped ``targets/`` folder (repository checkout or installed package data)."""
    repo = _PACKAGE_DIR.parent / "targets"
    return repo if repo.is_dir() else _PACKAGE_DIR / "_targets"


def _builtin_checkpoints_dir() -> Path:
    """The shipped ``checkpoints/`` folder."""
    repo = _PACKAGE_DIR.parent / "checkpoints"
    return repo if repo.is_dir() else _PACKAGE_DIR / "_checkpoints"


def shipped_checkpoint_dirs() -> list[Path]:
    """Every folder that holds the checkpoints shipped with stemsplit (the checkout's and the installed one)."""
    return [_PACKAGE_DIR.parent / "checkpoints", _PACKAGE_DIR / "_checkpoints"]


def is_shipped_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies inside a shipped checkpoints folder (writing there replaces a shipped model)."""
    p = Path(path).expanduser().resolve()
    return any(p.is_relative_to(d.resolve()) for d in shipped_checkpoint_dirs())


def sanitize_name(name: str) -> str:
    """A string safe as a file name: letters, digits, ``.``, ``_``, ``-``; never empty or hidden."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "audio"
    return clean[:120]


def _opt_float(v) -> float | None:
    return None if v is None else float(v)


def _read_model(m: dict) -> ModelConfig:
    """A ``[model]`` table: a preset name (default ``"article"``) plus :class:`ModelConfig` overrides."""
    m = dict(m)
    return model_config(m.pop("preset", "article"), **m)


#: converters for fields annotated with a plain type; :class:`TargetSpec`'s other fields name theirs in their
#: metadata (``read``: TOML value -> field value, for :meth:`TargetSpec.from_dict`), and a field whose plain
#: value is not the attribute itself names how to write it (``write``: spec -> value, for ``to_dict``)
_PLAIN = {"str": str, "int": int, "float": float}


@dataclass(frozen=True)
class TargetSpec:
    """One target, as described by its TOML file.

    Attributes
    ----------
    name : str
        Lowercase identifier, also the stem's file name.
    stems : tuple of str
        Dataset stems whose sum forms the target (e.g. ``("vocals",)``).
    task : str
        ``"mask"`` or ``"activity"``.
    model : ModelConfig
        Network size.
    checkpoint : str
        Checkpoint file name or path.
    threshold : float or None
        Score a bin (or frame) needs to belong to the target. None (no ``threshold`` in the TOML): the value
        calibrated for the checkpoint (``stemsplit calibrate``; training calibrates at the end), else 0.5.
    priority : int
        A bin several targets claim goes to the highest priority (:func:`stemsplit.masks.combine`).
    description : str
        One line for listings.
    activity_db : float
        Activity targets only: a frame is labelled active when the target's energy in the model band is within
        this many dB of the mix's (and above -60 dBFS).
    source : Path or None
        The TOML file read.
    """

    name: str
    stems: tuple[str, ...] = field(metadata={"read": tuple, "write": lambda spec: list(spec.stems)})
    task: str = "mask"
    model: ModelConfig = field(default_factory=model_config,
                               metadata={"read": _read_model, "write": lambda spec: spec.model.to_dict()})
    checkpoint: str = field(default="", metadata={"write": lambda spec: spec.checkpoint_file})
    threshold: float | None = field(default=None, metadata={"read": _opt_float})
    priority: int = 0
    description: str = ""
    activity_db: float = -15.0
    source: Path | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise TargetError(f"target name {self.name!r} must be lowercase letters, digits, '-' or '_'")
        if self.task not in TASKS:
            raise TargetError(f"target {self.name!r}: task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if not self.stems or not all(isinstance(s, str) and _NAME.match(s) for s in self.stems):
            raise TargetError(f"target {self.name!r}: stems must be a non-empty list of stem names")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise TargetError(f"target {self.name!r}: threshold must be in [0, 1], got {self.threshold}")
        expected = 1 if self.task == "activity" else self.model.n_bins
        if self.model.outputs != expected:
            object.__setattr__(self, "model", ModelConfig(**{**self.model.to_dict(), "outputs": expected}))

    @property
    def checkpoint_file(self) -> str:
        """The checkpoint's file name (defaults to ``NAME.npz``)."""
        return self.checkpoint or f"{self.name}.npz"

    def checkpoint_candidates(self, extra_dirs: Iterable[str | os.PathLike] = ()) -> list[Path]:
        """Where this target's checkpoint may be, in search order."""
        p = Path(self.checkpoint_file).expanduser()
        if p.is_absolute():
            return [p]
        dirs = [Path(d) for d in extra_dirs]
        dirs += [Path(d) for d in os.environ.get("STEMSPLIT_CHECKPOINTS", "").split(os.pathsep) if d]
        if self.source is not None:
            dirs += [self.source.parent.parent / "checkpoints", self.source.parent]
        dirs.append(_builtin_checkpoints_dir())
        return [d / p for d in dirs]

    def find_checkpoint(self, extra_dirs: Iterable[str | os.PathLike] = ()) -> Path | None:
        """The first existing checkpoint file, or None."""
        return next((c for c in self.checkpoint_candidates(extra_dirs) if c.is_file()), None)

    def to_dict(self) -> dict:
        """Plain values, for checkpoint metadata."""
        return {f.name: f.metadata["write"](self) if "write" in f.metadata else getattr(self, f.name)
                for f in _FIELDS}

    @classmethod
    def from_dict(cls, d: dict, source: Path | None = None) -> TargetSpec:
        """Build from TOML or metadata values, with clear errors for wrong keys or types.

        A key left out takes the field's default (the ``"article"`` model for ``model``)."""
        d = dict(d)
        unknown = set(d) - set(_READERS)
        where = f" in {source}" if source else ""
        if unknown:
            raise TargetError(f"unknown key(s) {', '.join(sorted(unknown))}{where}")
        if any(name not in d for name in _REQUIRED):
            raise TargetError(f"a target needs {' and '.join(map(repr, _REQUIRED))}{where}")
        if "model" in d:  # a [model] table (empty or None: the "article" preset), copied before it is read
            d["model"] = dict(d["model"] or {})
        try:
            return cls(**{name: read(d[name]) for name, read in _READERS.items() if name in d}, source=source)
        except (TypeError, ValueError) as e:
            raise TargetError(f"malformed target{where}: {e}") from None


#: the fields a target file (or checkpoint metadata) holds, in order: every field but ``source``
_FIELDS = tuple(f for f in fields(TargetSpec) if f.name != "source")
_REQUIRED = tuple(f.name for f in _FIELDS if f.default is MISSING and f.default_factory is MISSING)
#: field name -> converter from the TOML value, the model first (its errors, such as an unknown preset, win)
_READERS = {f.name: f.metadata.get("read") or _PLAIN[f.type]
            for f in sorted(_FIELDS, key=lambda f: f.name != "model")}


def load_spec(path: str | os.PathLike) -> TargetSpec:
    """Read one target TOML file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise TargetError(f"cannot read target file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"target file {path} is not valid TOML: {e}") from None
    spec = TargetSpec.from_dict(data, source=path.resolve())
    if spec.name != path.stem:
        raise TargetError(f"target file {path} declares name {spec.name!r}; name the file {spec.name}.toml")
    return spec


def search_dirs(extra: Sequence[str | os.PathLike] | None = None) -> list[Path]:
    """Target folders in search order."""
    dirs = [Path(d) for d in (extra or [])]
    dirs += [Path(d) for d in os.environ.get("STEMSPLIT_TARGETS", "").split(os.pathsep) if d]
    dirs.append(builtin_targets_dir())
    return dirs


def discover(extra: Sequence[str | os.PathLike] | None = None) -> dict[str, TargetSpec]:
    """Every target visible from the search folders, by name (earlier folders win)."""
    found: dict[str, TargetSpec] = {}
    for d in search_dirs(extra):
        if extra and d in [Path(e) for e in extra] and not d.is_dir():
            raise TargetError(f"targets folder not found: {d}")
        for f in sorted(d.glob("*.toml")) if d.is_dir() else []:
            spec = load_spec(f)
            found.setdefault(spec.name, spec)
    return found


def get_target(name: str, extra: Sequence[str | os.PathLike] | None = None) -> TargetSpec:
    """The target called ``name``; raises :class:`UnknownTargetError` listing the known names."""
    known = discover(extra)
    if name not in known:
        listing = ", ".join(sorted(known)) or "none"
        raise UnknownTargetError(f"Unknown target {name!r}. Known targets: {listing}.")
    return known[name]


def get_targets(names: Iterable[str], extra: Sequence[str | os.PathLike] | None = None) -> list[TargetSpec]:
    """Several targets by name, in the order given, without duplicates."""
    names = list(names)
    if not names:
        raise OptionError("Give at least one target.")
    if len(set(names)) != len(names):
        raise OptionError(f"Targets repeat: {', '.join(names)}.")
    known = discover(extra)
    out = []
    for n in names:
        if n not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise UnknownTargetError(f"Unknown target {n!r}. Known targets: {listing}.")
        out.append(known[n])
    return out


def parse_target_list(text: str) -> list[str]:
    """``"vocals, drums"`` -> ``["vocals", "drums"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]
