import pytest

from stemsplit.errors import TargetError, UnknownTargetError
from stemsplit.targets import discover, get_target, get_targets, sanitize_name

from .conftest import write_tiny_target


def test_builtin_targets():
    known = discover()
    for name in ("vocals", "drums", "bass", "other"):
        spec = known[name]
        assert spec.stems == (name,) and spec.task == "mask"
        assert spec.model.conv_channels == (16 if name == "vocals" else 8)  # drums/bass/other: "small"
        assert spec.threshold is None  # calibrated with the checkpoint
    assert known["vocals"].priority > known["other"].priority


def test_user_folder_adds_and_overrides(tmp_path, monkeypatch):
    write_tiny_target(tmp_path, "piano")
    write_tiny_target(tmp_path, "vocals")
    known = discover([tmp_path])
    assert known["piano"].model.conv_channels == 2
    assert known["vocals"].source.parent == tmp_path.resolve()
    assert known["piano"].find_checkpoint() == (tmp_path / "piano.npz").resolve()
    monkeypatch.setenv("STEMSPLIT_TARGETS", str(tmp_path))
    assert "piano" in discover()


def test_unknown_target_lists_known():
    with pytest.raises(UnknownTargetError, match="Known targets: .*vocals"):
        get_target("kazoo")
    with pytest.raises(UnknownTargetError):
        get_targets(["vocals", "kazoo"])


@pytest.mark.parametrize("body,match", [
    ('name = "x"\n', "needs 'name' and 'stems'"),
    ('name = "x"\nstems = ["x"]\ncolour = 1\n', "unknown key"),
    ('name = "x"\nstems = ["x"]\ntask = "dance"\n', "task"),
    ('name = "x"\nstems = ["x"]\nthreshold = 3\n', "threshold"),
    ('name = "x"\nstems = ["x"]\n[model]\npreset = "giant"\n', "preset"),
    ('name = "x" stems', "not valid TOML"),
    ('name = "y"\nstems = ["y"]\n', "name the file"),
])
def test_malformed_targets(tmp_path, body, match):
    (tmp_path / "x.toml").write_text(body)
    with pytest.raises(TargetError, match=match):
        discover([tmp_path])


def test_names_are_sanitised():
    assert sanitize_name("../../etc/passwd") == "etc_passwd"
    assert sanitize_name("My Song (live)") == "My_Song_live"
    assert sanitize_name("...") == "audio"
    with pytest.raises(TargetError):
        discover_bad = __import__("stemsplit.targets", fromlist=["TargetSpec"]).TargetSpec
        discover_bad(name="../evil", stems=("x",))
