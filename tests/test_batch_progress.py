"""``simulation.batch`` (many simulate() runs) and the progress bars of batches and backtests."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from chase_integrations.errors import ConfigurationError
from chase_integrations.reporting.progress import ProgressBar, progress_bar, progress_enabled
from chase_integrations.simulation import batch
from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("batch")
    trace = write_synthetic_trace(d / "trace.csv", start="2023-03-01T00:00:00Z", days=20)
    profile = write_synthetic_gpu_profile(d / "profile.csv")
    return trace, profile


def test_policy_grid_labels_and_arguments():
    grid = batch.policy_grid(budgets=(0.05,), static_caps_w=[250], etas=(0.5,), forecaster="persistence")
    assert list(grid) == ["default", "static 250 W", "zeus", "chase η=0.5", "budget 5 %", "oracle 5 %"]
    assert grid["budget 5 %"] == {"policy": "budget", "max_slowdown": 0.05, "forecaster": "persistence",
                                  "profile": "preloaded"}
    first = batch.policy_grid(budgets=(0.05,), etas=(), first_run=True, zeus=False, oracle=False)
    assert list(first) == ["default", "budget 5 %", "budget 5 % first run"]
    assert first["budget 5 % first run"]["profile"] == "live"
    assert grid["static 250 W"] == {"policy": "static", "static_power_limit_w": 250, "profile": "preloaded"}


def test_static_caps_respect_the_slowdown(inputs):
    _, profile = inputs
    slow = batch.profile_slowdowns(profile)
    caps = batch.static_caps(profile, max_slowdown=0.05)
    assert caps == sorted(caps, reverse=True) and max(slow) not in caps
    assert all(slow[c] <= 0.05 for c in caps) and caps  # 275, 250, 225 in the synthetic profile


def test_start_times_spread_over_the_trace(inputs):
    trace, _ = inputs
    starts = batch.start_times(trace, 5, job_hours=24)
    assert len(starts) == len(set(starts)) == 5
    assert starts == sorted(starts)
    assert all(s.endswith(":00:00Z") for s in starts)
    with pytest.raises(ConfigurationError, match="trace"):
        batch.start_times(trace, 3, job_hours=24 * 30)
    with pytest.raises(ConfigurationError, match="`n`"):
        batch.start_times(trace, 0, job_hours=24)


def test_simulate_many_matches_simulate(inputs):
    from chase_integrations.simulation.simulate import simulate

    trace, profile = inputs
    starts = batch.start_times(trace, 2, job_hours=12)
    policies = batch.policy_grid(budgets=(0.05,), static_caps_w=[225], etas=(), forecaster="persistence")
    rows = batch.simulate_many(starts, policies, trace=trace, gpu_profile=profile, job_hours=12, progress=False)
    assert len(rows) == len(starts) * len(policies)
    assert [r.label for r in rows[: len(policies)]] == list(policies)
    one = simulate(trace=trace, gpu_profile=profile, job_hours=12, start=starts[1], policy="budget",
                   max_slowdown=0.05, forecaster="persistence", profile="preloaded")
    row = next(r for r in rows if r.start == starts[1] and r.label == "budget 5 %")
    assert row.carbon_g == pytest.approx(one.carbon_g) and row.time_increase == pytest.approx(one.time_increase)
    assert row.max_slowdown == 0.05 and row.policy == "budget"

    summary = batch.summarize(rows)
    assert list(summary.index) == list(policies)
    assert (summary["n"] == len(starts)).all()
    assert summary.loc["default", "median_reduction"] == pytest.approx(0.0, abs=1e-9)
    assert summary.loc["static 225 W", "power_limit_w"] == 225
    assert summary.loc["oracle 5 %", "median_reduction"] >= summary.loc["budget 5 %", "median_reduction"] - 0.01
    assert batch.best_static(summary, 0.05) == "static 225 W"
    assert batch.best_static(summary, 0.0) is None
    assert len(batch.to_frame(rows)) == len(rows)


def test_simulate_many_rejects_bad_arguments(inputs):
    trace, profile = inputs
    with pytest.raises(ConfigurationError, match="policies"):
        batch.simulate_many(["2023-03-02T00:00:00Z"], {}, trace=trace, gpu_profile=profile, job_hours=1)
    with pytest.raises(ConfigurationError, match="start"):
        batch.simulate_many(["2023-03-02T00:00:00Z"], ["default"], trace=trace, gpu_profile=profile, job_hours=1,
                            start="2023-03-02T00:00:00Z")
    with pytest.raises(ConfigurationError, match="processes"):
        batch.simulate_many(["2023-03-02T00:00:00Z"], ["default"], trace=trace, gpu_profile=profile, job_hours=1,
                            processes=0)


@pytest.mark.slow
def test_simulate_many_in_processes_gives_the_same_rows(inputs):
    trace, profile = inputs
    starts = [datetime(2023, 3, 2, tzinfo=timezone.utc), "2023-03-04T05:00:00Z"]
    kwargs = dict(trace=trace, gpu_profile=profile, job_hours=6, progress=False)
    serial = batch.simulate_many(starts, ["default", "zeus"], **kwargs)
    parallel = batch.simulate_many(starts, ["default", "zeus"], processes=2, **kwargs)
    assert serial == parallel
    assert serial[0].start == "2023-03-02T00:00:00Z"


def test_pareto_front():
    assert batch.pareto_front([]) == []
    assert batch.pareto_front([(0.0, 0.0), (0.02, 0.10), (0.05, 0.08), (0.05, 0.15)]) == [0, 1, 3]
    assert batch.pareto_front([(0.01, 0.1), (0.01, 0.1)]) == [0, 1]  # ties are kept


# --------------------------------------------------------------------------- progress
def test_progress_enabled_resolution(monkeypatch):
    monkeypatch.delenv("CHASE_PROGRESS", raising=False)
    assert progress_enabled(True) and not progress_enabled(False)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert not progress_enabled(None)
    monkeypatch.setenv("CHASE_PROGRESS", "1")
    assert progress_enabled(None)
    monkeypatch.setenv("CHASE_PROGRESS", "0")
    assert not progress_enabled(None) and progress_enabled(True)


def test_progress_off_prints_nothing(capsys):
    with progress_bar(5, "work", enabled=False, delay_s=0) as bar:
        for _ in range(5):
            bar.advance()
    assert bar.completed == 5
    assert capsys.readouterr() == ("", "")


def test_progress_waits_for_the_delay(capsys):
    with progress_bar(3, "quick", enabled=True, delay_s=3600) as bar:
        bar.advance(3)
    assert capsys.readouterr() == ("", "")


def test_forced_progress_goes_to_stderr(capsys):
    with ProgressBar(4, "simulations", enabled=True, delay_s=0) as bar:
        for _ in range(4):
            bar.advance()
    out, err = capsys.readouterr()
    assert out == ""
    assert "simulations" in err and "4/4" in err


def test_simulate_many_progress_to_stderr(inputs, capsys, monkeypatch):
    monkeypatch.setattr("chase_integrations.reporting.progress.DEFAULT_DELAY_S", 0.0)
    trace, profile = inputs
    batch.simulate_many(["2023-03-02T00:00:00Z"], ["default", "zeus"], trace=trace, gpu_profile=profile,
                        job_hours=2, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "2/2" in err


def test_backtest_progress_hook_leaves_results_unchanged(capsys, monkeypatch):
    from chase_integrations.forecast.backtest import backtest

    monkeypatch.setattr("chase_integrations.reporting.progress.DEFAULT_DELAY_S", 0.0)
    hours = np.arange(24 * 20)
    times_s = 1704067200 + 3600 * hours
    values = 300 + 80 * np.sin(2 * np.pi * hours / 24) + 20 * np.sin(2 * np.pi * hours / 71)
    start = datetime(2024, 1, 16, tzinfo=timezone.utc)
    names = ["persistence", "seasonal_naive"]
    quiet = backtest(times_s, values, start, 1, (1, 6), names, progress=False)
    assert capsys.readouterr().err == ""
    loud = backtest(times_s, values, start, 1, (1, 6), names, progress=True)
    err = capsys.readouterr().err
    assert quiet == loud
    assert "backtest" in err and f"{2 * (24 + 6 - 1)}/{2 * (24 + 6 - 1)}" in err


def test_backtest_cli_progress_flag(tmp_path, capsys, monkeypatch):
    from chase_integrations.cli import main

    monkeypatch.setattr("chase_integrations.reporting.progress.DEFAULT_DELAY_S", 0.0)
    trace = write_synthetic_trace(tmp_path / "t.csv", start="2023-03-01T00:00:00Z", days=20)
    args = ["backtest", "--trace", str(trace), "--start", "2023-03-15", "--days", "1", "--horizons", "1",
            "--forecasters", "persistence", "--json"]
    assert main([*args, "--progress"]) == 0
    out, err = capsys.readouterr()
    assert '"results"' in out and "24/24" in err
    assert main([*args, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
