"""Lay out the real recordings of a shared-data folder as MUSDB-style training tracks (outside the repository).

    python scripts/prepare_real_corpus.py /work/shared/data /work/corpus/real

writes OUT/train/<clip>/{vocals,accompaniment,mixture}.wav for the MIR-1K karaoke pairs (real amateur singing
over its accompaniment, recorded apart), and OUT/train/<piece>/{vocals (silent),accompaniment,mixture}.wav for
the instrumental pieces (real accompaniment with no vocals: their ideal vocal mask is zero everywhere). Both have
only an "accompaniment" beside the vocals, so they train the vocals target and no other (some pieces hold drums
and bass, which must not be taught as "other"). The audio stays research-only
material: it is read by path at training time and never committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from stemsplit import audio


def main(src: Path, out: Path) -> None:
    pairs = sorted((src / "real-material" / "mir1k-pairs").glob("*_vocal.wav"))
    for vocal in pairs:
        clip = vocal.name[: -len("_vocal.wav")]
        music = vocal.with_name(f"{clip}_music.wav")
        v, sr = audio.load(vocal)
        m, sr2 = audio.load(music)
        n = min(v.shape[1], m.shape[1])
        folder = out / "train" / f"mir1k-{clip}"
        audio.write(folder / "vocals.wav", v[:, :n], sr)
        audio.write(folder / "accompaniment.wav", m[:, :n], sr)
        audio.write(folder / "mixture.wav", v[:, :n] + m[:, :n], sr)
    pieces = sorted((src / "real-material" / "instrumental").glob("*.ogg"))
    for piece in pieces:
        x, sr = audio.load(piece)
        folder = out / "train" / f"instrumental-{piece.stem[:40]}"
        audio.write(folder / "accompaniment.wav", x, sr)
        audio.write(folder / "vocals.wav", np.zeros_like(x), sr)
        audio.write(folder / "mixture.wav", x, sr)
    print(f"{len(pairs)} karaoke pairs and {len(pieces)} instrumental pieces written to {out}/train")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
