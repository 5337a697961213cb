import librosa
import numpy as np
import pytest

from stemsplit import spectral
from stemsplit.errors import InvalidAudioError

F = spectral.FRONTEND


def test_frontend_is_the_seed_methods():
    assert (F.sample_rate, F.n_fft, F.hop_length, F.n_bins, F.context) == (22050, 1024, 256, 513, 25)
    g = F.grid(44100)
    assert (g.n_fft, g.hop, g.n_bins, g.model_bins) == (2048, 512, 1025, 513)
    g = F.grid(8000)
    assert g.model_bins == g.n_bins < 513


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 8000])
def test_stft_matches_librosa(sr):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, sr // 2 + 123)).astype(np.float32)
    g = F.grid(sr)
    ours = spectral.signal_stft(x, g)
    ref = librosa.stft(x.astype(np.float64), n_fft=g.n_fft, hop_length=g.hop, window="hann", center=True,
                       pad_mode="constant")
    assert ours.shape == ref.shape
    assert ours.shape[-1] == 1 + x.shape[-1] // g.hop
    np.testing.assert_allclose(ours, ref, atol=2e-4 * np.abs(ref).max())


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 11025, 96000])
def test_istft_reconstructs(sr):
    x = np.random.default_rng(1).standard_normal((3, sr // 3 + 7)).astype(np.float32)
    g = F.grid(sr)
    y = spectral.istft(spectral.signal_stft(x, g), g, x.shape[-1])
    np.testing.assert_allclose(y, x, atol=1e-5)


def test_overlap_add_blocks_equal_whole():
    g = F.grid(44100)
    x = np.random.default_rng(2).standard_normal((1, 44100)).astype(np.float32)
    spec = spectral.signal_stft(x, g)
    total = spec.shape[-1]
    whole = spectral.istft(spec, g, x.shape[-1])
    a, b = 5 * g.hop, 40 * g.hop
    lo, hi = spectral.frames_overlapping(g, a, b, total)
    assert lo * g.hop - g.pad + g.n_fft > a >= (lo - 1) * g.hop - g.pad + g.n_fft
    part = spectral.overlap_add(spec[..., lo:hi], g, lo, total, a, b)
    np.testing.assert_allclose(part, whole[:, a:b], atol=1e-6)
    with pytest.raises(ValueError):  # missing a frame that overlaps the range
        spectral.overlap_add(spec[..., lo + 1:hi], g, lo + 1, total, a, b)


def test_features_shape_scale_and_low_rates():
    for sr in (44100, 22050):
        g = F.grid(sr)
        t = np.arange(sr) / sr
        x = np.sin(2 * np.pi * 1000 * t)[None].astype(np.float32)
        feats = spectral.features(spectral.signal_stft(x, g), g)
        assert feats.shape == (g.n_frames(sr), 513)
        peak = feats[20].max()
        if sr == 22050:
            ref_peak = peak
    assert abs(peak - ref_peak) < 0.05  # the same tone gives the same features at both rates
    g = F.grid(8000)
    feats = spectral.features(spectral.signal_stft(np.ones((1, 800), np.float32), g), g)
    assert feats.shape[1] == 513 and np.all(feats[:, g.model_bins:] == 0)


@pytest.mark.parametrize("sr", [4000, 500_000])
def test_unsupported_rates(sr):
    with pytest.raises(InvalidAudioError, match="sample rate"):
        F.grid(sr)
