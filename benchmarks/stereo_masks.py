"""Does a mask per channel beat one mask for both? A test of stereo information with no new model.

    python benchmarks/stereo_masks.py --musdb-root ROOT [--tracks "NAME,NAME"] [--musdb-root ROOT2 ...] \\
        [--target vocals] [--seconds 30] [--max-tracks 40]

The shipped models see one channel, the magnitude averaged over left and right, and one mask serves both
channels. Here each channel of a stereo song is also separated on its own (as a mono signal: its own features,
its own mask), and both are scored against the true stem on the song's first ``--seconds`` (quick SDR, the
mean over the stereo tracks, binary and soft masks). Mono tracks are skipped. If the per-channel masks win,
the stereo image holds information a model could use (a pan position, a channel where the target dominates);
they cost a second pass of the model. The mean of both estimates is reported too.

``--tracks`` gives names per ``--musdb-root`` (one list per root, in order); without it, a root's first
``--max-tracks`` training tracks are used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.evaluate import quick_sdr, target_excerpt  # noqa: E402
from stemsplit.separate import Separator  # noqa: E402
from stemsplit.targets import get_target  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--musdb-root", action="append", required=True)
    ap.add_argument("--tracks", action="append", help="comma-separated names, one list per --musdb-root")
    ap.add_argument("--target", default="vocals")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-tracks", type=int, default=40)
    args = ap.parse_args()
    if args.tracks and len(args.tracks) != len(args.musdb_root):
        ap.error("give --tracks once per --musdb-root")
    stems = get_target(args.target).stems
    tracks = []
    for i, root in enumerate(args.musdb_root):
        found = find_tracks(root, is_wav=True, subset="train")
        if args.tracks:
            names = [n for n in args.tracks[i].split(",") if n]
            by_name = {t.name: t for t in found}
            missing = [n for n in names if n not in by_name]
            if missing:
                ap.error(f"not in {root}: {', '.join(missing)}")
            tracks += [by_name[n] for n in names]
        else:
            tracks += found[:args.max_tracks]
    seps = {mode: Separator([args.target], mask=mode) for mode in ("binary", "soft")}
    rows, times = [], {"one mask": 0.0, "per channel": 0.0}
    print("| track | binary: one mask | per channel | mean of both | soft: one mask | per channel | mean of both |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for track in tracks:
        pair = target_excerpt(track, stems, args.seconds)
        if pair is None or pair[0].shape[0] != 2 or np.allclose(pair[0][0], pair[0][1]):
            continue  # silent target, or mono
        mix, ref = pair
        row = []
        for sep in seps.values():
            t = time.perf_counter()
            one = sep.separate(mix, track.sr)[args.target]
            times["one mask"] += time.perf_counter() - t
            t = time.perf_counter()
            per = np.concatenate([sep.separate(mix[c:c + 1], track.sr)[args.target] for c in range(2)])
            times["per channel"] += time.perf_counter() - t
            row += [quick_sdr(ref, one), quick_sdr(ref, per), quick_sdr(ref, (one + per) / 2)]
        rows.append(row)
        print(f"| {track.name} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)
    if not rows:
        sys.exit("no stereo track with the target found")
    a = np.asarray(rows)
    print(f"| **mean of {len(rows)}** | " + " | ".join(f"**{v:.2f}**" for v in a.mean(0)) + " |")
    print("| median | " + " | ".join(f"{v:.2f}" for v in np.median(a, 0)) + " |")
    wins = (a[:, 1] > a[:, 0]).sum(), (a[:, 4] > a[:, 3]).sum()
    print(f"\nper-channel masks better on {wins[0]} of {len(rows)} tracks (binary), {wins[1]} (soft); "
          f"separation time per channel / one mask: {times['per channel'] / times['one mask']:.2f}x")


if __name__ == "__main__":
    main()
