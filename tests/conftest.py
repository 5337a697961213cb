"""Shared fixtures: generated audio and tiny random-weight targets (tests never need trained checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from stemsplit import checkpoint
from stemsplit.model import MaskCNN
from stemsplit.targets import load_spec

TINY_TARGETS = {"vocals": 40, "drums": 30, "bass": 20, "other": 10}
REPO = Path(__file__).resolve().parents[1]


def load_script(relpath: str):
    """A script of the repository (``scripts/x.py``, ``benchmarks/y.py``) imported as a module, for its functions."""
    import importlib.util

    path = REPO / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

# tests never write JAX's compilation cache into the user's home (tests/test_cli.py sets its own folder)
os.environ.setdefault("STEMSPLIT_NO_COMPILE_CACHE", "1")


def write_tiny_target(folder: Path, name: str, priority: int = 0, seed: int = 0, task: str = "mask",
                      stems: tuple[str, ...] | None = None, local_head: bool = False,
                      decoder: int = 0, harmonics: tuple[float, ...] = (), context_layers: int = 0,
                      mid_skip: str = "conv2") -> Path:
    """A target TOML using the tiny preset, plus a checkpoint of random weights beside it."""
    stems_toml = ", ".join(f'"{s}"' for s in (stems or (name,)))
    folder.mkdir(parents=True, exist_ok=True)
    toml = folder / f"{name}.toml"
    toml.write_text(
        f'name = "{name}"\ndescription = "test target"\nstems = [{stems_toml}]\ntask = "{task}"\n'
        f'checkpoint = "{name}.npz"\nthreshold = 0.5\npriority = {priority}\n[model]\npreset = "tiny"\n'
        + ("local_head = true\n" if local_head else "") + (f"decoder = {decoder}\n" if decoder else "")
        + (f"harmonics = {list(harmonics)}\n" if harmonics else "")
        + (f"context_layers = {context_layers}\n" if context_layers else "")
        + (f'mid_skip = "{mid_skip}"\n' if mid_skip != "conv2" else ""))
    spec = load_spec(toml)
    model = MaskCNN(spec.model, rngs=nnx.Rngs(seed))
    checkpoint.save_model(folder / f"{name}.npz", model, spec, training={"note": "random weights for tests"})
    return toml


def require_synth_tools() -> None:
    """Skip a test that renders with ``stemsplit.data.synth`` when its packages are missing; under CI (the
    environment variable CI set) their absence fails it instead."""
    from stemsplit.data.synth import SynthConfig, available

    missing = available(SynthConfig(real_data_root=None))
    if missing:
        why = ("synth corpus tools missing: " + "; ".join(missing)
               + " (bash scripts/install-system-deps.sh --synth; pip install 'stemsplit[synth]')")
        (pytest.fail if os.environ.get("CI") else pytest.skip)(why)


@pytest.fixture(scope="session")
def tiny_targets(tmp_path_factory) -> Path:
    """A folder with tiny vocals/drums/bass/other targets and random-weight checkpoints."""
    folder = tmp_path_factory.mktemp("targets")
    for i, (name, prio) in enumerate(TINY_TARGETS.items()):
        write_tiny_target(folder, name, prio, seed=i)
    return folder


def tone_mix(sr: int = 22050, seconds: float = 2.0, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A little 'song': a harmonic tone, noise bursts and a low sine, shaped (channels, samples)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    voice = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 6)) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    bass = 0.3 * np.sin(2 * np.pi * 55 * t)
    hits = rng.standard_normal(t.size) * 0.2 * (np.mod(t, 0.5) < 0.05)
    mono = voice + bass + hits
    gains = np.linspace(1.0, 0.6, channels)[:, None]
    return (gains * mono[None]).astype(np.float32)


@pytest.fixture()
def song() -> tuple[np.ndarray, int]:
    return tone_mix(), 22050


def make_musdb(root: Path, *, tracks: int = 3, seconds: float = 2.0, sr: int = 22050, subset: str = "train",
               extra_stems: tuple[str, ...] = (), seed: int = 0, silent: tuple[str, ...] = ()) -> Path:
    """A tiny MUSDB-layout folder of generated songs: a harmonic 'voice', noise 'drums', a low sine 'bass',
    chords as 'other' (and any extra stems as a bright square wave), with mixture = sum."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    for i in range(tracks):
        folder = root / subset / f"song{seed}-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        f0 = rng.uniform(180, 400)
        gate = (np.sin(2 * np.pi * rng.uniform(0.5, 2) * t) > -0.2).astype(np.float32)
        stems = {
            "vocals": sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 8)) * gate,
            "drums": rng.standard_normal(n) * 0.3 * (np.mod(t, 0.25) < 0.04),
            "bass": 0.3 * np.sin(2 * np.pi * rng.uniform(40, 80) * t),
            "other": sum(0.1 * np.sin(2 * np.pi * f * t) for f in rng.uniform(300, 2000, 3)),
        }
        for name in extra_stems:
            stems[name] = 0.1 * np.sign(np.sin(2 * np.pi * rng.uniform(500, 900) * t))
        for name in silent:
            stems[name] = np.zeros(n)
        stereo = {k: np.stack([v, 0.8 * v]).astype(np.float32) for k, v in stems.items()}
        for k, v in stereo.items():
            sf.write(folder / f"{k}.wav", v.T, sr, subtype="FLOAT")
        sf.write(folder / "mixture.wav", sum(stereo.values()).T, sr, subtype="FLOAT")
    return root
