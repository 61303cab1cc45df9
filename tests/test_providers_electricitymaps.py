"""ElectricityMapsProvider against a local server speaking API v3."""

from __future__ import annotations

import itertools
import json
import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from chase_integrations.carbon import ElectricityMapsProvider
from chase_integrations.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderNotInPlanError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderServerError,
    StaleDataError,
)
from chase_integrations.simulation.clock import SimulatedClock
from tests.provider_server import EM_TOKEN, ProviderServer

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CHASE_DATA_DIR", REPO_ROOT / ".." / "shared" / "data"))


@pytest.fixture
def server():
    with ProviderServer() as s:
        yield s


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make(server, sleeps):
    made = []

    def _make(**kwargs):
        kwargs = {"zone": "DE", "token": EM_TOKEN, "base_url": server.url + "/em/v3", "clock": server.clock,
                  "sleep": sleeps.append, **kwargs}
        made.append(ElectricityMapsProvider(**kwargs))
        return made[-1]

    yield _make
    for p in made:
        p.close()


# --- happy paths -----------------------------------------------------------------------------------
def test_latest_sends_documented_request(server, make):
    reading = make().latest()
    assert reading.g_per_kwh == 300.0 and reading.signal == "average" and not reading.is_forecast
    assert reading.time == datetime(2024, 12, 1, 5, tzinfo=timezone.utc)
    request = server.last("/em/v3/carbon-intensity/latest")
    assert request.headers["auth-token"] == EM_TOKEN
    assert request.query == {"zone": "DE", "emissionFactorType": "lifecycle", "disableEstimations": "false",
                             "shouldUseFallbackCallerLookup": "false"}


def test_direct_emissions_and_no_estimations(server, make):
    make(emission_factor="direct", disable_estimations=True).history()
    query = server.last("/em/v3/carbon-intensity/history").query
    assert query["emissionFactorType"] == "direct" and query["disableEstimations"] == "true"
    assert query["shouldUseFallbackCallerLookup"] == "false"


def test_history_is_hourly_oldest_first_and_cut_to_hours(make):
    p = make()
    full = p.history()
    assert len(full) == 24 and [r.g_per_kwh for r in full] == [200.0 + i for i in range(24)]
    assert all(b.time - a.time == timedelta(hours=1) for a, b in itertools.pairwise(full))
    # 02:00-03:00 overlaps the 3 h before 05:40, so it is included
    assert [r.g_per_kwh for r in p.history(hours=3)] == [220.0, 221.0, 222.0, 223.0]
    assert len(p.history(hours=48)) == 24  # the endpoint covers 24 h


def test_token_from_environment(monkeypatch, server):
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", EM_TOKEN)
    with ElectricityMapsProvider(zone="FR", base_url=server.url + "/em/v3", clock=server.clock) as p:
        assert p.latest().g_per_kwh == 300.0
    assert server.last("/em").query["zone"] == "FR"


def test_base_url_is_configurable_for_v4(server):
    server.script("/em/v4/carbon-intensity/latest",
                  json_body={"zone": "DE", "carbonIntensity": 123, "datetime": "2024-12-01T05:00:00.000Z"})
    with ElectricityMapsProvider(token=EM_TOKEN, base_url=server.url + "/em/v4/", clock=server.clock) as p:
        assert p.latest().g_per_kwh == 123.0


# --- configuration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("zone", [None, "", "  ", 7])
def test_zone_is_required(zone):
    with pytest.raises(ConfigurationError, match="`zone`"):
        ElectricityMapsProvider(zone=zone, token="t")


def test_token_is_required(monkeypatch):
    monkeypatch.delenv("ELECTRICITYMAPS_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="ELECTRICITYMAPS_API_TOKEN"):
        ElectricityMapsProvider(zone="DE")


@pytest.mark.parametrize(("kwargs", "argument"), [({"emission_factor": "operational"}, "emission_factor"),
                                                  ({"disable_estimations": "yes"}, "disable_estimations"),
                                                  ({"timeout_s": -1}, "timeout_s"),
                                                  ({"max_age_s": float("nan")}, "max_age_s"),
                                                  ({"cache_ttl_s": -5}, "cache_ttl_s")])
def test_bad_options_name_the_argument(kwargs, argument):
    with pytest.raises(ConfigurationError, match=f"`{argument}`"):
        ElectricityMapsProvider(zone="DE", token="t", **kwargs)


def test_describe_and_repr_are_secret_free(make):
    p = make(zone="US-CAL-CISO", emission_factor="direct")
    for text in (p.describe(), repr(p), json.dumps(p.describe())):
        assert EM_TOKEN not in text and "US-CAL-CISO" in text and "direct" in text and "average" in text


# --- forecast ----------------------------------------------------------------------------------------
def test_forecast_not_in_plan_is_empty_with_one_warning(server, make, caplog):
    p = make()
    with caplog.at_level(logging.WARNING, logger="chase_integrations"):
        assert p.forecast(24) == [] and p.forecast(24) == []
    warnings = [r for r in caplog.records if "not in this account's plan" in r.getMessage()]
    assert len(warnings) == 1
    assert server.count("/em/v3/carbon-intensity/forecast") == 1  # never asks again


def test_forecast_not_in_plan_can_raise(make):
    with pytest.raises(ProviderNotInPlanError, match="not in your plan"):
        make(raise_not_in_plan=True).forecast(24)


def test_forecast_in_plan(server, make):
    server.em_forecast_in_plan = True
    readings = make().forecast(6)
    assert [r.g_per_kwh for r in readings] == [400.0 + i for i in range(7)]  # 05:00 .. 11:00 overlap 6 h
    assert all(r.is_forecast for r in readings)


# --- failures ----------------------------------------------------------------------------------------
def test_wrong_token_is_an_auth_error_with_a_hint(make):
    with pytest.raises(ProviderAuthError, match="ELECTRICITYMAPS_API_TOKEN") as info:
        make(token="wrong-token").latest()
    assert "401" in str(info.value) and "/carbon-intensity/latest" in str(info.value)


def test_429_with_retry_after(server, make, sleeps):
    server.script("/em/v3/carbon-intensity/latest", 429, body="rate limited", headers={"Retry-After": "2"})
    assert make().latest().g_per_kwh == 300.0
    assert sleeps == [2.0] and server.count("/em/v3/carbon-intensity/latest") == 2


def test_429_forever_is_a_rate_limit_error(server, make, sleeps):
    server.script("/em/v3/carbon-intensity/latest", 429, body="rate limited", times=None)
    with pytest.raises(ProviderRateLimitError):
        make(retries=2).latest()
    assert len(sleeps) == 2


def test_500_is_a_server_error_after_retries(server, make):
    server.script("/em/v3/carbon-intensity/latest", 500, body="Internal Server Error", times=None)
    with pytest.raises(ProviderServerError, match="500"):
        make().latest()
    assert server.count("/em/v3/carbon-intensity/latest") == 3


def test_html_instead_of_json(server, make):
    server.script("/em/v3/carbon-intensity/latest", body="<html><body>Maintenance</body></html>",
                  content_type="text/html")
    with pytest.raises(ProviderResponseError, match="HTML"):
        make().latest()


LATEST_TIME = "2024-12-01T05:00:00.000Z"


@pytest.mark.parametrize("payload", [
    {"zone": "DE", "carbonIntensity": None, "datetime": LATEST_TIME},
    {"zone": "DE", "carbonIntensity": -3, "datetime": LATEST_TIME},
    {"zone": "DE", "carbonIntensity": "300", "datetime": LATEST_TIME},
    {"zone": "DE", "datetime": LATEST_TIME},
    {"zone": "DE", "carbonIntensity": 300},
    {"zone": "DE", "carbonIntensity": 300, "datetime": "yesterday"},
    {"zone": "FR", "carbonIntensity": 300, "datetime": LATEST_TIME},
    [1, 2, 3],
])
def test_bad_latest_payloads_are_response_errors(server, make, payload):
    server.script("/em/v3/carbon-intensity/latest", json_body=payload)
    with pytest.raises(ProviderResponseError):
        make().latest()


def test_nan_latest_is_a_response_error(server, make):
    server.script("/em/v3/carbon-intensity/latest",
                  body=f'{{"zone": "DE", "carbonIntensity": NaN, "datetime": "{LATEST_TIME}"}}')
    with pytest.raises(ProviderResponseError, match=r"NaN|nan"):
        make().latest()


def test_history_skips_bad_points_and_raises_when_none_is_usable(server, make, caplog):
    good = {"carbonIntensity": 250, "datetime": LATEST_TIME}
    bad = [{"carbonIntensity": -1, "datetime": "2024-12-01T03:00:00.000Z"},
           {"carbonIntensity": None, "datetime": "2024-12-01T04:00:00.000Z"}]
    server.script("/em/v3/carbon-intensity/history", json_body={"zone": "DE", "history": [*bad, good]})
    with caplog.at_level(logging.WARNING):
        assert [r.g_per_kwh for r in make().history()] == [250.0]
    assert "skipped 2 unusable point(s)" in caplog.text
    server.script("/em/v3/carbon-intensity/history", json_body={"zone": "DE", "history": bad})
    with pytest.raises(ProviderResponseError, match="none of the 2 points"):
        make().history()
    server.script("/em/v3/carbon-intensity/history", json_body={"zone": "DE"})
    with pytest.raises(ProviderResponseError, match="history"):
        make().history()


def test_stale_latest(server, make):
    server.script("/em/v3/carbon-intensity/latest",
                  json_body={"zone": "DE", "carbonIntensity": 300, "datetime": "2024-12-01T02:00:00.000Z"})
    with pytest.raises(StaleDataError, match=r"3\.7 h old"):
        make().latest()


def test_latest_goes_stale_on_the_clock(server, make):
    server.script("/em/v3/carbon-intensity/latest", times=None,
                  json_body={"zone": "DE", "carbonIntensity": 300, "datetime": LATEST_TIME})
    p = make()
    p.latest()
    server.clock.advance(3 * 3600)
    with pytest.raises(StaleDataError):
        p.latest()


# --- cache -----------------------------------------------------------------------------------------
def test_cache_bounds_requests_to_one_per_resolution(server, make):
    p = make()
    for _ in range(10):
        p.latest()
        p.history()
    assert server.count("/em/v3/carbon-intensity/latest") == 1
    assert server.count("/em/v3/carbon-intensity/history") == 1
    server.clock.advance(3599)
    p.latest()
    assert server.count("/em/v3/carbon-intensity/latest") == 1
    server.clock.advance(2)
    p.latest()
    assert server.count("/em/v3/carbon-intensity/latest") == 2
    assert p.requests_sent == 3


def test_cache_ttl_never_below_resolution_and_follows_decision_interval(server, make):
    assert make(cache_ttl_s=60).cache_ttl_s == 3600
    p = make(cache_ttl_s=7200)
    p.latest()
    server.clock.advance(3601)
    p.latest()
    assert server.count("/em/v3/carbon-intensity/latest") == 1


def test_context_manager_closes(make):
    p = make()
    with p:
        p.latest()
        assert p._client._client is not None
    assert p._client._client is None
    p.close()  # idempotent


# --- the real /history responses in the shared data folder -----------------------------------------------
@pytest.mark.data
@pytest.mark.parametrize("name", ["carbon_history_file1.json", "carbon_history_file2.json"])
def test_real_history_responses(name):
    path = DATA_DIR / "providers" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (set CHASE_DATA_DIR to the shared data folder)")
    payload = json.loads(path.read_text())
    points = payload["history"]
    last = datetime.fromisoformat(points[-1]["datetime"].replace("Z", "+00:00"))
    clock = SimulatedClock(last + timedelta(minutes=30))
    with ProviderServer(clock) as server:
        server.script("/em/v3/carbon-intensity/history", json_body=payload)
        server.script("/em/v3/carbon-intensity/latest", json_body=points[-1])
        with ElectricityMapsProvider(zone=payload["zone"], token=EM_TOKEN, base_url=server.url + "/em/v3",
                                     clock=clock) as p:
            readings = p.history()
            latest = p.latest()
    assert [r.g_per_kwh for r in readings] == [float(x["carbonIntensity"]) for x in points]
    assert readings[-1].time == last and latest.time == last
    assert all(b.time - a.time == timedelta(hours=1) for a, b in itertools.pairwise(readings))
    assert all(r.signal == "average" and not r.is_forecast for r in readings)
