"""The policy interface and the registry that maps a policy's name to its class.

A policy turns what rank 0 knows (:class:`~chase_integrations.core.decision.DecisionInputs`) and the
grid's outlook (:class:`~chase_integrations.core.decision.Outlook`) into a
:class:`~chase_integrations.core.decision.Choice`. It owns its arithmetic; the
:class:`~chase_integrations.core.decide.Decider` owns the rest of a decision (reading the grid,
forecasting, the footprint prediction, the schedule). To add a policy: subclass :class:`PolicyBase`,
implement :meth:`~PolicyBase.choose`, and :func:`register_policy` a factory under a name so users can
pass ``policy="name"``; or pass the object itself as ``policy=``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from chase_integrations.core.decision import Choice, DecisionInputs, Outlook
from chase_integrations.errors import ConfigurationError


@runtime_checkable
class Policy(Protocol):
    """What the engine needs from a policy.

    Attributes:
        name: Shown in reports and logs.
        changes_limits: ``False`` for a policy that only measures (the run never sets a limit).
        needs_profile: Choose only once the per-limit profile is known (else the limit stays).
        needs_forecast: Choose only when the grid's intensity is known (else the limit stays).
    """

    name: str
    changes_limits: bool
    needs_profile: bool
    needs_forecast: bool

    def outlook_hours(self, inputs: DecisionInputs, base_hours: int) -> int:
        """Hours of intensity outlook the choice needs (``base_hours`` covers the coming interval)."""
        ...

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:
        """The limit for the interval starting now."""
        ...

    def profile_limits_w(self, candidates_w: list[int], default_limit_w: int) -> list[int]:
        """The limits to profile on a first run."""
        ...

    def accepts_profile(self, profile_limits_w: list[int], candidates_w: list[int], default_limit_w: int,
                        exact_limits: bool) -> bool:
        """Whether a saved profile with these limits covers what this policy needs."""
        ...

    def check_range(self, lo_w: int, hi_w: int) -> None:
        """Raise :class:`~chase_integrations.errors.ConfigurationError` if the policy's own limits are outside."""
        ...


class PolicyBase:
    """Defaults for :class:`Policy`: needs a profile and a forecast, profiles every candidate."""

    name = "policy"
    changes_limits = True
    needs_profile = True
    needs_forecast = True

    def outlook_hours(self, inputs: DecisionInputs, base_hours: int) -> int:
        """``base_hours``: the coming interval."""
        return base_hours

    def choose(self, inputs: DecisionInputs, outlook: Outlook) -> Choice:  # pragma: no cover - abstract
        """The limit for the interval starting now."""
        raise NotImplementedError

    def profile_limits_w(self, candidates_w: list[int], default_limit_w: int) -> list[int]:
        """Every candidate limit."""
        return list(candidates_w)

    def accepts_profile(self, profile_limits_w: list[int], candidates_w: list[int], default_limit_w: int,
                        exact_limits: bool) -> bool:
        """A profile that has every candidate; with the default set of limits, a pruned profile too.

        Profiling stops below the limits that are slower and dirtier than a higher one, so a profile that
        has the default limit covers every limit worth using, unless the user named the exact limits.
        """
        if not exact_limits and default_limit_w in profile_limits_w:
            return True
        return all(w in profile_limits_w for w in self.profile_limits_w(candidates_w, default_limit_w))

    def check_range(self, lo_w: int, hi_w: int) -> None:
        """Nothing of its own to check."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_REGISTRY: dict[str, Callable[[Any], Policy]] = {}


def register_policy(name: str, factory: Callable[[Any], Policy]) -> None:
    """Make ``policy=name`` build ``factory(config)`` (``config``: the validated :class:`ChaseConfig`)."""
    _REGISTRY[name] = factory


def policy_names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(_REGISTRY)


def make_policy(spec: str | Policy, config: Any) -> Policy:
    """The policy ``spec`` names (built from ``config``), or ``spec`` itself when it is a policy object."""
    if isinstance(spec, str):
        if spec not in _REGISTRY:
            raise ConfigurationError.invalid("policy", spec, f"one of {list(_REGISTRY)} or a Policy object")
        return _REGISTRY[spec](config)
    if not isinstance(spec, Policy):
        raise ConfigurationError.invalid("policy", spec, f"one of {list(_REGISTRY)} or a Policy object")
    return spec
