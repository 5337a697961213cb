"""The mask CNN of the seed method, in Flax NNX, with a fully convolutional forward pass.

Architecture (per 25-frame window of the 513-bin log magnitude): Conv 3x3 x2, MaxPool 3x3, Conv 3x3 x2,
MaxPool 3x3, Dense, LeakyReLU, dropout, Dense + sigmoid (513 mask values, or 1 for vocal activity).
Convolutions are "valid" along time and "same" along frequency, so a 25-frame window shrinks to exactly one
time step: 25 -> 23 -> 21 -> pool 7 -> 5 -> 3 -> pool 1. Optional context layers (3x3 convolutions on the pooled
maps, :attr:`ModelConfig.context_layers`) widen the window by 18 frames each: 43 -> ... -> pool 3 -> 1.

The article slides that window one frame at a time. :func:`MaskCNN.__call__` computes every frame in one pass
instead: pools keep stride 1 along time and the layers after them are dilated (by 3, then 9), which yields
exactly the per-window result for every frame (see ``tests/test_model.py``); context layers are dilated by 9.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .errors import TargetError
from .spectral import FRONTEND

__all__ = ["ModelConfig", "MaskCNN", "PRESETS", "model_config", "receptive_field", "local_offset", "mid_offset"]


@dataclass(frozen=True)
class ModelConfig:
    """Size of one mask CNN.

    Parameters
    ----------
    conv_channels : int
        Filters in each of the four 3x3 convolutions (16 in the article).
    dense_units : int
        Units of the hidden dense layer (64 in the article).
    outputs : int
        513 for a mask frame, 1 for vocal activity.
    n_bins : int
        Frequency bins of the input.
    conv_dropout, dense_dropout : float
        Dropout rates after each pooling and after the dense layer (training only).
    leaky_slope : float
        Negative slope of the LeakyReLU activations.
    local_head : bool
        Add to each output bin's logit a 1x1 convolution of the full-resolution features after the second
        convolution, at the window's centre frame. Not in the article: its mask passes through a 64-unit dense
        bottleneck, which cannot draw fine detail such as a voice's harmonics at their exact bins; the local
        head can, at 17 parameters per filter bank. Mask targets only; the receptive field stays the trunk's.
    decoder : int
        Channels of the frequency decoder (0 = none). The decoder turns the pooled maps (one ninth of the
        frequency resolution, 25 frames of context) back into per-bin logits: 1-D convolutions along frequency,
        upsampled by 3 twice, each stage joined by a skip connection from the full-resolution maps after the
        second convolution at the window's centre frame. Its logits are added to the dense head's, which stays
        as a global (whole-spectrum) term. It looks at the centre frame only, so the receptive field stays the
        trunk's and the fully convolutional, sliding-window and streaming passes stay exact. Mask targets only.
    harmonics : tuple of float
        Extra input channels that line up each bin with its harmonic relatives (empty = none): for a ratio ``r``,
        the channel at bin ``k`` holds the standardised input at frequency ``r`` times bin ``k``'s (linearly
        interpolated; zero above the top bin). With ``(0.5, 2, 3)`` the first convolution sees, at a note's
        second harmonic, the fundamental below it, and at the fundamental, its harmonics above: pitch
        relations that the 3x3 convolutions and 3x pools cannot reach at full resolution in the low band. A
        per-frame operation, so every pass stays exact.
    context_layers : int
        Extra 3x3 convolutions after the second pool, at a ninth of the frequency resolution, each reaching 9
        frames further along time on either side (dilation 9 in the fully convolutional pass): each widens the
        receptive field by 18 frames, from the article's 25 (~0.3 s at 22.05 kHz, hop 256) to 43, 61, ...
        Cheap (they run on 57 bins), and still local in time, so the fully convolutional, sliding-window and
        streaming passes stay exact; a stream's latency grows with the receptive field.
    mid_skip : str
        Where the decoder's middle stage (a third of the frequency resolution) takes its skip connection from:
        ``"conv2"`` (the full-resolution maps after the second convolution at the window's centre, max-pooled
        by 3 along frequency: 5 frames of context) or ``"conv4"`` (the maps after the fourth convolution at the
        window's centre, already at a third of the resolution, as a U-Net wires it: 19 frames of context, so the
        decoder sees a note's course in time at a finer frequency resolution than the pooled maps'). Same
        parameters and cost; the receptive field and every pass's exactness are unchanged.
    """

    conv_channels: int = 16
    dense_units: int = 64
    outputs: int = FRONTEND.n_bins
    n_bins: int = FRONTEND.n_bins
    conv_dropout: float = 0.25
    dense_dropout: float = 0.5
    leaky_slope: float = 0.01
    local_head: bool = False
    decoder: int = 0
    harmonics: tuple[float, ...] = ()
    context_layers: int = 0
    mid_skip: str = "conv2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "harmonics", tuple(float(r) for r in self.harmonics))
        if any(not 0.0 < r <= 8.0 or r == 1.0 for r in self.harmonics):
            raise TargetError(f"model harmonics must be frequency ratios in (0, 8] other than 1, got "
                              f"{list(self.harmonics)}")
        if self.n_bins % 9:
            raise TargetError(f"model n_bins must be a multiple of 9 (two 3x pools), got {self.n_bins}")
        for name in ("conv_channels", "dense_units", "outputs"):
            if getattr(self, name) < 1:
                raise TargetError(f"model {name} must be positive, got {getattr(self, name)}")
        for name in ("conv_dropout", "dense_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise TargetError(f"model {name} must be in [0, 1), got {getattr(self, name)}")
        if self.local_head and self.outputs != self.n_bins:
            raise TargetError("model local_head needs one output per bin (a mask target)")
        if not 0 <= self.context_layers <= 8:
            raise TargetError(f"model context_layers must be 0-8, got {self.context_layers}")
        if self.decoder < 0:
            raise TargetError(f"model decoder must be 0 (none) or a channel count, got {self.decoder}")
        if self.decoder and self.outputs != self.n_bins:
            raise TargetError("model decoder needs one output per bin (a mask target)")
        if self.mid_skip not in _MID_SKIPS:
            raise TargetError(f"model mid_skip must be one of {', '.join(_MID_SKIPS)}, got {self.mid_skip!r}")
        if self.mid_skip != "conv2" and not self.decoder:
            raise TargetError("model mid_skip needs a decoder (decoder = channels)")

    def to_dict(self) -> dict:
        """Plain values, for checkpoint metadata."""
        return asdict(self)


#: layers the decoder's middle stage can take its skip connection from (:attr:`ModelConfig.mid_skip`)
_MID_SKIPS = ("conv2", "conv4")

PRESETS: dict[str, dict] = {
    "article": {"conv_channels": 16, "dense_units": 64},
    "small": {"conv_channels": 8, "dense_units": 32},
    # the article's layers plus the per-bin local head (see ModelConfig.local_head)
    "article-local": {"conv_channels": 16, "dense_units": 64, "local_head": True},
    "small-local": {"conv_channels": 8, "dense_units": 32, "local_head": True},
    # the article's trunk with a frequency decoder (see ModelConfig.decoder): per-bin masks at full resolution
    "article-dec": {"conv_channels": 16, "dense_units": 64, "decoder": 16},
    "small-dec": {"conv_channels": 8, "dense_units": 32, "decoder": 8},
    # small-dec plus harmonic input channels (see ModelConfig.harmonics): pitch relations for bass
    "small-dec-h": {"conv_channels": 8, "dense_units": 32, "decoder": 8, "harmonics": (1 / 3, 0.5, 2.0, 3.0)},
    # article-dec with the middle skip connection from conv4, as a U-Net wires it (see ModelConfig.mid_skip)
    "article-unet": {"conv_channels": 16, "dense_units": 64, "decoder": 16, "mid_skip": "conv4"},
    # the decoder models with two context layers (see ModelConfig.context_layers): 61 frames (~0.7 s) of context
    "article-dec-ctx": {"conv_channels": 16, "dense_units": 64, "decoder": 16, "context_layers": 2},
    "small-dec-ctx": {"conv_channels": 8, "dense_units": 32, "decoder": 8, "context_layers": 2},
    # for smoke tests of the CLI and pipeline: tiny and fast, never shipped as a trained model
    "tiny": {"conv_channels": 2, "dense_units": 4},
}


def model_config(preset: str = "article", **overrides) -> ModelConfig:
    """A :class:`ModelConfig` from a named preset with keyword overrides."""
    if preset not in PRESETS:
        raise TargetError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = set(overrides) - set(ModelConfig.__dataclass_fields__)
    if unknown:
        raise TargetError(f"unknown model setting(s): {', '.join(sorted(unknown))}")
    return ModelConfig(**{**PRESETS[preset], **overrides})


#: (layer, kind, time dilation) of the article's fully convolutional trunk, in order: the one description of its
#: geometry. Every layer is 3 wide along time, so each consumes (and a stream keeps) ``2 * dilation`` rows of its
#: input; each pool also divides the frequency axis by 3. The per-window pass uses the same layers undilated, with
#: the pools striding 3 along time instead. Context layers (:attr:`ModelConfig.context_layers`) follow, with
#: dilation 9 (:func:`layers`).
_STREAM_LAYERS = (("conv1", "conv", 1), ("conv2", "conv", 1), ("pool1", "pool", 1),
                  ("conv3", "conv", 3), ("conv4", "conv", 3), ("pool2", "pool", 3))

#: time dilation of the context layers: after two pools of 3, one step of the pooled maps is 9 frames
_CONTEXT_DILATION = 9

#: the layer whose full-resolution output feeds the local head and the decoder's skip connections
_CENTRE_LAYER = "conv2"


def layers(config: ModelConfig | None = None) -> tuple[tuple[str, str, int], ...]:
    """(layer, kind, time dilation) of a model's fully convolutional trunk, in order."""
    n = config.context_layers if config is not None else 0
    return _STREAM_LAYERS + tuple((f"ctx{i + 1}", "conv", _CONTEXT_DILATION) for i in range(n))


def _rows_consumed(trunk: tuple[tuple[str, str, int], ...]) -> int:
    """Time rows a run of trunk layers consumes (``2 * dilation`` each)."""
    return sum(2 * d for _, _, d in trunk)


def receptive_field(config: ModelConfig | None = None) -> int:
    """Frames of input one output frame depends on: the rows the trunk consumes, plus one (the seed method's 25
    without context layers, 18 more per context layer)."""
    return _rows_consumed(layers(config)) + 1


def stream_warmup(config: ModelConfig | None = None) -> int:
    """Output rows a fresh stream produces before the first real frame (the receptive field minus one)."""
    return receptive_field(config) - 1


#: :func:`stream_warmup` of the article's trunk
STREAM_WARMUP = stream_warmup()

def _through(name: str) -> tuple[tuple[str, str, int], ...]:
    """The trunk's layers up to and including ``name``."""
    return _STREAM_LAYERS[:[n for n, _, _ in _STREAM_LAYERS].index(name) + 1]


def _taps(config: ModelConfig) -> tuple[str, ...]:
    """The trunk layers whose maps at each window's centre feed the head: conv2 (the local head's and the
    decoder's full-resolution input), and the decoder's middle skip where it comes from another layer."""
    return (_CENTRE_LAYER,) + ((config.mid_skip,) if config.mid_skip != _CENTRE_LAYER else ())


def _tap_offset(config: ModelConfig | None, name: str) -> int:
    """Rows of layer ``name``'s output before the window's centre: the centre is input row
    ``receptive_field() // 2`` (12 of 25), and a layer's row ``r`` is centred on input row ``r`` plus half the
    rows the layers up to it consume."""
    return receptive_field(config) // 2 - _rows_consumed(_through(name)) // 2


def local_offset(config: ModelConfig | None = None) -> int:
    """Rows of conv2's output before the window's centre (the local head's and the decoder's offset): row ``r``
    after conv2 is centred on input row ``r + 2``, so the centre is conv2's row 10 (19 and 28 with one and two
    context layers)."""
    return _tap_offset(config, _CENTRE_LAYER)


def mid_offset(config: ModelConfig | None = None) -> int:
    """Rows of conv4's output before the window's centre (the decoder's middle skip with ``mid_skip =
    "conv4"``): row ``r`` after conv4 is centred on input row ``r + 9``, so the centre is conv4's row 3 (12 and
    21 with one and two context layers)."""
    return _tap_offset(config, "conv4")


#: :func:`local_offset` of the article's trunk
LOCAL_OFFSET = local_offset()


def _at_ratio(z: jax.Array, ratio: float) -> jax.Array:
    """``z`` (..., freq) read at ``ratio`` times each bin's frequency: linear interpolation between bins, zero
    above the top bin."""
    n = z.shape[-1]
    pos = np.arange(n) * ratio
    lo = np.minimum(np.floor(pos).astype(np.int32), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo).astype(np.float32)
    inside = (pos <= n - 1).astype(np.float32)
    return (jnp.take(z, lo, axis=-1) * (1.0 - w) + jnp.take(z, hi, axis=-1) * w) * inside


def _lax_conv(x: jax.Array, kernel: jax.Array, dilation: int) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(1, 1), padding=((0, 0), (1, 1)),
        rhs_dilation=(dilation, 1), dimension_numbers=("NHWC", "HWIO", "NHWC"))


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _one_channel_conv(x: jax.Array, kernel: jax.Array, dilation: int) -> jax.Array:
    """``_lax_conv`` for one input channel, as nine shifted, broadcast multiply-adds that XLA fuses into one
    pass: its CPU convolution handles a single input channel poorly (docs/performance.md). The gradient is the
    convolution's, which is the faster of the two in training."""
    xp = jnp.pad(x[..., 0], ((0, 0), (0, 0), (1, 1)))
    n, f = x.shape[1] - 2 * dilation, x.shape[2]
    y = 0.0
    for dt in range(3):
        for df in range(3):
            y = y + xp[:, dt * dilation:dt * dilation + n, df:df + f, None] * kernel[dt, df, 0]
    return y


def _one_channel_conv_fwd(x, kernel, dilation):
    return _one_channel_conv(x, kernel, dilation), (x, kernel)


def _one_channel_conv_bwd(dilation, residuals, g):
    return jax.vjp(lambda a, b: _lax_conv(a, b, dilation), *residuals)[1](g)


_one_channel_conv.defvjp(_one_channel_conv_fwd, _one_channel_conv_bwd)


def _conv(x: jax.Array, conv: nnx.Conv, dilation: int) -> jax.Array:
    """3x3 convolution, valid along time (dilated) and same along frequency; x is (batch, time, freq, ch)."""
    kernel = conv.kernel[...]
    y = (_one_channel_conv if kernel.shape[2] == 1 else _lax_conv)(x, kernel, dilation)
    return y + conv.bias[...]


def _freq_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Convolution along frequency only (kernel (1, 3, in, out), same padding, no bias); x is (..., freq, ch).

    The frames go along the image's height (one image), not the batch axis, the layout XLA's CPU convolution
    runs fastest (docs/design.md)."""
    lead = x.shape[:-2]
    y = jax.lax.conv_general_dilated(
        x.reshape((1, -1) + x.shape[-2:]), kernel, window_strides=(1, 1), padding=((0, 0), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y.reshape(lead + y.shape[-2:])


def _up3_freq_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``_freq_conv(jnp.repeat(x, 3, axis=-2), kernel)``, computed at ``x``'s resolution.

    With ``u = repeat(x, 3)``, output bin ``3i + j`` sees ``u`` at ``3i + j - 1 .. 3i + j + 1``: for ``j = 0``
    that is ``x[i - 1], x[i], x[i]``, for ``j = 1`` three times ``x[i]``, for ``j = 2`` ``x[i], x[i], x[i + 1]``.
    So one convolution of ``x`` with three output phases per bin (taps summed where they read the same bin)
    gives every output bin, with a third of the positions and no upsampled copy."""
    w0, w1, w2 = kernel[0, 0], kernel[0, 1], kernel[0, 2]
    z = jnp.zeros_like(w0)
    phases = jnp.stack([jnp.concatenate([w0, z, z], -1),
                        jnp.concatenate([w1 + w2, w0 + w1 + w2, w0 + w1], -1),
                        jnp.concatenate([z, z, w2], -1)])[None]
    y = _freq_conv(x, phases)  # (..., n, 3 * out): the three output bins of each input bin
    return y.reshape(y.shape[:-2] + (y.shape[-2] * 3, kernel.shape[-1]))


def _freq_pool(x: jax.Array) -> jax.Array:
    """Max over non-overlapping triples of bins; x is (..., freq, ch) with freq a multiple of 3. Strided slices,
    which run several times faster than a reshaped max or ``reduce_window`` on a CPU."""
    return jnp.maximum(jnp.maximum(x[..., 0::3, :], x[..., 1::3, :]), x[..., 2::3, :])


def _time_max(x: jax.Array, dilation: int) -> jax.Array:
    """Max over three frames ``dilation`` apart (valid); x is (batch, time, ...)."""
    n, d = x.shape[1] - 2 * dilation, dilation
    return jnp.maximum(jnp.maximum(x[:, :n], x[:, d:d + n]), x[:, 2 * d:2 * d + n])


def _pool(x: jax.Array, time_stride: int, time_dilation: int) -> jax.Array:
    """3x3 max pool: stride 3 along frequency; along time the given stride and dilation.

    The stride-1 dilated form is a max of shifted slices (``reduce_window`` has no gradient for dilated
    windows, and the slices run faster on a CPU).
    """
    if time_stride == 1:
        return _time_max(_freq_pool(x), time_dilation)
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, time_stride, 3, 1), "VALID")


class MaskCNN(nnx.Module):
    """Parameters of one target's mask CNN (or vocal activity detector).

    Parameters
    ----------
    config : ModelConfig
        Layer sizes.
    rngs : nnx.Rngs
        Initialisation (``params``) and dropout (``dropout``) keys.
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        c = config.conv_channels
        self.in_shift = nnx.Param(jnp.zeros((config.n_bins,), jnp.float32))
        self.in_scale = nnx.Param(jnp.ones((config.n_bins,), jnp.float32))
        self.conv1 = nnx.Conv(1 + len(config.harmonics), c, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(c, c, (3, 3), rngs=rngs)
        self.conv3 = nnx.Conv(c, c, (3, 3), rngs=rngs)
        self.conv4 = nnx.Conv(c, c, (3, 3), rngs=rngs)
        for name, _, _ in layers(config)[len(_STREAM_LAYERS):]:
            setattr(self, name, nnx.Conv(c, c, (3, 3), rngs=rngs))
        self.dense = nnx.Linear((config.n_bins // 9) * c, config.dense_units, rngs=rngs)
        self.head = nnx.Linear(config.dense_units, config.outputs, rngs=rngs)
        self.local = nnx.Linear(c, 1, rngs=rngs) if config.local_head else None
        k = config.decoder
        if k:
            self.dec3 = nnx.Conv(c, k, (1, 3), rngs=rngs)
            self.dec2 = nnx.Conv(k + c, k, (1, 3), rngs=rngs)
            self.dec1 = nnx.Conv(k + c, k, (1, 3), rngs=rngs)
            self.dec_out = nnx.Linear(k, 1, rngs=rngs)
        # dropout keys come with each training call (explicit, resumable randomness), none are stored
        self.conv_dropout = nnx.Dropout(config.conv_dropout)
        self.dense_dropout = nnx.Dropout(config.dense_dropout)

    def features(self, x: jax.Array) -> jax.Array:
        """The first convolution's input (..., time, freq, channels) from features (..., time, freq):
        standardised, plus the harmonic channels (:attr:`ModelConfig.harmonics`)."""
        z = (x - self.in_shift[...]) * self.in_scale[...]
        chans = [z] + [_at_ratio(z, r) for r in self.config.harmonics]
        return jnp.stack(chans, axis=-1)

    def _trunk(self, x: jax.Array, dilated: bool,
               rngs: nnx.Rngs | None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Convolutions and pools (:func:`layers`); x is (batch, time, freq) features. Returns the pooled maps
        (batch, time', freq/9, ch) and the maps of the tapped layers (:func:`_taps`; conv2's are (batch, time -
        4, freq, ch)). ``dilated``: the fully convolutional form (pools of stride 1, later layers dilated);
        otherwise the per-window form (undilated, pools of stride 3 along time)."""
        act = lambda h: jax.nn.leaky_relu(h, self.config.leaky_slope)  # noqa: E731
        h = self.features(x)
        taps, maps = _taps(self.config), {}
        for name, kind, d in layers(self.config):
            if kind == "conv":
                h = act(_conv(h, getattr(self, name), d if dilated else 1))
            else:
                h = self.conv_dropout(_pool(h, 1, d) if dilated else _pool(h, 3, 1), rngs=rngs)
            if name in taps:
                maps[name] = h
        return h, maps

    def _head(self, h: jax.Array, centres: dict[str, jax.Array], rngs: nnx.Rngs | None) -> jax.Array:
        """Logits (..., outputs) from the pooled maps (..., freq/9, ch) and, for the local head and the
        decoder, the tapped layers' maps at the same frames' window centres (conv2's: (..., freq, ch))."""
        act = lambda v: jax.nn.leaky_relu(v, self.config.leaky_slope)  # noqa: E731
        g = act(self.dense(h.reshape(h.shape[:-2] + (-1,))))
        logits = self.head(self.dense_dropout(g, rngs=rngs))
        centre = centres[_CENTRE_LAYER]
        if self.local is not None:
            logits = logits + self.local(centre)[..., 0]
        if self.config.decoder:
            # each stage convolves [upsampled previous stage, skip] concatenated on channels; computed as the
            # sum of the two parts' convolutions (the kernel split by input channel), the upsampled part at
            # the lower resolution (_up3_freq_conv): the same function, without the concatenated copies
            d = act(_freq_conv(h, self.dec3.kernel[...]) + self.dec3.bias[...])
            mid = _freq_pool(centre) if self.config.mid_skip == _CENTRE_LAYER else centres[self.config.mid_skip]
            for conv, skip in ((self.dec2, mid), (self.dec1, centre)):
                k, n = conv.kernel[...], d.shape[-1]
                d = act(_up3_freq_conv(d, k[:, :, :n]) + _freq_conv(skip, k[:, :, n:]) + conv.bias[...])
            logits = logits + self.dec_out(d)[..., 0]
        return logits

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """Logits for every frame at once.

        Parameters
        ----------
        x : jax.Array
            Features, shape ``(batch, frames + receptive_field(config) - 1, n_bins)``: the frames to predict
            plus ``receptive_field(config) // 2`` frames (12 without context layers) of context on each side.
        rngs : nnx.Rngs, optional
            Dropout keys (stream ``dropout``); needed only in training mode.

        Returns
        -------
        jax.Array
            Logits, shape ``(batch, frames, outputs)``; apply ``jax.nn.sigmoid`` for mask values.
        """
        h, maps = self._trunk(x, dilated=True, rngs=rngs)
        n = h.shape[1]
        offsets = {k: _tap_offset(self.config, k) for k in maps}
        return self._head(h, {k: v[:, offsets[k]:offsets[k] + n] for k, v in maps.items()}, rngs)

    def sliding_window(self, x: jax.Array) -> jax.Array:
        """The article's per-frame method: one window (25 frames without context layers) per output frame
        (reference, slow).

        Same contract as :meth:`__call__`.
        """
        context = receptive_field(self.config)
        frames = x.shape[1] - context + 1
        idx = jnp.arange(frames)[:, None] + jnp.arange(context)[None, :]
        windows = x[:, idx]  # (batch, frames, context, bins)
        flat = windows.reshape((-1, context, x.shape[-1]))
        h, maps = self._trunk(flat, dilated=False, rngs=None)  # (batch*frames, 1, freq/9, ch), conv2: (.., 21, freq, ch)
        # the window's centre is the middle row of every map (the per-window layers are symmetric about it)
        centres = {k: v[:, v.shape[1] // 2] for k, v in maps.items()}
        return self._head(h[:, 0], centres, None).reshape((x.shape[0], frames, -1))


def stream_init(model: MaskCNN) -> list[jax.Array]:
    """Zeroed per-layer input tails for :func:`stream_apply` (batch 1); after them, each tapped layer's latest
    output rows before the window's centre (:func:`local_offset` of conv2's; :func:`mid_offset` of conv4's with
    ``mid_skip = "conv4"``): the window centres of frames still waiting for the rest of their window."""
    c, f, ch = model.config.conv_channels, model.config.n_bins, 1 + len(model.config.harmonics)
    shapes = []
    for _, kind, d in layers(model.config):  # each layer's input: 2 * d rows, the current frequency size and channels
        shapes.append((2 * d, f, ch))
        ch = c
        if kind == "pool":
            f //= 3
    for name in _taps(model.config):
        pools = sum(kind == "pool" for _, kind, _ in _through(name))
        shapes.append((_tap_offset(model.config, name), model.config.n_bins // 3 ** pools, c))
    return [jnp.zeros((1,) + s, jnp.float32) for s in shapes]


def stream_apply(model: MaskCNN, tails: list[jax.Array], x: jax.Array,
                 n_valid: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    """Feed the next rows of features to a model that keeps the tail of every layer's input (exact streaming).

    The fully convolutional pass is local in time, so carrying each layer's last ``2 * dilation`` input rows
    gives, row for row, what the pass over the whole sequence gives; each frame is computed once.

    Parameters
    ----------
    tails : list of jax.Array
        From :func:`stream_init` or the previous call.
    x : jax.Array
        Next feature rows, shape ``(rows, n_bins)``; only the first ``n_valid`` are real (the rest pad the
        shape so that few sizes compile).
    n_valid : int (traced)

    Returns
    -------
    logits : jax.Array
        ``(rows, outputs)``, one per row fed; the first ``n_valid`` are real. Output row ``j`` of a stream
        (counting from its start) is the frame whose window ends at input row ``j``: the first
        :func:`stream_warmup` rows of a fresh stream precede the first real frame.
    tails : list of jax.Array
    """
    act = lambda h: jax.nn.leaky_relu(h, model.config.leaky_slope)  # noqa: E731
    h = model.features(x)[None]
    trunk = layers(model.config)
    # output row j's window centre is a tapped layer's row j - _tap_offset; its tail holds the rows before
    tap_tails = dict(zip(_taps(model.config), tails[len(trunk):], strict=True))
    new_tails, kept = [], {}
    for (name, kind, d), tail in zip(trunk, tails[:len(trunk)], strict=True):
        inp = jnp.concatenate([tail, h], axis=1)
        new_tails.append(jax.lax.dynamic_slice_in_dim(inp, n_valid, tail.shape[1], axis=1))
        h = act(_conv(inp, getattr(model, name), d)) if kind == "conv" else _pool(inp, 1, d)
        if name in tap_tails:
            kept[name] = jnp.concatenate([tap_tails[name], h], axis=1)
    for name, tail in tap_tails.items():
        new_tails.append(jax.lax.dynamic_slice_in_dim(kept[name], n_valid, tail.shape[1], axis=1))
    n = h.shape[1]
    return model._head(h[0], {k: v[0, :n] for k, v in kept.items()}, None), new_tails
