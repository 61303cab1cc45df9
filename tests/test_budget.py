"""The budget planner (core/budget.py): feasibility, exactness, consistency with the weighted policy."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chase_integrations.core.budget import plan_budget
from chase_integrations.core.policies import weighted_cost, weighted_limit
from chase_integrations.core.profile import PowerProfile

# A40-like, per step (time s, energy J); 275 W is off the convex hull, 175 W is dominated
PROFILE = PowerProfile({300: (60.0, 14100.0), 275: (60.2, 13890.0), 250: (60.3, 12940.0),
                        225: (61.0, 11980.0), 200: (64.3, 11420.0), 175: (73.4, 11760.0)})
T0 = 60.0
STEPS = 30 * 60  # 30 hours at the default limit


def test_no_budget_runs_flat_out_and_huge_budget_runs_min_energy() -> None:
    tight = plan_budget(PROFILE, [300.0] * 40, STEPS, STEPS * T0)
    assert tight.limit_w == 300 and tight.feasible
    loose = plan_budget(PROFILE, [300.0] * 40, STEPS, STEPS * T0 * 2)
    assert loose.limit_w == 200 and loose.mu == 0.0


def test_behind_schedule_is_infeasible_flat_out() -> None:
    plan = plan_budget(PROFILE, [300.0] * 40, STEPS, STEPS * T0 * 0.9)
    assert plan.limit_w == 300 and not plan.feasible and math.isinf(plan.mu)


def test_interpolation_spends_the_budget_exactly() -> None:
    budget = STEPS * T0 * 1.05
    discrete = plan_budget(PROFILE, [300.0] * 40, STEPS, budget, interpolate=False)
    mixed = plan_budget(PROFILE, [300.0] * 40, STEPS, budget, interpolate=True)
    assert discrete.limit_w == 225 and discrete.projected_time_s < budget - 100
    assert 200 < mixed.limit_w < 225
    assert budget - 2.0 <= mixed.projected_time_s <= budget * (1 + 1e-9)
    assert mixed.projected_carbon_g < discrete.projected_carbon_g


def test_dirty_hours_get_the_slow_limits() -> None:
    ci = [500.0] * 10 + [100.0] * 30
    plan = plan_budget(PROFILE, ci, STEPS, STEPS * T0 * 1.03, interpolate=False)
    assert plan.schedule_w[0] <= 225 and plan.schedule_w[-1] >= 225
    assert plan.projected_time_s <= STEPS * T0 * 1.03


intensities = st.lists(st.one_of(st.just(0.0), st.floats(1.0, 900.0)), min_size=1, max_size=48)


@settings(max_examples=60, deadline=None)
@given(ci=intensities, slack=st.floats(0.0, 0.3), first=st.floats(1.0, 3600.0), interpolate=st.booleans())
def test_plan_fits_its_budget_and_stays_in_range(ci, slack, first, interpolate) -> None:
    budget = STEPS * T0 * (1 + slack)
    plan = plan_budget(PROFILE, ci, STEPS, budget, first_hour_s=first, interpolate=interpolate)
    assert plan.feasible
    assert plan.projected_time_s <= budget + 1e-6 * budget
    assert 175 <= plan.limit_w <= 300


@settings(max_examples=60, deadline=None)
@given(ci=intensities, slack=st.floats(0.005, 0.3))
def test_discrete_schedule_is_the_weighted_policy_at_the_chosen_mu(ci, slack) -> None:
    plan = plan_budget(PROFILE, ci, STEPS, STEPS * T0 * (1 + slack), interpolate=False)
    if not 0 < plan.mu < math.inf:
        return
    extended = list(ci) + [ci[-1]] * 100 if len(ci) < 24 else list(ci) + [ci[len(ci) - 24 + k % 24] for k in range(100)]
    for h, limit in enumerate(plan.schedule_w):
        best = weighted_limit(PROFILE, extended[h], plan.mu)
        # equal up to rounding: hours whose rate is within a few ulps of μ are ties the two sides may break apart
        assert limit == best or math.isclose(weighted_cost(PROFILE, limit, extended[h], plan.mu),
                                             weighted_cost(PROFILE, best, extended[h], plan.mu), rel_tol=1e-12)


@settings(max_examples=40, deadline=None)
@given(ci=intensities, slack=st.floats(0.0, 0.2), extra=st.floats(0.001, 0.1))
def test_more_budget_never_costs_more_carbon(ci, slack, extra) -> None:
    a = plan_budget(PROFILE, ci, STEPS, STEPS * T0 * (1 + slack), interpolate=True)
    b = plan_budget(PROFILE, ci, STEPS, STEPS * T0 * (1 + slack + extra), interpolate=True)
    if b.mu == 0.0:  # budget not binding: least energy per hour, which ignores when the job then ends
        return
    assert b.projected_carbon_g <= a.projected_carbon_g * (1 + 1e-9) + 1e-9


def test_no_steps_left() -> None:
    assert plan_budget(PROFILE, [100.0], 0, 0.0).projected_time_s == 0.0


def test_needs_an_intensity() -> None:
    with pytest.raises(ValueError):
        plan_budget(PROFILE, [], 10, 1000.0)


@settings(max_examples=80, deadline=None)
@given(ci=st.one_of(st.just(0.0), st.floats(0.0, 2000.0)), mu=st.one_of(st.just(0.0), st.floats(0.0, 1e7)))
def test_weighted_limit_fn_is_the_weighted_policy(ci, mu) -> None:
    from chase_integrations.core.budget import weighted_limit_fn

    f = weighted_limit_fn(PROFILE, mu)
    assert f(ci) == weighted_limit(PROFILE, ci, mu)
    assert f(ci) == weighted_limit(PROFILE, ci, mu)  # memoised: the same answer again


@settings(max_examples=60, deadline=None)
@given(ci=intensities, first=st.floats(1.0, 3600.0), steps=st.floats(1.0, 4000.0), data=st.data())
def test_vectorised_projection_matches_the_scalar_one(ci, first, steps, data) -> None:
    import numpy as np

    from chase_integrations.core.budget import _hull, _Projector

    hull = _hull(PROFILE)
    hours = len(ci)
    spans = np.full(hours, 3600.0)
    spans[0] = first
    proj = _Projector(np.array(ci), spans, steps)
    plans = np.array([data.draw(st.lists(st.integers(0, len(hull.time_s) - 1), min_size=hours, max_size=hours))
                      for _ in range(3)])
    vectorised = proj.times(hull.time_s[plans])
    for row, idx in enumerate(plans):
        scalar = proj.run(hull.time_s[idx], hull.energy_j[idx])[0]
        assert abs(vectorised[row] - scalar) <= 1e-9 * scalar


def test_hull_is_cached_by_content() -> None:
    from chase_integrations.core.budget import _hull

    same = PowerProfile({p: PROFILE.measurement(p) for p in PROFILE.limits_w})
    assert _hull(same) is _hull(PROFILE)
    other = PowerProfile({300: (60.0, 14100.0), 200: (64.3, 11420.0)})
    assert _hull(other) is not _hull(PROFILE) and list(_hull(other).limits_w) == [300.0, 200.0]


@settings(max_examples=30, deadline=None)
@given(ci=st.lists(st.floats(1.0, 900.0), min_size=24, max_size=48), days=st.integers(4, 8),
       slack=st.floats(0.001, 0.2), interpolate=st.booleans())
def test_long_jobs_search_mu_by_bisection_with_the_same_plan(ci, days, slack, interpolate) -> None:
    from chase_integrations.core import budget

    steps = days * 24 * 60
    plans = []
    for all_at_once in (10**12, 0):  # every breakpoint's plan projected at once, then bisection
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(budget, "_ALL_AT_ONCE", all_at_once)
            plans.append(plan_budget(PROFILE, ci, steps, steps * T0 * (1 + slack), interpolate=interpolate))
    assert plans[1] == plans[0]
