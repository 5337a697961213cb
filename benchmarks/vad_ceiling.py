"""What limits the vocal activity detector's frame accuracy: how finely the labels change, and what a perfect
segmenter would score.

    python benchmarks/vad_ceiling.py --musdb-root ROOT --tracks "NAME,NAME" [--musdb-root ROOT2 --tracks NAME ...] \\
        [--subset train] [--target vocal-activity] [--targets-dir DIR] [--checkpoint-dir DIR]

A frame (~11.6 ms) is labelled voiced when the vocals are within ``activity_db`` (15 dB) of the mix, the rule the
detector is trained and scored with (``stemsplit vad``). Within a sung phrase that label flickers: it drops in
the short gaps between syllables and under loud drum hits. For each track this prints:

- the detector's frame accuracy at its threshold, and the share of its errors within 116 ms (10 frames) of a
  label change;
- the label changes per second and the share of label runs shorter than 116 ms;
- the accuracy of an *oracle segmenter*: the true labels passed through ``vocal_segments`` (hysteresis, gaps
  under 0.2 s bridged, segments under 0.25 s dropped: what ``stemsplit vad INPUT`` reports), i.e. a detector
  that knows where the voice is but speaks in phrases, as listeners do;
- the accuracy of the true labels median-filtered over 11 and 41 frames (0.13 and 0.48 s).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation, median_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.evaluate import track_labels  # noqa: E402
from stemsplit.vad import ActivityDetector, activity_scores, segments_to_frames, vocal_segments  # noqa: E402

NEAR = 10  # frames: "near a label change"


def analyse(labels: np.ndarray, probs: np.ndarray, threshold: float, hop_s: float) -> dict:
    """Scores of one track's frame labels (bool) and detector probabilities."""
    labels = labels.astype(bool)
    pred = probs >= threshold
    err = pred != labels
    changes = np.flatnonzero(np.diff(labels.astype(np.int8)) != 0)
    near = np.zeros(labels.size, bool)
    near[changes] = True
    near = binary_dilation(near, iterations=NEAR)  # within NEAR frames of a change
    runs = np.diff(np.concatenate([[0], changes + 1, [labels.size]]))
    times = np.arange(labels.size) * hop_s
    oracle = segments_to_frames(times, vocal_segments(times, labels.astype(np.float32)))
    out = {"frames": int(labels.size), "voiced": float(labels.mean()),
           "accuracy": activity_scores(pred, labels)["accuracy"],
           "errors_near_change": float(err[near].sum() / max(err.sum(), 1)),
           "frames_near_change": float(near.mean()),
           "label_changes_per_s": float(changes.size / (labels.size * hop_s)),
           "label_runs_under_116ms": float(np.mean(runs < NEAR)),
           "oracle_segments": activity_scores(oracle, labels)["accuracy"]}
    for w in (11, 41):
        smoothed = median_filter(labels.astype(np.float32), w) > 0.5
        out[f"oracle_median_{w}"] = activity_scores(smoothed, labels)["accuracy"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--musdb-root", action="append", required=True)
    ap.add_argument("--tracks", action="append", default=[], help="comma-separated names, one option per root")
    ap.add_argument("--subset", default="train")
    ap.add_argument("--target", default="vocal-activity")
    ap.add_argument("--targets-dir", action="append")
    ap.add_argument("--checkpoint-dir", action="append", default=[])
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    det = ActivityDetector(args.target, targets_dir=args.targets_dir, checkpoint_dirs=args.checkpoint_dir)
    spec = det.target.spec
    results = {}
    for i, root in enumerate(args.musdb_root):
        names = [n for n in args.tracks[i].split(",") if n] if i < len(args.tracks) else []
        for t in find_tracks(root, is_wav=True, subset=args.subset):
            if names and t.name not in names:
                continue
            labels, mix, sr = track_labels(t, spec.stems, spec.activity_db)
            times, probs = det(mix, sr)
            results[t.name] = r = analyse(labels, probs, det.threshold, float(times[1] - times[0]))
            print(f"{t.name}: accuracy {r['accuracy']:.3f}, {100 * r['errors_near_change']:.0f} % of errors within "
                  f"116 ms of a label change ({100 * r['frames_near_change']:.0f} % of frames); "
                  f"{r['label_changes_per_s']:.2f} label changes/s, {100 * r['label_runs_under_116ms']:.0f} % of "
                  f"label runs < 116 ms; oracle segmenter {r['oracle_segments']:.3f}, labels median-filtered "
                  f"over 11 / 41 frames {r['oracle_median_11']:.3f} / {r['oracle_median_41']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
