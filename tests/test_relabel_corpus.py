"""scripts/relabel_corpus.py (a staged root relabelled by a four-stem teacher, here a stand-in) and the numpy
signal processing of scripts/_htdemucs_worker.py (the teacher itself needs onnxruntime and its weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import load_script

SR = 44100


@pytest.fixture(scope="module")
def relabel():
    return load_script("scripts/relabel_corpus.py")


def _root(tmp: Path, rng, songs=3, seconds=1.0) -> Path:
    """A staged root of songs whose mixture is a low tone (the "bass") plus a high one (the "vocals")."""
    src = tmp / "src"
    t = np.arange(int(seconds * SR)) / SR
    entries = {}
    for i in range(songs):
        folder = src / "train" / f"song {i}"
        folder.mkdir(parents=True)
        low = 0.3 * np.sin(2 * np.pi * (60 + 10 * i) * t)
        high = 0.2 * np.sin(2 * np.pi * 2000 * t) * (t > 0.5)
        mix = np.stack([low + high, low + 0.5 * high]) + 1e-3 * rng.standard_normal((2, t.size))
        sf.write(folder / "mixture.wav", mix.T.astype(np.float32), SR, subtype="PCM_16")
        entries[f"Song {i}"] = {"folder": f"song {i}", "licence": "CC0"}
    (src / "manifest.json").write_text(json.dumps({"source": "test", "licence": "CC0", "songs": entries}))
    return src


def _stand_in(calls: list):
    """A teacher that hears bins below 500 Hz as bass and the rest as vocals (and drums / other as silence)."""
    def label(wavs, outdir):
        calls.append(len(wavs))
        replies = []
        for i, w in enumerate(wavs):
            a, sr = sf.read(w, dtype="float32", always_2d=True)
            spec = np.fft.rfft(a.T, axis=-1)
            f = np.fft.rfftfreq(a.shape[0], 1 / sr)
            est = {"bass": np.fft.irfft(spec * (f < 500), a.shape[0]), "vocals": np.fft.irfft(spec * (f >= 500), a.shape[0]),
                   "drums": np.zeros(a.T.shape), "other": np.zeros(a.T.shape)}
            out = Path(outdir) / str(i)
            out.mkdir(parents=True)
            for k, v in est.items():
                sf.write(out / f"{k}.wav", v.T.astype(np.float32), sr, subtype="FLOAT")
            replies.append({"path": str(w), "out": str(out), "seconds": a.shape[0] / sr, "wall_s": 0.1})
        return replies
    return label


def test_relabel_stems_sum_to_the_mixture_and_resume(relabel, tmp_path):
    rng = np.random.default_rng(0)
    src = _root(tmp_path, rng)
    out = tmp_path / "out"
    calls = []
    m = relabel.relabel(src, out, _stand_in(calls), batch=2, limit=2, teacher={"model": "stand-in"})
    assert sorted(m["songs"]) == ["song 0", "song 1"] and calls == [2]
    m = relabel.relabel(src, out, _stand_in(calls), batch=2)  # resumes: only the third song is left
    assert calls == [2, 1] and sorted(m["songs"]) == ["song 0", "song 1", "song 2"]
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["licence"] == "CC0" and saved["teacher"] == {"model": "stand-in"}
    entry = saved["songs"]["song 1"]
    assert entry["song"] == "Song 1" and entry["licence"] == "CC0"
    assert entry["levels_db"]["drums"] < -150 and entry["levels_db"]["bass"] > -20
    for i in range(3):
        folder = out / "train" / f"song {i}"
        stems = {k: sf.read(folder / f"{k}.wav", dtype="int16")[0].astype(np.int32)
                 for k in ("mixture", "vocals", "drums", "bass", "other")}
        assert np.array_equal(stems["mixture"], stems["vocals"] + stems["drums"] + stems["bass"] + stems["other"])
        orig = sf.read(src / "train" / f"song {i}" / "mixture.wav")[0]
        assert np.max(np.abs(stems["mixture"] / 32767.0 - orig)) < 1e-3  # the mixture itself, no gain needed
        # the masks follow the teacher: the low tone lands in bass, the high one in vocals
        bass = stems["bass"] / 32767.0
        low_part = orig[:SR // 2]  # before the high tone starts, the song is all bass
        assert np.sum((bass[:SR // 2] - low_part)[2048:-2048] ** 2) < 1e-3 * np.sum(low_part ** 2)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train"]  # no partial folders left behind
    with pytest.raises(SystemExit, match="--silent"):  # a resumed root keeps its labelling rule
        relabel.relabel(src, out, _stand_in(calls), silent=("vocals",))


def test_silent_stems_fold_into_other(relabel, tmp_path):
    rng = np.random.default_rng(1)
    src = _root(tmp_path, rng, songs=1)
    m = relabel.relabel(src, tmp_path / "out", _stand_in([]), silent=("vocals",))
    folder = tmp_path / "out" / "train" / "song 0"
    vocals = sf.read(folder / "vocals.wav", dtype="int16")[0]
    other = sf.read(folder / "other.wav", dtype="int16")[0].astype(np.float64) / 32767.0
    assert not vocals.any() and np.sqrt(np.mean(other[SR // 2:] ** 2)) > 0.05
    assert m["silent"] == ["vocals"] and m["songs"]["song 0"]["teacher_levels_db"]["vocals"] > -30


def test_source_entries_of_either_manifest_form(relabel):
    assert relabel._entries([{"song": "us-A - B", "seconds": 3.0}]) == {"us-A - B": ("us-A - B", {"song": "us-A - B", "seconds": 3.0})}
    assert relabel._entries({"A - B": {"folder": "x-A - B"}, "C": {}}) == {"x-A - B": ("A - B", {"folder": "x-A - B"}), "C": ("C", {})}


def test_project_shares_every_bin(relabel):
    """Bins that no estimate holds are shared evenly, so the stems add up even where the teacher is silent."""
    rng = np.random.default_rng(2)
    mix = rng.standard_normal((2, 8000))
    zeros = {k: np.zeros_like(mix) for k in ("vocals", "drums", "bass", "other")}
    out = relabel.project(mix, zeros)
    assert np.allclose(sum(out.values()), mix, atol=1e-5)
    assert np.allclose(out["vocals"], mix / 4, atol=1e-5)


def test_cli_refuses_bad_arguments(relabel, tmp_path):
    with pytest.raises(SystemExit, match="--teacher-venv"):
        relabel.main([str(tmp_path), str(tmp_path / "o"), "--teacher-venv", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="not one of"):
        relabel.main([str(tmp_path), str(tmp_path / "o"), "--teacher-venv", str(tmp_path), "--silent", "other"])


def test_worker_spectrogram_round_trip():
    """The worker's numpy STFT pair (Demucs's ``_spec`` / ``_ispec``) gives the signal back."""
    worker = load_script("scripts/_htdemucs_worker.py")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, worker.SEGMENT))
    spectrum = np.fft.rfft(x, axis=-1)
    spectrum[..., np.fft.rfftfreq(x.shape[-1], 1 / SR) > 16000] = 0  # _spec drops the top bin, as Demucs does
    x = np.fft.irfft(spectrum, x.shape[-1])
    z = worker.spec(x)
    assert z.shape == (2, 2048, int(np.ceil(worker.SEGMENT / worker.HOP)))
    y = worker.ispec(z, worker.SEGMENT)
    # exact away from the ends (Demucs's own pair is not exact within a frame of either end)
    assert np.max(np.abs(y - x)[..., 4096:-4096]) < 1e-6 * np.max(np.abs(x))
