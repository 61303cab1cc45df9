"""The Hugging Face callback end to end: a real ``transformers.Trainer`` on the CPU over the simulated GPU."""

from __future__ import annotations

import json
import math
import signal
import warnings

import pytest
from transformers import Trainer

from chase_integrations.errors import ChaseWarning, PowerPermissionError
from tests.hf_helpers import FaultyRegressor, SFTStyleTrainer, chase_callback, hf_trainer

METRIC_KEYS = {
    "chase/power_limit_w",
    "chase/intensity_g_per_kwh",
    "chase/forecast_g_per_kwh",
    "chase/energy_j",
    "chase/carbon_g",
    "chase/carbon_saved_g",
}


def _chase_logs(trainer) -> list[dict]:
    return [e for e in trainer.state.log_history if "chase/carbon_g" in e]


def _report(tmp_path) -> dict:
    return json.loads((tmp_path / "report.json").read_text())


def test_metrics_reach_log_history_and_tensorboard(make_sim, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dir = tmp_path / "tb"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tb_dir))
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="chase")
    t = hf_trainer([cb], tmp_path, epochs=3, report_to=["tensorboard"], logging_strategy="steps",
                   logging_steps=5)
    t.train()

    logged = _chase_logs(t)
    assert logged and set().union(*logged) >= METRIC_KEYS
    assert all("step" in e for e in logged)
    carbon = [e["chase/carbon_g"] for e in logged]
    assert carbon == sorted(carbon) and math.isclose(carbon[-1], cb.report["carbon_g"], rel_tol=1e-9)
    # the Trainer's own loss logging is untouched by ours (trainer.log clears control.should_log)
    loss_steps = [e["step"] for e in t.state.log_history if "loss" in e]
    assert loss_steps == list(range(5, 61, 5))

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {f"train/{k}" for k in METRIC_KEYS} <= tags  # the TensorBoard integration prefixes "train/"
    tb_carbon = [e.value for e in acc.Scalars("train/chase/carbon_g")]
    assert tb_carbon == sorted(tb_carbon) and math.isclose(tb_carbon[-1], cb.report["carbon_g"], rel_tol=1e-5)
    assert [e.step for e in acc.Scalars("train/chase/carbon_g")] == [e["step"] for e in logged]


def test_report_carbon_is_sum_of_intervals(make_sim, tmp_path):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="budget", max_slowdown=0.1, pue=1.3)
    hf_trainer([cb], tmp_path, epochs=3).train()
    report = _report(tmp_path)
    for key in ("policy", "provider", "carbon_g", "energy_j", "time_s", "baseline_carbon_g",
                "baseline_time_s", "carbon_saved_g", "fallbacks", "original_power_limits_w", "intervals"):
        assert key in report
    assert report["intervals"] and report["status"] == "finished"
    assert math.isclose(report["carbon_g"], sum(i["carbon_g"] for i in report["intervals"]), rel_tol=1e-9)
    for iv in report["intervals"]:
        expected = iv["energy_j"] / 3.6e6 * iv["intensity_g_per_kwh"] * 1.3
        assert math.isclose(iv["carbon_g"], expected, rel_tol=1e-9)
    counter_j = sim.gpus.get_total_energy_consumption(0) / 1000.0
    assert math.isclose(report["energy_j"], counter_j, rel_tol=1e-3)
    assert report["original_power_limits_w"] == [275]
    assert report["steps"] == 60
    assert cb.session.total_steps == 60  # an epoch-based run: the total comes from state.max_steps


def test_limits_change_and_are_restored_after_train(make_sim, tmp_path):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="chase", eta=1.0)
    hf_trainer([cb], tmp_path, epochs=3).train()
    assert len(set(sim.gpus.gpus[0].limit_history_w)) > 2
    assert sim.power_limits_w == [275]  # the original, not the maximum (300)


class _LossFailsTrainer(Trainer):
    def __init__(self, *args, fail_at_call: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_at_call, self.loss_calls = fail_at_call, 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.loss_calls += 1
        if self.loss_calls == self.fail_at_call:
            raise RuntimeError("boom in compute_loss")
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


@pytest.mark.parametrize("where", ["forward", "compute_loss"])
def test_limit_restored_after_exception(make_sim, tmp_path, where):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="static", static_power_limit_w=200)
    if where == "forward":
        t = hf_trainer([cb], tmp_path, model=FaultyRegressor(fail_at_call=30))
    else:
        t = hf_trainer([cb], tmp_path, trainer_cls=_LossFailsTrainer, trainer_kwargs={"fail_at_call": 30})
    with pytest.raises(RuntimeError, match=f"boom in {where}"):
        t.train()
    assert 200 in sim.gpus.gpus[0].limit_history_w
    assert sim.power_limits_w == [275]
    report = _report(tmp_path)
    assert report["status"] == "failed" and report["steps"] == 29


def test_limit_restored_after_keyboard_interrupt(make_sim, tmp_path):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="static", static_power_limit_w=200)
    with pytest.raises(KeyboardInterrupt):
        hf_trainer([cb], tmp_path, model=FaultyRegressor(interrupt_at_call=30)).train()
    assert 200 in sim.gpus.gpus[0].limit_history_w
    assert sim.power_limits_w == [275]
    assert _report(tmp_path)["status"] == "interrupted"


def test_sigterm_restores_then_chains_and_reports(make_sim, tmp_path, monkeypatch):
    from chase_integrations.power import limits

    sim = make_sim()
    seen: list[list[int]] = []

    def users_handler(signum, frame):  # e.g. a job scheduler's graceful shutdown
        seen.append(sim.power_limits_w)
        raise SystemExit(143)

    previous = signal.getsignal(signal.SIGTERM)
    # as if the user's handler was there when the first controller installed ours (hooks are per process)
    monkeypatch.setattr(limits, "_hooks_installed", True)
    monkeypatch.setattr(limits, "_previous_sigterm", users_handler)
    signal.signal(signal.SIGTERM, limits._on_sigterm)
    try:
        cb = chase_callback(sim, tmp_path, policy="static", static_power_limit_w=200)
        with pytest.raises(SystemExit):
            hf_trainer([cb], tmp_path, model=FaultyRegressor(sigterm_at_call=30)).train()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [[275]]  # restored by our handler before the user's handler ran
    assert 200 in sim.gpus.gpus[0].limit_history_w and sim.power_limits_w == [275]
    assert _report(tmp_path)["status"] == "interrupted"


@pytest.mark.parametrize("restore_states", [False, True])
def test_resume_continues_the_ledger(make_sim, tmp_path, restore_states):
    sim = make_sim()
    cb1 = chase_callback(sim, tmp_path, policy="chase")
    hf_trainer([cb1], tmp_path, epochs=2, save_strategy="epoch",
               restore_callback_states_from_checkpoint=restore_states).train()
    first = cb1.report
    checkpoint = tmp_path / "out" / "checkpoint-40"
    saved = json.loads((checkpoint / "chase_state.json").read_text())
    assert saved["callback"] == "ChaseTrainerCallback" and saved["state"]["steps"] == 40

    sim2 = make_sim(start=sim.clock.now().isoformat())
    cb2 = chase_callback(sim2, tmp_path, policy="chase")
    t2 = hf_trainer([cb2], tmp_path, epochs=4, save_strategy="no",
                    restore_callback_states_from_checkpoint=restore_states)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # True resolves to the last checkpoint; a path is used as given
        t2.train(resume_from_checkpoint=True if restore_states else str(checkpoint))
    assert not [w for w in caught if issubclass(w.category, ChaseWarning)]
    assert any(c is cb2 for c in t2.callback_handler.callbacks)  # not rebuilt from JSON args
    second = cb2.report
    n = len(first["intervals"])
    assert second["intervals"][:n] == first["intervals"]
    assert len(second["intervals"]) > n and second["steps"] == 80
    assert second["carbon_g"] > first["carbon_g"]
    # the profile came from the checkpoint: the resumed run did not profile again
    assert all(iv["phase"] == "train" for iv in second["intervals"][n:])
    assert sim2.power_limits_w == [275]


def test_resume_without_saved_state_warns_once(make_sim, tmp_path):
    sim = make_sim()
    hf_trainer([], tmp_path, epochs=1, save_strategy="epoch").train()  # a checkpoint without chase state
    cb = chase_callback(sim, tmp_path, policy="monitor")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = hf_trainer([cb], tmp_path, epochs=2)
        t.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-20"))
    ours = [str(w.message) for w in caught if issubclass(w.category, ChaseWarning)]
    assert len(ours) == 1 and "starts afresh" in ours[0]
    assert cb.report["steps"] == 20


def test_state_dict_round_trips_through_json(make_sim, tmp_path):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="budget")
    hf_trainer([cb], tmp_path, epochs=2).train()
    state = cb.state_dict()
    fresh = chase_callback(make_sim(), tmp_path, policy="budget")
    fresh.load_state_dict(json.loads(json.dumps(state)))
    fresh.session._restore_from_state()
    assert fresh.session.state_dict() | {"readings": []} == state | {"readings": []}


def test_trainer_subclass(make_sim, tmp_path):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="chase")
    t = hf_trainer([cb], tmp_path, epochs=2, trainer_cls=SFTStyleTrainer, trainer_kwargs={"loss_scale": 2.0},
                   logging_strategy="steps", logging_steps=10)
    t.train()
    assert t.train_calls == 1 and cb.trainer is t
    assert _chase_logs(t) and any("sft/mean_loss" in e for e in t.state.log_history)
    assert cb.report["steps"] == 40 and sim.power_limits_w == [275]


def test_gradient_accumulation_counts_optimizer_steps(make_sim, tmp_path):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="monitor")
    hf_trainer([cb], tmp_path, epochs=1, gradient_accumulation_steps=2).train()
    assert cb.report["steps"] == 10 and sim.steps == 10
    assert cb.session.total_steps == 10


def test_max_steps_sets_total_steps(make_sim, tmp_path):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="budget")
    hf_trainer([cb], tmp_path, epochs=3, max_steps=25).train()
    assert cb.session.total_steps == 25
    assert cb.report["steps"] == 25 and sim.steps == 25 and sim.power_limits_w == [275]


def test_no_permission_runs_advisory_with_one_warning(make_sim, tmp_path):
    sim = make_sim(allow_set_power_limit=False)
    cb = chase_callback(sim, tmp_path, policy="chase")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hf_trainer([cb], tmp_path, epochs=2).train()
    ours = [w for w in caught if issubclass(w.category, ChaseWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "advisory" in str(ours[0].message)
    report = _report(tmp_path)
    assert report["mode"] == "advisory" and report["energy_j"] > 0
    assert sim.gpus.gpus[0].limit_history_w == [] and sim.power_limits_w == [275]


def test_strict_without_permission_fails_before_first_step(make_sim, tmp_path):
    sim = make_sim(allow_set_power_limit=False)
    cb = chase_callback(sim, tmp_path, policy="chase", strict=True)
    model = FaultyRegressor()
    with pytest.raises(PowerPermissionError):
        hf_trainer([cb], tmp_path, model=model, epochs=2).train()
    assert sim.steps == 0 and model.calls == 0
    assert sim.power_limits_w == [275]
    assert _report(tmp_path)["status"] == "failed"


def test_added_later_with_attach_and_without(make_sim, tmp_path):
    sim = make_sim()
    explicit = chase_callback(sim, tmp_path, policy="static", static_power_limit_w=200)
    t = hf_trainer([], tmp_path, model=FaultyRegressor(fail_at_call=30))
    explicit.attach(t)  # adds it and guards train()
    with pytest.raises(RuntimeError):
        t.train()
    assert explicit.report["status"] == "failed" and sim.power_limits_w == [275]

    sim2 = make_sim()
    late = chase_callback(sim2, tmp_path / "late", policy="static", static_power_limit_w=200)
    t2 = hf_trainer([], tmp_path, model=FaultyRegressor(fail_at_call=30))
    t2.add_callback(late)  # found at on_train_begin; the running call's steps are guarded
    with pytest.raises(RuntimeError):
        t2.train()
    assert late.trainer is t2 and late.report["status"] == "failed" and sim2.power_limits_w == [275]
    assert _chase_logs(t2)


def test_second_train_call_is_a_new_run(make_sim, tmp_path):
    sim = make_sim()
    cb = chase_callback(sim, tmp_path, policy="monitor")
    t = hf_trainer([cb], tmp_path, epochs=1)
    t.train()
    first = cb.report
    t.train()
    assert first["steps"] == 20 and cb.report["steps"] == 20
    assert cb.report["intervals"][0]["start"] >= first["intervals"][-1]["end"]


def test_demo_runs(make_sim):
    from chase_integrations.huggingface.demo import run_hf_demo

    sim = make_sim()
    report = run_hf_demo(sim, {"policy": "budget", "forecaster": "persistence", "profile_warmup_steps": 1,
                               "profile_measure_steps": 3}, epochs=2, steps_per_epoch=20)
    assert report["steps"] == 40 and report["status"] == "finished" and sim.power_limits_w == [275]


def test_accelerate_collective_single_process():
    import torch

    from chase_integrations.huggingface.collective import AccelerateCollective

    c = AccelerateCollective(0, 1, torch.device("cpu"))
    assert c.broadcast({"limit_w": 225}) == {"limit_w": 225}
    assert c.sum_max(2.0, 3.0) == (2.0, 3.0)
