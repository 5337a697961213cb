import json

import numpy as np
import pytest

from stemsplit import checkpoint, evaluate, vad
from stemsplit.cli import main
from stemsplit.errors import OptionError
from stemsplit.separate import LoadedTarget, Separator
from stemsplit.targets import load_spec

from .conftest import make_musdb, tone_mix, write_tiny_target


def test_segments_hysteresis_and_minimums():
    times = np.arange(100) * 0.01
    p = np.zeros(100)
    p[10:30] = 0.9   # a clear segment, 0.10-0.30
    p[30:33] = 0.5   # between off and on: stays voiced
    p[40:42] = 0.9   # too short alone, but 7 frames after the first: bridged with min_gap=0.1
    p[70:72] = 0.9   # too short, isolated: dropped
    segs = vad.vocal_segments(times, p, on=0.6, off=0.4, min_duration=0.05, min_gap=0.1)
    assert segs == [(0.1, 0.42)]
    assert all(type(v) is float for seg in segs for v in seg) and repr(segs) == "[(0.1, 0.42)]"  # plain floats
    segs = vad.vocal_segments(times, p, on=0.6, off=0.4, min_duration=0.0, min_gap=0.0)
    assert segs == [(0.1, 0.33), (0.4, 0.42), (0.7, 0.72)]
    p[90:] = 0.95    # open at the end: closes at the last frame's end
    assert vad.vocal_segments(times, p, min_duration=0.05, min_gap=0.0)[-1] == (0.9, 1.0)
    with pytest.raises(OptionError):
        vad.vocal_segments(times, p, on=0.3, off=0.6)


def test_segments_to_frames_inverts_segments():
    times = np.arange(100) * 0.01
    p = np.zeros(100)
    p[10:30] = 0.9
    p[60:] = 0.9
    frames = vad.segments_to_frames(times, vad.vocal_segments(times, p, min_duration=0.0, min_gap=0.0))
    np.testing.assert_array_equal(frames, p > 0.5)


def test_activity_scores():
    s = vad.activity_scores(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    assert s["accuracy"] == 0.5 and s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5


@pytest.fixture(scope="module")
def act_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("act")
    write_tiny_target(d, "vocal-activity", task="activity", stems=("vocals",))
    write_tiny_target(d, "vocals", priority=4)
    return d


def test_detect_vocals_shapes_and_blocks(act_dir):
    x = tone_mix(44100, 3.0, 2)
    times, p = vad.detect_vocals(x, 44100, targets_dir=[act_dir])
    assert times.shape == p.shape == (1 + x.shape[1] // 512,)
    assert np.all((p >= 0) & (p <= 1)) and abs(times[1] - 512 / 44100) < 1e-12
    small = vad.ActivityDetector(targets_dir=[act_dir], block_frames=64)(x, 44100)[1]
    np.testing.assert_allclose(small, p, atol=1e-6)


def _biased_detector(folder, bias):
    """The tiny detector with its output bias forced: always voiced (+) or never (-)."""
    model, spec, _ = checkpoint.load_model(folder / "vocal-activity.npz")
    model.head.kernel[...] = model.head.kernel[...] * 0
    model.head.bias[...] = model.head.bias[...] * 0 + bias
    return LoadedTarget(spec, model, None, {})


def test_gating_silences_vocals_where_no_voice(act_dir):
    x = tone_mix(22050, 2.0, 2)
    plain = Separator(["vocals"], targets_dir=[act_dir]).separate(x, 22050)
    always = Separator(["vocals"], targets_dir=[act_dir], gate_vocals=True,
                       gate_target=_biased_detector(act_dir, 20.0)).separate(x, 22050)
    never = Separator(["vocals"], targets_dir=[act_dir], gate_vocals=True,
                      gate_target=_biased_detector(act_dir, -20.0)).separate(x, 22050)
    np.testing.assert_allclose(always["vocals"], plain["vocals"], atol=1e-6)
    assert np.abs(never["vocals"]).max() < 1e-5
    np.testing.assert_allclose(never["accompaniment"], x, atol=1e-5)
    with pytest.raises(OptionError, match="not an activity detector"):
        Separator(["vocals"], targets_dir=[act_dir], gate_vocals=True, gate_target="vocals")


@pytest.mark.slow
def test_train_activity_detector_and_score_it(tmp_path):
    root = make_musdb(tmp_path / "data", tracks=10, seconds=3.0)
    make_musdb(tmp_path / "data", tracks=2, seconds=3.0, subset="test", seed=7)
    tdir = tmp_path / "t"
    tdir.mkdir()
    (tdir / "vocal-activity.toml").write_text(
        'name = "vocal-activity"\nstems = ["vocals"]\ntask = "activity"\n[model]\npreset = "tiny"\n'
        'conv_channels = 4\ndense_units = 16\n')
    out = tmp_path / "va.npz"
    assert main(["train", "--target", "vocal-activity", "--musdb-root", str(root), "--is-wav", "--steps", "300",
                 "--batch", "8", "--frames", "32", "--lr", "3e-3", "--run-dir",
                 str(tmp_path / "run"), "--out",
                 str(out), "--targets-dir", str(tdir), "-q"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_accuracy" in r for r in rows)
    model, spec, _ = checkpoint.load_model(out)
    det = vad.ActivityDetector(loaded=LoadedTarget(load_spec(tdir / "vocal-activity.toml"), model, out, {}))
    res = evaluate.evaluate_activity(root, subset="test", detector=det)
    assert res["all"]["accuracy"] > 0.8, res
    seg = res["segments"]  # segment decisions (hysteresis, bridged gaps) beat the best constant guess
    assert seg["frames"] == res["all"]["frames"]
    assert seg["accuracy"] > max(seg["voiced_fraction"], 1 - seg["voiced_fraction"]) + 0.05, seg


def test_cli_vad(act_dir, tmp_path, capsys):
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(wav, tone_mix(22050, 2.0, 1)[0], 22050)
    png = tmp_path / "a.png"
    assert main(["vad", str(wav), "--json", "--plot", str(png), "--targets-dir", str(act_dir)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report[str(wav)]) == {"segments", "voiced_seconds", "duration"}
    assert png.stat().st_size > 5000
    assert main(["vad", "--targets-dir", str(act_dir)]) == 2
    assert main(["vad", str(wav), "--target", "vocals", "--targets-dir", str(act_dir)]) == 2


def test_cli_vad_scores_named_tracks_of_a_dataset(act_dir, tmp_path, capsys):
    root = make_musdb(tmp_path / "db", tracks=2, subset="test", seconds=2.0)
    names = sorted(p.name for p in (root / "test").iterdir())
    assert main(["vad", "--musdb-root", str(root), "--is-wav", "--tracks", names[0],
                 "--targets-dir", str(act_dir)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert list(res["tracks"]) == [names[0]] and 0.0 <= res["all"]["accuracy"] <= 1.0
    assert main(["vad", "--musdb-root", str(root), "--is-wav", "--tracks", "nope",
                 "--targets-dir", str(act_dir)]) == 2
    assert "No tracks" in capsys.readouterr().err


def test_evaluate_scores_gated_vocals(act_dir, tmp_path):
    from stemsplit.evaluate import evaluate_dataset

    root = make_musdb(tmp_path / "db", tracks=1, subset="test", seconds=2.0)
    res = evaluate_dataset(root, targets=["vocals"], methods=["model", "model-gated"], targets_dir=[act_dir],
                           quick=True)
    rows = {(r["method"], r["stem"]): r for r in res.rows}
    assert np.isfinite(rows[("model-gated", "vocals")]["SDR"]) and np.isfinite(rows[("model", "vocals")]["SDR"])
    with pytest.raises(OptionError, match="include vocals"):
        evaluate_dataset(root, targets=["drums"], methods=["model-gated"], targets_dir=[act_dir])
