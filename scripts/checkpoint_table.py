"""Print a Markdown table of the shipped checkpoints from their own metadata (for docs/checkpoints.md).

    python scripts/checkpoint_table.py [checkpoints/]
"""

from __future__ import annotations

import sys
from pathlib import Path

from stemsplit import checkpoint


def main(folder: Path) -> None:
    print("| file | target | model | size | steps | wall time | validation (best) | threshold | sha256 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in sorted(folder.glob("*.npz")):
        _, meta = checkpoint.load(path)
        t = meta.get("training", {})
        val = ", ".join(f"{k} {t[k]:.3f}" for k in ("val_sdr", "val_accuracy", "val_loss") if k in t)
        m = meta["target"]["model"]
        thr = f"{t['threshold']:.2f} (calibrated)" if "threshold" in t else "0.50"
        dec = f", decoder {m['decoder']}" if m.get("decoder") else ""
        if m.get("context_layers"):
            dec += f", {m['context_layers']} context layers"
        print(f"| {path.name} | {meta['target']['name']} | {m['conv_channels']} filters, Dense {m['dense_units']}"
              f"{', local head' if m.get('local_head') else ''}"
              f"{dec} | "
              f"{path.stat().st_size / 1024:.0f} KB | {t.get('step', '?')} of {t.get('steps_planned', '?')} | "
              f"{t.get('wall_time_s', 0) / 60:.0f} min | {val or '—'} | {thr} | {meta['sha256'][:12]} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "checkpoints"))
