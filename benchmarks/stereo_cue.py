"""Would stereo input help the vocals model? A cheap test before building it: stereo cues beside the model's score.

    python benchmarks/stereo_cue.py --fit-root ROOT [--fit-root ROOT2 ...] --musdb-root ROOT --tracks "NAME,NAME" \\
        [--musdb-root ROOT2 --tracks NAME ...] [--fit-seconds 60] [--target vocals]

The shipped model sees one channel: the magnitude averaged over left and right. Per bin, the stereo image adds
two cues it cannot see: the side/mid ratio ``log(|L-R| / |L+R|)`` (near-centre sources such as a lead voice have
little side) and the left/right level difference ``|log|L| - log|R||``. A logistic regression on the model's
logit and these cues is fitted, weighted by the mix magnitude, to the ideal binary mask (target dominates the
bin) on the training songs of the ``--fit-root`` folders (their first ``--fit-seconds``; tracks named in
``--tracks`` are left out), then judged on the held-out tracks: quick SDR of the binary mask ``p > 0.5``.

Three fits, same procedure: the model's logit alone (a recalibrated threshold: the baseline), the stereo cues
alone, and both with their product. If the cues carry information the model lacks, the third beats the first on
held-out songs. A per-bin fit cannot use the cues in context as a convolution could, so a loss here is a reason
not to build stereo input first, not a proof that it cannot help.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit import spectral  # noqa: E402
from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.evaluate import quick_sdr, target_excerpt  # noqa: E402
from stemsplit.separate import Separator  # noqa: E402

FITS = {"model alone": [0, 4], "stereo cues alone": [1, 3, 4], "model + stereo cues": [0, 1, 2, 3, 4]}


def song_features(sep: Separator, mix: np.ndarray, ref: np.ndarray, sr: int) -> dict:
    """Per-bin design matrix, label and weight on the model band of one song (mix and target stereo)."""
    if mix.shape[0] == 1:
        mix, ref = np.repeat(mix, 2, 0), np.repeat(ref, 2, 0)
    g = spectral.FRONTEND.grid(sr)
    spec = spectral.signal_stft(mix, g)
    tgt = spectral.signal_stft(ref, g)[:, :g.model_bins]
    p = np.clip(sep.signal_scores(spectral.features(spec, g))[0, :g.model_bins], 1e-4, 1 - 1e-4)
    left, right = spec[0, :g.model_bins], spec[1, :g.model_bins]
    side_mid = np.log((np.abs(left - right) + 1e-6) / (np.abs(left + right) + 1e-6))
    level = np.minimum(np.abs(np.log(np.abs(left) + 1e-6) - np.log(np.abs(right) + 1e-6)), 5.0)
    logit = np.log(p / (1 - p))
    rest = spec[:, :g.model_bins] - tgt
    return {"X": np.stack([logit, side_mid, logit * side_mid, level, np.ones_like(logit)], -1).reshape(-1, 5),
            "y": (np.abs(tgt).mean(0) > np.abs(rest).mean(0)).ravel().astype(np.float64),
            "w": np.abs(spec[:, :g.model_bins]).mean(0).ravel().astype(np.float64),
            "spec": spec, "grid": g, "ref": ref, "n": mix.shape[-1], "shape": logit.shape}


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, iters: int = 30) -> np.ndarray:
    """Weighted logistic regression by Newton's method."""
    b = np.zeros(X.shape[1])
    w = w / w.mean()
    for _ in range(iters):
        q = 1.0 / (1.0 + np.exp(-(X @ b)))
        hess = (X * (w * q * (1 - q))[:, None]).T @ X + 1e-6 * np.eye(X.shape[1])
        b -= np.linalg.solve(hess, X.T @ (w * (q - y)))
    return b


def binary_sdr(song: dict, mask: np.ndarray) -> float:
    g, spec = song["grid"], song["spec"]
    full = np.zeros(spec.shape[1:], np.float32)
    full[:mask.shape[0]] = mask
    return quick_sdr(song["ref"], spectral.istft(spec * full[None], g, song["n"]))


def fit_and_held(args, stems, make) -> tuple[list, list]:
    """The songs a probe is fitted on and judged on: ``make(mix, target, sr, held)`` of every training track of
    the ``--fit-root`` folders not named in ``--tracks`` (their first ``--fit-seconds``), and ``(name, make(...))``
    of each track named in ``--tracks`` under the ``--musdb-root`` before it (whole); silent targets are skipped."""
    if len(args.musdb_root) != len(args.tracks):
        raise SystemExit("Give one --tracks list after each --musdb-root.")
    held_names = {n for names in args.tracks for n in names.split(",") if n}
    fit = []
    for root in args.fit_root:
        for track in find_tracks(root, is_wav=True, subset="train"):
            pair = None if track.name in held_names else target_excerpt(track, stems, args.fit_seconds)
            if pair is not None:
                fit.append(make(*pair, track.sr, False))
    held = []
    for root, names in zip(args.musdb_root, args.tracks, strict=True):
        found = {t.name: t for subset in ("train", "test") for t in find_tracks(root, is_wav=True, subset=subset)}
        for name in (n for n in names.split(",") if n):
            if name not in found:
                raise SystemExit(f"{name!r} not found under {root}")
            pair = target_excerpt(found[name], stems, 1e9)
            if pair is not None:
                held.append((name, make(*pair, found[name].sr, True)))
    return fit, held


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="vocals")
    ap.add_argument("--fit-root", action="append", required=True, help="MUSDB-layout folder of training songs")
    ap.add_argument("--fit-seconds", type=float, default=60.0)
    ap.add_argument("--musdb-root", action="append", required=True)
    ap.add_argument("--tracks", action="append", required=True, help="comma-separated names, one list per root")
    args = ap.parse_args(argv)
    sep = Separator([args.target], residual=False)
    fit, held = fit_and_held(args, sep.maker.specs[0].stems, lambda mix, ref, sr, _: song_features(sep, mix, ref, sr))
    print(f"fitted on {len(fit)} songs; held out: {', '.join(n for n, _ in held)}")
    X = np.concatenate([s["X"] for s in fit])
    y = np.concatenate([s["y"] for s in fit])
    w = np.concatenate([s["w"] for s in fit])
    th = sep.maker.specs[0].threshold
    rows = {f"shipped threshold {th:.2f}": [binary_sdr(s, (1 / (1 + np.exp(-s["X"][:, 0])) > th)
                                                      .reshape(s["shape"]).astype(np.float32)) for _, s in held]}
    for label, cols in FITS.items():
        b = fit_logistic(X[:, cols], y, w)
        rows[label] = [binary_sdr(s, (s["X"][:, cols] @ b > 0).reshape(s["shape"]).astype(np.float32))
                       for _, s in held]
        print(f"{label}: coefficients {np.round(b, 3).tolist()}")
    rows["ideal binary mask"] = [binary_sdr(s, s["y"].reshape(s["shape"]).astype(np.float32)) for _, s in held]
    print("\n| binary mask | " + " | ".join(n for n, _ in held) + " |")
    print("| --- |" + " --- |" * len(held))
    for label, vals in rows.items():
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")


if __name__ == "__main__":
    main()
