"""A tiny threaded HTTP server on 127.0.0.1 that speaks the three providers' documented JSON.

Mounted prefixes: ``/em/v3`` (Electricity Maps), ``/uk`` (Carbon Intensity API), ``/wt`` (WattTime).
Data are generated around the server's clock (a ``SimulatedClock`` shared with the provider), so
tests control time without sleeping. ``script()`` makes the next N matching requests fail (or
answer anything else); every request is recorded in ``requests``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chase_integrations.simulation.clock import SimulatedClock

START = "2024-12-01T05:40:00Z"
EM_TOKEN = "em-SECRET-token-1234567890"
WT_USER = "wt-user"
WT_PASSWORD = "wt-SECRET-password-0987654321"
WT_TOKEN_PREFIX = "wt-SECRET-bearer-"


def iso(dt: datetime, style: str = "em") -> str:
    if style == "uk":
        return dt.strftime("%Y-%m-%dT%H:%MZ")
    if style == "wt":
        return dt.isoformat()
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def floor(dt: datetime, seconds: int) -> datetime:
    epoch = int(dt.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=timezone.utc)


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Rule:
    prefix: str
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1  # None = forever
    delay_s: float = 0.0


class ProviderServer:
    """Start with ``with ProviderServer() as server:``; ``server.url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, clock: SimulatedClock | None = None) -> None:
        self.clock = clock or SimulatedClock(START)
        self.requests: list[Recorded] = []
        self.rules: list[Rule] = []
        self.em_forecast_in_plan = False
        self.wt_logins = 0
        self.wt_valid_tokens: set[str] = set()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- test controls -------------------------------------------------------------------------
    def script(self, prefix: str, status: int = 200, *, json_body: Any = None, body: str | None = None,
               content_type: str = "application/json", headers: dict[str, str] | None = None,
               times: int | None = 1, delay_s: float = 0.0) -> None:
        """Answer the next ``times`` requests whose path starts with ``prefix`` like this."""
        raw = json.dumps(json_body).encode() if json_body is not None else (body or "").encode()
        with self._lock:
            self.rules.append(Rule(prefix, status, raw, content_type, headers or {}, times, delay_s))

    def count(self, prefix: str) -> int:
        return sum(1 for r in self.requests if r.path.startswith(prefix))

    def last(self, prefix: str) -> Recorded:
        return [r for r in self.requests if r.path.startswith(prefix)][-1]

    # --- plumbing ------------------------------------------------------------------------------
    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                server.requests.append(Recorded(parts.path, query, dict(self.headers.items())))
                status, body, ctype, headers, delay_s = server._answer(parts.path, query, self.headers)
                if delay_s:
                    server._release.wait(delay_s)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def _answer(self, path: str, query: dict[str, str], headers) -> tuple:
        with self._lock:
            for rule in self.rules:
                if path.startswith(rule.prefix) and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.status, rule.body, rule.content_type, rule.headers, rule.delay_s
        try:
            status, payload = self._route(path, query, headers)
        except LookupError:
            status, payload = 404, {"error": f"no route {path}"}
        return status, json.dumps(payload).encode(), "application/json", {}, 0.0

    def _route(self, path: str, query: dict[str, str], headers) -> tuple[int, Any]:
        if path.startswith("/em/v3/"):
            return self._em(path[len("/em/v3"):], query, headers)
        if path.startswith("/uk/"):
            return 200, self._uk(path[len("/uk"):])
        if path.startswith("/wt/"):
            return self._wt(path[len("/wt"):], query, headers)
        raise LookupError(path)

    # --- Electricity Maps v3 -------------------------------------------------------------------
    def _em(self, path: str, query: dict[str, str], headers) -> tuple[int, Any]:
        if headers.get("auth-token") != EM_TOKEN:
            return 401, {"message": "Invalid authentication credentials"}
        zone = query.get("zone", "??")
        hour = floor(self.clock.now(), 3600)

        def point(t: datetime, value: float) -> dict:
            return {"zone": zone, "carbonIntensity": value, "datetime": iso(t), "updatedAt": iso(hour),
                    "createdAt": iso(hour), "emissionFactorType": query.get("emissionFactorType"),
                    "isEstimated": False, "estimationMethod": None}

        if path == "/carbon-intensity/latest":
            return 200, point(hour, 300)
        if path == "/carbon-intensity/history":
            return 200, {"zone": zone, "history": [point(hour - timedelta(hours=23 - i), 200 + i)
                                                   for i in range(24)]}
        if path == "/carbon-intensity/forecast":
            if not self.em_forecast_in_plan:
                return 403, {"message": "Your plan does not include access to this endpoint (forecast)."}
            return 200, {"zone": zone, "forecast": [{"carbonIntensity": 400 + i,
                                                     "datetime": iso(hour + timedelta(hours=i))}
                                                    for i in range(72)], "updatedAt": iso(hour)}
        raise LookupError(path)

    # --- UK Carbon Intensity API ---------------------------------------------------------------
    def _uk(self, path: str) -> Any:
        now = self.clock.now()
        half = floor(now, 1800)

        def period(t: datetime, value: float, actual: bool, regional: bool = False) -> dict:
            intensity: dict[str, Any] = {"forecast": value + 5, "index": "moderate"}
            if not regional:
                intensity["actual"] = value if actual else None
            p = {"from": iso(t, "uk"), "to": iso(t + timedelta(minutes=30), "uk"), "intensity": intensity}
            if regional:
                p["generationmix"] = [{"fuel": "gas", "perc": 43.6}, {"fuel": "wind", "perc": 56.4}]
            return p

        def region(periods: list, key: str, value: str) -> dict:
            r = {"regionid": 13, "dnoregion": "UKPN London", "shortname": "London", "data": periods}
            if key == "postcode":
                r["postcode"] = value
            return r

        if path == "/intensity":
            return {"data": [period(half, 180, actual=True)]}
        m = re.fullmatch(r"(/regional)?/intensity/([^/]+)/(fw24h|fw48h|pt24h)(?:/(regionid|postcode)/(\w+))?",
                         path)
        if m:
            regional, start, window, key, value = m.groups()
            t0 = datetime.strptime(start, "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc)
            if window == "pt24h":
                times = [t0 - timedelta(minutes=30 * (48 - i)) for i in range(48)]
            else:
                n = 48 if window == "fw24h" else 96
                times = [t0 + timedelta(minutes=30 * i) for i in range(n)]
            periods = [period(t, 100 + i, actual=t < half, regional=bool(regional))
                       for i, t in enumerate(times)]
            if regional:
                return {"data": region(periods, key, value)}
            return {"data": periods}
        m = re.fullmatch(r"/regional/(regionid|postcode)/(\w+)", path)
        if m:
            return {"data": [region([period(half, 150, actual=False, regional=True)], *m.groups())]}
        raise LookupError(path)

    # --- WattTime v3 ---------------------------------------------------------------------------
    def _wt(self, path: str, query: dict[str, str], headers) -> tuple[int, Any]:
        if path == "/login":
            expected = "Basic " + base64.b64encode(f"{WT_USER}:{WT_PASSWORD}".encode()).decode()
            if headers.get("Authorization") != expected:
                return 401, {"error": "invalid credentials"}
            self.wt_logins += 1
            token = f"{WT_TOKEN_PREFIX}{self.wt_logins}"
            self.wt_valid_tokens.add(token)
            return 200, {"token": token}
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in self.wt_valid_tokens:
            return 401, {"error": "Invalid or expired token"}
        now5 = floor(self.clock.now(), 300)
        meta = {"region": query.get("region"), "signal_type": query.get("signal_type"),
                "units": "lbs_co2_per_mwh", "model": {"date": "2023-03-01"}}
        if path == "/v3/forecast":
            n = int(query.get("horizon_hours", "24")) * 12
            data = [{"point_time": iso(now5 + timedelta(minutes=5 * i), "wt"), "value": 1000.0 + i}
                    for i in range(n)]
            return 200, {"data": data, "meta": {**meta, "generated_at": iso(now5, "wt"),
                                                "generated_at_period_seconds": 300}}
        if path == "/v3/historical":
            start = datetime.fromisoformat(query["start"])
            end = datetime.fromisoformat(query["end"])
            times, t = [], floor(start, 300)
            while t <= end:
                times.append(t)
                t += timedelta(minutes=5)
            return 200, {"data": [{"point_time": iso(t, "wt"), "value": 800.0} for t in times], "meta": meta}
        if path == "/v3/signal-index":
            return 200, {"data": [{"point_time": iso(now5, "wt"), "value": 42.0}],
                         "meta": {**meta, "units": "percentile"}}
        raise LookupError(path)
