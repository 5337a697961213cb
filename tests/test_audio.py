import errno

import numpy as np
import pytest
import soundfile as sf

from stemsplit import audio
from stemsplit.errors import AudioFileError, OptionError, OutputError

from .conftest import tone_mix


def test_reader_serves_overlapping_forward_ranges_like_slicing(tmp_path):
    """The block reader's buffer: ranges that overlap, start before 0 and run past the end equal slicing."""
    x = tone_mix(22050, 3.0, 2, seed=1)
    p = tmp_path / "a.wav"
    sf.write(p, x.T, 22050, subtype="FLOAT")
    r = audio.open_reader(p)
    assert isinstance(r, audio.AudioReader) and (r.channels, r.frames, r.sr) == (2, x.shape[1], 22050)
    padded = np.pad(x, ((0, 0), (5000, 20000)))
    rng = np.random.default_rng(0)
    start = -3000
    while start < x.shape[1] + 1000:
        stop = start + int(rng.integers(1, 9000))
        np.testing.assert_array_equal(r.read(start, stop), padded[:, start + 5000:stop + 5000])
        start += int(rng.integers(0, 4000))
    assert r._buf.shape[1] < 20000  # what lies behind the last range was let go
    with pytest.raises(ValueError, match="forward"):
        r.read(0, 10)
    r.close()


def test_undecodable_file_is_named_for_a_musician(tmp_path):
    bad = tmp_path / "text.wav"
    bad.write_text("these are words, not sound\n" * 50)
    with pytest.raises(AudioFileError) as e:
        audio.load(bad)
    msg = str(e.value)
    assert "not an audio file, or a format ffmpeg cannot read" in msg and str(bad) in msg
    assert "NoBackendError" not in msg and "Error" not in msg


@pytest.mark.parametrize("enc,subtype,step", [
    (audio.Encoding("wav"), "PCM_16", 2.0 ** -15),
    (audio.Encoding("wav", "int24"), "PCM_24", 2.0 ** -23),
    (audio.Encoding("flac"), "PCM_16", 2.0 ** -15),
    (audio.Encoding("flac", "int24"), "PCM_24", 2.0 ** -23),
    (audio.Encoding("wav", "float32", clip="none"), "FLOAT", 0.0),
])
def test_encodings_round_to_the_nearest_step(tmp_path, enc, subtype, step):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 5000)).astype(np.float32)
    p = audio.write(tmp_path / f"s.{enc.format}", x, 44100, encoding=enc)
    assert sf.info(p).subtype == subtype
    got = sf.read(p, dtype="float64", always_2d=True)[0].T
    if step:
        np.testing.assert_allclose(got / step, np.round(got / step), atol=1e-6)  # on the grid
        # nearest step, no dither (float32 input is exact in float64)
        np.testing.assert_allclose(got, np.clip(np.rint(x.astype(np.float64) / step) * step, -1, 1 - step),
                                   atol=1e-12)
    else:
        np.testing.assert_array_equal(got, x)


def test_clamp_and_none_beyond_full_scale(tmp_path):
    x = np.array([[0.5, 1.7, -2.0, 0.999]], np.float32)
    w = audio.StemWriter(tmp_path / "c.wav", 8000, 1, audio.Encoding("wav"))
    w.write(x)
    w.commit()
    assert (w.peak, w.clipped) == (2.0, 2)
    got = sf.read(tmp_path / "c.wav", dtype="float64")[0]
    np.testing.assert_allclose(got, [0.5, 32767 / 32768, -1.0, np.rint(0.999 * 32768) / 32768])
    audio.write(tmp_path / "f.wav", x, 8000, encoding=audio.Encoding("wav", "float32", clip="none"))
    np.testing.assert_array_equal(sf.read(tmp_path / "f.wav", dtype="float32")[0], x[0])
    audio.write(tmp_path / "g.wav", x, 8000, encoding=audio.Encoding("wav", "float32"))
    assert np.abs(sf.read(tmp_path / "g.wav")[0]).max() == 1.0


@pytest.mark.parametrize("kwargs,match", [
    ({"format": "flac", "sample_format": "float32"}, "flac cannot store float32"),
    ({"format": "mp3", "sample_format": "int24"}, "lossy"),
    ({"format": "wav", "clip": "none"}, "needs float32"),
    ({"format": "wav", "clip": "rescale"}, "Unknown clip mode"),
    ({"format": "wav", "sample_format": "int8"}, "Unknown sample format"),
    ({"format": "aiff"}, "Unknown output format"),
])
def test_bad_encodings(kwargs, match):
    with pytest.raises(OptionError, match=match):
        audio.Encoding(**kwargs)


def test_output_dir_checks_create_nothing(tmp_path):
    audio.check_output_dir(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="it is a file, not a folder"):
        audio.check_output_dir(tmp_path / "afile")
    with pytest.raises(OutputError, match="afile is a file"):
        audio.check_output_dir(tmp_path / "afile" / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_output_dir_that_cannot_be_written(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(audio.tempfile, "mkstemp", refuse)  # root ignores chmod, so the refusal is simulated
    with pytest.raises(OutputError, match="permission denied"):
        audio.check_output_dir(tmp_path / "out")


def test_full_disk_mid_write_is_an_output_error_and_leaves_nothing(tmp_path, monkeypatch):
    w = audio.StemWriter(tmp_path / "s.wav", 8000, 1, audio.Encoding("wav"))
    w.write(np.zeros((1, 100), np.float32))

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", full)
    with pytest.raises(OutputError, match="the disk is full"):
        w.write(np.zeros((1, 100), np.float32))
    w.abort()
    assert list(tmp_path.iterdir()) == []
