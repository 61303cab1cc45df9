"""Bad input, table-driven: every argument of both callbacks, every provider, ``simulate()``, traces, profiles.

Each case must raise :class:`ConfigurationError` (a ``ValueError``) whose message names the argument
(in backticks, the package's style) and says what is allowed; nothing touches a GPU or the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chase_integrations import Chase
from chase_integrations.carbon import (
    ElectricityMapsProvider,
    StaticProvider,
    TraceProvider,
    UKCarbonIntensityProvider,
    WattTimeProvider,
)
from chase_integrations.errors import ConfigurationError
from chase_integrations.huggingface import ChaseTrainerCallback
from chase_integrations.lightning import ChaseCallback

NAN, INF = float("nan"), float("inf")

# (kwargs, the argument the message must name); provider=StaticProvider(100) unless given
CALLBACK_CASES = [
    ({"provider": None}, "provider"),
    ({"provider": 300.0}, "provider"),
    ({"provider": "electricitymaps"}, "provider"),
    ({"policy": "Budget"}, "policy"),
    ({"policy": None}, "policy"),
    ({"policy": 1}, "policy"),
    ({"max_slowdown": "5%"}, "max_slowdown"),
    ({"max_slowdown": NAN}, "max_slowdown"),
    ({"max_slowdown": 11}, "max_slowdown"),
    ({"max_slowdown": True}, "max_slowdown"),
    ({"eta": -0.01}, "eta"),
    ({"eta": None}, "eta"),
    ({"eta": INF}, "eta"),
    ({"max_intensity_g_per_kwh": 0}, "max_intensity_g_per_kwh"),
    ({"max_intensity_g_per_kwh": "high"}, "max_intensity_g_per_kwh"),
    ({"static_power_limit_w": -5, "policy": "static"}, "static_power_limit_w"),
    ({"static_power_limit_w": "225W", "policy": "static"}, "static_power_limit_w"),
    ({"static_power_limit_w": NAN, "policy": "static"}, "static_power_limit_w"),
    ({"forecaster": None}, "forecaster"),
    ({"forecaster": "ARIMA"}, "forecaster"),
    ({"forecaster": object()}, "forecaster"),
    ({"decision_interval_s": -60}, "decision_interval_s"),
    ({"decision_interval_s": "15min"}, "decision_interval_s"),
    ({"decision_interval_s": INF}, "decision_interval_s"),
    ({"power_limits_w": "200,250"}, "power_limits_w"),
    ({"power_limits_w": 250}, "power_limits_w"),
    ({"power_limits_w": [250, -1]}, "power_limits_w"),
    ({"power_limits_w": [250, "300"]}, "power_limits_w"),
    ({"power_limits_w": [250, NAN]}, "power_limits_w"),
    ({"profile_path": 3}, "profile_path"),
    ({"report_path": ["r.json"]}, "report_path"),
    ({"gpus": "all"}, "gpus"),
    ({"simulation": "A40"}, "simulation"),
    ({"pue": 0}, "pue"),
    ({"pue": "1.2"}, "pue"),
    ({"pue": NAN}, "pue"),
    ({"strict": 1}, "strict"),
    ({"strict": None}, "strict"),
    ({"profile_warmup_steps": -1}, "profile_warmup_steps"),
    ({"profile_warmup_steps": 1.5}, "profile_warmup_steps"),
    ({"profile_measure_steps": 0}, "profile_measure_steps"),
    ({"profile_min_window_s": -1}, "profile_min_window_s"),
    ({"fallback_intensity_g_per_kwh": -1}, "fallback_intensity_g_per_kwh"),
    ({"max_reading_age_s": 0}, "max_reading_age_s"),
    ({"policy": "fastest"}, "policy"),
    ({"max_slowdown": -0.1}, "max_slowdown"),
    ({"eta": 1.5}, "eta"),
    ({"decision_interval_s": 0}, "decision_interval_s"),
    ({"pue": 0.9}, "pue"),
    ({"policy": "static"}, "static_power_limit_w"),
    ({"power_limits_w": []}, "power_limits_w"),
    ({"forecaster": "prophet"}, "forecaster"),
    ({"strict": "yes"}, "strict"),
    ({"gpus": [0, 1]}, "gpus"),
    ({"watchdog": "yes"}, "watchdog"),
]


ADAPTERS = pytest.mark.parametrize("cls", [ChaseCallback, ChaseTrainerCallback, Chase],
                                   ids=["lightning", "hf", "plain"])


@ADAPTERS
@pytest.mark.parametrize(("kwargs", "argument"), CALLBACK_CASES, ids=[f"{a}-{i}" for i, (_, a) in
                                                                       enumerate(CALLBACK_CASES)])
def test_callback_arguments(cls, kwargs, argument):
    options = {"provider": StaticProvider(100.0), **kwargs}
    with pytest.raises(ConfigurationError, match=f"`{argument}`") as info:
        cls(**options)
    assert "must be" in str(info.value) or "HINT" in str(info.value)


@ADAPTERS
def test_unknown_callback_argument_is_a_type_error_naming_it(cls):
    with pytest.raises(TypeError, match=r"max_slowdwon.*did you mean 'max_slowdown'"):
        cls(provider=StaticProvider(100.0), max_slowdwon=0.1)


def test_every_adapter_takes_the_same_arguments_documented_once():
    import inspect

    from chase_integrations.core.arguments import ARGUMENTS, argument_names

    assert list(ARGUMENTS) == argument_names()  # every argument documented, in order
    shared = [(p.name, p.default, p.kind) for p in inspect.signature(ChaseCallback).parameters.values()]
    assert shared == [(p.name, p.default, p.kind) for p in inspect.signature(ChaseTrainerCallback).parameters.values()]
    plain = [(p.name, p.default, p.kind) for p in inspect.signature(Chase).parameters.values()]
    assert plain[: len(shared)] == shared
    assert [p[0] for p in plain[len(shared):]] == ["total_steps", "log", "accelerator", "fabric", "devices", "model"]
    for cls in (ChaseCallback, ChaseTrainerCallback, Chase):
        assert all(f"{name}:" in cls.__doc__ for name in argument_names()), cls


@pytest.mark.parametrize("cls", [ChaseCallback, ChaseTrainerCallback], ids=["lightning", "hf"])
def test_limits_outside_the_gpus_range_fail_at_train_start_before_any_step(cls, make_sim, tmp_path):
    """Only the GPU knows its range: ``power_limits_w``/``static_power_limit_w`` are checked at train start."""
    from tests.faults_helpers import run

    adapter = "lightning" if cls is ChaseCallback else "hf"
    for kwargs, argument in (({"power_limits_w": [50, 200]}, "power_limits_w"),
                             ({"policy": "static", "static_power_limit_w": 400}, "static_power_limit_w")):
        sim = make_sim()
        cb = cls(provider=sim.provider, simulation=sim, **kwargs)
        out = run(adapter, tmp_path, cb, expect=ConfigurationError)
        assert isinstance(out.error, ConfigurationError) and f"`{argument}`" in str(out.error)
        assert "[100, 300]" in str(out.error) and sim.steps == 0 and sim.power_limits_w == [275]


# ------------------------------------------------------------------ providers
PROVIDER_CASES = [
    (ElectricityMapsProvider, {"zone": ""}, "zone"),
    (ElectricityMapsProvider, {"zone": None}, "zone"),
    (ElectricityMapsProvider, {"zone": "DE", "token": ""}, "token"),
    (ElectricityMapsProvider, {"zone": "DE", "token": 12345}, "token"),
    (ElectricityMapsProvider, {"zone": "DE", "token": "t", "base_url": "http://example.com"}, "base_url"),
    (ElectricityMapsProvider, {"zone": "DE", "token": "t", "base_url": "ftp://127.0.0.1"}, "base_url"),
    (ElectricityMapsProvider, {"zone": "DE", "token": "t", "base_url": None}, "base_url"),
    (ElectricityMapsProvider, {"zone": "DE", "token": "t", "timeout_s": 0}, "timeout_s"),
    (ElectricityMapsProvider, {"zone": "DE", "token": "t", "timeout_s": "10"}, "timeout_s"),
    (ElectricityMapsProvider, {"zone": "DE", "token": "t", "emission_factor": "scope3"}, "emission_factor"),
    (ElectricityMapsProvider, {"zone": "DE", "token": "t", "disable_estimations": "no"}, "disable_estimations"),
    (UKCarbonIntensityProvider, {"region_id": 0}, "region_id"),
    (UKCarbonIntensityProvider, {"region_id": "13"}, "region_id"),
    (UKCarbonIntensityProvider, {"region_id": 99}, "region_id"),
    (UKCarbonIntensityProvider, {"postcode": ""}, "postcode"),
    (UKCarbonIntensityProvider, {"postcode": 12345}, "postcode"),
    (UKCarbonIntensityProvider, {"region_id": 1, "postcode": "RG10"}, "region_id"),
    (UKCarbonIntensityProvider, {"base_url": "http://carbonintensity.org.uk"}, "base_url"),
    (WattTimeProvider, {"region": ""}, "region"),
    (WattTimeProvider, {"region": 5, "username": "u", "password": "p"}, "region"),
    (WattTimeProvider, {"username": "", "password": "p"}, "username"),
    (WattTimeProvider, {"username": "u", "password": ""}, "password"),
    (WattTimeProvider, {"username": "u", "password": "p", "base_url": "http://10.0.0.1"}, "base_url"),
    (StaticProvider, {"g_per_kwh": None}, "g_per_kwh"),
    (StaticProvider, {"g_per_kwh": NAN}, "g_per_kwh"),
    (StaticProvider, {"g_per_kwh": INF}, "g_per_kwh"),
    (StaticProvider, {"g_per_kwh": True}, "g_per_kwh"),
    (TraceProvider, {"path": "/nonexistent/trace.csv"}, "path"),
]


@pytest.mark.parametrize(("cls", "kwargs", "argument"), PROVIDER_CASES,
                         ids=[f"{c.__name__}-{a}-{i}" for i, (c, _, a) in enumerate(PROVIDER_CASES)])
def test_provider_arguments(cls, kwargs, argument, monkeypatch):
    for env in ("ELECTRICITYMAPS_API_TOKEN", "WATTTIME_USERNAME", "WATTTIME_PASSWORD"):
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(ConfigurationError, match=f"`{argument}`"):
        cls(**kwargs)


# ------------------------------------------------------------------ traces
def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


TRACE_CASES = [
    ("", {}, "path"),  # empty file
    ("a,b\n1,2\n", {}, "time_column"),  # no usable columns
    ("datetime,name\n2024-01-01,x\n2024-01-01T01:00,y\n", {}, "value_column"),  # no numeric column
    ("datetime_utc,ci\n2024-01-01,1\n", {"time_column": "when"}, "time_column"),
    ("datetime_utc,ci\n2024-01-01,1\n", {"value_column": 3}, "value_column"),
    ("datetime_utc,ci\nyesterday,x\n", {"value_column": "ci"}, "value_column"),  # values are not numbers
    ("datetime_utc,ci\nyesterday,5\n", {}, "time_column"),  # no timestamp parses
    ("datetime_utc,ci\n2024-01-01,\n", {}, "path"),  # no usable rows
    ("datetime_utc,ci\n2024-01-01,-5\n", {}, "value_column"),  # negative intensity
]


@pytest.mark.parametrize(("text", "kwargs", "argument"), TRACE_CASES, ids=[a + str(i) for i, (_, _, a) in
                                                                           enumerate(TRACE_CASES)])
def test_bad_traces(tmp_path, text, kwargs, argument):
    with pytest.raises(ConfigurationError, match=f"`{argument}`"):
        TraceProvider(_csv(tmp_path, text), **kwargs)


def test_unsorted_duplicated_and_mixed_timezone_traces_are_normalised(tmp_path):
    from chase_integrations.simulation.clock import SimulatedClock

    text = ("timestamp,ci\n2024-01-01T03:00:00+01:00,300\n2024-01-01T00:00:00Z,100\n"
            "2024-01-01T01:00:00,150\n2024-01-01T01:00:00+00:00,250\n")
    trace = TraceProvider(_csv(tmp_path, text), clock=SimulatedClock("2024-01-01T02:30:00Z"))
    readings = trace.history(24)
    times = [r.time for r in readings]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(t.utcoffset().total_seconds() == 0 for t in times)  # naive read as UTC, others converted
    assert [r.g_per_kwh for r in readings] == [100.0, 200.0, 300.0]


# ------------------------------------------------------------------ simulate() and GPU profiles
@pytest.fixture
def sim_args(gpu_profile_csv, trace_csv) -> dict:
    return dict(trace=trace_csv, gpu_profile=gpu_profile_csv, workload="imagenet/resnet50", batch_size=256,
                job_hours=2, start="2023-03-01T00:00:00Z", forecaster="persistence")


SIMULATE_CASES = [
    ({"policy": "greedy"}, "policy"),
    ({"job_hours": 0}, "job_hours"),
    ({"job_hours": "2h"}, "job_hours"),
    ({"job_hours": NAN}, "job_hours"),
    ({"start": "yesterday"}, "start"),
    ({"start": 20230301}, "start"),
    ({"start": "1990-01-01T00:00:00Z"}, "start"),  # before the trace
    ({"max_slowdown": -1}, "max_slowdown"),
    ({"eta": 2}, "eta"),
    ({"forecaster": "oracle"}, "forecaster"),
    ({"decision_interval_s": 0}, "decision_interval_s"),
    ({"policy": "static"}, "static_power_limit_w"),
    ({"policy": "static", "static_power_limit_w": 5000}, "static_power_limit_w"),
    ({"power_limits_w": [1, 2]}, "power_limits_w"),
    ({"pue": 0.5}, "pue"),
    ({"workload": "imagenet/vit"}, "workload"),
    ({"batch_size": 3}, "batch_size"),
    ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ({"step_s": 0}, "step_s"),
    ({"trace": "/nonexistent.csv"}, "trace"),
    ({"gpu_profile": "/nonexistent.csv"}, "gpu_profile"),
]


@pytest.mark.parametrize(("kwargs", "argument"), SIMULATE_CASES, ids=[a + str(i) for i, (_, a) in
                                                                       enumerate(SIMULATE_CASES)])
def test_simulate_arguments(sim_args, kwargs, argument):
    from chase_integrations.simulation import simulate

    with pytest.raises(ConfigurationError, match=f"`{argument}`"):
        simulate(**{**sim_args, **kwargs})


PROFILE_CASES = [
    ("dataset,network,batch_size,optimizer,power_limit,time_per_epoch\n", "gpu_profile"),  # no average_power
    ("dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n", "gpu_profile"),  # no rows
    ("dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"
     "imagenet,resnet50,256,sgd,,100,200\n", "gpu_profile"),  # missing limit
    ("dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"
     "imagenet,resnet50,256,sgd,300,-1,200\n", "gpu_profile"),  # negative time
]


@pytest.mark.parametrize(("text", "argument"), PROFILE_CASES)
def test_bad_gpu_profiles(tmp_path, trace_csv, text, argument):
    from chase_integrations.simulation import Simulation

    path = tmp_path / "profile.csv"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=f"`{argument}`"):
        Simulation(gpu_profile=path, trace=trace_csv, steps_per_epoch=20)


def test_saved_power_profile_missing_limits_profiles_again(make_sim, tmp_path):
    """A saved profile (``profile_path``) that lacks a needed limit is not used: warned once, re-profiled."""
    import json

    from chase_integrations.core.profile import PowerProfile
    from tests.faults_helpers import run

    path = tmp_path / "profile.json"
    PowerProfile({300: (1.0, 200.0)}).save(path)
    sim = make_sim()
    cb = ChaseCallback(provider=sim.provider, simulation=sim, policy="static", static_power_limit_w=200,
                       profile_path=str(path), profile_warmup_steps=0, profile_measure_steps=1)
    out = run("lightning", tmp_path, cb, epochs=1)
    assert any("lacks limits [200]" in w for w in out.warnings)
    assert {r["power_limit_w"] for r in json.loads(path.read_text())["limits"]} == {200, 300}
    path.write_text('{"limits": [{"power_limit_w": 300}]}')  # damaged: not a profile
    cb = ChaseCallback(provider=sim.provider, simulation=make_sim(), profile_path=str(path))
    out = run("lightning", tmp_path, cb, epochs=1, expect=ConfigurationError)
    assert "power profile" in str(out.error)
