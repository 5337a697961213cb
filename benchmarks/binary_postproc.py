"""Can cleaning up a binary vocals mask raise its BSSEval score? The vocals model's scores on held-out songs
(whole), turned into binary masks at several thresholds and with common clean-ups, each scored as BSSEval v4
scores it (``windowed``: the median of 1 s windows, equal to BSSEval on mask estimates) and as one figure per
song (quick SDR); the soft mask for reference.

    python benchmarks/binary_postproc.py --songs REAL_STEMS "MusicDelta - Beatles,MusicDelta - Grunge" \\
        --songs CORPUS/eir 7.Francium [--songs SNIPPETS "iKala - 10161 chorus" --subset-of SNIPPETS=test] \\
        [--checkpoint PATH] [--threshold 0.4]

Clean-ups of the mask at ``--threshold`` (masks are bins x frames):

- ``open-f3`` / ``open-t3``: binary opening with a 3-bin (frequency) or 3-frame (time) line: drops "on" runs
  shorter than three bins or frames;
- ``median3x3``: a 3 x 3 median filter of the mask;
- ``cc8``: drops connected "on" regions of fewer than 8 bins;
- ``smooth-t3`` / ``smooth-t5`` / ``smooth3x3``: the scores averaged over 3 or 5 frames, or 3 x 3, before the
  threshold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit import checkpoint, masks, spectral  # noqa: E402
from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.evaluate import quick_sdr, target_excerpt, windowed_sdr  # noqa: E402
from stemsplit.separate import LoadedTarget, Separator, load_target  # noqa: E402
from stemsplit.targets import get_targets  # noqa: E402


def variants(scores: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Binary masks (and the soft one) from one song's vocals scores, ``(bins, frames)`` in [0, 1]."""
    out = {f"binary {t:.2f}": scores >= t for t in sorted({0.3, 0.35, 0.4, 0.5, threshold})}
    b = scores >= threshold
    out["open-f3"] = ndi.binary_opening(b, structure=np.ones((3, 1)))
    out["open-t3"] = ndi.binary_opening(b, structure=np.ones((1, 3)))
    out["median3x3"] = ndi.median_filter(b.astype(np.uint8), size=(3, 3)) > 0
    lab, n = ndi.label(b)
    sizes = ndi.sum(b, lab, index=np.arange(1, n + 1))
    out["cc8"] = np.concatenate([[False], sizes >= 8])[lab]
    out["smooth-t3"] = ndi.uniform_filter1d(scores, 3, axis=-1) >= threshold
    out["smooth-t5"] = ndi.uniform_filter1d(scores, 5, axis=-1) >= threshold
    out["smooth3x3"] = ndi.uniform_filter(scores, (3, 3)) >= threshold
    out["soft"] = scores
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--songs", nargs=2, action="append", required=True, metavar=("ROOT", "NAMES"),
                    help="a MUSDB-layout folder and comma-separated songs in it (repeatable; train/ unless "
                         "--subset-of says otherwise)")
    ap.add_argument("--subset-of", action="append", default=[], metavar="ROOT=SUBSET",
                    help="the subset the songs of ROOT are in (default train)")
    ap.add_argument("--checkpoint", help="a vocals checkpoint (default: the shipped one)")
    ap.add_argument("--threshold", type=float, default=None,
                    help="the threshold the clean-ups start from (default: the model's own)")
    args = ap.parse_args()
    subsets = dict(s.split("=", 1) for s in args.subset_of)
    spec = get_targets(["vocals"])[0]
    if args.checkpoint:
        model, _, meta = checkpoint.load_model(args.checkpoint)
        loaded = LoadedTarget(spec, model, Path(args.checkpoint), meta)
    else:
        loaded = load_target(spec)
    threshold = args.threshold if args.threshold is not None else loaded.spec.threshold
    sep = Separator(loaded=[loaded], residual=False)
    tracks = []
    for root, names in args.songs:
        wanted = names.split(",")
        tracks += [t for t in find_tracks(root, is_wav=True, subset=subsets.get(root, "train")) if t.name in wanted]
    res: dict[str, list[tuple[float, float]]] = {}
    for t in tracks:
        pair = target_excerpt(t, spec.stems, t.length / t.sr)
        if pair is None:
            continue
        mix, ref = pair
        g = spectral.FRONTEND.grid(t.sr)
        spec_x = spectral.signal_stft(mix, g)
        soft, _ = masks.combine_on_grid(sep.signal_scores(spectral.features(spec_x, g)), g.n_bins,
                                        thresholds=[0.5], priorities=[0], mode="soft")
        for name, m in variants(np.asarray(soft[0]), threshold).items():
            est = spectral.istft(m[None] * spec_x, g, mix.shape[-1])
            res.setdefault(name, []).append((windowed_sdr(ref, est, mix, t.sr), quick_sdr(ref, est)))
        print(f"{t.name}: " + ", ".join(f"{k} {v[-1][0]:.2f}" for k, v in res.items()), flush=True)
    print(f"\n{len(res['soft'])} songs, whole; clean-ups start from threshold {threshold:.2f}")
    print(f"{'mask':12s} {'windowed median':>16s} {'windowed mean':>14s} {'quick mean':>11s}")
    for k, v in res.items():
        a = np.array(v)
        print(f"{k:12s} {np.nanmedian(a[:, 0]):16.2f} {np.nanmean(a[:, 0]):14.2f} {a[:, 1].mean():11.2f}")


if __name__ == "__main__":
    main()
