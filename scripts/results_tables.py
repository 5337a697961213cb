"""Markdown tables for docs/results.md from the folders `scripts/report_shipped.sh` writes.

    python scripts/results_tables.py [RESULTS]          # default /work/results/shipped
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def sdr_table(path: Path, stems: tuple[str, ...], methods: tuple[str, ...]) -> str:
    """SDR per method and stem, plus the model's share of the ideal binary mask's score and of its gain."""
    d = {(r["method"], r["stem"]): float(r["SDR"]) for r in csv.DictReader(open(path))}
    out = ["| method | " + " | ".join(stems) + " |", "| --- |" + " --- |" * len(stems)]
    for m in methods:
        out.append(f"| {m} | " + " | ".join(f"{d[(m, s)]:.2f}" if (m, s) in d else "—" for s in stems) + " |")
    out.append("| model ÷ ibm (SDR) | " + " | ".join(f"{100 * d[('model', s)] / d[('ibm', s)]:.0f} %"
                                                      for s in stems) + " |")
    out.append("| model gain ÷ ibm gain (over mix) | " + " | ".join(
        f"{100 * (d[('model', s)] - d[('mix', s)]) / (d[('ibm', s)] - d[('mix', s)]):.0f} %" for s in stems) + " |")
    return "\n".join(out)


def main(root: Path) -> None:
    four = ("vocals", "drums", "bass", "other")
    for name in ("synth", "real", "snippets"):
        if (root / name / "summary.csv").exists():
            print(f"### four stems: {name}\n\n{sdr_table(root / name / 'summary.csv', four, ('model', 'model-soft', 'ibm', 'mix'))}\n")
    for name in ("synth", "real", "snippets"):
        f = root / f"vocals-{name}" / "summary.csv"
        if f.exists():
            print(f"### vocals only: {name}\n\n"
                  f"{sdr_table(f, ('vocals', 'accompaniment'), ('model', 'model-gated', 'model-soft', 'ibm', 'mix'))}\n")
    print("| set | decisions | frames | accuracy | precision | recall | F1 |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for name in ("synth", "real", "snippets"):
        f = root / f"vad-{name}.json"
        if f.exists():
            res = json.loads(f.read_text())
            for kind, key in (("frame threshold", "all"), ("segments", "segments")):
                a = res.get(key)
                if a:
                    print(f"| {name} | {kind} | {a.get('frames', '—')} | {a['accuracy']:.3f} | "
                          f"{a['precision']:.3f} | {a['recall']:.3f} | {a['f1']:.3f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/results/shipped"))
