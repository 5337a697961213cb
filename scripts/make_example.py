"""Render the bundled example clip (examples/example.flac) with the corpus renderer.

    python scripts/make_example.py

Only MIT/BSD-licensed sources: the FluidR3 GM soundfont (drums included, no Hydrogen kits), festival's singing
voices, no real recordings. Deterministic: the same command writes the same audio.
"""

from pathlib import Path

import numpy as np
import soundfile as sf

from stemsplit.data.synth import SynthConfig, render_track

SEED, SECONDS = 7, 12.0


def render_example() -> tuple[dict[str, np.ndarray], int]:
    """The example's four stems (scaled as in the file, so they add up to its mix) and their rate."""
    cfg = SynthConfig(seconds=SECONDS, real_data_root=None, hydrogen_kit_probability=0.0,
                      soundfonts=("/usr/share/sounds/sf2/FluidR3_GM.sf2",))
    stems = render_track(SEED, cfg)
    gain = 0.89 / np.abs(sum(stems.values())).max()  # -1 dBFS peak
    return {k: v * gain for k, v in stems.items()}, cfg.sample_rate


def main() -> None:
    stems, sr = render_example()
    mix = sum(stems.values())
    out = Path(__file__).resolve().parent.parent / "examples" / "example.flac"
    sf.write(out, mix.T, sr, subtype="PCM_16")
    print(f"wrote {out} ({mix.shape[1] / sr:.1f} s)")


if __name__ == "__main__":
    main()
