"""Whole-node carbon (issue 17): one cost model for the objective, the ledger, the baseline and the savings."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from zeus.device.cpu.common import CpuDramMeasurement

from chase_integrations.core.budget import plan_budget
from chase_integrations.core.collective import LocalCollective
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.cost import CostModel, measured_host_power_w
from chase_integrations.core.ledger import Interval, Ledger
from chase_integrations.core.policies.standard import BudgetPolicy
from chase_integrations.core.profile import PowerProfile
from chase_integrations.core.session import ChaseSession, RunContext
from chase_integrations.errors import ConfigurationError, SimulationInvalidError
from chase_integrations.simulation import simulate
from tests.test_footprint import FakeRaplCPU, FakeRaplCPUs

CI = 250.0
PUE = 1.2


@pytest.fixture
def flat_trace(tmp_path):
    trace = tmp_path / "flat.csv"
    rows = ["datetime_utc,ci"] + [f"2023-03-{d:02d} {h:02d}:00:00,{CI:g}" for d in range(1, 15) for h in range(24)]
    trace.write_text("\n".join(rows) + "\n")
    return trace


def _run(sim, total_steps: int, gpus: list[int], profile=None, **config) -> dict:
    options = dict(provider=sim.provider, simulation=sim, forecaster="persistence", decision_interval_s=3600,
                   profile_warmup_steps=1, profile_measure_steps=2)
    options.update(config)
    session = ChaseSession(ChaseConfig(**options), profile=profile)
    session.start(RunContext(gpus, LocalCollective(), total_steps=total_steps))
    for step in range(1, total_steps + 1):
        session.step_end()
        if step % sim.steps_per_epoch == 0:
            session.epoch_end()
    return session.end()


def test_static_policy_two_gpus_node_carbon_and_baseline(make_sim, flat_trace):
    """Acceptance: carbon = (GPU energy + 150 W × 2 × duration) × CI × PUE; the baseline likewise at the default."""
    steps = 400
    sim = make_sim(trace=flat_trace, num_gpus=2)
    two_gpus = sim.epoch_profile.step_profile(sim.steps_per_epoch, num_gpus=2)
    run = _run(sim, steps, [0, 1], profile=two_gpus, policy="static", static_power_limit_w=225, host_power_w=150.0,
               pue=PUE)
    assert run["scope"] == "node" and run["host_power_w"] == 150.0
    expected = (run["gpu_energy_j"] + 150.0 * 2 * run["time_s"]) / 3.6e6 * CI * PUE
    assert math.isclose(run["carbon_g"], expected, rel_tol=1e-3)
    assert math.isclose(run["gpu_carbon_g"], run["gpu_energy_j"] / 3.6e6 * CI * PUE, rel_tol=1e-3)
    assert run["carbon_saved_g"] == pytest.approx(run["baseline_carbon_g"] - run["carbon_g"])
    # the baseline: the same job run at the default limit, measured (a second run), over its own duration
    base = _run(make_sim(trace=flat_trace, num_gpus=2), steps, [0, 1], profile=two_gpus, policy="static",
                static_power_limit_w=two_gpus.default_limit_w, host_power_w=150.0, pue=PUE)
    assert math.isclose(run["baseline_time_s"], base["time_s"], rel_tol=1e-3)
    assert run["baseline_time_s"] < run["time_s"]
    assert math.isclose(run["baseline_carbon_g"], base["carbon_g"], rel_tol=1e-3)
    expected_base = (base["gpu_energy_j"] + 150.0 * 2 * base["time_s"]) / 3.6e6 * CI * PUE
    assert math.isclose(run["baseline_carbon_g"], expected_base, rel_tol=1e-3)
    # the GPU-only figures sit beside the node's, and the node saves less than the GPUs
    assert 0 < run["carbon_saved_g"] / run["baseline_carbon_g"] < run["gpu_carbon_saved_g"] / base["gpu_carbon_g"]
    assert sum(iv["carbon_g"] for iv in run["intervals"]) == pytest.approx(run["carbon_g"])
    for iv in run["intervals"]:
        assert iv["carbon_g"] == pytest.approx(iv["energy_j"] / 3.6e6 * iv["intensity_g_per_kwh"] * PUE)


class _Recording(BudgetPolicy):
    """The budget policy, keeping what it decided with."""

    def __init__(self) -> None:
        super().__init__(0.05)
        self.seen = []

    def choose(self, inputs, outlook):
        self.seen.append((inputs.usable_profile, inputs.gpu_usable_profile))
        return super().choose(inputs, outlook)


def _check_rapl_run(report: dict, policy: _Recording) -> None:
    assert report["scope"] == "gpu+cpu+dram"
    t = report["time_s"]
    assert math.isclose(report["energy_j"], report["gpu_energy_j"] + 70.0 * t, rel_tol=1e-3)
    # baseline: the measured CPU/DRAM power over the baseline's own duration
    gpu_baseline = sum(iv["baseline_energy_j"] for iv in report["intervals"]) - 70.0 * report["baseline_time_s"]
    assert gpu_baseline > 0 and report["baseline_time_s"] <= t
    assert math.isclose(report["baseline_energy_j"], gpu_baseline + 70.0 * report["baseline_time_s"], rel_tol=1e-6)
    # objective: the profile decided with holds 70 W of measured host power over each step's time
    assert policy.seen
    node, gpu = policy.seen[-1]
    assert node is not gpu
    for w in node.limits_w:
        extra_w = (node.energy_per_step_j(w) - gpu.energy_per_step_j(w)) / gpu.time_per_step_s(w)
        assert extra_w == pytest.approx(70.0, rel=1e-2)


def test_fake_rapl_enters_objective_and_baseline_lightning(make_sim, tmp_path):
    from chase_integrations.lightning import ChaseCallback
    from tests.lightning_helpers import TinyModel, loader, trainer

    sim = make_sim()
    sim.cpus = FakeRaplCPUs(sim.clock)
    policy = _Recording()
    cb = ChaseCallback(provider=sim.provider, simulation=sim, policy=policy, forecaster="persistence",
                       decision_interval_s=1800, profile_warmup_steps=1, profile_measure_steps=2)
    trainer(cb, tmp_path, max_epochs=3).fit(TinyModel(), loader(20))
    _check_rapl_run(cb.report, policy)


def test_fake_rapl_enters_objective_and_baseline_huggingface(make_sim, tmp_path):
    from tests.hf_helpers import chase_callback, hf_trainer

    sim = make_sim()
    sim.cpus = FakeRaplCPUs(sim.clock)
    policy = _Recording()
    cb = chase_callback(sim, tmp_path, policy=policy)
    hf_trainer([cb], tmp_path, epochs=3).train()
    _check_rapl_run(json.loads((tmp_path / "report.json").read_text()), policy)


def test_measured_host_power_per_limit_prefers_profiling_intervals():
    ledger = Ledger()
    for limit, phase, cpu in ((300, "profile", 100.0), (225, "profile", 80.0), (300, "train", 1000.0)):
        ledger.add(Interval.account("a", "b", limit, 100.0, None, energy_j=1.0, steps=1, duration_s=1.0,
                                    phase=phase, cpu_energy_j=cpu))
    assert measured_host_power_w(ledger) == {300: 100.0, 225: 80.0}
    assert measured_host_power_w(Ledger()) is None


def test_host_power_zero_is_the_gpu_result_bit_for_bit(trace_csv, gpu_profile_csv):
    common = dict(trace=trace_csv, gpu_profile=gpu_profile_csv, job_hours=6, start="2023-03-03T00:00:00Z",
                  forecaster="persistence")
    for policy in ("budget", "oracle"):
        gpu = simulate(policy=policy, **common)
        zero = simulate(policy=policy, host_power_w=0.0, **common)
        assert gpu.scope == "gpu" and zero.scope == "node"
        assert (zero.carbon_reduction, zero.time_increase, zero.decisions) == \
            (gpu.carbon_reduction, gpu.time_increase, gpu.decisions)


def test_budget_decides_on_the_node_chase_on_the_gpu(trace_csv, gpu_profile_csv):
    common = dict(trace=trace_csv, gpu_profile=gpu_profile_csv, job_hours=12, start="2023-03-03T00:00:00Z",
                  forecaster="persistence")
    chase = [simulate(policy="chase", host_power_w=w, **common) for w in (None, 400.0)]
    assert [d["power_limit_w"] for d in chase[0].decisions] == [d["power_limit_w"] for d in chase[1].decisions]
    assert chase[1].gpu_carbon_reduction == pytest.approx(chase[0].carbon_reduction)
    report = simulate(policy="chase", host_power_w=400.0, keep_report=True, **common).report
    assert report["scope"] == "node" and report["objective_scope"] == "gpu"
    budget = [simulate(policy="budget", max_slowdown=0.10, host_power_w=w, **common) for w in (None, 400.0)]
    # with 400 W of other power per GPU the slow limits cost the node more than they save: it runs faster
    assert budget[1].time_increase < budget[0].time_increase
    oracle = simulate(policy="oracle", max_slowdown=0.10, host_power_w=400.0, **common)
    assert oracle.carbon_reduction >= budget[1].carbon_reduction - 0.01
    assert budget[1].carbon_reduction < budget[0].carbon_reduction  # node savings are smaller


def test_embodied_emissions_price_time():
    prof = PowerProfile({300: (1.0, 235.0), 250: (1.005, 216.0), 225: (1.016, 200.0), 200: (1.07, 190.0)})
    slack = plan_budget(prof, [300.0] * 4, remaining_steps=3600, remaining_time_s=3600 * 1.2)
    assert slack.limit_w == 200 and slack.mu == 0.0
    cost = CostModel(embodied_g_per_gpu_hour=200.0, num_gpus=1)  # a price on time above 200 W's energy saving
    assert cost.min_mu == pytest.approx(200.0 / 3600 * 3.6e6)
    priced = plan_budget(prof, [300.0] * 4, remaining_steps=3600, remaining_time_s=3600 * 1.2, min_mu=cost.min_mu)
    assert priced.limit_w == 225 and priced.mu >= cost.min_mu


def test_embodied_emissions_in_the_report(make_sim, flat_trace):
    sim = make_sim(trace=flat_trace)
    run = _run(sim, 200, [0], policy="static", static_power_limit_w=225, embodied_g_per_gpu_hour=36.0)
    assert run["embodied_carbon_g"] == pytest.approx(36.0 / 3600 * run["time_s"])
    assert run["baseline_embodied_carbon_g"] == pytest.approx(36.0 / 3600 * run["baseline_time_s"])
    assert run["total_carbon_g"] == pytest.approx(run["carbon_g"] + run["embodied_carbon_g"])
    assert run["total_carbon_saved_g"] == pytest.approx(
        run["carbon_saved_g"] + run["baseline_embodied_carbon_g"] - run["embodied_carbon_g"])


@pytest.mark.parametrize("name,value", [("host_power_w", -1.0), ("host_power_w", "150"),
                                        ("embodied_g_per_gpu_hour", -2.0), ("embodied_g_per_gpu_hour", None)])
def test_bad_values_name_the_argument(make_sim, name, value):
    sim = make_sim()
    with pytest.raises(ConfigurationError, match=name):
        ChaseConfig(provider=sim.provider, simulation=sim, **{name: value})


def test_old_ledger_rows_read_as_gpu_only():
    old = {"start": "a", "end": "b", "power_limit_w": 250, "intensity_g_per_kwh": 100.0, "forecast_g_per_kwh": None,
           "energy_j": 3.6e6, "carbon_g": 100.0, "baseline_carbon_g": 110.0}
    ledger = Ledger.from_list([old])
    assert ledger.gpu_energy_j == 3.6e6 and ledger.gpu_carbon_g == 100.0 and ledger.gpu_carbon_saved_g == 10.0


class _Broken:
    """A forecaster that fails on every update after its fit."""

    name = "broken"

    def fit(self, history) -> None:
        self.last = history[-1]

    def update(self, reading) -> None:
        raise RuntimeError("no forecast taped here")

    def predict(self, hours: int):
        from chase_integrations.carbon.reading import IntensityReading

        return [IntensityReading(self.last.time, self.last.g_per_kwh, True)] * hours

    def close(self) -> None:
        pass


def test_a_failing_forecaster_is_a_counted_fallback_and_invalidates_a_batch(trace_csv, gpu_profile_csv):
    from chase_integrations.forecast import Forecaster
    from chase_integrations.simulation.batch import simulate_many

    broken = type("Broken", (_Broken, Forecaster), {})
    common = dict(trace=trace_csv, gpu_profile=gpu_profile_csv, job_hours=4)
    result = simulate(policy="budget", forecaster=broken(), start="2023-03-03T00:00:00Z", **common)
    assert result.fallbacks > 0
    with pytest.raises(SimulationInvalidError, match="fell back"):
        simulate_many(["2023-03-03T00:00:00Z"], {"budget": {"policy": "budget", "forecaster": broken()}}, **common)
    rows = simulate_many(["2023-03-03T00:00:00Z"], {"budget": {"policy": "budget", "forecaster": broken()}},
                         strict=False, **common)
    assert not rows[0].valid


def test_one_run_one_saving_and_the_early_prediction(trace_csv, gpu_profile_csv, tmp_path, capsys):
    from chase_integrations.cli import main
    from chase_integrations.reporting.summary import format_summary

    report = tmp_path / "run.json"
    code = main(["simulate", "--trace", str(trace_csv), "--gpu-profile", str(gpu_profile_csv), "--job-hours", "6",
                 "--start", "2023-03-03T00:00:00Z", "--forecaster", "persistence", "--host-power-w", "150",
                 "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    exact, estimate = data["exact_baseline"]["carbon_reduction"], data["estimated_carbon_reduction"]
    assert f"carbon reduction {100 * exact:.1f} % against that replay" in out
    assert f"as its report says: {100 * estimate:.1f} %" in out
    summary = format_summary(data)
    assert f"saving {100 * exact:.1f} %" in summary and "in-run estimate" in summary
    early = data["prediction"]["early"]
    assert early is not None and 0.1 <= early["done_fraction"] < 0.5
    assert f"at {100 * early['done_fraction']:.1f} % of the job" in summary and "outcome" in summary


@dataclass
class _Reading:
    energy_j: float
    cpu_energy_j: float | None = None
    dram_energy_j: float | None = None


class _Meter:
    anomalies: list = []

    def begin(self, name: str) -> None:
        pass

    def end(self, name: str) -> _Reading:
        return _Reading(100.0)


class _Intensity:
    def interval_mean(self, start, end, forecast):
        from chase_integrations.core.intensity import IntervalIntensity

        return IntervalIntensity(CI, "provider", None)


class _Clock:
    t = 0.0

    def monotonic(self) -> float:
        self.t += 10.0
        return self.t


def test_gpu_scope_warns_once_when_live_never_when_simulated(make_sim, flat_trace):
    from chase_integrations._warnings import OnceWarner
    from chase_integrations.core.accounting import Accountant

    sim = make_sim(trace=flat_trace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(sim, 40, [0], policy="monitor")
    assert not [w for w in caught if "GPU energy only" in str(w.message)]  # simulated: the result says its scope

    def closes(cost: CostModel) -> list[str]:
        acc = Accountant(_Clock(), LocalCollective(), _Meter(), _Intensity(), cost, 1, OnceWarner())
        ledger, t0 = Ledger(), datetime(2024, 1, 1, tzinfo=timezone.utc)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for k in range(3):
                acc.open_interval(t0 + timedelta(hours=k), 300, None)
                acc.count_step()
                acc.close(t0 + timedelta(hours=k + 1), ledger, None, 300)
        return [str(w.message) for w in caught]

    said = closes(CostModel())
    assert len(said) == 1 and "GPU energy only" in said[0] and "host_power_w" in said[0]
    assert closes(CostModel(host_power_w=100.0)) == []


def test_every_adapter_takes_the_new_arguments():
    import inspect

    from chase_integrations import Chase
    from chase_integrations.huggingface import ChaseTrainerCallback
    from chase_integrations.lightning import ChaseCallback

    for adapter in (ChaseCallback, ChaseTrainerCallback, Chase):
        params = inspect.signature(adapter.__init__).parameters
        assert params["host_power_w"].default is None and params["embodied_g_per_gpu_hour"].default == 0.0
        assert "host_power_w" in adapter.__doc__ and "embodied_g_per_gpu_hour" in adapter.__doc__


def test_vectorised_projection_matches_the_hour_by_hour_one():
    import numpy as np

    from chase_integrations.core.budget import _Projector

    rng = np.random.default_rng(0)
    for _ in range(100):
        hours = int(rng.integers(1, 30))
        spans = np.full(hours, 3600.0)
        spans[0] = rng.uniform(1, 3600)
        proj = _Projector(rng.uniform(50, 500, hours), spans, float(rng.uniform(1, 5000 * hours)))
        t, e = rng.uniform(0.9, 1.3, (4, hours)), rng.uniform(100, 300, (4, hours))
        times, carbons = proj.times_and_carbons(t, e)
        for row in range(4):
            assert (times[row], carbons[row]) == pytest.approx(proj.run(t[row], e[row]), rel=1e-9)


def test_a_faster_plan_wins_when_the_slow_limit_saves_the_node_little():
    # node profile: 200 W saves 0.1 % energy per step over 225 W but takes 5 % longer; the late hours are dirty
    prof = PowerProfile({300: (1.0, 1000.0), 225: (1.016, 920.0), 200: (1.066, 919.0)})
    ci = [400.0, 400.0, 400.0, 900.0, 900.0, 900.0]
    spent = plan_budget(prof, ci, remaining_steps=3 * 3600, remaining_time_s=3 * 3600 * 1.066)
    weighed = plan_budget(prof, ci, remaining_steps=3 * 3600, remaining_time_s=3 * 3600 * 1.066,
                          faster_if_cleaner=True)
    assert weighed.projected_carbon_g < spent.projected_carbon_g and weighed.projected_time_s < spent.projected_time_s
    assert (spent.limit_w, weighed.limit_w) == (200, 225)


class _LimitRaplCPU(FakeRaplCPU):
    """A RAPL package whose power follows the GPU's limit (the step rate drives the CPU): 20 W + 0.2 × limit."""

    def __init__(self, sim) -> None:
        super().__init__(sim.clock)
        self.sim, self.last_t, self.total_mj = sim, sim.clock.monotonic(), 0.0

    def get_total_energy_consumption(self) -> CpuDramMeasurement:
        t = self.sim.clock.monotonic()
        self.total_mj += (20.0 + 0.2 * self.sim.power_limits_w[0]) * (t - self.last_t) * 1000
        self.last_t = t
        return CpuDramMeasurement(cpu_mj=self.total_mj, dram_mj=0.0)


def test_a_saved_profile_keeps_the_host_power_its_profiling_measured(make_sim, tmp_path):
    """The next run prices each limit's CPU power as the run that profiled it measured, not one average."""
    path = tmp_path / "profile.json"

    def run(policy):
        sim = make_sim()
        sim.cpus = FakeRaplCPUs(sim.clock)
        sim.cpus._cpus = [_LimitRaplCPU(sim)]
        return _run(sim, 60, [0], policy=policy, profile_path=str(path), decision_interval_s=1800)

    first = _Recording()
    measured = run(first)
    saved = PowerProfile.load(path)
    assert PowerProfile.from_dict(measured["profile"]) == saved  # the report's profile is the one saved
    assert saved.host_measured_w is not None and len(saved.host_measured_w) >= 2
    for w, host_w in saved.host_measured_w.items():
        assert host_w == pytest.approx(20.0 + 0.2 * w, rel=1e-6)
    second = _Recording()
    report = run(second)
    assert report["profiling"] is None or not report["profiling"].get("steps")  # loaded, not measured again
    node, gpu = second.seen[-1]
    for w in node.limits_w:  # limits this run never ran at carry the saved, per-limit CPU power
        extra_w = (node.energy_per_step_j(w) - gpu.energy_per_step_j(w)) / gpu.time_per_step_s(w)
        assert extra_w == pytest.approx(20.0 + 0.2 * w, rel=1e-3)


def test_a_profile_round_trips_its_host_power_and_drops_other_limits():
    profile = PowerProfile({250: (1.0, 250.0), 200: (1.1, 210.0)}, host_measured_w={250: 72.0, 212: 71.0})
    assert profile.host_measured_w == {250: 72.0}
    assert PowerProfile.from_dict(profile.to_dict()) == profile
    assert PowerProfile({250: (1.0, 250.0)}).to_dict()["limits"][0].keys() == {
        "power_limit_w", "time_per_step_s", "energy_per_step_j"}
    with pytest.raises(ConfigurationError, match="host power"):
        PowerProfile({250: (1.0, 250.0)}, host_measured_w={250: float("nan")})
