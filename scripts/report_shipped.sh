#!/usr/bin/env bash
# The figures of docs/results.md for the shipped checkpoints (BSSEval v4 via `stemsplit evaluate`, VAD scores).
#
#   bash scripts/report_shipped.sh [RESULTS]        # default /work/results/shipped; ~30 min on 2 cores
#
# Data is read by path (never copied into the repository): the corpus renderer's held-out test songs, the two
# real songs held out of training, and ../shared/data/musdb-snippets.
set -euo pipefail
SHARED=${SHARED:-/work/shared/data}
CORPUS=${CORPUS:-/work/corpus}
OUT=${1:-/work/results/shipped}
mkdir -p "$OUT"
four=vocals,drums,bass,other
# 12 of the 60 held-out synth songs, evenly spread (museval takes ~15 s per 30 s song and method)
synth=$(ls "$CORPUS/synth/test" | awk 'NR % 5 == 1' | paste -sd, -)
held="MusicDelta - Beatles,MusicDelta - Grunge"

stemsplit evaluate --musdb-root "$CORPUS/synth" --is-wav --subset test --tracks "$synth" --targets $four \
  --method model,model-soft,ibm,mix -o "$OUT/synth" -q > /dev/null
stemsplit evaluate --musdb-root "$SHARED/real-stems" --is-wav --subset train --tracks "$held" --targets $four \
  --method model,model-soft,ibm,mix -o "$OUT/real" -q > /dev/null
stemsplit evaluate --musdb-root "$SHARED/musdb-snippets" --is-wav --targets $four \
  --method model,model-soft,ibm,mix -o "$OUT/snippets" -q > /dev/null
# vocals alone (the default path), with and without the activity gate
for set in synth real snippets; do
  case $set in
    synth) args=(--musdb-root "$CORPUS/synth" --subset test --tracks "$synth") ;;
    real) args=(--musdb-root "$SHARED/real-stems" --subset train --tracks "$held") ;;
    snippets) args=(--musdb-root "$SHARED/musdb-snippets" --subset test) ;;
  esac
  stemsplit evaluate "${args[@]}" --is-wav --targets vocals --method model,model-gated,model-soft,ibm,mix \
    -o "$OUT/vocals-$set" -q > /dev/null
done
# vocal activity: frame accuracy / precision / recall / F1
stemsplit vad --musdb-root "$CORPUS/synth" --is-wav --subset test --tracks "$synth" > "$OUT/vad-synth.json"
stemsplit vad --musdb-root "$SHARED/real-stems" --is-wav --subset train --tracks "$held" > "$OUT/vad-real.json"
stemsplit vad --musdb-root "$SHARED/musdb-snippets" --is-wav --subset test > "$OUT/vad-snippets.json"
for f in "$OUT"/*/summary.md; do echo "== $f"; cat "$f"; done
for f in "$OUT"/vad-*.json; do echo "== $f"; python -c "import json,sys; r = json.load(open(sys.argv[1])); print(r['all']); print(r.get('segments'))" "$f"; done
