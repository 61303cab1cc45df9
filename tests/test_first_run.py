"""First runs: profiling bounded by time, stopped by clear evidence, paid from the budget, reused when it matches.

Both adapters (Lightning and Hugging Face) over the simulated GPU; the pure state machine's rules are in
tests/test_core_units.py and simulate()'s first runs in tests/test_simulate.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.faults_helpers import ADAPTERS, callback_options, make_callback, run

pytest.importorskip("lightning")
pytest.importorskip("transformers")

#: The shipped profiling defaults (the other adapter tests pin warm-up 1 / measure 3 for short steps).
DEFAULTS = dict(profile_warmup_steps=3, profile_measure_steps=1)


def _profile_rows(report: dict) -> list[tuple[int, int]]:
    return [(iv["power_limit_w"], iv["steps"]) for iv in report["intervals"] if iv["phase"] == "profile"]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_long_steps_profile_one_step_per_limit_and_report_the_cost(adapter, make_sim, tmp_path: Path) -> None:
    # 2 simulated steps per profiled epoch: a step lasts minutes, far beyond profile_min_window_s (2 s)
    sim = make_sim(steps_per_epoch=2)
    cb = make_callback(adapter, **callback_options(sim, tmp_path, policy="budget", max_slowdown=0.05, **DEFAULTS))
    run(adapter, tmp_path, cb, epochs=2, steps=20)
    report = cb.report
    rows = _profile_rows(report)
    # the default limit warms up one step (its step time is not known yet), then measures one; every lower
    # limit measures its first full step at once
    assert rows[0] == (300, 2) and rows[1:] and all(steps == 1 for _, steps in rows[1:]), rows
    cost = report["profiling"]
    assert set(cost) >= {"time_s", "energy_j", "carbon_g", "share_of_job", "share_of_budget"}
    assert cost["steps"] == sum(steps for _, steps in rows)
    assert cost["time_s"] > 0 and cost["energy_j"] < 0  # lower limits: slower, and less energy per step
    assert 0 < cost["share_of_job"] < 1 and cost["share_of_budget"] > 0
    # profiling counts against the budget: its intervals carry their slowdown in the baseline
    prof = [iv for iv in report["intervals"] if iv["phase"] == "profile" and iv["power_limit_w"] < 300]
    assert all(iv["baseline_energy_j"] > iv["energy_j"] for iv in prof)
    json.dumps(report, allow_nan=False)
    from chase_integrations.reporting.summary import format_percent, format_summary

    line = next(ln for ln in format_summary(report).splitlines() if ln.strip().startswith("profiling"))
    assert f"over {cost['steps']} steps" in line
    assert f"{format_percent(cost['share_of_budget'])} of the slowdown budget" in line


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_short_steps_keep_the_noise_guard(adapter, make_sim, tmp_path: Path) -> None:
    # 20 000 steps per epoch: a step lasts ~0.1 s; every window still lasts profile_min_window_s
    sim = make_sim(steps_per_epoch=20_000)
    cb = make_callback(adapter, **callback_options(sim, tmp_path, policy="chase", eta=0.5, **DEFAULTS))
    run(adapter, tmp_path, cb, epochs=1, steps=200)  # one epoch: no interrupted window
    rows = _profile_rows(cb.report)
    assert len(rows) >= 3 and cb.report["profile"] is not None
    for limit, steps in rows:
        t = sim.step_profile.time_per_step_s(limit)
        # a warm-up of 3 steps (< 1 s), then a window of at least 2 s: 13 steps of ~0.2 s where 10 used to
        assert 3 + 2.0 / t <= steps <= 3 + math.ceil(2.0 / t) + 1, (limit, steps, t)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_profile_folder_is_reused_only_when_it_matches(adapter, make_sim, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    options = dict(policy="budget", max_slowdown=0.05, profile_path=str(folder) + "/", **DEFAULTS)

    def first_run(name: str) -> dict:
        sim = make_sim(steps_per_epoch=2)
        work = tmp_path / name
        cb = make_callback(adapter, **callback_options(sim, work, **options))
        run(adapter, work, cb, epochs=2, steps=20)
        return cb.report

    measured = first_run("one")
    files = sorted(folder.glob("*.json"))
    assert len(files) == 1 and "-x1-" in files[0].name, files
    key = json.loads(files[0].read_text())["meta"]["key"]
    assert key["world_size"] == 1 and key["workload"]["parameters"] > 0 and key["gpu_model"]
    assert measured["profiling"]["steps"] > 0

    again = first_run("two")  # same GPU, world size and workload: no profiling at all
    assert again["profiling"]["steps"] == 0 and _profile_rows(again) == []
    assert again["profile"] == measured["profile"]

    data = json.loads(files[0].read_text())  # the same file, saved for another GPU model: never trusted
    data["meta"]["key"]["gpu_model"] = "Another GPU"
    files[0].write_text(json.dumps(data))
    remeasured = first_run("three")
    assert remeasured["profiling"]["steps"] > 0 and "profile-mismatch" in remeasured["warnings"]
    assert json.loads(files[0].read_text())["meta"]["key"] == key  # the new measurement replaced it


def test_profile_key_separates_workloads(tmp_path: Path) -> None:
    from chase_integrations.core.profile_store import ProfileKey, profile_location, workload_fingerprint

    class Param:
        def __init__(self, n: int) -> None:
            self.n = n

        def numel(self) -> int:
            return self.n

    class Model:
        def __init__(self, *sizes: int) -> None:
            self.sizes = sizes

        def parameters(self):
            return [Param(n) for n in self.sizes]

    small, big = workload_fingerprint(Model(4, 1), batch_size=8), workload_fingerprint(Model(400, 1), batch_size=8)
    assert small == {"batch_size": 8, "parameters": 5} and big["parameters"] == 401
    a = profile_location(str(tmp_path) + "/", None, 1, small)
    b = profile_location(str(tmp_path) + "/", None, 1, big)
    c = profile_location(str(tmp_path) + "/", None, 2, small)
    assert len({a.path, b.path, c.path}) == 3 and a.path.parent == tmp_path
    assert a.key == ProfileKey("unknown", 1, small)
    assert profile_location(str(tmp_path / "p.json"), None, 1, small).path == tmp_path / "p.json"  # a file
    assert profile_location(None, None, 1, small) is None
