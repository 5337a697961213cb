"""Live streaming through the sound card (optional: needs the ``sounddevice`` package, ``pip install
stemsplit[live]``): microphone or line in, one separated stem out to the speakers."""

from __future__ import annotations

import argparse
import queue
import sys

import numpy as np

from .errors import DependencyError, OptionError
from .stream import StreamSeparator, run_pipeline


def run_live(args: argparse.Namespace) -> int:
    """Run the stream from the default input device to the default output device until Ctrl-C."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise DependencyError(f"Live audio needs the sounddevice package and PortAudio ({e}); "
                              "install with: pip install 'stemsplit[live]'") from None
    sr = args.rate or 44100
    channels = args.channels or 1
    stream = StreamSeparator(args.targets, sr=sr, channels=channels, targets_dir=args.targets_dir)
    stem = args.stem or args.targets[0]
    if stem not in stream.stem_names:
        raise OptionError(f"--stem {stem!r} is not produced; choose one of {', '.join(stream.stem_names)}.")
    captured: queue.Queue = queue.Queue(maxsize=64)

    def source():
        while True:
            yield captured.get()

    with sd.InputStream(samplerate=sr, channels=channels, blocksize=args.chunk, dtype="float32",
                        callback=lambda data, frames, t, status: captured.put(data.T.copy())), \
            sd.OutputStream(samplerate=sr, channels=channels, dtype="float32") as out:
        print(f"live: {stem}, latency {1000 * stream.latency_seconds:.0f} ms + device buffers; Ctrl-C stops",
              file=sys.stderr)
        try:
            run_pipeline(source(), stream, lambda o: out.write(np.ascontiguousarray(o[stem].T)))
        except KeyboardInterrupt:
            pass
    return 0
