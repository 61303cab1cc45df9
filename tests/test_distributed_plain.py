"""`Chase` in two-process plain loops on the CPU (gloo): torchrun, accelerate launch, Lightning Fabric.

The same checks as the Trainer DDP tests (``tests/test_distributed.py``): one provider caller, each rank
changes only its own GPU, both GPUs follow the same limits, energy summed over ranks, profiling in
lockstep (time is the max over ranks, energy the sum), ``strict`` without permission fails every rank
before any step. Each job is a real subprocess: ``python -m torch.distributed.run`` around a plain
``torch.distributed`` loop, ``accelerate launch`` around an ``Accelerator(cpu=True)`` loop, and a Fabric
``strategy="ddp"`` script that launches its own second process. Every process builds its own simulated
node with two GPUs at 275 W (of 100-300 W) and trains on GPU ``rank``; rank 1's GPU is 25 % slower.

A collective mismatch between ranks would hang; here it cannot hang CI: the children use a 60 s
collective timeout, each job runs under a subprocess timeout (its whole process group is killed), and
every test has a pytest timeout.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from tests.distributed.checks import check_one_job
from tests.distributed.harness import SCRIPTS, Job, free_port, run_job, write_inputs

JOB_TIMEOUT_S = 240
MIN_WINDOW_S = 900.0  # longer than 3 measured steps: profiling windows extend, by the max over ranks
WARMUP, MEASURE = 1, 3
STEPS, EPOCHS = 20, 2
LAUNCHERS = ("torchrun", "accelerate", "fabric")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(JOB_TIMEOUT_S + 60)]


# ------------------------------------------------------------------------------------------- running jobs
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The GPU profile, a 25 %-slower copy for rank 1, and the carbon trace."""
    return write_inputs(tmp_path_factory.mktemp("plain-inputs"))


def _command(launcher: str, port: int) -> list[str]:
    if launcher in ("torchrun", "hf-trainer"):
        script = "plain_torch.py" if launcher == "torchrun" else "hf_ddp.py"
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                str(SCRIPTS / script)]
    if launcher == "accelerate":  # without GPUs, --multi_gpu starts two processes; the script asks for the CPU
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes=2",
                "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no", f"--main_process_port={port}",
                str(SCRIPTS / "plain_accelerate.py")]
    return [sys.executable, str(SCRIPTS / "plain_fabric.py")]


def _launch(launcher: str, out: Path, inputs: dict[str, Path], *extra: str) -> Job:
    """Run one two-process job; fail (never hang) if it does not finish within ``JOB_TIMEOUT_S``."""
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    options = ["--out", str(out), "--profile", str(inputs["profile"]), "--profile-rank1", str(inputs["slow"]),
               "--trace", str(inputs["trace"]), "--min-window-s", str(MIN_WINDOW_S), "--steps", str(STEPS),
               "--epochs", str(EPOCHS), *extra]
    # HF_HOME: no user accelerate config can change the launch
    return run_job(launcher, [*_command(launcher, port), *options], out, port, JOB_TIMEOUT_S,
                   HF_HOME=str(out / "hf-home"))


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, inputs):
    """Runs each (launcher, scenario) job once per module, on first use."""
    cache: dict[tuple[str, str], Job] = {}
    scenarios = {"normal": (), "strict_rank1_no_permission": ("--no-permission-rank", "1", "--strict")}

    def get(launcher: str, scenario: str) -> Job:
        key = (launcher, scenario)
        if key not in cache:
            cache[key] = _launch(launcher, tmp_path_factory.mktemp(f"plain-{launcher}-{scenario}"), inputs,
                                 *scenarios[scenario])
        return cache[key]

    return get


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_one_decision_per_job_every_gpu_limited_energy_summed(jobs, launcher):
    job = jobs(launcher, "normal")
    _, _, report = check_one_job(job, steps=STEPS * EPOCHS)

    # `log` ran on rank 0 only, once per decision, and its last call is the report's totals.
    logged0, logged1 = job.logged
    assert logged0 and logged1 == []
    assert math.isclose(logged0[-1]["chase/carbon_g"], report["carbon_g"], rel_tol=1e-9)
    assert math.isclose(logged0[-1]["chase/energy_j"], report["energy_j"], rel_tol=1e-9)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_profiling_in_lockstep_time_is_max_energy_is_sum(jobs, launcher):
    job = jobs(launcher, "normal")
    assert job.rc == 0, job
    r0, r1 = job.ranks
    assert r0["profile"] == r1["profile"] == job.report["profile"]
    measured = {row["power_limit_w"]: row for row in r0["profile"]["limits"]}
    assert sorted(measured) == [200, 250, 300]
    for w, row in measured.items():
        t0, t1 = r0["own_time_per_step_s"][str(w)], r1["own_time_per_step_s"][str(w)]
        e0, e1 = r0["own_energy_per_step_j"][str(w)], r1["own_energy_per_step_j"][str(w)]
        assert t1 > t0  # rank 1's GPU is the slow one and sets the pace
        assert math.isclose(row["time_per_step_s"], max(t0, t1), rel_tol=1e-9)
        assert math.isclose(row["energy_per_step_j"], e0 + e1, rel_tol=1e-6)
    # Windows shorter than profile_min_window_s were extended by the steps the *reduced* (max) time asks for.
    profile_steps = [iv["steps"] for iv in job.report["intervals"] if iv["phase"] == "profile"]
    expected = [WARMUP + MEASURE + math.ceil(MEASURE * (MIN_WINDOW_S / (MEASURE * r1["own_time_per_step_s"][str(w)])
                                                        - 1.0)) for w in (300, 250, 200)]
    assert profile_steps == expected


@pytest.mark.timeout(3 * JOB_TIMEOUT_S + 60)  # may run all three jobs when run alone
def test_the_three_launchers_agree(jobs):
    reports = {launcher: jobs(launcher, "normal").report for launcher in LAUNCHERS}
    first = reports["torchrun"]
    for launcher, report in reports.items():
        for key in ("energy_j", "carbon_g", "time_s", "baseline_carbon_g", "steps", "power_limits_used_w"):
            assert report[key] == pytest.approx(first[key], rel=1e-9), (launcher, key)
        assert [(i["power_limit_w"], i["steps"]) for i in report["intervals"]] == \
               [(i["power_limit_w"], i["steps"]) for i in first["intervals"]], launcher


@pytest.mark.timeout(2 * JOB_TIMEOUT_S + 60)  # may run both jobs when run alone
def test_plain_loop_and_trainer_callback_agree(jobs):
    """One engine: the plain torchrun loop and the Hugging Face Trainer callback (same job) keep the same ledger."""
    plain, trainer = jobs("torchrun", "normal").report, jobs("hf-trainer", "normal").report
    for key in ("energy_j", "carbon_g", "time_s", "baseline_carbon_g", "steps", "power_limits_used_w"):
        assert plain[key] == pytest.approx(trainer[key], rel=1e-9), key
    same = ("power_limit_w", "steps", "energy_j", "carbon_g", "intensity_g_per_kwh", "phase")
    assert [[i[k] for k in same] for i in plain["intervals"]] == [[i[k] for k in same] for i in trainer["intervals"]]


def test_accelerator_log_reaches_the_tracker(jobs):
    """``log=accelerator.log``: the metrics land in the Accelerator's TensorBoard tracker (rank 0's)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = jobs("accelerate", "normal")
    assert job.rc == 0, job
    acc = EventAccumulator(str(job.out / "tb" / "chase"))
    acc.Reload()
    assert {"chase/power_limit_w", "chase/carbon_g", "chase/energy_j"} <= set(acc.Tags()["scalars"])
    carbon = [e.value for e in acc.Scalars("chase/carbon_g")]
    assert len(carbon) == len(job.logged[0])
    assert math.isclose(carbon[-1], job.report["carbon_g"], rel_tol=1e-5)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_strict_without_permission_fails_every_rank_before_any_step(jobs, launcher):
    job = jobs(launcher, "strict_rank1_no_permission")
    assert job.rc != 0, job
    r0, r1 = job.ranks
    # Both ranks raised the permission error at start (a hung rank would time out instead).
    assert r1["error"]["type"] == "PowerPermissionError", job
    assert r0["error"]["type"] == "PowerPermissionError", job
    assert "1 of 2 ranks" in r0["error"]["message"]
    assert r0["steps"] == r1["steps"] == 0
    assert r0["provider_calls"] == 0
    assert r0["limit_history_w"] == [[275], []] and r1["limit_history_w"] == [[], []]
    assert r0["final_limits_w"] == [275, 275] and r1["final_limits_w"] == [275, 275]
    # `with chase:` never entered its body, yet the report was written.
    assert job.report is not None and job.report["status"] == "failed"
    assert job.logged == [[], []]
    assert job.elapsed_s < JOB_TIMEOUT_S / 2, f"took {job.elapsed_s:.0f} s"
