"""The fast paths behind ``simulate()``'s speed give the same numbers as the straightforward code.

Each test compares a helper with the plain computation it replaced (or checks the validation it kept).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chase_integrations.carbon.reading import IntensityReading, checked_g_per_kwh
from chase_integrations.carbon.trace import _step_mean
from chase_integrations.core.budget import _sorted_unique
from chase_integrations.core.decide import interval_mean
from chase_integrations.core.footprint import project_carbon
from chase_integrations.core.intensity import IntensitySource, step_mean, time_weighted_mean
from chase_integrations.core.ledger import Interval, Ledger
from chase_integrations.core.profile import PowerProfile
from chase_integrations.simulation.clock import SimulatedClock

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
PROFILE = PowerProfile({300: (1.0, 235.0), 250: (1.005, 216.0), 225: (1.016, 200.0), 200: (1.07, 190.0)})


def _reference_step_mean(times_s, values, start_s, end_s):
    """``_step_mean`` as it was: int64 times, clipped edges, ``np.diff``."""
    if end_s <= start_s:
        return float(values[max(0, int(np.searchsorted(times_s, start_s, side="right")) - 1)])
    lo = max(0, int(np.searchsorted(times_s, start_s, side="right")) - 1)
    hi = max(lo, int(np.searchsorted(times_s, end_s, side="left")) - 1)
    edges = np.clip(np.concatenate(([start_s], times_s[lo + 1 : hi + 1], [end_s])), start_s, end_s)
    return float(np.dot(np.diff(edges), values[lo : hi + 1]) / (end_s - start_s))


def test_trace_step_mean_matches_the_reference_exactly():
    rng = np.random.default_rng(7)
    times = (1_600_000_000 + np.cumsum(rng.integers(1, 7200, 300))).astype(np.int64)
    values = rng.random(300) * 500
    for _ in range(5000):
        start = float(rng.uniform(times[0] - 9000, times[-1] + 9000))
        if rng.random() < 0.3:
            start = float(times[rng.integers(300)])  # on a row boundary
        end = start + float(rng.choice([0.0, -5.0, 3600.0, rng.uniform(1, 40_000)]))
        assert _step_mean(times.astype(float), values, start, end) == _reference_step_mean(times, values, start, end)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=30),
    st.integers(0, 3599),
    st.sampled_from([0.0, 60.0, 900.0, 3600.0, 7300.5]),
)
def test_interval_mean_matches_readings_mean(outlook, offset_s, interval_s):
    now = T0 + timedelta(seconds=offset_s, microseconds=offset_s * 37)
    readings = [IntensityReading(T0 + timedelta(hours=h), v, h > 0) for h, v in enumerate(outlook)]
    expected = time_weighted_mean(readings, now, now + timedelta(seconds=interval_s))
    assert interval_mean(outlook, now, interval_s) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_invalid_forecast_values_still_raise(bad):
    with pytest.raises(ValueError, match="finite and >= 0"):
        interval_mean([100.0, bad], T0, 3600.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        IntensityReading(T0, bad)
    with pytest.raises(ValueError, match="finite and >= 0"):
        checked_g_per_kwh(bad)


def test_reading_normalises_like_before():
    r = IntensityReading(datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), np.float64(5))
    assert r.time == T0 and r.time.utcoffset() == timedelta(0)
    assert type(r.g_per_kwh) is float and r.g_per_kwh == 5.0
    assert type(IntensityReading(T0, 7).g_per_kwh) is float
    with pytest.raises(ValueError, match="timezone-aware"):
        IntensityReading(datetime(2024, 1, 1), 1.0)


def test_step_mean_before_start_and_empty_interval():
    times = [T0, T0 + timedelta(hours=1)]
    assert step_mean(times, [1.0, 2.0], T0 - timedelta(hours=1), T0 - timedelta(hours=1)) == 1.0
    assert step_mean(times, [1.0, 2.0], T0 + timedelta(hours=2), T0 + timedelta(hours=2)) == 2.0


@pytest.mark.parametrize("values", [[], [3.0], [2.0, 2.0], [3.0, 1.0, 3.0, 2.0, 1.0, 0.5, 0.5]])
def test_sorted_unique_is_np_unique(values):
    array = np.array(values, dtype=float)
    assert np.array_equal(_sorted_unique(array), np.unique(array))


def test_known_values_after_out_of_order_readings_and_trimming():
    clock = SimulatedClock(T0 + timedelta(days=20))
    source = IntensitySource(SimpleNamespace(now=lambda: None), clock, 3600.0, None, False, None)  # now: the clock's
    hours = list(range(20 * 24))
    hours = hours[::2] + hours[1::2]  # every other hour, then the gaps
    for h in hours:
        source._remember(IntensityReading(T0 + timedelta(hours=h), float(h)))
    assert len(source.readings) <= 24 * 16
    kept = sorted(source.readings)
    assert source.sorted_readings() == [source.readings[t] for t in kept]
    assert source.known_values(24) == [float(h) for h in range(19 * 24, 20 * 24)]


def test_ledger_totals_are_plain_sums():
    ledger = Ledger()
    for k in range(7):
        ledger.add(Interval.account("a", "b", 250, 100.0 + k / 3, None, energy_j=1e5 / (k + 1), steps=3,
                                    duration_s=60.0 + k / 7, energy_ratio_to_default=0.9))
    assert ledger.carbon_g == sum(i.carbon_g for i in ledger.intervals)
    assert ledger.time_s == sum(i.duration_s for i in ledger.intervals)
    assert ledger.steps == 21


def test_project_carbon_asks_once_per_intensity():
    asked = []

    def limit_for(ci):
        asked.append(ci)
        return 250 if ci > 200 else 300

    result = project_carbon(PROFILE, [300.0, 300.0, 100.0, 300.0], limit_for, remaining_steps=12_000,
                            first_hour_s=1800.0)
    assert sorted(asked) == [100.0, 300.0]
    assert result.time_s > 0 and result.carbon_g > 0


def test_profile_points():
    assert PROFILE.points == ((200, 1.07, 190.0), (225, 1.016, 200.0), (250, 1.005, 216.0), (300, 1.0, 235.0))
