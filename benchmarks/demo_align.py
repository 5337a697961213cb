"""Show the pair builder on real audio: shift and rescale a real stem, then align it back with its mix.

    python benchmarks/demo_align.py [../shared/data/musdb-snippets]

For each track of the MUSDB-layout folder and each non-silent stem, a "released" a cappella is made from the
stem: advanced by a known fractional offset (so it starts before or after the mix), rescaled (once
polarity-inverted) and resampled to 48 kHz; it is aligned back with the untouched mix by
`stemsplit.align.build_track`. Prints a Markdown table: recovered offset and gain error,
confidence, and the cancellation of the stem in the mix (energy of the true stem over the energy of what the
aligned stem leaves of it).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from stemsplit import align, audio

CASES = [(0.3712, -4.0, 1), (-0.1234, 2.5, -1)]  # (offset seconds, gain dB, polarity)


def main(root: Path) -> None:
    print("| track | stem | true offset (samples) | error (samples) | true gain (dB) | error (dB) | PSR | "
          "verdict | cancellation (dB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        mix, sr = audio.load(folder / "mixture.wav")
        for stem_file in sorted(folder.glob("*.wav")):
            if stem_file.stem == "mixture":
                continue
            stem, _ = audio.load(stem_file)
            if np.sqrt(np.mean(stem ** 2)) < 1e-3:
                continue
            for off_s, gain_db, pol in CASES:
                offset = off_s * sr + 0.37  # fractional too
                g = pol * 10 ** (gain_db / 20)
                # the release: stem sample i sits at mix sample i + offset, at 1/g of the level in the mix
                release = align._shift(stem.astype(np.float64), -offset,
                                       stem.shape[1] + max(0, int(-offset) + 1)) / g
                placed = stem.astype(np.float64)  # where it really is in the mix
                with tempfile.TemporaryDirectory() as tmp:
                    tmp = Path(tmp)
                    sf.write(tmp / "mix.wav", mix.T, sr, subtype="FLOAT")
                    sf.write(tmp / "stem.wav", audio.resample(release.astype(np.float32), sr, 48000).T, 48000,
                             subtype="FLOAT")
                    al, out = align.build_track(tmp / "mix.wav", tmp / "stem.wav", tmp / "ds", "t", force=True)
                    got, _ = audio.load(out / "vocals.wav")
                start = int(np.clip(np.ceil(al.offset - 0.01), 0, None))
                true = placed[:, start:start + got.shape[1]]
                canc = 10 * np.log10(np.sum(true ** 2) / np.sum((got - true) ** 2))
                print(f"| {folder.name} | {stem_file.stem} | {offset:+.2f} | {al.offset - offset:+.3f} | "
                      f"{20 * np.log10(abs(g)):+.1f}{' (inverted)' if pol < 0 else ''} | "
                      f"{al.gain_db - 20 * np.log10(abs(g)):+.3f} | {al.psr:.0f} | "
                      f"{'accepted' if al.psr >= align.MIN_PSR else 'refused'} | {canc:.1f} |", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/musdb-snippets"))
