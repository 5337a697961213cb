"""JAX's persistent compilation cache in a per-user folder, so a second run skips XLA compilation.

Compiling the models for a block shape takes seconds on a CPU; the compiled programs are stored under
``$XDG_CACHE_HOME/stemsplit/jax`` (``~/.cache/stemsplit/jax``) and reused by later runs with the same models,
shapes, JAX version and CPU. ``STEMSPLIT_NO_COMPILE_CACHE=1`` turns it off; a cache folder the caller gave JAX
already (``jax_compilation_cache_dir``) is left as it is.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = ["OPT_OUT", "cache_dir", "enable"]

#: set to anything but "" or "0" to run without the persistent cache
OPT_OUT = "STEMSPLIT_NO_COMPILE_CACHE"

_MAX_BYTES = 512 * 2 ** 20  # least recently used programs are evicted past this


def cache_dir() -> Path:
    """The per-user folder for compiled programs: ``$XDG_CACHE_HOME/stemsplit/jax`` or
    ``~/.cache/stemsplit/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stemsplit" / "jax"


def enable() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_dir` (takes effect if nothing was compiled
    yet in this process).

    Returns
    -------
    Path or None
        The cache folder in use; None when opted out or the folder cannot be created (then every run compiles).
    """
    if os.environ.get(OPT_OUT, "") not in ("", "0"):
        return None
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # our programs compile in 0.1-3 s each: keep them all (the default keeps only those over 1 s)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if importlib.util.find_spec("filelock") is not None:  # JAX needs it to evict; without it the cache only grows
        jax.config.update("jax_compilation_cache_max_size", _MAX_BYTES)
    return folder
