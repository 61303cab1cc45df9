"""Offline simulate(): policies, references, no peeking at the future, and agreement with Lightning."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from chase_integrations.errors import ConfigurationError
from chase_integrations.simulation.oracle import zeus_power_limit
from chase_integrations.simulation.simulate import SimulationResult, simulate

START = "2023-03-01T00:00:00Z"


@pytest.fixture
def base(gpu_profile_csv: Path, trace_csv: Path) -> dict:
    return dict(trace=trace_csv, gpu_profile=gpu_profile_csv, workload="imagenet/resnet50", batch_size=256,
                job_hours=12, start=START, forecaster="persistence")


def test_default_policy_is_its_own_baseline(base) -> None:
    r = simulate(**base, policy="default")
    assert abs(r.carbon_reduction) < 1e-6 and abs(r.time_increase) < 1e-9
    assert abs(r.energy_j / r.baseline_energy_j - 1) < 1e-6
    assert abs(r.estimated_baseline_carbon_g / r.baseline_carbon_g - 1) < 1e-6
    assert {d["power_limit_w"] for d in r.decisions} == {300}


def test_result_fields_and_json(base) -> None:
    r = simulate(**base, policy="budget", max_slowdown=0.05, profile="preloaded")
    data = json.loads(json.dumps(r.to_dict()))
    for key in ("carbon_g", "energy_j", "time_s", "baseline_carbon_g", "baseline_time_s", "carbon_reduction",
                "time_increase", "decisions"):
        assert key in data
    d = data["decisions"][0]
    assert set(d) == {"time", "power_limit_w", "forecast_g_per_kwh"}
    assert datetime.fromisoformat(d["time"]) == datetime(2023, 3, 1, tzinfo=timezone.utc)
    assert abs(r.carbon_reduction - (1 - r.carbon_g / r.baseline_carbon_g)) < 1e-12
    assert "report" not in data


def test_budget_meets_its_slowdown_and_beats_the_static_cap(base) -> None:
    for s in (0.025, 0.05):
        budget = simulate(**base, policy="budget", max_slowdown=s)
        assert budget.time_increase <= s + 0.002
        static = simulate(**base, policy="static", static_power_limit_w=225)  # +1.6 % time on this profile
        assert budget.carbon_reduction >= static.carbon_reduction - 1e-9


def test_oracle_is_at_least_as_good_as_budget(base) -> None:
    for s in (0.025, 0.05, 0.10):
        oracle = simulate(**base, policy="oracle", max_slowdown=s)
        budget = simulate(**base, policy="budget", max_slowdown=s)
        assert oracle.time_increase <= s + 0.002
        assert oracle.carbon_g <= budget.carbon_g * 1.001


def test_chase_static_and_zeus_run(base) -> None:
    chase = simulate(**base, policy="chase", eta=0.75)
    assert chase.carbon_reduction > 0
    static = simulate(**base, policy="static", static_power_limit_w=250)
    assert static.power_limit_w == 250 and {d["power_limit_w"] for d in static.decisions} == {250}
    zeus = simulate(**base, policy="zeus")
    assert zeus.power_limit_w == 225


def test_zeus_limit_matches_zeus_selector(gpu_profile_csv: Path) -> None:
    from zeus.optimizer.power_limit import PowerLimitMeasurement, ZeusCost

    from chase_integrations.simulation.gpu_profile import load_gpu_profile

    prof = load_gpu_profile(gpu_profile_csv, "imagenet/resnet50", 256).step_profile(40)
    window = 40  # Zeus measures windows of profile_steps steps; the cost is linear in them
    measurements = [PowerLimitMeasurement(power_limit=p, energy=window * prof.energy_per_step_j(p),
                                          time=window * prof.time_per_step_s(p))
                    for p in range(300, 99, -25)]
    assert zeus_power_limit(prof) == ZeusCost(eta_knob=0.5).select(measurements)


def test_bad_arguments(base) -> None:
    with pytest.raises(ConfigurationError, match="policy"):
        simulate(**base | {"policy": "greedy"})
    with pytest.raises(ConfigurationError, match="start"):
        simulate(**base | {"start": "2031-01-01T00:00:00Z"})
    with pytest.raises(ConfigurationError, match="static_power_limit_w"):
        simulate(**base | {"policy": "static"})
    with pytest.raises(ConfigurationError, match="job_hours"):
        simulate(**base | {"job_hours": 0})


def _scramble_after(src: Path, dst: Path, cutoff: datetime) -> Path:
    lines = src.read_text().splitlines()
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        when, value = line.split(",")
        t = datetime.fromisoformat(when).replace(tzinfo=timezone.utc)
        if t >= cutoff:
            value = f"{(float(value) * 7919 + 104729 * i) % 800 + 20:.2f}"
        out.append(f"{when},{value}")
    dst.write_text("\n".join(out) + "\n")
    return dst


@pytest.mark.parametrize("policy", ["budget", "chase"])
@pytest.mark.parametrize("forecaster", ["persistence", "seasonal_naive"])
def test_decisions_never_use_the_future(base, trace_csv: Path, tmp_path: Path, policy: str, forecaster: str) -> None:
    k = 5
    cutoff = datetime(2023, 3, 1, tzinfo=timezone.utc) + timedelta(hours=k)
    scrambled = _scramble_after(trace_csv, tmp_path / "scrambled.csv", cutoff)
    kw = base | {"policy": policy, "forecaster": forecaster}
    a = simulate(**kw)
    b = simulate(**kw | {"trace": scrambled})
    before_a = [d for d in a.decisions if datetime.fromisoformat(d["time"]) < cutoff]
    before_b = [d for d in b.decisions if datetime.fromisoformat(d["time"]) < cutoff]
    assert len(before_a) >= k and before_a == before_b
    assert a.decisions != b.decisions  # the scramble does matter afterwards


@pytest.mark.parametrize("profile", ["preloaded", "live"])
def test_lightning_run_and_simulate_agree(gpu_profile_csv: Path, trace_csv: Path, tmp_path: Path, profile) -> None:
    """One scenario through a simulated Lightning run and through simulate(): same carbon, energy, time.

    ``live``: a first run on both sides, so the same profiling driver runs over the same steps.
    """
    pytest.importorskip("lightning")
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from chase_integrations.lightning import ChaseCallback
    from chase_integrations.simulation import Simulation
    from tests.lightning_helpers import TinyModel

    steps_per_epoch, epochs = 20, 4
    sim = Simulation(gpu_profile=gpu_profile_csv, workload="imagenet/resnet50", batch_size=256, trace=trace_csv,
                     start=START, steps_per_epoch=steps_per_epoch)
    profile_path = tmp_path / "profile.json"
    if profile == "preloaded":
        sim.step_profile.save(profile_path)  # as simulate(profile="preloaded") does: no profiling phase
    options = dict(policy="budget", max_slowdown=0.05, forecaster="persistence", decision_interval_s=3600)
    cb = ChaseCallback(provider=sim.provider, simulation=sim, profile_path=str(profile_path) if profile ==
                       "preloaded" else None, **options)
    data = DataLoader(TensorDataset(torch.randn(4 * steps_per_epoch, 4), torch.randn(4 * steps_per_epoch, 1)),
                      batch_size=4)
    trainer = L.Trainer(max_epochs=epochs, callbacks=[cb], enable_checkpointing=False, logger=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(TinyModel(), data)
    live = cb.report

    job_hours = epochs * sim.step_profile.time_per_step_s(300) * steps_per_epoch / 3600
    r = simulate(trace=trace_csv, gpu_profile=gpu_profile_csv, job_hours=job_hours, start=START,
                 steps_per_epoch=steps_per_epoch, profile=profile, keep_report=True, **options)
    assert r.steps == live["steps"] == steps_per_epoch * epochs
    for ours, theirs in ((r.carbon_g, live["carbon_g"]), (r.energy_j, live["energy_j"]), (r.time_s, live["time_s"])):
        assert abs(ours / theirs - 1) < 0.01
    assert len({d["power_limit_w"] for d in r.decisions}) >= 1

    def profiling(report):
        return [(iv["power_limit_w"], iv["steps"]) for iv in report["intervals"] if iv["phase"] == "profile"]

    assert profiling(r.report) == profiling(live)
    assert bool(profiling(live)) == (profile == "live")
    assert r.report["profiling"]["steps"] == live["profiling"]["steps"]


def test_live_profile_is_a_first_run(base) -> None:
    """profile="live" profiles on simulated steps and pays for it within the budget; "preloaded" does not."""
    runs = {mode: simulate(**base, policy="budget", max_slowdown=0.05, profile=mode, keep_report=True, step_s=600)
            for mode in ("live", "preloaded")}
    live, repeat = runs["live"], runs["preloaded"]
    cost = live.report["profiling"]
    assert repeat.report["profiling"]["steps"] == 0 and repeat.report["profiling"]["time_s"] == 0
    assert cost["steps"] > 0 and cost["time_s"] > 0 and 0 < cost["share_of_budget"] < 1
    assert cost["share_of_job"] == pytest.approx(cost["duration_s"] / live.time_s)
    # 600-s steps: one warm-up step at the default limit, then one step per limit (no 13-step windows)
    steps = [iv["steps"] for iv in live.report["intervals"] if iv["phase"] == "profile"]
    assert steps[0] == 2 and set(steps[1:]) == {1}
    assert live.time_increase <= 0.05 + 0.002 and repeat.time_increase <= 0.05 + 0.002
    assert live.carbon_reduction > 0.8 * repeat.carbon_reduction > 0
    # the references know the profile either way
    assert simulate(**base, policy="oracle", profile="live").carbon_g == simulate(**base, policy="oracle").carbon_g
    with pytest.raises(ConfigurationError, match="profile"):
        simulate(**base, policy="budget", profile="cold")


def test_cli_json(base, capsys) -> None:
    from chase_integrations.cli.simulate import add_parser, run

    parser = argparse.ArgumentParser(prog="chase")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulate", "--trace", str(base["trace"]), "--gpu-profile", str(base["gpu_profile"]),
                              "--job-hours", "6", "--start", START, "--policy", "budget", "--max-slowdown", "0.05",
                              "--forecaster", "persistence", "--json"])
    assert run(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(SimulationResult.__dataclass_fields__) - {"report"} <= set(data)
    args = parser.parse_args(["simulate", "--trace", str(base["trace"]), "--gpu-profile", str(base["gpu_profile"]),
                              "--job-hours", "6", "--start", "2031-01-01T00:00:00Z"])
    assert run(args) == 2
    assert "start" in capsys.readouterr().err


def test_real_a40_resnet_budget(shared_data: Path) -> None:
    r = simulate(trace=shared_data / "carbon/electricitymaps_sustain_cluster/DE-LU_2021-2024_hourly.csv",
                 trace_value_column="ci_direct_gco2eq_per_kwh",
                 gpu_profile=shared_data / "gpu/nsdi23_trace/summary_power_a40.csv", workload="imagenet/resnet50",
                 batch_size=256, job_hours=30, start=START, policy="budget", max_slowdown=0.05,
                 forecaster="persistence")
    assert 0.15 < r.carbon_reduction < 0.2 and r.time_increase <= 0.0505


def test_replayed_trace_latest_matches_the_provider(trace_csv: Path) -> None:
    """simulate()'s provider reuses the row in force; it must read exactly like TraceProvider.latest()."""
    from chase_integrations.carbon.trace import TraceProvider
    from chase_integrations.errors import StaleDataError
    from chase_integrations.simulation.clock import SimulatedClock
    from chase_integrations.simulation.simulate import _on_clock

    plain = TraceProvider(trace_csv)
    t = plain.end - timedelta(hours=6)
    clock_a, clock_b = SimulatedClock(t), SimulatedClock(t)
    a, b = _on_clock(plain, clock_a), TraceProvider(trace_csv, clock=clock_b)
    for _ in range(12 * 6):  # 10-minute steps across the end of the trace, into staleness
        for clock in (clock_a, clock_b):
            clock.advance(600.0)
        try:
            expected = b.latest()
        except StaleDataError:
            with pytest.raises(StaleDataError):
                a.latest()
            continue
        assert a.latest() == expected
