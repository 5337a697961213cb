import errno
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from stemsplit import _compile_cache
from stemsplit.cli import main

from .conftest import make_musdb, tone_mix, write_tiny_target


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
    np.testing.assert_allclose(total, sf.read(wav)[0], atol=5 * 2.0 ** -16)  # five stems rounded to 16 bits
    assert all(sf.info(out / "song" / f).subtype == "PCM_16" for f in files)


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
    (["separate", "{garbage}"], "not an audio file, or a format ffmpeg cannot read"),
    (["separate", "{empty}"], "empty"),
    (["separate", "{nan}"], "NaN"),
    (["separate", "{corrupt_target}", "--targets", "broken"], "corrupt"),
])
def test_errors_exit_2_with_one_line(tiny_targets, wav, tmp_path, capsys, args, match):
    (tmp_path / "garbage.mp3").write_bytes(b"\x00\x01not audio at all" * 100)
    (tmp_path / "empty.wav").write_bytes(b"")
    nan = tone_mix(22050, 1.0, 1)[0]
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 22050, subtype="FLOAT")
    broken = tmp_path / "tdir"
    broken.mkdir()
    (broken / "broken.toml").write_text('name = "broken"\nstems = ["broken"]\n[model]\npreset = "tiny"\n')
    (broken / "broken.npz").write_bytes(b"garbage")
    paths = {"wav": wav, "garbage": tmp_path / "garbage.mp3", "empty": tmp_path / "empty.wav",
             "nan": tmp_path / "nan.wav", "corrupt_target": wav}
    argv = [a.format(**paths) for a in args] + ["-o", str(tmp_path / "out"), "--targets-dir", str(tiny_targets),
                                                 "--targets-dir", str(broken), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stemsplit: error:") and match in err[0]
    assert not re.search(r"[A-Z][a-z]+Error\b", err[0])  # no internal exception names
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*"))


@pytest.mark.slow
def test_bad_option_values_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stemsplit", "separate", "x.wav", "-f", "aiff"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "stemsplit: error: Unknown output format 'aiff'; choose one of wav, flac, ogg, mp3."
    r = subprocess.run([sys.executable, "-m", "stemsplit", "separate", "x.wav", "--targets", ","],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "at least one target" in r.stderr


def _one_error_line(capsys, match: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stemsplit: error:") and match in err[0], err
    return err[0]


def test_output_problems_are_one_line_before_the_models_load(tiny_targets, wav, tmp_path, capsys):
    """A file where the output folder goes, or a folder that cannot be written: one line, exit 2, and before
    the models load (the corrupt 'broken' target would fail loading, so its error would show otherwise)."""
    broken = tmp_path / "tdir"
    broken.mkdir()
    (broken / "broken.toml").write_text('name = "broken"\nstems = ["broken"]\n[model]\npreset = "tiny"\n')
    (broken / "broken.npz").write_bytes(b"garbage")
    afile = tmp_path / "existing_file"
    afile.write_text("x")
    for out, match in [(afile, "it is a file, not a folder"), (afile / "sub", "existing_file is a file")]:
        assert main(["separate", str(wav), "-o", str(out), "--targets", "broken", "--targets-dir", str(broken),
                     "-q"]) == 2
        _one_error_line(capsys, match)
    if os.path.isdir("/proc/self"):  # nobody, root included, can create files in /proc
        assert main(["separate", str(wav), "-o", "/proc/stemsplit-out", "--targets", "broken", "--targets-dir",
                     str(broken), "-q"]) == 2
        _one_error_line(capsys, "Cannot write into /proc/stemsplit-out")
    assert afile.read_text() == "x"
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "song").write_text("a file where the song's folder goes")
    assert main(["separate", str(wav), "-o", str(tmp_path / "o2"), "--targets-dir", str(tiny_targets), "-q"]) == 2
    _one_error_line(capsys, "is a file, not a folder")


def test_full_disk_mid_write_is_one_line_and_leaves_nothing(tiny_targets, tmp_path, capsys, monkeypatch):
    src = tmp_path / "long.wav"
    sf.write(src, tone_mix(44100, 8.0, 2).T, 44100)  # several blocks, so some are written before the failure
    real, calls = sf.SoundFile.write, []

    def fill_up(self, data):
        calls.append(1)
        if len(calls) > 2:  # two stems: the first block is written, the second fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", fill_up)
    out = tmp_path / "out" / "deeper"
    assert main(["separate", str(src), "-o", str(out), "--targets-dir", str(tiny_targets), "-q"]) == 2
    _one_error_line(capsys, "the disk is full")
    assert len(calls) == 3 and not (tmp_path / "out").exists()  # no stems, no temporary files, no folders


def test_silent_input_gives_silent_stems_and_one_warning(tiny_targets, tmp_path, capsys):
    sf.write(tmp_path / "silent.wav", np.zeros((22050, 2)), 22050)
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "silent.wav"), "-o", str(out), "--targets-dir", str(tiny_targets),
                 "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"stemsplit: warning: {tmp_path / 'silent.wav'} is silent (all samples are zero): its stems "
                   "are silent too."]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert files == ["silent", "silent/accompaniment.wav", "silent/vocals.wav"]  # nothing else left behind
    assert all(sf.read(out / f)[0].shape == (22050, 2) and not sf.read(out / f)[0].any() for f in files[1:])


@pytest.mark.parametrize("opts,fmt,subtype", [([], "wav", "PCM_16"), (["--int24"], "wav", "PCM_24"),
                                              (["--float32"], "wav", "FLOAT"), ([], "flac", "PCM_16"),
                                              (["--int24"], "flac", "PCM_24")])
def test_sample_formats(tiny_targets, wav, tmp_path, opts, fmt, subtype):
    out = tmp_path / "out"
    assert main(["separate", str(wav), "-o", str(out), "-f", fmt, "--targets-dir", str(tiny_targets), "-q",
                 *opts]) == 0
    assert {sf.info(p).subtype for p in (out / "song").iterdir()} == {subtype}


@pytest.mark.parametrize("opts,match", [(["-f", "flac", "--float32"], "flac cannot store float32"),
                                        (["--clip", "none"], "needs float32"),
                                        (["-f", "mp3", "--int24"], "lossy")])
def test_bad_sample_format_options_are_one_line(tiny_targets, wav, tmp_path, capsys, opts, match):
    out = tmp_path / "out"
    assert main(["separate", str(wav), "-o", str(out), "--targets-dir", str(tiny_targets), "-q", *opts]) == 2
    _one_error_line(capsys, match)
    assert not out.exists()


def test_loud_master_is_clamped_with_one_warning_giving_the_peak(tiny_targets, tmp_path, capsys):
    x = tone_mix(22050, 1.5, 2)
    sf.write(tmp_path / "loud.wav", (1.8 * x / np.abs(x).max()).T, 22050, subtype="FLOAT")
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "loud.wav"), "-o", str(out), "--targets-dir", str(tiny_targets),
                 "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stemsplit: warning:") and re.search(r"peak 1\.\d\d = \+", err[0])
    assert max(np.abs(sf.read(p)[0]).max() for p in (out / "loud").iterdir()) <= 1.0


def test_summary_reports_each_stems_share_of_the_energy(tiny_targets, wav, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["separate", str(wav), "-o", str(out), "--targets", "vocals,drums", "--targets-dir",
                 str(tiny_targets), "--float32"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    shares = {k: float(v) for k, v in re.findall(r"(\w+)\.wav (\d+)%", line)}
    assert list(shares) == ["vocals", "drums", "residual"] and line.endswith("of the energy")
    energy = {k: np.sum(sf.read(out / "song" / f"{k}.wav")[0] ** 2) for k in shares}
    for k in shares:
        assert abs(shares[k] - 100 * energy[k] / sum(energy.values())) <= 0.5 + 1e-9, (k, shares, energy)


def test_loading_models_phase_is_shown(tiny_targets, wav, tmp_path, capsys):
    assert main(["separate", str(wav), "-o", str(tmp_path / "out"), "--targets-dir", str(tiny_targets)]) == 0
    err = capsys.readouterr().err
    assert "loading models (vocals)" in err and "song.wav (loading models)" in err


def test_every_command_reports_bad_input_in_one_line(tiny_targets, tmp_path, capsys):
    """The one-line, exit-2 rule holds beyond separate: train, align, vad, stream, calibrate."""
    act = tmp_path / "act"
    write_tiny_target(act, "vocal-activity", task="activity", stems=("vocals",))
    root = make_musdb(tmp_path / "db", tracks=1, seconds=1.0)
    missing = str(tmp_path / "missing.wav")
    cases = [
        (["train", "--target", "kazoo", "--musdb-root", str(root), "--is-wav", "-q"], "Unknown target 'kazoo'"),
        (["train", "--target", "vocals", "--musdb-root", str(tmp_path / "nowhere"), "--is-wav", "-q",
          "--targets-dir", str(tiny_targets)], "not found"),
        (["align", missing, missing, "-o", str(tmp_path / "ds" / "t")], "No such file"),
        (["vad", missing, "--targets-dir", str(act)], "No such file"),
        (["stream", missing, "-o", str(tmp_path / "o.wav"), "--targets-dir", str(tiny_targets), "-q"],
         "No such file"),
        (["stream", "-", "-o", str(tmp_path / "o.wav"), "--targets-dir", str(tiny_targets), "-q"], "--rate"),
        (["stream", str(root / "train" / "song0-0" / "mixture.wav"), "-o", str(tmp_path), "--targets-dir",
          str(tiny_targets), "-q"], "it is a folder"),
        (["calibrate", str(tmp_path / "none.npz"), "--musdb-root", str(root), "--is-wav"], "none.npz"),
        (["train", "--target", "vocals", "--musdb-root", str(root), "--is-wav", "-q", "--exclude-tracks",
          f"@{tmp_path / 'no-list.txt'}"], "cannot read the list of track names"),
        (["vad", "--musdb-root", str(root), "--is-wav", "--tracks", f"@{act / 'vocal-activity.toml'}x",
          "--targets-dir", str(act)], "--tracks"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        _one_error_line(capsys, match)


def test_stream_takes_mask_and_no_residual(tiny_targets, tmp_path):
    from stemsplit.separate import Separator

    x = tone_mix(22050, 1.5, 2)
    sf.write(tmp_path / "in.wav", x.T, 22050, subtype="FLOAT")
    out = tmp_path / "drums.wav"
    assert main(["stream", str(tmp_path / "in.wav"), "-o", str(out), "--targets", "vocals,drums", "--stem", "drums",
                 "--mask", "soft", "--no-residual", "--float32", "--targets-dir", str(tiny_targets), "-q"]) == 0
    ref = Separator(["vocals", "drums"], mask="soft", residual=False, targets_dir=[tiny_targets]).separate(x, 22050)
    np.testing.assert_allclose(sf.read(out, always_2d=True)[0].T, ref["drums"], atol=1e-5)
    assert main(["stream", str(tmp_path / "in.wav"), "-o", str(out), "--stem", "accompaniment", "--no-residual",
                 "--targets-dir", str(tiny_targets), "-q"]) == 2


def test_compile_cache_folder_and_opt_out(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _compile_cache.cache_dir() == tmp_path / "xdg" / "stemsplit" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _compile_cache.cache_dir() == __import__("pathlib").Path.home() / ".cache" / "stemsplit" / "jax"
    monkeypatch.setenv(_compile_cache.OPT_OUT, "1")
    assert _compile_cache.enable() is None


@pytest.mark.slow
def test_second_run_reuses_compiled_models(tiny_targets, wav, tmp_path):
    """The CLI stores compiled programs in the per-user cache folder, unless STEMSPLIT_NO_COMPILE_CACHE is set."""
    def run(env_extra):
        env = {k: v for k, v in os.environ.items() if k != _compile_cache.OPT_OUT}
        env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), JAX_PLATFORMS="cpu", **env_extra)
        r = subprocess.run([sys.executable, "-m", "stemsplit", "separate", str(wav), "-o", str(tmp_path / "o"),
                            "--targets-dir", str(tiny_targets), "-q"], env=env, capture_output=True, text=True,
                           timeout=240)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        folder = tmp_path / "xdg" / "stemsplit" / "jax"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else None

    assert run({_compile_cache.OPT_OUT: "1"}) is None
    first = run({})
    assert first  # compiled programs were stored
    assert run({}) == first  # and reused: nothing new to store


def test_synth_names_missing_packages_and_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("stemsplit.data.synth.available",
                        lambda config=None: ["festival (text2wave)", "libfluidsynth3 (the fluidsynth library)"])
    assert main(["synth", str(tmp_path / "corpus"), "--tracks", "1", "--seconds", "1"]) == 2
    line = _one_error_line(capsys, "festival (text2wave); libfluidsynth3")
    assert "bash scripts/install-system-deps.sh --synth" in line and not (tmp_path / "corpus").exists()
