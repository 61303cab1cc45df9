"""WattTimeProvider against a local server speaking API v3: login, token renewal, MOER units."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chase_integrations.carbon import WattTimeProvider
from chase_integrations.carbon.watttime import G_PER_KWH_PER_LB_PER_MWH
from chase_integrations.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderNotInPlanError,
    ProviderResponseError,
    StaleDataError,
)
from tests.provider_server import WT_PASSWORD, WT_TOKEN_PREFIX, WT_USER, ProviderServer

NOW_5MIN = datetime(2024, 12, 1, 5, 40, tzinfo=timezone.utc)


@pytest.fixture
def server():
    with ProviderServer() as s:
        yield s


@pytest.fixture
def make(server):
    def _make(**kwargs):
        kwargs = {"username": WT_USER, "password": WT_PASSWORD, "base_url": server.url + "/wt",
                  "clock": server.clock, "sleep": lambda s: None, **kwargs}
        return WattTimeProvider(**kwargs)

    return _make


def test_conversion_factor():
    assert pytest.approx(0.4536, abs=1e-4) == G_PER_KWH_PER_LB_PER_MWH


def test_latest_is_marginal_and_converted(server, make):
    with make() as p:
        reading = p.latest()
        assert p.signal == "marginal" and "MARGINAL" in p.describe()
    assert reading.signal == "marginal" and not reading.is_forecast and reading.time == NOW_5MIN
    assert reading.g_per_kwh == pytest.approx(1000.0 * 0.45359237)
    request = server.last("/wt/v3/forecast")
    assert request.query == {"region": "CAISO_NORTH", "signal_type": "co2_moer", "horizon_hours": "24"}
    assert request.headers["Authorization"] == f"Bearer {WT_TOKEN_PREFIX}1"
    assert server.last("/wt/login").headers["Authorization"].startswith("Basic ")


def test_latest_moves_through_a_cached_forecast(server, make):
    p = make(cache_ttl_s=3600)
    p.latest()
    server.clock.advance(600)
    reading = p.latest()
    assert reading.time == datetime(2024, 12, 1, 5, 50, tzinfo=timezone.utc) and reading.is_forecast
    assert reading.g_per_kwh == pytest.approx(1002.0 * 0.45359237)
    assert server.count("/wt/v3/forecast") == 1


def test_forecast_history_and_signal_index(server, make):
    p = make()
    forecast = p.forecast(1)
    assert len(forecast) == 12 and all(r.is_forecast and r.signal == "marginal" for r in forecast)
    assert p.forecast(48) and server.last("/wt/v3/forecast").query["horizon_hours"] == "48"
    assert p.forecast(0) == []
    history = p.history(hours=1)
    query = server.last("/wt/v3/historical").query
    assert query["start"] == "2024-12-01T04:40:00+00:00" and query["end"] == "2024-12-01T05:40:00+00:00"
    assert len(history) == 13 and all(not r.is_forecast and r.signal == "marginal" for r in history)
    assert history[0].g_per_kwh == pytest.approx(800 * 0.45359237)
    assert p.signal_index() == 42.0


def test_token_is_renewed_before_it_expires(server, make):
    p = make()
    p.latest()
    server.clock.advance(20 * 60)  # cache expired, token still good
    p.latest()
    assert server.wt_logins == 1 and server.count("/wt/v3/forecast") == 2
    server.clock.advance(6 * 60)  # 26 min: within the 5 min renewal margin
    p.latest()
    assert server.wt_logins == 2
    assert server.last("/wt/v3/forecast").headers["Authorization"] == f"Bearer {WT_TOKEN_PREFIX}2"


def test_401_triggers_one_login_and_retry(server, make):
    p = make()
    p.latest()
    server.wt_valid_tokens.clear()  # the server forgets the token
    server.clock.advance(301)
    assert p.latest().signal == "marginal"
    assert server.wt_logins == 2


def test_persistent_401_is_an_auth_error(server, make):
    server.script("/wt/v3/forecast", 401, json_body={"error": "nope"}, times=None)
    with pytest.raises(ProviderAuthError, match="WATTTIME_USERNAME"):
        make().latest()
    assert server.wt_logins == 2  # logged in, then once more after the 401


def test_wrong_password_is_an_auth_error_without_the_password(make):
    with pytest.raises(ProviderAuthError, match="/login") as info:
        make(password="not-" + WT_PASSWORD).latest()
    assert WT_PASSWORD not in str(info.value)


def test_403_is_not_in_plan_with_the_free_plan_hint(server, make):
    server.script("/wt/v3/forecast", 403, json_body={"error": "region not in plan"}, times=None)
    with pytest.raises(ProviderNotInPlanError, match="CAISO_NORTH"):
        make(region="PJM_DC").latest()


def test_credentials_from_environment(monkeypatch, server):
    monkeypatch.setenv("WATTTIME_USERNAME", WT_USER)
    monkeypatch.setenv("WATTTIME_PASSWORD", WT_PASSWORD)
    with WattTimeProvider(base_url=server.url + "/wt", clock=server.clock) as p:
        assert p.latest().g_per_kwh > 0


@pytest.mark.parametrize("missing", ["WATTTIME_USERNAME", "WATTTIME_PASSWORD"])
def test_missing_credentials(monkeypatch, missing):
    monkeypatch.setenv("WATTTIME_USERNAME", "u")
    monkeypatch.setenv("WATTTIME_PASSWORD", "p")
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigurationError, match=missing):
        WattTimeProvider()


def test_region_is_required():
    with pytest.raises(ConfigurationError, match="`region`"):
        WattTimeProvider(region="", username="u", password="p")


# --- bad data ------------------------------------------------------------------------------------
def forecast_body(values: str, units: str = "lbs_co2_per_mwh") -> str:
    points = ", ".join(f'{{"point_time": "2024-12-01T05:{40 + 5 * i:02d}:00+00:00", "value": {v}}}'
                       for i, v in enumerate(values.split(",")))
    return f'{{"data": [{points}], "meta": {{"units": "{units}"}}}}'


@pytest.mark.parametrize("body", [forecast_body("NaN"), forecast_body("-1"), forecast_body("null"),
                                  forecast_body('"x"'), forecast_body("500", units="percent"),
                                  '{"data": []}', '{"meta": {}}', '{"data": [{"value": 5}]}'])
def test_bad_forecast_payloads(server, make, body):
    server.script("/wt/v3/forecast", body=body)
    with pytest.raises(ProviderResponseError):
        make().latest()


def test_bad_points_are_skipped_in_lists(server, make):
    server.script("/wt/v3/forecast", body=forecast_body("NaN,1000,-5"))
    assert [r.g_per_kwh for r in make().forecast(1)] == [pytest.approx(453.59237)]


def test_login_without_token(server, make):
    server.script("/wt/login", json_body={"nope": 1})
    with pytest.raises(ProviderResponseError, match="token"):
        make().latest()


def test_signal_index_out_of_range(server, make):
    point = {"point_time": "2024-12-01T05:40:00Z", "value": 140}
    server.script("/wt/v3/signal-index", json_body={"data": [point]})
    with pytest.raises(ProviderResponseError, match="percentile"):
        make().signal_index()


def test_stale(server, make):
    server.script("/wt/v3/forecast", body=forecast_body("1000").replace("05:40", "01:40"))
    with pytest.raises(StaleDataError):
        make().latest()
