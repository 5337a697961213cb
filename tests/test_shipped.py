"""The shipped checkpoints: they load safely, are small, carry their calibration, and really separate the bundled
example (re-rendered here from its seed, so its true stems are known)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemsplit import checkpoint
from stemsplit.evaluate import quick_sdr
from stemsplit.separate import Separator
from stemsplit.targets import get_target

from .conftest import require_synth_tools

ROOT = Path(__file__).resolve().parent.parent
FOUR = ("vocals", "drums", "bass", "other")
#: measured with the shipped checkpoints: vocals +8.6, drums +6.0, bass +9.5, other +8.5 dB over the mix
MIN_GAIN_DB = dict.fromkeys(FOUR, 4.0)


@pytest.mark.parametrize("name", FOUR + ("vocal-activity",))
def test_checkpoint_is_shipped_small_and_calibrated(name):
    path = get_target(name).find_checkpoint()
    assert path is not None and path.stat().st_size < 5 * 2 ** 20
    model, spec, meta = checkpoint.load_model(path)
    t = meta["training"]
    assert t["step"] > 0 and t["wall_time_s"] > 0 and t["data"]
    if spec.task == "mask":
        assert 0.0 < t["threshold"] < 1.0 and t["calibration"]["tracks"]


@pytest.fixture(scope="module")
def example():
    require_synth_tools()  # the true stems are rendered again from the example's seed
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "scripts" / "make_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    stems, sr = mod.render_example()
    mix, rate = sf.read(ROOT / "examples" / "example.flac", always_2d=True, dtype="float32")
    assert rate == sr and np.abs(sum(stems.values()).T - mix).max() < 1e-3  # the file is this render
    return stems, mix.T, sr


@pytest.mark.slow
def test_shipped_models_separate_the_example(example):
    stems, mix, sr = example
    out = Separator(FOUR).separate(mix, sr)
    np.testing.assert_allclose(sum(out.values()), mix, atol=1e-4)
    gains = {k: quick_sdr(stems[k], out[k]) - quick_sdr(stems[k], mix) for k in FOUR}
    for k in FOUR:  # every stem is clearly closer to the truth than the mix is
        assert gains[k] > MIN_GAIN_DB[k], gains
