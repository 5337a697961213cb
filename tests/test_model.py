import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stemsplit import model as model_lib
from stemsplit import spectral
from stemsplit.errors import TargetError
from stemsplit.model import MaskCNN, model_config


def _model(preset="article", seed=0, **kw):
    m = MaskCNN(model_config(preset, **kw), rngs=nnx.Rngs(seed))
    m.eval()
    return m


def test_article_parameter_count_is_pinned():
    m = _model()
    n = sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param)))
    # 2x513 input affine + 4 convs (160 + 3*2320) + Dense 912->64 + Dense 64->513
    assert n == 2 * 513 + 160 + 3 * 2320 + (912 * 64 + 64) + (64 * 513 + 513) == 99923


_SLOW = pytest.mark.slow


@pytest.mark.slow
@pytest.mark.parametrize("preset,outputs", [("article", 513), ("small", 513), ("article", 1),
                                            ("article-local", 513), ("small-local", 513),
                                            ("article-dec", 513), ("small-dec", 513), ("small-dec-h", 513),
                                            ("small-dec-ctx", 513), ("article-unet", 513)])
def test_fully_convolutional_equals_sliding_window(preset, outputs):
    m = _model(preset, seed=3, outputs=outputs)
    # random biases too, so every layer matters
    state = nnx.state(m, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(7), 32))
    nnx.update(m, jax.tree.map(lambda a: a + 0.1 * jax.random.normal(next(keys), a.shape), state))
    rf = model_lib.receptive_field(m.config)
    x = jax.random.normal(jax.random.key(1), (2, 40 + rf - 1, 513))
    fc = m(x)
    ref = m.sliding_window(x)
    assert fc.shape == ref.shape == (2, 40, outputs)
    # float32 rounding, which grows with the outputs' size (logits up to ~5 here) and differs between CPUs
    tol = 1e-5 * max(1.0, float(jnp.abs(ref).max()))
    assert float(jnp.abs(fc - ref).max()) < tol
    # a single frame's window alone gives the same output as inside the long pass
    one = m(x[:, 10:10 + rf])
    assert float(jnp.abs(one[:, 0] - fc[:, 10]).max()) < tol


@pytest.mark.parametrize("context_layers", [0, 1])
def test_mid_skip_from_conv4_is_exact_and_used(context_layers):
    """The decoder's middle skip from conv4's maps at the window's centre: the fully convolutional pass equals
    the per-window one and a window alone; the receptive field is unchanged; and the wiring matters (the same
    weights with the conv2 skip give other logits)."""
    m = _model("tiny", seed=4, decoder=2, mid_skip="conv4", context_layers=context_layers)
    assert model_lib.mid_offset(m.config) == 3 + 9 * context_layers
    state = nnx.state(m, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(5), 64))
    nnx.update(m, jax.tree.map(lambda a: a + 0.1 * jax.random.normal(next(keys), a.shape), state))
    rf = model_lib.receptive_field(m.config)
    assert rf == 25 + 18 * context_layers
    x = jax.random.normal(jax.random.key(1), (1, 30 + rf - 1, 513))
    fc = m(x)
    np.testing.assert_allclose(np.asarray(fc), np.asarray(m.sliding_window(x)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(m(x[:, 7:7 + rf])[:, 0]), np.asarray(fc[:, 7]), atol=1e-5)
    other = MaskCNN(model_config("tiny", decoder=2, context_layers=context_layers), rngs=nnx.Rngs(0))
    other.eval()
    nnx.update(other, nnx.state(m, nnx.Param))
    assert float(jnp.abs(other(x) - fc).max()) > 1e-3
    with pytest.raises(TargetError, match="mid_skip"):
        model_config("tiny", mid_skip="conv3")
    with pytest.raises(TargetError, match="needs a decoder"):
        model_config("tiny", mid_skip="conv4")


@pytest.mark.parametrize("local,decoder", [(False, 0), (True, 0), pytest.param(False, 2, marks=_SLOW)])
def test_receptive_field_is_25_frames(local, decoder):
    m = _model("tiny", seed=1, local_head=local, decoder=decoder)
    x = np.zeros((1, 60, 513), np.float32)
    base = np.asarray(m(x))
    x[0, 30] = 5.0  # poke one frame: outputs 18..30 (frames whose window holds it) may change, no others
    poked = np.asarray(m(x))
    changed = np.nonzero(np.abs(poked - base).max(axis=-1)[0] > 0)[0]
    assert changed.min() >= 30 - 24 and changed.max() <= 30
    assert len(changed) > 0


@pytest.mark.parametrize("layers", [1, 2])
def test_context_layers_widen_the_receptive_field_by_18_frames_each(layers):
    m = _model("tiny", seed=1, decoder=2, context_layers=layers)
    rf = 25 + 18 * layers
    assert model_lib.receptive_field(m.config) == rf and model_lib.stream_warmup(m.config) == rf - 1
    assert model_lib.local_offset(m.config) == rf // 2 - 2
    # random biases, so that no layer is inert
    state = nnx.state(m, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(2), 64))
    nnx.update(m, jax.tree.map(lambda a: a + 0.1 * jax.random.normal(next(keys), a.shape), state))
    x = np.zeros((1, 140, 513), np.float32)
    base = np.asarray(m(x))
    assert base.shape == (1, 140 - rf + 1, 513)
    x[0, 70] = 5.0  # output j's window is input rows j .. j + rf - 1: exactly the outputs 70 - rf + 1 .. 70 may change
    changed = np.nonzero(np.abs(np.asarray(m(x)) - base).max(axis=-1)[0] > 0)[0]
    assert changed.min() == 70 - rf + 1 and changed.max() == 70


def test_context_layer_parameters_are_pinned():
    m = _model("article-dec-ctx")
    n = sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param)))
    assert n == 103828 + 2 * 2320 == 108468
    assert model_config("small-dec-ctx").context_layers == 2


def test_geometry_derived_from_the_layer_list_matches_the_frontend():
    assert model_lib.receptive_field() == spectral.FRONTEND.context == 25
    assert model_lib.STREAM_WARMUP == model_lib.receptive_field() - 1 == 24
    assert model_lib.LOCAL_OFFSET == 10
    assert model_lib.ModelConfig().n_bins == model_lib.ModelConfig().outputs == spectral.FRONTEND.n_bins


@pytest.mark.slow
def test_dropout_only_in_training():
    m = _model("tiny")
    x = jax.random.normal(jax.random.key(0), (1, 30, 513))
    np.testing.assert_array_equal(m(x), m(x))
    m.train()
    a, b = m(x, rngs=nnx.Rngs(dropout=1)), m(x, rngs=nnx.Rngs(dropout=2))
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(a, m(x, rngs=nnx.Rngs(dropout=1)))


def test_bad_config():
    with pytest.raises(TargetError):
        model_config("huge")
    with pytest.raises(TargetError):
        model_config(conv_channels=0)
    with pytest.raises(TargetError):
        model_config(n_bins=512)
    with pytest.raises(TargetError):
        model_config("article-local", outputs=1)
    with pytest.raises(TargetError):
        model_config("article-dec", outputs=1)
    with pytest.raises(TargetError):
        model_config(decoder=-1)
    for bad in (-1, 9):
        with pytest.raises(TargetError):
            model_config(context_layers=bad)
    for bad in ((1.0,), (0.0,), (-2.0,), (9.0,)):
        with pytest.raises(TargetError):
            model_config(harmonics=bad)


def test_harmonic_channels_read_the_input_at_frequency_ratios():
    m = _model("tiny", seed=2, harmonics=(0.5, 2.0))
    assert m.conv1.kernel.shape == (3, 3, 3, 2)
    m.in_shift[...] = jnp.zeros(513)
    m.in_scale[...] = jnp.ones(513)
    x = np.zeros((1, 1, 513), np.float32)
    x[0, 0, 100] = 1.0
    f = np.asarray(m.features(jnp.asarray(x)))[0, 0]  # (513, 3)
    np.testing.assert_array_equal(f[:, 0], x[0, 0])
    # ratio 0.5: bin k reads bin k / 2, so bin 200 (the octave above) sees bin 100, half of bins 199 and 201
    assert f[200, 1] == 1.0 and f[199, 1] == f[201, 1] == 0.5 and f[:198, 1].max() == 0.0
    # ratio 2: bin 50 reads bin 100; bins above 256 read beyond the top and hold zero
    assert f[50, 2] == 1.0 and np.count_nonzero(f[:, 2]) == 1
    assert model_config("small-dec-h").harmonics == (1 / 3, 0.5, 2.0, 3.0)


@pytest.mark.slow
def test_local_head_adds_a_per_bin_term_at_the_centre_frame():
    m = _model("article-local", seed=2)
    assert sum(p.size for p in jax.tree.leaves(nnx.state(m.local, nnx.Param))) == 16 + 1
    x = jax.random.normal(jax.random.key(3), (1, 30 + 24, 513))
    with_local = m(x)
    m.local.kernel[...] = jnp.zeros_like(m.local.kernel[...])
    m.local.bias[...] = jnp.full_like(m.local.bias[...], 0.25)
    np.testing.assert_allclose(m(x), _model("article", seed=2)(x) + 0.25, atol=1e-5)
    assert float(jnp.abs(with_local - m(x)).max()) > 1e-3


def test_decoder_parameter_count_is_pinned():
    m = _model("article-dec")
    n = sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param)))
    # the article's 99,923 + three (1x3) convolutions along frequency (16->16, 32->16, 32->16) + 16->1 output
    assert n == 99923 + (3 * 16 * 16 + 16) + 2 * (3 * 32 * 16 + 16) + (16 + 1) == 103828


@pytest.mark.slow
def test_decoder_draws_detail_at_single_bins():
    """The dense head alone is a 64-dimensional bottleneck; with the decoder, poking one input bin at the
    centre frame changes that bin's logit more than bins an octave away (a local, per-bin response)."""
    m = _model("article-dec", seed=4)
    x = np.asarray(jax.random.normal(jax.random.key(5), (1, 25, 513))) * 0.1
    base = np.asarray(m(x))[0, 0]
    x[0, 12, 300] += 8.0
    diff = np.abs(np.asarray(m(x))[0, 0] - base)
    assert diff[299:302].max() > 0 and diff[299:302].max() > 3 * np.median(diff[100:200])


@pytest.mark.parametrize("dilation", [1, 3])
def test_one_channel_convolution_and_its_gradient_match_the_convolution(dilation):
    # the first layer is computed as broadcast multiply-adds (faster on a CPU), its gradient as the convolution's
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 18, 1)).astype(np.float32))
    k = jnp.asarray(rng.standard_normal((3, 3, 1, 4)).astype(np.float32))
    g = jnp.asarray(rng.standard_normal((2, 9 - 2 * dilation, 18, 4)).astype(np.float32))
    fast = model_lib._one_channel_conv(x, k, dilation)
    ref = model_lib._lax_conv(x, k, dilation)
    assert fast.shape == ref.shape == g.shape
    np.testing.assert_allclose(fast, ref, atol=1e-5)
    grads = [jax.grad(lambda a, b, f=f: jnp.sum(f(a, b, dilation) * g), argnums=(0, 1))(x, k)
             for f in (model_lib._one_channel_conv, model_lib._lax_conv)]
    for got, want in zip(*grads, strict=True):
        assert float(jnp.abs(want).max()) > 0
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_upsampling_convolution_and_its_gradient_match_the_upsampled_copy():
    # the decoder convolves its upsampled maps at the lower resolution, one convolution per output phase
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 5, 19, 6)).astype(np.float32))
    k = jnp.asarray(rng.standard_normal((1, 3, 6, 4)).astype(np.float32))
    g = jnp.asarray(rng.standard_normal((2, 5, 57, 4)).astype(np.float32))

    def copy(a, b):
        return model_lib._freq_conv(jnp.repeat(a, 3, axis=-2), b)

    fast = model_lib._up3_freq_conv(x, k)
    assert fast.shape == copy(x, k).shape == g.shape
    np.testing.assert_allclose(fast, copy(x, k), atol=1e-5)
    grads = [jax.grad(lambda a, b, f=f: jnp.sum(f(a, b) * g), argnums=(0, 1))(x, k)
             for f in (model_lib._up3_freq_conv, copy)]
    for got, want in zip(*grads, strict=True):
        assert float(jnp.abs(want).max()) > 0
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_pool_max_over_strided_slices_matches_reduce_window():
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 11, 27, 3)).astype(np.float32))
    for d in (1, 3):
        want = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 3, 1), (1, 1, 3, 1), "VALID")
        n = want.shape[1] - 2 * d
        want = jnp.maximum(jnp.maximum(want[:, :n], want[:, d:d + n]), want[:, 2 * d:2 * d + n])
        np.testing.assert_array_equal(model_lib._pool(x, 1, d), want)
