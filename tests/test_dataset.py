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
