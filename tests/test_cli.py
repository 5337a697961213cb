import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from stemsplit.cli import main

from .conftest import tone_mix


@pytest.fixture()
def wav(tmp_path):
    p = tmp_path / "song.wav"
    sf.write(p, tone_mix(44100, 1.5, 2).T, 44100)
    return p


def test_separate_four_stems(tiny_targets, wav, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["separate", str(wav), "-o", str(out), "--targets", "vocals,drums,bass,other",
                 "--targets-dir", str(tiny_targets), "-q"])
    assert code == 0
    files = sorted(p.name for p in (out / "song").iterdir())
    assert files == ["bass.wav", "drums.wav", "other.wav", "residual.wav", "vocals.wav"]
    total = sum(sf.read(out / "song" / f)[0] for f in files)
    np.testing.assert_allclose(total, sf.read(wav)[0], atol=1e-4)


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_formats(tiny_targets, wav, tmp_path, fmt):
    out = tmp_path / "out"
    assert main(["separate", str(wav), "-o", str(out), "-f", fmt, "--targets-dir", str(tiny_targets), "-q"]) == 0
    got, sr = sf.read(out / "song" / f"vocals.{fmt}")
    assert sr == 44100 and got.shape[1] == 2 and abs(got.shape[0] - 1.5 * 44100) < 3000


def test_targets_listing(tiny_targets, capsys):
    assert main(["targets", "--targets-dir", str(tiny_targets)]) == 0
    out = capsys.readouterr().out
    assert "vocals" in out and "checkpoint:" in out


@pytest.mark.parametrize("args,match", [
    (["separate", "missing.wav"], "No such file"),
    (["separate", "{wav}", "--targets", "kazoo"], "Unknown target 'kazoo'"),
    (["separate", "{garbage}"], "Could not decode"),
    (["separate", "{empty}"], "empty"),
    (["separate", "{silent}"], "silent"),
    (["separate", "{nan}"], "NaN"),
    (["separate", "{corrupt_target}", "--targets", "broken"], "corrupt"),
])
def test_errors_exit_2_with_one_line(tiny_targets, wav, tmp_path, capsys, args, match):
    (tmp_path / "garbage.mp3").write_bytes(b"\x00\x01not audio at all" * 100)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "silent.wav", np.zeros(22050), 22050)
    nan = tone_mix(22050, 1.0, 1)[0]
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 22050, subtype="FLOAT")
    broken = tmp_path / "tdir"
    broken.mkdir()
    (broken / "broken.toml").write_text('name = "broken"\nstems = ["broken"]\n[model]\npreset = "tiny"\n')
    (broken / "broken.npz").write_bytes(b"garbage")
    paths = {"wav": wav, "garbage": tmp_path / "garbage.mp3", "empty": tmp_path / "empty.wav",
             "silent": tmp_path / "silent.wav", "nan": tmp_path / "nan.wav", "corrupt_target": wav}
    argv = [a.format(**paths) for a in args] + ["-o", str(tmp_path / "out"), "--targets-dir", str(tiny_targets),
                                                 "--targets-dir", str(broken), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stemsplit: error:") and match in err[0]
    assert not list((tmp_path / "out").rglob("*.*")) if (tmp_path / "out").exists() else True


def test_bad_option_values_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stemsplit", "separate", "x.wav", "-f", "aiff"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = subprocess.run([sys.executable, "-m", "stemsplit", "separate", "x.wav", "--targets", ","],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "at least one target" in r.stderr
