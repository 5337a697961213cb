#!/usr/bin/env bash
# How the shipped checkpoints are trained (2 CPU cores; resumable: rerun the same line after a stop).
#
#   bash scripts/train_shipped.sh corpus                 # once: stage the real corpus (scripts/stage_corpus.py)
#   bash scripts/train_shipped.sh TARGET STEPS [ARGS]    # e.g. vocals 15000, drums 6000, other 6000; extra ARGS go to
#                                                        # stemsplit train (vocal-activity 6000 --init checkpoints/vocals.npz --lr 1e-3)
#   TARGETS_DIR=DIR bash scripts/train_shipped.sh ...    # train DIR/TARGET.toml (a new model for a shipped target)
#   The shipped vocal-activity model is that 6,000-step run fine-tuned 1,500 steps with rendered instrumental songs
#   (python scripts/stage_corpus.py --only instr-synth; the command is in docs/checkpoints.md).
#
# Data (read by path, never copied into the repository; see docs/data.md):
#   $CORPUS/eir           "Everything is Remixed" (CC0 album): 7 songs, stems summed by scripts/eir_stems.toml
#   $SHARED/real-stems    9 MedleyDB "Music Delta" multitracks (research use)
#   $CORPUS/mdb           4 more MedleyDB "Music Delta" multitracks, from the MDB Drums release (research use)
#   $CORPUS/musdb7        the 7-second excerpts of 87 MUSDB18 training songs (research use; no test song, ever)
#   $CORPUS/mir1k         MIR-1K: 1,000 karaoke clips, singing and accompaniment recorded apart (vocals only)
#   $CORPUS/instrumental  real instrumental pieces without voice (vocals only: "no vocals here")
#   $CORPUS/instr-synth   300 rendered instrumental songs (vocal activity's fine-tuning only; --only instr-synth)
# Held out for validation, full length: the album's "7.Francium" and MedleyDB "Beatles" and "Grunge".
set -euo pipefail
SHARED=${SHARED:-/work/shared/data}
CORPUS=${CORPUS:-/work/corpus}
RUNS=${RUNS:-/work/runs}
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = corpus ]; then
  exec python "$here/stage_corpus.py" --out "$CORPUS" --shared "$SHARED"
fi
target=$1
steps=$2
shift 2
extra=()
case "$target" in
  vocals)
    # the shipped vocals model's data: the corpus before the mdb and musdb7 roots were added
    roots=(--musdb-root "$CORPUS/eir" --musdb-root "$SHARED/real-stems" --musdb-root "$CORPUS/mir1k"
           --musdb-root "$CORPUS/instrumental")
    shares=0.35,0.3,0.25,0.1 ;;
  vocal-activity)
    roots=(--musdb-root "$CORPUS/eir" --musdb-root "$SHARED/real-stems" --musdb-root "$CORPUS/mdb"
           --musdb-root "$CORPUS/musdb7" --musdb-root "$CORPUS/mir1k" --musdb-root "$CORPUS/instrumental")
    shares=0.25,0.15,0.05,0.25,0.2,0.1
    # a quarter of the examples are real accompaniment alone ("no voice here")
    extra=(--drop-target 0.25) ;;
  drums)
    # the shipped drums model's data: the album and the MedleyDB excerpts
    roots=(--musdb-root "$CORPUS/eir" --musdb-root "$SHARED/real-stems")
    shares=0.5,0.5 ;;
  *)
    roots=(--musdb-root "$CORPUS/eir" --musdb-root "$SHARED/real-stems" --musdb-root "$CORPUS/mdb"
           --musdb-root "$CORPUS/musdb7")
    shares=0.3,0.2,0.1,0.4 ;;
esac
mkdir -p "$RUNS"
exec stemsplit train --target "$target" ${TARGETS_DIR:+--targets-dir "$TARGETS_DIR"} "${roots[@]}" --shares "$shares" --is-wav --steps "$steps" --batch 16 \
  --frames 64 --lr 2e-3 --val-every 500 --val-seconds 600 \
  --valid-tracks "MusicDelta - Beatles,MusicDelta - Grunge,7.Francium" --run-dir "$RUNS/$target" \
  --out "$RUNS/$target/final.npz" --resume ${extra[@]+"${extra[@]}"} "$@"
