"""Does gating the vocals with the activity detector help beyond the held-out songs? Vocals-only, gated or not.

    python benchmarks/gate_check.py --musdb-root ROOT [--musdb-root ROOT2 ...] [--subset train] \\
        [--max-tracks 44] [--seconds 30]

Separates the first ``--seconds`` of a fixed, even spread of ``--max-tracks`` tracks over the roots (the same
selection ``stemsplit calibrate`` makes; tracks whose vocals are silent there are skipped) with the shipped
vocals model, binary and soft masks, with and without ``gate_vocals`` (the vocals silenced in frames where the
vocal activity detector hears no voice), and scores the vocals as BSSEval does (``windowed_sdr``: the median of
1 s windows; equal to BSSEval v4 on mask estimates where measured) and as one figure per excerpt (quick SDR).
Prints the median and mean over tracks and how many tracks the gate improves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit.evaluate import calibration_tracks, quick_sdr, target_excerpt, windowed_sdr  # noqa: E402
from stemsplit.separate import Separator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--musdb-root", action="append", required=True)
    ap.add_argument("--subset", default="train", choices=["train", "test"])
    ap.add_argument("--max-tracks", type=int, default=44)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    tracks = calibration_tracks(args.musdb_root, is_wav=True, subset=args.subset, max_tracks=args.max_tracks)
    seps = {(mask, gate): Separator(["vocals"], residual=False, mask=mask, gate_vocals=gate)
            for mask in ("binary", "soft") for gate in (False, True)}
    scores: dict[tuple[str, bool], list[tuple[float, float]]] = {k: [] for k in seps}
    names = []
    for tr in tracks:
        pair = target_excerpt(tr, ["vocals"], args.seconds)
        if pair is None:
            continue
        mix, ref = pair
        names.append(tr.name)
        for k, sep in seps.items():
            est = sep.separate(mix, tr.sr)["vocals"]
            scores[k].append((windowed_sdr(ref, est, mix, tr.sr), quick_sdr(ref, est)))
    print(f"{len(names)} tracks, first {args.seconds:g} s, vocals-only path")
    print(f"{'mask':6s} {'gate':5s} {'windowed median':>16s} {'windowed mean':>14s} {'quick mean':>11s}")
    for (mask, gate), v in scores.items():
        a = np.array(v)
        print(f"{mask:6s} {'on' if gate else 'off':5s} {np.nanmedian(a[:, 0]):16.2f} {np.nanmean(a[:, 0]):14.2f} "
              f"{a[:, 1].mean():11.2f}")
    for mask in ("binary", "soft"):
        off, on = np.array(scores[(mask, False)])[:, 0], np.array(scores[(mask, True)])[:, 0]
        ok = np.isfinite(off) & np.isfinite(on)
        print(f"{mask}: the gate raises the windowed score on {int(np.sum(on[ok] > off[ok] + 0.05))} and lowers it on "
              f"{int(np.sum(on[ok] < off[ok] - 0.05))} of {int(ok.sum())} tracks (by more than 0.05 dB)")


if __name__ == "__main__":
    main()
