"""Train start: each rank's GPUs (controller, meter, original limits, candidates, mode), then agreement.

:func:`setup_gpus` runs on each rank alone; :func:`agree_at_start` runs on every rank, once, and turns the
ranks' setups into one job-wide mode and one set of candidate limits (a failure on any rank raises on
every rank, so none waits forever in a later collective).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from chase_integrations._warnings import OnceWarner
from chase_integrations.core.collective import Collective
from chase_integrations.core.interfaces import EnergyMeter, PowerControl
from chase_integrations.core.policies.base import Policy
from chase_integrations.errors import ConfigurationError, PowerControlError, PowerPermissionError, ProviderError

logger = logging.getLogger(__name__)

#: Modes from least to most capable; a job runs the flow of its most capable rank.
MODES = ("disabled", "monitor", "advisory", "active")


@dataclass
class RunContext:
    """What the adapter knows about this process and the job.

    Attributes:
        gpu_indices: Indices (in the ``GPUs`` object) of the GPUs this rank trains on.
        collective: Cross-rank operations (``LocalCollective`` for one process).
        total_steps: Optimizer steps of the whole job when known (``max_steps``/``max_epochs``).
        local_rank: This process's rank on its node.
        workload: What the adapter knows of the workload (JSON values: parameter count, batch size, ...);
            a saved profile is reused only for the same fingerprint. ``None``: unknown.
    """

    gpu_indices: list[int]
    collective: Collective
    total_steps: int | None = None
    local_rank: int = 0
    workload: dict | None = None


def known_total_steps(estimate: float | None) -> int | None:
    """The job's length in optimizer steps from a framework's estimate (``None``: unknown or unbounded).

    Example:
        >>> known_total_steps(1200.0), known_total_steps(float("inf")), known_total_steps(-1), known_total_steps(None)
        (1200, None, None, None)
    """
    if estimate is None or not math.isfinite(float(estimate)) or estimate <= 0:
        return None
    return int(estimate)


@dataclass
class GpuSetup:
    """One rank's GPUs at train start.

    Attributes:
        controller: Sets and restores this rank's limits (``None``: it owns no GPU).
        meter: Measures this rank's energy (``None``: it owns no GPU).
        original_limits_w: Each owned GPU's limit before the run, W.
        default_limit_w: The highest limit every owned GPU allows, W.
        candidates_w: The limits the run may use, W.
        mode: ``"disabled"``, ``"monitor"``, ``"advisory"`` or ``"active"``.
    """

    controller: PowerControl | None = None
    meter: EnergyMeter | None = None
    original_limits_w: dict[int, int] = field(default_factory=dict)
    default_limit_w: int | None = None
    candidates_w: list[int] = field(default_factory=list)
    mode: str = "disabled"


def candidate_limits_w(given_w: list[int] | None, lo_w: int, hi_w: int, policy: Policy) -> list[int]:
    """The limits a run may use: ``given_w`` (checked against the range) or the range in 25 W steps.

    Example:
        >>> from chase_integrations.core.policies import MonitorPolicy
        >>> candidate_limits_w(None, 100, 180, MonitorPolicy())
        [100, 125, 150, 175, 180]
    """
    if given_w is not None:
        bad = [w for w in given_w if not lo_w <= w <= hi_w]
        if bad:
            raise ConfigurationError.invalid(
                "power_limits_w", given_w, f"limits within the GPU's range [{lo_w}, {hi_w}] W"
            )
        limits = set(given_w)
    else:
        limits = set(range(lo_w, hi_w + 1, 25))
    limits.add(hi_w)
    policy.check_range(lo_w, hi_w)
    return sorted(limits)


def setup_gpus(gpus, gpu_indices: list[int], power, policy: Policy, given_limits_w: list[int] | None, strict: bool,
               where: str, others: str, warner: OnceWarner) -> GpuSetup:
    """This rank alone: its GPUs' controller and meter, original limits, candidates, mode, permission.

    Args:
        gpus: The Zeus ``GPUs`` (``None``: none could be had).
        gpu_indices: The indices this rank trains on.
        power: ``(gpus, gpu_indices) -> (controller, meter)`` (from the composition module).
        policy: The run's policy.
        given_limits_w: ``power_limits_w``.
        strict: Raise instead of degrading.
        where: Where this rank is, for messages (`` on rank R (GPU [i])``, or nothing for one process).
        others: What the other ranks do, for messages.
        warner: Once-per-run warnings.
    """
    if gpus is None:
        if not gpu_indices:
            warner.warn(
                "no-gpu-owned",
                "This process trains on no GPU; chase-integrations records carbon intensity only and changes no "
                "power limit.",
            )
        return GpuSetup()
    controller, meter = power(gpus, gpu_indices)
    try:
        originals = controller.remember_originals()
        lo, hi = controller.constraints_w()
        setup = GpuSetup(controller, meter, originals, hi, candidate_limits_w(given_limits_w, lo, hi, policy),
                         "active" if policy.changes_limits else "monitor")
    except Exception:
        controller.restore()
        raise
    if setup.mode == "active":
        setup.mode = _check_permission(controller, strict, where, others, warner)
    return setup


def _check_permission(controller: PowerControl, strict: bool, where: str, others: str, warner: OnceWarner) -> str:
    try:
        controller.check_permission()
    except PowerPermissionError as e:
        if strict:
            controller.restore()
            raise
        warner.warn(
            "advisory",
            f"No permission to set GPU power limits{where} ({e}). Running in advisory mode: measuring and logging the "
            f"limit it would set, changing nothing{others}. Pass strict=True to make this an error.",
        )
        return "advisory"
    except PowerControlError as e:
        if strict:
            controller.restore()
            raise
        warner.warn("advisory", f"GPU power limits cannot be set{where} ({e}); running in advisory mode{others}.")
        return "advisory"
    return "active"


def agree_at_start(collective: Collective, setup: GpuSetup, error: Exception | None, policy: Policy,
                   given_limits_w: list[int] | None, notes: list[str]) -> str:
    """Every rank, once, at train start; returns the job-wide mode (and may narrow ``setup``'s candidates).

    A failure on any rank (``strict`` without permission, a bad ``power_limits_w``) raises on every rank.
    A rank that cannot set limits runs in advisory mode alone but profiles and decides in lockstep with
    the others: the job follows its most capable rank. With several ranks, candidates come from the
    limits that every rank's GPUs allow, so all GPUs can run the same limit.
    """
    c = collective
    kinds = (PowerControlError, PowerPermissionError, ProviderError)  # what a failed rank's error was, by code
    code = 2 if isinstance(error, ProviderError) else 1 if isinstance(error, PermissionError) else 0
    failed, worst = c.sum_max(float(error is not None), float(code))
    try:
        if error is not None:
            raise error
        if failed:
            raise kinds[int(worst)](
                f"{int(failed)} of {c.world_size} ranks could not start (see their errors); stopping rank {c.rank} "
                "too, so that no rank waits for the others."
            )
        n_advisory, top = c.sum_max(float(setup.mode == "advisory"), float(MODES.index(setup.mode)))
        if c.world_size > 1:
            own = setup.controller.constraints_w() if setup.controller is not None else (-math.inf, math.inf)
            _, lo = c.sum_max(0.0, float(own[0]))
            _, neg_hi = c.sum_max(0.0, -float(own[1]))
            if math.isfinite(lo) and (lo, -neg_hi) != own:
                if lo > -neg_hi:
                    raise ConfigurationError(
                        f"The ranks' GPUs allow no common power limit ([{lo:.0f}, {-neg_hi:.0f}] W); every GPU of a "
                        "job must run the same limit."
                    )
                setup.default_limit_w = int(-neg_hi)
                setup.candidates_w = candidate_limits_w(given_limits_w, int(lo), int(-neg_hi), policy)
    except Exception:
        if setup.controller is not None:
            setup.controller.restore()
        raise
    if c.rank == 0 and 0 < n_advisory < c.world_size:
        notes.append(
            f"{int(n_advisory)} of {c.world_size} ranks could not set power limits and ran in advisory mode; the "
            "other ranks set them."
        )
    return MODES[int(top)]


def start_gpus(parts, ctx: RunContext, warner: OnceWarner, notes: list[str]) -> tuple[GpuSetup, str]:
    """This rank's :func:`setup_gpus`, then :func:`agree_at_start`; returns the setup and the job's mode.

    ``parts``: the run's :class:`~chase_integrations.core.compose.Parts`.
    """
    cfg, c = parts.config, ctx.collective
    where = "" if c.world_size == 1 else f" on rank {c.rank} (GPU {ctx.gpu_indices})"
    others = " on this rank; the other ranks still set theirs" if c.world_size > 1 else ""
    error: Exception | None = None
    setup = GpuSetup()
    try:  # a failure is raised by agree_at_start on every rank: a lone raise would hang the others
        gpus = parts.gpus(warner) if ctx.gpu_indices else None
        setup = setup_gpus(gpus, ctx.gpu_indices, parts.power(ctx.local_rank), parts.policy, cfg.power_limits_w,
                           cfg.strict, where, others, warner)
    except Exception as e:
        error = e
    return setup, agree_at_start(c, setup, error, parts.policy, cfg.power_limits_w, notes)


def probe_provider(collective: Collective, probe, strict: bool) -> None:
    """Rank 0 reads the provider once at train start (``probe``; ``None`` on the other ranks).

    A failure is warned about at once instead of after profiling; with ``strict=True`` it raises
    :class:`~chase_integrations.errors.ProviderError` on every rank, before the first step.
    """
    failure: ProviderError | None = None
    if probe is not None:
        try:
            probe()
        except ProviderError as e:  # raised only with strict=True
            failure = e
    if strict and collective.world_size > 1:
        message = collective.broadcast(str(failure) if failure is not None else None)
        if message is not None and failure is None:
            raise ProviderError(f"rank 0's carbon-intensity provider failed at train start ({message}).")
    if failure is not None:
        raise failure
