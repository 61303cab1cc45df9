"""The provider is down for a whole run, in each framework: training finishes, fallbacks are counted,
and the number of requests stays bounded (cache + bounded retries, never a request storm)."""

from __future__ import annotations

import json

import pytest

from chase_integrations.carbon import ElectricityMapsProvider
from tests.faults_helpers import callback_options, make_callback, run
from tests.provider_server import START, ProviderServer


@pytest.mark.parametrize("adapter", ["lightning", "hf"])
@pytest.mark.parametrize("failure", [500, "refused"])
def test_provider_down_for_the_whole_run(adapter, failure, make_sim, tmp_path):
    sim = make_sim(start=START, trace=None)  # the GPU and clock only: intensity comes from the local server
    with ProviderServer(clock=sim.clock) as server:
        if failure == "refused":
            url = server.url
            server.__exit__(None, None, None)  # nothing listens there any more: connection refused
        else:
            url = server.url
            server.script("/em/v3", status=500, body="upstream down", times=None)
        provider = ElectricityMapsProvider(zone="DE", token="em-test-token", base_url=url + "/em/v3",
                                           clock=sim.clock, sleep=lambda s: None, retries=2)
        cb = make_callback(adapter, **callback_options(sim, tmp_path, provider=provider, policy="chase",
                                                       fallback_intensity_g_per_kwh=321.0))
        outcome = run(adapter, tmp_path, cb, epochs=3, steps=20)
        requests = server.count("/em/v3")
    assert outcome.steps == 60 and outcome.error is None
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "finished"
    assert report["fallbacks"] >= len(report["intervals"]) > 0  # every interval fell back (plus discarded empty ones)
    assert set(report["fallbacks_by_kind"]) <= {"forecast", "last_known", "static"}
    assert all(iv["intensity_g_per_kwh"] == 321.0 for iv in report["intervals"])  # nothing known: the static value
    assert sum(1 for w in outcome.warnings if "unavailable" in w or "failed" in w) <= 2  # loud once per kind
    decisions = len(report["intervals"])
    if failure == 500:
        # per decision at most: latest + history, each 1 try + 2 retries; far below one request per step
        assert 0 < requests <= decisions * 2 * 3
        assert requests < 60
