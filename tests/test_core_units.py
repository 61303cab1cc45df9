"""Pure core pieces: profile, policies, budget planner, ledger, profiling plan, trace provider."""

from __future__ import annotations

import itertools
import json
import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chase_integrations.carbon import StaticProvider, TraceProvider
from chase_integrations.core.budget import plan_budget
from chase_integrations.core.intensity import time_weighted_mean
from chase_integrations.core.ledger import Interval, Ledger, carbon_g
from chase_integrations.core.policies import chase_limit, weighted_limit
from chase_integrations.core.profile import PowerProfile
from chase_integrations.core.profiling import ProfilingPlan
from chase_integrations.errors import ConfigurationError, StaleDataError
from chase_integrations.simulation.clock import SimulatedClock

A40 = PowerProfile(
    {
        300: (1.0, 235.0),
        275: (1.002, 225.5),
        250: (1.005, 216.0),
        225: (1.016, 200.0),
        200: (1.07, 190.0),
        175: (1.22, 195.0),
    }
)


def test_profile_interpolates_and_round_trips(tmp_path):
    assert A40.default_limit_w == 300
    assert math.isclose(A40.time_per_step_s(262.5), (1.002 + 1.005) / 2)
    path = tmp_path / "p.json"
    A40.save(path)
    assert PowerProfile.load(path) == A40
    with pytest.raises(ConfigurationError, match="power_limit_w"):
        A40.energy_per_step_j(400)


def test_profile_rejects_bad_values():
    with pytest.raises(ConfigurationError):
        PowerProfile({})
    with pytest.raises(ConfigurationError):
        PowerProfile({300: (0.0, 10.0)})


def test_chase_rule_extremes():
    # eta = 1: carbon only -> the least energy per step
    assert chase_limit(A40, 400.0, 1.0, 500.0) == 200
    # eta = 0: time only -> the fastest
    assert chase_limit(A40, 400.0, 0.0, 500.0) == 300


@settings(max_examples=60, deadline=None)
@given(mu=st.floats(0, 1e6), ci=st.lists(st.floats(0, 2000), min_size=2, max_size=8))
def test_weighted_limit_never_rises_as_intensity_rises(mu, ci):
    limits = [weighted_limit(A40, c, mu) for c in sorted(ci)]
    assert all(a >= b for a, b in itertools.pairwise(limits))
    assert all(w in A40.limits_w for w in limits)


@settings(max_examples=40, deadline=None)
@given(ci=st.lists(st.floats(1, 1000), min_size=1, max_size=40), slack=st.floats(0.0, 0.3))
def test_budget_plan_meets_budget_and_stays_in_range(ci, slack):
    steps = 3600 * 10
    budget_s = steps * A40.time_per_step_s(300) * (1 + slack)
    plan = plan_budget(A40, ci, steps, budget_s)
    assert A40.limits_w[0] <= plan.limit_w <= A40.limits_w[-1]
    assert plan.feasible
    assert plan.projected_time_s <= budget_s * (1 + 1e-9)


def test_budget_spends_slowdown_in_dirty_hours():
    dirty_then_clean = [600.0] * 5 + [50.0] * 5
    steps = 10 * 3600
    plan = plan_budget(A40, dirty_then_clean, steps, steps * 1.02)
    clean_then_dirty = plan_budget(A40, list(reversed(dirty_then_clean)), steps, steps * 1.02)
    assert plan.limit_w < clean_then_dirty.limit_w


def test_budget_behind_schedule_runs_flat_out():
    plan = plan_budget(A40, [500.0] * 5, 5 * 3600, 5 * 3600 * 0.9)
    assert plan.limit_w == 300 and not plan.feasible


@settings(max_examples=50, deadline=None)
@given(
    rows=st.lists(st.tuples(st.floats(0, 1e7), st.floats(0, 1500), st.integers(0, 1000)), min_size=1, max_size=20),
    pue=st.floats(1.0, 3.0),
)
def test_ledger_is_additive_and_json_safe(rows, pue):
    ledger = Ledger()
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for i, (energy, ci, steps) in enumerate(rows):
        ledger.add(
            Interval.account(
                (t0 + timedelta(hours=i)).isoformat(),
                (t0 + timedelta(hours=i + 1)).isoformat(),
                250,
                ci,
                None,
                energy_j=energy,
                steps=steps,
                duration_s=3600.0,
                pue=pue,
            )
        )
    assert math.isclose(ledger.carbon_g, sum(carbon_g(e, c, pue) for e, c, _ in rows), rel_tol=1e-9, abs_tol=1e-9)
    again = Ledger.from_list(json.loads(json.dumps(ledger.to_list())))
    assert again == ledger


_SWEEP = ((1.0, 235.0), (1.0, 226.0), (1.1, 260.0), (1.02, 200.0), (1.07, 190.0), (1.3, 200.0), (1.6, 230.0),
          (2.3, 280.0))


def _descend(plan: ProfilingPlan, sweep) -> ProfilingPlan:
    for t, e in sweep:
        if plan.done:
            break
        plan.record(t, e)
    return plan


def test_profiling_plan_stops_at_the_first_clearly_dominated_limit():
    limits = [300, 275, 250, 225, 200, 175, 150, 125, 100]
    # no noise measured: 250 W, 10 % slower and dirtier than 300 W, is beyond the 2 % floor: the descent stops
    plan = _descend(ProfilingPlan(limits, warmup_steps=0, measure_steps=1), _SWEEP)
    assert plan.done and plan.stopped_by == "dominated" and sorted(plan.results) == [250, 275, 300]
    assert plan.skipped_w == [225, 200, 175, 150, 125, 100]
    # 5 % measured noise (margin 15 %): the same outlier is within the noise; 175 W (21 % slower, 5 % dirtier
    # than 200 W) too; 150 W (50 % slower, 21 % dirtier than 200 W) is clearly dominated: 125 W is never run
    plan = ProfilingPlan(limits, warmup_steps=0, measure_steps=1)
    plan.noise = 0.05
    _descend(plan, _SWEEP)
    assert plan.done and plan.stopped_by == "dominated" and plan.skipped_w == [125, 100]
    assert 200 in plan.results and 225 in plan.results


def test_profiling_plan_stops_below_the_slowest_limit_the_budget_can_use():
    limits = [300, 275, 250, 225, 200, 175, 150, 125, 100]
    sweep = ((1.0, 235.0), (1.0, 226.0), (1.005, 216.0), (1.016, 200.0), (1.07, 190.0), (1.22, 185.0),
             (1.5, 150.0), (2.0, 120.0), (3.0, 100.0))
    # a 3-hour job at 5 %: 540 s of budget, so no limit more than 15 % slower can run for an hour
    plan = ProfilingPlan(limits, warmup_steps=0, measure_steps=1, max_slowdown=0.05, job_steps=3 * 3600)
    _descend(plan, sweep)
    assert plan.stopped_by == "budget" and sorted(plan.results) == [175, 200, 225, 250, 275, 300]
    assert plan.skipped_w == [150, 125, 100]
    # unknown length (24 h assumed): 120 % is within reach, and the deep limits still save enough per extra
    # second to be worth an hour somewhere, so the whole never-dominated sweep is measured
    plan = _descend(ProfilingPlan(limits, warmup_steps=0, measure_steps=1, max_slowdown=0.05), sweep)
    assert plan.skipped_w == [] and len(plan.results) == 9
    # a job shorter than an hour may run a limit for all of it: the floor is the budget itself (22 % > 5 %)
    plan = _descend(ProfilingPlan(limits, warmup_steps=0, measure_steps=1, max_slowdown=0.05, job_steps=600), sweep)
    assert plan.stopped_by == "budget" and sorted(plan.results) == [200, 225, 250, 275, 300]
    # a zero budget: nothing slower than the default is usable; the first slower limit ends the descent
    plan = _descend(ProfilingPlan(limits, warmup_steps=0, measure_steps=1, max_slowdown=0.0, job_steps=100), sweep)
    assert sorted(plan.results) == [250, 275, 300] and plan.stopped_by == "budget"


def test_profiling_plan_stops_where_the_budget_would_never_go():
    # V100 BERT SQuAD, relative to 250 W: energy keeps falling to 150 W, but 150 W saves 0.09 J per extra
    # second where 200 W (too slow to run every hour at these budgets) saves 1.7: under any intensity range
    # within INTENSITY_RANGE (10x) the budget never runs 150 W, so 125 W and 100 W are never profiled
    limits = [250, 225, 200, 175, 150, 125, 100]
    sweep = ((1.0, 1.0), (1.025, 0.955), (1.063, 0.891), (1.119, 0.836), (1.281, 0.822), (1.578, 0.842),
             (2.067, 0.901))
    for s in (0.025, 0.05, 0.10):
        plan = _descend(ProfilingPlan(limits, max_slowdown=s, job_steps=30 * 3600), sweep)
        assert plan.stopped_by == "budget" and plan.skipped_w == [125, 100], s
    plan = _descend(ProfilingPlan(limits), sweep)  # another policy: only domination stops it (at 125 W)
    assert plan.stopped_by == "dominated" and plan.skipped_w == [100]


def test_profiling_windows_are_bounded_by_time():
    # 200-s steps, 2-s windows: the first limit warms up one step (its step time is unknown), then measures one;
    # every later limit skips the warm-up (a limit change settles in milliseconds) and measures one full step
    plan = ProfilingPlan([300, 250], warmup_steps=3, measure_steps=1, min_window_s=2.0, warmup_s=1.0)
    assert plan.start_limit() is None
    assert plan.on_step(warmup_elapsed_s=200.0) == "begin_measure" and plan.window_steps == 1
    assert plan.on_step() == "end_measure"
    plan.record_window(200.0, 4e4)
    assert plan.start_limit() == "begin_measure" and plan.window_steps == 1
    # 0.25-s steps: the warm-up ends after 1 s (4 steps, capped by warmup_steps=3), the window plans 2 s
    plan = ProfilingPlan([300, 250], warmup_steps=3, measure_steps=1, min_window_s=2.0, warmup_s=1.0)
    plan.start_limit()
    assert [plan.on_step(warmup_elapsed_s=0.25 * k) for k in (1, 2, 3)] == [None, None, "begin_measure"]
    assert plan.window_steps == 8 and plan.split_at == 4
    assert [plan.on_step() for _ in range(4)] == [None, None, None, "split"]
    plan.split(1.0, 100.0)
    assert [plan.on_step() for _ in range(4)] == [None, None, None, "end_measure"]
    plan.observe_noise(1.1, 100.0)  # the halves differ by 10 % in time: noise 0.048, margin 14 %
    plan.record_window(1.1, 100.0)
    assert plan.results[300] == (2.1 / 8, 25.0) and round(plan.noise, 3) == 0.048
    assert math.isclose(plan.margin, 3 * 0.1 / 2.1)


def test_profiling_plan_does_not_prune_a_flat_top():
    plan = ProfilingPlan([700, 675, 650, 625], warmup_steps=0, measure_steps=1)
    for e in (14.6, 15.0, 15.0, 14.9):  # limits above what the GPU draws: same time, noisy energy
        plan.record(0.0294, e)
    assert plan.skipped_w == [] and len(plan.results) == 4


def test_profiling_plan_keeps_partial_measurements():
    plan = ProfilingPlan([300, 250], warmup_steps=1, measure_steps=4)
    assert plan.on_step() == "begin_measure"
    plan.on_step(), plan.on_step()
    plan.add_partial(2.0, 400.0)  # two measured steps seen, then the epoch ends
    plan.interrupt()
    assert plan.on_step() == "begin_measure"
    assert plan.on_step() is None
    assert plan.on_step() == "end_measure"
    plan.record_window(2.0, 400.0)
    assert plan.results[300] == (1.0, 200.0)
    restored = ProfilingPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert restored.results == plan.results and restored.current_limit_w == 250


def test_time_weighted_mean():
    t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    from chase_integrations.carbon import IntensityReading

    rs = [IntensityReading(t, 100.0), IntensityReading(t + timedelta(hours=1), 300.0)]
    assert time_weighted_mean(rs, t + timedelta(minutes=30), t + timedelta(minutes=90)) == 200.0


def _csv(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_trace_sorts_averages_duplicates_and_never_shows_the_future(tmp_path):
    path = _csv(
        tmp_path,
        "timestamp,carbon_intensity\n2024-01-01 02:00,300\n2024-01-01 00:00,100\n"
        "2024-01-01 01:00,150\n2024-01-01 01:00,250\n2024-01-01 03:00,\n",
    )
    clock = SimulatedClock("2024-01-01T01:30:00Z")
    trace = TraceProvider(path, clock=clock)
    assert trace.latest().g_per_kwh == 200.0  # duplicates averaged
    assert [r.g_per_kwh for r in trace.history(24)] == [100.0, 200.0]  # nothing after now
    assert trace.forecast(5) == []
    assert (
        trace.mean_between(datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 1, 2, tzinfo=timezone.utc))
        == 150.0
    )


def test_trace_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigurationError, match="ambiguous"):
        TraceProvider(_csv(tmp_path, "datetime_utc,ci_direct,ci_lca\n2024-01-01,1,2\n"))
    with pytest.raises(ConfigurationError, match="values are not numbers"):
        TraceProvider(_csv(tmp_path, "datetime_utc,ci\nnot-a-date,x\n"), value_column="ci")
    with pytest.raises(ConfigurationError, match="no usable rows"):
        TraceProvider(_csv(tmp_path, "datetime_utc,ci\n2024-01-01,\n"), value_column="ci")
    with pytest.raises(ConfigurationError, match="negative"):
        TraceProvider(_csv(tmp_path, "datetime_utc,ci\n2024-01-01,-5\n"))
    with pytest.raises(ConfigurationError, match="time_column"):
        TraceProvider(_csv(tmp_path, "a,b\n1,2\n"))
    with pytest.raises(ConfigurationError, match="value_column"):
        TraceProvider(_csv(tmp_path, "datetime_utc,ci\n2024-01-01,1\n"), value_column="nope")
    clock = SimulatedClock("2024-02-01T00:00:00Z")
    trace = TraceProvider(_csv(tmp_path, "datetime_utc,ci\n2024-01-01,1\n"), clock=clock)
    with pytest.raises(StaleDataError):
        trace.latest()


def test_trace_non_utc_timestamps_are_converted(tmp_path):
    path = _csv(tmp_path, "timestamp,ci\n2024-01-01T02:00:00+02:00,100\n2024-01-01T01:00:00+00:00,200\n")
    trace = TraceProvider(path, clock=SimulatedClock("2024-01-01T00:30:00Z"))
    assert trace.latest().g_per_kwh == 100.0


def test_static_provider_validates():
    with pytest.raises(ConfigurationError, match="g_per_kwh"):
        StaticProvider(-1)
    with pytest.raises(ConfigurationError, match="g_per_kwh"):
        StaticProvider("300")


def test_measured_h200_sweep_loads_as_a_gpu_profile():
    from pathlib import Path

    from chase_integrations.simulation import Simulation

    csv = Path(__file__).resolve().parent.parent / "bench" / "results" / "h200" / "sweep_NVIDIA_H200.csv"
    sim = Simulation(
        gpu_profile=csv, workload="synthetic-imagenet/resnet50", batch_size=128, steps_per_epoch=1_281_167 // 128
    )
    profile = sim.step_profile
    assert profile.limits_w[0] == 200 and profile.limits_w[-1] == 700
    t_rel, e_rel = profile.relative(400)
    assert t_rel > 1.05 and e_rel < 0.9  # a real GPU: slower and more efficient at 400 W than at 700 W
