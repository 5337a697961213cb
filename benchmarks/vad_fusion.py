"""Vocal activity from the vocals model, alone and fused with the detector. The activity label of a frame is
"the vocals' energy is within 15 dB of the mix's"; the vocals model's soft estimate gives that ratio directly.
Per held-out song (whole): the detector's frame accuracy, the accuracy of "estimated vocals within T dB of the
mix" for several T, and a logistic fusion of both (the detector's logit, the estimated ratio, and both smoothed
over 5 and 21 frames) fitted on one group of songs and scored on the other (cross-fitted, so the fusion never
scores the songs it was fitted on).

    python benchmarks/vad_fusion.py --group REAL_STEMS "MusicDelta - Beatles,MusicDelta - Grunge" \\
        --group CORPUS/eir 7.Francium [--extra SNIPPETS test]

``--extra ROOT SUBSET`` scores every song of that folder with each group's fusion as well (e.g. the jazz trio,
which has no voice).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit import spectral  # noqa: E402
from stemsplit.data.dataset import activity_ratio_db  # noqa: E402
from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.evaluate import track_labels  # noqa: E402
from stemsplit.separate import Separator  # noqa: E402
from stemsplit.vad import ActivityDetector  # noqa: E402

RATIOS_DB = (-21, -18, -15, -12, -9)


def song_features(track, det: ActivityDetector, sep: Separator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels, detector probabilities, estimated vocals-to-mix ratio in dB)`` per frame of one song."""
    labels, mix, sr = track_labels(track, ["vocals"], -15.0)
    _, probs = det(mix, sr)
    est = sep.separate(mix, sr)["vocals"]
    g = spectral.FRONTEND.grid(sr)
    mb = g.model_bins
    ratio, level = activity_ratio_db(spectral.signal_stft(est, g)[:, :mb], spectral.signal_stft(mix, g)[:, :mb], g)
    ratio = np.where(level > -60, ratio, -60.0)  # the labels' -60 dBFS floor
    n = min(len(labels), len(probs), len(ratio))
    return labels[:n] > 0.5, probs[:n], ratio[:n]


def design(probs: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-4, 1 - 1e-4)
    logit = np.log(p / (1 - p))
    r = np.clip(ratio, -40, 5)
    return np.stack([logit, r, uniform_filter1d(r, 5), uniform_filter1d(r, 21), uniform_filter1d(logit, 5)], 1)


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 3000, lr: float = 0.1):
    """Plain gradient-descent logistic regression on standardised features; returns a predict function."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.zeros(xs.shape[1])
    for _ in range(steps):
        w -= lr * xs.T @ (1 / (1 + np.exp(-xs @ w)) - y) / len(y)
    return lambda x2: 1 / (1 + np.exp(-np.c_[(x2 - mu) / sd, np.ones(len(x2))] @ w))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--group", nargs=2, action="append", required=True, metavar=("ROOT", "NAMES"),
                    help="a MUSDB-layout folder (train/) and comma-separated held-out songs; give two groups")
    ap.add_argument("--extra", nargs=2, metavar=("ROOT", "SUBSET"), help="more songs, scored only")
    args = ap.parse_args()
    det = ActivityDetector()
    sep = Separator(["vocals"], residual=False, mask="soft")
    groups = []
    for root, names in args.group:
        wanted = names.split(",")
        groups.append({t.name: song_features(t, det, sep) for t in find_tracks(root, is_wav=True, subset="train")
                       if t.name in wanted})
    extra = {}
    if args.extra:
        extra = {t.name: song_features(t, det, sep) for t in find_tracks(args.extra[0], is_wav=True,
                                                                          subset=args.extra[1])}
    print(f"{'song':40s} {'detector':>8s} " + " ".join(f"{f'ratio>{t}':>9s}" for t in RATIOS_DB) + "   fused")
    for i, group in enumerate(groups):
        others = [g for j, g in enumerate(groups) if j != i]
        x = np.concatenate([design(p, r) for g in others for _, p, r in g.values()])
        y = np.concatenate([lab for g in others for lab, _, _ in g.values()]).astype(np.float64)
        fused = fit_logistic(x, y)
        for name, (lab, p, r) in {**group, **extra}.items():
            cells = [np.mean((r > t) == lab) for t in RATIOS_DB]
            acc_f = np.mean((fused(design(p, r)) > 0.5) == lab)
            print(f"{name[:40]:40s} {np.mean((p >= det.threshold) == lab):8.3f} "
                  + " ".join(f"{c:9.3f}" for c in cells) + f"   {acc_f:.3f} (fitted on the other group)")


if __name__ == "__main__":
    main()
