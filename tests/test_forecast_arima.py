"""ArimaForecaster on small synthetic series (fast; no data folder needed)."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.errors import ConfigurationError
from chase_integrations.forecast import make_forecaster
from chase_integrations.forecast.arima import ArimaForecaster, ForecastInterval

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def series(hours: int, noise: float = 3.0, seed: int = 0, level: float = 200.0) -> list[IntensityReading]:
    rng = np.random.default_rng(seed)
    values = level + 60 * np.sin(2 * np.pi * np.arange(hours) / 24) + rng.normal(0, noise, hours)
    return [IntensityReading(T0 + timedelta(hours=h), max(0.0, float(v))) for h, v in enumerate(values)]


@pytest.fixture
def forecaster():
    f = ArimaForecaster(window_h=5 * 24, max_p=1, max_q=0)
    yield f
    f.close()


def test_daily_sine_beats_persistence(forecaster):
    history = series(7 * 24 + 24)
    forecaster.fit(history[:-24], wait=True)
    assert forecaster.fallback_reason is None
    assert forecaster.order is not None and forecaster.order[1] == 1
    predicted = np.array([r.g_per_kwh for r in forecaster.predict(24)])
    actual = np.array([r.g_per_kwh for r in history[-24:]])
    persistence = np.full(24, history[-25].g_per_kwh)
    assert np.mean(np.abs(predicted - actual)) < 0.3 * np.mean(np.abs(persistence - actual))
    times = [r.time for r in forecaster.predict(3)]
    assert times == [history[-25].time + timedelta(hours=h) for h in (1, 2, 3)]
    assert all(r.is_forecast for r in forecaster.predict(3))


def test_combination_weights_and_arima_alone():
    history = series(7 * 24)
    combined, alone = ArimaForecaster(), ArimaForecaster(combine=False)
    assert combined.weights is None
    for f in (combined, alone):
        f.fit(history, wait=True)
    w = combined.weights
    assert set(w) == {"arima", "ar_profile", "same_hour_yesterday", "persistence"}
    assert all(len(v) == 48 for v in w.values())
    assert all(sum(col) == pytest.approx(1.0) for col in zip(*w.values(), strict=True))
    assert alone.weights["arima"] == [1.0] * 48
    assert len(combined.predict(60)) == 60 and all(iv.upper_g_per_kwh > iv.lower_g_per_kwh
                                                  for iv in combined.predict_interval(60))
    combined.close()
    alone.close()


def test_intervals_contain_point_and_widen(forecaster):
    forecaster.fit(series(7 * 24), wait=True)
    intervals = forecaster.predict_interval(24, alpha=0.2)
    assert all(isinstance(iv, ForecastInterval) for iv in intervals)
    assert all(iv.lower_g_per_kwh <= iv.g_per_kwh <= iv.upper_g_per_kwh for iv in intervals)
    width = [iv.upper_g_per_kwh - iv.lower_g_per_kwh for iv in intervals]
    assert width[-1] >= width[0] > 0
    wide = forecaster.predict_interval(1, alpha=0.05)[0]
    assert wide.upper_g_per_kwh - wide.lower_g_per_kwh > width[0]
    with pytest.raises(ConfigurationError, match="alpha"):
        forecaster.predict_interval(1, alpha=1.5)


def test_predict_before_fit_and_short_history_fall_back(forecaster, caplog):
    assert forecaster.predict(3) == []
    caplog.set_level(logging.INFO, logger="chase_integrations.forecast.arima")
    short = series(30)
    forecaster.fit(short, wait=True)
    assert forecaster.fallback_reason is not None and "too short" in forecaster.fallback_reason
    predicted = forecaster.predict(2)
    # seasonal naive: the same hours yesterday
    assert [r.g_per_kwh for r in predicted] == pytest.approx([short[-24].g_per_kwh, short[-23].g_per_kwh])
    forecaster.update(IntensityReading(T0 + timedelta(hours=30), 150.0))
    assert sum("too short" in rec.getMessage() for rec in caplog.records) == 1  # said once
    one = ArimaForecaster()
    one.fit(short[:1])
    assert [r.g_per_kwh for r in one.predict(2)] == [short[0].g_per_kwh] * 2  # persistence
    one.close()


def test_accumulates_history_until_it_can_fit(forecaster):
    readings = series(60)
    forecaster.fit(readings[:24], wait=True)
    assert forecaster.fallback_reason is not None
    for r in readings[24:]:
        forecaster.update(r)
    forecaster.wait()
    assert forecaster.fallback_reason is None


def test_gaps_duplicates_zeros_outliers():
    readings = series(6 * 24, seed=1)
    data = [r for i, r in enumerate(readings) if not 50 <= i < 53]  # 3-hour gap
    data += [IntensityReading(r.time, r.g_per_kwh) for r in data[:10]]  # duplicates
    data += [IntensityReading(T0 + timedelta(hours=70, minutes=30), 0.0)]  # a zero, sub-hourly
    data.append(IntensityReading(T0 + timedelta(hours=80), 50_000.0))  # an outlier
    f = ArimaForecaster(window_h=6 * 24, max_p=1, max_q=0)
    f.fit(data, wait=True)
    assert f.fallback_reason is None
    values = [r.g_per_kwh for r in f.predict(48)]
    assert all(0.0 <= v < 1000.0 for v in values)
    f.close()


def test_long_gap_restarts_history(forecaster):
    forecaster.fit(series(4 * 24), wait=True)
    assert forecaster.fallback_reason is None
    forecaster.update(IntensityReading(T0 + timedelta(days=10), 120.0))
    assert forecaster.fallback_reason is not None
    assert [r.g_per_kwh for r in forecaster.predict(2)] == [120.0, 120.0]


def test_forecasts_never_negative():
    rng = np.random.default_rng(3)
    values = np.clip(5 + 20 * np.sin(2 * np.pi * np.arange(5 * 24) / 24) + rng.normal(0, 2, 120), 0, None)
    f = ArimaForecaster(max_p=1, max_q=0)
    f.fit([IntensityReading(T0 + timedelta(hours=h), float(v)) for h, v in enumerate(values)], wait=True)
    assert all(iv.lower_g_per_kwh >= 0 and iv.g_per_kwh >= 0 for iv in f.predict_interval(48))
    f.close()


def test_updates_append_and_refit_every_n_hours():
    readings = series(5 * 24 + 10)
    f = ArimaForecaster(refit_every_h=6, max_p=1, max_q=0)
    f.fit(readings[: 5 * 24], wait=True)
    first_fit = f.last_fit_s
    for r in readings[5 * 24 : 5 * 24 + 5]:
        f.update(r)
        f.wait()
        assert f.predict(1)[0].time == r.time + timedelta(hours=1)
    assert f.last_fit_s == first_fit  # appended, not refitted
    f.update(readings[5 * 24 + 5])
    f.wait()
    assert f.last_fit_s != first_fit  # the 6th new hour triggered a refit
    f.close()


def test_background_fit_does_not_block_callers():
    f = ArimaForecaster(window_h=7 * 24)
    history = series(7 * 24 + 5)
    start = time.perf_counter()
    f.fit(history[:-5])
    assert time.perf_counter() - start < 0.1  # returned before fitting
    latencies = []
    for r in history[-5:]:
        t0 = time.perf_counter()
        f.update(r)
        f.predict(24)
        latencies.append(time.perf_counter() - t0)
    assert max(latencies) < 0.1
    f.wait()
    assert f.fallback_reason is None
    f.close()


def test_warning_filters_unchanged_and_no_warnings_escape(forecaster):
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inner = list(warnings.filters)
        forecaster.fit(series(5 * 24, noise=30.0), wait=True)
        forecaster.update(IntensityReading(T0 + timedelta(hours=5 * 24), 190.0))
        forecaster.predict_interval(24)
        # The update's statsmodels append runs on the worker inside catch_warnings(), which swaps the
        # process-wide filter list while it runs (Python < 3.14): compare once the worker is idle.
        forecaster.wait()
        assert list(warnings.filters) == inner
    assert list(warnings.filters) == before
    assert [str(w.message) for w in caught] == []


def test_external_forecast_blend(forecaster):
    history = series(5 * 24)
    forecaster.fit(history, wait=True)
    ours = [r.g_per_kwh for r in forecaster.predict(3)]
    nxt = history[-1].time + timedelta(hours=1)
    forecaster.set_external_forecast([IntensityReading(nxt, 1000.0, True)], weight=0.25)
    blended = [r.g_per_kwh for r in forecaster.predict(3)]
    assert blended[0] == pytest.approx(0.75 * ours[0] + 0.25 * 1000.0)
    assert blended[1:] == pytest.approx(ours[1:])
    with pytest.raises(ConfigurationError, match="weight"):
        forecaster.set_external_forecast([], weight=2.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"window_h": 10}, "window_h"), ({"criterion": "mse"}, "criterion"), ({"external_weight": -1}, "external"),
     ({"d": 2}, "d"), ({"score_days": 0.5}, "score_days"), ({"combine_power": 0}, "combine_power"),
     ({"estimator": "r"}, "estimator"), ({"fit_time_cap_s": 0}, "fit_time_cap_s")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        ArimaForecaster(**kwargs)


def test_make_forecaster_and_close_stops_worker():
    f = make_forecaster("arima")
    assert isinstance(f, ArimaForecaster)
    f.fit(series(3 * 24), wait=True)
    f.close()
    f.close()  # idempotent
    for t in threading.enumerate():
        if t.name.startswith("chase-arima"):
            t.join(timeout=5)
    assert not any(t.name.startswith("chase-arima") and t.is_alive() for t in threading.enumerate())


def test_import_does_not_pull_statsmodels():
    code = "import chase_integrations, chase_integrations.forecast.arima, sys; print('statsmodels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_statsmodels_is_the_default_and_appends_between_refits():
    readings = series(5 * 24 + 3, noise=10.0)
    f = ArimaForecaster(window_h=5 * 24, refit_every_h=24)
    f.fit(readings[: 5 * 24], wait=True)
    assert f.estimator == "statsmodels" and f.last_estimator == "statsmodels"
    assert f.fits_by_estimator == {"statsmodels": 1} and f._model.results is not None
    first_fit = f.last_fit_s
    for r in readings[5 * 24 :]:
        f.update(r)
        f.wait()
    assert f.last_fit_s == first_fit and f.last_append_s is not None  # appended (refit=False), not refitted
    path = f._path
    assert path is not None and path.model is f._model and path.origin_h == f._buffer.last_h
    assert len(f._model.results.model.endog) == 5 * 24  # the refit's results; appends are new objects
    # replay (scoring) uses the Kalman paths; at the refit's last hour they equal statsmodels' forecast
    from chase_integrations.forecast._statsmodels import kalman_paths

    base = f._model.results
    replayed = kalman_paths(base, np.array([5 * 24 - 1, 5 * 24 - 30]), 24)
    assert replayed[0] == pytest.approx(np.asarray(base.forecast(24)), abs=1e-9)
    # the append (extend: filters only the new hours) forecasts what append(refit=False) does
    z_new = f._buffer.values()[-3:]
    from chase_integrations.forecast._combine import standardized
    from chase_integrations.forecast._statsmodels import append_forecast

    z_new = standardized(f._model.parts, z_new, f._buffer.last_h - 2)
    extended_results, extended = append_forecast(base, z_new, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        appended = np.asarray(base.append(z_new, refit=False).forecast(24))
        own = np.asarray(extended_results.forecast(24))
    assert extended == pytest.approx(own, abs=1e-9)  # read off the last predicted state = forecast()
    assert extended == pytest.approx(appended, abs=1e-6)
    assert extended == pytest.approx(path.z[:24], abs=1e-12)
    values, first_h = f._buffer.values(), f._buffer.first_h
    expected = f._model_forecast(f._model, values, first_h, 24, 0.2, path.z[None, :24])[0]
    assert [r.g_per_kwh for r in f.predict(24)] == pytest.approx(np.maximum(expected, 0.0).tolist())
    f.close()


def test_statsmodels_over_its_cap_or_failing_falls_back_to_numpy(monkeypatch):
    history = series(5 * 24)
    slow = ArimaForecaster(window_h=5 * 24, fit_time_cap_s=1e-9)
    slow.fit(history, wait=True)
    assert slow.fallback_reason is None and slow._model.results is None
    assert slow.last_estimator.startswith("numpy (statsmodels failed: FitTimeout")
    assert slow.fits_by_estimator == {"numpy fallback": 1}
    slow.update(IntensityReading(T0 + timedelta(hours=5 * 24), 190.0))
    slow.wait()
    assert slow.last_append_s is None and len(slow.predict(24)) == 24  # NumPy recursion, no append
    slow.close()

    from chase_integrations.forecast import _statsmodels

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("LU decomposition error")

    monkeypatch.setattr(_statsmodels, "fit_arima", broken)
    failing = ArimaForecaster(window_h=5 * 24)
    failing.fit(history, wait=True)
    assert failing.fallback_reason is None
    assert failing.last_estimator == "numpy (statsmodels failed: LinAlgError: LU decomposition error)"
    failing.close()


def test_numpy_estimator_matches_and_never_imports_statsmodels():
    code = (
        "import sys, math\n"
        "from datetime import datetime, timedelta, timezone\n"
        "from chase_integrations.carbon.reading import IntensityReading\n"
        "from chase_integrations.forecast.arima import ArimaForecaster\n"
        "t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)\n"
        "h = [IntensityReading(t0 + timedelta(hours=i), 200 + 50 * math.sin(i / 3.8)) for i in range(120)]\n"
        "f = ArimaForecaster(estimator='numpy')\n"
        "f.fit(h[:-1], wait=True); f.update(h[-1]); f.wait(); f.predict(24); f.close()\n"
        "print(f.last_estimator, f.fits_by_estimator, 'statsmodels' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy {'numpy': 1} False"


def test_statsmodels_import_and_calls_leave_global_warning_filters_alone():
    # a fresh interpreter: statsmodels' import adds global "always" filters, which must not leak
    code = (
        "import sys, math, warnings\n"
        "from datetime import datetime, timedelta, timezone\n"
        "from chase_integrations.carbon.reading import IntensityReading\n"
        "from chase_integrations.forecast.arima import ArimaForecaster\n"
        "warnings.simplefilter('always')\n"
        "before = list(warnings.filters)\n"
        "t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)\n"
        "h = [IntensityReading(t0 + timedelta(hours=i), max(0.0, 20 + 80 * math.sin(i / 3.8) + (i * 7919 % 13)))"
        " for i in range(124)]\n"
        "f = ArimaForecaster(window_h=96)\n"
        "lazy = 'statsmodels' not in sys.modules\n"
        "f.fit(h[:-4], wait=True)\n"
        "for r in h[-4:]: f.update(r)\n"
        "f.wait(); f.predict_interval(48); f.close()\n"
        "print(lazy, f.last_estimator, 'statsmodels' in sys.modules, list(warnings.filters) == before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True statsmodels True True"
    assert "Warning" not in out.stderr


def test_sine_reference_value():
    assert math.isclose(series(1, noise=0.0)[0].g_per_kwh, 200.0)
