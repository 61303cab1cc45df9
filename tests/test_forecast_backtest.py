"""Rolling-origin backtest, baselines and the `chase backtest` command."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from chase_integrations._data import data_path
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.cli import backtest as cli
from chase_integrations.errors import ConfigurationError
from chase_integrations.forecast import PersistenceForecaster, SeasonalNaiveForecaster
from chase_integrations.forecast.backtest import backtest, errors, run_backtest
from chase_integrations.forecast.baselines import HourlyBuffer, baseline_forecast

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def sine_trace(days: int, noise: float = 2.0, seed: int = 0):
    hours = np.arange(days * 24)
    rng = np.random.default_rng(seed)
    values = 150 + 50 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, noise, len(hours))
    return int(T0.timestamp()) + 3600 * hours, np.clip(values, 0, None)


def test_rolling_origin_uses_only_the_past():
    times, values = sine_trace(6, noise=0.0)
    values = values.copy()
    values[-24:] = 1e4  # the evaluated day is very different from the past
    start = T0 + timedelta(days=5)
    rows = backtest(times, values, start, days=1, horizons=(1, 24), forecasters=["persistence", "seasonal_naive"])
    by = {(r.forecaster, r.horizon_h): r for r in rows}
    assert by[("seasonal_naive", 24)].mae > 9000  # it could not have seen the future
    assert by[("persistence", 1)].n == 24 and by[("seasonal_naive", 24)].n == 24
    # persistence at 1 h knows the previous hour: after the first hour of the jump it is exact
    assert by[("persistence", 1)].mae < 1e4 / 24 + 1


def test_mape_skips_zero_actuals():
    r = errors("x", 1, np.array([1.0, 2.0, 3.0]), np.array([0.0, 4.0, 3.0]))
    assert r.n == 3 and r.n_mape == 2
    assert r.mape == pytest.approx(0.25)
    assert r.mae == pytest.approx(1.0)
    assert errors("x", 1, np.array([1.0]), np.array([0.0])).mape is None


def test_arima_backtest_beats_persistence_on_sine():
    times, values = sine_trace(9)
    from chase_integrations.forecast.arima import ArimaForecaster

    factories = {"arima": lambda: ArimaForecaster(window_h=5 * 24, max_p=1, max_q=0),
                 "persistence": PersistenceForecaster, "seasonal_naive": SeasonalNaiveForecaster}
    rows = backtest(times, values, T0 + timedelta(days=8), days=1, horizons=(1, 24), forecasters=factories,
                    history_h=5 * 24)
    by = {(r.forecaster, r.horizon_h): r for r in rows}
    assert by[("arima", 1)].mape < 0.85 * by[("persistence", 1)].mape
    assert by[("arima", 24)].mape <= 1.05 * by[("seasonal_naive", 24)].mape


def test_backtest_tolerates_gaps_and_custom_factories():
    times, values = sine_trace(4)
    keep = np.ones(len(times), dtype=bool)
    keep[70:73] = False
    traces = run_backtest(times[keep], values[keep], T0 + timedelta(days=3), 1, (1, 6),
                          {"p": PersistenceForecaster})
    assert traces[0].name == "p"
    assert len(traces[0].predicted[1]) == 23  # hour 72 is missing from the data: not scored


@pytest.mark.parametrize(("kwargs", "match"), [({"horizons": (0,)}, "horizons"), ({"days": 0}, "days"),
                                               ({"forecasters": ["prophet"]}, "forecasters")])
def test_backtest_bad_arguments(kwargs, match):
    times, values = sine_trace(3)
    args = {"start": T0 + timedelta(days=2), "days": 1, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        backtest(times, values, **args)


def test_baselines_and_helpers():
    readings = [IntensityReading(T0 + timedelta(hours=h), float(h)) for h in range(30)]
    sn = SeasonalNaiveForecaster()
    sn.fit(readings)
    assert [r.g_per_kwh for r in sn.predict(2)] == [6.0, 7.0]
    p = PersistenceForecaster()
    p.fit(readings)
    assert [r.g_per_kwh for r in p.predict(2)] == [29.0, 29.0]
    b = HourlyBuffer(window_h=5, max_gap_h=1)
    for h in range(7):
        b.add(T0 + timedelta(hours=h), float(h))
    assert b.values().tolist() == [2.0, 3.0, 4.0, 5.0, 6.0] and b.first_h == int(T0.timestamp()) // 3600 + 2
    assert b.add(T0, 99.0) == "ignored"
    assert b.add(T0 + timedelta(hours=10), 1.0) == "restarted"
    mean, lower, upper = baseline_forecast(np.arange(48.0), 3, 1.28)
    assert mean.tolist() == [24.0, 25.0, 26.0] and (lower <= mean).all() and (upper >= mean).all()


def _write_trace(tmp_path, days=4):
    times, values = sine_trace(days)
    path = tmp_path / "trace.csv"
    lines = ["datetime_utc,ci_direct_gco2eq_per_kwh"]
    lines += [f"{datetime.fromtimestamp(int(t), tz=timezone.utc):%Y-%m-%d %H:%M:%S},{v:.3f}"
              for t, v in zip(times, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _parse(argv):
    parser = argparse.ArgumentParser(prog="chase")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_json_and_table(tmp_path, capsys):
    path = _write_trace(tmp_path)
    args = _parse(["backtest", "--trace", str(path), "--start", "2024-01-04", "--days", "1", "--horizons", "1,24",
                   "--forecasters", "persistence,seasonal_naive", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert {(r["forecaster"], r["horizon_h"]) for r in out["results"]} == {
        ("persistence", 1), ("persistence", 24), ("seasonal_naive", 1), ("seasonal_naive", 24)}
    assert all({"mape", "mae", "n"} <= set(r) and r["n"] == 24 for r in out["results"])
    args = _parse(["backtest", "--trace", str(path), "--start", "2024-01-04T00:00:00Z", "--days", "1",
                   "--forecasters", "persistence", "--value-column", "ci_direct_gco2eq_per_kwh"])
    assert cli.run(args) == 0
    table = capsys.readouterr().out
    assert "persistence" in table and "MAPE" in table


@pytest.mark.parametrize("bad", [["--horizons", "a"], ["--forecasters", "nope"], ["--start", "yesterday"],
                                 ["--value-column", "missing"]])
def test_cli_errors_exit_2(tmp_path, capsys, bad):
    path = _write_trace(tmp_path, days=2)
    argv = ["backtest", "--trace", str(path), "--start", "2024-01-02", "--days", "1", *bad]
    args = _parse(argv)
    assert cli.run(args) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.data
def test_real_trace_arima_beats_persistence_at_1h():
    path = data_path("carbon", "electricitymaps_sustain_cluster", "DE-LU_2021-2024_hourly.csv")
    if path is None:
        pytest.skip("shared data folder not found (set CHASE_DATA_DIR to run real-data checks)")
    from chase_integrations.carbon.trace import TraceProvider

    trace = TraceProvider(path, value_column="ci_direct_gco2eq_per_kwh")
    rows = backtest(trace.times_s, trace.values_g_per_kwh, datetime(2024, 4, 1, tzinfo=timezone.utc), 2, (1,),
                    ["arima", "persistence"])
    by = {r.forecaster: r for r in rows}
    assert by["arima"].mae < by["persistence"].mae  # the bench holds the 0.85 x target over 28 days
