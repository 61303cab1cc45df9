"""The shared HTTP client: base_url policy, retries, error mapping, cache, secrets."""

from __future__ import annotations

import json
import logging
import pickle
import socket

import httpx
import pytest

from chase_integrations.carbon import ElectricityMapsProvider, UKCarbonIntensityProvider, WattTimeProvider
from chase_integrations.carbon._http import HttpClient, Secret, retry_after_s, validate_base_url
from chase_integrations.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
)
from chase_integrations.simulation.clock import SimulatedClock
from tests.provider_server import EM_TOKEN, WT_PASSWORD, WT_TOKEN_PREFIX, WT_USER, ProviderServer

SECRET = "s3cr3t-VALUE-xyz"


def make_client(handler, *, sleeps=None, clock=None, **kwargs) -> HttpClient:
    sleeps = sleeps if sleeps is not None else []
    return HttpClient(
        "test", "https://api.example.org/v1", transport=httpx.MockTransport(handler),
        sleep=sleeps.append, clock=clock or SimulatedClock("2024-01-01T00:00:00Z"),
        secrets=lambda: (SECRET,), **kwargs,
    )


def responses(*items):
    """A MockTransport handler answering the given (status, body, headers) in turn; counts calls."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        status, body, headers = items[min(len(calls), len(items)) - 1]
        if isinstance(body, (dict, list)):
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(status, text=body, headers=headers)

    handler.calls = calls
    return handler


# --- base_url policy ------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["https://api.electricitymap.org/v3", "http://127.0.0.1:8080",
                                 "http://127.9.9.9/x", "http://localhost:1/", "http://[::1]:99/"])
def test_base_url_accepts_https_and_loopback_http(url):
    assert validate_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://api.electricitymap.org/v3", "http://10.0.0.1", "http://128.0.0.1",
                                 "http://localhost.evil.com", "ftp://127.0.0.1", "https://", "", None])
def test_base_url_refuses_plain_http_to_remote_hosts(url):
    with pytest.raises(ConfigurationError, match="base_url"):
        validate_base_url(url)


def test_base_url_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(ConfigurationError, match="base_url") as info:
        validate_base_url(f"https://user:{SECRET}@api.example.org")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("make", [
    lambda url: ElectricityMapsProvider(zone="DE", token="t", base_url=url),
    lambda url: UKCarbonIntensityProvider(base_url=url),
    lambda url: WattTimeProvider(username="u", password="p", base_url=url),
])
def test_every_provider_refuses_plain_http_to_a_remote_host(make):
    with pytest.raises(ConfigurationError, match="base_url"):
        make("http://api.example.org")


# --- Secret -----------------------------------------------------------------------------------------
def test_secret_hides_itself():
    s = Secret(SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in f"{s}"
    with pytest.raises(TypeError):
        json.dumps({"token": s})
    assert s.reveal() == SECRET
    assert pickle.loads(pickle.dumps(s)).reveal() == SECRET  # travels to spawned processes


@pytest.mark.parametrize("make", [
    lambda: ElectricityMapsProvider(zone="DE", token=SECRET),
    lambda: UKCarbonIntensityProvider(region_id=13),
    lambda: WattTimeProvider(username="u", password=SECRET),
])
def test_providers_pickle_for_spawned_processes(make):
    p = make()
    p._client._http()  # an open pool does not travel
    clone = pickle.loads(pickle.dumps(p))
    assert clone.describe() == p.describe() and clone._client._client is None
    p.close()


# --- Retry-After ------------------------------------------------------------------------------------
def test_retry_after_parses_seconds_and_dates():
    assert retry_after_s("7", 0) == 7
    assert retry_after_s("Thu, 01 Jan 1970 00:00:30 GMT", 0) == 30
    assert retry_after_s("-5", 0) == 0
    assert retry_after_s("soon", 0) is None
    assert retry_after_s(None, 0) is None


# --- retries and error mapping (MockTransport) ------------------------------------------------------
def test_429_honours_retry_after_then_succeeds():
    handler = responses((429, "slow down", {"Retry-After": "7"}), (200, {"ok": 1}, {}))
    sleeps: list[float] = []
    assert make_client(handler, sleeps=sleeps).get_json("/x") == {"ok": 1}
    assert sleeps == [7.0] and len(handler.calls) == 2


def test_retry_after_is_capped():
    handler = responses((429, "", {"Retry-After": "3600"}), (200, {"ok": 1}, {}))
    sleeps: list[float] = []
    make_client(handler, sleeps=sleeps, max_retry_wait_s=5).get_json("/x")
    assert sleeps == [5.0]


def test_5xx_backs_off_exponentially_then_succeeds():
    handler = responses((500, "oops", {}), (503, "oops", {}), (200, {"ok": 1}, {}))
    sleeps: list[float] = []
    assert make_client(handler, sleeps=sleeps, backoff_s=0.5).get_json("/x") == {"ok": 1}
    assert sleeps == [0.5, 1.0]


def test_5xx_after_retries_is_a_server_error_with_status_path_and_body():
    handler = responses((502, "upstream exploded " + "x" * 500, {}))
    with pytest.raises(ProviderServerError) as info:
        make_client(handler, retries=2).get_json("/carbon/latest")
    message = str(info.value)
    assert "502" in message and "/carbon/latest" in message and "upstream exploded" in message
    assert len(message) < 400  # the body is truncated
    assert len(handler.calls) == 3


def test_429_after_retries_is_a_rate_limit_error():
    handler = responses((429, "too many", {"Retry-After": "1"}))
    with pytest.raises(ProviderRateLimitError, match="429"):
        make_client(handler, retries=1).get_json("/x")
    assert len(handler.calls) == 2


@pytest.mark.parametrize(("status", "error"), [(401, ProviderAuthError), (403, ProviderAuthError),
                                               (404, ProviderResponseError), (400, ProviderResponseError)])
def test_client_errors_are_not_retried(status, error):
    handler = responses((status, {"message": "no"}, {}))
    sleeps: list[float] = []
    with pytest.raises(error, match=str(status)):
        make_client(handler, sleeps=sleeps).get_json("/x")
    assert len(handler.calls) == 1 and sleeps == []


@pytest.mark.parametrize("body", ["<!DOCTYPE html><html><body>Login</body></html>", "not json at all", ""])
def test_non_json_bodies_are_response_errors(body):
    ctype = "text/html" if body.startswith("<") else "text/plain"
    handler = responses((200, body, {"Content-Type": ctype}))
    with pytest.raises(ProviderResponseError, match="/x"):
        make_client(handler).get_json("/x")


@pytest.mark.parametrize(("exc", "error"), [(httpx.ReadTimeout, ProviderTimeoutError),
                                            (httpx.ConnectTimeout, ProviderTimeoutError),
                                            (httpx.ConnectError, ProviderConnectionError),
                                            (httpx.RemoteProtocolError, ProviderConnectionError)])
def test_transport_failures_are_mapped(exc, error):
    def handler(request):
        raise exc("boom", request=request)

    with pytest.raises(error, match="/x"):
        make_client(handler).get_json("/x")


def test_secrets_are_scrubbed_from_error_messages():
    handler = responses((401, {"message": f"token {SECRET} is invalid"}, {}))
    with pytest.raises(ProviderAuthError) as info:
        make_client(handler).get_json("/x")
    assert SECRET not in str(info.value) and "***" in str(info.value)


def test_timeouts_are_explicit():
    client = make_client(responses((200, {}, {})), timeout_s=2.5)
    assert client._http().timeout == httpx.Timeout(2.5)
    with pytest.raises(ConfigurationError, match="timeout_s"):
        make_client(responses((200, {}, {})), timeout_s=0)


# --- cache --------------------------------------------------------------------------------------------
def test_cache_sends_one_request_per_ttl():
    clock = SimulatedClock("2024-01-01T00:00:00Z")
    handler = responses((200, {"v": 1}, {}))
    client = make_client(handler, clock=clock)
    for _ in range(5):
        client.get_json("/x", {"a": 1}, ttl_s=60)
    assert len(handler.calls) == 1
    client.get_json("/x", {"a": 2}, ttl_s=60)  # other parameters, other entry
    assert len(handler.calls) == 2
    clock.advance(61)
    client.get_json("/x", {"a": 1}, ttl_s=60)
    assert len(handler.calls) == 3
    client.get_json("/y", ttl_s=0)
    client.get_json("/y", ttl_s=0)
    assert len(handler.calls) == 5


def test_failures_are_not_cached():
    handler = responses((500, "", {}), (200, {"v": 1}, {}))
    client = make_client(handler, retries=0)
    with pytest.raises(ProviderServerError):
        client.get_json("/x", ttl_s=60)
    assert client.get_json("/x", ttl_s=60) == {"v": 1}


# --- against a real local server ------------------------------------------------------------------------
@pytest.fixture
def server():
    with ProviderServer() as s:
        yield s


def test_real_timeout_is_a_timeout_error(server):
    server.script("/uk/intensity", json_body={"data": []}, delay_s=0.5)
    p = UKCarbonIntensityProvider(base_url=server.url + "/uk", timeout_s=0.05, clock=server.clock)
    with pytest.raises(ProviderTimeoutError, match=r"0\.05 s"):
        p.latest()


def test_connection_refused_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = UKCarbonIntensityProvider(base_url=f"http://127.0.0.1:{port}", retries=0)
    with pytest.raises(ProviderConnectionError, match="could not reach"):
        p.latest()


# --- no secret anywhere -----------------------------------------------------------------------------------
def test_no_token_or_password_in_any_message_log_or_repr(server, caplog, monkeypatch):
    """Drive every provider through successes and failures; scan all text they produce."""
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    sleeps: list[float] = []
    common = {"clock": server.clock, "sleep": sleeps.append, "retries": 1}
    em = ElectricityMapsProvider(zone="DE", token=EM_TOKEN, base_url=server.url + "/em/v3", **common)
    monkeypatch.setenv("WATTTIME_USERNAME", WT_USER)
    monkeypatch.setenv("WATTTIME_PASSWORD", WT_PASSWORD)
    wt = WattTimeProvider(base_url=server.url + "/wt", **common)
    texts: list[str] = []

    def attempt(call):
        try:
            texts.append(repr(call()))
        except ProviderError as e:
            texts.extend([str(e), repr(e), str(e.__cause__ or ""), repr(e.__cause__ or "")])

    for p, prefix, echo in ((em, "/em/v3/carbon", EM_TOKEN), (wt, "/wt/v3", WT_PASSWORD)):
        attempt(p.latest)
        attempt(lambda p=p: p.forecast(6))
        for status, body in ((401, f'{{"message": "bad credentials {echo}"}}'),
                             (429, "slow"), (500, "down"), (200, "<html>login</html>"), (403, "plan")):
            server.script(prefix, status, body=body, times=4)
            p._client.clear_cache()
            attempt(p.latest)
            attempt(lambda p=p: p.history(2))
            server.rules.clear()
        texts += [repr(p), p.describe(), json.dumps(p.describe()), repr(vars(p)), repr(p._client)]
    wrong = WattTimeProvider(username=WT_USER, password="wrong-" + WT_PASSWORD,
                             base_url=server.url + "/wt", **common)
    attempt(wrong.latest)
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert server.wt_logins >= 2 and len(texts) > 40
    tokens = [f"{WT_TOKEN_PREFIX}{i}" for i in range(1, server.wt_logins + 1)]
    for secret in [EM_TOKEN, WT_PASSWORD, *tokens]:
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"{secret!r} leaked: {leaks[:2]}"
