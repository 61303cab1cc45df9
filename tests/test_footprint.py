"""Footprint prediction, PUE and CPU/DRAM accounting on simulated runs (issue: complete accounting)."""

from __future__ import annotations

import math

from zeus.device.cpu.common import CPU, CpuDramMeasurement, CPUs

from chase_integrations.core.collective import LocalCollective
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.session import ChaseSession, RunContext
from chase_integrations.lightning import ChaseCallback
from tests.lightning_helpers import TinyModel, loader, trainer


class FakeRaplCPU(CPU):
    """A RAPL package whose counters follow the simulated clock: 60 W package, 10 W DRAM."""

    def __init__(self, clock) -> None:
        super().__init__(0)
        self.clock = clock

    def get_total_energy_consumption(self) -> CpuDramMeasurement:
        t = self.clock.monotonic()
        return CpuDramMeasurement(cpu_mj=60.0 * t * 1000, dram_mj=10.0 * t * 1000)

    def supports_get_dram_energy_consumption(self) -> bool:
        return True


class FakeRaplCPUs(CPUs):
    def __init__(self, clock) -> None:
        self._cpus = [FakeRaplCPU(clock)]

    def __del__(self) -> None:
        pass

    @property
    def cpus(self):
        return self._cpus


def run_session(sim, total_steps: int, steps_per_epoch: int, **config):
    options = dict(provider=sim.provider, simulation=sim, forecaster="persistence", decision_interval_s=3600,
                   profile_warmup_steps=1, profile_measure_steps=2)
    options.update(config)
    session = ChaseSession(ChaseConfig(**options))
    session.start(RunContext([0], LocalCollective(), total_steps=total_steps))
    predictions = []
    for step in range(1, total_steps + 1):
        session.step_end()
        if step % steps_per_epoch == 0:
            session.epoch_end()
        if session.prediction is not None:
            predictions.append((step, session.prediction["total_carbon_g"], session.prediction))
    return session.end(), predictions


def test_prediction_converges_to_the_final_total(make_sim):
    sim = make_sim(steps_per_epoch=20)
    report, predictions = run_session(sim, total_steps=400, steps_per_epoch=20, policy="budget")
    final = report["carbon_g"]
    errors = [(step, abs(p - final) / final) for step, p, _ in predictions]
    assert errors, "no prediction was made"
    first_third = [e for s, e in errors if s <= 400 / 3]
    last_third = [e for s, e in errors if s > 2 * 400 / 3]
    assert max(e for s, e in errors if s > 0.9 * 400) < 0.02
    assert sum(last_third) / len(last_third) < sum(first_third) / len(first_third)
    assert errors[-1][1] < 0.01
    last = predictions[-1][2]
    assert last["lower_carbon_g"] <= last["total_carbon_g"] <= last["upper_carbon_g"]
    assert report["predicted_total_carbon_g"] == predictions[-1][1]


def test_prediction_is_exact_for_constant_intensity_and_static_policy(make_sim, tmp_path):
    trace = tmp_path / "flat.csv"
    rows = ["datetime_utc,ci"] + [f"2023-03-{d:02d} {h:02d}:00:00,250" for d in range(1, 15) for h in range(24)]
    trace.write_text("\n".join(rows) + "\n")
    sim = make_sim(trace=trace)
    report, predictions = run_session(sim, total_steps=300, steps_per_epoch=20, policy="static",
                                      static_power_limit_w=225)
    final = report["carbon_g"]
    first_step, first, _ = predictions[0]
    assert first_step <= 10  # the first decision comes right after profiling two limits
    assert math.isclose(first, final, rel_tol=0.01)
    assert all(math.isclose(p, final, rel_tol=0.01) for _, p, _ in predictions)


def test_pue_scales_emissions_and_nothing_else(make_sim):
    r1, _ = run_session(make_sim(), total_steps=200, steps_per_epoch=20, policy="chase")
    r2, _ = run_session(make_sim(), total_steps=200, steps_per_epoch=20, policy="chase", pue=1.5)
    assert math.isclose(r2["carbon_g"], 1.5 * r1["carbon_g"], rel_tol=1e-9)
    assert math.isclose(r2["baseline_carbon_g"], 1.5 * r1["baseline_carbon_g"], rel_tol=1e-9)
    assert r2["energy_j"] == r1["energy_j"] and r2["time_s"] == r1["time_s"]
    assert [i["power_limit_w"] for i in r2["intervals"]] == [i["power_limit_w"] for i in r1["intervals"]]
    assert r2["pue"] == 1.5 and r1["pue"] == 1.0


def test_cpu_and_dram_appear_only_when_measured(make_sim):
    without, _ = run_session(make_sim(), total_steps=100, steps_per_epoch=20, policy="monitor")
    assert without["cpu_energy_j"] == "not measured" and without["dram_energy_j"] == "not measured"
    assert without["total_energy_j"] == without["energy_j"]
    assert without["total_carbon_g"] == without["carbon_g"]

    sim = make_sim()
    sim.cpus = FakeRaplCPUs(sim.clock)
    with_rapl, _ = run_session(sim, total_steps=100, steps_per_epoch=20, policy="monitor")
    t = with_rapl["time_s"]
    assert math.isclose(with_rapl["cpu_energy_j"], 60.0 * t, rel_tol=1e-3)
    assert math.isclose(with_rapl["dram_energy_j"], 10.0 * t, rel_tol=1e-3)
    # measured CPU/DRAM is part of the run's scope (issue 17): energy_j and carbon_g include it
    assert with_rapl["scope"] == "gpu+cpu+dram" and without["scope"] == "gpu"
    assert math.isclose(with_rapl["energy_j"], with_rapl["gpu_energy_j"] + 70.0 * t, rel_tol=1e-3)
    assert with_rapl["total_energy_j"] == with_rapl["energy_j"]
    assert with_rapl["carbon_g"] > with_rapl["gpu_carbon_g"]
    # GPU accounting is untouched by CPU measurement
    assert math.isclose(with_rapl["gpu_energy_j"], without["energy_j"], rel_tol=1e-9)
    assert math.isclose(with_rapl["gpu_carbon_g"], without["carbon_g"], rel_tol=1e-9)


def test_predicted_total_reaches_the_lightning_logger(make_sim, tmp_path):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    sim = make_sim()
    cb = ChaseCallback(provider=sim.provider, simulation=sim, forecaster="persistence", decision_interval_s=1800,
                       profile_warmup_steps=1, profile_measure_steps=2)
    logger = CSVLogger(str(tmp_path), name="csv")
    trainer(cb, tmp_path, max_epochs=3, logger=logger).fit(TinyModel(), loader(20))
    with open(logger.experiment.metrics_file_path) as f:
        rows = list(csv.DictReader(f))
    values = [float(r["chase/predicted_total_carbon_g"]) for r in rows if r.get("chase/predicted_total_carbon_g")]
    assert values and math.isclose(values[-1], cb.report["predicted_total_carbon_g"], rel_tol=1e-5)
