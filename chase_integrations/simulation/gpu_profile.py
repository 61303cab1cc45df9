"""Measured GPU profiles in the Zeus trace format (time per epoch and average power per limit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chase_integrations.core.profile import PowerProfile
from chase_integrations.errors import ConfigurationError

ZEUS_TRACE_COLUMNS = ("dataset", "network", "batch_size", "optimizer", "power_limit", "time_per_epoch", "average_power")

#: Training-set sizes of the Zeus trace workloads (samples per epoch), for ``steps_per_epoch=None``.
DATASET_SIZES = {
    "imagenet": 1_281_167,
    "cifar100": 50_000,
    "librispeech": 281_241,
    "squad": 88_641,
    "sentiment140": 1_600_000,
    "movielens-1m": 1_000_209,
    # the embedded H200 sweep (``gpu_profile="h200"``): random inputs of real shapes, epochs as scripts/gpu_check.py
    "synthetic-imagenet": 1_281_167,  # ImageNet-sized epochs of 224x224 images
    "synthetic-text": 16_000,  # 1,000 steps of batch 16
}


@dataclass(frozen=True)
class EpochProfile:
    """Per-limit epoch time (s) and average power (W) of one workload on one GPU."""

    workload: str
    batch_size: int
    time_per_epoch_s: dict[int, float]
    average_power_w: dict[int, float]

    @property
    def limits_w(self) -> list[int]:
        """Profiled limits, ascending."""
        return sorted(self.time_per_epoch_s)

    def step_profile(self, steps_per_epoch: int, num_gpus: int = 1) -> PowerProfile:
        """Per-step profile when an epoch is ``steps_per_epoch`` steps (energy summed over ``num_gpus``)."""
        return PowerProfile(
            {
                p: (
                    self.time_per_epoch_s[p] / steps_per_epoch,
                    num_gpus * self.time_per_epoch_s[p] * self.average_power_w[p] / steps_per_epoch,
                )
                for p in self.limits_w
            }
        )


def load_gpu_profile(path: str | Path, workload: str, batch_size: int, optimizer: str | None = None) -> EpochProfile:
    """Read one workload's rows from a Zeus trace CSV (``summary_power_<gpu>.csv``).

    Args:
        path: The CSV (columns ``dataset, network, batch_size, optimizer, power_limit, time_per_epoch,
            average_power``), or the short name of an embedded profile (``"a40"``, ``"v100"``,
            ``"rtx6000"``, ``"p100"``, ``"h200"``; see :mod:`chase_integrations.datasets`).
        workload: ``"dataset/network"``, e.g. ``"imagenet/resnet50"``.
        batch_size: The batch size to select.
        optimizer: Needed only when the file has several optimizers for that workload and batch size.

    Example:
        >>> profile = load_gpu_profile("a40", "imagenet/resnet50", 256)
        >>> profile.limits_w[0], profile.limits_w[-1]
        (100, 300)
    """
    import pandas as pd

    from chase_integrations.datasets import gpu_profile_path

    path = gpu_profile_path(path)
    frame = pd.read_csv(path)
    missing = [c for c in ZEUS_TRACE_COLUMNS if c not in frame.columns and c != "optimizer"]
    if missing:
        raise ConfigurationError(
            f"`gpu_profile` {path.name} lacks the Zeus trace columns {missing}; expected {list(ZEUS_TRACE_COLUMNS)}."
        )
    if frame.empty:
        raise ConfigurationError(f"`gpu_profile` {path.name} has a header but no rows.")
    values = frame[["power_limit", "time_per_epoch", "average_power"]].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1) | (values <= 0).any(axis=1)
    if bad.any():
        row = frame.loc[bad].iloc[0]
        raise ConfigurationError(
            f"`gpu_profile` {path.name} row {int(bad.idxmax()) + 2}: power_limit, time_per_epoch and average_power "
            f"must be numbers > 0, got {row['power_limit']!r}, {row['time_per_epoch']!r}, {row['average_power']!r}."
        )
    if not isinstance(workload, str) or "/" not in workload:
        raise ConfigurationError.invalid("workload", workload, "'dataset/network', e.g. 'imagenet/resnet50'")
    dataset, network = workload.split("/", 1)
    rows = frame[(frame["dataset"] == dataset) & (frame["network"] == network)]
    if rows.empty:
        known = sorted({f"{d}/{n}" for d, n in zip(frame["dataset"], frame["network"])})
        raise ConfigurationError.invalid("workload", workload, f"one of {known} in {path.name}")
    sized = rows[rows["batch_size"] == int(batch_size)]
    if sized.empty:
        raise ConfigurationError.invalid(
            "batch_size",
            batch_size,
            f"one of {sorted(set(rows['batch_size'].astype(int)))} for {workload} in {path.name}",
        )
    if "optimizer" in sized.columns:
        optimizers = sorted(set(sized["optimizer"]))
        if optimizer is not None:
            if optimizer not in optimizers:
                raise ConfigurationError.invalid("optimizer", optimizer, f"one of {optimizers}")
            sized = sized[sized["optimizer"] == optimizer]
        elif len(optimizers) > 1:
            raise ConfigurationError(
                f"{path.name} has several optimizers {optimizers} for {workload} batch {batch_size}. "
                "HINT: pass optimizer=..."
            )
    if sized["power_limit"].duplicated().any():
        sized = sized.groupby("power_limit", as_index=False)[["time_per_epoch", "average_power"]].mean()
    return EpochProfile(
        workload=workload,
        batch_size=int(batch_size),
        time_per_epoch_s={int(r.power_limit): float(r.time_per_epoch) for r in sized.itertuples()},
        average_power_w={int(r.power_limit): float(r.average_power) for r in sized.itertuples()},
    )


def default_steps_per_epoch(workload: str, batch_size: int) -> int:
    """Dataset size over batch size, for the Zeus trace workloads."""
    dataset = workload.split("/", 1)[0]
    if dataset not in DATASET_SIZES:
        raise ConfigurationError.invalid(
            "steps_per_epoch", None, f"set explicitly for dataset {dataset!r} (known: {sorted(DATASET_SIZES)})"
        )
    return max(1, -(-DATASET_SIZES[dataset] // int(batch_size)))
