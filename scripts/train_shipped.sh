#!/usr/bin/env bash
# How the shipped checkpoints are trained (2 CPU cores; resumable: rerun the same line after a stop).
#
#   bash scripts/train_shipped.sh corpus                 # once: render the corpus and lay out the real material
#   bash scripts/train_shipped.sh TARGET STEPS           # e.g. vocals 20000, vocal-activity 4000, drums 20000
#
# Data (read by path, never copied into the repository):
#   /work/corpus/synth  400 songs x 30 s rendered by `stemsplit synth`-s renderer (seed 2026, real material mixed in)
#   /work/corpus/real   MIR-1K karaoke pairs and real instrumental pieces (scripts/prepare_real_corpus.py)
#   ../shared/data/real-stems  7 MedleyDB multitracks for training; Beatles and Grunge held out for validation
set -euo pipefail
SHARED=${SHARED:-/work/shared/data}
CORPUS=${CORPUS:-/work/corpus}
RUNS=${RUNS:-/work/runs}
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = corpus ]; then
  python - <<PY
from stemsplit.data.synth import SynthConfig, render_dataset
cfg = SynthConfig(seconds=30.0, real_data_root="$SHARED", subtype="PCM_16")
render_dataset("$CORPUS/synth", tracks=400, seconds=30.0, seed=2026, config=cfg, workers=2)
PY
  python "$here/prepare_real_corpus.py" "$SHARED" "$CORPUS/real"
  exit 0
fi
target=$1
steps=$2
shift 2
mkdir -p "$RUNS"
exec stemsplit train --target "$target" --musdb-root "$CORPUS/synth" --musdb-root "$CORPUS/real" \
  --musdb-root "$SHARED/real-stems" --shares 0.5,0.2,0.3 --is-wav --steps "$steps" --batch 16 --frames 64 --lr 3e-3 \
  --val-every 500 --valid-tracks "MusicDelta - Beatles,MusicDelta - Grunge" --run-dir "$RUNS/$target" \
  --out "$RUNS/$target/final.npz" --resume "$@"
