"""Saved profiles: load one that covers what the policy needs; share rank 0's with every rank.

A profile saved by an earlier run (``profile_path``) skips the profiling phase of the next one when it
still covers the limits the policy needs; a profile that does not is measured again, never trusted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from chase_integrations._warnings import OnceWarner
from chase_integrations.core.collective import Collective
from chase_integrations.core.policies.base import Policy
from chase_integrations.core.profile import PowerProfile
from chase_integrations.errors import ConfigurationError

logger = logging.getLogger(__name__)


def load_saved_profile(path: str | None, policy: Policy, candidates_w: list[int], default_limit_w: int | None,
                       exact_limits: bool, warner: OnceWarner) -> PowerProfile | None:
    """The profile saved at ``path`` when it covers what ``policy`` needs, else ``None`` (warned once).

    Raises:
        ConfigurationError: The file exists but is not a profile (from :meth:`PowerProfile.load`).
    """
    if not path or not Path(path).exists():
        return None
    profile = PowerProfile.load(path)
    if not policy.accepts_profile(profile.limits_w, candidates_w, default_limit_w, exact_limits):
        missing = [w for w in policy.profile_limits_w(candidates_w, default_limit_w) if w not in profile]
        warner.warn("profile-stale", f"Saved profile {path!r} lacks limits {missing} W; profiling again.")
        return None
    logger.info("Loaded power profile from %s.", path)
    return profile


def share_from_rank0(collective: Collective, load):
    """Every rank gets rank 0's ``load()`` (a picklable value); if rank 0's fails, every rank raises.

    A saved profile or a checkpoint may exist on rank 0's disk only; sharing them keeps every rank on the
    same plan (and so on the same collectives).
    """
    mine = None
    if collective.rank == 0:
        try:
            mine = load()
        except Exception as e:  # tell the other ranks before raising, or they would wait for rank 0
            collective.broadcast(f"{type(e).__name__}: {e}")
            raise
    shared = collective.broadcast(mine)
    if isinstance(shared, str):
        raise ConfigurationError(
            f"Rank 0 could not load the saved profile ({shared}); stopping rank {collective.rank} too."
        )
    return shared


def save_profile(profile: PowerProfile, path: str, controller, warner: OnceWarner) -> None:
    """Save ``profile`` for the next run (a failure is warned about once, never raised)."""
    try:
        profile.save(path, {"gpu_indices": list(controller.gpu_indices) if controller is not None else []})
    except OSError as e:
        warner.warn("profile-save", f"Could not save the profile to {path!r}: {e}")
