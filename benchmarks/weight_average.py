"""Averaged weights ("model soups"): checkpoints fine-tuned from one start, averaged parameter by parameter,
scored beside the shipped model on held-out songs (whole).

    python benchmarks/weight_average.py --target vocals \\
        --songs REAL_STEMS "MusicDelta - Beatles,MusicDelta - Grunge" --songs CORPUS/eir 7.Francium \\
        run1=RUN1/vocals/final.npz half=1:checkpoints/vocals.npz+1:RUN1/vocals/final.npz [--save DIR]

Each positional argument is ``NAME=PATH`` or ``NAME=W:PATH+W:PATH...`` (weights normalised to sum to 1); the
shipped checkpoint of the target is always scored first. Averaging only makes sense for models of the same
network that share their early training (fine-tunes of one checkpoint): the loss is close to convex between
them, and the average often generalises better than either (Wortsman et al., 2022).

- ``--target vocals`` (any mask target): whole-song SDR of each held-out song, BSSEval's way (``windowed``: the
  median of 1 s windows, equal to BSSEval v4 on mask estimates) and as one figure (``quick``), binary masks at
  0.30 / 0.35 / 0.40 / 0.50 and the soft mask; medians over the songs.
- ``--unseen ROOT`` (repeatable; mask targets): also the mean SDR over many short songs no model here trained on,
  the first ``--unseen-seconds`` (30) of ``--unseen-tracks`` (44) of them spread over the folders (the set
  ``stemsplit calibrate`` picks): two of the four later MedleyDB excerpts and 42 MUSDB18 training excerpts for vocals.
  Three held-out songs are too few to show some effects (docs/training.md, "The 44 unseen songs").
- ``--target vocal-activity``: frame accuracy and the accuracy inside the reported segments (as ``stemsplit
  vad`` scores them), per ``--songs`` folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit import checkpoint  # noqa: E402
from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.engine import LoadedTarget, load_target  # noqa: E402
from stemsplit.evaluate import calibration_tracks, evaluate_activity, threshold_sdrs  # noqa: E402
from stemsplit.targets import get_targets  # noqa: E402

THRESHOLDS = (0.3, 0.35, 0.4, 0.5)
UNSEEN_THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.5)


def average(parts: list[tuple[float, str]], out: Path) -> Path:
    """Write the weighted average of checkpoints ``[(weight, path), ...]`` to ``out`` (metadata of the first,
    with the recipe recorded under ``training.average``)."""
    w = np.array([p[0] for p in parts], np.float64)
    w = w / w.sum()
    loaded = [checkpoint.load(p) for _, p in parts]
    names = set(loaded[0][0])
    for (_, p), (arrays, _) in zip(parts, loaded, strict=True):
        if set(arrays) != names or any(arrays[k].shape != loaded[0][0][k].shape for k in names):
            raise SystemExit(f"{p} is not the same network as {parts[0][1]}")
    arrays = {k: sum(wi * a[k].astype(np.float64) for wi, (a, _) in zip(w, loaded, strict=True)).astype(loaded[0][0][k].dtype)
              for k in names}
    meta = {k: v for k, v in loaded[0][1].items() if k != "sha256"}
    meta["training"] = {**meta.get("training", {}), "average": [[float(wi), p] for wi, (_, p) in zip(w, parts, strict=True)]}
    checkpoint.save(out, arrays, meta)
    return out


def _scores(lt: LoadedTarget, tracks: list, seconds: float, thresholds) -> dict:
    """Per-track SDR of the target, ``{"quick" | "windowed": {threshold | "soft": [dB per track]}}``."""
    return threshold_sdrs(lt, tracks, seconds=seconds, candidates=thresholds, metrics=("quick", "windowed"),
                          soft=True)[0]


def _label(key) -> str:
    return key if key == "soft" else f"{key:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help="NAME=PATH or NAME=W:PATH+W:PATH...")
    ap.add_argument("--target", default="vocals")
    ap.add_argument("--songs", nargs=2, action="append", default=[], metavar=("ROOT", "NAMES"),
                    help="a MUSDB-layout folder and comma-separated held-out songs in it (repeatable)")
    ap.add_argument("--unseen", action="append", default=[], metavar="ROOT",
                    help="a MUSDB-layout folder of songs no model trained on (repeatable): mean SDR over excerpts")
    ap.add_argument("--unseen-tracks", type=int, default=44)
    ap.add_argument("--unseen-seconds", type=float, default=30.0)
    ap.add_argument("--subset-of", action="append", default=[], metavar="ROOT=SUBSET",
                    help="the subset the songs of ROOT are in (default train)")
    ap.add_argument("--save", help="keep the averaged checkpoints in this folder")
    args = ap.parse_args()
    if not args.songs and not args.unseen:
        ap.error("give --songs and/or --unseen")
    spec = get_targets([args.target])[0]
    subsets = dict(s.split("=", 1) for s in args.subset_of)
    keep = Path(args.save or tempfile.mkdtemp(prefix="soup-"))
    keep.mkdir(parents=True, exist_ok=True)
    models: dict[str, LoadedTarget] = {"shipped": load_target(spec)}
    for entry in args.models:
        name, recipe = entry.split("=", 1)
        parts = [p.split(":", 1) for p in recipe.split("+")]
        if len(parts) == 1 and len(parts[0]) == 1:  # NAME=PATH: the checkpoint as it is
            path = Path(recipe)
        else:  # NAME=W:PATH+W:PATH...
            path = average([(float(w), p) for w, p in parts], keep / f"{name}.npz")
        model, _, meta = checkpoint.load_model(path)
        models[name] = LoadedTarget(spec, model, Path(path), meta)
    if spec.task == "activity":
        from stemsplit.vad import ActivityDetector

        for name, lt in models.items():
            det = ActivityDetector(loaded=lt)
            cells = []
            for root, names in args.songs:
                r = evaluate_activity(root, subset=subsets.get(root, "train"), tracks=names.split(","), detector=det)
                cells.append(f"{Path(root).name} {r['all']['accuracy']:.3f} / {r['segments']['accuracy']:.3f}")
            print(f"{name:12s} frames / segments: " + " | ".join(cells), flush=True)
        return
    tracks = []
    for root, names in args.songs:
        wanted = names.split(",")
        subset = subsets.get(root, "train")
        found = [t for t in find_tracks(root, is_wav=True, subset=subset) if t.name in wanted]
        missing = sorted(set(wanted) - {t.name for t in found})
        if missing:
            sys.exit(f"--songs {root}: no track named {', '.join(missing)} in its {subset} subset "
                     f"(--subset-of {root}=test for the other)")
        tracks += found
    if tracks:
        print("songs: " + ", ".join(t.name for t in tracks))
        for name, lt in models.items():
            sdr = _scores(lt, tracks, 1e9, THRESHOLDS)
            for metric in ("windowed", "quick"):
                cells = [f"{_label(k)} {' '.join(f'{x:5.2f}' for x in v)} (median {np.median(v):.2f})"
                         for k, v in sdr[metric].items()]
                print(f"{name:10s} {metric:8s} " + " | ".join(cells), flush=True)
    if args.unseen:
        unseen = calibration_tracks(args.unseen, is_wav=True, subset="train", max_tracks=args.unseen_tracks)
        print(f"unseen: {len(unseen)} songs, first {args.unseen_seconds:g} s, mean SDR")
        for name, lt in models.items():
            sdr = _scores(lt, unseen, args.unseen_seconds, UNSEEN_THRESHOLDS)
            for metric in ("windowed", "quick"):
                means = {k: float(np.mean(v)) for k, v in sdr[metric].items()}
                best = max((k for k in means if k != "soft"), key=means.get)
                cells = [f"{_label(k)} {v:5.2f}" for k, v in means.items()]
                print(f"{name:10s} {metric:8s} unseen " + " | ".join(cells)
                      + f"  (best binary {means[best]:.2f} at {best:.2f}, soft {means['soft']:.2f})", flush=True)

if __name__ == "__main__":
    main()
