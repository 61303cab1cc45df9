"""Two-process training on the CPU (gloo): one decision per job, every GPU limited, energy summed.

Each scenario launches a real two-process job as a subprocess: Lightning ``strategy="ddp"`` (the child
script is re-launched by Lightning for rank 1) and the Hugging Face ``Trainer`` under
``python -m torch.distributed.run --nproc_per_node=2``. Every process builds its own simulated node
with two GPUs at 275 W (of 100-300 W) and trains on GPU ``rank``; rank 1's GPU is 25 % slower, so that
"time is the max over ranks" and "energy is the sum" are visible in the profile. Each rank writes
``rank<r>.json`` (see ``tests/distributed/_common.py``); rank 0 writes the run report.

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
MIN_WINDOW_S = 900.0  # longer than 3 measured steps (~580 s on rank 0, ~720 s on rank 1): windows extend
WARMUP, MEASURE = 1, 3
FRAMEWORKS = ("lightning", "hf")

pytestmark = pytest.mark.timeout(JOB_TIMEOUT_S + 60)


# ------------------------------------------------------------------------------------------- running jobs
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The GPU profile, a 25 %-slower copy for rank 1, the carbon trace and a stale one."""
    return write_inputs(tmp_path_factory.mktemp("distributed-inputs"))


def _launch(framework: str, out: Path, inputs: dict[str, Path], *extra: str) -> Job:
    """Run one two-process job; fail (never hang) if it does not finish within ``JOB_TIMEOUT_S``."""
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    options = ["--out", str(out), "--profile", str(inputs["profile"]), "--profile-rank1", str(inputs["slow"]),
               "--trace", str(inputs["trace"]), "--min-window-s", str(MIN_WINDOW_S), *extra]
    if framework == "lightning":
        cmd = [sys.executable, str(SCRIPTS / "lightning_ddp.py"), *options]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
               str(SCRIPTS / "hf_ddp.py"), *options]
    return run_job(framework, cmd, out, port, JOB_TIMEOUT_S)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, inputs):
    """Runs each (framework, scenario) job once per module, on first use."""
    cache: dict[tuple[str, str], Job] = {}
    scenarios = {"normal": (), "rank1_no_permission": ("--no-permission-rank", "1"),
                 "strict_rank1_no_permission": ("--no-permission-rank", "1", "--strict"),
                 "counter_frozen_at_250": ("--frozen-counter-w", "250"),
                 "strict_stale_provider": ("--strict", "--trace", str(inputs["stale"]))}

    def get(framework: str, scenario: str) -> Job:
        key = (framework, scenario)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{framework}-{scenario}")
            cache[key] = _launch(framework, out, inputs, *scenarios[scenario])
        return cache[key]

    return get


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_strict_with_a_dead_provider_fails_every_rank_before_any_step(jobs, framework):
    job = jobs(framework, "strict_stale_provider")
    assert job.rc != 0, job
    r0, r1 = job.ranks
    # Rank 0 read the provider at train start (its newest value is weeks old) and raised; rank 1 too.
    assert r0["error"]["type"] == "StaleDataError", job
    assert r1["error"]["type"] == "ProviderError" and "rank 0" in r1["error"]["message"], job
    assert r0["steps"] == r1["steps"] == 0
    assert r0["final_limits_w"] == [275, 275] and r1["final_limits_w"] == [275, 275]
    assert job.elapsed_s < JOB_TIMEOUT_S / 2, f"took {job.elapsed_s:.0f} s"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_one_decision_per_job_every_gpu_limited_energy_summed(jobs, framework):
    job = jobs(framework, "normal")
    _, r1, report = check_one_job(job, steps=40)
    # (start/end come from each process's own simulated clock, which runs at its own GPU's pace.)
    def same(iv):
        return {k: v for k, v in iv.items() if k not in ("start", "end")}
    assert [same(iv) for iv in r1["report"]["intervals"]] == [same(iv) for iv in report["intervals"]]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_profiling_in_lockstep_time_is_max_energy_is_sum(jobs, framework):
    job = jobs(framework, "normal")
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

    # Windows shorter than profile_min_window_s were extended by the steps the *reduced* (max) time asks
    # for, identically on both ranks; rank 0's own time would have asked for more.
    profile_steps = [iv["steps"] for iv in job.report["intervals"] if iv["phase"] == "profile"]
    expected, own_rank0 = [], []
    for w in (300, 250, 200):
        slow, fast = r1["own_time_per_step_s"][str(w)], r0["own_time_per_step_s"][str(w)]
        expected.append(WARMUP + MEASURE + math.ceil(MEASURE * (MIN_WINDOW_S / (MEASURE * slow) - 1.0)))
        own_rank0.append(WARMUP + MEASURE + math.ceil(MEASURE * (MIN_WINDOW_S / (MEASURE * fast) - 1.0)))
    assert profile_steps == expected
    assert expected != own_rank0  # the check above would catch a rank extending from its own clock


@pytest.mark.timeout(2 * JOB_TIMEOUT_S + 60)  # may run both jobs when run alone
def test_lightning_and_hugging_face_agree(jobs):
    lightning, hf = jobs("lightning", "normal").report, jobs("hf", "normal").report
    for key in ("energy_j", "carbon_g", "time_s", "baseline_carbon_g", "steps", "power_limits_used_w"):
        assert lightning[key] == pytest.approx(hf[key], rel=1e-9), key
    assert [(i["power_limit_w"], i["steps"]) for i in lightning["intervals"]] == \
           [(i["power_limit_w"], i["steps"]) for i in hf["intervals"]]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rank_without_permission_degrades_alone(jobs, framework):
    job = jobs(framework, "rank1_no_permission")
    assert job.rc == 0, job
    r0, r1 = job.ranks
    assert [r0["error"], r1["error"]] == [None, None], job

    # Rank 1 warned (naming itself), changed nothing, and still measured; rank 0 went on setting limits.
    assert r1["mode"] == "advisory" and r0["mode"] == "active"
    assert any("rank 1" in w and "advisory" in w for w in r1["warnings"]), r1["warnings"]
    assert not any("advisory" in w for w in r0["warnings"]), r0["warnings"]
    assert r1["limit_history_w"] == [[], []]
    assert r0["limit_history_w"][1] == []
    assert {200, 250, 300} <= set(r0["limit_history_w"][0])
    assert r0["final_limits_w"] == [275, 275] and r1["final_limits_w"] == [275, 275]

    # Still one job: rank 0 decides, energy is summed, the report says a rank was advisory.
    assert r0["provider_calls"] > 0 and r1["provider_calls"] == 0
    report = job.report
    assert report["mode"] == "active"
    assert any("1 of 2 ranks" in note for note in report["notes"]), report["notes"]
    counters = r0["counter_energy_j"][0] + r1["counter_energy_j"][1]
    assert math.isclose(report["energy_j"], counters, rel_tol=1e-9, abs_tol=1e-3)
    assert r0["steps"] == r1["steps"] == 40


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_strict_without_permission_fails_every_rank_before_any_step(jobs, framework):
    job = jobs(framework, "strict_rank1_no_permission")
    assert job.rc != 0, job
    r0, r1 = job.ranks
    # Both ranks raised the permission error at train start (a hung rank would time out instead).
    assert r1["error"]["type"] == "PowerPermissionError", job
    assert r0["error"]["type"] == "PowerPermissionError", job
    assert "1 of 2 ranks" in r0["error"]["message"]
    assert r0["steps"] == r1["steps"] == 0
    assert r0["provider_calls"] == 0
    # Rank 0 only wrote its current limit back (the permission probe) and is at its original limit.
    assert r0["limit_history_w"] == [[275], []] and r1["limit_history_w"] == [[], []]
    assert r0["final_limits_w"] == [275, 275] and r1["final_limits_w"] == [275, 275]
    assert job.report is not None and job.report["status"] == "failed"
    assert job.elapsed_s < JOB_TIMEOUT_S / 2, f"took {job.elapsed_s:.0f} s"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_energy_counter_stalled_at_one_limit_leaves_it_out_on_every_rank(jobs, framework):
    """Both ranks' counters stand still at 250 W: measured twice, left out of the profile, in lockstep."""
    job = jobs(framework, "counter_frozen_at_250")
    assert job.rc == 0, job
    r0, r1 = job.ranks
    assert [r0["error"], r1["error"]] == [None, None], job
    for r in (r0, r1):
        assert sorted(m["power_limit_w"] for m in r["profile"]["limits"]) == [200, 300], r["profile"]
        assert any("did not advance while profiling 250 W" in w for w in r["warnings"]), r["warnings"]
        assert r["mode"] == "active" and r["final_limits_w"] == [275, 275]
    assert r0["profile"] == r1["profile"]
    assert any("250 W left out of the profile" in n for n in job.report["notes"]), job.report["notes"]
    assert r0["steps"] == r1["steps"] == 40
