"""Listening material for the shipped models: separate real songs and draw spectrograms and masks.

    python benchmarks/song_report.py OUT [--start S] [SONG ...]   # default songs: ../shared/data/songs/*, ...

For each song: the stems (`OUT/<song>/<stem>.wav`, for listening), and `OUT/<song>.png` with the mix's log
spectrogram, each target's mask scores (model band) and the binary masks under the dominance rule, for 20 s from
``--start`` (default 0). Uses every target that has a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stemsplit import audio, list_targets, spectral
from stemsplit.separate import Separator


def draw(mix: np.ndarray, sr: int, sep: Separator, out: Path, seconds: float = 20.0, start: float = 0.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = mix[:, int(start * sr): int((start + seconds) * sr)]
    g = spectral.FRONTEND.grid(sr)
    spec = spectral.signal_stft(x, g)
    feats = spectral.features(spec, g)
    scores = sep.signal_scores(feats)
    m, _ = sep.stem_masks(scores, g.n_bins)
    k = len(sep.specs)
    fig, axes = plt.subplots(1 + 2 * k, 1, figsize=(12, 2.2 * (1 + 2 * k)), sharex=True)
    ext = (start, start + x.shape[1] / sr, 0, 11.025)
    axes[0].imshow(feats.T, origin="lower", aspect="auto", cmap="magma", extent=ext)
    axes[0].set_title("mix: log magnitude (kHz)")
    for i, s in enumerate(sep.specs):
        axes[1 + 2 * i].imshow(scores[i], origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1, extent=ext)
        axes[1 + 2 * i].set_title(f"{s.name}: model scores")
        axes[2 + 2 * i].imshow(m[i, :513], origin="lower", aspect="auto", cmap="gray", vmin=0, vmax=1, extent=ext)
        axes[2 + 2 * i].set_title(f"{s.name}: binary mask (dominance rule)")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(out: Path, songs: list[Path], start: float = 0.0) -> None:
    names = [r["name"] for r in list_targets() if r["checkpoint"] and r["task"] == "mask"]
    if not names:
        raise SystemExit("no trained targets yet")
    sep = Separator(names)
    out.mkdir(parents=True, exist_ok=True)
    for song in songs:
        mix, sr = audio.load(song)
        stems = sep.separate(mix, sr)
        for name, data in stems.items():
            audio.write(out / song.stem / f"{name}.wav", data, sr)
        shares = {k: float(np.sum(v.astype(np.float64) ** 2)) for k, v in stems.items()}
        total = sum(shares.values()) or 1.0
        print(song.stem, "energy shares:", ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in shares.items()))
        draw(mix, sr, sep, out / f"{song.stem}.png", start=start)
        print(out / f"{song.stem}.png")


if __name__ == "__main__":
    import argparse

    root = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for the stems and figures")
    ap.add_argument("songs", nargs="*", type=Path, help="audio files (default: the shared example songs)")
    ap.add_argument("--start", type=float, default=0.0, help="seconds into each song where the figure starts")
    a = ap.parse_args()
    songs = a.songs or sorted((root / "songs").glob("*.mp3")) + sorted(
        (root / "real-material" / "songs").glob("*.ogg"))
    main(a.out, songs, a.start)
