"""`Chase` in a plain PyTorch loop, one process, on the simulated GPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from chase_integrations import Chase
from chase_integrations.errors import ChaseWarning, ConfigurationError, PowerPermissionError

ROOT = Path(__file__).resolve().parents[1]
METRIC_KEYS = {
    "chase/power_limit_w",
    "chase/intensity_g_per_kwh",
    "chase/forecast_g_per_kwh",
    "chase/energy_j",
    "chase/carbon_g",
    "chase/carbon_saved_g",
}
STEPS = 20  # optimizer steps per epoch (the simulation's steps_per_epoch)


def _chase(sim, tmp_path, **kwargs) -> Chase:
    options = dict(provider=sim.provider, simulation=sim, forecaster="persistence", decision_interval_s=1800,
                   report_path=str(tmp_path / "report.json"), profile_warmup_steps=1, profile_measure_steps=3)
    options.update(kwargs)
    return Chase(**options)


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.01)


def _batches(steps: int = STEPS):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(2, 4, generator=g), torch.randn(2, 1, generator=g)) for _ in range(steps)]


def _train(chase: Chase, epochs: int, fail_at: int | None = None, interrupt_at: int | None = None) -> list[dict]:
    """A plain loop: forward, backward, optimizer step, ``chase.step()``; returns what ``step`` returned."""
    model, opt = _model_and_optimizer()
    returned, n = [], 0
    for _ in range(epochs):
        for x, y in _batches():
            if fail_at is not None and n >= fail_at:
                raise RuntimeError("boom in the loop")
            if interrupt_at is not None and n >= interrupt_at:
                raise KeyboardInterrupt
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += 1
            metrics = chase.step()
            if metrics is not None:
                returned.append(metrics)
        metrics = chase.epoch_end()
        if metrics is not None:
            returned.append(metrics)
    return returned


def _read_report(tmp_path) -> dict:
    return json.loads((tmp_path / "report.json").read_text())


# ------------------------------------------------------------------------------------------- the loop
def test_budget_loop_logs_metrics_and_report_sums(make_sim, tmp_path):
    sim = make_sim()
    logged: list[dict] = []
    chase = _chase(sim, tmp_path, policy="budget", max_slowdown=0.1, pue=1.3, total_steps=3 * STEPS,
                   log=logged.append)
    assert sim.gpus.gpus[0].limit_history_w == []  # nothing touched before start
    with chase:
        returned = _train(chase, epochs=3)

    assert logged, "log was never called"
    assert returned == logged[: len(returned)]  # step()/epoch_end() return what log received
    assert all(set(m) >= METRIC_KEYS for m in logged if "chase/forecast_g_per_kwh" in m)
    assert all(METRIC_KEYS - {"chase/forecast_g_per_kwh"} <= set(m) for m in logged)
    carbon = [m["chase/carbon_g"] for m in logged]
    assert carbon == sorted(carbon) and carbon[-1] > 0  # cumulative

    report = _read_report(tmp_path)
    assert report == json.loads(json.dumps(chase.report))
    assert report["status"] == "finished" and report["policy"] == "budget" and report["steps"] == 3 * STEPS
    assert math.isclose(logged[-1]["chase/carbon_g"], report["carbon_g"], rel_tol=1e-9)
    assert math.isclose(report["carbon_g"], sum(iv["carbon_g"] for iv in report["intervals"]), rel_tol=1e-9)
    for iv in report["intervals"]:
        assert math.isclose(iv["carbon_g"], iv["energy_j"] / 3.6e6 * iv["intensity_g_per_kwh"] * 1.3, rel_tol=1e-9)
    assert math.isclose(report["energy_j"], sim.gpus.get_total_energy_consumption(0) / 1000.0, rel_tol=1e-3)
    assert {iv["phase"] for iv in report["intervals"]} == {"profile", "train"}
    assert len(set(sim.gpus.gpus[0].limit_history_w)) > 2  # profiling and decisions set limits
    assert report["original_power_limits_w"] == [275] and sim.power_limits_w == [275]


def test_same_ledger_as_the_lightning_callback(make_sim, tmp_path):
    """One scenario, two adapters, one engine: the plain loop and the Lightning Trainer agree."""
    from chase_integrations.lightning import ChaseCallback
    from tests.lightning_helpers import TinyModel, loader, trainer

    options = dict(policy="budget", max_slowdown=0.1, forecaster="persistence", decision_interval_s=1800,
                   profile_warmup_steps=1, profile_measure_steps=3)
    sim_l = make_sim()
    cb = ChaseCallback(provider=sim_l.provider, simulation=sim_l, **options)
    trainer(cb, tmp_path, max_epochs=3).fit(TinyModel(), loader(STEPS))
    sim_p = make_sim()
    with Chase(provider=sim_p.provider, simulation=sim_p, total_steps=3 * STEPS, **options) as chase:
        _train(chase, epochs=3)
    lightning, plain = cb.report, chase.report
    for key in ("energy_j", "carbon_g", "time_s", "baseline_carbon_g", "carbon_saved_g", "steps"):
        assert plain[key] == pytest.approx(lightning[key], rel=1e-12), key
    assert plain["intervals"] == lightning["intervals"]


def test_without_with_start_step_end(make_sim, tmp_path):
    sim = make_sim()
    chase = _chase(sim, tmp_path, policy="static", static_power_limit_w=225)
    assert chase.start() is chase
    try:
        _train(chase, epochs=2)
    finally:
        report = chase.end()
    assert report is chase.report and report["status"] == "finished" and report["steps"] == 2 * STEPS
    assert 225 in sim.gpus.gpus[0].limit_history_w and sim.power_limits_w == [275]
    assert chase.end() == report  # idempotent


def test_step_before_start_warns_and_starts(make_sim, tmp_path):
    sim = make_sim()
    chase = _chase(sim, tmp_path, policy="monitor")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(chase, epochs=1)
        chase.end()
    ours = [str(w.message) for w in caught if issubclass(w.category, ChaseWarning)]
    assert len(ours) == 1 and "before Chase.start()" in ours[0], ours
    assert chase.report["steps"] == STEPS - 1  # the step that started it ran unmeasured


# ------------------------------------------------------------------------------------------- failures
def test_exception_restores_limit_writes_failed_report_and_propagates_unchanged(make_sim, tmp_path):
    sim = make_sim()
    chase = _chase(sim, tmp_path, policy="static", static_power_limit_w=200)
    with pytest.raises(RuntimeError, match="boom in the loop") as info, chase:
        _train(chase, epochs=3, fail_at=30)
    assert info.value.__traceback__ is not None and type(info.value) is RuntimeError
    assert 200 in sim.gpus.gpus[0].limit_history_w
    assert sim.power_limits_w == [275]
    report = _read_report(tmp_path)
    assert report["status"] == "failed" and chase.report["status"] == "failed"
    assert report["steps"] == 30
    assert math.isclose(report["carbon_g"], sum(iv["carbon_g"] for iv in report["intervals"]), rel_tol=1e-9)


def test_keyboard_interrupt_restores_limit_and_reports_interrupted(make_sim, tmp_path):
    sim = make_sim()
    chase = _chase(sim, tmp_path, policy="static", static_power_limit_w=200)
    with pytest.raises(KeyboardInterrupt), chase:
        _train(chase, epochs=3, interrupt_at=30)
    assert 200 in sim.gpus.gpus[0].limit_history_w
    assert sim.power_limits_w == [275]
    assert _read_report(tmp_path)["status"] == "interrupted"


def test_strict_without_permission_fails_at_start_with_a_report(make_sim, tmp_path):
    sim = make_sim(allow_set_power_limit=False)
    chase = _chase(sim, tmp_path, policy="chase", strict=True)
    with pytest.raises(PowerPermissionError), chase:
        pytest.fail("the body must not run")
    assert sim.steps == 0 and sim.power_limits_w == [275]
    assert _read_report(tmp_path)["status"] == "failed"


def test_no_permission_runs_advisory_with_one_warning(make_sim, tmp_path):
    sim = make_sim(allow_set_power_limit=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _chase(sim, tmp_path, policy="chase") as chase:
            _train(chase, epochs=2)
    ours = [str(w.message) for w in caught if issubclass(w.category, ChaseWarning)]
    assert len(ours) == 1 and "advisory" in ours[0], ours
    assert chase.report["mode"] == "advisory" and chase.report["energy_j"] > 0
    assert sim.gpus.gpus[0].limit_history_w == []


def test_internal_error_never_stops_the_loop(make_sim, tmp_path):
    sim = make_sim()
    chase = _chase(sim, tmp_path, policy="static", static_power_limit_w=200)

    def broken_step_end():
        raise ZeroDivisionError("engine bug")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with chase:
            _train(chase, epochs=1)
            chase.session.step_end = broken_step_end
            assert chase.step() is None  # absorbed
            _train(chase, epochs=1)
    assert any("failed internally" in str(w.message) for w in caught)
    assert chase.report["internal_errors"] == 1
    assert sim.power_limits_w == [275]


def test_log_errors_are_the_users_and_propagate(make_sim, tmp_path):
    sim = make_sim()

    def bad_log(metrics):
        raise ValueError("my logger")

    chase = _chase(sim, tmp_path, policy="static", static_power_limit_w=200, log=bad_log)
    with pytest.raises(ValueError, match="my logger"), chase:
        _train(chase, epochs=2)
    assert sim.power_limits_w == [275] and _read_report(tmp_path)["status"] == "failed"


def test_sigterm_restores_the_limit_and_reports_interrupted(tmp_path):
    """In a real process: our SIGTERM handler restores, then SystemExit leaves `with` through abort."""
    child = f"""
import os, signal
from chase_integrations import Chase
from chase_integrations.simulation import Simulation
from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace
tmp = {str(tmp_path)!r}
sim = Simulation(gpu_profile=write_synthetic_gpu_profile(tmp + "/p.csv"), trace=write_synthetic_trace(tmp + "/t.csv"),
                 steps_per_epoch=20, initial_power_limit_w=275)
gpu = sim.gpus.gpus[0]
original = gpu.set_power_management_limit
def logged(power_limit_mw, block=True):
    original(power_limit_mw, block)
    with open(tmp + "/limits.log", "a") as f:
        f.write(f"{{power_limit_mw // 1000}}\\n")
gpu.set_power_management_limit = logged
with Chase(provider=sim.provider, simulation=sim, policy="static", static_power_limit_w=200,
           forecaster="persistence", profile_warmup_steps=0, profile_measure_steps=1,
           report_path=tmp + "/report.json") as chase:
    for step in range(100):
        chase.step()
        if step == 10:
            os.kill(os.getpid(), signal.SIGTERM)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, env=env)
    limits = [int(x) for x in (tmp_path / "limits.log").read_text().split()]
    assert 200 in limits and limits[-1] == 275, (limits, proc.stderr[-2000:])
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert _read_report(tmp_path)["status"] == "interrupted"


# ------------------------------------------------------------------------------------------- resume
def test_resume_through_state_dict_continues_the_ledger(make_sim, tmp_path):
    sim = make_sim()
    first = _chase(sim, tmp_path, policy="chase")
    with first:
        _train(first, epochs=2)
        checkpoint = json.dumps({"model": "...", "chase": first.state_dict()})  # saved with the model
    sim2 = make_sim(start=sim.clock.now().isoformat())  # the job goes on where it stopped
    second = _chase(sim2, tmp_path, policy="chase")
    second.load_state_dict(json.loads(checkpoint)["chase"])
    with second:
        _train(second, epochs=2)
    a, b = first.report, second.report
    n = len(a["intervals"])
    assert b["intervals"][:n] == a["intervals"]
    assert len(b["intervals"]) > n and b["steps"] == 4 * STEPS
    assert b["carbon_g"] > a["carbon_g"]
    assert math.isclose(b["carbon_g"], sum(iv["carbon_g"] for iv in b["intervals"]), rel_tol=1e-9)
    assert all(iv["phase"] == "train" for iv in b["intervals"][n:])  # the profile came with the state


def test_state_dict_round_trips_through_json(make_sim, tmp_path):
    chase = _chase(make_sim(), tmp_path, policy="budget")
    with chase:
        _train(chase, epochs=2)
    state = chase.state_dict()
    fresh = _chase(make_sim(), tmp_path, policy="budget")
    fresh.load_state_dict(json.loads(json.dumps(state)))
    fresh.session._restore_from_state()
    assert fresh.session.state_dict() | {"readings": []} == state | {"readings": []}


def test_a_second_run_on_the_same_object_is_a_new_ledger(make_sim, tmp_path):
    sim = make_sim()
    chase = _chase(sim, tmp_path, policy="monitor")
    with chase:
        _train(chase, epochs=1)
    with chase:
        _train(chase, epochs=1)
    assert chase.report["steps"] == STEPS


# ------------------------------------------------------------------------------------------- construction
@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"policy": "greedy"}, "policy"),
    ({"max_slowdown": -0.1}, "max_slowdown"),
    ({"total_steps": 0}, "total_steps"),
    ({"total_steps": 10.5}, "total_steps"),
    ({"log": "print"}, "log"),
    ({"devices": "0"}, "devices"),
    ({"devices": [-1]}, "devices"),
    ({"devices": [3]}, "devices"),  # the simulation has one GPU
    ({"accelerator": object()}, "accelerator"),
    ({"fabric": object()}, "fabric"),
    ({"model": "resnet50"}, "model"),
])
def test_bad_arguments_name_the_argument(make_sim, tmp_path, kwargs, argument):
    sim = make_sim()
    with pytest.raises(ConfigurationError, match=f"`{argument}`"):
        _chase(sim, tmp_path, **kwargs)
    assert sim.gpus.gpus[0].limit_history_w == [] and sim.steps == 0


def test_devices_choose_the_gpus(make_sim, tmp_path):
    sim = make_sim(num_gpus=2)
    with _chase(sim, tmp_path, policy="static", static_power_limit_w=200, devices=[1]) as chase:
        _train(chase, epochs=1)
    assert sim.gpus.gpus[0].limit_history_w == [] and 200 in sim.gpus.gpus[1].limit_history_w


def test_import_stays_light():
    code = ("import sys\nfrom chase_integrations import Chase\nimport chase_integrations.plain\n"
            "print(','.join(m for m in ('torch', 'lightning', 'transformers', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_accelerate_gradient_accumulation_counts_optimizer_steps(tmp_path):
    """A real ``Accelerator`` (in its own process: its state is process-wide) accumulating 2 batches per step."""
    child = f"""
import json, torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset
from chase_integrations import Chase
from chase_integrations.simulation import Simulation
from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace
tmp = {str(tmp_path)!r}
sim = Simulation(gpu_profile=write_synthetic_gpu_profile(tmp + "/p.csv"), trace=write_synthetic_trace(tmp + "/t.csv"),
                 steps_per_epoch=20, initial_power_limit_w=275)
accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
data = TensorDataset(torch.randn(80, 4), torch.randn(80, 1))
model, optimizer, loader = accelerator.prepare(model, optimizer, DataLoader(data, batch_size=2))
with Chase(provider=sim.provider, simulation=sim, policy="monitor", forecaster="persistence",
           accelerator=accelerator, log=accelerator.log) as chase:
    for x, y in loader:
        with accelerator.accumulate(model):
            loss = torch.nn.functional.mse_loss(model(x), y)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        chase.step()
    chase.epoch_end()
print(json.dumps({{"steps": chase.report["steps"], "sim_steps": sim.steps, "status": chase.report["status"]}}))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"steps": 20, "sim_steps": 20, "status": "finished"}  # 40 batches, 20 optimizer steps


def test_a_profile_folder_is_keyed_by_the_model(make_sim, tmp_path):
    """`model=` keys a saved profile to the workload; without it the looser key is warned about once."""
    folder = str(tmp_path / "profiles") + "/"

    def run(name: str, model) -> dict:
        work = tmp_path / name
        work.mkdir()
        chase = _chase(make_sim(), work, policy="budget", max_slowdown=0.05, profile_path=folder, model=model)
        with chase:
            _train(chase, epochs=2)
        return chase.report

    first = run("a", torch.nn.Linear(4, 1))
    assert first["profiling"]["steps"] > 0 and "profile-unkeyed" not in first["warnings"]
    assert run("b", torch.nn.Linear(4, 1))["profiling"]["steps"] == 0  # same workload: reused
    other = run("c", torch.nn.Linear(8, 1))  # another model on the same GPU: measured, never reused
    assert other["profiling"]["steps"] > 0
    assert len(list((tmp_path / "profiles").glob("*.json"))) == 2
    with pytest.warns(ChaseWarning, match="without model="):
        unkeyed = run("d", None)
    assert "profile-unkeyed" in unkeyed["warnings"]
