import warnings

import numpy as np
import pytest
import soundfile as sf

import stemsplit
from stemsplit import spectral
from stemsplit.errors import (
    ClippingWarning,
    InvalidAudioError,
    MissingCheckpointError,
    OptionError,
    OutputError,
    SilentAudioWarning,
)
from stemsplit.separate import Separator
from stemsplit.targets import get_target

from .conftest import tone_mix

FOUR = ("vocals", "drums", "bass", "other")


@pytest.fixture(scope="module")
def four(tiny_targets):
    return Separator(FOUR, targets_dir=[tiny_targets])


@pytest.mark.parametrize("sr,channels", [(22050, 2), (44100, 1), (48000, 2), (8000, 1), (96000, 6), (11025, 2)])
def test_stems_are_the_masked_mix_at_any_rate_and_channel_count(four, sr, channels):
    """With a residual the stems add up to the mix by construction; so each stem is compared with its mask
    applied directly to the whole signal's STFT on the input's own grid, and the masks with the dominance rule."""
    x = tone_mix(sr, 1.3, channels)
    out = four.separate(x, sr)
    assert list(out) == list(FOUR) + ["residual"]
    for v in out.values():
        assert v.shape == x.shape and v.dtype == np.float32
    g = spectral.FRONTEND.grid(sr)
    spec_x = spectral.signal_stft(x, g)
    m, r = four.stem_masks(four.signal_scores(spectral.features(spec_x, g)), g.n_bins)
    assert m.shape == (len(FOUR), g.n_bins, spec_x.shape[-1])
    np.testing.assert_array_equal(m.sum(0) + r, 1.0)
    for k, name in enumerate(FOUR):
        np.testing.assert_allclose(out[name], spectral.istft(m[k][None] * spec_x, g, x.shape[-1]), atol=1e-5,
                                   err_msg=name)
    np.testing.assert_allclose(out["residual"], spectral.istft(r[None] * spec_x, g, x.shape[-1]), atol=1e-5)
    assert all(np.sqrt(np.mean(out[n] ** 2)) > 1e-4 for n in FOUR[:2])  # really split: not all in one stem


def test_contested_bins_follow_the_rule(four, tiny_targets):
    """rule="priority" gives a bin several targets claim to the highest priority, rule="score" to the highest
    score: same claims, different owners, and both add up to the mix. The default ("lead") gives the vocals
    whatever they claim, so the vocals stem is the same with or without the other targets."""
    x = tone_mix(22050, 1.3, 2)
    by_score = Separator(FOUR, targets_dir=[tiny_targets], rule="score")
    by_priority = Separator(FOUR, targets_dir=[tiny_targets], rule="priority")
    g = spectral.FRONTEND.grid(22050)
    scores = four.signal_scores(spectral.features(spectral.signal_stft(x, g), g))
    mp, rp = by_priority.stem_masks(scores, g.n_bins)
    ms, rs = by_score.stem_masks(scores, g.n_bins)
    np.testing.assert_array_equal(rp, rs)  # the same bins are claimed
    assert not np.array_equal(mp, ms)
    claims = scores >= np.array([s.threshold for s in four.specs])[:, None, None]
    ranked = np.argsort([-s.priority for s in four.specs])
    first = ranked[np.argmax(claims[ranked], 0)]  # the highest-priority claimant of each bin
    np.testing.assert_array_equal(np.argmax(mp, 0)[rp == 0], first[rp == 0])
    outs = [s.separate(x, 22050) for s in (four, by_score, by_priority)]
    for out in outs:
        np.testing.assert_allclose(sum(out.values()), x, atol=1e-5)
    alone = Separator(["vocals"], targets_dir=[tiny_targets]).separate(x, 22050)["vocals"]
    np.testing.assert_array_equal(outs[0]["vocals"], alone)
    assert not np.allclose(outs[1]["vocals"], alone)


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


@pytest.mark.slow  # (test_file_of_many_blocks_equals_in_memory_separation covers blocks in the quick loop)
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
    with pytest.raises(OptionError, match="rule"):
        Separator(["vocals"], rule="loudest", targets_dir=[tiny_targets])


def test_missing_checkpoint_says_how_to_train(tmp_path):
    (tmp_path / "piano.toml").write_text('name = "piano"\nstems = ["piano"]\n')
    assert get_target("piano", [tmp_path]).find_checkpoint() is None
    with pytest.raises(MissingCheckpointError, match="stemsplit train --target piano"):
        Separator(["piano"], targets_dir=[tmp_path])


def test_separate_file_streams_and_writes_atomically(four, tmp_path):
    x = tone_mix(44100, 2.5, 2)
    src = tmp_path / "My Song!.flac"
    sf.write(src, x.T, 44100, subtype="PCM_24")
    written = four.separate_file(src, tmp_path / "out", fmt="wav", sample_format="float32", clip="none")
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
    assert not (tmp_path / "out").exists()  # not even the folders made for it


def test_silence_gives_silent_stems_with_a_warning_and_no_model_work(four, tmp_path, monkeypatch):
    calls = []
    real = four.runner.dispatch
    monkeypatch.setattr(four.runner, "dispatch", lambda *a: calls.append(1) or real(*a))
    with pytest.warns(SilentAudioWarning, match="silent"):
        out = four.separate(np.zeros((2, 30000), np.float32), 22050)
    assert sorted(out) == sorted(four.stem_names) and all(v.shape == (2, 30000) and not v.any()
                                                          for v in out.values())
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(30000), 22050)
    with pytest.warns(SilentAudioWarning, match="quiet.wav is silent"):
        written = four.separate_file(quiet, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "quiet").iterdir()) == sorted(f"{n}.wav" for n in
                                                                                  four.stem_names)
    assert all(not sf.read(p)[0].any() for p in written.values()) and written.shares()["vocals"] == 0.0
    assert calls == []  # nothing but zeros to mask: the models never ran
    with warnings.catch_warnings():
        warnings.simplefilter("error", SilentAudioWarning)  # a signal with some sound does not warn
        x = np.zeros((2, 30000), np.float32)
        x[:, 20000] = 0.5
        four.separate(x, 22050)
    assert calls


def test_file_of_many_blocks_equals_in_memory_separation(tiny_targets, tmp_path):
    """The file path reads, separates and writes block by block (6 blocks here); the result is the
    whole-signal separation."""
    x = tone_mix(44100, 4.0, 2, seed=7)
    src = tmp_path / "long.wav"
    sf.write(src, x.T, 44100, subtype="FLOAT")
    calls = []
    small = Separator(FOUR, targets_dir=[tiny_targets], block_frames=64)
    written = small.separate_file(src, tmp_path / "out", sample_format="float32", clip="none",
                                  progress=lambda d, t: calls.append(d))
    assert len(calls) == -(-x.shape[1] // (64 * spectral.FRONTEND.grid(44100).hop)) == 6
    whole = Separator(FOUR, targets_dir=[tiny_targets], block_frames=8192).separate(x, 44100)
    for name, p in written.items():
        got = sf.read(p, dtype="float32", always_2d=True)[0].T
        np.testing.assert_allclose(got, whole[name], atol=1e-6, err_msg=name)
        np.testing.assert_allclose(written.energy[name], np.sum(whole[name].astype(np.float64) ** 2), rtol=1e-4)
    assert abs(sum(written.shares().values()) - 1) < 1e-9


@pytest.mark.parametrize("sample_format,step", [(None, 2.0 ** -15), ("int24", 2.0 ** -23)])
def test_pcm_stems_add_up_to_the_mix_within_the_quantisation_step(four, tmp_path, sample_format, step):
    x = tone_mix(44100, 2.0, 2, seed=2)
    src = tmp_path / "song.wav"
    sf.write(src, x.T, 44100, subtype="PCM_16")
    written = four.separate_file(src, tmp_path / "out", sample_format=sample_format)
    stems = {k: sf.read(p, dtype="float64", always_2d=True)[0].T for k, p in written.items()}
    mix = sf.read(src, dtype="float64", always_2d=True)[0].T
    for v in stems.values():  # on the grid: integer steps, rounded, not float
        np.testing.assert_allclose(v / step, np.round(v / step), atol=1e-6)
    err = np.abs(sum(stems.values()) - mix).max()
    assert err <= len(stems) * step / 2 + 1e-7, err / step  # each stem rounded by at most half a step
    assert sf.info(written["vocals"]).subtype == ("PCM_16" if sample_format is None else "PCM_24")


def test_stems_beyond_full_scale_are_clamped_with_a_warning(four, tmp_path):
    x = 1.8 * tone_mix(22050, 1.5, 1) / np.abs(tone_mix(22050, 1.5, 1)).max()
    src = tmp_path / "loud.wav"
    sf.write(src, x.T, 22050, subtype="FLOAT")  # a float master past full scale
    with pytest.warns(ClippingWarning, match=r"clamped \(peak 1\.\d\d = \+\d\.\d dBFS in \w+\)"):
        clamped = four.separate_file(src, tmp_path / "a")
    assert max(np.abs(sf.read(p)[0]).max() for p in clamped.values()) <= 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClippingWarning)
        kept = four.separate_file(src, tmp_path / "b", sample_format="float32", clip="none")
    total = sum(sf.read(p, dtype="float32")[0] for p in kept.values())
    np.testing.assert_allclose(total, x[0], atol=1e-5)
    assert np.abs(sf.read(kept["residual"])[0]).max() > 1.0 or np.abs(total).max() > 1.0


def test_output_problems_are_found_before_reading(four, tmp_path, monkeypatch):
    src = tmp_path / "song.wav"
    sf.write(src, tone_mix(22050, 1.0, 1).T, 22050)
    monkeypatch.setattr("stemsplit.audio.open_reader", lambda p: pytest.fail("read before checking the output"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "song").write_text("in the way")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        four.separate_file(src, tmp_path / "out")
    (tmp_path / "out2" / "song" / "vocals.wav").mkdir(parents=True)
    with pytest.raises(OutputError, match="a folder of that name is in the way"):
        four.separate_file(src, tmp_path / "out2")
    with pytest.raises(OptionError, match="needs float32"):
        four.separate_file(src, tmp_path / "out3", clip="none")
    assert not (tmp_path / "out3").exists()
