"""The arguments every adapter takes, defined once: their documentation, signature and checking.

:class:`~chase_integrations.core.config.ChaseConfig` holds the arguments and validates them;
:data:`ARGUMENTS` documents each one. The adapters (``ChaseCallback``, ``ChaseTrainerCallback``,
``Chase``) take ``provider`` plus these keywords through :func:`config_from`, show them through
:func:`adapter_signature` (``help()``, ``inspect.signature``, IDEs that read it) and document them
through :func:`arguments_doc`; ``docs/configuration.md`` is checked against the same table.

Example:
    >>> from chase_integrations.carbon import StaticProvider
    >>> config_from("ChaseCallback", StaticProvider(300.0), {"max_slowdown": 0.1}).max_slowdown
    0.1
    >>> config_from("ChaseCallback", StaticProvider(300.0), {"max_slowdwn": 0.1})
    Traceback (most recent call last):
    ...
    TypeError: ChaseCallback() got an unexpected keyword argument 'max_slowdwn'; did you mean 'max_slowdown'?
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import textwrap
from typing import Any

from chase_integrations.core.accounting import metrics_table
from chase_integrations.core.config import ChaseConfig

#: One line (or a few) per argument, in the order of :class:`ChaseConfig`'s fields.
ARGUMENTS: dict[str, str] = {
    "provider": "Where carbon intensity comes from (see :mod:`chase_integrations.carbon`).",
    "policy": '``"budget"`` (least carbon within ``max_slowdown``), ``"chase"`` (the Chase paper\'s rule), '
              '``"static"`` (one fixed limit), ``"monitor"`` (measure and log only), or a policy object.',
    "max_slowdown": "Budget policy: allowed increase of total training time over the default limit, a fraction "
                    "(0.05 = 5 %).",
    "eta": "Chase policy: the paper's η in [0, 1].",
    "max_intensity_g_per_kwh": "Chase policy: the paper's MaxCI in gCO2eq/kWh; ``None`` = highest in the last 24 h.",
    "static_power_limit_w": "Static policy: the limit in W.",
    "forecaster": '``"arima"``, ``"persistence"``, ``"seasonal_naive"`` or a forecaster object.',
    "decision_interval_s": "Also decide every N seconds inside an epoch; ``None`` = at epoch ends only.",
    "power_limits_w": "Candidate limits in W; ``None`` = the GPU's range in 25 W steps.",
    "profile_path": "Save the measured per-limit profile here and reuse it when it matches: a file, or a folder "
                    "(an existing directory or a path ending in ``/``) of profiles keyed by GPU model, world size "
                    "and workload.",
    "gpus": "A ``zeus.device.gpu.GPUs``; ``None`` = ``zeus.device.get_gpus()``.",
    "simulation": "A :class:`~chase_integrations.simulation.Simulation`: simulated GPUs, clock and time per step.",
    "pue": "Data-centre power usage effectiveness (>= 1); emissions = energy × PUE × intensity.",
    "host_power_w": "Watts per GPU for the rest of the server that is not measured (fans, NICs, storage, PSU "
                    "losses; CPUs and DRAM too where RAPL is unreadable); ``None`` = not counted. Enters the "
                    "objective, the ledger and the baseline (report ``scope`` ``\"node\"``).",
    "embodied_g_per_gpu_hour": "Embodied emissions per GPU-hour of running, gCO2eq (0 = not counted); charged "
                               "for the run's and the baseline's own durations.",
    "report_path": "Write the JSON run report here when training ends.",
    "strict": "Raise instead of degrading (no permission to set limits, provider down, no limit watchdog).",
    "profile_warmup_steps": "Advanced: most steps run at each limit before it is measured (the warm-up also ends "
                            "after half of ``profile_min_window_s``, and is skipped once a step lasts that long).",
    "profile_measure_steps": "Advanced: fewest steps measured at each limit (a window also lasts at least "
                             "``profile_min_window_s``).",
    "profile_min_window_s": "Advanced: shortest measurement window per limit, s (energy counters are coarse); "
                            "a window ends after this long and at least one full step at the limit.",
    "fallback_intensity_g_per_kwh": "Advanced: intensity used when the provider, the forecast and the last known "
                                    "value all fail; ``None`` = the world average (475 gCO2eq/kWh).",
    "max_reading_age_s": "Advanced: a provider reading older than this counts as a failure, s.",
    "watchdog": "Restore the original limits from a separate process if the training process is killed "
                "(SIGKILL, OOM kill, segfault); ``False`` to opt out.",
}


def _fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(ChaseConfig))


def argument_names() -> list[str]:
    """Every argument's name, ``provider`` first."""
    return [f.name for f in _fields()]


def argument_defaults() -> dict[str, Any]:
    """Each keyword argument's default (``provider`` has none)."""
    return {f.name: f.default for f in _fields() if f.default is not dataclasses.MISSING}


def adapter_signature(*extra: inspect.Parameter) -> inspect.Signature:
    """``(self, provider, *, <every argument>=default, <extra>)``: the signature adapters show."""
    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("provider", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    ]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
               for name, default in argument_defaults().items()]
    return inspect.Signature([*params, *extra])


def config_from(owner: str, provider: Any, kwargs: dict[str, Any]) -> ChaseConfig:
    """Validate ``provider`` and ``kwargs`` into a :class:`ChaseConfig`; an unknown keyword is a ``TypeError``."""
    known = set(argument_defaults())
    for name in kwargs:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the arguments are {sorted(known)}"
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}{hint}")
    return ChaseConfig(provider=provider, **kwargs)


def arguments_doc(indent: int = 8) -> str:
    """The ``Args:`` entries for every argument, Google style, indented for a class docstring."""
    lines = []
    for name in argument_names():
        text = textwrap.wrap(f"{name}: {ARGUMENTS[name]}", width=112 - indent)
        lines.append(text[0])
        lines += ["    " + rest for rest in text[1:]]
    return textwrap.indent("\n".join(lines), " " * indent).lstrip()


def argument_help(name: str, cli_note: str = "") -> str:
    """``ARGUMENTS[name]`` as a command-line flag's help: plain text, no Python objects, ``argparse``-safe.

    Example:
        >>> argument_help("pue")
        'Data-centre power usage effectiveness (>= 1); emissions = energy × PUE × intensity.'
        >>> argument_help("max_slowdown").endswith("(0.05 = 5 %%).")  # argparse prints %% as %
        True
    """
    text = ARGUMENTS[name].replace("``None`` =", "not given =").replace(", or a policy object", "")
    text = text.replace(" or a forecaster object", "").replace("``", "")
    text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = (text + (" " + cli_note if cli_note else "")).replace("%", "%%")
    return text


def with_arguments(cls: type) -> type:
    """Class decorator: fill ``{arguments}`` and ``{metrics}`` in the docstring; give ``__init__`` its signature."""
    if cls.__doc__:
        cls.__doc__ = cls.__doc__.replace("{arguments}", arguments_doc()).replace("{metrics}", metrics_table())
    init = cls.__init__
    extra = [p for p in inspect.signature(init).parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in argument_defaults()]
    init.__signature__ = adapter_signature(*extra)
    return cls
