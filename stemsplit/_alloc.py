"""Keep the large, short-lived buffers of separation on the heap instead of fresh memory maps (glibc only).

Every call of a compiled model allocates its scratch memory (tens of MiB for a block) and frees it on return,
and each block's spectra and stems are arrays of a few MiB. glibc's ``malloc`` serves requests above its *mmap
threshold* with a fresh memory map, which the kernel hands out page by page, zeroing each on first touch, and
which ``free`` unmaps at once. The threshold adapts, but never beyond 32 MiB, so a block whose scratch memory
exceeds that pays a page fault per 4 KiB on every call: a fifth to a third of the vocals model's time on a
512-frame block (docs/performance.md). :func:`tune` raises the threshold (and the heap trim threshold with it),
so that such buffers are reused from the heap from the second block on.

The setting is process-wide: memory freed by the process is returned to the system later, in larger pieces
(at most :data:`TRIM_THRESHOLD` is kept unused at the top of the heap). ``STEMSPLIT_NO_MALLOC_TUNING=1`` leaves
the allocator alone, as does a process whose environment already chose these thresholds (``MALLOC_MMAP_THRESHOLD_``
and the like, or ``glibc.malloc`` tunables in ``GLIBC_TUNABLES``). Nothing happens on other C libraries or systems.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["MMAP_THRESHOLD", "OPT_OUT", "TRIM_THRESHOLD", "tune"]

#: set to anything but "" or "0" to leave the allocator as it is
OPT_OUT = "STEMSPLIT_NO_MALLOC_TUNING"

#: requests at least this large still get their own memory map (whole-song arrays, say)
MMAP_THRESHOLD = 256 * 2 ** 20
#: free memory at the top of the heap beyond this is returned to the system
TRIM_THRESHOLD = 512 * 2 ** 20

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_state: bool | None = None  # the outcome of the first call


#: environment through which a user already chose glibc's thresholds (then they are left alone)
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def _user_settings() -> bool:
    return any(k in os.environ for k in _USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def tune() -> bool:
    """Raise glibc's mmap and trim thresholds once per process (later calls return the first outcome).

    Returns
    -------
    bool
        True when the thresholds are now raised; False when opted out, left to the user's own settings, or not
        on glibc.
    """
    global _state
    if _state is not None:
        return _state
    _state = False
    if os.environ.get(OPT_OUT, "") not in ("", "0") or _user_settings() or not sys.platform.startswith("linux"):
        return _state
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only (musl has no such function)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return _state
    del gnu_get_libc_version
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # the trim threshold first: setting either one turns off glibc's adaptive thresholds, and the heap must not
    # be trimmed back below the buffers it is meant to keep
    _state = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return _state
