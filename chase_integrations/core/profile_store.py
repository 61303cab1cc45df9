"""Saved profiles: where they live, load one that still matches the run, share rank 0's with every rank.

A profile saved by an earlier run (``profile_path``) skips the profiling phase of the next one when it
still matches: the same GPU model, the same number of processes, the same workload fingerprint (what the
adapter knows: parameter count, batch size, ...) and the limits the policy needs. ``profile_path`` is a
file, or a folder (an existing directory, or a path ending in ``/``) that holds one profile per GPU
model, world size and workload. A profile that no longer matches is measured again, never trusted (and
the new measurement replaces it).

Example:
    >>> key = ProfileKey("NVIDIA A40", 2, {"parameters": 25557032, "batch_size": 256})
    >>> key.file_name()
    'NVIDIA-A40-x2-b1c370faf6.json'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from chase_integrations._warnings import OnceWarner
from chase_integrations.core.collective import Collective
from chase_integrations.core.cost import measured_host_power_w
from chase_integrations.core.ledger import Ledger
from chase_integrations.core.policies.base import Policy
from chase_integrations.core.profile import PowerProfile
from chase_integrations.errors import ConfigurationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileKey:
    """What a saved profile must match to be reused.

    Attributes:
        gpu_model: The GPU's model name (``"unknown"`` when it cannot be read).
        world_size: Processes of the job.
        workload: The adapter's fingerprint of the workload (JSON values), ``None`` when it knows none.
    """

    gpu_model: str
    world_size: int
    workload: dict | None = None

    def file_name(self) -> str:
        """The profile's file name in a profile folder: model, world size and a hash of the workload."""
        model = re.sub(r"[^A-Za-z0-9._-]+", "-", self.gpu_model).strip("-") or "unknown"
        digest = hashlib.sha256(json.dumps(self.workload, sort_keys=True).encode()).hexdigest()[:10]
        return f"{model}-x{self.world_size}-{digest}.json"

    def to_dict(self) -> dict:
        """JSON-safe form (saved in the profile's ``meta``)."""
        return asdict(self)


@dataclass(frozen=True)
class ProfileLocation:
    """Where this run's profile is read and saved, and the key it must match."""

    path: Path
    key: ProfileKey


def gpu_model(controller) -> str:
    """The model name of the controller's GPUs (through Zeus's ``getName``), or ``"unknown"``."""
    gpus = getattr(controller, "gpus", None)
    try:
        names = sorted({str(gpus.getName(i)) for i in controller.gpu_indices})
    except Exception:  # a fake or a GPU that cannot say: the key still holds world size and workload
        return "unknown"
    return "+".join(names) or "unknown"


def workload_fingerprint(model, **facts) -> dict | None:
    """The adapters' workload fingerprint: ``model``'s parameter count plus ``facts`` (``None`` values dropped).

    ``model`` is anything with ``parameters()`` yielding tensors (``numel()``); nothing is imported.

    Example:
        >>> workload_fingerprint(None, batch_size=32, accumulate=None)
        {'batch_size': 32}
    """
    out = {k: v for k, v in facts.items() if v is not None}
    with contextlib.suppress(Exception):  # no model, or not a torch module: the fingerprint is what is known
        out["parameters"] = int(sum(p.numel() for p in model.parameters()))
    return out or None


def profile_location(profile_path: str | None, controller, world_size: int,
                     workload: dict | None) -> ProfileLocation | None:
    """Where ``profile_path`` puts this run's profile (``None``: no ``profile_path``)."""
    if not profile_path:
        return None
    key = ProfileKey(gpu_model(controller), int(world_size), workload)
    path = Path(profile_path)
    folder = path.is_dir() or str(profile_path).endswith(("/", os.sep))
    return ProfileLocation(path / key.file_name() if folder else path, key)


def load_saved_profile(where: ProfileLocation | None, policy: Policy, candidates_w: list[int],
                       default_limit_w: int | None, exact_limits: bool, warner: OnceWarner) -> PowerProfile | None:
    """The profile saved at ``where`` when it matches the run and covers what ``policy`` needs, else ``None``.

    A profile saved for another GPU model, world size or workload is not used (warned once); a profile
    saved before keys were recorded is matched on its limits alone.

    Raises:
        ConfigurationError: The file exists but is not a profile (from :meth:`PowerProfile.load`).
    """
    if where is None or not where.path.is_file():
        return None
    path = where.path
    profile = PowerProfile.load(path)
    saved_key = _saved_key(path)
    if saved_key is not None and saved_key != where.key.to_dict():
        warner.warn("profile-mismatch", f"Saved profile {str(path)!r} was measured for {saved_key}, not for this "
                                        f"run ({where.key.to_dict()}); profiling again.")
        return None
    if not policy.accepts_profile(profile.limits_w, candidates_w, default_limit_w, exact_limits):
        missing = [w for w in policy.profile_limits_w(candidates_w, default_limit_w) if w not in profile]
        warner.warn("profile-stale", f"Saved profile {str(path)!r} lacks limits {missing} W; profiling again.")
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


def _saved_key(path: Path) -> dict | None:
    """The key a profile file was saved with (``None``: none recorded)."""
    try:
        meta = json.loads(path.read_text()).get("meta") or {}
    except (OSError, ValueError, AttributeError):
        return None
    key = meta.get("key") if isinstance(meta, dict) else None
    return key if isinstance(key, dict) else None


def save_profile(profile: PowerProfile, where: ProfileLocation | None, controller, warner: OnceWarner,
                 ledger: Ledger | None = None) -> PowerProfile:
    """Save ``profile`` for the next run at ``where`` (``None``: not saved), with its key; return what was kept.

    With the run's ``ledger``, the profile keeps the CPU + DRAM power its profiling measured per limit
    (RAPL, :attr:`PowerProfile.host_measured_w`), in the file and in the returned profile. A failure to
    write is warned about once, never raised.
    """
    if ledger is not None:
        profile = profile.with_host_measured_w(measured_host_power_w(ledger))
    if where is None:
        return profile
    meta = {"gpu_indices": list(controller.gpu_indices) if controller is not None else [],
            "key": where.key.to_dict()}
    try:
        profile.save(where.path, meta)
        logger.info("Saved the power profile to %s.", where.path)
    except OSError as e:
        warner.warn("profile-save", f"Could not save the profile to {str(where.path)!r}: {e}")
    return profile
