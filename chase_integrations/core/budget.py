"""The budget policy: least carbon within a slowdown budget, as a Lagrangian dual re-solved each decision.

At each decision we look at the forecast of the rest of the job, hour by hour. For a multiplier μ,
each hour h runs at ``p_h = argmin_p CI_h·e(p) + μ·t(p)``. Larger μ means faster limits, so the
projected time of the remaining work falls as μ grows. We pick the smallest μ whose projected time
fits the remaining time budget (the budget minus the time already spent) and run the current interval
at that μ's limit. Overspending early shrinks the remaining budget, so later decisions correct for it.

How it is solved (exactly, not by bisection on μ):

* Only limits on the lower convex hull of the profile's (time, energy) points can be an argmin; hull
  vertex k beats the next faster one iff ``CI·s_k > μ``, where ``s_k`` is the energy saved per extra
  second between them (J/s). So the plan changes only at the breakpoints ``μ = CI_h·s_k``, and a
  binary search over those finds the smallest feasible μ in a few vectorised projections.
* With discrete limits the projected time jumps at that μ and part of the budget stays unused. With
  ``interpolate=True`` the hours that flip at that μ run at a limit between the two hull vertices
  (the profile interpolates between measured limits), chosen so the plan spends the budget exactly:
  the linear programme's time-sharing solution.
* When even the least-energy limit in every hour fits the budget, that plan is taken (μ = 0). It
  ignores that a longer job reaches later hours, so on a trace that is dirtier later a faster plan can
  emit slightly less; the budget is binding in every realistic case (a few percent of slowdown).

Example:
    >>> from chase_integrations.core.profile import PowerProfile
    >>> prof = PowerProfile({300: (1.0, 235.0), 250: (1.005, 216.0), 225: (1.016, 200.0), 200: (1.07, 190.0)})
    >>> plan = plan_budget(prof, [500.0] * 10 + [100.0] * 10, remaining_steps=20 * 3600,
    ...                    remaining_time_s=20 * 3600 * 1.02)
    >>> 200 <= plan.limit_w <= 300 and plan.projected_time_s <= 20 * 3600 * 1.02 + 1
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from chase_integrations.core.profile import PowerProfile

HOUR_S = 3600.0
_J_PER_KWH = 3.6e6
_MIX_ITERATIONS = 20
_MIX_TOLERANCE_S = 1.0  # the mixed plan may leave up to this much of the time budget unused
_ALL_AT_ONCE = 20_000  # breakpoints x slots up to which every breakpoint's plan is projected at once

#: Default of ``plan_budget(interpolate=None)``: whether the budget policy may use limits between the
#: candidate limits (measured in ``bench/savings.py``; see the bench README table).
INTERPOLATE = True
FASTER_MARGIN = 0.002  #: ``faster_if_cleaner``: the projected saving a riskier plan must bring (fraction)


@dataclass(frozen=True)
class BudgetPlan:
    """Result of one budget decision.

    Attributes:
        limit_w: Limit for the interval starting now (an interpolated limit when ``interpolate``).
        mu: The multiplier chosen (gCO2/kWh·J per s); ``math.inf`` when running flat out.
        projected_time_s: Projected time of the remaining work under the plan.
        projected_carbon_g: Projected emissions of the remaining work (per the forecast).
        feasible: Whether the plan fits the budget (``False``: behind schedule, flat out).
        schedule_w: The planned limit of each hour slot until the work is done (first: now).
    """

    limit_w: int
    mu: float
    projected_time_s: float
    projected_carbon_g: float
    feasible: bool
    schedule_w: tuple[float, ...] = ()


@dataclass(frozen=True)
class _Hull:
    """Lower convex hull of (time, energy) per step, fastest vertex first."""

    limits_w: np.ndarray  # W
    time_s: np.ndarray  # s per step
    energy_j: np.ndarray  # J per step
    savings_j_per_s: np.ndarray  # s_k between vertex k-1 and k (len = vertices - 1), decreasing
    # every limit of the profile (not only the vertices), ascending: what interpolated limits run at
    point_limits_w: np.ndarray  # W
    point_time_s: np.ndarray  # s per step
    point_energy_j: np.ndarray  # J per step


_HULLS: dict[tuple, _Hull] = {}
_HULLS_MAX = 64


def _hull(profile: PowerProfile) -> _Hull:
    """The profile's lower convex hull, cached by content (decisions rebuild equal profiles each time)."""
    key = profile.points
    hull = _HULLS.get(key)
    if hull is None:
        if len(_HULLS) >= _HULLS_MAX:
            _HULLS.clear()
        hull = _HULLS[key] = _build_hull(profile)
    return hull


def _build_hull(profile: PowerProfile) -> _Hull:
    points = sorted(
        ((profile.time_per_step_s(p), profile.energy_per_step_j(p), p) for p in profile.limits_w),
        key=lambda x: (x[0], x[1], -x[2]),
    )
    hull: list[tuple[float, float, int]] = []
    for t, e, p in points:
        if hull and e >= hull[-1][1]:
            continue  # dominated: no faster and no cheaper than a vertex already kept
        while len(hull) >= 2:
            (t1, e1, _), (t2, e2, _) = hull[-2], hull[-1]
            # drop the middle vertex when it lies on or above the segment from hull[-2] to the new point
            if (e2 - e1) * (t - t1) >= (e - e1) * (t2 - t1):
                hull.pop()
            else:
                break
        hull.append((t, e, p))
    t = np.array([h[0] for h in hull])
    e = np.array([h[1] for h in hull])
    savings = (e[:-1] - e[1:]) / np.maximum(t[1:] - t[:-1], 1e-300)
    points = (
        np.array(profile.limits_w, dtype=float),
        np.array([profile.time_per_step_s(w) for w in profile.limits_w]),
        np.array([profile.energy_per_step_j(w) for w in profile.limits_w]),
    )
    arrays = (np.array([float(h[2]) for h in hull]), t, e, savings, *points)
    for a in arrays:
        a.flags.writeable = False  # shared through the cache
    return _Hull(*arrays)


def seconds_to_next_hour(now: datetime) -> float:
    """Seconds from ``now`` to the next full hour (the first slot of every hourly plan), in (0, 3600].

    Example:
        >>> from datetime import datetime, timezone
        >>> seconds_to_next_hour(datetime(2024, 1, 1, 10, 45, tzinfo=timezone.utc))
        900.0
    """
    return HOUR_S - (now.minute * 60 + now.second + now.microsecond / 1e6)


def remaining_time_budget_s(max_slowdown: float, baseline_time_s: float, time_s: float, remaining_steps: float,
                            default_step_s: float) -> float:
    """Seconds the rest of the job may take: the whole job's allowance minus the time already spent.

    The allowance is ``(1 + max_slowdown)`` times the job at the default limit: the baseline time of the
    work done so far plus ``remaining_steps`` steps of ``default_step_s``.

    Example:
        >>> remaining_time_budget_s(0.05, baseline_time_s=100.0, time_s=103.0, remaining_steps=100,
        ...                         default_step_s=1.0)
        107.0
    """
    allowed_s = (1.0 + max_slowdown) * (baseline_time_s + remaining_steps * default_step_s)
    return allowed_s - time_s


def weighted_limit_fn(profile: PowerProfile, mu: float):
    """``ci -> weighted_limit(profile, ci, mu)``, exactly (same costs, same ties), memoised per intensity.

    The footprint prediction asks for the limit of every forecast hour in several scenarios at each
    decision; this evaluates the same ``CI·e(p) + μ·t(p)`` over precomputed per-limit values.

    Example:
        >>> prof = PowerProfile({300: (1.0, 235.0), 250: (1.005, 216.0), 200: (1.07, 190.0)})
        >>> f = weighted_limit_fn(prof, 1000.0)
        >>> f(500.0), f(0.0)
        (200, 300)
    """
    rows = [(p, e, t) for p, t, e in reversed(profile.points)]  # highest limit first
    memo: dict[float, int] = {}
    isfinite = math.isfinite

    def limit_for(ci: float) -> int:
        limit = memo.get(ci)
        if limit is not None:
            return limit
        best_limit, best_cost = rows[0][0], math.inf
        for p, e, t in rows:  # policies._argmin: ties keep the higher limit
            c = ci * e + mu * t
            if c < best_cost - 1e-12 * max(1.0, abs(best_cost) if isfinite(best_cost) else 1.0):
                best_limit, best_cost = p, c
        if len(memo) < 4096:
            memo[ci] = best_limit
        return best_limit

    return limit_for


def _extend(intensities: Sequence[float], hours: int) -> np.ndarray:
    """The forecast, extended beyond its end by repeating its last day (or its last value)."""
    values = np.asarray(intensities, dtype=float)
    n = len(values)
    if hours <= n:
        return values[:hours]
    h = np.arange(n, hours)
    tail = values[n - 24 + (h - n) % 24] if n >= 24 else np.full(len(h), values[-1])
    return np.concatenate([values, tail])


class _Projector:
    """Projects the remaining work hour by hour for a per-hour choice of (time, energy) per step."""

    def __init__(self, ci: np.ndarray, spans_s: np.ndarray, steps: float) -> None:
        self.ci = ci
        self.spans_s = spans_s
        self.steps = steps
        self.span_ends_s = spans_s.cumsum()  # end of each slot, s from now

    def run(self, t: np.ndarray, e: np.ndarray) -> tuple[float, float]:
        """Return (time_s, carbon_g) of the remaining steps under per-hour ``t``, ``e``."""
        per_hour = self.spans_s / t
        done = per_hour.cumsum()
        last = int(done.searchsorted(self.steps - 1e-9))
        # np.add.reduce is ndarray.sum (same pairwise summation) without its Python-level overhead
        if last >= len(done):  # the horizon is too short: the last hour's rate continues
            extra = self.steps - done[-1]
            time_s = float(np.add.reduce(self.spans_s) + extra * t[-1])
            carbon = float(np.dot(per_hour * e, self.ci) + extra * e[-1] * self.ci[-1]) / _J_PER_KWH
            return time_s, carbon
        before = done[last - 1] if last > 0 else 0.0
        rest = self.steps - before
        time_s = float(np.add.reduce(self.spans_s[:last]) + rest * t[last])
        carbon = float(np.dot(per_hour[:last] * e[:last], self.ci[:last]) + rest * e[last] * self.ci[last])
        return time_s, carbon / _J_PER_KWH

    def times_and_carbons(self, t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`run` for each row of per-hour times ``t`` and energies ``e`` (plans by hours), vectorised."""
        per_hour = self.spans_s[None, :] / t
        done, hour_carbon = np.cumsum(per_hour, axis=1), np.cumsum(per_hour * e * self.ci[None, :], axis=1)
        last = (done < self.steps - 1e-9).sum(axis=1)
        rows, inside, at, prev = np.arange(len(t)), last < t.shape[1], np.minimum(last, t.shape[1] - 1), last - 1
        before = np.where(last > 0, done[rows, np.maximum(prev, 0)], 0.0)
        carbon_before = np.where(last > 0, hour_carbon[rows, np.maximum(prev, 0)], 0.0)
        rest = np.where(inside, self.steps - before, self.steps - done[:, -1])
        carbon = np.where(inside, carbon_before, hour_carbon[:, -1]) + rest * e[rows, at] * self.ci[at]
        return self.times(t), carbon / _J_PER_KWH

    def times(self, t: np.ndarray) -> np.ndarray:
        """Time of the remaining steps for each row of per-hour times ``t`` (plans by hours), vectorised."""
        per_hour = self.spans_s[None, :] / t
        done = np.cumsum(per_hour, axis=1)
        target = self.steps - 1e-9
        last = (done < target).sum(axis=1)  # searchsorted(done, target) per row
        rows = np.arange(len(t))
        inside = last < t.shape[1]
        at = np.minimum(last, t.shape[1] - 1)
        before = np.where(last > 0, done[rows, np.maximum(last - 1, 0)], 0.0)
        spans_before = np.concatenate(([0.0], self.span_ends_s))
        inside_time = spans_before[at] + (self.steps - before) * t[rows, at]
        beyond_time = spans_before[-1] + (self.steps - done[:, -1]) * t[:, -1]
        return np.where(inside, inside_time, beyond_time)


def plan_budget(
    profile: PowerProfile,
    intensities_g_per_kwh: Sequence[float],
    remaining_steps: float,
    remaining_time_s: float,
    first_hour_s: float = HOUR_S,
    iterations: int = 40,
    interpolate: bool | None = None,
    min_mu: float = 0.0,
    faster_if_cleaner: bool = False,
) -> BudgetPlan:
    """Choose the limit for now so the remaining work fits ``remaining_time_s`` with the least carbon.

    Args:
        profile: Per-step time and energy by limit (the candidate limits).
        intensities_g_per_kwh: Forecast intensity for the coming hours, the first for the slot
            starting now (at least one value). Beyond its end the last day repeats.
        remaining_steps: Steps of work left.
        remaining_time_s: Time budget left for them, s.
        first_hour_s: Length of the first slot, s (the rest of the current hour).
        iterations: Unused; kept for compatibility (the search over μ is exact).
        interpolate: Let the hours at the critical μ run at a limit between two candidate limits
            (interpolated profile) so the plan spends the budget exactly. ``None``: :data:`INTERPOLATE`.
        min_mu: The least price of time, gCO2eq/kWh·J per s: time that costs carbon whatever the budget
            (embodied emissions, :attr:`~chase_integrations.core.cost.CostModel.min_mu`). The plan never
            runs slower than this price allows, even when the budget would.
        faster_if_cleaner: Also weigh faster plans that leave budget unused (when the whole server counts).
    """
    del iterations
    if interpolate is None:
        interpolate = INTERPOLATE
    if len(intensities_g_per_kwh) == 0:
        raise ValueError("plan_budget needs at least one forecast intensity.")
    hull = _hull(profile)
    fastest_w = int(hull.limits_w[0])
    if remaining_steps <= 0:
        return BudgetPlan(fastest_w, math.inf, 0.0, 0.0, True)
    slowest_t = float(hull.time_s[-1])
    hours = max(len(intensities_g_per_kwh), math.ceil((remaining_steps * slowest_t - first_hour_s) / HOUR_S) + 2)
    ci = np.maximum(_extend(intensities_g_per_kwh, hours), 0.0)
    spans = np.full(hours, HOUR_S)
    spans[0] = max(first_hour_s, 1e-9)
    return _solve(hull, _Projector(ci, spans, float(remaining_steps)), float(remaining_time_s), interpolate,
                  max(0.0, float(min_mu)), faster_if_cleaner)


def _solve(hull: _Hull, proj: _Projector, remaining_time_s: float, interpolate: bool,
           min_mu: float = 0.0, faster_if_cleaner: bool = False) -> BudgetPlan:
    """The least-carbon plan over ``proj``'s slots that fits ``remaining_time_s`` (see the module docstring).

    :func:`plan_budget`'s slots are the forecast's hours; ``bench/planner_variants.py`` builds others.
    """
    ci = proj.ci
    fastest_w = int(hull.limits_w[0])
    # vertex index per hour for a multiplier: the number of breakpoints CI_h·s_k strictly above μ
    rates = ci[:, None] * hull.savings_j_per_s[None, :]  # hours by (vertices - 1)

    def choice(mu: float) -> np.ndarray:
        return (rates > mu).sum(axis=1)

    def project(idx: np.ndarray) -> tuple[float, float]:
        return proj.run(hull.time_s[idx], hull.energy_j[idx])

    remaining_time_s = float(remaining_time_s) * (1 + 1e-12) + 1e-9  # float noise in the projections
    fast_idx = np.zeros(len(ci), dtype=int)
    fast = project(fast_idx)
    if fast[0] > remaining_time_s:
        return BudgetPlan(fastest_w, math.inf, fast[0], fast[1], False, _schedule(hull, fast_idx, proj, fast[0]))
    free = project(free_idx := choice(min_mu))
    if free[0] <= remaining_time_s:  # the budget does not bind: time is priced at min_mu alone
        plan = BudgetPlan(int(hull.limits_w[free_idx[0]]), min_mu, *free, True,
                          _schedule(hull, free_idx, proj, free[0]))
        faster = _sorted_unique(rates[rates > min_mu]) if faster_if_cleaner else np.empty(0)
        return _faster_if_cleaner(hull, proj, rates, faster, plan, -FASTER_MARGIN)
    # smallest breakpoint whose plan fits; the plan just below it does not
    # (the projected time falls as μ grows: every breakpoint's plan at once, then the first that fits)
    breaks = _sorted_unique(rates[rates > min_mu])  # the largest is feasible (every hour is fastest there)
    if len(breaks) * len(ci) <= _ALL_AT_ONCE:
        plans = (rates[None, :, :] > breaks[:, None, None]).sum(axis=2)  # breakpoints by hours
        fits = proj.times(hull.time_s[plans]) <= remaining_time_s
        mu = float(breaks[int(np.argmax(fits)) if fits.any() else len(breaks) - 1])
    else:  # many slots (a long job): binary search, the same answer (the projected time is monotone in μ)
        lo, hi = 0, len(breaks) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if project(choice(float(breaks[mid])))[0] <= remaining_time_s:
                hi = mid
            else:
                lo = mid + 1
        mu = float(breaks[lo])
    idx = choice(mu)
    result = project(idx)
    if not interpolate:
        plan = BudgetPlan(int(hull.limits_w[idx[0]]), mu, result[0], result[1], True,
                          _schedule(hull, idx, proj, result[0]))
    else:
        plan = _mix(hull, proj, idx, choice(np.nextafter(mu, 0.0)), mu, remaining_time_s, result)
    return _faster_if_cleaner(hull, proj, rates, breaks[breaks > mu] if faster_if_cleaner else breaks[:0], plan,
                              FASTER_MARGIN)


def _faster_if_cleaner(hull: _Hull, proj: _Projector, rates: np.ndarray, faster_mus: np.ndarray,
                       plan: BudgetPlan, margin: float = 0.0) -> BudgetPlan:
    """The least-carbon plan among ``plan`` and the faster ones (larger μ, all fit the budget), whole server counted.

    A slower plan reaches later hours, where forecasts err most; the plan that leans on the forecast must win by
    ``margin``: ``plan`` when it spends the budget (``margin > 0``), a faster one when it is the least-energy plan.
    """
    if len(faster_mus) == 0:
        return plan
    if len(faster_mus) * len(proj.ci) > _ALL_AT_ONCE:  # a long job: evenly spaced multipliers
        faster_mus = faster_mus[np.linspace(0, len(faster_mus) - 1, max(1, _ALL_AT_ONCE // len(proj.ci))).astype(int)]
    plans = (rates[None, :, :] > faster_mus[:, None, None]).sum(axis=2)  # multipliers by hours
    times, carbons = proj.times_and_carbons(hull.time_s[plans], hull.energy_j[plans])
    best = int(np.argmin(carbons))
    if not carbons[best] < plan.projected_carbon_g * (1 + margin):
        return plan
    idx = plans[best]
    return BudgetPlan(int(hull.limits_w[idx[0]]), float(faster_mus[best]), float(times[best]), float(carbons[best]),
                      True, _schedule(hull, idx, proj, float(times[best])))


def _mix(hull: _Hull, proj: _Projector, fast_idx: np.ndarray, slow_idx: np.ndarray,
         mu: float, budget_s: float, fast: tuple[float, float]) -> BudgetPlan:
    """Hours that flip at μ run at an interpolated limit so the projected time meets the budget."""
    flip = fast_idx != slow_idx
    p_fast = hull.limits_w[fast_idx].astype(float)
    p_slow = hull.limits_w[slow_idx].astype(float)
    p_span = p_slow - p_fast

    # the profile interpolates linearly between its measured limits: np.interp over the same points
    limits, times, energies = hull.point_limits_w, hull.point_time_s, hull.point_energy_j
    t_fast, e_fast = hull.time_s[fast_idx], hull.energy_j[fast_idx]

    def at(lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = np.where(flip, p_fast + lam * p_span, p_fast)
        t = np.where(flip, np.interp(p, limits, times), t_fast)
        e = np.where(flip, np.interp(p, limits, energies), e_fast)
        return p, t, e

    # T(λ) is continuous, increasing and nearly linear: regula falsi (Illinois) on [0, 1], keeping the
    # best feasible point; lo is feasible (the fast plan), hi is not (the slow plan)
    lo, hi = 0.0, 1.0
    f_lo = fast[0] - budget_s
    p, t, e = at(1.0)
    f_hi = proj.run(t, e)[0] - budget_s
    best = (p_fast, fast)
    side = 0
    for _ in range(_MIX_ITERATIONS):
        mid = lo - f_lo * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else (lo + hi) / 2
        mid = min(max(mid, lo), hi)
        p, t, e = at(mid)
        trial = proj.run(t, e)
        f_mid = trial[0] - budget_s
        if f_mid <= 0:
            lo, f_lo, best = mid, f_mid, (p, trial)
            if side == -1:
                f_hi /= 2
            side = -1
        else:
            hi, f_hi = mid, f_mid
            if side == 1:
                f_lo /= 2
            side = 1
        if -f_mid <= _MIX_TOLERANCE_S and f_mid <= 0:
            break
    p, result = best
    # the GPU takes whole watts: round towards the faster side so the plan stays within budget
    limit = math.ceil(p[0] - 1e-6) if p_slow[0] < p_fast[0] else math.floor(p[0] + 1e-6)
    schedule = tuple(p[: _used_hours(proj, result[0])].tolist())
    return BudgetPlan(limit, mu, result[0], result[1], True, schedule)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` for a 1-D float array without NaN (a fraction of its overhead on small arrays)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _used_hours(proj: _Projector, time_s: float) -> int:
    return int(proj.span_ends_s.searchsorted(time_s - 1e-6)) + 1


def _schedule(hull: _Hull, idx: np.ndarray, proj: _Projector, time_s: float) -> tuple[float, ...]:
    """The limit of each hour slot of plan ``idx`` (projected to take ``time_s``) until the work is done."""
    return tuple(hull.limits_w[idx[: _used_hours(proj, time_s)]].tolist())
