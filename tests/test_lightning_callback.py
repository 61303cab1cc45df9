"""The Lightning callback end to end on the simulated GPU."""

from __future__ import annotations

import json
import math
import warnings

import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from chase_integrations.errors import ChaseWarning, PowerPermissionError
from chase_integrations.lightning import ChaseCallback
from tests.lightning_helpers import TinyModel, loader, trainer

METRIC_KEYS = {
    "chase/power_limit_w",
    "chase/intensity_g_per_kwh",
    "chase/forecast_g_per_kwh",
    "chase/energy_j",
    "chase/carbon_g",
    "chase/carbon_saved_g",
}


def _callback(sim, tmp_path, **kwargs):
    options = dict(provider=sim.provider, simulation=sim, forecaster="persistence", decision_interval_s=1800,
                   report_path=str(tmp_path / "report.json"), profile_warmup_steps=1, profile_measure_steps=3)
    options.update(kwargs)
    return ChaseCallback(**options)


def test_metrics_reach_csv_and_tensorboard(make_sim, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="chase")
    csv_logger = CSVLogger(str(tmp_path), name="csv")
    tb_logger = TensorBoardLogger(str(tmp_path), name="tb")
    trainer(cb, tmp_path, max_epochs=3, logger=[csv_logger, tb_logger]).fit(TinyModel(), loader(20))

    import csv

    with open(csv_logger.experiment.metrics_file_path) as f:
        header = set(next(csv.reader(f)))
    assert header >= METRIC_KEYS

    acc = EventAccumulator(tb_logger.log_dir)
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert tags >= METRIC_KEYS
    carbon = [e.value for e in acc.Scalars("chase/carbon_g")]
    assert carbon == sorted(carbon) and carbon[-1] > 0  # cumulative
    assert math.isclose(carbon[-1], cb.report["carbon_g"], rel_tol=1e-5)


def test_progress_bar_shows_limit_and_carbon(make_sim, tmp_path):
    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="static", static_power_limit_w=225)
    t = trainer(cb, tmp_path, max_epochs=2)
    t.fit(TinyModel(), loader(20))
    assert {"chase/power_limit_w", "chase/carbon_g"} <= set(t.progress_bar_metrics)


def test_report_carbon_is_sum_of_intervals(make_sim, tmp_path):
    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="budget", max_slowdown=0.1, pue=1.3)
    trainer(cb, tmp_path, max_epochs=3).fit(TinyModel(), loader(20))
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("policy", "provider", "carbon_g", "energy_j", "time_s", "baseline_carbon_g", "baseline_time_s",
                "carbon_saved_g", "fallbacks", "original_power_limits_w", "intervals"):
        assert key in report
    assert report["intervals"], "no intervals recorded"
    assert math.isclose(report["carbon_g"], sum(i["carbon_g"] for i in report["intervals"]), rel_tol=1e-9)
    for iv in report["intervals"]:
        expected = iv["energy_j"] / 3.6e6 * iv["intensity_g_per_kwh"] * 1.3
        assert math.isclose(iv["carbon_g"], expected, rel_tol=1e-9)
        assert iv["energy_j"] > 0
    # the energy the report counts is what the simulated GPU's counter advanced by (read through ZeusMonitor)
    counter_j = sim.gpus.get_total_energy_consumption(0) / 1000.0
    assert math.isclose(report["energy_j"], counter_j, rel_tol=1e-3)
    assert report["original_power_limits_w"] == [275]
    assert report["steps"] == 60


def test_limits_change_and_are_restored_after_fit(make_sim, tmp_path):
    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="chase", eta=1.0)
    trainer(cb, tmp_path, max_epochs=3).fit(TinyModel(), loader(20))
    history = sim.gpus.gpus[0].limit_history_w
    assert len(set(history)) > 2, history  # profiling and decisions really set limits
    assert sim.power_limits_w == [275]  # restored to the original, not reset to the maximum (300)


def test_limit_restored_after_exception(make_sim, tmp_path):
    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="static", static_power_limit_w=200)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(cb, tmp_path, max_epochs=3).fit(TinyModel(fail_at_step=30), loader(20))
    assert 200 in sim.gpus.gpus[0].limit_history_w
    assert sim.power_limits_w == [275]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed"


def test_limit_restored_after_keyboard_interrupt(make_sim, tmp_path):
    import signal

    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="static", static_power_limit_w=200)
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning turns Ctrl+C into a graceful exit
            trainer(cb, tmp_path, max_epochs=3).fit(TinyModel(interrupt_at_step=30), loader(20))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 200 in sim.gpus.gpus[0].limit_history_w
    assert sim.power_limits_w == [275]
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "interrupted"


def test_resume_continues_the_ledger(make_sim, tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    sim = make_sim()
    ckpt = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True, every_n_epochs=1)
    cb1 = _callback(sim, tmp_path, policy="chase")
    trainer([cb1, ckpt], tmp_path, max_epochs=2, enable_checkpointing=True).fit(TinyModel(), loader(20))
    first = cb1.report
    sim2 = make_sim(start=sim.clock.now().isoformat())
    cb2 = _callback(sim2, tmp_path, policy="chase")
    trainer([cb2], tmp_path, max_epochs=4).fit(TinyModel(), loader(20), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    second = cb2.report
    n = len(first["intervals"])
    assert second["intervals"][:n] == first["intervals"]
    assert len(second["intervals"]) > n
    assert second["steps"] == 80
    assert second["carbon_g"] > first["carbon_g"]
    # the profile came from the checkpoint: the resumed run did not profile again
    assert all(iv["phase"] == "train" for iv in second["intervals"][n:])


def test_state_dict_round_trips_through_json(make_sim, tmp_path):
    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="budget")
    trainer(cb, tmp_path, max_epochs=2).fit(TinyModel(), loader(20))
    state = cb.state_dict()
    again = json.loads(json.dumps(state))
    fresh = _callback(make_sim(), tmp_path, policy="budget")
    fresh.load_state_dict(again)
    fresh.session._restore_from_state()
    assert fresh.session.state_dict() | {"readings": []} == state | {"readings": []}


def test_no_permission_runs_advisory_with_one_warning(make_sim, tmp_path):
    sim = make_sim(allow_set_power_limit=False)
    cb = _callback(sim, tmp_path, policy="chase")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(cb, tmp_path, max_epochs=2).fit(TinyModel(), loader(20))
    ours = [w for w in caught if issubclass(w.category, ChaseWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "advisory" in str(ours[0].message)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "advisory" and report["energy_j"] > 0
    assert sim.gpus.gpus[0].limit_history_w == []
    assert sim.power_limits_w == [275]


def test_strict_without_permission_fails_before_first_step(make_sim, tmp_path):
    sim = make_sim(allow_set_power_limit=False)
    cb = _callback(sim, tmp_path, policy="chase", strict=True)
    model = TinyModel()
    with pytest.raises(PowerPermissionError):
        trainer(cb, tmp_path, max_epochs=2).fit(model, loader(20))
    assert sim.steps == 0
    assert sim.power_limits_w == [275]


def test_profile_path_saves_and_reuses(make_sim, tmp_path):
    path = tmp_path / "profile.json"
    sim = make_sim()
    trainer(_callback(sim, tmp_path, policy="chase", profile_path=str(path)), tmp_path, max_epochs=2).fit(
        TinyModel(), loader(20))
    assert path.exists()
    sim2 = make_sim()
    cb2 = _callback(sim2, tmp_path, policy="chase", profile_path=str(path))
    trainer(cb2, tmp_path, max_epochs=1).fit(TinyModel(), loader(20))
    assert all(iv["phase"] == "train" for iv in cb2.report["intervals"])


def test_interrupted_profiling_resumes_next_epoch(make_sim, tmp_path):
    sim = make_sim()
    # 9 candidate limits x (2 warm-up + 4 measured) steps cannot fit a 5-step epoch
    cb = _callback(sim, tmp_path, policy="chase", profile_warmup_steps=2, profile_measure_steps=4)
    trainer(cb, tmp_path, max_epochs=14).fit(TinyModel(), loader(5))
    session = cb.session
    assert session.profile is not None and len(session.profile) >= 3
    assert session.plan.interruptions > 0


def test_monitor_policy_never_sets_limits(make_sim, tmp_path):
    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="monitor")
    trainer(cb, tmp_path, max_epochs=2).fit(TinyModel(), loader(20))
    assert sim.gpus.gpus[0].limit_history_w == []
    assert cb.report["energy_j"] > 0 and cb.report["carbon_g"] > 0


def test_gradient_accumulation_counts_optimizer_steps(make_sim, tmp_path):
    sim = make_sim()
    cb = _callback(sim, tmp_path, policy="monitor")
    trainer(cb, tmp_path, max_epochs=1, accumulate_grad_batches=2).fit(TinyModel(), loader(20))
    assert cb.report["steps"] == 10 and sim.steps == 10
