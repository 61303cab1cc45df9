"""Non-root operation through Zeus's ``zeusd`` daemon, against a stand-in daemon on a local Unix socket.

What runs for real: Zeus's ``NVIDIAGPUs`` choosing ``ZeusdNVIDIAGPU`` because ``ZEUSD_SOCK_PATH`` is set,
Zeus's ``ZeusdClient`` (discovery over HTTP on the Unix socket, ``POST /gpu/set_power_limit``), and our
``PowerLimitController`` (remember, permission check, set, restore, error translation). What is replaced:
the NVML *reads* (``pynvml`` at the process boundary, with ``create_autospec``: device count, handle,
name, limit and constraints; the limit read back is the stand-in's state, as on a real node where zeusd
and NVML see the same GPU). Not covered: the real daemon's authorization (JWT scopes), energy reads.
"""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from unittest.mock import create_autospec
from urllib.parse import parse_qs, urlsplit

import pynvml
import pytest

from chase_integrations.errors import PowerControlError
from chase_integrations.power.limits import PowerLimitController


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class StandInZeusd:
    """The endpoints Zeus's client calls for discovery and power limits; records every request."""

    def __init__(self, socket_path: str, limit_mw: int = 300_000, constraints_mw=(100_000, 300_000)) -> None:
        self.socket_path = socket_path
        self.limit_mw = {0: limit_mw}
        self.constraints_mw = constraints_mw
        self.requests: list[tuple[str, str, dict]] = []
        self.fail_set_with: int | None = None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: dict | None = None) -> None:
                raw = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _record(self) -> tuple[str, dict]:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                stand_in.requests.append((self.command, parts.path, query))
                return parts.path, query

            def do_GET(self) -> None:
                path, _ = self._record()
                if path == "/discover":
                    self._reply(200, {"gpus": [{"id": 0, "name": "NVIDIA A40 (stand-in)"}], "cpus": [],
                                      "enabled_api_groups": ["gpu-read", "gpu-control"], "auth_required": False})
                else:
                    self._reply(404, {"error": path})

            def do_POST(self) -> None:
                path, query = self._record()
                if path != "/gpu/set_power_limit":
                    self._reply(404, {"error": path})
                elif stand_in.fail_set_with is not None:
                    self._reply(stand_in.fail_set_with, {"error": "stand-in refuses"})
                else:
                    for i in query["gpu_ids"].split(","):
                        stand_in.limit_mw[int(i)] = int(query["power_limit_mw"])
                    self._reply(200)

            def address_string(self) -> str:
                return "uds"

            def log_message(self, *args) -> None:
                pass

        self._server = _UnixHTTPServer(socket_path, Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> StandInZeusd:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sets_mw(self) -> list[int]:
        return [int(q["power_limit_mw"]) for m, p, q in self.requests if p == "/gpu/set_power_limit"]


@pytest.fixture
def zeusd(tmp_path_factory, monkeypatch):
    import tempfile

    folder = tempfile.mkdtemp(prefix="zeusd")  # short: AF_UNIX paths are limited to ~107 bytes
    path = f"{folder}/zeusd.sock"
    with StandInZeusd(path) as daemon:
        monkeypatch.setenv("ZEUSD_SOCK_PATH", path)
        monkeypatch.delenv("ZEUSD_HOST_PORT", raising=False)
        monkeypatch.delenv("ZEUSD_TOKEN", raising=False)
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        _fake_nvml_reads(monkeypatch, daemon)
        yield daemon


def _fake_nvml_reads(monkeypatch, daemon: StandInZeusd) -> None:
    """NVML reads at the pynvml boundary, autospecced; the limit read is what the daemon last set."""
    handle = object()

    class C2c:
        isC2cEnabled = False

    fakes = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda index: handle,
        "nvmlDeviceGetC2cModeInfoV": lambda h: C2c(),
        "nvmlDeviceGetName": lambda h: "NVIDIA A40 (stand-in)",
        "nvmlDeviceGetPowerManagementLimit": lambda h: daemon.limit_mw[0],
        "nvmlDeviceGetPowerManagementLimitConstraints": lambda h: list(daemon.constraints_mw),
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(pynvml, name, create_autospec(getattr(pynvml, name), side_effect=fake))


def _zeus_gpus():
    from zeus.device.gpu.nvidia import NVIDIAGPUs, ZeusdNVIDIAGPU

    gpus = NVIDIAGPUs()
    assert isinstance(gpus.gpus[0], ZeusdNVIDIAGPU)  # chosen by Zeus because ZEUSD_SOCK_PATH is set
    return gpus


def test_set_and_restore_go_through_zeusd_in_milliwatts(zeusd):
    gpus = _zeus_gpus()
    assert zeusd.requests[0][:2] == ("GET", "/discover")
    ctl = PowerLimitController(gpus, [0])
    assert ctl.remember_originals() == {0: 300}
    assert ctl.constraints_w() == (100, 300)
    ctl.check_permission()  # writes the current limit back: Zeus skips an unchanged limit, so no request
    assert zeusd.sets_mw() == []
    ctl.set_all_w(225)
    assert zeusd.sets_mw() == [225_000] and ctl.current_limits_w() == {0: 225}
    assert ctl.restore() == [] and ctl.restored
    assert zeusd.sets_mw() == [225_000, 300_000]
    sets = [q for m, p, q in zeusd.requests if p == "/gpu/set_power_limit"]
    assert all(q["gpu_ids"] == "0" and q["block"] == "true" for q in sets)
    assert ctl.restore() == [] and zeusd.sets_mw() == [225_000, 300_000]  # idempotent


@pytest.mark.parametrize("status", [403, 500])
def test_daemon_refusal_is_a_power_control_error(zeusd, status):
    ctl = PowerLimitController(_zeus_gpus(), [0])
    ctl.remember_originals()
    zeusd.fail_set_with = status
    with pytest.raises(PowerControlError, match="ZeusdError"):
        ctl.set_all_w(200)
    assert ctl.restore() == []  # nothing changed, nothing to write
    assert zeusd.limit_mw[0] == 300_000


def test_session_over_zeusd_sets_and_restores(zeusd, monkeypatch):
    """The engine's start/decide/end on Zeus's zeusd GPUs (energy windows stubbed: no NVML energy here)."""
    from chase_integrations.carbon import StaticProvider
    from chase_integrations.core.collective import LocalCollective
    from chase_integrations.core.config import ChaseConfig
    from chase_integrations.core.session import ChaseSession, RunContext
    from chase_integrations.power import meter

    class NoEnergy:
        anomalies: list = []

        def __init__(self, *args, **kwargs) -> None:
            pass

        def begin(self, name) -> None:
            pass

        def end(self, name):
            return meter.EnergyReading(0.0, True)

    monkeypatch.setattr(meter, "EnergyMeter", NoEnergy)
    session = ChaseSession(ChaseConfig(provider=StaticProvider(300.0), gpus=_zeus_gpus(), policy="static",
                                       static_power_limit_w=200, profile_warmup_steps=0, profile_measure_steps=1,
                                       profile_min_window_s=0))
    session.start(RunContext([0], LocalCollective(), total_steps=10))
    for _ in range(4):
        session.step_end()
    session.end()
    assert 200_000 in zeusd.sets_mw() and zeusd.sets_mw()[-1] == 300_000 and zeusd.limit_mw[0] == 300_000
    assert session.mode == "active"
