"""scripts/stage_corpus.py: the MedleyDB (MDB Drums) root, staged from a tiny fake mirror folder."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import load_script


@pytest.fixture(scope="module")
def stage():
    return load_script("scripts/stage_corpus.py")


def test_mdb_stem_labels(stage):
    assert stage.mdb_stem("male singer") == "vocals"
    assert stage.mdb_stem("Female Singer") == "vocals"
    assert stage.mdb_stem("drum set") == "drums"
    assert stage.mdb_stem("electric bass") == "bass"
    assert stage.mdb_stem("double bass") == "bass"
    assert stage.mdb_stem("bass clarinet") == "other"
    assert stage.mdb_stem("distorted electric guitar") == "other"


def _song(root: Path, song: str, instruments: list[str], n: int, rng, absent: int | None = None) -> list[np.ndarray]:
    folder = root / "MDB Drums" / "audio" / "multi-tracks" / f"MusicDelta_{song}"
    raw = folder / f"MusicDelta_{song}_RAW"
    raw.mkdir(parents=True)
    lines = [f"raw_dir: MusicDelta_{song}_RAW", "stems:"]
    signals = []
    for i, inst in enumerate(instruments, 1):
        name = f"MusicDelta_{song}_RAW_{i:02d}_01.wav"
        lines += [f"  S{i:02d}:", "    raw:", "      R01:", f"        filename: {name}", f"        instrument: {inst}"]
        x = (np.round(0.1 * rng.standard_normal(n) * 32767) / 32767).astype(np.float32)  # exact in PCM_16
        signals.append(x)
        if i != absent:
            sf.write(str(raw / name), x, 44100, subtype="PCM_16")
    (folder / f"MusicDelta_{song}_METADATA.yaml").write_text("\n".join(lines) + "\n")
    return signals


def test_stage_mdb(stage, tmp_path):
    rng = np.random.default_rng(0)
    mirror, shared, out = tmp_path / "mirror", tmp_path / "shared", tmp_path / "corpus"
    sig = _song(mirror, "Funk", ["drum set", "electric bass", "clean electric guitar", "male singer", "female singer"],
                4410, rng)
    _song(mirror, "Jazz", ["drum set", "double bass", "piano"], 4410, rng, absent=3)  # a track missing: skipped
    _song(mirror, "Known", ["drum set", "electric bass"], 4410, rng)  # already in real-stems: skipped
    (shared / "real-stems" / "train" / "MusicDelta - Known").mkdir(parents=True)

    stage.stage_mdb(mirror, shared, out)
    songs = sorted(p.name for p in (out / "mdb" / "train").iterdir())
    assert songs == ["MusicDelta - Funk"]
    folder = out / "mdb" / "train" / "MusicDelta - Funk"
    stems = {t: sf.read(str(folder / f"{t}.wav"), dtype="float32")[0] for t in stage.TARGETS}
    mix = sf.read(str(folder / "mixture.wav"), dtype="float32")[0]
    np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-4)
    gain = np.dot(stems["drums"], sig[0]) / np.dot(sig[0], sig[0])  # one common gain keeps the mix from clipping
    np.testing.assert_allclose(stems["drums"], gain * sig[0], atol=2e-4)
    np.testing.assert_allclose(stems["bass"], gain * sig[1], atol=2e-4)
    np.testing.assert_allclose(stems["other"], gain * sig[2], atol=2e-4)
    np.testing.assert_allclose(stems["vocals"], gain * (sig[3] + sig[4]), atol=3e-4)
    report = json.loads((out / "mdb" / "manifest.json").read_text())
    assert set(report["skipped"]) == {"MusicDelta - Jazz", "MusicDelta - Known"}
    assert "absent" in report["skipped"]["MusicDelta - Jazz"]
    # a rerun finds the song complete and leaves its files alone
    before = (folder / "mixture.wav").stat().st_mtime_ns
    stage.stage_mdb(mirror, shared, out)
    assert (folder / "mixture.wav").stat().st_mtime_ns == before


def test_musdb_test_list(stage):
    names = stage.musdb_test_songs()
    assert len(names) == 50
    assert "Timboz - Pony" in names and "Angels In Amplifiers - I'm Alright" in names
    assert "Angela Thomas Wade - Milk Cow Blues" not in names  # a training song, though DSD100 files it under Test


def _stem_mp4(path: Path, freqs: list[int]) -> None:
    """A five-stream .stem.mp4 (mix, drums, bass, other, vocals), each stream a sine at its own frequency."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for f in freqs:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={f}:duration=0.5:sample_rate=44100"]
    for i in range(len(freqs)):
        cmd += ["-map", f"{i}:a"]
    subprocess.run(cmd + ["-ac", "2", "-c:a", "aac", "-b:a", "128k", "-f", "mp4", str(path)], check=True)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_stage_musdb7(stage, tmp_path):
    repo, out = tmp_path / "mirror", tmp_path / "corpus"
    folder = repo / "musdb" / "train"
    folder.mkdir(parents=True)
    freqs = [300, 441, 882, 1764, 3528]  # mix, drums, bass, other, vocals
    for name in ("Some Band - A Song", "Music Delta - Beatles", "Timboz - Pony"):
        _stem_mp4(folder / f"{name}.stem.mp4", freqs)
    stage.stage_musdb7(repo, out, jobs=1, rev="HEAD")
    assert sorted(p.name for p in (out / "musdb7" / "train").iterdir()) == ["Some Band - A Song"]
    report = json.loads((out / "musdb7" / "manifest.json").read_text())
    assert "test song" in report["skipped"]["Timboz - Pony"]
    assert "MedleyDB" in report["skipped"]["Music Delta - Beatles"]
    track = out / "musdb7" / "train" / "Some Band - A Song"
    total = 0
    for target, f in zip(("drums", "bass", "other", "vocals"), freqs[1:], strict=True):
        x, sr = sf.read(str(track / f"{target}.wav"), dtype="float32")
        assert sr == 44100 and x.shape[1] == 2
        spectrum = np.abs(np.fft.rfft(x[:, 0]))
        assert abs(np.argmax(spectrum) * sr / len(x) - f) < 5, target  # each stem from its own stream
        total = total + x
    mix = sf.read(str(track / "mixture.wav"), dtype="float32")[0]
    np.testing.assert_allclose(mix, total, atol=1e-4)


def test_stage_instr_synth_renders_voiceless_songs_once(stage, tmp_path, monkeypatch):
    from .conftest import require_synth_tools

    require_synth_tools()
    assert "instr-synth" in stage.EXTRA_ROOTS and "instr-synth" not in stage.ROOTS  # staged only on request
    monkeypatch.setitem(stage.INSTR_SYNTH, "tracks", 2)
    monkeypatch.setitem(stage.INSTR_SYNTH, "seconds", 2.0)
    out = tmp_path / "corpus"
    stage.stage_instr_synth(tmp_path / "no-shared", out, 1)
    folders = sorted((out / "instr-synth" / "train").glob("synth-*"))
    assert len(folders) == 2
    for f in folders:
        stems = {t: sf.read(str(f / f"{t}.wav"), dtype="float32", always_2d=True)[0] for t in stage.TARGETS}
        mix = sf.read(str(f / "mixture.wav"), dtype="float32", always_2d=True)[0]
        assert not np.any(stems["vocals"])  # no voice anywhere
        assert np.abs(mix).max() > 0.01
        np.testing.assert_allclose(mix, sum(stems.values()), atol=1e-3)
    manifest = json.loads((out / "instr-synth" / "manifest.json").read_text())
    assert manifest["tracks"] == 2 and manifest["seed"] == stage.INSTR_SYNTH["seed"]
    before = [(f / "mixture.wav").stat().st_mtime_ns for f in folders]
    stage.stage_instr_synth(tmp_path / "no-shared", out, 1)  # complete: nothing rendered again
    assert [(f / "mixture.wav").stat().st_mtime_ns for f in folders] == before


def _level_labeller(vocals_gain: float | dict[int, float], calls: list | None = None):
    """A stand-in for Spleeter (:func:`spleeter_labeller`'s interface): input ``i``'s vocals estimate is
    ``vocals_gain`` (or ``vocals_gain[i]``) times the input, the rest the accompaniment; ``calls`` records how
    many inputs each call got."""

    def label(wavs, outdir):
        if calls is not None:
            calls.append(len(wavs))
        results = []
        for i, w in enumerate(wavs):
            g = vocals_gain[i] if isinstance(vocals_gain, dict) else vocals_gain
            a, sr = sf.read(str(w), dtype="float32", always_2d=True)
            d = outdir / str(i)
            d.mkdir(parents=True)
            sf.write(str(d / "vocals.wav"), g * a, sr, subtype="FLOAT")
            sf.write(str(d / "accompaniment.wav"), (1 - g) * a, sr, subtype="FLOAT")
            results.append({"path": str(w), "out": str(d)})
        return results

    return label


def _quarter_labeller(calls: list | None = None):
    """A quarter of each input as the vocals (:func:`_level_labeller`)."""
    return _level_labeller(0.25, calls)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_stage_ultrastar_writes_the_labellers_stems(stage, tmp_path):
    """The Creative Commons songs: each present audio decoded, split by the labeller (Spleeter in use; a fake
    here), the two estimates written as stems with their sum as the mixture; songs without audio skipped."""
    repo, out = tmp_path / "mirror", tmp_path / "corpus"
    song = repo / "Creative Commons" / "Some Band - A Song?"
    song.mkdir(parents=True)
    t = np.arange(22050) / 44100
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)], axis=1)
    sf.write(str(song / "audio.ogg"), x, 44100)
    (song / "license.txt").write_text("Licensed under\nhttp://creativecommons.org/licenses/by-nc/3.0/\n")
    (repo / "Creative Commons" / "No Audio - Here").mkdir()
    (repo / "Creative Commons" / "No Audio - Here" / "song.txt").write_text("#TITLE:Here\n")
    calls = []
    fake_label = _quarter_labeller(calls)
    stage.stage_ultrastar(repo, out, fake_label)
    folders = sorted((out / "ultrastar-cc" / "train").iterdir())
    assert [f.name for f in folders] == ["us-Some Band - A Song_"]  # sanitised; the song without audio skipped
    v = sf.read(str(folders[0] / "vocals.wav"), dtype="float32")[0]
    a = sf.read(str(folders[0] / "accompaniment.wav"), dtype="float32")[0]
    mix = sf.read(str(folders[0] / "mixture.wav"), dtype="float32")[0]
    assert v.shape[1] == 2 and abs(len(v) - len(x)) < 2048  # stereo, the song's length (codec padding aside)
    np.testing.assert_allclose(mix, v + a, atol=1e-4)
    np.testing.assert_allclose(3 * v, a, atol=1e-3)
    report = json.loads((out / "ultrastar-cc" / "manifest.json").read_text())
    meta = report["songs"]["Some Band - A Song?"]
    assert meta["licence"].startswith("http://creativecommons.org/licenses/by-nc/3.0")
    assert meta["estimate_sum_vs_original_db"] > 30 and "Spleeter" in report["stems"]
    stage.stage_ultrastar(repo, out, fake_label)  # complete: nothing decoded or labelled again
    assert calls == [1]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_stage_tlt_reads_the_music_page_and_labels_the_present_songs(stage, tmp_path):
    """The Lack Thereof's songs: the rows of the site's music table that play an audio file, the .mp3 else the
    .ogg the mirror holds; rows without audio or whose file is absent are skipped; labelled like ultrastar-cc."""
    repo, out = tmp_path / "mirror", tmp_path / "corpus"
    music = repo / "public" / "docs" / "music"
    (music / "album").mkdir(parents=True)
    (repo / "content").mkdir()
    (repo / "content" / "Music.md").write_text(
        "| Song | Play! |\n| --- | --- |\n"
        "| [[Got One Shoe]]    | audio:docs/music/oneshoe |\n"
        "| Happiness Blues     | audio:docs/music/album/05_-_Happiness_Blues |\n"
        "| [[Gone Missing]]    | audio:docs/music/missing |\n"
        "| [[Talking Blues]]   |                          |\n")
    t = np.arange(22050) / 44100
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1)
    sf.write(str(music / "oneshoe.ogg"), x, 44100)
    sf.write(str(music / "album" / "05_-_Happiness_Blues.ogg"), x, 44100)
    (music / "album" / "05_-_Happiness_Blues.mp3").write_bytes(b"")  # the .mp3 is preferred where present
    songs = stage.tlt_songs(repo)
    assert list(songs) == ["Got One Shoe", "Happiness Blues"]
    assert songs["Got One Shoe"]["audio"] == "public/docs/music/oneshoe.ogg"
    assert songs["Happiness Blues"]["audio"].endswith(".mp3")
    assert songs["Got One Shoe"]["licence"] == stage.TLT_LICENCE
    (music / "album" / "05_-_Happiness_Blues.mp3").unlink()
    stage.stage_tlt(repo, out, _quarter_labeller())
    assert sorted(p.name for p in (out / "tlt-cc" / "train").iterdir()) == ["tlt-Got One Shoe", "tlt-Happiness Blues"]
    report = json.loads((out / "tlt-cc" / "manifest.json").read_text())
    assert report["source"] == "github.com/awwaiid/thelackthereof" and set(report["songs"]) == {"Got One Shoe",
                                                                                              "Happiness Blues"}
    with pytest.raises(SystemExit, match="tlt-cc needs --peer-venv"):
        stage.main(["--out", str(tmp_path / "corpus2"), "--only", "tlt-cc"])


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_stage_vrw_labels_the_listed_songs_the_mirror_holds(stage, tmp_path):
    repo, out = tmp_path / "mirror", tmp_path / "corpus"
    songs = repo / stage.VRW_DIR
    songs.mkdir(parents=True)
    t = np.arange(22050) / 44100
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1)
    name, file = next(iter(stage.VRW_SONGS.items()))
    sf.write(str(songs / file), x, 44100)
    sf.write(str(songs / "02_SideQuest_Fitness_Week.ogg"), x, 44100)  # not listed (no licence): never staged
    assert list(stage.vrw_songs(repo)) == [name]
    stage.stage_vrw(repo, out, _quarter_labeller())
    assert [p.name for p in (out / "vrw-cc" / "train").iterdir()] == [f"vrw-{stage.safe_name(name)}"]
    report = json.loads((out / "vrw-cc" / "manifest.json").read_text())
    assert report["songs"][name]["licence"] == stage.VRW_LICENCE and report["songs"][name]["label"] == "spleeter"
    with pytest.raises(SystemExit, match="None of the VRWorkout songs"):
        stage.vrw_songs(tmp_path / "empty")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_stage_deb_music_excerpts_sums_fof_tracks_and_writes_voiceless_songs_as_instrumental(stage, tmp_path,
                                                                                             monkeypatch):
    """Unpacked packages: files of a minute or more are songs (shorter ones skipped), a Frets on Fire folder's
    tracks sum to one song, the middle ``excerpt_s`` of each is staged; a song whose vocals estimate lies 25 dB
    or more below it gets silent vocals and the song as its accompaniment; the others Spleeter's estimates
    (``keep_voiced``) or, as the root is staged, nothing."""
    debdir, out = tmp_path / "debs", tmp_path / "corpus"
    sr = 8000
    t = np.arange(int(70 * sr)) / sr
    tone = (0.2 * np.sin(2 * np.pi * 220 * t) * (t / 70)).astype(np.float32)  # rises, so the excerpt is findable
    game = debdir / "game-music" / "usr" / "share" / "games" / "game" / "music"
    game.mkdir(parents=True)
    sf.write(str(game / "theme.ogg"), np.stack([tone, tone], 1), sr)
    sf.write(str(game / "jingle.ogg"), np.stack([tone[: 5 * sr]] * 2, 1), sr)  # 5 s: skipped
    fof = debdir / "fof-songs" / "usr" / "share" / "games" / "fof" / "songs" / "band" / "anthem"
    fof.mkdir(parents=True)
    sf.write(str(fof / "song.ogg"), np.stack([tone, tone], 1), sr)
    sf.write(str(fof / "guitar.ogg"), np.stack([tone, tone], 1), sr)
    doc = debdir / "game-music" / "usr" / "share" / "doc" / "game-music"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nLicense: CC-BY-SA-3.0\n\nFiles: debian/*\nLicense: GPL-2+\n")
    (debdir / "game-music" / ".version").write_text("1.0-2\n")
    songs = stage.deb_songs(debdir, ("fof-songs", "game-music"), min_s=60, excerpt_s=20)
    assert list(songs) == ["fof-songs - anthem", "game-music - theme"]
    assert songs["fof-songs - anthem"]["audio"] == ["usr/share/games/fof/songs/band/anthem/guitar.ogg",
                                                    "usr/share/games/fof/songs/band/anthem/song.ogg"]
    assert songs["game-music - theme"]["licence"] == "CC-BY-SA-3.0, GPL-2+"
    assert songs["game-music - theme"]["version"] == "1.0-2"
    assert abs(songs["game-music - theme"]["start_s"] - 25.0) < 0.1
    x = stage._decode_excerpt(debdir, songs["game-music - theme"])
    y = stage._decode_excerpt(debdir, songs["fof-songs - anthem"])
    assert x.shape[0] == 2 and abs(x.shape[1] - 20 * stage.SR) < 2048
    np.testing.assert_allclose(np.sqrt(np.mean(y ** 2)), 2 * np.sqrt(np.mean(x ** 2)), rtol=0.02)  # summed
    np.testing.assert_allclose(np.sqrt(np.mean(x ** 2)), 0.2 / np.sqrt(2) * 35 / 70, rtol=0.05)  # the middle
    stage.stage_labelled(debdir, out, _level_labeller({0: 0.5, 1: 0.01}), songs, root_name="deb-music",
                         prefix="deb-", source="test", licence="per package",
                         decode=functools.partial(stage._decode_excerpt, debdir), silent_below_db=-25.0)
    report = json.loads((out / "deb-music" / "manifest.json").read_text())
    assert report["songs"]["fof-songs - anthem"]["label"] == "spleeter"
    assert report["songs"]["game-music - theme"]["label"] == "instrumental"  # 0.01 x: -40 dB
    theme = out / "deb-music" / "train" / "deb-game-music - theme"
    v = sf.read(str(theme / "vocals.wav"), dtype="float32")[0]
    a = sf.read(str(theme / "accompaniment.wav"), dtype="float32")[0]
    assert not v.any() and np.abs(a).max() > 0.05
    anthem = out / "deb-music" / "train" / "deb-fof-songs - anthem"
    v = sf.read(str(anthem / "vocals.wav"), dtype="float32")[0]
    a = sf.read(str(anthem / "accompaniment.wav"), dtype="float32")[0]
    np.testing.assert_allclose(v, a, atol=1e-3)
    assert "excerpt" not in report["songs"]["game-music - theme"]
    with pytest.raises(SystemExit, match="not unpacked"):
        stage.deb_songs(debdir, ("absent-music",))
    # the root as staged: voiced songs dropped (no trustworthy label), listed, and not labelled again
    monkeypatch.setattr(stage, "DEB_MUSIC", ("fof-songs", "game-music"))
    monkeypatch.setitem(stage.DEB_MUSIC_CFG, "excerpt_s", 20.0)
    out2, calls = tmp_path / "corpus3", []
    for _ in range(2):
        stage.stage_deb_music(out2, _level_labeller({0: 0.5, 1: 0.01}, calls), debdir)
    assert calls == [2]  # the second run found the instrumental song complete and the voiced one dropped
    assert [p.name for p in (out2 / "deb-music" / "train").iterdir()] == ["deb-game-music - theme"]
    report = json.loads((out2 / "deb-music" / "manifest.json").read_text())
    assert list(report["dropped"]) == ["fof-songs - anthem"] and list(report["songs"]) == ["game-music - theme"]
    assert report["dropped"]["fof-songs - anthem"]["vocals_estimate_db"] == pytest.approx(-6.0, abs=0.1)
    with pytest.raises(SystemExit, match="deb-music needs --peer-venv"):
        stage.main(["--out", str(tmp_path / "corpus2"), "--only", "deb-music"])


def test_ultrastar_needs_the_peer_venv_before_any_work(stage, tmp_path):
    with pytest.raises(SystemExit, match="needs --peer-venv"):
        stage.main(["--out", str(tmp_path / "corpus"), "--only", "ultrastar-cc"])
    with pytest.raises(SystemExit, match="no Spleeter there"):
        stage.main(["--out", str(tmp_path / "corpus"), "--only", "ultrastar-cc", "--peer-venv", str(tmp_path)])
    assert not (tmp_path / "corpus").exists()


def test_ultrastar_sung_reads_tempo_gap_and_relative_lines(stage):
    text = "#TITLE:x\n#BPM:150,0\n#GAP:1000\n: 0 4 60 la\n* 8 2 62 la\nF 12 4 0 ha\n- 20\nE\n"
    beat = 60.0 / (4 * 150)
    np.testing.assert_allclose(stage.ultrastar_sung(text), [(1.0, 1 + 4 * beat), (1 + 8 * beat, 1 + 10 * beat),
                                                            (1 + 12 * beat, 1 + 16 * beat)])
    rel = "#BPM:150\n#GAP:0\n#RELATIVE:yes\n: 0 4 60 la\n- 8 10\n: 2 4 60 la\n"  # the second line starts at beat 10
    np.testing.assert_allclose(stage.ultrastar_sung(rel)[1], (12 * beat, 16 * beat))
    assert stage.ultrastar_sung("#TITLE:no tempo\n: 0 4 60 la\n") == []
    np.testing.assert_allclose(stage.instrumental_passages([(4.0, 6.0), (6.5, 7.0)], 12.0, 0.75, 3.0),
                               [(0.0, 3.25), (7.75, 12.0)])


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_stage_ultrastar_instr_keeps_the_voiceless_passages_between_lines(stage, tmp_path):
    """Passages between the notated lines become tracks with silent vocals and the original audio as the rest;
    one whose Spleeter estimate holds a voice the notes do not mark (an ad-lib) is dropped."""
    repo, out = tmp_path / "mirror", tmp_path / "corpus"
    song = repo / "Creative Commons" / "Band - Song"
    song.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((12 * 44100, 2))).astype(np.float32)
    sf.write(str(song / "audio.ogg"), x, 44100)
    (song / "license.txt").write_text("http://creativecommons.org/licenses/by/3.0/\n")
    # BPM 150 -> 0.1 s per UltraStar beat; notes from 4.0 to 6.0 s
    (song / "song.txt").write_text("#TITLE:Song\n#BPM:150\n#GAP:4000\n: 0 10 60 la\n: 10 10 62 la\nE\n")
    with pytest.raises(SystemExit, match="stage that root first"):
        stage.stage_ultrastar_instr(repo, out)

    def fake_label(wavs, outdir):  # the voice where the notes are, and an un-notated ad-lib at 8-9 s
        results = []
        for i, w in enumerate(wavs):
            a, sr = sf.read(str(w), dtype="float32", always_2d=True)
            t = np.arange(len(a)) / sr
            voiced = ((t >= 4) & (t < 6)) | ((t >= 8) & (t < 9))
            d = outdir / str(i)
            d.mkdir(parents=True)
            sf.write(str(d / "vocals.wav"), a * voiced[:, None], sr, subtype="FLOAT")
            sf.write(str(d / "accompaniment.wav"), a * ~voiced[:, None], sr, subtype="FLOAT")
            results.append({"path": str(w), "out": str(d)})
        return results

    stage.stage_ultrastar(repo, out, fake_label)
    stage.stage_ultrastar_instr(repo, out)
    folders = sorted((out / "ultrastar-instr" / "train").iterdir())
    assert [f.name for f in folders] == ["usi-Band - Song-00"]  # 0-3.25 s; 6.75-12 s holds the ad-lib
    v = sf.read(str(folders[0] / "vocals.wav"), dtype="float32")[0]
    a = sf.read(str(folders[0] / "accompaniment.wav"), dtype="float32")[0]
    mix = sf.read(str(folders[0] / "mixture.wav"), dtype="float32")[0]
    assert not np.any(v) and abs(len(mix) - int(3.25 * 44100)) <= 1
    np.testing.assert_array_equal(mix, a)
    decoded = sf.read(str(out / "ultrastar-cc" / "train" / "us-Band - Song" / "mixture.wav"), dtype="float32")[0]
    np.testing.assert_allclose(mix, decoded[: len(mix)], atol=2e-4)  # the song's audio, as decoded
    report = json.loads((out / "ultrastar-instr" / "manifest.json").read_text())
    assert list(report["dropped"]) == ["usi-Band - Song-01"]
    assert report["dropped"]["usi-Band - Song-01"]["vocals_estimate_db"] > -20
    assert report["passages"]["usi-Band - Song-00"]["licence"].startswith("http://creativecommons.org/licenses/by/")
