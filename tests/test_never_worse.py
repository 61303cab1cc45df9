"""Never worse than doing nothing: whatever the provider does, a budget run stays within its budget and
emits no more than the default limit would, and its report says what degraded (issue 16).

Both adapters, the embedded A40 ResNet-50 profile on a simulated GPU, budget 5 %. The provider is a real
Electricity Maps client against the local server, or a real trace replayed on the simulated clock.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from chase_integrations.carbon import ElectricityMapsProvider, TraceProvider
from chase_integrations.errors import ProviderError
from chase_integrations.simulation import Simulation
from chase_integrations.simulation.synthetic import synthetic_intensity
from tests.faults_helpers import at_sim_step, callback_options, make_callback, run
from tests.provider_server import EM_TOKEN, START, ProviderServer

EPOCHS, STEPS = 12, 20
BUDGET = 0.05
T0 = datetime.fromisoformat(START.replace("Z", "+00:00"))


def _sim() -> Simulation:
    return Simulation(gpu_profile="a40", workload="imagenet/resnet50", batch_size=256, trace=None, start=START,
                      steps_per_epoch=STEPS, initial_power_limit_w=300)


def _trace(tmp_path, first: datetime, hours: int):
    rows = ["datetime_utc,ci_gco2_per_kwh"]
    rows += [f"{first + timedelta(hours=h):%Y-%m-%d %H:%M:%S},{synthetic_intensity(h)}" for h in range(hours)]
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _provider(scenario: str, sim: Simulation, server: ProviderServer, tmp_path):
    if scenario in ("stale_from_start", "trace_ends_mid_job"):
        first = T0 - timedelta(days=8) if scenario == "stale_from_start" else T0 - timedelta(days=2)
        hours = 24 * 4 if scenario == "stale_from_start" else 48 + 2
        return TraceProvider(_trace(tmp_path, first, hours), clock=sim.clock)
    if scenario == "dead_from_start":
        server.script("/em/v3", status=500, body="upstream down", times=None)
    elif scenario == "garbage":
        server.script("/em/v3", status=200, body="<html>maintenance</html>", times=None)
    elif scenario == "dead_from_hour_2":
        at_sim_step(sim, lambda _: sim.clock.now() >= T0 + timedelta(hours=2),
                    lambda: server.script("/em/v3", status=503, body="gone", times=None))
    return ElectricityMapsProvider(zone="DE", token=EM_TOKEN, base_url=server.url + "/em/v3",
                                   clock=sim.clock, sleep=lambda s: None, retries=1)


@pytest.mark.parametrize("adapter", ["lightning", "hf"])
@pytest.mark.parametrize(
    "scenario", ["dead_from_start", "dead_from_hour_2", "stale_from_start", "trace_ends_mid_job", "garbage"]
)
def test_a_failing_provider_never_makes_the_run_worse(adapter, scenario, tmp_path):
    sim = _sim()
    with ProviderServer(clock=sim.clock) as server:
        provider = _provider(scenario, sim, server, tmp_path)
        cb = make_callback(adapter, **callback_options(sim, tmp_path, provider=provider, policy="budget",
                                                       max_slowdown=BUDGET, decision_interval_s=3600,
                                                       profile_warmup_steps=1, profile_measure_steps=2))
        out = run(adapter, tmp_path, cb, epochs=EPOCHS, steps=STEPS)
    assert out.error is None and out.steps == EPOCHS * STEPS
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "finished"
    assert report["time_s"] <= report["baseline_time_s"] * (1 + BUDGET + 0.005)
    assert report["carbon_g"] <= report["baseline_carbon_g"]
    assert report["energy_j"] < report["baseline_energy_j"]  # it still saved energy: the fallback's point
    blind = [d for d in report["degraded"] if d["what"].startswith("no carbon intensity")]
    assert blind and blind[0]["intervals"] > 0, report["degraded"]
    assert any("no carbon intensity" in w for w in out.warnings)  # loud, once
    assert sum("no carbon intensity" in w for w in out.warnings) == 1
    assert sim.power_limits_w == [300]


@pytest.mark.parametrize("adapter", ["lightning", "hf"])
def test_strict_with_a_dead_provider_fails_before_the_first_step(adapter, tmp_path):
    sim = _sim()
    with ProviderServer(clock=sim.clock) as server:
        server.script("/em/v3", status=500, body="upstream down", times=None)
        provider = ElectricityMapsProvider(zone="DE", token=EM_TOKEN, base_url=server.url + "/em/v3",
                                           clock=sim.clock, sleep=lambda s: None, retries=0)
        cb = make_callback(adapter, **callback_options(sim, tmp_path, provider=provider, strict=True))
        out = run(adapter, tmp_path, cb, epochs=1, steps=STEPS, expect=ProviderError)
    assert isinstance(out.error, ProviderError)
    assert sim.steps == 0 and sim.power_limits_w == [300]


def test_a_provider_that_recovers_ends_the_degradation(tmp_path):
    sim = _sim()
    with ProviderServer(clock=sim.clock) as server:
        server.script("/em/v3", status=500, body="down", times=None)
        at_sim_step(sim, lambda _: sim.clock.now() >= T0 + timedelta(hours=6), server.rules.clear)
        provider = ElectricityMapsProvider(zone="DE", token=EM_TOKEN, base_url=server.url + "/em/v3",
                                           clock=sim.clock, sleep=lambda s: None, retries=0)
        cb = make_callback("lightning", **callback_options(sim, tmp_path, provider=provider, policy="budget",
                                                           decision_interval_s=3600, profile_warmup_steps=1,
                                                           profile_measure_steps=2))
        run("lightning", tmp_path, cb, epochs=EPOCHS, steps=STEPS)
    report = json.loads((tmp_path / "report.json").read_text())
    (episode,) = [d for d in report["degraded"] if d["what"].startswith("no carbon intensity")]
    assert episode["until"] is not None
    until = datetime.fromisoformat(episode["until"])
    assert T0 + timedelta(hours=6) <= until <= T0 + timedelta(hours=12)
    assert any(iv["intensity_source"] == "provider" and datetime.fromisoformat(iv["start"]) >= until
               for iv in report["intervals"])
    assert report["time_s"] <= report["baseline_time_s"] * (1 + 0.05 + 0.005)


def test_no_degradation_when_all_is_well(make_sim, tmp_path):
    sim = make_sim()
    cb = make_callback("lightning", **callback_options(sim, tmp_path))
    run("lightning", tmp_path, cb)
    assert json.loads((tmp_path / "report.json").read_text())["degraded"] == []


def test_no_permission_is_a_degradation(make_sim, tmp_path):
    sim = make_sim(allow_set_power_limit=False)
    cb = make_callback("lightning", **callback_options(sim, tmp_path))
    run("lightning", tmp_path, cb)
    report = json.loads((tmp_path / "report.json").read_text())
    assert [d["what"] for d in report["degraded"]] == ["no permission to set power limits: advisory mode"]
    assert report["degraded"][0]["intervals"] == len(report["intervals"])


def test_start_outside_the_trace_is_an_error_at_construction(gpu_profile_csv, trace_csv):
    from chase_integrations.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="`start`"):
        Simulation(gpu_profile=gpu_profile_csv, trace=trace_csv, start="2030-01-01T00:00:00Z", steps_per_epoch=20)


def test_explicit_limits_are_the_exact_set(make_sim, tmp_path):
    sim = make_sim()
    cb = make_callback("lightning", **callback_options(sim, tmp_path, policy="budget", max_slowdown=0.05,
                                                       power_limits_w=[200, 250, 300]))
    run("lightning", tmp_path, cb, epochs=6)
    assert set(sim.gpus.gpus[0].limit_history_w) - {275} <= {200, 250, 300}  # 275 W: the original, restored


@pytest.mark.parametrize("value", [5, 1.5, -0.01])
def test_max_slowdown_is_a_fraction(value):
    from chase_integrations.carbon import StaticProvider
    from chase_integrations.errors import ConfigurationError
    from chase_integrations.lightning import ChaseCallback

    with pytest.raises(ConfigurationError, match=r"`max_slowdown`.*0\.05 = 5 %"):
        ChaseCallback(provider=StaticProvider(300.0), max_slowdown=value)


def test_when_nothing_is_known_the_original_limit_stays():
    """No profile and no intensity: the decider returns to the original limit (not the one in force)."""
    from chase_integrations._warnings import OnceWarner
    from chase_integrations.carbon.base import CarbonIntensityProvider
    from chase_integrations.core.clock import SystemClock
    from chase_integrations.core.decide import Decider
    from chase_integrations.core.decision import DecisionInputs
    from chase_integrations.core.intensity import IntensitySource
    from chase_integrations.core.ledger import Ledger
    from chase_integrations.core.policies import BudgetPolicy
    from chase_integrations.forecast import PersistenceForecaster

    class Dead(CarbonIntensityProvider):
        name = "dead"

        def latest(self):
            raise ProviderError("down")

    clock = SystemClock()
    source = IntensitySource(Dead(), clock, 3600.0, None, False, OnceWarner())
    decider = Decider(BudgetPolicy(0.05), source, PersistenceForecaster(), clock, 3600.0, 1.0)
    now = datetime.now(timezone.utc)
    inputs = DecisionInputs(now, None, None, current_limit_w=150, ledger=Ledger(), remaining_steps=100,
                            interval_s=3600.0, est_step_s=None, default_limit_w=300, original_limit_w=250)
    decision = decider.decide(inputs, source.latest())
    assert decision.limit_w == 250 and decision.degraded.startswith("no carbon intensity and no profile")
