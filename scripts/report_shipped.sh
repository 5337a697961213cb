#!/usr/bin/env bash
# The figures of docs/results.md for the shipped checkpoints (BSSEval v4 via `stemsplit evaluate`, VAD scores).
#
#   bash scripts/report_shipped.sh [RESULTS]        # default /work/results/shipped; ~40 min on 2 cores
#
# Data is read by path (never copied into the repository): the real songs held out of training (MedleyDB
# "Beatles" and "Grunge", the CC0 album's "7.Francium"; see scripts/stage_corpus.py) and
# ../shared/data/musdb-snippets. The Spleeter comparison is benchmarks/bench_peer.py.
set -euo pipefail
SHARED=${SHARED:-/work/shared/data}
CORPUS=${CORPUS:-/work/corpus}
OUT=${1:-/work/results/shipped}
mkdir -p "$OUT"
four=vocals,drums,bass,other
sets=(medley album snippets)
args_for() {
  case $1 in
    medley) echo "--musdb-root $SHARED/real-stems --subset train" ;;
    album) echo "--musdb-root $CORPUS/eir --subset train" ;;
    snippets) echo "--musdb-root $SHARED/musdb-snippets --subset test" ;;
  esac
}
tracks_for() {
  case $1 in
    medley) echo "MusicDelta - Beatles,MusicDelta - Grunge" ;;
    album) echo "7.Francium" ;;
    snippets) echo "" ;;
  esac
}
for set in "${sets[@]}"; do
  read -r -a a <<< "$(args_for "$set")"
  t=$(tracks_for "$set")
  sel=(); [ -n "$t" ] && sel=(--tracks "$t")
  stemsplit evaluate "${a[@]}" "${sel[@]}" --is-wav --targets $four --method model,model-soft,model-wiener,ibm,mix \
    -o "$OUT/four-$set" -q > /dev/null
  stemsplit evaluate "${a[@]}" "${sel[@]}" --is-wav --targets vocals \
    --method model,model-gated,model-soft,model-wiener,ibm,mix -o "$OUT/vocals-$set" -q > /dev/null
  stemsplit vad "${a[@]}" "${sel[@]}" --is-wav > "$OUT/vad-$set.json"
done
for f in "$OUT"/*/summary.md; do echo "== $f"; cat "$f"; done
for f in "$OUT"/vad-*.json; do echo "== $f"; python -c "import json,sys; r = json.load(open(sys.argv[1])); print(r['all']); print(r.get('segments'))" "$f"; done
