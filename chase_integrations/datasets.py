"""Real data that comes with the package: measured GPU profiles and hourly carbon traces, by short name.

A short name works wherever a path does: ``Simulation(gpu_profile="a40", trace="US-CISO-2022")``,
``simulate(...)``, ``TraceProvider("US-ERCO-2022")``, ``chase simulate --trace US-ERCO-2022 --gpu-profile
h200``. ``chase data list`` prints what :func:`list_datasets` returns, with each file's source and
licence; the package's ``data/NOTICE`` has the full licences and citations.

* ``a40``, ``v100``, ``rtx6000``, ``p100``: the Zeus NSDI'23 GPU power traces, time per epoch and average
  power per power limit for 6 workloads and many batch sizes (Apache-2.0);
* ``h200``: this project's H200 sweep (``scripts/gpu_check.py``), ``synthetic-imagenet/resnet50`` batch 128
  and ``synthetic-text/gpt2`` batch 16, random inputs of real shapes (Apache-2.0);
* ``US-AZPS-2022``, ``US-BPAT-2022``, ``US-CISO-2022``, ``US-ERCO-2022``, ``US-MISO-2022``, ``US-NYIS-2022``,
  ``US-PJM-2022``, ``US-SOCO-2022``: hourly average carbon intensity of 8 US balancing authorities in 2022
  (UTC, gCO2/kWh), derived from EIA-930 by SustainDC (MIT, over U.S. public EIA data).

Names match whatever the case, and so do the files' own names (``"summary_power_a40.csv"``). An existing
file always wins over a name.

Example:
    >>> from chase_integrations.datasets import gpu_profile_path, list_datasets, trace_path
    >>> trace_path("US-CISO-2022").name
    'US-CISO-2022.csv.gz'
    >>> gpu_profile_path("A40").name
    'summary_power_a40.csv'
    >>> [d.name for d in list_datasets("gpu_profile")]
    ['a40', 'v100', 'rtx6000', 'p100', 'h200']
    >>> trace_path("US-XYZ-2022")
    Traceback (most recent call last):
    ...
    chase_integrations.errors.ConfigurationError: `trace` must be an existing CSV file or the short name of \
an embedded trace (US-AZPS-2022, US-BPAT-2022, US-CISO-2022, US-ERCO-2022, US-MISO-2022, US-NYIS-2022, \
US-PJM-2022, US-SOCO-2022), got 'US-XYZ-2022'. HINT: `chase data list` shows the embedded data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chase_integrations.errors import ConfigurationError

#: Folder of the embedded files (inside the installed package).
DATA_DIR = Path(__file__).resolve().parent / "data"
#: What ``chase demo`` runs on.
DEMO_TRACE = "US-CISO-2022"
DEMO_GPU_PROFILE = "a40"

KINDS = ("gpu_profile", "trace")

_ZEUS = dict(
    source="Zeus NSDI'23 power trace (github.com/ml-energy/zeus)",
    licence="Apache-2.0",
    citation="You, Chung, Chowdhury. Zeus: Understanding and Optimizing GPU Energy Consumption of DNN Training. "
    "USENIX NSDI 2023.",
)
_SUSTAINDC = dict(
    source="U.S. EIA-930 via SustainDC (github.com/HewlettPackard/dc-rl)",
    licence="MIT, over U.S. public EIA data",
    citation="Sarkar et al. SustainDC: Benchmarking for Sustainable Data Center Control. NeurIPS 2024 Datasets and "
    "Benchmarks; U.S. EIA-930.",
)
_BALANCING_AUTHORITIES = {
    "AZPS": "Arizona Public Service",
    "BPAT": "Bonneville Power Administration",
    "CISO": "California ISO",
    "ERCO": "ERCOT (Texas)",
    "MISO": "Midcontinent ISO",
    "NYIS": "New York ISO",
    "PJM": "PJM Interconnection",
    "SOCO": "Southern Company",
}


@dataclass(frozen=True)
class Dataset:
    """One embedded file.

    Attributes:
        name: Short name (``"a40"``, ``"US-CISO-2022"``).
        kind: ``"gpu_profile"`` (Zeus trace format) or ``"trace"`` (hourly gCO2eq/kWh).
        filename: Path inside the package's ``data`` folder.
        description: What it holds.
        source: Where it comes from.
        licence: Its licence (full text and citation in ``data/NOTICE``).
        citation: What to cite when results use it.
    """

    name: str
    kind: str
    filename: str
    description: str
    source: str
    licence: str
    citation: str

    @property
    def path(self) -> Path:
        """The file on disk."""
        return DATA_DIR / self.filename

    def matches(self, name: str) -> bool:
        """Whether ``name`` is its short name or file name, in any case (``"a40"``, ``"summary_power_a40.csv"``)."""
        key = name.strip().lower()
        return key in (self.name.lower(), self.path.name.lower())


_DATASETS: tuple[Dataset, ...] = (
    *(
        Dataset(gpu, "gpu_profile", f"gpu/summary_power_{gpu}.csv",
                f"NVIDIA {label}: time per epoch and average power per power limit ({limits}), 6 workloads", **_ZEUS)
        for gpu, label, limits in (
            ("a40", "A40", "100-300 W"),
            ("v100", "V100", "100-250 W"),
            ("rtx6000", "Quadro RTX 6000", "100-260 W"),
            ("p100", "P100", "125-250 W"),
        )
    ),
    Dataset(
        "h200", "gpu_profile", "gpu/summary_power_h200.csv",
        "NVIDIA H200 sweep, 200-700 W: synthetic-imagenet/resnet50 batch 128, synthetic-text/gpt2 batch 16 "
        "(random inputs of real shapes)",
        source="this project's scripts/gpu_check.py, 2026-11-26",
        licence="Apache-2.0",
        citation="chase-integrations",
    ),
    *(
        Dataset(f"US-{ba}-2022", "trace", f"traces/US-{ba}-2022.csv.gz",
                f"{label}: hourly average carbon intensity of generation, 2022 (UTC)", **_SUSTAINDC)
        for ba, label in _BALANCING_AUTHORITIES.items()
    ),
)


def list_datasets(kind: str | None = None) -> list[Dataset]:
    """The embedded datasets, GPU profiles first; ``kind`` (``"gpu_profile"`` or ``"trace"``) selects one kind.

    Example:
        >>> [d.name for d in list_datasets("trace")][:2]
        ['US-AZPS-2022', 'US-BPAT-2022']
    """
    if kind is not None and kind not in KINDS:
        raise ConfigurationError.invalid("kind", kind, f"one of {list(KINDS)} or None")
    return [d for d in _DATASETS if kind is None or d.kind == kind]


def get_dataset(name: str, kind: str | None = None) -> Dataset:
    """The embedded dataset called ``name`` (any case).

    Raises:
        ConfigurationError: No such name; the message lists the known ones.
    """
    for d in list_datasets(kind):
        if isinstance(name, str) and d.matches(name):
            return d
    known = ", ".join(d.name for d in list_datasets(kind))
    raise ConfigurationError.invalid("name", name, f"the short name of an embedded dataset ({known})")


def trace_path(trace: str | Path, argument: str = "trace") -> Path:
    """The CSV behind ``trace``: an existing file as given, else the embedded trace of that short name.

    Args:
        trace: A path, or a short name such as ``"US-CISO-2022"``.
        argument: How the error names ``trace`` (``"path"`` for ``TraceProvider``, ``"--trace"`` on the
            command line).

    Raises:
        ConfigurationError: Neither a file nor a known name; the message lists the known names.
    """
    return _resolve(trace, "trace", argument, "an existing CSV file or the short name of an embedded trace")


def gpu_profile_path(gpu_profile: str | Path, argument: str = "gpu_profile") -> Path:
    """The CSV behind ``gpu_profile``: an existing file as given, else the embedded profile of that short name.

    Args:
        gpu_profile: A path to a Zeus trace-format CSV, or a short name such as ``"a40"``.
        argument: How the error names ``gpu_profile``.

    Raises:
        ConfigurationError: Neither a file nor a known name; the message lists the known names.
    """
    return _resolve(gpu_profile, "gpu_profile", argument,
                    "an existing CSV in the Zeus trace format or the short name of an embedded GPU profile")


def _resolve(value: str | Path, kind: str, argument: str, allowed: str) -> Path:
    if isinstance(value, (str, Path)) and str(value).strip():
        path = Path(value).expanduser()
        if path.is_file():
            return path
        if isinstance(value, str):
            for d in list_datasets(kind):
                if d.matches(value):
                    return d.path
    known = ", ".join(d.name for d in list_datasets(kind))
    hint = "`chase data list` shows the embedded data."
    if isinstance(value, (str, Path)) and (Path(value).suffix or len(Path(value).parts) > 1):
        hint = f"no file {Path(value).expanduser().resolve()} exists; " + hint
    raise ConfigurationError.invalid(argument, value if not isinstance(value, Path) else str(value),
                                     f"{allowed} ({known})", hint=hint)
