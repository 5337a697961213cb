"""Checkpoints: named arrays plus JSON metadata in a NumPy ``.npz``, guarded by a content hash.

Loading never executes code: the archive is read with ``allow_pickle=False``, metadata is JSON, and the
SHA-256 over every array's name, dtype, shape and bytes plus the metadata must match the stored hash.
Writes go to a temporary file that is renamed into place, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .errors import CheckpointError, MissingCheckpointError, StemsplitError

__all__ = ["FORMAT", "save", "load", "save_model", "load_model", "tree_to_arrays", "arrays_to_tree", "atomic_path"]

FORMAT = "stemsplit-checkpoint/1"
_META_KEY = "__metadata__"


def _digest(arrays: dict[str, np.ndarray], meta_json: str) -> str:
    """SHA-256 over the arrays (sorted by name) and the metadata without its hash."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(meta_json.encode())
    return h.hexdigest()


class atomic_path:
    """Context manager yielding a temporary path beside ``path``; renamed onto it on success, removed on error."""

    def __init__(self, path: str | os.PathLike, suffix: str = ""):
        self.path = Path(path)
        self.suffix = suffix

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=self.suffix + ".tmp",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> str:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : path-like
        Destination file (``.npz``).
    arrays : dict of str to np.ndarray
        Named numeric arrays (no object dtypes).
    metadata : dict
        JSON-serialisable description (frontend, target, model config, training summary...).

    Returns
    -------
    str
        The content hash written.
    """
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for name, a in arrays.items():
        if a.dtype == object or name == _META_KEY:
            raise CheckpointError(f"cannot store array {name!r} of dtype {a.dtype}")
    meta = {k: v for k, v in metadata.items() if k != "sha256"}
    meta["format"] = FORMAT
    meta_json = json.dumps(meta, sort_keys=True)
    digest = _digest(arrays, meta_json)
    full = json.dumps({**meta, "sha256": digest}, sort_keys=True)
    payload = {**arrays, _META_KEY: np.frombuffer(full.encode(), dtype=np.uint8)}
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **payload)
    return digest


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a checkpoint.

    Returns
    -------
    arrays : dict of str to np.ndarray
    metadata : dict
        Includes ``"sha256"``.

    Raises
    ------
    MissingCheckpointError
        The file does not exist.
    CheckpointError
        The file is not a stemsplit checkpoint, is truncated, or its content does not match its hash.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointError(f"Checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"Checkpoint {path} is corrupt or not a stemsplit checkpoint ({e}).") from None
    raw = arrays.pop(_META_KEY, None)
    if raw is None:
        raise CheckpointError(f"Checkpoint {path} has no stemsplit metadata.")
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"Checkpoint {path} has unreadable metadata.") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"Checkpoint {path} has format {meta.get('format')!r}, expected {FORMAT!r}.")
    stored = meta.pop("sha256", None)
    digest = _digest(arrays, json.dumps(meta, sort_keys=True))
    if stored != digest:
        raise CheckpointError(f"Checkpoint {path} is corrupt: its content does not match its hash.")
    meta["sha256"] = digest
    return arrays, meta


def _key_name(entry: Any) -> str:
    """One path entry of a pytree as a string."""
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def tree_to_arrays(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten a pytree of arrays into ``{"a/b/c": array}`` (NNX ``value`` wrappers dropped from names)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [_key_name(p) for p in path]
        if parts and parts[-1] == "value":
            parts = parts[:-1]
        out[prefix + "/".join(parts)] = np.asarray(leaf)
    return out


def arrays_to_tree(template: Any, arrays: dict[str, np.ndarray], prefix: str = "", *, source: str = "") -> Any:
    """Inverse of :func:`tree_to_arrays`: fill ``template``'s leaves from ``arrays``, checking names and shapes."""
    names = list(tree_to_arrays(template, prefix))
    leaves, treedef = jax.tree_util.tree_flatten(template)
    filled = []
    for name, leaf in zip(names, leaves, strict=True):
        if name not in arrays:
            raise CheckpointError(f"Checkpoint {source} lacks parameter {name!r}.")
        a = arrays[name]
        if tuple(a.shape) != tuple(np.shape(leaf)):
            raise CheckpointError(
                f"Checkpoint {source}: parameter {name!r} has shape {a.shape}, expected {np.shape(leaf)}.")
        filled.append(jax.numpy.asarray(a, dtype=getattr(leaf, "dtype", a.dtype)))
    return jax.tree_util.tree_unflatten(treedef, filled)


def save_model(path: str | os.PathLike, model: Any, spec: Any, *, training: dict | None = None) -> str:
    """Save a target's trained model: its parameters, the target spec, model config and frontend.

    Parameters
    ----------
    path : path-like
        Destination ``.npz``.
    model : MaskCNN
        The model whose ``nnx.Param`` values are stored.
    spec : TargetSpec
        The target it was trained for (carried so the loader can rebuild the model).
    training : dict, optional
        Summary of how it was trained (data, steps, wall time, validation scores).

    Returns
    -------
    str
        The content hash.
    """
    from flax import nnx

    from .spectral import FRONTEND

    arrays = tree_to_arrays(nnx.state(model, nnx.Param), "param/")
    meta = {"kind": "model", "target": spec.to_dict(), "frontend": FRONTEND.to_dict(), "training": training or {}}
    return save(path, arrays, meta)


def load_model(path: str | os.PathLike) -> tuple[Any, Any, dict[str, Any]]:
    """Load a model saved by :func:`save_model`.

    Returns
    -------
    model : MaskCNN
        In evaluation mode (dropout off).
    spec : TargetSpec
        The spec stored with it.
    metadata : dict
    """
    from flax import nnx

    from .model import MaskCNN
    from .spectral import FRONTEND
    from .targets import TargetSpec

    arrays, meta = load(path)
    if meta.get("kind") != "model":
        raise CheckpointError(f"Checkpoint {path} holds {meta.get('kind')!r}, not a model.")
    if meta.get("frontend") != FRONTEND.to_dict():
        raise CheckpointError(f"Checkpoint {path} was trained for frontend {meta.get('frontend')}, "
                              f"this stemsplit uses {FRONTEND.to_dict()}.")
    try:
        spec = TargetSpec.from_dict(meta["target"])
    except (KeyError, StemsplitError) as e:
        raise CheckpointError(f"Checkpoint {path} has an invalid target description ({e}).") from None
    # built from shapes alone: drawing random weights only to replace them compiles dozens of small XLA
    # programs, most of a cold start-up (docs/performance.md)
    model = nnx.eval_shape(lambda: MaskCNN(spec.model, rngs=nnx.Rngs(0)))
    if jax.tree.leaves(nnx.state(model, nnx.Not(nnx.Param))):  # state a checkpoint does not hold: draw it
        model = MaskCNN(spec.model, rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    nnx.update(model, arrays_to_tree(state, arrays, "param/", source=str(path)))
    model.eval()
    return model, spec, meta
