"""Faults, end to end in both adapters over the simulated GPU: training must never fail because of us.

Every test runs the same scenario through Lightning and Hugging Face (``adapter``) and checks the three
promises: the user's training finishes (or fails only with the user's own error), our degradation is
loud once, and the GPU ends at its original limit (275 W; the maximum is 300 W).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from zeus.device.gpu.common import ZeusGPULostError, ZeusGPUNotSupportedError

from chase_integrations.core.accounting import Accountant
from chase_integrations.core.session import ChaseSession
from tests.faults_helpers import (
    ADAPTERS,
    PROFILE_THEN_SET,
    JumpingClock,
    LostForGood,
    at_sim_step,
    callback_options,
    make_callback,
    report,
    run,
    when_limits_set,
)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.parametrize("adapter", ADAPTERS)


def _cb(adapter, sim, tmp_path, **kwargs):
    return make_callback(adapter, **callback_options(sim, tmp_path, **kwargs))


def _finished(outcome, sim, steps: int = 60) -> dict:
    assert outcome.error is None and outcome.steps == steps
    assert sim.steps == steps and sim.power_limits_w == [275]
    rep = outcome.callback.report
    assert rep["status"] == "finished" and rep["steps"] == steps
    return rep


# ------------------------------------------------------------------ NVML errors while setting a limit
@pytest.mark.parametrize("error", [ZeusGPULostError, ZeusGPUNotSupportedError])
def test_set_fails_once_after_profiling(adapter, make_sim, tmp_path, error):
    sim = make_sim()
    gpu = sim.gpus.gpus[0]
    when_limits_set(sim, 3, lambda: setattr(gpu, "fail_next_set", error("simulated NVML failure")))
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, **PROFILE_THEN_SET))
    rep = _finished(out, sim)
    assert rep["mode"] == "advisory"
    assert len(out.warnings) == 1 and "advisory" in out.warnings[0] and error.__name__ in out.warnings[0]
    assert any(error.__name__ in n for n in rep["notes"])
    assert gpu.limit_history_w[:3] == [275, 300, 200] and gpu.limit_history_w[-1] == 275
    # advisory from then on: the report still logs the limit it would have set
    assert rep["intervals"][-1]["power_limit_w"] == 300 and rep["energy_j"] > 0


def test_gpu_lost_for_good(adapter, make_sim, tmp_path):
    """Setting and restoring both fail: training finishes, the failure to restore is in the report."""
    sim = make_sim()
    lost = LostForGood(sim.gpus.gpus[0])
    when_limits_set(sim, 3, lambda: setattr(lost, "armed", True))
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, **PROFILE_THEN_SET))
    assert out.error is None and out.steps == 60
    rep = out.callback.report
    assert rep["status"] == "finished" and rep["mode"] == "advisory"
    assert any("could not restore 275 W" in n for n in rep["notes"]), rep["notes"]
    assert sim.power_limits_w == [200]  # the lost GPU keeps what it had; nothing more could be done
    assert not out.callback.session.controller.restored  # still armed: atexit tries once more


def test_transient_restore_failure_is_retried_at_the_end(adapter, make_sim, tmp_path):
    """The set fails, then the immediate restore fails too; the restore at train end succeeds."""
    sim = make_sim()
    flaky = LostForGood(sim.gpus.gpus[0], failures=2)
    when_limits_set(sim, 3, lambda: setattr(flaky, "armed", True))
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, **PROFILE_THEN_SET))
    rep = _finished(out, sim)  # ends at 275 W
    assert rep["mode"] == "advisory" and any("could not restore" in n for n in rep["notes"])


def test_strict_set_failure_mid_run_raises_and_restores(adapter, make_sim, tmp_path):
    from chase_integrations.errors import PowerControlError

    sim = make_sim()
    gpu = sim.gpus.gpus[0]
    when_limits_set(sim, 3, lambda: setattr(gpu, "fail_next_set", ZeusGPULostError("lost")))
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, strict=True, **PROFILE_THEN_SET),
              expect=PowerControlError)
    assert isinstance(out.error, PowerControlError) and sim.power_limits_w == [275]
    assert report(tmp_path)["status"] == "failed"


# ------------------------------------------------------------------ energy counter faults
@pytest.mark.parametrize("kind", ["backwards", "wraps_to_zero"])
def test_energy_counter_backwards_or_wrapping(adapter, make_sim, tmp_path, kind):
    sim = make_sim()
    gpu = sim.gpus.gpus[0]

    removed_mj = []

    def corrupt():  # backwards: a driver reload; wraps: the counter restarts from zero
        counter = gpu.get_total_energy_consumption()
        removed_mj.append(counter // 2 if kind == "backwards" else counter)
        gpu.corrupt_energy_counter(-removed_mj[0])

    at_sim_step(sim, lambda n: n == 30, corrupt)
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, policy="chase"))
    rep = _finished(out, sim)
    assert all(iv["energy_j"] >= 0 and iv["carbon_g"] >= 0 for iv in rep["intervals"])
    assert any("went backwards" in n for n in rep["notes"]), rep["notes"]
    true_j = (sim.gpus.get_total_energy_consumption(0) + removed_mj[0]) / 1000.0
    assert 0.8 * true_j < rep["energy_j"] <= true_j + 1e-6  # the broken window counts 0 J: never inflated


def test_zero_energy_windows_in_training(adapter, make_sim, tmp_path):
    """The counter stops for a while during training: zero-energy intervals are recorded as 0 J and survived."""
    sim = make_sim()
    gpu = sim.gpus.gpus[0]
    original = gpu.run
    gpu.run = lambda seconds: None if sim.steps + 1 in range(20, 41) else original(seconds)
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, **PROFILE_THEN_SET))
    rep = _finished(out, sim)
    assert all(iv["energy_j"] >= 0 for iv in rep["intervals"])
    assert any(iv["energy_j"] == 0 for iv in rep["intervals"])
    assert rep["profile"] is not None and all(r["energy_per_step_j"] > 0 for r in rep["profile"]["limits"])


def _freeze_counter(sim, frozen) -> None:
    """Stop the simulated GPU's energy counter on the steps where ``frozen(step, limit_w)``."""
    gpu = sim.gpus.gpus[0]
    original = gpu.run

    def run_gpu(seconds: float) -> None:
        if not frozen(sim.steps + 1, gpu.power_limit_w):
            original(seconds)

    gpu.run = run_gpu


@pytest.mark.parametrize("where", ["first_window", "one_limit", "throughout"])
def test_stalled_energy_counter_while_profiling(adapter, make_sim, tmp_path, where):
    """A profiling window on a counter that does not advance is measured again, then left out; never trusted.

    Before: the window was floored at 1e-9 J, so that limit looked free and every policy picked it.
    """
    ref_sim = make_sim()
    (tmp_path / "ref").mkdir()
    reference = run(adapter, tmp_path / "ref", _cb(adapter, ref_sim, tmp_path / "ref", **PROFILE_THEN_SET))
    true = {r["power_limit_w"]: r["energy_per_step_j"] for r in _finished(reference, ref_sim)["profile"]["limits"]}
    sim = make_sim()
    frozen = {
        "first_window": lambda step, limit: step <= 4,  # warm-up and the first window of 300 W
        "one_limit": lambda step, limit: limit == 200 and step < 30,  # every window of 200 W
        "throughout": lambda step, limit: True,
    }[where]
    _freeze_counter(sim, frozen)
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, **PROFILE_THEN_SET))
    rep = _finished(out, sim)
    stalled = [w for w in out.warnings if "energy counter did not advance" in w]
    if where == "first_window":  # measured again: the profile is the true one
        measured = {r["power_limit_w"]: r["energy_per_step_j"] for r in rep["profile"]["limits"]}
        assert measured.keys() == true.keys()
        assert all(measured[w] == pytest.approx(true[w], rel=0.02) for w in true)
        assert not stalled and not any("energy counter" in n for n in rep["notes"])
    elif where == "one_limit":  # 200 W stalled twice: left out, so it is never chosen
        assert [r["power_limit_w"] for r in rep["profile"]["limits"]] == [300]
        assert len(stalled) == 1 and "200 W" in stalled[0]
        assert any("200 W left out of the profile" in n for n in rep["notes"])
        assert all(iv["power_limit_w"] != 200 for iv in rep["intervals"] if iv["phase"] == "train")
    else:  # the default limit stalled twice: no profile, power control off, the GPU back at its original limit
        assert rep["profile"] is None
        assert len(stalled) == 1 and "Power control is off" in stalled[0]
        assert any("power control off" in n for n in rep["notes"])
        assert sim.power_limits_w == [275]
        assert rep["intervals"][-1]["power_limit_w"] == 275 and rep["intervals"][-1]["phase"] == "train"
        assert sim.gpus.gpus[0].limit_history_w[-1] == 275  # restored when profiling gave up, never set again


# ------------------------------------------------------------------ wall clock jumps, monotonic does not
@pytest.mark.parametrize("jump_s", [-3 * 3600.0, 6 * 3600.0])
def test_wall_clock_jump(adapter, make_sim, tmp_path, jump_s):
    sim = make_sim()
    clock = JumpingClock(sim.clock)
    sim.clock = clock  # the session reads sim.clock; the provider keeps the true (server) time
    at_sim_step(sim, lambda n: n == 25, lambda: clock.jump(jump_s))
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, policy="chase"))
    rep = _finished(out, sim)
    durations = [iv["duration_s"] for iv in rep["intervals"]]
    assert all(d >= 0 for d in durations)  # durations come from monotonic time
    assert abs(rep["time_s"] - clock.monotonic()) < 1e-6 * clock.monotonic()
    assert all(iv["carbon_g"] >= 0 for iv in rep["intervals"])


# ------------------------------------------------------------------ the user's interrupts
@pytest.mark.parametrize("at", [3, 30])  # during profiling, during training
def test_keyboard_interrupt(adapter, make_sim, tmp_path, at):
    import signal

    sim = make_sim()
    cb = _cb(adapter, sim, tmp_path, **PROFILE_THEN_SET)
    if adapter == "lightning":
        from tests.lightning_helpers import TinyModel

        model = TinyModel(interrupt_at_step=at)
    else:
        from tests.hf_helpers import FaultyRegressor

        model = FaultyRegressor(interrupt_at_call=at + 1)
    previous = signal.getsignal(signal.SIGINT)
    try:
        out = run(adapter, tmp_path, cb, model=model, expect=(KeyboardInterrupt, SystemExit))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert out.error is not None  # Lightning turns Ctrl+C into SystemExit, HF lets KeyboardInterrupt through
    assert sim.power_limits_w == [275] and report(tmp_path)["status"] == "interrupted"


def test_sigterm_during_profiling_and_training(adapter, tmp_path):
    """Real SIGTERM in child processes (both run at once): the last limit ever written is the original."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = {}
    for step in (2, 30):  # 2: profiling 300 W; 30: training
        work = tmp_path / f"step{step}"
        work.mkdir()
        procs[step] = (work, subprocess.Popen([sys.executable, "-m", "tests.faults_helpers", adapter, str(step),
                                               str(work)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True))
    for step, (work, proc) in procs.items():
        _, err = proc.communicate(timeout=120)
        limits = [int(x) for x in (work / "limits.log").read_text().split()]
        before, after = limits[: limits.index(-1)], limits[limits.index(-1) + 1 :]
        assert (300 in before) if step == 2 else (200 in before), limits
        # restored at once, and never throttled again: SIGKILL may follow SIGTERM at any moment
        assert after and set(after) == {275}, (step, limits, err[-2000:])
        rep = json.loads((work / "report.json").read_text())
        assert rep["status"] == "interrupted" and rep["steps"] == step, (rep, err[-2000:])
        if adapter == "hf":  # our handler ends the process (128 + 15)
            assert proc.returncode == 143, err[-2000:]
        else:  # Lightning's handler ran too and stopped the fit with its SIGTERMException
            assert "Received SIGTERM" in err


# ------------------------------------------------------------------ bugs inside chase-integrations
def _baseline_params(adapter, tmp_path):
    return run(adapter, tmp_path / "baseline", None).params


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("method", ["_decide", "_record", "step_end", "start", "end"])
def test_bug_in_the_session_never_breaks_training(adapter, make_sim, tmp_path, monkeypatch, method):
    owner = Accountant if method == "_record" else ChaseSession  # interval accounting has its own module
    original = getattr(owner, method)
    calls = {"n": 0}
    fail_at = {"_decide": 2, "_record": 5, "step_end": 12}.get(method, 1)  # all after 200 W is set

    def buggy(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise TypeError(f"injected bug in {method}")
        return original(self, *args, **kwargs)

    sim = make_sim()
    monkeypatch.setattr(owner, method, buggy)
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, **PROFILE_THEN_SET))
    monkeypatch.undo()
    assert out.error is None and out.steps == 60
    assert len(out.warnings) == 1 and "failed internally" in out.warnings[0], out.warnings
    assert sim.power_limits_w == [275]
    assert _same(out.params, _baseline_params(adapter, tmp_path))  # the user's model is untouched
    session = out.callback.session
    assert session.internal_errors == 1 and session.broken
    rep = report(tmp_path)
    assert rep["internal_errors"] == 1 and any("injected bug" in n for n in rep["notes"])


def test_bug_with_strict_raises_and_restores(adapter, make_sim, tmp_path, monkeypatch):
    def buggy(self, *args, **kwargs):
        raise TypeError("injected bug")

    sim = make_sim()
    monkeypatch.setattr(ChaseSession, "_decide", buggy)
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, strict=True, **PROFILE_THEN_SET), expect=TypeError)
    assert isinstance(out.error, TypeError) and sim.power_limits_w == [275]


def test_provider_and_forecaster_raising_unexpected_errors(adapter, make_sim, tmp_path):
    from chase_integrations.forecast import PersistenceForecaster

    class BrokenForecaster(PersistenceForecaster):
        def predict(self, hours):
            raise TypeError("forecaster bug")

    sim = make_sim()
    calls = {"n": 0}
    latest = sim.provider.latest

    def flaky_latest():
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            raise TypeError("provider bug")
        return latest()

    sim.provider.latest = flaky_latest
    out = run(adapter, tmp_path, _cb(adapter, sim, tmp_path, policy="chase", forecaster=BrokenForecaster()))
    rep = _finished(out, sim)
    assert rep["internal_errors"] == 0  # both are absorbed where they happen, with fallbacks
    assert any("provider bug" in w for w in out.warnings)


# ------------------------------------------------------------------ checkpoints from other versions
OLD_AND_ODD_STATES = {
    "v0_minimal": {"intervals": []},  # an early format: no version, no profile, no readings
    "v0_interval_keys_only": {"version": 0, "intervals": [
        {"start": "2023-02-28T22:00:00+00:00", "end": "2023-02-28T23:00:00+00:00", "power_limit_w": 300,
         "intensity_g_per_kwh": 300.0, "forecast_g_per_kwh": None, "energy_j": 3.6e6, "carbon_g": 300.0}]},
    "future_version": {"version": 99, "intervals": [], "steps": 0, "new_key": {"x": 1},
                       "profile": None, "readings": [{"unknown": 1}]},
    "damaged": {"version": 1, "intervals": [{"start": "x"}], "profile": {"limits": "?"}},
    "wrong_types": {"version": "one", "intervals": [{"start": "a", "end": "b", "power_limit_w": 1,
                                                     "intensity_g_per_kwh": "NaN?", "forecast_g_per_kwh": None,
                                                     "energy_j": "lots", "carbon_g": 1.0}]},
}


@pytest.mark.parametrize("name", sorted(OLD_AND_ODD_STATES))
def test_resume_from_old_future_or_damaged_state(adapter, make_sim, tmp_path, name):
    state = OLD_AND_ODD_STATES[name]
    sim = make_sim()
    first = _cb(adapter, sim, tmp_path / "first", policy="monitor")
    if adapter == "lightning":
        from lightning.pytorch.callbacks import ModelCheckpoint

        ckpt = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True, every_n_epochs=1)
        from tests.lightning_helpers import TinyModel, loader, trainer

        trainer([first, ckpt], tmp_path, max_epochs=1, enable_checkpointing=True).fit(TinyModel(), loader(20))
        path = tmp_path / "ckpt" / "last.ckpt"
        checkpoint = torch.load(path, weights_only=False)
        checkpoint["callbacks"]["ChaseCallback"] = state
        torch.save(checkpoint, path)
        resume = {"ckpt_path": str(path)}
    else:
        from tests.hf_helpers import hf_trainer

        hf_trainer([first], tmp_path, epochs=1, save_strategy="epoch").train()
        folder = tmp_path / "out" / "checkpoint-20"
        (folder / "chase_state.json").write_text(json.dumps({"callback": "ChaseTrainerCallback", "state": state}))
        resume = {"resume_from_checkpoint": str(folder)}
    sim2 = make_sim(start=sim.clock.now().isoformat())
    cb = _cb(adapter, sim2, tmp_path, policy="chase")
    out = _resume(adapter, tmp_path, cb, resume)
    assert out.error is None
    rep = cb.report
    assert rep["status"] == "finished" and rep["internal_errors"] == 0 and sim2.power_limits_w == [275]
    if name in ("future_version", "damaged", "wrong_types"):
        assert len(out.warnings) >= 1, out.warnings
    if name in ("damaged", "wrong_types"):
        assert any("start afresh" in w for w in out.warnings), out.warnings
    if name == "v0_interval_keys_only":
        assert rep["intervals"][0]["carbon_g"] == 300.0  # the old interval is kept


def test_unreadable_chase_state_json(adapter, make_sim, tmp_path):
    if adapter != "hf":
        pytest.skip("chase_state.json is the HF adapter's file; Lightning's state lives in the .ckpt")
    from tests.hf_helpers import hf_trainer

    sim = make_sim()
    hf_trainer([_cb(adapter, sim, tmp_path / "first", policy="monitor")], tmp_path, epochs=1,
               save_strategy="epoch").train()
    folder = tmp_path / "out" / "checkpoint-20"
    (folder / "chase_state.json").write_text("{not json")
    cb = _cb(adapter, make_sim(), tmp_path, policy="monitor")
    out = _resume(adapter, tmp_path, cb, {"resume_from_checkpoint": str(folder)})
    assert out.error is None and cb.report["status"] == "finished"
    assert any("could not be read" in w for w in out.warnings)


def _resume(adapter, tmp_path, cb, resume) -> object:
    import warnings

    from chase_integrations.errors import ChaseWarning
    from tests.faults_helpers import Outcome

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if adapter == "lightning":
            from tests.lightning_helpers import TinyModel, loader, trainer

            trainer([cb], tmp_path, max_epochs=2).fit(TinyModel(), loader(20), **resume)
        else:
            from tests.hf_helpers import hf_trainer

            hf_trainer([cb], tmp_path, epochs=2).train(**resume)
    return Outcome(cb, None, -1, None, [str(w.message) for w in caught if issubclass(w.category, ChaseWarning)])
