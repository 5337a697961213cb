import dataclasses
import zipfile

import numpy as np
import pytest
from flax import nnx

from stemsplit import checkpoint
from stemsplit.errors import CheckpointError, MissingCheckpointError
from stemsplit.model import MaskCNN, model_config
from stemsplit.targets import get_target


def test_roundtrip_and_hash(tmp_path):
    arrays = {"a/b": np.arange(6, dtype=np.float32).reshape(2, 3), "c": np.array([1, 2], np.int64)}
    digest = checkpoint.save(tmp_path / "x.npz", arrays, {"kind": "test", "n": 3})
    got, meta = checkpoint.load(tmp_path / "x.npz")
    assert meta["sha256"] == digest and meta["n"] == 3
    for k in arrays:
        np.testing.assert_array_equal(got[k], arrays[k])
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("preset", ["tiny", pytest.param(None, marks=pytest.mark.slow)])
def test_model_roundtrip(tmp_path, preset):
    """Saved and loaded (the loader builds the model from shapes, then fills in the weights), it computes the
    same; None: the shipped vocals target's own model."""
    spec = get_target("vocals")
    if preset:
        spec = dataclasses.replace(spec, model=model_config(preset))
    m = MaskCNN(spec.model, rngs=nnx.Rngs(4))
    m.eval()
    checkpoint.save_model(tmp_path / "v.npz", m, spec, training={"steps": 1})
    m2, spec2, meta = checkpoint.load_model(tmp_path / "v.npz")
    assert spec2.name == "vocals" and spec2.model == spec.model and meta["training"] == {"steps": 1}
    x = np.random.default_rng(0).standard_normal((1, 30, 513)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(m(x)), np.asarray(m2(x)))


def test_corrupt_files_are_named(tmp_path):
    p = tmp_path / "x.npz"
    checkpoint.save(p, {"w": np.ones(1000, np.float32)}, {"kind": "test"})
    # change one stored value but keep the archive valid: the hash catches it
    with np.load(p) as z:
        items = {k: z[k] for k in z.files}
    items["w"] = items["w"].copy()
    items["w"][10] = 2.0
    np.savez(p, **items)
    with pytest.raises(CheckpointError, match="does not match its hash"):
        checkpoint.load(p)
    p.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(p)
    with pytest.raises(MissingCheckpointError, match="not found"):
        checkpoint.load(tmp_path / "nope.npz")


def test_truncated_file(tmp_path):
    p = tmp_path / "x.npz"
    checkpoint.save(p, {"w": np.ones(100000, np.float32)}, {"kind": "test"})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        checkpoint.load(p)


def test_no_pickle_inside(tmp_path):
    p = tmp_path / "x.npz"
    checkpoint.save(p, {"w": np.ones(3, np.float32)}, {"kind": "test"})
    with zipfile.ZipFile(p) as z:
        for name in z.namelist():
            with z.open(name) as fh:
                assert fh.read(6) == b"\x93NUMPY"
    with pytest.raises(CheckpointError):
        checkpoint.save(p, {"o": np.array([object()], dtype=object)}, {})


def test_wrong_kind_and_shapes(tmp_path):
    p = tmp_path / "x.npz"
    checkpoint.save(p, {"w": np.ones(3, np.float32)}, {"kind": "train-state"})
    with pytest.raises(CheckpointError, match="not a model"):
        checkpoint.load_model(p)
    spec = get_target("vocals")
    m = MaskCNN(spec.model, rngs=nnx.Rngs(0))
    arrays = checkpoint.tree_to_arrays(nnx.state(m, nnx.Param), "param/")
    arrays["param/head/bias"] = np.zeros(7, np.float32)
    from stemsplit.spectral import FRONTEND
    checkpoint.save(p, arrays, {"kind": "model", "target": spec.to_dict(), "frontend": FRONTEND.to_dict()})
    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.load_model(p)
