"""UKCarbonIntensityProvider against a local server speaking the Carbon Intensity API."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from chase_integrations.carbon import UKCarbonIntensityProvider
from chase_integrations.errors import (
    ConfigurationError,
    ProviderResponseError,
    ProviderServerError,
    StaleDataError,
)
from tests.provider_server import ProviderServer

NOW_HALF_HOUR = datetime(2024, 12, 1, 5, 30, tzinfo=timezone.utc)  # the server's clock is 05:40
PERIOD = {"from": "2024-12-01T05:30Z", "to": "2024-12-01T06:00Z"}


@pytest.fixture
def server():
    with ProviderServer() as s:
        yield s


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make(server, sleeps):
    def _make(**kwargs):
        kwargs = {"base_url": server.url + "/uk", "clock": server.clock, "sleep": sleeps.append, **kwargs}
        return UKCarbonIntensityProvider(**kwargs)

    return _make


# --- national ----------------------------------------------------------------------------------------
def test_national_latest_uses_actual(server, make):
    with make() as p:
        reading = p.latest()
    assert (reading.time, reading.g_per_kwh, reading.is_forecast) == (NOW_HALF_HOUR, 180.0, False)
    assert server.last("/uk").path == "/uk/intensity"
    headers = server.last("/uk").headers
    assert "auth-token" not in headers and "Authorization" not in headers


def test_latest_falls_back_to_forecast_when_actual_is_null(server, make):
    period = {**PERIOD, "intensity": {"forecast": 190, "actual": None, "index": "moderate"}}
    server.script("/uk/intensity", json_body={"data": [period]})
    reading = make().latest()
    assert (reading.g_per_kwh, reading.is_forecast) == (190.0, True)


def test_national_history_is_half_hourly_actuals(server, make):
    p = make()
    readings = p.history()
    assert server.last("/uk").path == "/uk/intensity/2024-12-01T05:30Z/pt24h"
    assert len(readings) == 48 and all(not r.is_forecast for r in readings)
    assert all(b.time - a.time == timedelta(minutes=30) for a, b in itertools.pairwise(readings))
    assert readings[-1].time == NOW_HALF_HOUR - timedelta(minutes=30)
    assert len(p.history(hours=2)) == 4  # 03:40-05:40 overlaps 03:30 .. 05:00
    assert server.count("/uk/intensity/") == 1  # cached


def test_national_forecast_uses_fw24h_then_fw48h(server, make):
    p = make()
    readings = p.forecast(2)
    assert server.last("/uk").path == "/uk/intensity/2024-12-01T05:30Z/fw24h"
    assert readings[0].time == NOW_HALF_HOUR and len(readings) == 5  # 05:30 .. 07:30
    assert all(r.is_forecast for r in readings) and readings[0].g_per_kwh == 105.0  # forecast, no actual
    long = p.forecast(30)
    assert server.last("/uk").path == "/uk/intensity/2024-12-01T05:30Z/fw48h"
    assert len(long) == 61
    assert p.forecast(0) == []


# --- regional ----------------------------------------------------------------------------------------
def test_region_id_paths_and_forecast_only_readings(server, make):
    p = make(region_id=13)
    latest = p.latest()
    assert server.last("/uk").path == "/uk/regional/regionid/13"
    assert (latest.g_per_kwh, latest.is_forecast) == (155.0, True)
    forecast = p.forecast(1)
    assert server.last("/uk").path == "/uk/regional/intensity/2024-12-01T05:30Z/fw24h/regionid/13"
    assert [r.g_per_kwh for r in forecast] == [105.0, 106.0, 107.0]
    history = p.history()
    assert server.last("/uk").path == "/uk/regional/intensity/2024-12-01T05:30Z/pt24h/regionid/13"
    assert len(history) == 48 and all(r.is_forecast for r in history)
    assert "region_id=13" in p.describe()


def test_postcode_paths(server, make):
    p = make(postcode="rg10 1ab")
    assert p.postcode == "RG10"
    assert p.latest().g_per_kwh == 155.0
    assert server.last("/uk").path == "/uk/regional/postcode/RG10"
    p.forecast(30)
    assert server.last("/uk").path == "/uk/regional/intensity/2024-12-01T05:30Z/fw48h/postcode/RG10"


@pytest.mark.parametrize(("kwargs", "match"), [({"region_id": 1, "postcode": "RG10"}, "at most one"),
                                               ({"region_id": 0}, "`region_id`"),
                                               ({"region_id": 18}, "`region_id`"),
                                               ({"region_id": "13"}, "`region_id`"),
                                               ({"region_id": True}, "`region_id`"),
                                               ({"postcode": "!!"}, "`postcode`"),
                                               ({"postcode": ""}, "`postcode`"),
                                               ({"postcode": 10}, "`postcode`")])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        UKCarbonIntensityProvider(**kwargs)


def test_resolution_and_signal():
    p = UKCarbonIntensityProvider()
    assert p.resolution_s == 1800 and p.signal == "average" and p.cache_ttl_s == 1800
    assert p.describe() == "ukci(national, average intensity, https://api.carbonintensity.org.uk)"


# --- failures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    '{"data": [{"from": "2024-12-01T05:30Z", "intensity": {"forecast": 100, "actual": NaN}}]}',
    '{"data": [{"from": "2024-12-01T05:30Z", "intensity": {"forecast": -4, "actual": null}}]}',
    '{"data": [{"from": "2024-12-01T05:30Z", "intensity": {"actual": null}}]}',
    '{"data": [{"from": "2024-12-01T05:30Z"}]}',
    '{"data": [{"intensity": {"forecast": 100}}]}',
    '{"data": []}',
    '{"error": {"code": "400 Bad Request"}}',
    '{"data": "nope"}',
])
def test_bad_latest_payloads(server, make, body):
    server.script("/uk/intensity", body=body)
    with pytest.raises(ProviderResponseError):
        make().latest()


def test_forecast_skips_bad_periods_and_raises_when_none_is_usable(server, make):
    good = {**PERIOD, "intensity": {"forecast": 120, "actual": None, "index": "low"}}
    bad = {"from": "2024-12-01T06:00Z", "to": "2024-12-01T06:30Z",
           "intensity": {"forecast": -1, "actual": None}}
    server.script("/uk/intensity/", json_body={"data": [good, bad]})
    assert [r.g_per_kwh for r in make().forecast(2)] == [120.0]
    server.script("/uk/intensity/", json_body={"data": [bad]})
    with pytest.raises(ProviderResponseError, match="none of the 1 points"):
        make().forecast(2)


def test_html_and_500(server, make):
    server.script("/uk/intensity", body="<!DOCTYPE html><html>Bad gateway</html>", content_type="text/html")
    with pytest.raises(ProviderResponseError, match="HTML"):
        make().latest()
    server.script("/uk/intensity", 500, body="oops", times=None)
    with pytest.raises(ProviderServerError, match="/intensity"):
        make().latest()


def test_stale(server, make):
    old = {"from": "2024-12-01T02:00Z", "to": "2024-12-01T02:30Z",
           "intensity": {"forecast": 100, "actual": 100}}
    server.script("/uk/intensity", json_body={"data": [old]})
    with pytest.raises(StaleDataError):
        make().latest()


def test_cache_one_request_per_half_hour(server, make):
    p = make()
    for _ in range(5):
        p.latest()
        p.forecast(3)
    assert server.count("/uk/intensity") == 2
    server.clock.advance(1801)
    p.latest()
    p.forecast(3)
    assert server.count("/uk/intensity") == 4
