"""The checks every two-process job must pass, whatever launched it (Trainer DDP, torchrun, accelerate, Fabric)."""

from __future__ import annotations

import math


def check_one_job(job, steps: int) -> tuple[dict, dict, dict]:
    """One decision per job, each rank its own GPU, both GPUs the same limits, energy summed over ranks.

    Returns rank 0's and rank 1's results and rank 0's report, for the caller's own checks.
    """
    assert job.rc == 0, job
    r0, r1 = job.ranks
    assert [r0["error"], r1["error"]] == [None, None], job
    assert [r0["rank"], r1["rank"]] == [0, 1]

    # Rank 0 alone reads the provider and runs the forecaster.
    assert r0["provider_calls"] > 0 and r0["forecaster_calls"] > 0
    assert r1["provider_calls"] == 0 and r1["forecaster_calls"] == 0

    # Each rank changed only its own GPU (on its own simulated node); both GPUs ran the same limits.
    assert r0["limit_history_w"][1] == [] and r1["limit_history_w"][0] == []
    own0, own1 = r0["limit_history_w"][0], r1["limit_history_w"][1]
    assert own0 == own1
    assert {200, 250, 300} <= set(own0)  # profiling visited every candidate on both GPUs
    assert [r0["mode"], r1["mode"]] == ["active", "active"]

    # Both GPUs end at their original (non-default) limit.
    assert r0["final_limits_w"] == [275, 275] and r1["final_limits_w"] == [275, 275]
    assert own0[-1] == 275

    # The report (rank 0's) counts both ranks' energy: each rank's own counter, read through Zeus's GPUs.
    report = job.report
    assert report is not None and report["status"] == "finished"
    counters = r0["counter_energy_j"][0] + r1["counter_energy_j"][1]
    assert r0["counter_energy_j"][0] > 0 and r1["counter_energy_j"][1] > 0
    assert math.isclose(report["energy_j"], counters, rel_tol=1e-9, abs_tol=1e-3)
    assert math.isclose(report["carbon_g"], sum(iv["carbon_g"] for iv in report["intervals"]), rel_tol=1e-9)
    assert report["original_power_limits_w"] == [275]
    # Every rank holds the same ledger (summed energy, rank 0's intensity); only rank 0 wrote it.
    assert math.isclose(r1["report"]["energy_j"], report["energy_j"], rel_tol=1e-12)
    assert r0["steps"] == r1["steps"] == report["steps"] == steps
    return r0, r1, report
