"""Property tests over policies, accounting and session state (extends ``test_core_units.py``).

Profiles are generated with time per step strictly falling as the limit rises (physically, a higher cap
is never slower) and arbitrary energy per step, so dominated and noisy limits occur.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chase_integrations.carbon import StaticProvider
from chase_integrations.core.budget import plan_budget
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.ledger import Interval, Ledger, carbon_g
from chase_integrations.core.policies import chase_limit, weighted_limit
from chase_integrations.core.profile import PowerProfile
from chase_integrations.core.session import ChaseSession

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@st.composite
def profiles(draw) -> PowerProfile:
    limits = draw(st.lists(st.integers(50, 700), min_size=1, max_size=10, unique=True))
    limits.sort()
    times = sorted(draw(st.lists(st.floats(0.05, 10.0), min_size=len(limits), max_size=len(limits), unique=True)),
                   reverse=True)  # lowest limit slowest
    energies = draw(st.lists(st.floats(1.0, 5000.0), min_size=len(limits), max_size=len(limits)))
    return PowerProfile({w: (t, e) for w, t, e in zip(limits, times, energies)})


intensities = st.floats(0.0, 2000.0, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(profile=profiles(), ci=intensities, eta=st.floats(0, 1), max_ci=st.floats(1.0, 2000.0),
       mu=st.floats(0, 1e6))
def test_every_policy_picks_a_profiled_limit_in_range(profile, ci, eta, max_ci, mu):
    lo, hi = profile.limits_w[0], profile.limits_w[-1]
    for limit in (chase_limit(profile, ci, eta, max_ci), weighted_limit(profile, ci, mu)):
        assert lo <= limit <= hi and limit in profile.limits_w


@settings(max_examples=60, deadline=None)
@given(profile=profiles(), ci=st.lists(st.floats(1, 1500), min_size=1, max_size=30),
       slack=st.floats(-0.2, 1.0), steps=st.integers(1, 100_000))
def test_budget_plan_stays_in_range_and_meets_a_feasible_budget(profile, ci, slack, steps):
    budget_s = steps * profile.time_per_step_s(profile.default_limit_w) * (1 + slack)
    plan = plan_budget(profile, ci, steps, budget_s)
    assert profile.limits_w[0] <= plan.limit_w <= profile.limits_w[-1]
    if plan.feasible:
        assert plan.projected_time_s <= budget_s * (1 + 1e-6)  # the planner bisects to ~1e-9
    if slack < -1e-6:
        assert not plan.feasible and plan.limit_w == profile.default_limit_w  # behind schedule: flat out


@settings(max_examples=80, deadline=None)
@given(profile=profiles(), ci=st.lists(intensities, min_size=2, max_size=10), eta=st.floats(0.01, 1),
       max_ci=st.floats(1.0, 2000.0), mu=st.floats(0, 1e6))
def test_limit_never_rises_as_forecast_rises(profile, ci, eta, max_ci, mu):
    ordered = sorted(ci)
    for pick in (lambda c: weighted_limit(profile, c, mu), lambda c: chase_limit(profile, c, eta, max_ci)):
        limits = [pick(c) for c in ordered]
        assert all(a >= b for a, b in itertools.pairwise(limits)), (ordered, limits)


@settings(max_examples=80, deadline=None)
@given(energy=st.floats(0, 1e8), share=st.floats(0, 1), ci=intensities, pue=st.floats(1.0, 3.0))
def test_carbon_is_additive_over_a_split_interval(energy, share, ci, pue):
    whole = carbon_g(energy, ci, pue)
    parts = carbon_g(energy * share, ci, pue) + carbon_g(energy * (1 - share), ci, pue)
    assert math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-9)


rows = st.lists(st.tuples(st.floats(0, 1e7), intensities, st.integers(0, 500), st.sampled_from([100, 200, 300]),
                          st.one_of(st.none(), intensities)), min_size=0, max_size=12)


def _ledger(data, pue: float = 1.0) -> Ledger:
    ledger = Ledger()
    for i, (energy, ci, steps, limit, forecast) in enumerate(data):
        ledger.add(Interval.account((T0 + timedelta(hours=i)).isoformat(), (T0 + timedelta(hours=i + 1)).isoformat(),
                                    limit, ci, forecast, energy_j=energy, steps=steps, duration_s=3600.0, pue=pue))
    return ledger


@settings(max_examples=50, deadline=None)
@given(data=rows, pue=st.floats(1.0, 2.0))
def test_ledger_totals_are_sums_of_intervals(data, pue):
    ledger = _ledger(data, pue)
    assert math.isclose(ledger.energy_j, sum(r[0] for r in data), rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(ledger.carbon_g, sum(i.carbon_g for i in ledger.intervals), rel_tol=1e-12, abs_tol=1e-12)
    assert ledger.steps == sum(r[2] for r in data)
    for iv in ledger.intervals:
        assert math.isclose(iv.carbon_g, iv.energy_j / 3.6e6 * iv.intensity_g_per_kwh * pue, rel_tol=1e-9,
                            abs_tol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rows, profile=st.one_of(st.none(), profiles()), steps=st.integers(0, 10**6),
       fallbacks=st.dictionaries(st.sampled_from(["forecast", "last_known", "static"]), st.integers(0, 50)))
def test_session_state_round_trips_through_json(data, profile, steps, fallbacks):
    """``load_state_dict(state_dict())`` is the identity through ``json.dumps`` (fresh session, train start)."""
    from chase_integrations.core.intensity import IntensitySource

    def session() -> ChaseSession:
        s = ChaseSession(ChaseConfig(provider=StaticProvider(100.0)))
        s.intensity = IntensitySource(s.config.provider, s.clock, 3600.0, None, False, s.warner)
        return s

    first = session()
    first.ledger, first.profile, first.steps = _ledger(data), profile, steps
    first.intensity.fallbacks.update(fallbacks)
    state = first.state_dict()
    second = session()
    second.load_state_dict(json.loads(json.dumps(state, allow_nan=False)))
    second._restore_from_state()
    assert second.state_dict() == state
    assert not second.warner.keys  # nothing degraded
