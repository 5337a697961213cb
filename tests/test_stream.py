import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from stemsplit.cli import main
from stemsplit.errors import InvalidAudioError, OptionError
from stemsplit.separate import Separator
from stemsplit.stream import StreamSeparator, run_pipeline

from .conftest import tone_mix, write_tiny_target


def _stream_all(s, x, rng, lo=64, hi=5000):
    outs, pos = {k: [] for k in s.stem_names}, 0
    while pos < x.shape[1]:
        n = int(rng.integers(lo, hi))
        out = s.push(x[:, pos:pos + n])
        assert all(v.shape == (x.shape[0], min(n, x.shape[1] - pos)) for v in out.values())
        pos += n
        for k, v in out.items():
            outs[k].append(v)
    tail = s.flush()
    assert all(v.shape[1] == s.latency for v in tail.values())
    for k, v in tail.items():
        outs[k].append(v)
    return {k: np.concatenate(v, axis=1) for k, v in outs.items()}


@pytest.mark.parametrize("sr,channels,targets", [(44100, 2, ["vocals", "drums"]), (22050, 1, ["vocals"]),
                                                 pytest.param(48000, 2, ["vocals", "drums", "bass", "other"],
                                                              marks=pytest.mark.slow)])
def test_streamed_equals_offline_shifted_by_latency(tiny_targets, sr, channels, targets):
    x = tone_mix(sr, 2.5, channels, seed=4)
    offline = Separator(targets, targets_dir=[tiny_targets]).separate(x, sr)
    s = StreamSeparator(targets, sr=sr, channels=channels, targets_dir=[tiny_targets])
    got = _stream_all(s, x, np.random.default_rng(sr))
    lat = s.latency
    for k in offline:
        assert got[k].shape[1] == x.shape[1] + lat
        assert np.all(got[k][:, :lat] == 0)
        np.testing.assert_allclose(got[k][:, lat:], offline[k], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("local,decoder,harmonics,mid_skip", [(True, 0, (), "conv2"), (False, 3, (0.5, 3.0), "conv2"),
                                                             (False, 2, (), "conv4")])
def test_streamed_equals_offline_with_local_head_or_decoder(tmp_path, local, decoder, harmonics, mid_skip):
    write_tiny_target(tmp_path, "vocals", seed=5, local_head=local, decoder=decoder, harmonics=harmonics,
                      mid_skip=mid_skip)
    write_tiny_target(tmp_path, "drums", seed=6)
    x = tone_mix(44100, 2.0, 2, seed=2)
    sep = Separator(["vocals", "drums"], targets_dir=[tmp_path])
    assert sep.targets[0].model.config.decoder == decoder and (sep.targets[0].model.local is not None) == local
    offline = sep.separate(x, 44100)
    s = StreamSeparator(["vocals", "drums"], sr=44100, channels=2, targets_dir=[tmp_path])
    got = _stream_all(s, x, np.random.default_rng(1))
    for k in offline:
        np.testing.assert_allclose(got[k][:, s.latency:], offline[k], atol=1e-5)


def test_models_with_different_context_stream_and_separate_exactly(tmp_path):
    """A target with context layers (61 frames) beside one without (25): offline, block by block, every model
    reads the middle of the widest context it needs; streamed, the narrower model runs behind by the
    difference. Both equal the whole signal scored at once, and the stream's latency grows by 18 frames."""
    write_tiny_target(tmp_path, "vocals", seed=5, decoder=2, context_layers=2)
    write_tiny_target(tmp_path, "drums", seed=6)
    write_tiny_target(tmp_path, "vocal-activity", seed=7, task="activity", stems=("vocals",))
    x = tone_mix(44100, 3.0, 2, seed=3)
    sep = Separator(["vocals", "drums"], targets_dir=[tmp_path], block_frames=64, gate_vocals=True)
    assert sep.runner.half_context == 30 and sep.runner.crops == (0, 18, 18)
    blocks = sep.separate(x, 44100)
    whole = Separator(["vocals", "drums"], targets_dir=[tmp_path], block_frames=4096, gate_vocals=True)
    for k, v in whole.separate(x, 44100).items():
        np.testing.assert_allclose(blocks[k], v, atol=1e-5)
    # the narrow model's scores inside the wide pass are its scores alone
    from stemsplit import spectral
    g = spectral.FRONTEND.grid(44100)
    feats = spectral.features(spectral.signal_stft(x, g), g)
    alone = Separator(["drums"], targets_dir=[tmp_path])
    np.testing.assert_allclose(sep.signal_scores(feats)[1], alone.signal_scores(feats)[0], atol=1e-6)
    s = StreamSeparator(["vocals", "drums"], sr=44100, channels=2, targets_dir=[tmp_path], separator=sep)
    assert s.latency == 8191 + 18 * 512
    got = _stream_all(s, x, np.random.default_rng(2), lo=100, hi=3000)
    for k in blocks:
        np.testing.assert_allclose(got[k][:, s.latency:], blocks[k], atol=1e-5)


def test_latency_is_fixed_and_under_200_ms(tiny_targets):
    s = StreamSeparator(["vocals"], sr=44100, channels=2, targets_dir=[tiny_targets])
    assert s.latency == 8191 and s.latency_seconds < 0.2
    assert StreamSeparator(["vocals"], sr=22050, channels=1, targets_dir=[tiny_targets]).latency_seconds < 0.2


def test_stream_errors(tiny_targets):
    s = StreamSeparator(["vocals"], sr=22050, channels=2, targets_dir=[tiny_targets])
    with pytest.raises(InvalidAudioError, match="shaped"):
        s.push(np.zeros((1, 100), np.float32))
    with pytest.raises(InvalidAudioError, match="NaN"):
        s.push(np.full((2, 100), np.nan, np.float32))
    assert s.push(np.zeros((2, 0), np.float32)) == {}
    s.flush()
    with pytest.raises(OptionError, match="flushed"):
        s.push(np.zeros((2, 100), np.float32))
    with pytest.raises(OptionError):
        StreamSeparator(["vocals"], sr=22050, channels=0, targets_dir=[tiny_targets])


def test_pipeline_matches_direct_and_applies_back_pressure(tiny_targets):
    x = tone_mix(22050, 3.0, 2)
    chunks = [x[:, i:i + 700] for i in range(0, x.shape[1], 700)]
    direct = _stream_all(StreamSeparator(["vocals"], sr=22050, channels=2, targets_dir=[tiny_targets]), x,
                         np.random.default_rng(0), 700, 701)
    read, written = [], []

    def source():
        for c in chunks:
            read.append(len(written))
            yield c

    def slow_sink(out):
        time.sleep(0.01)
        written.append(out["vocals"])

    s = StreamSeparator(["vocals"], sr=22050, channels=2, targets_dir=[tiny_targets])
    run_pipeline(source(), s, slow_sink, queue_size=2)
    np.testing.assert_allclose(np.concatenate(written, axis=1), direct["vocals"], atol=1e-6)
    # the reader never ran far ahead of the writer: bounded by the two queues and the stages in hand
    assert max(i - w for i, w in enumerate(read)) <= 2 * 2 + 3


def test_a_hang_fails_its_test_instead_of_the_suite(pytestconfig):
    """A deadlocked pipeline would otherwise stop the whole run: pytest-timeout bounds every test."""
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    assert 0 < float(pytestconfig.getini("timeout")) <= 600


def test_stream_separator_is_public():
    import stemsplit

    assert stemsplit.StreamSeparator is StreamSeparator and "StreamSeparator" in stemsplit.__all__


@pytest.mark.parametrize("where", ["source", "sink", "model"])
def test_pipeline_failure_surfaces_once_without_hanging(tiny_targets, where):
    x = tone_mix(22050, 2.0, 2)

    def source():
        for i in range(0, x.shape[1], 500):
            if where == "source" and i > 2000:
                raise RuntimeError("source broke")
            yield x[:, i:i + 500] if not (where == "model" and i > 2000) else x[:1, i:i + 500]

    def sink(out):
        if where == "sink":
            raise RuntimeError("sink broke")

    s = StreamSeparator(["vocals"], sr=22050, channels=2, targets_dir=[tiny_targets])
    before = threading.active_count()
    t0 = time.time()
    with pytest.raises((RuntimeError, InvalidAudioError)) as err:
        run_pipeline(source(), s, sink, queue_size=2)
    assert time.time() - t0 < 10
    assert where in str(err.value) or "shaped" in str(err.value)
    time.sleep(0.3)
    assert threading.active_count() <= before


def test_cli_stream_file_to_wav_aligned(tiny_targets, tmp_path):
    x = tone_mix(44100, 2.0, 2)
    src = tmp_path / "in.wav"
    sf.write(src, x.T, 44100, subtype="FLOAT")
    out = tmp_path / "karaoke.wav"
    assert main(["stream", str(src), "-o", str(out), "--stem", "accompaniment", "--chunk", "333", "--float32",
                 "--targets-dir", str(tiny_targets), "-q"]) == 0
    got, sr = sf.read(out, always_2d=True)
    ref = Separator(["vocals"], targets_dir=[tiny_targets]).separate(x, 44100)["accompaniment"]
    assert sr == 44100 and got.shape == (x.shape[1], 2)
    np.testing.assert_allclose(got.T, ref, atol=1e-5)


@pytest.mark.slow
def test_cli_stream_pcm_pipe(tiny_targets, tmp_path):
    x = tone_mix(22050, 1.5, 1)
    r = subprocess.run([sys.executable, "-m", "stemsplit", "stream", "-", "-o", "-", "--rate", "22050",
                        "--channels", "1", "--targets-dir", str(tiny_targets), "-q"],
                       input=np.ascontiguousarray(x.T, "<f4").tobytes(), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    got = np.frombuffer(r.stdout, "<f4")
    ref = Separator(["vocals"], targets_dir=[tiny_targets]).separate(x, 22050)["vocals"][0]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    r = subprocess.run([sys.executable, "-m", "stemsplit", "stream", "-", "--targets-dir", str(tiny_targets)],
                       input=b"", capture_output=True, timeout=60)
    assert r.returncode == 2 and b"--rate" in r.stderr
    r = subprocess.run([sys.executable, "-m", "stemsplit", "stream", "-", "--rate", "22050", "--channels", "2",
                        "-q", "--targets-dir", str(tiny_targets)], input=b"\x00" * 10, capture_output=True,
                       timeout=60)
    assert r.returncode == 2 and b"stray bytes" in r.stderr


def test_one_sample_chunks_of_a_stereo_stream(tiny_targets):
    """A (2, 1) chunk is one stereo sample, not 'more channels than samples'."""
    x = tone_mix(22050, 0.5, 2)
    s = StreamSeparator(["vocals"], sr=22050, channels=2, targets_dir=[tiny_targets])
    outs = [s.push(x[:, i:i + 1])["vocals"] for i in range(3)] + [s.push(x[:, 3:])["vocals"], s.flush()["vocals"]]
    ref = Separator(["vocals"], targets_dir=[tiny_targets]).separate(x, 22050)["vocals"]
    np.testing.assert_allclose(np.concatenate(outs, axis=1)[:, s.latency:], ref, atol=1e-5)
