#!/usr/bin/env bash
# A/B of training recipes for the vocals target on real multitracks only (docs/training.md, "Recipe A/B").
#
#   bash benchmarks/ab_recipe.sh REAL_STEMS [RUNS] [VARIANT...]
#
# REAL_STEMS: a MUSDB-layout folder whose train/ holds the MedleyDB "Music Delta" excerpts; "MusicDelta - Beatles"
# and "MusicDelta - Grunge" are held out and separated whole for the validation SDR (binary and soft masks).
# Variants: local-mse (the previous shipped recipe: article-local, MSE on binary masks), dec-wbce (frequency
# decoder, magnitude-weighted cross-entropy on ratio labels), local-wbce, dec-mse. 300 steps each, same seed, no
# EMA or EQ/reverb, so only the model and the loss differ. Read RUNS/<variant>/metrics.jsonl.
set -euo pipefail
real=$1
runs=${2:-runs/ab}
shift $(( $# >= 2 ? 2 : 1 ))
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(local-mse dec-wbce local-wbce dec-mse)
here=$(cd "$(dirname "$0")/.." && pwd)
for v in "${variants[@]}"; do
  model=${v%-*}
  loss=${v#*-}
  tdir="$runs/targets-$model"
  mkdir -p "$tdir"
  preset=$([ "$model" = dec ] && echo article-dec || echo article-local)
  sed "s/^preset = .*/preset = \"$preset\"/" "$here/targets/vocals.toml" > "$tdir/vocals.toml"
  rm -rf "${runs:?}/$v"
  stemsplit train --target vocals --targets-dir "$tdir" --musdb-root "$real" --is-wav --steps 300 --lr 3e-3 \
    --val-every 100 --loss "$loss" --ema 0 --eq 0 --reverb 0 --valid-tracks "MusicDelta - Beatles,MusicDelta - Grunge" \
    --run-dir "$runs/$v" --out "$runs/$v/final.npz" -q
  grep val_ "$runs/$v/metrics.jsonl"
done
