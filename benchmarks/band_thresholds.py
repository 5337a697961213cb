"""Would the vocals model gain from one binary threshold per frequency band instead of one for all bins?

    python benchmarks/band_thresholds.py --calibrate ROOT [--calibrate ROOT2 ...] [--max-tracks 44] \\
        --held-out ROOT NAMES [--held-out ROOT NAMES ...]

Runs the shipped vocals model once over the first 30 s of a fixed, even spread of ``--max-tracks`` tracks of the
``--calibrate`` roots (the selection ``stemsplit calibrate`` makes), then chooses a threshold per band (edges
250 Hz, 500 Hz, 1, 2, 4 and 8 kHz; bins above the model's band take the top band's) by coordinate ascent over
0.10-0.70, starting from the shipped threshold in every band, to maximise the mean windowed SDR of the vocals
(BSSEval's 1 s windows and median, ``stemsplit.evaluate.window_sdrs``). Then scores the held-out tracks (whole;
``--held-out ROOT NAMES``: a MUSDB-layout folder and comma-separated names, subset ``train``, or ``test`` for
folders that only have that) with the shipped threshold and with the band thresholds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemsplit import masks, spectral  # noqa: E402
from stemsplit.data.tracks import find_tracks  # noqa: E402
from stemsplit.evaluate import (  # noqa: E402
    CALIBRATION_THRESHOLDS,
    calibration_tracks,
    coordinate_ascent,
    target_excerpt,
    windowed_sdr,
)
from stemsplit.separate import Separator  # noqa: E402

EDGES = [0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, np.inf]


def prepare(sep: Separator, tracks, seconds: float) -> list:
    """Per track (vocals not silent): its name, grid, spectrum, the vocals scores on the input grid, each bin's
    band, the mix and the vocals (float64)."""
    out = []
    for t in tracks:
        pair = target_excerpt(t, ["vocals"], seconds)
        if pair is None:
            continue
        mix, ref = pair
        g = spectral.FRONTEND.grid(t.sr)
        spec = spectral.signal_stft(mix, g)
        scores = masks.extend_band(sep.signal_scores(spectral.features(spec, g)), g.n_bins)[0]
        band = np.searchsorted(EDGES, np.arange(g.n_bins) * t.sr / g.n_fft, side="right") - 1
        out.append((t.name, g, spec, np.ascontiguousarray(scores), band, np.atleast_2d(mix).astype(np.float64),
                    np.atleast_2d(ref).astype(np.float64), t.sr))
    return out


def sdrs(data: list, thresholds) -> np.ndarray:
    """Windowed vocals SDR per track with a threshold per band."""
    th = np.asarray(thresholds, np.float32)
    res = []
    for _, g, spec, scores, band, mix, ref, sr in data:
        m = (scores >= th[band][:, None]).astype(np.float32)
        est = np.atleast_2d(spectral.istft(m[None] * spec, g, mix.shape[-1])).astype(np.float64)
        res.append(windowed_sdr(ref, est, mix, sr))
    return np.asarray(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibrate", action="append", required=True, metavar="ROOT")
    ap.add_argument("--max-tracks", type=int, default=44)
    ap.add_argument("--held-out", nargs=2, action="append", required=True, metavar=("ROOT", "NAMES"))
    args = ap.parse_args()

    sep = Separator(("vocals",), residual=False)
    shipped = sep.specs[0].threshold
    data = prepare(sep, calibration_tracks(args.calibrate, max_tracks=args.max_tracks), 30.0)
    nb = len(EDGES) - 1
    cache: dict[tuple, float] = {}

    def objective(th: tuple[float, ...]) -> float:
        if th not in cache:
            cache[th] = float(np.nanmean(sdrs(data, th)))
        return cache[th]

    start = (shipped,) * nb
    print(f"{len(data)} calibration tracks; one threshold {shipped:.2f}: mean {objective(start):.3f} dB", flush=True)
    best = coordinate_ascent(objective, start, range(nb), CALIBRATION_THRESHOLDS)
    print(f"band thresholds {list(best)}: mean {objective(best):.3f} dB", flush=True)
    held = []
    for root, names in args.held_out:
        wanted = names.split(",")
        for subset in ("train", "test"):
            held += [t for t in find_tracks(root, is_wav=True, subset=subset) if t.name in wanted]
    hd = prepare(sep, held, 1e6)  # whole tracks
    one, per_band = sdrs(hd, [shipped] * nb), sdrs(hd, best)
    for (name, *_), a, b in zip(hd, one, per_band, strict=True):
        print(f"{name:28s} {a:6.2f} -> {b:6.2f} dB")
    print(f"{'median':28s} {np.median(one):6.2f} -> {np.median(per_band):6.2f} dB")


if __name__ == "__main__":
    main()
