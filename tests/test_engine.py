"""The engine's seams: one validator per option, the Wiener post-filter, the one definition of a track's mix,
the stream's output checks and the library helpers the command line calls."""

import numpy as np
import pytest
import soundfile as sf

from stemsplit import engine, masks, spectral
from stemsplit.cli import main
from stemsplit.data.tracks import find_tracks
from stemsplit.errors import DataError, OptionError, OutputError
from stemsplit.evaluate import calibration_tracks, quick_sdr
from stemsplit.separate import Separator
from stemsplit.stream import StreamOutput, StreamSeparator

from .conftest import make_musdb, tone_mix


def test_bucket_sizes():
    assert [engine.bucket(n, 520) for n in (1, 64, 65, 300, 520, 521)] == [64, 64, 128, 512, 520, 521]
    assert [engine.bucket(n, smallest=1) for n in (1, 3, 4, 5)] == [1, 4, 4, 8]


@pytest.mark.parametrize("mode", ["binary", "soft", "wiener"])
def test_check_mode_accepts_the_modes(mode):
    assert masks.check_mode(mode) == mode


def test_one_message_for_a_bad_mask_mode_everywhere(tiny_targets, tmp_path, capsys, monkeypatch):
    with pytest.raises(OptionError) as lib:
        Separator(("vocals",), mask="hard", targets_dir=[tiny_targets])
    # checked before any checkpoint is read
    monkeypatch.setattr("stemsplit.checkpoint.load_model", lambda p: pytest.fail("loaded before checking"))
    with pytest.raises(OptionError):
        Separator(("vocals",), mask="hard", targets_dir=[tiny_targets])
    monkeypatch.undo()
    wav = tmp_path / "s.wav"
    sf.write(wav, tone_mix(22050, 0.5).T, 22050)
    assert main(["separate", str(wav), "-o", str(tmp_path / "o"), "--mask", "hard", "--targets-dir",
                 str(tiny_targets), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"stemsplit: error: {lib.value}" and "binary, soft, wiener" in err
    assert not (tmp_path / "o" / "s").exists()


def test_wiener_separates_sources_one_mask_per_bin_cannot():
    """Two noises panned apart (one mostly left, one mostly right) that overlap in time: where both sound, one
    soft mask per bin (here the channel-averaged oracle ratio, the best such a mask can do) leaves each in
    both channels; the Wiener filter learns each source's stereo image from where it sounds alone and splits
    the overlap by it."""
    sr, n = 22050, 22050 * 2
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    a = rng.standard_normal(n) * 0.1 * (t < 1.2)
    b = rng.standard_normal(n) * 0.1 * (t > 0.8)
    left = np.stack([a, 0.1 * a]).astype(np.float32)
    right = np.stack([0.1 * b, b]).astype(np.float32)
    g = spectral.FRONTEND.grid(sr)
    spec = spectral.signal_stft(left + right, g)
    m = masks.magnitude_ratio_mask(spectral.signal_stft(left, g), spec, channel_axis=0)[None]
    frames = spec.shape[-1]
    est = masks.wiener(m, 1 - m[0], spec)
    assert est.shape == (1,) + spec.shape and est.dtype == np.complex64
    soft = spectral.overlap_add(m[0][None] * spec, g, 0, frames, 0, n)
    wien = spectral.overlap_add(est[0], g, 0, frames, 0, n)
    assert quick_sdr(left, wien) > quick_sdr(left, soft) + 6.0, (quick_sdr(left, wien), quick_sdr(left, soft))
    # no EM round keeps the soft-mask estimate
    same = masks.wiener(m, 1 - m[0], spec, iterations=0)
    assert np.allclose(same[0], m[0][None] * spec, atol=1e-6)


def test_wiener_mode_stems_add_up_and_differ_from_soft(tiny_targets):
    x = tone_mix(22050, 1.5, 2)
    soft = Separator(("vocals", "drums"), mask="soft", targets_dir=[tiny_targets]).separate(x, 22050)
    wien = Separator(("vocals", "drums"), mask="wiener", targets_dir=[tiny_targets]).separate(x, 22050)
    assert list(wien) == ["vocals", "drums", "residual"]
    assert np.allclose(sum(wien.values()), x, atol=1e-5)
    assert all(np.isfinite(v).all() for v in wien.values())
    assert not np.allclose(wien["vocals"], soft["vocals"], atol=1e-4)


def test_stream_refuses_the_wiener_filter(tiny_targets):
    with pytest.raises(OptionError, match="Wiener"):
        StreamSeparator(("vocals",), sr=22050, channels=2, mask="wiener", targets_dir=[tiny_targets])


def test_track_mix_is_the_mixture_else_the_sum_of_its_parts(tmp_path):
    root = make_musdb(tmp_path / "db", tracks=1, seconds=0.5)
    t = find_tracks(root, is_wav=True)[0]
    stems = sum(t.read(s, 0, t.length) for s in ("vocals", "drums", "bass", "other"))
    assert np.allclose(t.mix(), stems, atol=1e-4) and t.channels == 2
    # a karaoke pair without a mixture file: the mix is vocals + accompaniment, not the vocals alone
    k = tmp_path / "k" / "train" / "pair"
    k.mkdir(parents=True)
    v, acc = tone_mix(22050, 0.5, 1, seed=1)[0], tone_mix(22050, 0.5, 1, seed=2)[0]
    sf.write(k / "vocals.wav", v, 22050, subtype="FLOAT")
    sf.write(k / "accompaniment.wav", acc, 22050, subtype="FLOAT")
    pair = find_tracks(tmp_path / "k", is_wav=True)[0]
    assert pair.parts == ["accompaniment", "vocals"] and pair.channels == 1
    assert np.allclose(pair.mix(100, 1000)[0], (v + acc)[100:1100], atol=1e-4)


def test_stream_output_checks_before_any_model_loads(tmp_path):
    with pytest.raises(OptionError, match="raw PCM only"):
        StreamOutput("-", fmt="wav", sr=22050, channels=1)
    with pytest.raises(OptionError, match="apply to wav and flac"):
        StreamOutput(str(tmp_path / "a.raw"), fmt="f32le", sample_format="float32", sr=22050, channels=1)
    with pytest.raises(OutputError, match="it is a folder"):
        StreamOutput(str(tmp_path), sr=22050, channels=1)
    with pytest.raises(OptionError, match="Unknown stream format"):
        StreamOutput(str(tmp_path / "a.ogg"), fmt="ogg", sr=22050, channels=1)
    assert StreamOutput(str(tmp_path / "a.flac"), fmt="flac", sr=22050, channels=1).encoding.format == "flac"


def test_calibration_tracks_spread_and_names(tmp_path):
    root = make_musdb(tmp_path / "db", tracks=5, seconds=0.3)
    names = [t.name for t in calibration_tracks([root], max_tracks=3)]
    assert names == ["song0-0", "song0-2", "song0-4"]
    assert [t.name for t in calibration_tracks([root], names=["song0-1"])] == ["song0-1"]
    with pytest.raises(DataError, match="No tracks to calibrate on named nope"):
        calibration_tracks([root], names=["nope"])


def test_cli_separates_with_the_wiener_filter(tiny_targets, tmp_path, capsys):
    wav = tmp_path / "song.wav"
    x = tone_mix(22050, 1.0, 2)
    sf.write(wav, x.T, 22050, subtype="FLOAT")
    assert main(["separate", str(wav), "-o", str(tmp_path / "out"), "--mask", "wiener", "--float32",
                 "--targets-dir", str(tiny_targets), "-q"]) == 0
    v, _ = sf.read(tmp_path / "out" / "song" / "vocals.wav", always_2d=True)
    a, _ = sf.read(tmp_path / "out" / "song" / "accompaniment.wav", always_2d=True)
    assert np.allclose(v.T + a.T, x, atol=1e-5)
