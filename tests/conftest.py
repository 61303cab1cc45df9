"""Shared fixtures: small GPU profiles and traces built in the test, simulations, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chase_integrations.simulation import Simulation
from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace

os.environ.setdefault("PL_DISABLE_FORK", "1")


@pytest.fixture
def gpu_profile_csv(tmp_path: Path) -> Path:
    """An A40-like profile (100-300 W) in the Zeus trace format, built in code."""
    return write_synthetic_gpu_profile(tmp_path / "profile.csv")


@pytest.fixture
def trace_csv(tmp_path: Path) -> Path:
    """A 14-day synthetic hourly trace starting 2 days before 2023-03-01."""
    return write_synthetic_trace(tmp_path / "trace.csv", start="2023-03-01T00:00:00Z", days=14)


@pytest.fixture
def make_sim(gpu_profile_csv: Path, trace_csv: Path):
    """Factory for simulations over the fixtures; keyword arguments override the defaults."""

    def make(**kwargs) -> Simulation:
        options = dict(
            gpu_profile=gpu_profile_csv, workload="imagenet/resnet50", batch_size=256, trace=trace_csv,
            start="2023-03-01T00:00:00Z", steps_per_epoch=20, initial_power_limit_w=275,
        )
        options.update(kwargs)
        return Simulation(**options)

    return make


def shared_data_dir() -> Path | None:
    """The shared data folder, if present."""
    from chase_integrations._data import data_dir

    return data_dir()


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder, or skip with a reason."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("shared data folder absent (set CHASE_DATA_DIR or place it at ../shared/data)")
    return root
