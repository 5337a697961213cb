import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from stemsplit import checkpoint
from stemsplit.cli import main
from stemsplit.data.tracks import split_tracks
from stemsplit.errors import CheckpointError, OptionError
from stemsplit.model import MaskCNN, model_config
from stemsplit.targets import get_target, is_shipped_checkpoint, load_spec, shipped_checkpoint_dirs
from stemsplit.train import (
    STATS_STREAM,
    TARGET_LEVEL_FLOOR,
    TrainConfig,
    Trainer,
    loss_fn,
    make_optimizer,
    mix_weights,
    train_step,
)

from .conftest import load_script, make_musdb

SMALL = '[model]\npreset = "tiny"\nconv_channels = 4\ndense_units = 16\n'


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    make_musdb(root, tracks=3, seconds=3.0, extra_stems=("piano",))
    make_musdb(root, tracks=1, seconds=3.0, subset="test", seed=5, extra_stems=("piano",))
    return root


@pytest.fixture(scope="module")
def tdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("targets")
    (d / "vocals.toml").write_text('name = "vocals"\nstems = ["vocals"]\npriority = 4\n' + SMALL)
    (d / "piano.toml").write_text('name = "piano"\ndescription = "a new target: only this file"\n'
                                  'stems = ["piano"]\n' + SMALL)
    return d


def _trainer(data, tdir, run_dir, steps=6, resume=False, init=None, **kw):
    spec = load_spec(tdir / "vocals.toml")
    train, valid = split_tracks([data], is_wav=True)
    cfg = TrainConfig(steps=steps, batch=4, frames=8, val_every=1000, val_batches=1, val_seconds=2.0, warmup=2,
                      **kw)
    return Trainer(spec, train, valid, cfg, run_dir, resume=resume, init=init)


def _params(tr):
    return checkpoint.tree_to_arrays(jax.device_get(tr.params))


@pytest.mark.slow
def test_loss_falls(data, tdir, tmp_path):
    tr = _trainer(data, tdir, tmp_path / "run", steps=80, lr=3e-3)
    tr.run(out=tmp_path / "v.npz", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.8 * losses[0], losses
    assert (tmp_path / "v.npz").exists() and (tmp_path / "run" / "best.npz").exists()
    # the shipped file carries a binary-mask threshold calibrated on training tracks
    meta = checkpoint.load(tmp_path / "v.npz")[1]["training"]
    sdr = {float(k): v for k, v in meta["calibration"]["sdr"].items()}
    assert meta["threshold"] == max(sdr, key=sdr.get)
    assert meta["calibration"]["tracks"] and meta["calibration"]["data"].startswith("training tracks")
    val = [r for r in rows if "val_sdr" in r]
    assert val and np.isfinite(val[-1]["val_sdr"])
    # binary validation at several thresholds from one pass; val_sdr is the one at the default threshold, and it
    # is what a separation of the validation tracks with that threshold scores
    by_t = val[-1]["val_sdr_by_threshold"]
    assert set(by_t) == {"0.30", "0.40", "0.50"} and by_t["0.50"] == val[-1]["val_sdr"]
    # and the same as BSSEval medians its windows (evaluate.windowed_sdr), from the same pass
    w = val[-1]["val_wsdr_by_threshold"]
    assert set(w) == set(by_t) and w["0.50"] == val[-1]["val_wsdr"] and "val_wsdr_soft" in val[-1]
    from stemsplit.evaluate import quick_sdr, target_excerpt, windowed_sdr
    from stemsplit.separate import Separator

    now = tr.validation_sdr()
    sep = {m: Separator(loaded=[tr._loaded()], residual=False, mask=m) for m in ("binary", "soft")}
    pairs = [(target_excerpt(t, ["vocals"], tr.cfg.val_seconds), t.sr) for t in tr.valid_tracks]
    for m, key in (("binary", "val_sdr"), ("soft", "val_sdr_soft")):
        out = [(mix, ref, sep[m].separate(mix, sr)["vocals"], sr) for (mix, ref), sr in pairs]
        assert abs(np.median([quick_sdr(r, e) for _, r, e, _ in out]) - now[key]) < 1e-3
        w = np.nanmedian([windowed_sdr(r, e, x, sr) for x, r, e, sr in out])
        assert abs(w - now[key.replace("sdr", "wsdr")]) < 1e-3
    # every validated model is kept beside the best, named by its step, with its validation in its metadata
    kept = sorted((tmp_path / "run" / "validated").glob("step-*.npz"))
    assert [p.name for p in kept] == [f"step-{r['step']:06d}.npz" for r in val]
    assert checkpoint.load_model(kept[-1])[2]["training"]["val_sdr"] == val[-1]["val_sdr"]


@pytest.mark.slow
def test_resume_gives_the_same_parameters(data, tdir, tmp_path):
    straight = _trainer(data, tdir, tmp_path / "a")
    straight.run(progress=False, out=tmp_path / "a.npz")
    first = _trainer(data, tdir, tmp_path / "b")
    assert first.run(progress=False, until=3) is None
    with pytest.raises(OptionError, match="--resume"):
        _trainer(data, tdir, tmp_path / "b")
    second = _trainer(data, tdir, tmp_path / "b", resume=True)
    assert second.step == 3
    second.run(progress=False, out=tmp_path / "b.npz")
    a, b = _params(straight), _params(second)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    with pytest.raises(OptionError, match="batch"):  # resuming with other settings is refused
        Trainer(load_spec(tdir / "vocals.toml"), *split_tracks([data], is_wav=True),
                TrainConfig(steps=6, batch=2, frames=8), tmp_path / "b", resume=True)


@pytest.mark.slow
def test_resume_with_ema_and_wbce_gives_the_same_weights_and_average(data, tdir, tmp_path):
    kw = {"loss": "wbce", "ema": 0.9}
    straight = _trainer(data, tdir, tmp_path / "a", **kw)
    straight.run(progress=False, out=tmp_path / "a.npz")
    first = _trainer(data, tdir, tmp_path / "b", **kw)
    first.run(progress=False, until=3)
    second = _trainer(data, tdir, tmp_path / "b", resume=True, **kw)
    second.run(progress=False, out=tmp_path / "b.npz")
    for tree in ("params", "ema"):
        a = checkpoint.tree_to_arrays(jax.device_get(getattr(straight, tree)))
        b = checkpoint.tree_to_arrays(jax.device_get(getattr(second, tree)))
        for k in a:
            np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=f"{tree} {k}")
    # the model validated and written is the average, not the raw weights
    raw, avg = _params(straight), checkpoint.tree_to_arrays(jax.device_get(straight.ema))
    written = checkpoint.tree_to_arrays(nnx.state(straight.model(), nnx.Param))
    assert any(not np.allclose(raw[k], avg[k]) for k in raw)
    for k in avg:
        np.testing.assert_array_equal(written[k], avg[k])
    with pytest.raises(OptionError, match="ema"):
        Trainer(load_spec(tdir / "vocals.toml"), *split_tracks([data], is_wav=True),
                TrainConfig(steps=6, batch=4, frames=8, loss="wbce", ema=0.5), tmp_path / "b", resume=True)


@pytest.mark.slow
def test_train_step_moves_the_average_by_its_decay():
    m = MaskCNN(model_config("tiny"), rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(m, nnx.Param, ...)
    cfg = TrainConfig(steps=10, lr=1e-2, warmup=1, loss="wbce", ema=0.75)
    tx = make_optimizer(cfg)
    x = jax.random.normal(jax.random.key(1), (2, 4 + 24, 513))
    y = jax.random.uniform(jax.random.key(2), (2, 4, 513))
    ema0 = jax.tree.map(lambda a: a + 1.0, params)
    for step, d in ((10_000, 0.75), (0, 0.1), (2, 0.25)):  # the decay warms up as (1 + step) / (10 + step)
        new, _, ema, loss = train_step(graphdef, params, rest, tx.init(params), ema0, x, y, jax.random.key(3),
                                       step, tx=tx, loss_kind="wbce", ema_decay=0.75)
        for e0, p, e in zip(jax.tree.leaves(ema0), jax.tree.leaves(new), jax.tree.leaves(ema), strict=True):
            np.testing.assert_allclose(e, d * e0 + (1 - d) * p, rtol=1e-5, atol=1e-5)
        assert np.isfinite(float(loss))


def test_wbce_weights_bins_by_the_mix_magnitude():
    """Against a direct float64 computation: BCE per bin times |X| (from the features), normalised per
    example to mean 1; labels above 0.5 and logits above 0 agree on who dominates."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 6, (3, 5 + 24, 513)).astype(np.float32)
    x[1] *= 0.1  # a quiet example counts as much as a loud one
    logits = rng.standard_normal((3, 5, 513)).astype(np.float32)
    y = rng.uniform(0, 1, (3, 5, 513)).astype(np.float32)
    mag = np.expm1(x[:, 12:17].astype(np.float64))
    w = mag / mag.mean(axis=(1, 2), keepdims=True)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(float(loss_fn(jnp.asarray(logits), jnp.asarray(y), "wbce", jnp.asarray(x))),
                               (bce * w).mean(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mix_weights(jnp.asarray(x), 5)).mean(axis=(1, 2)), 1.0, rtol=1e-5)
    # ebce: the same labels weighted by the energy (|X| squared), as SDR weighs errors
    e = mag ** 2 / (mag ** 2).mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(float(loss_fn(jnp.asarray(logits), jnp.asarray(y), "ebce", jnp.asarray(x))),
                               (bce * e).mean(), rtol=1e-5)
    # tbce: each example normalised by its target's level (mean of labels * |X|, floored at a fraction of the
    # mix's), then mean 1 over the batch: the example whose target is quiet weighs more
    y2 = y.copy()
    y2[0] *= 0.1  # a quiet target: normalised by its own level
    y2[2] = 0.0  # no target: normalised by the floor
    level = np.maximum((y2 * mag).mean(axis=(1, 2), keepdims=True),
                       TARGET_LEVEL_FLOOR * mag.mean(axis=(1, 2), keepdims=True))
    t = mag / level
    t /= t.mean()
    bce2 = -(y2 * np.log(p) + (1 - y2) * np.log(1 - p))
    np.testing.assert_allclose(float(loss_fn(jnp.asarray(logits), jnp.asarray(y2), "tbce", jnp.asarray(x))),
                               (bce2 * t).mean(), rtol=1e-5)
    per_example = np.asarray(mix_weights(jnp.asarray(x), 5, 1.0, jnp.asarray(y2))).mean(axis=(1, 2))
    assert per_example[0] > 1.5 * per_example[1] and per_example[2] > 1.5 * per_example[1]
    assert per_example[0] == pytest.approx(per_example[2], rel=0.3)  # both at (or near) the floor
    # one output (vocal activity): plain cross-entropy
    one = loss_fn(jnp.asarray(logits[..., :1]), jnp.asarray(y[..., :1]), "wbce", jnp.asarray(x))
    np.testing.assert_allclose(float(one), bce[..., :1].mean(), rtol=1e-5)


@pytest.mark.slow
def test_article_single_frame_examples_train_the_same_network(data, tdir, tmp_path):
    spec = load_spec(tdir / "vocals.toml")
    train, valid = split_tracks([data], is_wav=True)
    tr = Trainer(spec, train, valid, TrainConfig(steps=2, batch=4, frames=1, val_every=1000), tmp_path / "r")
    out = tr.run(progress=False, out=tmp_path / "one.npz")
    model, _, _ = checkpoint.load_model(out)
    assert model(np.zeros((1, 30, 513), np.float32)).shape == (1, 6, 513)


SCRIPT = textwrap.dedent("""
    import sys, numpy as np, jax
    sys.path.insert(0, {tests!r})
    from stemsplit import checkpoint
    from stemsplit.data.tracks import split_tracks
    from stemsplit.targets import load_spec
    from stemsplit.train import TrainConfig, Trainer
    spec = load_spec({toml!r})
    train, valid = split_tracks([{data!r}], is_wav=True)
    tr = Trainer(spec, train, valid, TrainConfig(steps=3, batch=4, frames=8, val_every=1000, warmup=1), {run!r})
    tr.run(progress=False, out={out!r})
    print(jax.device_count())
""")


@pytest.mark.slow
def test_two_devices_match_one(data, tdir, tmp_path):
    results = {}
    for n in (1, 2):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
        code = SCRIPT.format(tests=os.path.dirname(__file__), toml=str(tdir / "vocals.toml"), data=str(data),
                             run=str(tmp_path / f"run{n}"), out=str(tmp_path / f"p{n}.npz"))
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip().splitlines()[-1] == str(n)
        results[n] = checkpoint.load(tmp_path / f"p{n}.npz")[0]
    for k in results[1]:
        np.testing.assert_allclose(results[1][k], results[2][k], atol=1e-5, err_msg=k)


def _shipped_files() -> dict:
    return {p: p.stat().st_mtime_ns for d in shipped_checkpoint_dirs() if d.is_dir() for p in d.rglob("*")}


@pytest.mark.slow
def test_cli_trains_a_new_target_from_a_toml_and_separates_with_it(data, tdir, tmp_path, capsys):
    run = tmp_path / "run"
    before = _shipped_files()
    argv = ["train", "--target", "piano", "--musdb-root", str(data), "--is-wav", "--steps", "4", "--batch", "2",
            "--frames", "8", "--run-dir", str(run), "--targets-dir", str(tdir), "-q", "--exclude-tracks",
            sorted(p.name for p in (data / "train").iterdir())[0]]
    assert main(argv) == 0
    out = run / "piano.npz"  # no --out: the run folder, never the package's checkpoints
    model, spec, meta = checkpoint.load_model(out)
    assert spec.name == "piano" and "1 named tracks excluded" in meta["training"]["data"]
    # provenance names the data folders, never this machine's paths
    assert f"from folders {data.name}" in meta["training"]["data"] and str(data.parent) not in meta["training"]["data"]
    assert _shipped_files() == before
    assert main(["train", "--plot", str(run)]) == 0 and (run / "curves.png").stat().st_size > 1000
    sep_out = tmp_path / "sep"
    mix = data / "test" / "song5-0" / "mixture.wav"
    code = main(["separate", str(mix), "--targets", "piano", "--targets-dir", str(tdir), "--checkpoint-dir",
                 str(run), "-o", str(sep_out), "-q"])
    assert code == 0 and (sep_out / "mixture" / "piano.wav").exists()


def test_cli_exclude_tracks_reads_names_or_a_file(data, tmp_path, monkeypatch):
    """--exclude-tracks takes comma-separated names or @FILE (one per line; MUSDB18 names may hold commas)."""
    calls = []
    monkeypatch.setattr("stemsplit.train.train", lambda *a, **k: calls.append(k["exclude_tracks"]) or None)
    listed = tmp_path / "keep-out.txt"
    listed.write_text("Jokers, Jacks & Kings - Sea Of Leaves\n\nsong0-1\n")
    base = ["train", "--target", "vocals", "--musdb-root", str(data), "--is-wav", "--run-dir", str(tmp_path / "r"),
            "-q"]
    assert main(base + ["--exclude-tracks", f"@{listed}"]) == 0
    assert main(base + ["--exclude-tracks", "song0-1, song0-2"]) == 0
    assert main(base) == 0
    assert calls == [["Jokers, Jacks & Kings - Sea Of Leaves", "song0-1"], ["song0-1", "song0-2"], None]


def test_shipped_checkpoints_are_overwritten_only_when_asked(data, tdir, tmp_path, capsys, monkeypatch):
    shipped = get_target("vocals").find_checkpoint()
    assert shipped is not None and is_shipped_checkpoint(shipped) and not is_shipped_checkpoint(tmp_path / "v.npz")
    calls = []
    monkeypatch.setattr("stemsplit.train.train", lambda *a, **k: calls.append(k["out"]) or Path(k["out"]))
    before = _shipped_files()
    argv = ["train", "--target", "vocals", "--musdb-root", str(data), "--is-wav", "--out", str(shipped), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shipped" in err[0] and "--overwrite-shipped" in err[0] and calls == []
    assert main(["calibrate", str(shipped), "--musdb-root", str(data), "--is-wav"]) == 2
    assert "--overwrite-shipped" in capsys.readouterr().err
    # a run folder inside the shipped checkpoints would put the default output there too
    assert main(["train", "--target", "vocals", "--musdb-root", str(data), "--is-wav", "--run-dir",
                 str(shipped.parent), "-q"]) == 2
    assert "--overwrite-shipped" in capsys.readouterr().err
    assert _shipped_files() == before
    assert main(argv + ["--overwrite-shipped"]) == 0 and calls == [str(shipped)]  # (train itself is stubbed)


@pytest.mark.slow
def test_init_fine_tunes_from_a_checkpoint(data, tdir, tmp_path, capsys):
    first = _trainer(data, tdir, tmp_path / "a", steps=4)
    first.run(progress=False, out=tmp_path / "a.npz")
    saved = checkpoint.load(tmp_path / "a.npz")
    tuned = _trainer(data, tdir, tmp_path / "b", steps=4, init=tmp_path / "a.npz")
    start = _params(tuned)  # the saved weights, input standardisation included, before any step
    assert tuned.step == 0 and tuned.init["sha256"] == saved[1]["sha256"] and tuned.init["step"] == 4
    for k, v in start.items():
        np.testing.assert_array_equal(v, saved[0]["param/" + k], err_msg=k)
    fresh = _params(_trainer(data, tdir, tmp_path / "c", steps=4))
    assert any(not np.array_equal(fresh[k], start[k]) for k in start)
    tuned.run(progress=False, until=2)
    resumed = _trainer(data, tdir, tmp_path / "b", steps=4, resume=True)  # the run's own state wins on resume
    assert resumed.step == 2 and resumed.init == tuned.init
    resumed.run(progress=False, out=tmp_path / "b.npz")
    assert checkpoint.load(tmp_path / "b.npz")[1]["training"]["init"]["sha256"] == saved[1]["sha256"]
    # a checkpoint of another model, or none, is one clear line before any data is read
    other = tdir / "wide.toml"
    other.write_text('name = "vocals"\nstems = ["vocals"]\n[model]\npreset = "tiny"\nconv_channels = 6\n'
                     'dense_units = 16\n')
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "vocals.toml").write_text(other.read_text())
    other.unlink()
    base = ["train", "--target", "vocals", "--musdb-root", "/nonexistent", "--is-wav", "-q"]
    capsys.readouterr()
    assert main(base + ["--targets-dir", str(wide), "--init", str(tmp_path / "a.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init" in err[0] and "not the" in err[0]
    assert main(base + ["--targets-dir", str(tdir), "--init", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such checkpoint" in err[0]


def test_a_model_with_context_layers_trains_validates_and_separates(data, tmp_path):
    """The trainer cuts examples to the model's receptive field (61 frames with two context layers)."""
    d = tmp_path / "targets"
    d.mkdir()
    (d / "vocals.toml").write_text('name = "vocals"\nstems = ["vocals"]\n' + SMALL + 'decoder = 2\n'
                                   'context_layers = 2\n')
    tr = _trainer(data, d, tmp_path / "run", steps=3)
    assert tr.sampler.context == 8 + 60 and tr.val_sampler.context == 8 + 60
    out = tr.run(progress=False, out=tmp_path / "ctx.npz")
    v = tr.validation_sdr()
    assert np.isfinite(v["val_sdr"]) and np.isfinite(v["val_sdr_soft"])
    model, spec, _ = checkpoint.load_model(out)
    assert spec.model.context_layers == 2 and model.ctx2.kernel.shape == (3, 3, 4, 4)
    # an activity detector with the same context layers takes them with the trunk (--init transfer)
    (d / "vocal-activity.toml").write_text('name = "vocal-activity"\nstems = ["vocals"]\ntask = "activity"\n'
                                           + SMALL + 'context_layers = 2\n')
    train, valid = split_tracks([data], is_wav=True)
    cfg = TrainConfig(steps=1, batch=4, frames=8, val_every=1000, val_batches=1, val_seconds=2.0, warmup=1,
                      loss="bce")
    vad = Trainer(load_spec(d / "vocal-activity.toml"), train, valid, cfg, tmp_path / "vad", init=out)
    assert vad.init["layers"] == ["in_shift", "in_scale", "conv1", "conv2", "conv3", "conv4", "ctx1", "ctx2",
                                  "dense"]
    np.testing.assert_array_equal(_params(vad)["ctx2/kernel"], np.asarray(model.ctx2.kernel[...]))


def test_weight_decay_shrinks_the_kernels_only():
    m = MaskCNN(model_config("tiny"), rngs=nnx.Rngs(0))
    params = nnx.state(m, nnx.Param)
    zero = jax.tree.map(jnp.zeros_like, params)
    for wd in (0.0, 0.1):
        tx = make_optimizer(TrainConfig(steps=10, lr=0.5, warmup=1, weight_decay=wd))
        state = tx.init(params)
        for _ in range(2):  # the first step runs at the warm-up's zero learning rate
            updates, state = tx.update(zero, state, params)
        new = optax.apply_updates(params, updates)
        for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(new), strict=True):
            name = jax.tree_util.keystr(path)
            if wd and "kernel" in name:
                assert np.all(np.abs(np.asarray(b)) < np.abs(np.asarray(a)) + 1e-12), name
                assert not np.allclose(a, b), name
            else:  # no gradient, no decay: unchanged
                np.testing.assert_array_equal(a, b, err_msg=name)
    with pytest.raises(OptionError, match="weight_decay"):
        TrainConfig(weight_decay=-0.1)


def test_resume_takes_a_state_written_before_a_model_setting_existed(data, tdir, tmp_path):
    tr = _trainer(data, tdir, tmp_path / "run", steps=4)
    tr.run(progress=False, until=2)
    arrays, meta = checkpoint.load(tmp_path / "run" / "state.npz")
    del meta["target"]["model"]["harmonics"]  # a setting added after the run started, at its default
    meta.pop("sha256", None)
    checkpoint.save(tmp_path / "run" / "state.npz", arrays, meta)
    again = _trainer(data, tdir, tmp_path / "run", steps=4, resume=True)
    assert again.step == 2
    meta["target"]["model"]["conv_channels"] += 1  # a different model is still refused
    checkpoint.save(tmp_path / "run" / "state.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="different model"):
        _trainer(data, tdir, tmp_path / "run", steps=4, resume=True)


def test_init_transfers_convolutions_to_another_task(data, tdir, tmp_path, capsys):
    """A vocals mask checkpoint lends its convolutions and dense layer to an activity detector."""
    first = _trainer(data, tdir, tmp_path / "a", steps=2)
    first.run(progress=False, out=tmp_path / "a.npz")
    saved = checkpoint.load(tmp_path / "a.npz")[0]
    vad = tmp_path / "vad"
    vad.mkdir()
    (vad / "vocal-activity.toml").write_text('name = "vocal-activity"\nstems = ["vocals"]\ntask = "activity"\n'
                                             + SMALL)
    spec = load_spec(vad / "vocal-activity.toml")
    train, valid = split_tracks([data], is_wav=True)
    cfg = TrainConfig(steps=2, batch=4, frames=8, val_every=1000, val_batches=1, val_seconds=2.0, warmup=2,
                      loss="bce")
    tr = Trainer(spec, train, valid, cfg, tmp_path / "b", init=tmp_path / "a.npz")
    start = _params(tr)
    copied = ["in_shift", "in_scale", "conv1", "conv2", "conv3", "conv4", "dense"]
    assert tr.init["layers"] == copied
    for k, v in start.items():
        if k.split("/")[0] in copied:
            np.testing.assert_array_equal(v, saved["param/" + k], err_msg=k)
    assert start["head/kernel"].shape == (16, 1)  # the head is the detector's own, freshly initialised
    tr.run(progress=False, out=tmp_path / "b.npz")
    assert checkpoint.load(tmp_path / "b.npz")[1]["training"]["init"]["layers"] == copied
    # convolutions of another width cannot be lent: one line, exit 2
    (vad / "vocal-activity.toml").write_text((vad / "vocal-activity.toml").read_text()
                                             .replace("conv_channels = 4", "conv_channels = 6"))
    capsys.readouterr()
    assert main(["train", "--target", "vocal-activity", "--targets-dir", str(vad), "--musdb-root", "/nonexistent",
                 "--is-wav", "-q", "--init", str(tmp_path / "a.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "convolutions differ" in err[0]


def test_init_widens_a_model_with_identity_context_layers(data, tdir, tmp_path):
    """A transfer into a model with context layers the source lacks starts them as the identity, so the widened
    model begins where the source was (its window's middle) instead of from a random re-mapping of the features
    its copied dense layer was trained on."""
    first = _trainer(data, tdir, tmp_path / "a", steps=2)
    first.run(progress=False, out=tmp_path / "a.npz")
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "vocals.toml").write_text((tdir / "vocals.toml").read_text().replace("[model]\n",
                                                                                 "[model]\ncontext_layers = 2\n"))
    spec = load_spec(wide / "vocals.toml")
    assert spec.model.context_layers == 2
    train, valid = split_tracks([data], is_wav=True)
    cfg = TrainConfig(steps=1, batch=4, frames=8, val_every=1000, val_batches=1, val_seconds=2.0, warmup=2)
    tr = Trainer(spec, train, valid, cfg, tmp_path / "b", init=tmp_path / "a.npz")
    assert tr.init["identity"] == ["ctx1", "ctx2"]
    assert "head" in tr.init["layers"]  # the same task keeps its head
    start = _params(tr)
    assert not np.any(start["ctx1/bias"])
    np.testing.assert_array_equal(start["ctx2/kernel"][1, 1], np.eye(4, dtype=np.float32))
    assert not np.any(start["ctx2/kernel"][0]) and not np.any(start["ctx2/kernel"][:, 2])
    src = checkpoint.load_model(tmp_path / "a.npz")[0]
    x = np.random.default_rng(3).standard_normal((1, 80, 513)).astype(np.float32) + 2.0
    narrow, widened = np.asarray(src(x))[0], np.asarray(tr.model()(x))[0]  # 56 and 20 frames
    np.testing.assert_allclose(widened, narrow[18:-18], atol=1e-3 * float(np.abs(narrow).max()))
    # a source that already has the layers lends them: nothing is reset
    tr.run(progress=False, out=tmp_path / "b.npz")
    again = Trainer(spec, train, valid, cfg, tmp_path / "c", init=tmp_path / "b.npz")
    assert "identity" not in again.init


def test_train_errors(data, tdir, capsys):
    assert main(["train", "--target", "vocals"]) == 2
    assert "--musdb-root" in capsys.readouterr().err
    assert main(["train", "--target", "kazoo", "--musdb-root", str(data), "--targets-dir", str(tdir)]) == 2
    assert main(["train", "--target", "vocals", "--musdb-root", "/nonexistent", "--is-wav"]) == 2
    assert "not found" in capsys.readouterr().err
    for opt in ("--drop-target", "--remix", "--remix-sources", "--eq", "--reverb", "--speed"):
        with pytest.raises(SystemExit) as e:
            main(["train", "--target", "vocals", "--musdb-root", str(data), "--is-wav", opt, "1.5"])
        assert e.value.code == 2 and "between 0 and 1" in capsys.readouterr().err
    with pytest.raises(OptionError):
        TrainConfig(loss="hinge")


@pytest.mark.slow
def test_inputs_start_standardised_from_the_training_data(data, tdir, tmp_path):
    tr = _trainer(data, tdir, tmp_path / "run", steps=2)
    m = tr.model()
    x = tr.sampler.batch(0, 0, 16, stream=STATS_STREAM)[0].reshape(-1, 513)
    assert float(m.in_shift[...].mean()) > 0.5  # log(1 + |X| / 1e-3) of real signal is far from 0
    z = (x - np.asarray(m.in_shift[...])) * np.asarray(m.in_scale[...])
    live = x.std(axis=0) > 0.5
    assert abs(z[:, live].mean()) < 0.3 and 0.6 < z[:, live].std() < 1.3
    tr.run(progress=False)
    # a resumed run keeps its trained statistics instead of drawing new ones
    again = _trainer(data, tdir, tmp_path / "run", steps=2, resume=True)
    np.testing.assert_array_equal(np.asarray(again.model().in_shift[...]), np.asarray(tr.model().in_shift[...]))


@pytest.mark.slow
def test_sigterm_saves_the_state_and_resume_continues(data, tdir, tmp_path):
    """A session that ends by SIGTERM (as background runs do) keeps its progress."""
    import signal
    import time

    run = tmp_path / "run"
    argv = [sys.executable, "-m", "stemsplit", "train", "--target", "vocals", "--musdb-root", str(data), "--is-wav",
            "--steps", "100000", "--batch", "2", "--frames", "8", "--val-every", "100000", "--run-dir", str(run),
            "--targets-dir", str(tdir), "-q"]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics, deadline = run / "metrics.jsonl", time.time() + 480  # a loaded machine compiles slowly
    while time.time() < deadline and p.poll() is None and not (metrics.exists() and '"loss"' in metrics.read_text()):
        time.sleep(0.5)
    assert p.poll() is None, p.communicate()[1][-2000:]
    assert '"loss"' in metrics.read_text(), "the training loop did not start in time"
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130 and "interrupted" in err, err[-2000:]
    step = checkpoint.load(run / "state.npz")[1]["step"]
    assert step >= 20
    tr = Trainer(load_spec(tdir / "vocals.toml"), *split_tracks([data], is_wav=True),
                 TrainConfig(steps=100000, batch=2, frames=8, val_every=100000, loss="wbce", ema=0.999),
                 run, resume=True)
    assert tr.step == step


def test_bench_train_drives_the_current_training_step(data, tdir, tmp_path):
    # benchmarks/bench_train.py calls the trainer's jitted step directly: it must keep up with its signature
    bench = load_script("benchmarks/bench_train.py")
    train, valid = split_tracks([data], is_wav=True)
    r = bench.measure(load_spec(tdir / "vocals.toml"), train, valid, frames=4, batch=2, steps=1, run_dir=tmp_path)
    assert r["step_s"] > 0 and r["data_s"] > 0 and r["target_frames_per_step"] == 8
