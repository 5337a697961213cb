"""Tests for the procedural corpus renderer (stemsplit.data.synth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemsplit.data import synth
from stemsplit.data.synth import STEMS, SynthConfig, SynthError, available, render_dataset, render_track

from .conftest import require_synth_tools


@pytest.fixture(scope="module", autouse=True)
def synth_tools() -> None:
    """Skip without the renderer's packages; under CI (env var CI set) their absence is a failure."""
    require_synth_tools()


# every test here renders audio or needs the renderer's packages
pytestmark = pytest.mark.slow

SR = 44100
SECONDS = 4.0
TRACKS = 3
SEED = 0  # with these settings its three tracks hold every stem, vocals included
CONFIG = SynthConfig(real_data_root=None)


def _read(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for name in ("mixture", *STEMS):
        data, rate = sf.read(folder / f"{name}.wav", dtype="float32", always_2d=True)
        assert rate == SR
        out[name] = data.T
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("synth")
    calls: list[tuple[int, int]] = []
    folders = render_dataset(root, tracks=TRACKS, seconds=SECONDS, seed=SEED, config=CONFIG,
                             progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (TRACKS, TRACKS)
    return root, folders


def test_layout_rate_and_shape(dataset: tuple[Path, list[Path]]) -> None:
    root, folders = dataset
    assert len(folders) == TRACKS
    assert {f.parent.name for f in folders} == {"train", "test"}
    assert all(f.parent.parent == root for f in folders)
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.wav" for n in ("mixture", *STEMS))
        for name, x in _read(folder).items():
            assert x.shape == (2, int(SECONDS * SR)), name
            assert np.isfinite(x).all()


def test_mixture_is_sum_of_stems_and_clip_free(dataset: tuple[Path, list[Path]]) -> None:
    for folder in dataset[1]:
        a = _read(folder)
        total = a["vocals"] + a["drums"] + a["bass"] + a["other"]
        np.testing.assert_allclose(a["mixture"], total, atol=1e-6)
        assert 0.01 < np.abs(a["mixture"]).max() < 0.99


def test_every_stem_sounds_in_some_track(dataset: tuple[Path, list[Path]]) -> None:
    tracks = [_read(f) for f in dataset[1]]
    for name in STEMS:
        assert max(float(np.sqrt(np.mean(t[name] ** 2))) for t in tracks) > 1e-3, name


def _frame_rms(x: np.ndarray, hop: int = SR // 10) -> np.ndarray:
    m = x.mean(axis=0)
    return np.sqrt(np.mean(m[: len(m) // hop * hop].reshape(-1, hop) ** 2, axis=1))


def test_vocals_have_silent_stretches(dataset: tuple[Path, list[Path]]) -> None:
    rms = np.concatenate([_frame_rms(_read(f)["vocals"]) for f in dataset[1]])
    assert rms.max() > 1e-3
    assert (rms < 1e-2 * rms.max()).any()  # 40 dB below the loudest sung frame


def test_song_has_sections_without_vocals() -> None:
    # a song is laid out in sections (intro/verse/chorus/break...); the vocal stem is silent in some of them
    stems = render_track(0, SynthConfig(seconds=20.0, real_data_root=None, vocal_free_probability=0.0))
    rms = _frame_rms(stems["vocals"])
    quiet = rms < 1e-2 * rms.max()
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(int), [0]]))))[::2]
    assert (rms > 0.1 * rms.max()).mean() > 0.2
    assert runs.max() >= 10, "no vocal-free stretch of a second or more"


def test_same_seed_writes_identical_files_with_workers(dataset: tuple[Path, list[Path]], tmp_path: Path) -> None:
    again = render_dataset(tmp_path, tracks=TRACKS, seconds=SECONDS, seed=SEED, config=CONFIG, workers=2)
    for a, b in zip(dataset[1], again, strict=True):
        assert a.relative_to(dataset[0]) == b.relative_to(tmp_path)
        for name in ("mixture", *STEMS):
            assert (a / f"{name}.wav").read_bytes() == (b / f"{name}.wav").read_bytes(), (a.name, name)


def test_render_track_deterministic_and_seed_dependent() -> None:
    cfg = SynthConfig(seconds=2.0, real_data_root=None)
    first = render_track(11, cfg)
    second = render_track(11, cfg)
    other = render_track(12, cfg)
    assert set(first) == set(STEMS)
    for name in STEMS:
        assert first[name].dtype == np.float32 and first[name].shape == (2, 2 * SR)
        np.testing.assert_array_equal(first[name], second[name])
    assert any(not np.array_equal(first[n], other[n]) for n in STEMS)


def test_vocals_reach_above_8khz() -> None:
    # festival voices are 16 kHz: breaths, sibilance and the exciter must give vocals a real top octave
    for seed in range(40):
        stems = render_track(seed, SynthConfig(seconds=3.0, real_data_root=None, vocal_free_probability=0.0))
        v = stems["vocals"].mean(axis=0)
        if np.sqrt(np.mean(v**2)) > 1e-3:
            break
    else:
        pytest.fail("no track with vocals among 40 seeds")
    power = np.abs(np.fft.rfft(v)) ** 2
    f = np.fft.rfftfreq(len(v), 1 / SR)
    share = power[f > 8000].sum() / power.sum()
    assert share > 10 ** (-45 / 10), f"vocal energy above 8 kHz is only {10 * np.log10(share):.1f} dB"


def test_missing_soundfont_is_a_clear_runtime_error(tmp_path: Path) -> None:
    cfg = SynthConfig(seconds=1.0, real_data_root=None, soundfonts=(str(tmp_path / "none.sf2"),))
    missing = available(cfg)
    assert any("fluid-soundfont-gm" in m for m in missing)
    with pytest.raises(RuntimeError, match="fluid-soundfont-gm"):
        render_track(0, cfg)
    assert issubclass(SynthError, RuntimeError)


def test_bad_options_rejected() -> None:
    with pytest.raises(synth.OptionError):
        SynthConfig(test_fraction=1.5)
    with pytest.raises(synth.OptionError):
        render_dataset("unused", tracks=0, seconds=1.0, seed=0)


@pytest.mark.skipif(not Path("/work/shared/data/real-material").is_dir(), reason="no real material here")
def test_real_material_mixes_in_by_path() -> None:
    cfg = SynthConfig(seconds=3.0, real_data_root="/work/shared/data", vocal_free_probability=0.0,
                      real_vocal_probability=1.0, real_other_probability=1.0)
    stems = render_track(3, cfg)
    assert all(np.isfinite(x).all() for x in stems.values())
    np.testing.assert_array_equal(stems["vocals"], render_track(3, cfg)["vocals"])
