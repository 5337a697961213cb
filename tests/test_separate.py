import numpy as np
import pytest
import soundfile as sf

import stemsplit
from stemsplit.errors import InvalidAudioError, MissingCheckpointError, OptionError, SilentAudioError
from stemsplit.separate import Separator
from stemsplit.targets import get_target

from .conftest import tone_mix

FOUR = ("vocals", "drums", "bass", "other")


@pytest.fixture(scope="module")
def four(tiny_targets):
    return Separator(FOUR, targets_dir=[tiny_targets])


@pytest.mark.parametrize("sr,channels", [(22050, 2), (44100, 1), (48000, 2), (8000, 1), (96000, 6), (11025, 2)])
def test_stems_shape_rate_and_sum(four, sr, channels):
    x = tone_mix(sr, 1.3, channels)
    out = four.separate(x, sr)
    assert list(out) == list(FOUR) + ["residual"]
    for v in out.values():
        assert v.shape == x.shape and v.dtype == np.float32
    np.testing.assert_allclose(sum(out.values()), x, atol=1e-5)


def test_mono_in_mono_out(four):
    x = tone_mix(22050, 1.0, 1)[0]
    out = four.separate(x, 22050)
    assert all(v.shape == x.shape for v in out.values())


@pytest.mark.parametrize("mask", ["binary", "soft"])
def test_no_residual_still_adds_up_for_several_targets(tiny_targets, mask):
    x = tone_mix(44100, 1.0, 2)
    out = Separator(FOUR, residual=False, mask=mask, targets_dir=[tiny_targets]).separate(x, 44100)
    assert list(out) == list(FOUR)
    np.testing.assert_allclose(sum(out.values()), x, atol=1e-5)


def test_binary_masks_partition_the_spectrum(four):
    """Each stem is the mix with a 0/1 mask: on the STFT grid, stems never share a bin."""
    from stemsplit import spectral

    sr = 44100
    x = tone_mix(sr, 1.0, 1)
    g = spectral.FRONTEND.grid(sr)
    spec_x = spectral.signal_stft(x, g)
    scores = four.scores(np.pad(spectral.features(spec_x, g), ((12, 12), (0, 0))))
    m, r = four.stem_masks(scores, g.n_bins)
    assert set(np.unique(m)) <= {0.0, 1.0}
    np.testing.assert_array_equal(m.sum(0) + r, 1.0)
    # the vocals stem equals the inverse STFT of the masked mix
    out = four.separate(x, sr)
    ref = spectral.istft(m[0][None] * spec_x, g, x.shape[-1])
    np.testing.assert_allclose(out["vocals"], ref, atol=1e-5)


def test_blocks_equal_whole(tiny_targets):
    x = tone_mix(44100, 4.0, 2, seed=3)
    small = Separator(FOUR, targets_dir=[tiny_targets], block_frames=64).separate(x, 44100)
    big = Separator(FOUR, targets_dir=[tiny_targets], block_frames=8192).separate(x, 44100)
    for k in small:
        np.testing.assert_allclose(small[k], big[k], atol=1e-6)


def test_soft_masks(tiny_targets):
    x = tone_mix(22050, 1.0, 2)
    out = Separator(FOUR, mask="soft", targets_dir=[tiny_targets]).separate(x, 22050)
    np.testing.assert_allclose(sum(out.values()), x, atol=1e-5)


def test_public_api(tiny_targets, monkeypatch):
    monkeypatch.setenv("STEMSPLIT_TARGETS", str(tiny_targets))
    x = tone_mix(22050, 1.0, 2)
    stems = stemsplit.separate(x, 22050, targets=["vocals", "drums"])
    assert sorted(stems) == ["drums", "residual", "vocals"]
    v, acc = stemsplit.isolate_vocals(x, 22050)
    np.testing.assert_allclose(v + acc, x, atol=1e-5)
    names = {r["name"]: r for r in stemsplit.list_targets()}
    assert names["vocals"]["checkpoint"].endswith("vocals.npz")


def test_progress_reports_every_block(tiny_targets):
    calls = []
    x = tone_mix(22050, 3.0, 1)
    Separator(["vocals"], targets_dir=[tiny_targets], block_frames=64).separate(
        x, 22050, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (x.shape[-1], x.shape[-1]) and len(calls) == -(-x.shape[-1] // (64 * 256))


@pytest.mark.parametrize("audio,sr,error,match", [
    (np.zeros((2, 0), np.float32), 22050, InvalidAudioError, "empty"),
    (np.zeros((2, 1000), np.float32), 22050, SilentAudioError, "silent"),
    (np.array([[0.1, np.nan, 0.2] * 100]), 22050, InvalidAudioError, "NaN"),
    (np.array([[0.1, np.inf, 0.2] * 100]), 22050, InvalidAudioError, "infinite"),
    (np.ones((2, 1000), np.float32), 4000, InvalidAudioError, "sample rate"),
    (np.ones((2, 1000), np.float32), 22050.5, InvalidAudioError, "whole number"),
    (np.ones((2, 3, 100), np.float32), 22050, InvalidAudioError, "shaped"),
    (np.ones((1000, 2), np.float32), 22050, InvalidAudioError, "channels"),
    (np.array(["a", "b"]), 22050, InvalidAudioError, "numeric"),
])
def test_bad_audio(four, audio, sr, error, match):
    with pytest.raises(error, match=match):
        four.separate(audio, sr)


def test_bad_options(tiny_targets):
    with pytest.raises(OptionError):
        Separator(["vocals"], mask="fuzzy", targets_dir=[tiny_targets])
    with pytest.raises(OptionError):
        Separator(["vocals", "vocals"], targets_dir=[tiny_targets])
    with pytest.raises(OptionError):
        Separator(["vocals"], block_frames=3, targets_dir=[tiny_targets])


def test_missing_checkpoint_says_how_to_train(tmp_path):
    (tmp_path / "piano.toml").write_text('name = "piano"\nstems = ["piano"]\n')
    assert get_target("piano", [tmp_path]).find_checkpoint() is None
    with pytest.raises(MissingCheckpointError, match="stemsplit train --target piano"):
        Separator(["piano"], targets_dir=[tmp_path])


def test_separate_file_streams_and_writes_atomically(four, tmp_path):
    x = tone_mix(44100, 2.5, 2)
    src = tmp_path / "My Song!.flac"
    sf.write(src, x.T, 44100, subtype="PCM_24")
    written = four.separate_file(src, tmp_path / "out", fmt="wav")
    assert sorted(p.name for p in written.values()) == sorted(f"{n}.wav" for n in four.stem_names)
    assert written["vocals"].parent.name == "My_Song"
    total = sum(sf.read(p, always_2d=True)[0] for p in written.values())
    ref, _ = sf.read(src, always_2d=True)
    np.testing.assert_allclose(total, ref, atol=1e-5)
    assert not list((tmp_path / "out").rglob("*.tmp"))
    # same result as separating in memory
    mem = four.separate(ref.T.astype(np.float32), 44100)
    np.testing.assert_allclose(sf.read(written["drums"])[0].T, mem["drums"], atol=1e-6)


def test_separate_file_leaves_nothing_on_failure(four, tmp_path):
    x = tone_mix(22050, 3.0, 1)
    x[0, 50000] = np.nan
    src = tmp_path / "bad.wav"
    sf.write(src, x.T, 22050, subtype="FLOAT")
    with pytest.raises(InvalidAudioError, match="NaN"):
        four.separate_file(src, tmp_path / "out")
    assert not (tmp_path / "out" / "bad").exists() or not any((tmp_path / "out" / "bad").iterdir())
    silent = tmp_path / "quiet.wav"
    sf.write(silent, np.zeros(30000), 22050)
    with pytest.raises(SilentAudioError):
        four.separate_file(silent, tmp_path / "out")
    assert not any((tmp_path / "out").rglob("*.wav"))
