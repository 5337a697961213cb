"""Live streaming through the sound card (optional: needs the ``sounddevice`` package, ``pip install
stemsplit[live]``): microphone or line in, one separated stem out to the speakers."""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Sequence

import numpy as np

from .errors import DependencyError
from .stream import StreamSeparator, run_pipeline


def run_live(targets: Sequence[str] = ("vocals",), *, rate: int | None = None, channels: int | None = None,
             chunk: int = 1024, stem: str | None = None, mask: str = "binary", residual: bool = True,
             targets_dir: Sequence[str | os.PathLike] | None = None,
             checkpoint_dirs: Sequence[str | os.PathLike] = ()) -> int:
    """Run the stream from the default input device to the default output device until Ctrl-C.

    Parameters
    ----------
    targets : sequence of str
        Targets to separate.
    rate, channels : int, optional
        Of the devices (default 44.1 kHz, mono).
    chunk : int
        Samples per device block.
    stem : str, optional
        The stem played (default: the first target; e.g. ``"accompaniment"`` for karaoke).
    mask, residual, targets_dir, checkpoint_dirs
        As for :class:`~stemsplit.stream.StreamSeparator`.
    """
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise DependencyError(f"Live audio needs the sounddevice package and PortAudio ({e}); "
                              "install with: pip install 'stemsplit[live]'") from None
    sr = rate or 44100
    channels = channels or 1
    stream = StreamSeparator(list(targets), sr=sr, channels=channels, mask=mask, residual=residual,
                             targets_dir=targets_dir, checkpoint_dirs=checkpoint_dirs)
    stem = stream.check_stem(stem or targets[0])
    captured: queue.Queue = queue.Queue(maxsize=64)

    def source():
        while True:
            yield captured.get()

    with sd.InputStream(samplerate=sr, channels=channels, blocksize=chunk, dtype="float32",
                        callback=lambda data, frames, t, status: captured.put(data.T.copy())), \
            sd.OutputStream(samplerate=sr, channels=channels, dtype="float32") as out:
        print(f"live: {stem}, latency {1000 * stream.latency_seconds:.0f} ms + device buffers; Ctrl-C stops",
              file=sys.stderr)
        try:
            run_pipeline(source(), stream, lambda o: out.write(np.ascontiguousarray(o[stem].T)))
        except KeyboardInterrupt:
            pass
    return 0
