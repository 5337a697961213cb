"""Where a target's mask goes wrong, band by band: energy-weighted confusion against the ideal binary mask.

    python benchmarks/band_confusion.py --target bass --musdb-root ROOT --tracks "NAME,NAME" \\
        [--musdb-root ROOT2 --tracks NAME ...] [--checkpoint-dir DIR] [--targets-dir DIR] \\
        [--bands 0,60,120,250,500] [--seconds 600]

For each track (the first ``--seconds``, channels averaged): the target is separated alone with soft masks, and
the mask is read back as ``|STFT(estimate)| / |STFT(mix)|`` on the separation's own grid (2048/512 at 44.1 kHz).
A bin is "target" in the ideal binary mask when the target's magnitude exceeds the rest's (the training label's
0.5 line). Per band, each bin weighted by the mix's energy there:

- ``ibm``: the share of the band's energy in bins the target dominates;
- ``TP`` / ``FP`` / ``FN``: shares of the band's energy in bins claimed by the binary mask (score >= 0.5) and
  target, claimed and not target, target and not claimed;
- ``on`` / ``off``: the mean soft score in target bins and in the other bins. A model that tells the target from
  the rest in a band scores ``on`` well above ``off``; equal scores mean it only knows the band.

``--checkpoint-dir`` / ``--targets-dir`` measure a candidate model instead of the shipped one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit import spectral  # noqa: E402
from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.engine import find_targets, load_target  # noqa: E402
from stemsplit.evaluate import target_excerpt  # noqa: E402
from stemsplit.separate import Separator  # noqa: E402


def magnitude(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    import librosa

    return np.abs(librosa.stft(np.mean(np.atleast_2d(x), axis=0), n_fft=n_fft, hop_length=hop))


def band_table(mix: np.ndarray, ref: np.ndarray, est: np.ndarray, sr: int,
               edges: list[float]) -> list[dict[str, float]]:
    grid = spectral.FRONTEND.grid(sr)
    n_fft, hop = grid.n_fft, grid.hop
    X, S, E = (magnitude(a, n_fft, hop) for a in (mix, ref, est))
    R = magnitude(np.mean(np.atleast_2d(mix), 0) - np.mean(np.atleast_2d(ref), 0), n_fft, hop)
    target = S > R
    score = np.clip(E / (X + 1e-8), 0.0, 1.0)
    claimed = score >= 0.5
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    w = X ** 2
    rows = []
    for lo, hi in zip(edges, edges[1:] + [sr / 2 + 1], strict=True):
        b = (freqs >= lo) & (freqs < hi)
        wb, tb, cb, sb = w[b], target[b], claimed[b], score[b]
        total = float(wb.sum()) or 1.0
        share = {k: float(wb[m].sum()) / total for k, m in
                 (("ibm", tb), ("TP", tb & cb), ("FP", ~tb & cb), ("FN", tb & ~cb))}
        mean = {k: float(np.average(sb[m], weights=wb[m])) if wb[m].sum() > 0 else float("nan")
                for k, m in (("on", tb), ("off", ~tb))}
        rows.append({"band": f"{lo:g}-{hi:g} Hz" if hi <= sr / 2 else f"{lo:g} Hz+",
                     "energy": total / float(w.sum()), **share, **mean})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="bass")
    ap.add_argument("--musdb-root", action="append", required=True)
    ap.add_argument("--tracks", action="append", required=True, help="comma-separated names, one list per root")
    ap.add_argument("--checkpoint-dir", action="append", default=[])
    ap.add_argument("--targets-dir", action="append", default=[])
    ap.add_argument("--bands", default="0,60,120,250,500", help="band edges in Hz (the last band runs to Nyquist)")
    ap.add_argument("--seconds", type=float, default=600.0)
    args = ap.parse_args(argv)
    if len(args.musdb_root) != len(args.tracks):
        raise SystemExit("Give one --tracks list after each --musdb-root.")
    edges = [float(e) for e in args.bands.split(",")]
    spec = find_targets([args.target], task="mask", targets_dir=args.targets_dir or None)[0]
    sep = Separator(loaded=[load_target(spec, args.checkpoint_dir)], residual=False, mask="soft")
    for root, names in zip(args.musdb_root, args.tracks, strict=True):
        wanted = [n for n in names.split(",") if n]
        found = {t.name: t for subset in ("train", "test") for t in find_tracks(root, is_wav=True, subset=subset)}
        for name in wanted:
            if name not in found:
                raise SystemExit(f"{name!r} not found under {root}")
            track = found[name]
            pair = target_excerpt(track, spec.stems, args.seconds)
            if pair is None:
                print(f"{name}: no {args.target} here, skipped")
                continue
            mix, ref = pair
            est = sep.separate(mix, track.sr)[spec.name]
            share = float(np.sum(ref.astype(np.float64) ** 2) / max(np.sum(mix.astype(np.float64) ** 2), 1e-12))
            print(f"\n{name}: {args.target} holds {share:.2f} of the mix's energy")
            print("| band | energy | ibm | TP | FP | FN | score on | score off |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for r in band_table(mix, ref, est, track.sr, edges):
                print(f"| {r['band']} | {r['energy']:.2f} | {r['ibm']:.2f} | {r['TP']:.2f} | {r['FP']:.2f} | "
                      f"{r['FN']:.2f} | {r['on']:.2f} | {r['off']:.2f} |")


if __name__ == "__main__":
    main()
