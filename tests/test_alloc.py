"""The allocator setting that keeps per-block buffers on the heap, and the block size that relies on it."""

import ctypes.util
import os
import subprocess
import sys

import pytest

from stemsplit import _alloc
from stemsplit.engine import BLOCK_MARGIN
from stemsplit.separate import BLOCK_FRAMES, WIENER_BLOCK_FRAMES, Separator

GLIBC = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"),
                                                      "gnu_get_libc_version")

# a 48 MiB buffer allocated, touched and freed again and again: over glibc's adaptive mmap threshold (32 MiB at
# most), so each round maps fresh memory unless the thresholds were raised; prints the page faults per round
# (plain malloc: numpy asks for huge pages, which fault less often)
CHILD = r"""
import ctypes, resource, sys
if sys.argv[1] == "tune":
    from stemsplit import _alloc
    assert _alloc.tune()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = 48 * 2 ** 20

def round_trip():
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    libc.free(p)

for _ in range(3):
    round_trip()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round_trip()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 10)
"""


def _faults(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != _alloc.OPT_OUT and not k.startswith("MALLOC_")}
    r = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return float(r.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_tuned_allocator_reuses_large_buffers():
    plain, tuned = _faults("plain"), _faults("tune")
    assert plain > 5000  # 48 MiB of fresh 4 KiB pages every round
    assert tuned < plain / 20


def test_tune_respects_opt_out_and_user_settings(monkeypatch):
    monkeypatch.setattr(_alloc, "_state", None)
    monkeypatch.setenv(_alloc.OPT_OUT, "1")
    assert _alloc.tune() is False
    assert _alloc.tune() is False  # decided once per process
    monkeypatch.setattr(_alloc, "_state", None)
    monkeypatch.delenv(_alloc.OPT_OUT)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1000000")
    assert _alloc.tune() is False
    monkeypatch.setattr(_alloc, "_state", None)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000")
    assert _alloc.tune() is False
    monkeypatch.setattr(_alloc, "_state", None)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")  # not the allocator's thresholds
    assert _alloc.tune() is GLIBC


def test_default_blocks_and_their_scratch_memory():
    """The default block keeps the shipped vocals model's compiled pass under the 32 MiB that glibc's adaptive
    threshold reaches on its own; a 512-frame block would not (the reason for the default)."""
    sep = Separator(["vocals"])
    assert sep.block_frames == BLOCK_FRAMES
    assert Separator(["vocals"], mask="wiener", loaded=sep.targets).block_frames == WIENER_BLOCK_FRAMES
    scratch = sep.runner.scratch_bytes
    assert scratch(BLOCK_FRAMES + BLOCK_MARGIN) < 32 * 2 ** 20 < scratch(512 + BLOCK_MARGIN)
