"""Shared fixtures: generated audio and tiny random-weight targets (tests never need trained checkpoints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from stemsplit import checkpoint
from stemsplit.model import MaskCNN
from stemsplit.targets import load_spec

TINY_TARGETS = {"vocals": 40, "drums": 30, "bass": 20, "other": 10}


def write_tiny_target(folder: Path, name: str, priority: int = 0, seed: int = 0, task: str = "mask") -> Path:
    """A target TOML using the tiny preset, plus a checkpoint of random weights beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    toml = folder / f"{name}.toml"
    toml.write_text(
        f'name = "{name}"\ndescription = "test target"\nstems = ["{name}"]\ntask = "{task}"\n'
        f'checkpoint = "{name}.npz"\nthreshold = 0.5\npriority = {priority}\n[model]\npreset = "tiny"\n')
    spec = load_spec(toml)
    model = MaskCNN(spec.model, rngs=nnx.Rngs(seed))
    checkpoint.save_model(folder / f"{name}.npz", model, spec, training={"note": "random weights for tests"})
    return toml


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
