"""How close is ``stemsplit.evaluate.windowed_sdr`` to BSSEval v4? Both on the same separations, and their times.

    python benchmarks/windowed_sdr_check.py --musdb-root ROOT --tracks "NAME,NAME" [--musdb-root ROOT2 ...] \\
        [--subset train] [--target vocals] [--seconds 120] [--masks binary,soft]

Each track's first ``--seconds`` is separated with the shipped model of ``--target`` (vocals-only path, or the
one target alone) and scored twice, the target against the rest of the mix: by museval's BSSEval v4
(``stemsplit.evaluate.score``, 1 s windows, the median over windows) and by ``windowed_sdr`` (the same windows
and silent-window rule, SDR without the 512-tap distortion filter). Prints both per track and mask mode, their
difference, and the time each took; then, per track, the counted windows grouped by how loud the target is
against the mix there (the target-to-mix ratio in dB), with the median windowed SDR of each group. ``--tracks`` gives names per ``--musdb-root`` (one list per root, in order).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.evaluate import score, window_sdrs, windowed_sdr  # noqa: E402
from stemsplit.separate import Separator  # noqa: E402

#: target-to-mix ratio bands (dB) of the per-level table
BANDS = ((-99, -15), (-15, -10), (-10, -6), (-6, -3), (-3, 99))


def _by_level(ref: np.ndarray, est: np.ndarray, mix: np.ndarray, sr: int) -> tuple[list[int], list[float]]:
    """Counted windows per target-to-mix band: (counts, median windowed SDR per band)."""
    starts, sdr = window_sdrs(ref, est, mix, sr)
    ratio = np.array([10 * np.log10(np.sum(ref[..., a:a + sr] ** 2.0) / np.sum(mix[..., a:a + sr] ** 2.0))
                      for a in starts])
    counts, medians = [], []
    for lo, hi in BANDS:
        sel = (ratio >= lo) & (ratio < hi)
        counts.append(int(sel.sum()))
        medians.append(float(np.median(sdr[sel])) if sel.any() else float("nan"))
    return counts, medians


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--musdb-root", action="append", required=True)
    ap.add_argument("--tracks", action="append", required=True, help="comma-separated names, one list per root")
    ap.add_argument("--subset", action="append", help="train or test, one per root (default train)")
    ap.add_argument("--target", default="vocals")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--masks", default="binary,soft")
    args = ap.parse_args()
    subsets = args.subset or ["train"] * len(args.musdb_root)
    if not len(args.tracks) == len(subsets) == len(args.musdb_root):
        ap.error("give one --tracks list (and one --subset, if any) per --musdb-root")
    tracks = []
    for root, names, subset in zip(args.musdb_root, args.tracks, subsets, strict=True):
        wanted = [n.strip() for n in names.split(",")]
        found = {t.name: t for t in find_tracks(root, is_wav=True, subset=subset)}
        missing = [n for n in wanted if n not in found]
        if missing:
            ap.error(f"not in {Path(root).name}/{subset}: {', '.join(missing)}")
        tracks += [found[n] for n in wanted]
    print(f"{'track':32s} {'mask':6s} {'BSSEval':>8s} {'windowed':>9s} {'diff':>6s} {'t BSSEval':>10s} {'t windowed':>11s}")
    diffs, tb, tw, levels = [], 0.0, 0.0, []
    for mode in args.masks.split(","):
        sep = Separator([args.target], residual=False, mask=mode)
        for tr in tracks:
            n = min(tr.length, int(args.seconds * tr.sr))
            mix = tr.mix(0, n)
            ref = tr.read(args.target, 0, n)
            est = sep.separate(mix, tr.sr)[args.target]
            t0 = time.perf_counter()
            bss = score({args.target: ref, "rest": mix - ref}, {args.target: est, "rest": mix - est},
                        tr.sr)[args.target]["SDR"]
            t1 = time.perf_counter()
            win = windowed_sdr(ref, est, mix, tr.sr)
            t2 = time.perf_counter()
            diffs.append(win - bss)
            tb, tw = tb + t1 - t0, tw + t2 - t1
            print(f"{tr.name[:32]:32s} {mode:6s} {bss:8.2f} {win:9.2f} {win - bss:6.2f} {t1 - t0:9.1f}s "
                  f"{t2 - t1:10.2f}s", flush=True)
            levels.append((tr.name, mode, *_by_level(ref, est, mix, tr.sr)))
    print(f"\n{'track':32s} {'mask':6s} " + " ".join(f"{f'{lo}..{hi} dB':>16s}" for lo, hi in BANDS))
    for name, mode, counts, medians in levels:
        print(f"{name[:32]:32s} {mode:6s} " + " ".join(
            f"{n:4d} x {m:7.2f} dB" if n else f"{'-':>16s}" for n, m in zip(counts, medians, strict=True)))
    d = np.abs(diffs)
    print(f"largest difference {d.max():.3f} dB, mean {d.mean():.3f} dB; BSSEval {tb:.1f} s in all, "
          f"windowed {tw:.2f} s ({tb / max(tw, 1e-9):.0f}x faster)")


if __name__ == "__main__":
    main()
