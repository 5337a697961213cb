import numpy as np
import pytest

from stemsplit.data import dataset
from stemsplit.data import tracks as tracks_lib
from stemsplit.data.dataset import AugmentConfig, ExampleSampler
from stemsplit.data.tracks import split_tracks
from stemsplit.errors import DataError, DependencyError

from .conftest import make_musdb


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("musdb")
    make_musdb(r, tracks=3, extra_stems=("piano",))
    make_musdb(r, tracks=1, subset="test", seed=9)
    return r


def test_tracks_through_musdb_with_extra_stems(root):
    train, valid = split_tracks([root], is_wav=True)
    assert len(train) == 3 and len(valid) == 1 and valid[0].name == "song9-0"
    assert set(train[0].stems) == {"vocals", "drums", "bass", "other", "piano"}
    train, valid = split_tracks([root], is_wav=True, valid_names=["song0-1"])
    assert [t.name for t in valid] == ["song0-1"] and len(train) == 2


def test_musdb18_test_songs_are_never_trained_on(tmp_path):
    import shutil

    from stemsplit.data.tracks import musdb18_test_songs
    from stemsplit.errors import DataError

    assert len(musdb18_test_songs()) == 50 and "Timboz - Pony" in musdb18_test_songs()
    make_musdb(tmp_path, tracks=2, seconds=0.5)
    shutil.move(tmp_path / "train" / "song0-1", tmp_path / "train" / "Timboz - Pony")
    with pytest.raises(DataError, match="test songs.*Timboz - Pony"):
        split_tracks([tmp_path], is_wav=True)


def test_examples_shapes_labels_and_determinism(root):
    train, _ = split_tracks([root], is_wav=True)
    s = ExampleSampler(train, ["vocals"], frames=8)
    x, y = s.batch(seed=1, step=5, size=3)
    assert x.shape == (3, 8 + 24, 513) and y.shape == (3, 8, 513)
    assert set(np.unique(y)) <= {0.0, 1.0} and 0 < y.mean() < 1
    x2, y2 = s.batch(seed=1, step=5, size=3)
    np.testing.assert_array_equal(x, x2)
    x3, _ = s.batch(seed=1, step=6, size=3)
    assert not np.array_equal(x, x3)


def test_examples_carry_the_models_context(root):
    """A model with context layers (61 frames) gets 30 frames each side; the labels stay the centre frames,
    the same audio as with the article's 25-frame context."""
    train, _ = split_tracks([root], is_wav=True)
    narrow = ExampleSampler(train, ["vocals"], frames=8, augment=None)
    wide = ExampleSampler(train, ["vocals"], frames=8, augment=None, context=61)
    assert wide.half_context == 30 and wide.context == 8 + 60
    x, y = wide.batch(seed=1, step=0, size=2)
    assert x.shape == (2, 8 + 60, 513) and y.shape == (2, 8, 513)
    # the wider excerpt's centre frames are a song's frames as well: same shapes, labels in [0, 1]
    xn, yn = narrow.batch(seed=1, step=0, size=2)
    assert xn.shape == (2, 8 + 24, 513) and set(np.unique(y)) <= {0.0, 1.0}


def test_labels_follow_the_dominance_rule(root):
    """Without augmentation, labels equal the IBM of the channel-averaged spectra of the stems read directly."""
    from stemsplit import masks, spectral

    train, _ = split_tracks([root], is_wav=True)
    s = ExampleSampler(train[:1], ["piano"], frames=4, augment=None)
    rng = np.random.default_rng(0)
    x, y = s.example(rng)
    rng = np.random.default_rng(0)
    target, other, sr, _ = s._sources(rng)
    g = spectral.FRONTEND.grid(sr)
    st, sm = spectral.stft(target, g), spectral.stft(target + other, g)
    ref = masks.ideal_binary_mask(st[:, :513, 12:16], sm[:, :513, 12:16], channel_axis=0).T
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_allclose(x, spectral.features(sm, g), atol=1e-6)


def test_augmentation_changes_gains_and_can_skip_silence(root, tmp_path):
    train, _ = split_tracks([root], is_wav=True)
    plain = ExampleSampler(train, ["vocals"], frames=4, augment=None)
    aug = ExampleSampler(train, ["vocals"], frames=4, augment=AugmentConfig(remix=1.0))
    xa = np.stack([aug.example(np.random.default_rng(i))[0] for i in range(4)])
    xp = np.stack([plain.example(np.random.default_rng(i))[0] for i in range(4)])
    assert not np.allclose(xa, xp)
    silent = make_musdb(tmp_path / "s", tracks=2, silent=("vocals", "drums", "bass", "other", "piano"))
    tr, _ = split_tracks([silent], is_wav=True)
    # every excerpt is silent: the sampler gives up skipping after a bounded number of tries
    x, y = ExampleSampler(tr, ["vocals"], frames=4).example(np.random.default_rng(0))
    assert y.sum() == 0


def test_drop_target_teaches_absence_over_real_accompaniment(root):
    """drop_target leaves the target out of the mix: the example is the accompaniment alone, its labels all
    "absent", and it is kept although the target is silent; without it such examples come only from silence."""
    train, _ = split_tracks([root], is_wav=True)
    for task in ("mask", "activity"):
        always = ExampleSampler(train, ["vocals"], frames=8, task=task,
                                augment=AugmentConfig(remix=0.0, drop_target=1.0))
        x, y = always.batch(seed=4, step=0, size=4)
        assert y.sum() == 0 and x.std() > 0.1  # real accompaniment in the features, nothing to find
        never = ExampleSampler(train, ["vocals"], frames=8, task=task, augment=AugmentConfig(remix=0.0))
        assert never.batch(seed=4, step=0, size=4)[1].mean() > 0.05
    some = ExampleSampler(train, ["vocals"], frames=8, task="activity",
                          augment=AugmentConfig(remix=0.0, drop_target=0.5))
    empty = [some.batch(seed=5, step=i, size=8)[1].reshape(8, -1).sum(axis=1) == 0 for i in range(5)]
    assert 0.2 < np.mean(empty) < 0.8


def test_missing_stem_and_dataset_errors(root, tmp_path):
    train, _ = split_tracks([root], is_wav=True)
    with pytest.raises(DataError, match="kazoo"):
        ExampleSampler(train, ["kazoo"], frames=4)
    with pytest.raises(DataError, match="not found"):
        split_tracks([tmp_path / "nowhere"], is_wav=True)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="No training tracks"):
        split_tracks([tmp_path / "empty"], is_wav=True)


def test_missing_ffmpeg_is_clear(monkeypatch):
    monkeypatch.setattr(tracks_lib.shutil, "which", lambda name: None)
    with pytest.raises(DependencyError, match="ffmpeg"):
        tracks_lib.require_ffmpeg()


def test_tracks_with_only_a_mixture_beside_the_target(tmp_path):
    """A vocals + mixture pair (e.g. from `stemsplit align`): the rest is the mixture minus the vocals."""
    root = make_musdb(tmp_path, tracks=2)
    for folder in (root / "train").iterdir():
        for stem in ("drums", "bass", "other"):
            (folder / f"{stem}.wav").unlink()
    train, _ = split_tracks([root], is_wav=True)
    s = ExampleSampler(train, ["vocals"], frames=4, augment=None)
    target, rest, sr, _ = s._sources(np.random.default_rng(3))
    assert np.abs(rest).max() > 0.01 and np.abs(target).max() > 0.01
    aug = ExampleSampler(train, ["vocals"], frames=4, augment=AugmentConfig(remix=1.0))
    for i in range(5):
        x, y = aug.example(np.random.default_rng(i))
        assert np.all(np.isfinite(x))


def test_root_shares_set_how_often_tracks_are_drawn(tmp_path):
    a = make_musdb(tmp_path / "a", tracks=4)
    b = make_musdb(tmp_path / "b", tracks=1, seed=3)
    train, _ = split_tracks([a, b], is_wav=True, shares=[0.2, 0.8])
    # root a keeps its last track for validation: 3 training tracks share 0.2
    assert [round(t.weight, 4) for t in train] == [0.0667] * 3 + [0.8]
    s = ExampleSampler(train, ["vocals"], frames=4, augment=None)
    picks = [s.tracks[np.random.default_rng(i).choice(4, p=s.probabilities)].name for i in range(300)]
    assert 0.65 < sum(p.startswith("song3") for p in picks) / 300 < 0.95
    with pytest.raises(DataError, match="share"):
        split_tracks([a, b], is_wav=True, shares=[1.0])


def test_excluded_tracks_are_neither_trained_nor_validated_on(tmp_path):
    """--exclude-tracks: songs kept for one's own tests leave training and validation; the root's share is
    spread over the tracks it keeps."""
    a = make_musdb(tmp_path / "a", tracks=4)
    b = make_musdb(tmp_path / "b", tracks=1, seed=3)
    train, valid = split_tracks([a, b], is_wav=True, shares=[0.2, 0.8], exclude_names=["song0-1", "song0-3"])
    assert [t.name for t in train] == ["song0-0", "song0-2", "song3-0"] and valid == []
    assert [round(t.weight, 4) for t in train] == [0.1, 0.1, 0.8]
    train, valid = split_tracks([a], is_wav=True, valid_names=["song0-0"], exclude_names=["song0-1"])
    assert [t.name for t in train] == ["song0-2", "song0-3"] and [t.name for t in valid] == ["song0-0"]


def test_ratio_labels_agree_with_binary_labels(root):
    train, _ = split_tracks([root], is_wav=True)
    xb, yb = ExampleSampler(train, ["vocals"], frames=8, augment=None).batch(seed=2, step=0, size=2)
    xr, yr = ExampleSampler(train, ["vocals"], frames=8, augment=None, labels="ratio").batch(seed=2, step=0, size=2)
    np.testing.assert_array_equal(xb, xr)
    assert ((yr > 0) & (yr < 1)).mean() > 0.5  # graded, not 0/1
    np.testing.assert_array_equal(yr[..., :513] > 0.5, yb == 1)
    with pytest.raises(DataError, match="labels"):
        ExampleSampler(train, ["vocals"], frames=8, labels="soft")


def test_remix_draws_tracks_with_the_root_shares(tmp_path):
    """A root of many tracks cannot crowd a small one out of the remix: the rest track is drawn with the shares."""
    big, small = tmp_path / "big", tmp_path / "small"
    make_musdb(big, tracks=8, seconds=1.0, seed=1)
    make_musdb(small, tracks=1, seconds=1.0, seed=50)
    train, _ = split_tracks([big, small], is_wav=True, shares=[0.2, 0.8])
    s = ExampleSampler(train, ["vocals"], frames=4)
    rng = np.random.default_rng(0)
    draws = [s._draw(rng, 22050).name for _ in range(2000)]
    share_small = np.mean([d.startswith("song50") for d in draws])
    assert 0.75 < share_small < 0.85, share_small


@pytest.mark.parametrize("fn", [dataset.random_eq, dataset.random_reverb])
def test_eq_and_reverb_keep_length_and_change_the_sound(fn):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 20000)).astype(np.float32) * 0.1
    outs = [fn(a, 44100, np.random.default_rng(i)) for i in range(4)]
    for o in outs:
        assert o.shape == a.shape and o.dtype == np.float32 and np.all(np.isfinite(o))
        assert not np.allclose(o, a, atol=1e-3)
    assert not np.allclose(outs[0], outs[1])


@pytest.mark.parametrize("factor", [0.9, 1.12])
def test_read_at_speed_scales_pitch_and_time(factor):
    """A source played ``factor`` times faster: a 1 kHz tone reads at ``factor`` kHz, sample k is the source at
    ``offset + k * factor``, and reads near the start or past the end are padded, not cut."""
    sr, n = 44100, 8192
    t = np.arange(sr) / sr
    x = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 500 * t)]).astype(np.float32)

    def read(o, c):
        out = np.zeros((2, c), np.float32)
        a, b = max(o, 0), min(o + c, x.shape[1])
        if b > a:
            out[:, a - o:b - o] = x[:, a:b]
        return out

    for off in (0, 100, 12000):
        y = dataset.read_at_speed(read, off, n, factor)
        assert y.shape == (2, n) and y.dtype == np.float32
        peak = np.argmax(np.abs(np.fft.rfft(y[0] * np.hanning(n)))) * sr / n
        assert abs(peak - 1000 * factor) < 2 * sr / n, peak
        k = np.arange(1000, 6000)
        np.testing.assert_allclose(y[0, k], np.sin(2 * np.pi * 1000 * (off + k * factor) / sr), atol=0.08)
    tail = dataset.read_at_speed(read, sr - 2000, n, factor)  # past the source's end: silence, right length
    assert tail.shape == (2, n) and np.abs(tail[:, -1000:]).max() < 1e-3


def test_speed_keeps_one_track_aligned_and_examples_unchanged_without_it(root, tmp_path):
    """Without remix one speed plays the whole example, so its sources stay aligned (a stem and its exact
    negative still cancel); with remix each source may get its own; speed 0 makes no extra random draws."""
    import soundfile as sf

    train, _ = split_tracks([root], is_wav=True)
    base = ExampleSampler(train, ["vocals"], frames=8, augment=AugmentConfig())
    zero = ExampleSampler(train, ["vocals"], frames=8, augment=AugmentConfig(speed=0.0, speed_semitones=3.0))
    for a, b in zip(base.batch(seed=1, step=0, size=4), zero.batch(seed=1, step=0, size=4), strict=True):
        np.testing.assert_array_equal(a, b)
    song = tmp_path / "cancel" / "train" / "song"
    song.mkdir(parents=True)
    tone = np.repeat(0.1 * np.sin(2 * np.pi * 1000 * np.arange(44100 * 3) / 44100)[:, None], 2, 1)
    noise = (tone + np.random.default_rng(0).standard_normal((44100 * 3, 2)) * 0.01).astype(np.float32)
    for stem, a in (("vocals", noise), ("drums", -noise), ("bass", 0 * noise), ("other", 0 * noise),
                    ("mixture", 0 * noise)):
        sf.write(song / f"{stem}.wav", a, 44100, subtype="FLOAT")
    tracks, _ = split_tracks([tmp_path / "cancel"], is_wav=True)
    still = dict(gain_db=(0.0, 0.0), channel_swap=0.0)
    fast = ExampleSampler(tracks, ["vocals"], frames=8, augment=AugmentConfig(remix=0.0, speed=1.0, **still))
    pitches = []
    for seed in range(4):
        target, rest, sr, _ = fast._sources(np.random.default_rng(seed))
        assert np.abs(target).max() > 0.05 and np.abs(target + rest).max() < 1e-5  # aligned: still cancels
        pitches.append(np.argmax(np.abs(np.fft.rfft(target[0]))) * sr / target.shape[1])
    assert all(890 < p < 1125 for p in pitches) and np.ptp(pitches) > 20, pitches  # but sped up or down
    apart = ExampleSampler(tracks, ["vocals"], frames=8, augment=AugmentConfig(remix=1.0, speed=1.0, **still))
    target, rest, _, _ = apart._sources(np.random.default_rng(0))
    assert np.abs(target + rest).max() > 0.1  # drawn apart: no cancellation


def test_remix_sources_draws_each_accompaniment_stem_from_its_own_track(tmp_path):
    """With ``remix_sources`` every stem of the rest may come from its own track (open-unmix's random track mix);
    at 0 the rest comes from one track and no extra random draws change the examples."""
    make_musdb(tmp_path, tracks=6, seconds=1.0, seed=3)
    train, _ = split_tracks([tmp_path], is_wav=True)

    def rest_tracks(aug, n=60):
        s = ExampleSampler(train, ["vocals"], frames=4, augment=aug)
        calls = []
        real = s._read
        s._read = lambda t, source, o, c: calls.append((t.name, source)) or real(t, source, o, c)
        per_example = []
        for i in range(n):
            calls.clear()
            s._sources(np.random.default_rng(i))
            rest = [c for c in calls if c[1] != "vocals"]
            assert sorted(src for _, src in rest) == ["bass", "drums", "other"]
            per_example.append({name for name, _ in rest})
        return per_example

    assert all(len(names) == 1 for names in rest_tracks(AugmentConfig(remix=1.0)))
    mixed = rest_tracks(AugmentConfig(remix=1.0, remix_sources=1.0))
    assert np.mean([len(names) > 1 for names in mixed]) > 0.5
    base = ExampleSampler(train, ["vocals"], frames=4, augment=AugmentConfig())
    zero = ExampleSampler(train, ["vocals"], frames=4, augment=AugmentConfig(remix_sources=0.0))
    for a, b in zip(base.batch(seed=2, step=0, size=4), zero.batch(seed=2, step=0, size=4), strict=True):
        np.testing.assert_array_equal(a, b)
