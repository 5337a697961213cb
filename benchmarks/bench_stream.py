"""Streaming speed and latency: `StreamSeparator` fed in chunks of 256-8192 samples, vocals, 44.1 kHz stereo.

    python benchmarks/bench_stream.py [--seconds 60] [--json out.json]

Per chunk size: real-time factor (audio seconds / compute seconds) and end-to-end latency = the stream's fixed
algorithmic latency + the chunk's own duration (a chunk must fill before it is pushed) + the time one push takes
(mean and 99th percentile). The offline separator's real-time factor on the same audio is the baseline.
Models: shipped checkpoint if present, else random weights of the same size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_separate import _loaded, _signal  # noqa: E402

from stemsplit.separate import Separator  # noqa: E402
from stemsplit.stream import StreamSeparator  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--targets", default="vocals")
    p.add_argument("--json")
    args = p.parse_args()
    sr = 44100
    loaded, kind = _loaded(args.targets.split(","))
    x = _signal(args.seconds, sr)
    offline = Separator(loaded=loaded)
    offline.separate(x[:, : sr * 10], sr)
    t0 = time.perf_counter()
    offline.separate(x, sr)
    off_s = time.perf_counter() - t0
    rows = []
    for chunk in (256, 512, 1024, 2048, 4096, 8192):
        sep = Separator(loaded=loaded)
        s = StreamSeparator(sr=sr, channels=2, separator=sep)
        for i in range(0, sr * 5, chunk):  # warm-up: compile the block shapes this chunk size uses
            s.push(x[:, i:i + chunk])
        s = StreamSeparator(sr=sr, channels=2, separator=sep)
        times = []
        for i in range(0, x.shape[1], chunk):
            t = time.perf_counter()
            s.push(x[:, i:i + chunk])
            times.append(time.perf_counter() - t)
        s.flush()
        total = float(np.sum(times))
        rows.append({"chunk": chunk, "chunk_ms": round(1000 * chunk / sr, 1),
                     "real_time_factor": round(args.seconds / total, 1),
                     "push_ms_mean": round(1000 * float(np.mean(times)), 2),
                     "push_ms_p99": round(1000 * float(np.percentile(times, 99)), 2),
                     "algorithmic_latency_ms": round(1000 * s.latency_seconds, 1),
                     "end_to_end_latency_ms_mean": round(1000 * (s.latency_seconds + chunk / sr
                                                                 + float(np.mean(times))), 1),
                     "end_to_end_latency_ms_p99": round(1000 * (s.latency_seconds + chunk / sr
                                                                + float(np.percentile(times, 99))), 1)})
        print(json.dumps(rows[-1]), flush=True)
    res = {"audio_seconds": args.seconds, "targets": args.targets, "models": kind,
           "offline_real_time_factor": round(args.seconds / off_s, 1), "rows": rows}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
