"""A/B of the FFT backend under separation: ``scipy.fft`` (single precision for float32, what stemsplit uses)
against ``numpy.fft`` (every transform in float64), same process, runs interleaved so background load hits both.

    python benchmarks/bench_fft.py [--seconds 30] [--repeats 3] [--json OUT]

Prints the wall time of separating ``--seconds`` of stereo 44.1 kHz noise, vocals-only and four stems, with each
backend (median of the repeats), their ratio, and the largest difference between the two backends' stems.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from stemsplit import spectral
from stemsplit.separate import Separator


class _NumpyFFT:
    """``numpy.fft`` with scipy.fft's call signature for the two transforms stemsplit uses."""

    rfft = staticmethod(np.fft.rfft)
    irfft = staticmethod(np.fft.irfft)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    sr = 44100
    x = (np.random.default_rng(0).standard_normal((2, int(args.seconds * sr))) * 0.1).astype(np.float32)
    scipy_fft = spectral._fft()
    backends = {"scipy.fft": lambda: scipy_fft, "numpy.fft": lambda: _NumpyFFT}
    res = {"seconds": args.seconds, "paths": {}}
    for targets in (["vocals"], ["vocals", "drums", "bass", "other"]):
        sep = Separator(targets)
        sep.separate(x[:, :sr * 7], sr)  # compile
        walls: dict[str, list[float]] = {b: [] for b in backends}
        stems = {}
        for _ in range(args.repeats):
            for name, fn in backends.items():
                spectral._fft = fn
                t = time.perf_counter()
                stems[name] = sep.separate(x, sr)
                walls[name].append(time.perf_counter() - t)
        spectral._fft = backends["scipy.fft"]
        med = {b: float(np.median(w)) for b, w in walls.items()}
        diff = max(float(np.abs(stems["scipy.fft"][k] - stems["numpy.fft"][k]).max()) for k in stems["scipy.fft"])
        key = "vocals-only" if len(targets) == 1 else "four stems"
        res["paths"][key] = {"wall_s": med, "rtf": {b: args.seconds / v for b, v in med.items()},
                             "speedup": med["numpy.fft"] / med["scipy.fft"], "max_abs_diff": diff}
        print(f"{key}: scipy.fft {args.seconds / med['scipy.fft']:.1f}x real time, numpy.fft "
              f"{args.seconds / med['numpy.fft']:.1f}x; speed-up {med['numpy.fft'] / med['scipy.fft']:.2f}; "
              f"largest stem difference {diff:.1e}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
