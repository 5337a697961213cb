"""scripts/widen_checkpoint.py: a wider mask CNN that computes what the trained narrow one does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from flax import nnx

from stemsplit import checkpoint
from stemsplit.model import MaskCNN, model_config, receptive_field
from stemsplit.targets import get_target

from .conftest import load_script


@pytest.fixture(scope="module")
def widen_mod():
    return load_script("scripts/widen_checkpoint.py")


def _narrow(**overrides):
    """A small model with every branch the widening touches: a context layer, the local head, the decoder
    with its middle skip from conv4; non-zero biases, so that copied biases matter."""
    cfg = dataclasses.replace(model_config("tiny"), conv_dropout=0.0, dense_dropout=0.0, local_head=True,
                              decoder=3, context_layers=1, mid_skip="conv4", **overrides)
    spec = dataclasses.replace(get_target("vocals"), model=cfg)
    m = MaskCNN(cfg, rngs=nnx.Rngs(7))
    rng = np.random.default_rng(1)
    for _, p in nnx.iter_graph(m):
        if isinstance(p, nnx.Param) and p[...].ndim == 1 and p[...].shape[0] < 600:
            p[...] = rng.normal(0, 0.1, p[...].shape).astype(np.float32)
    m.eval()
    return m, spec


def test_widening_preserves_the_function_and_noise_moves_it_a_little(widen_mod):
    m, spec = _narrow()
    c = m.config.conv_channels
    x = np.random.default_rng(0).standard_normal((2, receptive_field(m.config) + 9, 513)).astype(np.float32)
    wide, wide_spec = widen_mod.widen(m, spec, c + 5, noise=0.0)
    wide.eval()
    assert wide_spec.model.conv_channels == c + 5 and wide.conv2.kernel[...].shape[-2:] == (c + 5, c + 5)
    np.testing.assert_allclose(np.asarray(wide(x)), np.asarray(m(x)), atol=1e-4)
    np.testing.assert_allclose(np.asarray(wide.sliding_window(x)), np.asarray(m.sliding_window(x)), atol=1e-4)
    noisy, _ = widen_mod.widen(m, spec, c + 5, noise=0.05)
    noisy.eval()
    d = np.abs(np.asarray(noisy(x)) - np.asarray(m(x)))
    assert 0 < d.max() < 0.5  # the copies learn apart, the function barely moves
    assert not np.array_equal(noisy.conv2.kernel[...][..., c:], wide.conv2.kernel[...][..., c:])
    with pytest.raises(SystemExit, match="narrower"):
        widen_mod.widen(m, spec, c - 1)


def test_cli_writes_an_ordinary_checkpoint_with_provenance(widen_mod, tmp_path, capsys):
    m, spec = _narrow()
    src = tmp_path / "narrow.npz"
    checkpoint.save_model(src, m, spec, training={"steps": 5})
    widen_mod.main([str(src), str(tmp_path / "wide.npz"), "--conv-channels", str(m.config.conv_channels * 2),
                    "--noise", "0"])
    assert "differ by at most" in capsys.readouterr().out
    wide, wide_spec, meta = checkpoint.load_model(tmp_path / "wide.npz")
    assert wide_spec.model.conv_channels == 2 * m.config.conv_channels
    assert meta["training"]["steps"] == 5
    assert meta["training"]["widened_from"]["path"] == "narrow.npz"
    assert meta["training"]["widened_from"]["conv_channels"] == m.config.conv_channels
    x = np.random.default_rng(2).standard_normal((1, receptive_field(m.config) + 4, 513)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(wide(x)), np.asarray(m(x)), atol=1e-4)
    with pytest.raises(SystemExit, match="no such checkpoint"):
        widen_mod.main([str(tmp_path / "absent.npz"), str(tmp_path / "w.npz"), "--conv-channels", "8"])
    with pytest.raises(SystemExit, match="new file"):
        widen_mod.main([str(src), str(src), "--conv-channels", "8"])
