"""Offline ``simulate()``: one training job over a carbon trace, through the real engine.

``simulate`` drives the same :class:`~chase_integrations.core.session.ChaseSession` the callbacks
use, over a :class:`~chase_integrations.simulation.Simulation` (simulated GPU, clock and trace
provider), without a training framework: it calls ``step_end()`` once per optimizer step and
``epoch_end()`` at each epoch boundary, like the Lightning adapter does. So the decisions, the energy
metering (a real ``ZeusMonitor`` over the simulated GPU) and the ledger are the live callback's.

Differences from a live run, all deliberate:

* ``profile="live"`` (default) is a first run: the engine profiles the candidate limits on simulated
  steps, as a live run does, and that time counts. ``profile="preloaded"`` is a repeat run: the simulated
  GPU's own per-step profile is passed to the session's constructor, so there is no profiling phase. The
  references (``default``, ``zeus``, ``oracle``) always know the profile.
* A "step" is a slice of the profiled epoch ``step_s`` long (default 60 s at the default limit): the
  engine decides at step boundaries, so decisions land within one step of where a real run's would.
* ``baseline_*`` is the same job run at the default limit from the same start (an exact closed form of
  what the engine accounts for ``policy="default"``); the live callback's in-run estimate (measured
  energy scaled by the profile, at the intervals' intensities) is ``estimated_baseline_carbon_g``.

Policies: the engine's ``budget``, ``chase`` and ``static``, plus ``default`` (the highest limit,
never changed), ``zeus`` (the static limit Zeus's ``GlobalPowerLimitOptimizer`` picks by default)
and ``oracle`` (the least-carbon schedule within the same slowdown budget computed with the true
trace: a reference, not a feature). ``monitor`` is accepted as a synonym of ``default``.

Example:
    >>> result = simulate(trace=TRACE_CSV, gpu_profile=PROFILE_CSV, workload="imagenet/resnet50",
    ...                   batch_size=256, job_hours=30, start="2023-03-01T00:00:00Z", policy="budget",
    ...                   max_slowdown=0.05, forecaster="persistence")  # doctest: +SKIP
    >>> round(result.carbon_reduction, 3), round(result.time_increase, 3)  # doctest: +SKIP
    (0.168, 0.05)
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from chase_integrations.carbon.formats import SIMULATION_ARGUMENTS
from chase_integrations.carbon.reading import IntensityReading
from chase_integrations.carbon.trace import _STALE_AFTER_S, TraceProvider
from chase_integrations.core.collective import LocalCollective
from chase_integrations.core.config import ChaseConfig, check_max_slowdown
from chase_integrations.core.report import write_report
from chase_integrations.core.session import ChaseSession, RunContext
from chase_integrations.datasets import gpu_profile_path, trace_path
from chase_integrations.errors import ConfigurationError
from chase_integrations.forecast import Forecaster, make_forecaster
from chase_integrations.simulation.baseline import exact_baseline, with_exact_baseline
from chase_integrations.simulation.clock import parse_utc
from chase_integrations.simulation.gpu_profile import EpochProfile, load_gpu_profile
from chase_integrations.simulation.oracle import (
    DefaultPolicy,
    OraclePolicy,
    ZeusPolicy,
    true_hourly_means,
    zeus_power_limit,
)
from chase_integrations.simulation.simulation import Simulation

SIMULATE_POLICIES = ("budget", "chase", "static", "default", "zeus", "oracle", "monitor")
#: ``profile="live"``: a first run (the engine profiles); ``"preloaded"``: a repeat run (the profile is known).
PROFILE_MODES = ("live", "preloaded")
#: Length of one simulated step at the default limit, s (see the module docstring).
DEFAULT_STEP_S = 60.0
#: Forecaster the engine is given where the policy ignores forecasts (it is only logged there).
_CHEAP_FORECASTER = "persistence"


@dataclass
class SimulationResult:
    """What :func:`simulate` returns. Fractions are fractions (0.136, not 13.6).

    Attributes:
        policy: The policy simulated.
        carbon_g / energy_j / time_s: The job's operational emissions (gCO2eq) and energy (J) of
            ``scope``, and its duration (s), from the engine's ledger.
        baseline_carbon_g / baseline_energy_j / baseline_time_s: The same job at the default limit
            from the same start (exact: the whole job replayed at that limit), same scope.
        carbon_reduction: ``1 - (carbon_g + embodied_carbon_g) / (baseline_carbon_g + baseline_embodied_carbon_g)``.
        time_increase: ``time_s / baseline_time_s - 1``.
        decisions: One ``{"time", "power_limit_w", "forecast_g_per_kwh"}`` per decision the engine made.
        estimated_baseline_carbon_g: The engine's own in-run estimate of the baseline (what the live
            callback reports as ``baseline_carbon_g``).
        power_limit_w: The limit of static policies (``static``, ``default``, ``zeus``), else ``None``.
        steps / steps_per_epoch: Simulated optimizer steps and steps per profiled epoch.
        forecaster: The forecaster the decisions used (``None`` where the policy uses none).
        fallbacks: Intensity fallbacks the engine counted (non-zero when the trace has gaps).
        report: The engine's full run report (docs/metrics.md), when ``keep_report=True``.
        scope: What ``carbon_g`` covers: ``"gpu"`` or ``"node"`` (``host_power_w`` given).
        gpu_carbon_g / gpu_carbon_reduction: The GPUs alone, against the exact baseline's GPUs.
        embodied_carbon_g / baseline_embodied_carbon_g: Embodied emissions of the run and of the baseline.
        estimated_carbon_reduction: The engine's in-run estimate (what the run's report says), beside the
            exact ``carbon_reduction``.
        internal_errors / degraded: Internal errors absorbed and degraded stretches; with ``fallbacks``, a
            result whose counts are not all zero is not a clean run of its policy.
    """

    policy: str
    carbon_g: float
    energy_j: float
    time_s: float
    baseline_carbon_g: float
    baseline_energy_j: float
    baseline_time_s: float
    carbon_reduction: float
    time_increase: float
    decisions: list[dict[str, Any]] = field(default_factory=list)
    estimated_baseline_carbon_g: float = 0.0
    power_limit_w: int | None = None
    steps: int = 0
    steps_per_epoch: int = 0
    forecaster: str | None = None
    fallbacks: int = 0
    report: dict | None = None
    scope: str = "gpu"
    gpu_carbon_g: float = 0.0
    gpu_carbon_reduction: float = 0.0
    embodied_carbon_g: float = 0.0
    baseline_embodied_carbon_g: float = 0.0
    estimated_carbon_reduction: float = 0.0
    internal_errors: int = 0
    degraded: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with every field (``report`` only when kept)."""
        data = asdict(self)
        if data["report"] is None:
            del data["report"]
        return data


def simulate(
    *,
    trace: str | Path,
    gpu_profile: str | Path | EpochProfile,
    workload: str = "imagenet/resnet50",
    batch_size: int = 256,
    job_hours: float,
    start: str,
    policy: str = "budget",
    max_slowdown: float = 0.05,
    forecaster: Any = "arima",
    decision_interval_s: float | None = 3600,
    eta: float = 0.5,
    static_power_limit_w: int | None = None,
    max_intensity_g_per_kwh: float | None = None,
    power_limits_w: list[int] | None = None,
    trace_value_column: str | None = None,
    trace_time_column: str | None = None,
    optimizer: str | None = None,
    pue: float = 1.0,
    host_power_w: float | None = None,
    embodied_g_per_gpu_hour: float = 0.0,
    steps_per_epoch: int | None = None,
    step_s: float = DEFAULT_STEP_S,
    profile: str = "live",
    report_path: str | Path | None = None,
    keep_report: bool = False,
) -> SimulationResult:
    """Simulate one job of ``job_hours`` (at the default limit) from ``start`` under ``policy``.

    Args:
        trace: Carbon-intensity CSV (see :class:`~chase_integrations.carbon.trace.TraceProvider`) or the short
            name of an embedded trace (``"US-CISO-2022"``; :mod:`chase_integrations.datasets`).
        gpu_profile: Zeus trace CSV (``summary_power_<gpu>.csv``), the short name of an embedded profile
            (``"a40"``, ``"h200"``, ...) or a loaded :class:`EpochProfile`.
        workload: ``"dataset/network"`` in ``gpu_profile``.
        batch_size: Batch size in ``gpu_profile``.
        optimizer: Optimizer in ``gpu_profile`` (only when it has several for the workload).
        job_hours: The job's length when run entirely at the default (highest) limit, h.
        start: Start time, ISO-8601 (UTC).
        policy: One of ``budget``, ``chase``, ``static``, ``default``, ``zeus``, ``oracle`` (and
            ``monitor``, the same as ``default``).
        max_slowdown: Budget and oracle: allowed time increase (fraction).
        forecaster: Budget and chase: ``"arima"``, ``"persistence"``, ``"seasonal_naive"`` or an object.
        decision_interval_s: Also decide every N s inside an epoch (``None``: at epoch ends only).
        eta: Chase policy's η in [0, 1].
        max_intensity_g_per_kwh: Chase policy's MaxCI (``None``: the highest value of the last 24 h).
        static_power_limit_w: Static policy's limit, W.
        power_limits_w: Candidate limits, W (``None``: the profile's range in 25 W steps).
        trace_value_column: Intensity column of ``trace`` (``None``: inferred).
        trace_time_column: Timestamp column of ``trace`` (``None``: inferred).
        pue: Data-centre PUE.
        host_power_w: Unmeasured power of the rest of the server, W per GPU (``None``: GPU only); enters
            the decisions, the ledger and the baseline (:mod:`chase_integrations.core.cost`).
        embodied_g_per_gpu_hour: Embodied emissions per GPU-hour, gCO2eq (in ``carbon_reduction``).
        steps_per_epoch: Simulated steps per profiled epoch (``None``: so that a step is ``step_s``).
        step_s: Target length of one simulated step at the default limit, s.
        profile: ``"live"``: a first run, profiling on simulated steps; ``"preloaded"``: a repeat run that
            starts with the profile known.
        report_path: Also write the engine's run report (JSON) here.
        keep_report: Put the engine's run report in ``result.report``.

    Raises:
        ConfigurationError: A bad argument (named in the message).
    """
    policy = _check(policy, job_hours, step_s, max_slowdown)
    if profile not in PROFILE_MODES:
        raise ConfigurationError.invalid("profile", profile, f"one of {list(PROFILE_MODES)}")
    live = profile == "live" and policy in ("budget", "chase", "static")
    epoch = _epoch_profile(gpu_profile, workload, batch_size, optimizer)
    hi = epoch.limits_w[-1]
    if steps_per_epoch is None:
        steps_per_epoch = max(1, round(epoch.time_per_epoch_s[hi] / float(step_s)))
    provider = _trace(trace, trace_value_column, trace_time_column)
    try:
        if not isinstance(start, (str, datetime)):
            raise TypeError(type(start).__name__)
        start_dt = parse_utc(start)
    except (TypeError, ValueError):
        raise ConfigurationError.invalid("start", start, "an ISO-8601 time such as '2023-03-01T00:00:00Z'") from None
    if not provider.start <= start_dt <= provider.end:
        raise ConfigurationError.invalid(
            "start", start, f"a time within the trace ({provider.start.isoformat()} to {provider.end.isoformat()})"
        )
    sim = Simulation(gpu_profile=epoch, trace=None, start=start_dt,
                     steps_per_epoch=steps_per_epoch)
    sim.provider = _on_clock(provider, sim.clock)
    profile = sim.step_profile
    t_default = profile.time_per_step_s(hi)
    total_steps = max(1, round(job_hours * 3600.0 / t_default))

    limit, used_forecaster = None, forecaster
    engine_policy: Any = policy
    if policy in ("default", "monitor", "zeus", "static", "oracle"):
        used_forecaster = None
        if policy == "static":
            if static_power_limit_w is None:
                raise ConfigurationError.invalid("static_power_limit_w", None,
                                                 "a power limit in W when policy='static'")
            limit = int(static_power_limit_w)
        elif policy == "zeus":
            limit = zeus_power_limit(profile)
            engine_policy = ZeusPolicy()
        elif policy in ("default", "monitor"):
            limit = hi
            engine_policy = DefaultPolicy()
        else:
            engine_policy = OraclePolicy(lambda now, hours: list(true_hourly_means(provider, now, hours)),
                                         max_slowdown)
    engine_forecaster = _synchronous(used_forecaster) if used_forecaster is not None else _CHEAP_FORECASTER
    config = ChaseConfig(
        provider=sim.provider, policy=engine_policy, max_slowdown=max_slowdown, eta=eta,
        max_intensity_g_per_kwh=max_intensity_g_per_kwh, static_power_limit_w=limit,
        forecaster=engine_forecaster,
        decision_interval_s=decision_interval_s, power_limits_w=power_limits_w, simulation=sim, pue=pue,
        host_power_w=host_power_w, embodied_g_per_gpu_hour=embodied_g_per_gpu_hour,
    )
    # preloaded: no profiling phase (the simulated GPU follows this profile); live: the engine profiles
    session = ChaseSession(config, profile=None if live else profile)
    session.start(RunContext(gpu_indices=[0], collective=LocalCollective(), total_steps=total_steps))
    try:
        _run(session, total_steps, steps_per_epoch)
        report = session.end("finished")
    finally:
        if isinstance(engine_forecaster, Forecaster):
            engine_forecaster.close()

    ledger = session.ledger
    base = exact_baseline(profile, total_steps, session.accountant.cost, provider, start_dt)
    report = with_exact_baseline(report, base, ledger)
    if report_path is not None:
        write_report(report, report_path)
    decisions = [
        {"time": iv.start, "power_limit_w": iv.power_limit_w, "forecast_g_per_kwh": iv.forecast_g_per_kwh}
        for iv in ledger.intervals if iv.phase == "train"
    ]
    return SimulationResult(
        policy=policy,
        carbon_g=ledger.carbon_g,
        energy_j=ledger.energy_j,
        time_s=ledger.time_s,
        baseline_carbon_g=base.carbon_g,
        baseline_energy_j=base.energy_j,
        baseline_time_s=base.time_s,
        carbon_reduction=base.reduction(ledger),
        time_increase=ledger.time_s / base.time_s - 1.0,
        decisions=decisions,
        estimated_baseline_carbon_g=ledger.baseline_carbon_g,
        power_limit_w=limit,
        steps=ledger.steps,
        steps_per_epoch=steps_per_epoch,
        forecaster=_name(used_forecaster),
        fallbacks=int(report.get("fallbacks", 0)),
        report=report if keep_report else None,
        scope=report["scope"],
        gpu_carbon_g=ledger.gpu_carbon_g,
        gpu_carbon_reduction=base.gpu_reduction(ledger),
        embodied_carbon_g=ledger.embodied_carbon_g,
        baseline_embodied_carbon_g=base.embodied_carbon_g,
        estimated_carbon_reduction=report["estimated_carbon_reduction"],
        internal_errors=int(report.get("internal_errors", 0)),
        degraded=len(report.get("degraded") or []),
    )


def _run(session: ChaseSession, total_steps: int, steps_per_epoch: int) -> None:
    """The training loop without a framework: the hooks the Lightning adapter calls, in its order."""
    step_end, epoch_end = session.step_end, session.epoch_end
    for step in range(1, total_steps + 1):
        step_end()
        if step % steps_per_epoch == 0:
            epoch_end()


def _check(policy: str, job_hours: float, step_s: float, max_slowdown: float) -> str:
    if policy not in SIMULATE_POLICIES:
        raise ConfigurationError.invalid("policy", policy, f"one of {list(SIMULATE_POLICIES)}")
    for name, value in (("job_hours", job_hours), ("step_s", step_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigurationError.invalid(name, value, "a number > 0")
    check_max_slowdown(max_slowdown)
    return policy


class _Synchronous(Forecaster):
    """Waits for a forecaster's background refits after each ``fit``/``update``.

    Live, ARIMA refits off the training thread and an hour passes between decisions, so every
    decision sees a finished model. In simulation an hour passes in microseconds; waiting gives the
    same (and a deterministic) result.
    """

    def __init__(self, inner: Forecaster) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)

    def fit(self, history) -> None:
        """Fit and wait."""
        self.inner.fit(history)
        self._wait()

    def update(self, reading) -> None:
        """Update and wait."""
        self.inner.update(reading)
        self._wait()

    def predict(self, hours: int):
        """The inner forecaster's prediction."""
        return self.inner.predict(hours)

    def __getattr__(self, name: str):
        # predict_interval, set_external_forecast, fallback_reason...: the inner forecaster's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def close(self) -> None:
        """Close the inner forecaster."""
        self.inner.close()

    def _wait(self) -> None:
        wait = getattr(self.inner, "wait", None)
        if callable(wait):
            wait()


def _synchronous(spec: Any) -> Forecaster:
    forecaster = make_forecaster(spec)
    return _Synchronous(forecaster) if callable(getattr(forecaster, "wait", None)) else forecaster


def _name(forecaster: Any) -> str | None:
    if forecaster is None or isinstance(forecaster, str):
        return forecaster
    return getattr(forecaster, "name", type(forecaster).__name__)


# --------------------------------------------------------------------------- cached inputs
def _file_key(path: str | Path) -> tuple[str, int, int]:
    p = Path(path)
    if not p.is_file():
        return str(p), -1, -1
    stat = p.stat()
    return str(p.resolve()), stat.st_mtime_ns, stat.st_size


def _epoch_profile(gpu_profile: str | Path | EpochProfile, workload: str, batch_size: int,
                   optimizer: str | None) -> EpochProfile:
    if isinstance(gpu_profile, EpochProfile):
        return gpu_profile
    return _load_profile_cached(_file_key(gpu_profile_path(gpu_profile)), workload, int(batch_size), optimizer)


@lru_cache(maxsize=32)
def _load_profile_cached(key: tuple[str, int, int], workload: str, batch_size: int,
                         optimizer: str | None) -> EpochProfile:
    return load_gpu_profile(key[0], workload, batch_size, optimizer)


def _trace(trace: str | Path, value_column: str | None, time_column: str | None) -> TraceProvider:
    if isinstance(trace, TraceProvider):
        return trace
    return _load_trace_cached(_file_key(trace_path(trace)), value_column, time_column)


@lru_cache(maxsize=16)
def _load_trace_cached(key: tuple[str, int, int], value_column: str | None, time_column: str | None) -> TraceProvider:
    return TraceProvider(key[0], time_column=time_column, value_column=value_column, arguments=SIMULATION_ARGUMENTS)


def _on_clock(provider: TraceProvider, clock) -> TraceProvider:
    """The same parsed trace replayed on another clock (parsing a multi-year CSV takes ~50 ms)."""
    bound = copy.copy(provider)
    bound._clock = clock
    if type(provider) is TraceProvider:
        bound.__class__ = _ReplayTrace
        bound._row = None
    return bound


class _ReplayTrace(TraceProvider):
    """A :class:`TraceProvider` whose ``latest()`` reuses the row while the clock stays inside it.

    The engine reads the latest row several times per decision; the simulated clock only moves forward,
    so the row in force is usually the one found last time (same reading, same staleness rule).
    """

    def latest(self) -> IntensityReading:
        """See :meth:`TraceProvider.latest`."""
        row = self._row
        if row is not None:
            now_s = self._clock.now().timestamp()
            lo_s, hi_s, reading = row
            if lo_s <= now_s < hi_s:
                return reading
        reading = super().latest()
        i = int(self._search_s.searchsorted(reading.time.timestamp(), side="right")) - 1
        if 0 <= i < len(self._times_s) - 1:
            # fresh until the next row starts, or until it would be stale (whichever comes first)
            stale_s = self._times_s[i] + max(_STALE_AFTER_S, 2 * self.resolution_s)
            self._row = (float(self._times_s[i]), float(min(self._times_s[i + 1], stale_s)), reading)
        return reading
