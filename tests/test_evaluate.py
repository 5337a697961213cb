import json

import numpy as np
import pytest

from stemsplit import evaluate
from stemsplit.cli import main
from stemsplit.errors import OptionError

from .conftest import make_musdb


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("musdb")
    return make_musdb(r, tracks=2, seconds=3.0, subset="test", sr=22050)


def _sources(seed=0, sr=22050, seconds=3.0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    voice = sum(0.3 / k * np.sin(2 * np.pi * 220 * k * t + k) for k in range(1, 12))
    noise = 0.1 * rng.standard_normal(t.size)
    return {"vocals": voice[None].astype(np.float32), "accompaniment": noise[None].astype(np.float32)}


def test_perfect_estimate_scores_very_high():
    s = _sources()
    got = evaluate.score(s, s, 22050)
    assert got["vocals"]["SDR"] > 60 and got["accompaniment"]["SDR"] > 60
    assert evaluate.score(s, s, 22050, quick=True)["vocals"]["SDR"] > 60


def test_ibm_far_above_mixture_as_estimate():
    s = _sources()
    mix = sum(s.values())
    ibm = evaluate.score(s, evaluate.oracle_separate(s, 22050, "ibm"), 22050)
    floor = evaluate.score(s, {k: mix for k in s}, 22050)
    assert ibm["vocals"]["SDR"] > floor["vocals"]["SDR"] + 10
    irm = evaluate.score(s, evaluate.oracle_separate(s, 22050, "irm"), 22050)
    assert irm["vocals"]["SDR"] > floor["vocals"]["SDR"] + 10


@pytest.mark.slow
def test_pyin_baseline_beats_the_mixture():
    s = _sources(seed=1)
    mix = sum(s.values())
    est = evaluate.pyin_separate(mix, 22050)
    assert set(est) == {"vocals", "accompaniment"} and est["vocals"].shape == mix.shape
    base = evaluate.score(s, est, 22050)["vocals"]["SDR"]
    floor = evaluate.score(s, {k: mix for k in s}, 22050)["vocals"]["SDR"]
    assert base > floor + 3, (base, floor)


def test_quick_sdr_closed_form():
    x = np.ones((1, 100))
    assert abs(evaluate.quick_sdr(x, 0.9 * x) - 20.0) < 1e-9


@pytest.mark.slow
def test_evaluate_dataset_and_report(root, tmp_path, tiny_targets):
    res = evaluate.evaluate_dataset(root, targets=["vocals", "drums", "bass", "other"],
                                    methods=["model", "model-soft", "ibm", "mix"], out=tmp_path / "r",
                                    targets_dir=[tiny_targets])
    summary = {(r["method"], r["stem"]): r for r in res.summary()}
    # the same loaded models, binary and ratio masks: both scored, and they differ
    assert summary[("model-soft", "vocals")]["tracks"] == 2
    assert summary[("model-soft", "vocals")]["SDR"] != summary[("model", "vocals")]["SDR"]
    assert summary[("ibm", "vocals")]["tracks"] == 2
    for stem in ("vocals", "drums", "bass", "other"):
        assert summary[("ibm", stem)]["SDR"] > summary[("mix", stem)]["SDR"] + 5
    assert (tmp_path / "r" / "summary.md").read_text().count("|") > 20
    assert (tmp_path / "r" / "summary.png").stat().st_size > 1000
    one = json.loads(next((tmp_path / "r" / "ibm").glob("*.json")).read_text())
    assert set(one["scores"]) == {"vocals", "drums", "bass", "other"}
    # windowed scores: BSSEval's SDR without the distortion filter, SDR only, close to BSSEval on mask estimates
    win = evaluate.evaluate_dataset(root, targets=["vocals", "drums", "bass", "other"],
                                    methods=["model", "ibm", "mix"], windowed=True, out=tmp_path / "w",
                                    targets_dir=[tiny_targets])
    for r in win.summary():
        assert set(r) == {"method", "stem", "tracks", "SDR"}
        assert abs(r["SDR"] - summary[(r["method"], r["stem"])]["SDR"]) < 0.5, (r, summary[(r["method"], r["stem"])])
    assert "without its distortion filter" in (tmp_path / "w" / "summary.md").read_text()
    with pytest.raises(OptionError, match="no joint form"):
        evaluate.evaluate_dataset(root, methods=["mix"], windowed=True, joint=True)


@pytest.mark.slow
def test_cli_evaluate(root, tmp_path, capsys):
    code = main(["evaluate", "--musdb-root", str(root), "--is-wav", "--targets", "vocals", "--method", "ibm,pyin,mix",
                 "--quick", "-o", str(tmp_path / "out"), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "NOT BSSEval" in out and "pyin" in out
    lines = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert lines[0] == "method,stem,tracks,SDR" and len(lines) == 1 + 3 * 2


def test_evaluate_errors(root, tmp_path):
    with pytest.raises(OptionError, match="vocals only"):
        evaluate.evaluate_dataset(root, targets=["drums"], methods=["pyin"])
    with pytest.raises(OptionError, match="Unknown method"):
        evaluate.evaluate_dataset(root, methods=["magic"])
    assert main(["evaluate", "--musdb-root", str(tmp_path / "none"), "--is-wav", "--method", "ibm", "-q"]) == 2


def test_silent_reference_scores_nan_and_the_rest_still_scores():
    s = _sources()
    s["drums"] = np.zeros_like(s["vocals"])
    got = evaluate.score(s, {k: v + 0.01 for k, v in s.items()}, 22050)
    assert np.isnan(got["drums"]["SDR"]) and np.isfinite(got["vocals"]["SDR"])


def test_a_resting_stem_does_not_hide_the_others_windows():
    """museval skips every window in which any source is silent: scored jointly, a stem that rests for most of
    the song leaves the others only the windows where it sounds. Scored against the rest, they keep theirs."""
    s = _sources(seconds=6.0)
    rng = np.random.default_rng(5)
    s["drums"] = (0.2 * rng.standard_normal(s["vocals"].shape)).astype(np.float32)
    s["drums"][:, 22050:] = 0.0  # drums play for the first second only
    est = {k: v.copy() for k, v in s.items()}
    est["vocals"][:, 22050:] += 2.0 * s["accompaniment"][:, 22050:]  # vocals bad while the drums rest
    joint = evaluate.score(s, est, 22050, joint=True)
    alone = evaluate.score(s, est, 22050)
    assert joint["vocals"]["SDR"] > 40  # only the one window with drums: the good one
    assert alone["vocals"]["SDR"] < 15  # every window: mostly the bad ones
    assert alone["drums"]["SDR"] > 40 and alone["accompaniment"]["SDR"] > 40  # perfect estimates
    two = {k: s[k] for k in ("vocals", "accompaniment")}
    e2 = {k: est[k] for k in two}
    assert evaluate.score(two, e2, 22050) == evaluate.score(two, e2, 22050, joint=True)


def test_windowed_sdr_is_bsseval_without_the_filter():
    """The median of per-window SDR, with museval's rule for silent windows; on an estimate whose error is the
    rest of the mix (as a mask's is) it gives BSSEval v4's figure."""
    sr = 22050
    s = _sources(seconds=6.0)
    voc, acc = s["vocals"], s["accompaniment"]
    mix = voc + acc
    leak = np.repeat([0.05, 0.1, 0.2, 0.4, 0.8, 1.6], sr)[None].astype(np.float32)  # worse each second
    est = voc + leak * acc
    got = evaluate.windowed_sdr(voc, est, mix, sr)
    per_window = [evaluate.quick_sdr(voc[:, i * sr:(i + 1) * sr], est[:, i * sr:(i + 1) * sr]) for i in range(6)]
    assert got == pytest.approx(np.median(per_window))
    bss = evaluate.score({"vocals": voc, "accompaniment": acc}, {"vocals": est, "accompaniment": mix - est}, sr)
    assert abs(got - bss["vocals"]["SDR"]) < 0.1, (got, bss["vocals"]["SDR"])
    # a window where the estimate is exactly silent is left out, as museval leaves it out (its SDR would be 0 dB)
    quiet = est.copy()
    quiet[:, 5 * sr:] = 0.0
    assert evaluate.windowed_sdr(voc, quiet, mix, sr) == pytest.approx(np.median(per_window[:5]))
    # so is one where the reference is silent, and a signal with no window to score gives NaN
    rests = voc.copy()
    rests[:, :sr] = 0.0
    assert evaluate.windowed_sdr(rests, est, rests + acc, sr) == pytest.approx(np.median(per_window[1:]))
    assert np.isnan(evaluate.windowed_sdr(voc[:, :sr // 2], est[:, :sr // 2], mix[:, :sr // 2], sr))
    with pytest.raises(OptionError, match="differ in shape"):
        evaluate.windowed_sdr(voc, est[:, :-1], mix, sr)


def test_calibration_picks_the_threshold_that_separates_best(root, tmp_path, tiny_targets, capsys):
    import shutil
    from dataclasses import replace

    from stemsplit import checkpoint
    from stemsplit.cli import main
    from stemsplit.data.tracks import find_tracks
    from stemsplit.separate import LoadedTarget, Separator

    ck = tmp_path / "vocals.npz"
    shutil.copy(tiny_targets / "vocals.npz", ck)
    model, spec, meta = checkpoint.load_model(ck)
    tracks = find_tracks(root, is_wav=True, subset="test")
    res = evaluate.calibrate_threshold(LoadedTarget(spec, model, ck, meta), tracks, seconds=1.5)
    assert res["threshold"] == max(res["sdr"], key=res["sdr"].get) and len(res["tracks"]) == len(tracks)
    assert len(set(np.round(list(res["sdr"].values()), 6))) > 1  # thresholds matter
    # each figure is what the separator itself gives at that threshold
    for t in (0.2, 0.5):
        sep = Separator(loaded=[LoadedTarget(replace(spec, threshold=t), model, ck, meta)], residual=False)
        sdr = []
        for tr in tracks:
            mix, ref = evaluate.target_excerpt(tr, ["vocals"], 1.5)
            sdr.append(evaluate.quick_sdr(ref, sep.separate(mix, tr.sr)["vocals"]))
        assert abs(np.mean(sdr) - res["sdr"][t]) < 1e-3
    # the CLI stores it in the checkpoint; a target file without a threshold then uses it, one with a threshold wins
    assert main(["calibrate", str(ck), "--musdb-root", str(root), "--is-wav", "--subset", "test",
                 "--seconds", "1.5"]) == 0
    _, _, meta = checkpoint.load_model(ck)
    assert meta["training"]["threshold"] == res["threshold"]
    assert meta["training"]["calibration"]["data"] == f"{root.name} (test), first 1.5 s"  # a folder name, not a path
    assert LoadedTarget(replace(spec, threshold=None), model, ck, meta).spec.threshold == res["threshold"]
    assert LoadedTarget(replace(spec, threshold=0.65), model, ck, meta).spec.threshold == 0.65
    assert main(["calibrate", str(ck), "--musdb-root", str(root), "--is-wav", "--tracks", "nope"]) == 2
    # --list-tracks prints the selection (no checkpoint needed) as a file --tracks @FILE reads back
    capsys.readouterr()
    assert main(["calibrate", "--musdb-root", str(root), "--is-wav", "--subset", "test", "--list-tracks"]) == 0
    listed = tmp_path / "tracks.txt"
    listed.write_text(capsys.readouterr().out)
    assert listed.read_text().split("\n")[:-1] == [t.name for t in tracks]
    assert main(["calibrate", str(ck), "--musdb-root", str(root), "--is-wav", "--subset", "test", "--seconds", "1.5",
                 "--tracks", f"@{listed}"]) == 0
    assert checkpoint.load_model(ck)[2]["training"]["calibration"]["tracks"] == [t.name for t in tracks]
    assert main(["calibrate", "--musdb-root", str(root), "--is-wav"]) == 2
    # calibrated on the windowed median instead: each figure is the mean over tracks of windowed_sdr
    win = evaluate.calibrate_threshold(LoadedTarget(spec, model, ck, meta), tracks, seconds=2.0, metric="windowed")
    assert win["metric"] == "windowed" and win["threshold"] == max(win["sdr"], key=win["sdr"].get)
    sep = Separator(loaded=[LoadedTarget(replace(spec, threshold=0.5), model, ck, meta)], residual=False)
    w = [evaluate.windowed_sdr(ref, sep.separate(mix, tr.sr)["vocals"], mix, tr.sr)
         for tr in tracks for mix, ref in [evaluate.target_excerpt(tr, ["vocals"], 2.0)]]
    assert abs(np.nanmean(w) - win["sdr"][0.5]) < 1e-3
    with pytest.raises(OptionError, match="unknown SDR metric"):
        evaluate.calibrate_threshold(LoadedTarget(spec, model, ck, meta), tracks, metric="loud")


def test_joint_calibration_tunes_the_others_in_the_separation_itself(root, tmp_path, tiny_targets, capsys):
    import shutil
    from dataclasses import replace

    from stemsplit import checkpoint
    from stemsplit.data.tracks import find_tracks
    from stemsplit.separate import Separator, load_target
    from stemsplit.targets import get_targets

    # target files that leave the threshold to the checkpoint, with random-weight checkpoints beside them
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("vocals", "drums", "bass", "other"):
        toml = (tiny_targets / f"{name}.toml").read_text()
        (folder / f"{name}.toml").write_text(toml.replace("threshold = 0.5\n", ""))
        shutil.copy(tiny_targets / f"{name}.npz", folder / f"{name}.npz")
    specs = get_targets(["vocals", "drums", "bass", "other"], [folder])
    loaded = [load_target(s, [folder]) for s in specs]
    assert [t.spec.threshold for t in loaded] == [0.5] * 4  # no calibration stored yet
    tracks = find_tracks(root, is_wav=True, subset="test")
    res = evaluate.calibrate_set(loaded, tracks, seconds=2.0, rounds=20)
    # the lead target (vocals) is held: its stem does not depend on the others
    assert res["tuned"] == ["drums", "bass", "other"] and res["thresholds"]["vocals"] == 0.5
    assert res["objective"] >= res["start_objective"]
    assert res["objective"] == pytest.approx(np.mean([res["sdr"][n] for n in res["tuned"]]))
    # converged: no single threshold move improves the objective (a second run from the result stays put)
    moved = [replace(t, spec=replace(t.spec, threshold=res["thresholds"][t.spec.name])) for t in loaded]
    again = evaluate.calibrate_set(moved, tracks, seconds=2.0, rounds=1)
    assert again["thresholds"] == res["thresholds"] and again["objective"] == pytest.approx(res["objective"])
    # each figure is what the four-stem separation itself gives with those thresholds
    sep = Separator(loaded=moved, residual=True)
    for name in res["tuned"]:
        got = []
        for tr in tracks:
            mix, ref = evaluate.target_excerpt(tr, [name], 2.0)
            got.append(evaluate.quick_sdr(ref, sep.separate(mix, tr.sr)[name]))
        assert np.mean(got) == pytest.approx(res["sdr"][name], abs=1e-3)
    with pytest.raises(OptionError, match="every target is held"):
        evaluate.calibrate_set(loaded[:1], tracks, hold=["vocals"])
    with pytest.raises(OptionError, match="cannot hold"):
        evaluate.calibrate_set(loaded, tracks, hold=["piano"])

    # the CLI writes the chosen thresholds into the tuned checkpoints only, and says what moved
    before = (folder / "vocals.npz").read_bytes()
    capsys.readouterr()
    args = ["calibrate", "--targets", "vocals,drums,bass,other", "--targets-dir", str(folder), "--checkpoint-dir",
            str(folder), "--musdb-root", str(root), "--is-wav", "--subset", "test", "--seconds", "2", "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "drums: threshold 0.50 ->" in out and "vocals: threshold" not in out
    assert (folder / "vocals.npz").read_bytes() == before
    for name in res["tuned"]:
        meta = checkpoint.load_model(folder / f"{name}.npz")[2]["training"]
        assert meta["calibration"]["together_with"] == [n for n in ("vocals", "drums", "bass", "other") if n != name]
        assert meta["calibration"]["data"] == f"{root.name} (test), first 2 s"
        assert load_target(get_targets([name], [folder])[0], [folder]).spec.threshold == meta["threshold"]
    # a CHECKPOINT and --targets together, a target file that fixes the threshold, a shipped checkpoint: refused
    assert main(args + [str(folder / "drums.npz")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["calibrate", "--targets", "vocals,drums", "--targets-dir", str(tiny_targets), "--checkpoint-dir",
                 str(tiny_targets), "--musdb-root", str(root), "--is-wav", "--subset", "test"]) == 2
    assert "sets a threshold" in capsys.readouterr().err
    assert main(["calibrate", "--targets", "vocals,drums", "--musdb-root", str(root), "--is-wav",
                 "--subset", "test"]) == 2
    assert "shipped" in capsys.readouterr().err
