"""A/B of checkpoints in the four-stem separation: quick SDR per stem with the shipped set and with some of its
checkpoints swapped, binary and soft masks, on held-out real songs (whole).

    python benchmarks/compare_checkpoints.py --songs REAL_STEMS "MusicDelta - Beatles,MusicDelta - Grunge" \
        --songs CORPUS/eir 7.Francium new=drums:runs/drums/final.npz [NAME=TARGET:PATH,TARGET:PATH ...]

`--rules lead,priority,score` gives a binary row per rule that settles bins several targets claim (the default
``lead``; ``score``, the earlier rule: highest score wins; ``priority``: highest priority wins).

Quick SDR is the plain whole-signal SDR (``stemsplit.evaluate.quick_sdr``), not BSSEval: a fast A/B, with the
BSSEval figures of the chosen set in docs/results.md. Stems silent in a song are left out of its mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stemsplit import checkpoint
from stemsplit.data.tracks import find_tracks
from stemsplit.evaluate import quick_sdr
from stemsplit.separate import LoadedTarget, Separator, load_target
from stemsplit.targets import get_targets

STEMS = ["vocals", "drums", "bass", "other"]


def loaded_set(swaps: dict[str, str]) -> list[LoadedTarget]:
    """The four shipped targets, with the checkpoints in ``swaps`` (target -> path) loaded instead."""
    out = []
    for spec in get_targets(STEMS):
        if spec.name in swaps:
            model, _, meta = checkpoint.load_model(swaps[spec.name])
            # the target file's spec (priority; threshold left to the checkpoint's calibration) with this model
            out.append(LoadedTarget(spec, model, Path(swaps[spec.name]), meta))
        else:
            out.append(load_target(spec))
    return out


def read_tracks(root: str, subset: str, names: list[str] | None = None) -> list[tuple[dict[str, np.ndarray], int]]:
    """Every stem of the chosen tracks of a MUSDB-layout folder (in name order), with their rate."""
    found = sorted((t for t in find_tracks(root, is_wav=True, subset=subset) if not names or t.name in names),
                   key=lambda t: t.name)
    return [({s: t.read(s, 0, t.length) for s in STEMS}, t.sr) for t in found]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="*", help="NAME=TARGET:PATH[,TARGET:PATH...]")
    ap.add_argument("--songs", nargs=2, action="append", required=True, metavar=("ROOT", "NAMES"),
                    help="a MUSDB-layout folder and the comma-separated held-out songs in it (repeatable)")
    ap.add_argument("--subset", default="train", help="subset of the folders the songs are in (default train)")
    ap.add_argument("--rules", default="lead",
                    help="comma-separated rules for contested bins in binary masks (lead, priority, score)")
    args = ap.parse_args()
    sets = {"shipped": {}}
    for s in args.sets:
        name, pairs = s.split("=", 1)
        sets[name] = dict(p.split(":", 1) for p in pairs.split(","))
    songs = {Path(root).name: read_tracks(root, args.subset, names.split(",")) for root, names in args.songs}
    for name, swaps in sets.items():
        targets = loaded_set(swaps)
        print(f"{name}: thresholds {[round(t.spec.threshold, 2) for t in targets]}", flush=True)
        variants = [("binary", r) for r in args.rules.split(",")] + [("soft", "lead")]
        for mode, rule in variants:
            sep = Separator(loaded=targets, mask=mode, rule=rule)
            line = []
            for part, tracks in songs.items():
                rows = []
                for src, sr in tracks:
                    out = sep.separate(sum(src.values()), sr)
                    rows.append([quick_sdr(src[s], out[s]) if np.sqrt(np.mean(src[s] ** 2)) > 1e-3 else np.nan
                                 for s in STEMS])
                mean = np.nanmean(np.array(rows), axis=0)
                line.append(f"{part} {' '.join(f'{v:5.2f}' for v in mean)} (mean {np.nanmean(mean):.2f})")
            label = f"{mode} ({rule})" if mode == "binary" and "," in args.rules else mode
            print(f"  {label:17s} " + " | ".join(line), flush=True)


if __name__ == "__main__":
    main()
