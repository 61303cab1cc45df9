r"""The carbon-intensity CSVs people download, recognised by their columns, and how a trace is read.

:class:`~chase_integrations.carbon.trace.TraceProvider` reads any CSV with a timestamp column and an
intensity column. The layouts below are recognised by their column names, so their columns need not be
named, and their units are converted to gCO2eq/kWh:

* ``electricitymaps``: Electricity Maps data-portal export, ``Datetime (UTC)`` and
  ``Carbon Intensity gCO₂eq/kWh (direct)`` (gCO2eq/kWh);
* ``eia930``: EIA-930 derived (SustainDC), ``timestamp`` and ``avg_CI`` (gCO2/kWh);
* ``neso``: GB national, NESO historic generation mix, ``DATETIME`` and ``CARBON_INTENSITY`` (gCO2/kWh);
* ``neso-krisn13``: GB national (NESO actuals), ``datetime_utc`` and ``ci_gco2_per_kwh`` next to a
  ``ci_pred_1h_hgb`` forecast column (gCO2/kWh);
* ``watttime``: WattTime historical MOER, ``timestamp`` (or ``point_time``) and ``MOER`` (lbs CO2/MWh,
  × 0.453592 to gCO2/kWh);
* ``watttime-v3``: WattTime v3 historical, ``point_time`` and ``value`` (lbs CO2/MWh, × 0.453592).

Column names match whatever the case, spacing, or ``₂``/``2`` spelling. The Electricity Maps export
also has a life-cycle column (``... (LCA)``, newer exports ``... (Life cycle)``): pass its name as the value
column to use it instead of the direct one. Any other CSV works when it has one column that looks like a
time and one that looks like an intensity (``ci``, ``carbon_intensity``, ``..._gco2...``), or when the
columns are named; otherwise the error lists the formats above.

Example:
    >>> fmt = detect_format(["Datetime (UTC)", "Country", "Carbon Intensity gCO₂eq/kWh (direct)",
    ...                      "Carbon Intensity gCO₂eq/kWh (LCA)"])
    >>> fmt.name, fmt.columns_in(["Datetime (UTC)", "Carbon Intensity gCO₂eq/kWh (direct)"])
    ('electricitymaps', ('Datetime (UTC)', 'Carbon Intensity gCO₂eq/kWh (direct)'))
    >>> detect_format(["timestamp", "MOER", "frequency"]).to_g_per_kwh
    0.453592
    >>> detect_format(["when", "what"]) is None
    True
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chase_integrations.errors import ChaseWarning, ConfigurationError

logger = logging.getLogger(__name__)

#: 1 lb CO2 per MWh in g CO2 per kWh (453.592 g / 1000 kWh).
LBS_PER_MWH_TO_G_PER_KWH = 0.453592

_TIME_NAME = re.compile(r"(time|date|timestamp|period|from)", re.IGNORECASE)
_VALUE_NAME = re.compile(r"(^|_)(ci|carbon|intensity|gco2\w*|g_per_kwh|hist)($|_)", re.IGNORECASE)
_NOT_VALUE = re.compile(r"(pred|forecast|mwh|estimated)", re.IGNORECASE)
_EXACT_TIME = ("datetime_utc", "timestamp", "time", "datetime", "date")


@dataclass(frozen=True)
class TraceArguments:
    """What the caller named the trace's arguments, so that errors name what the user typed.

    Attributes:
        trace: The file argument (``path`` for :class:`TraceProvider`, ``trace`` for ``Simulation``).
        time_column: The timestamp-column argument.
        value_column: The intensity-column argument.

    Example:
        >>> SIMULATE_CLI_ARGUMENTS.pass_hint("value_column", "ci")
        "pass --trace-value-column 'ci'"
        >>> SIMULATION_ARGUMENTS.pass_hint("value_column", "ci")
        "pass trace_value_column='ci'"
    """

    trace: str = "path"
    time_column: str = "time_column"
    value_column: str = "value_column"

    def pass_hint(self, which: str, example: str = "NAME") -> str:
        """``pass NAME=...`` for a keyword, ``pass --name ...`` for a command-line option."""
        name = getattr(self, which)
        return f"pass {name} {example!r}" if name.startswith("-") else f"pass {name}={example!r}"


#: :class:`TraceProvider`'s own arguments.
PROVIDER_ARGUMENTS = TraceArguments()
#: ``Simulation(trace=..., trace_time_column=..., trace_value_column=...)`` and ``simulate(...)``.
SIMULATION_ARGUMENTS = TraceArguments("trace", "trace_time_column", "trace_value_column")
#: ``chase simulate --trace ... --trace-time-column ... --trace-value-column ...``.
SIMULATE_CLI_ARGUMENTS = TraceArguments("--trace", "--trace-time-column", "--trace-value-column")
#: ``chase backtest`` and ``chase demo``: ``--trace``, ``--time-column``, ``--value-column``.
CLI_ARGUMENTS = TraceArguments("--trace", "--time-column", "--value-column")


def _norm(name: object) -> str:
    return re.sub(r"\s+", " ", str(name).replace("₂", "2").strip().lower())


@dataclass(frozen=True)
class TraceFormat:
    """A downloadable CSV layout, recognised by its column names.

    Attributes:
        name: Short name (``"electricitymaps"``, ``"eia930"``, ...).
        description: Where such files come from.
        time_columns: Accepted names of the timestamp column (case and spacing ignored).
        value_column: The intensity column used by default.
        markers: Further columns that must be present for the format to match.
        to_g_per_kwh: Factor from the file's unit to gCO2eq/kWh (WattTime: lbs/MWh → 0.453592).
        unit: The value column's unit in the file.
    """

    name: str
    description: str
    time_columns: tuple[str, ...]
    value_column: str
    markers: tuple[str, ...] = ()
    to_g_per_kwh: float = 1.0
    unit: str = "gCO2eq/kWh"

    def columns_in(self, columns: Sequence[object]) -> tuple[str, str] | None:
        """The file's own (time, value) column names if ``columns`` has this layout, else ``None``."""
        by_norm = {_norm(c): c for c in columns}
        if any(_norm(m) not in by_norm for m in self.markers) or _norm(self.value_column) not in by_norm:
            return None
        for t in self.time_columns:
            if _norm(t) in by_norm:
                return by_norm[_norm(t)], by_norm[_norm(self.value_column)]
        return None

    def summary(self) -> str:
        """One line: name, columns and unit (for error messages and ``chase data``)."""
        time = " or ".join(repr(t) for t in self.time_columns)
        return f"{self.name}: {self.description} (columns {time}, {self.value_column!r}; {self.unit})"


KNOWN_FORMATS: tuple[TraceFormat, ...] = (
    TraceFormat("electricitymaps", "Electricity Maps data portal export", ("Datetime (UTC)",),
                "Carbon Intensity gCO₂eq/kWh (direct)"),
    TraceFormat("eia930", "EIA-930 derived hourly trace (SustainDC / dc-rl)", ("timestamp",), "avg_CI",
                unit="gCO2/kWh"),
    TraceFormat("neso", "GB national, NESO historic generation mix & carbon intensity", ("DATETIME",),
                "CARBON_INTENSITY", unit="gCO2/kWh"),
    TraceFormat("neso-krisn13", "GB national (NESO actuals) with a 1-h-ahead forecast column", ("datetime_utc",),
                "ci_gco2_per_kwh", markers=("ci_pred_1h_hgb",), unit="gCO2/kWh"),
    TraceFormat("watttime", "WattTime historical MOER", ("timestamp", "point_time", "datetime", "time"), "MOER",
                to_g_per_kwh=LBS_PER_MWH_TO_G_PER_KWH, unit="lbs CO2/MWh"),
    TraceFormat("watttime-v3", "WattTime v3 historical MOER", ("point_time",), "value",
                to_g_per_kwh=LBS_PER_MWH_TO_G_PER_KWH, unit="lbs CO2/MWh"),
)


def detect_format(columns: Sequence[object]) -> TraceFormat | None:
    """The first of :data:`KNOWN_FORMATS` whose columns ``columns`` has, else ``None``."""
    for fmt in KNOWN_FORMATS:
        if fmt.columns_in(columns) is not None:
            return fmt
    return None


def expected_formats() -> str:
    """The known formats, for error messages."""
    listed = "; ".join(f.summary() for f in KNOWN_FORMATS)
    return (f"Expected one of the known formats [{listed}], or a CSV with one timestamp column and one "
            "intensity column in gCO2eq/kWh.")


@dataclass(frozen=True)
class ParsedTrace:
    """A trace read from a CSV: sorted unique times and their values in gCO2eq/kWh.

    Attributes:
        times_s: Seconds since the epoch (int64), sorted, unique.
        values_g_per_kwh: Intensity per row, gCO2eq/kWh (float64).
        time_column: The timestamp column used.
        value_column: The intensity column used.
        format: The recognised layout, or ``None`` (a generic CSV).
        blank_rows: Rows dropped because the time or value was blank.
        unparsable_rows: Rows dropped because the time or value could not be parsed (warned).
    """

    times_s: np.ndarray
    values_g_per_kwh: np.ndarray
    time_column: str
    value_column: str
    format: TraceFormat | None
    blank_rows: int
    unparsable_rows: int


def parse_trace(frame, source: str, time_column: str | None = None, value_column: str | None = None,
                arguments: TraceArguments = PROVIDER_ARGUMENTS) -> ParsedTrace:
    """Pick the columns of ``frame`` (a ``pandas.DataFrame`` read from ``source``) and clean the rows.

    Timestamps without a zone are UTC; unsorted rows are sorted; duplicate timestamps are averaged. Blank
    cells are dropped (logged); cells that do not parse are dropped with a :class:`ChaseWarning` that counts
    them. A value column with no number at all, or a negative value, is a
    :class:`~chase_integrations.errors.ConfigurationError` naming the argument in ``arguments``.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"point_time": ["2024-01-01T00:00Z", "2024-01-01T01:00Z"], "value": [1000, 500]})
        >>> parsed = parse_trace(frame, "moer.csv")
        >>> parsed.format.name, parsed.values_g_per_kwh.tolist()
        ('watttime-v3', [453.592, 226.796])
    """
    columns = list(frame.columns)
    fmt = detect_format(columns)
    found = fmt.columns_in(columns) if fmt is not None else None
    time_col = _time_column(frame, time_column, found, source, arguments)
    value_col = _value_column(frame, value_column, time_col, found, source, arguments)
    # the format's unit applies to its own value column; another column the user named is taken as gCO2eq/kWh
    scale = fmt.to_g_per_kwh if found is not None and value_col == found[1] else 1.0
    return _clean(frame, time_col, value_col, fmt, scale, source, arguments)


def _time_column(frame, requested: str | None, found, source: str, arguments: TraceArguments) -> str:
    columns = list(frame.columns)
    if requested is not None:
        if requested not in columns:
            raise ConfigurationError.invalid(arguments.time_column, requested,
                                             f"one of the columns of {source}: {columns}")
        return requested
    if found is not None:
        return found[0]
    candidates = [c for c in columns if _TIME_NAME.search(str(c))]
    if len(candidates) == 1:
        return candidates[0]
    exact = [c for c in candidates if str(c).lower() in _EXACT_TIME]
    if len(exact) == 1:
        return exact[0]
    problem = "no column looks like a timestamp" if not candidates else f"several columns could be: {candidates}"
    raise ConfigurationError(
        f"`{arguments.time_column}` could not be inferred for {source}: {problem} among {columns}. "
        f"{expected_formats()} HINT: {arguments.pass_hint('time_column')}."
    )


def _value_column(frame, requested: str | None, time_col: str, found, source: str,
                  arguments: TraceArguments) -> str:
    import pandas as pd

    columns = [c for c in frame.columns if c != time_col]
    if requested is not None:
        if requested not in columns:
            raise ConfigurationError.invalid(arguments.value_column, requested,
                                             f"one of the value columns of {source}: {columns}")
        return requested
    if found is not None:
        return found[1]
    by_name = [c for c in columns if _VALUE_NAME.search(str(c)) and not _NOT_VALUE.search(str(c))]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise ConfigurationError(
            f"`{arguments.value_column}` is ambiguous for {source}: candidates {by_name}. "
            f"HINT: {arguments.pass_hint('value_column', str(by_name[0]))}."
        )
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c]) and not _NOT_VALUE.search(str(c))]
    if len(numeric) == 1:
        return numeric[0]
    raise ConfigurationError(
        f"`{arguments.value_column}` could not be inferred for {source}: no column looks like carbon intensity "
        f"among {columns}. {expected_formats()} HINT: {arguments.pass_hint('value_column')}."
    )


def _clean(frame, time_col: str, value_col: str, fmt: TraceFormat | None, scale: float, source: str,
           arguments: TraceArguments) -> ParsedTrace:
    import pandas as pd

    raw_t, raw_v = frame[time_col], frame[value_col]
    times = _to_utc(raw_t)
    values = pd.to_numeric(raw_v, errors="coerce") if not pd.api.types.is_numeric_dtype(raw_v) else raw_v
    values = values.astype(float) * scale
    blank_t, blank_v = _blank(raw_t), _blank(raw_v)
    bad_t, bad_v = times.isna() & ~blank_t, values.isna() & ~blank_v
    if len(frame) and (bad_v | blank_v).all() and bad_v.any():
        first = int(np.flatnonzero(bad_v.to_numpy())[0])
        raise ConfigurationError(
            f"`{arguments.value_column}` {value_col!r} of {source}: values are not numbers "
            f"(e.g. {_cell(raw_v.iloc[first])} in row {first + 2}); the intensity column must hold gCO2eq/kWh numbers."
        )
    if len(frame) and (bad_t | blank_t).all() and bad_t.any():
        first = int(np.flatnonzero(bad_t.to_numpy())[0])
        raise ConfigurationError(
            f"`{arguments.time_column}` {time_col!r} of {source}: no value is a timestamp "
            f"(e.g. {_cell(raw_t.iloc[first])} in row {first + 2}); expected ISO-8601 times such as 2024-01-01T00:00Z."
        )
    unparsable = bad_t | bad_v
    blank = (blank_t | blank_v) & ~unparsable
    if unparsable.any():
        first = int(np.flatnonzero(unparsable.to_numpy())[0])
        warnings.warn(
            f"{source}: dropped {int(unparsable.sum())} of {len(frame)} rows whose time ({time_col!r}) or value "
            f"({value_col!r}) could not be parsed (first in row {first + 2}: {_cell(raw_t.iloc[first])}, "
            f"{_cell(raw_v.iloc[first])}); the previous value holds there.",
            ChaseWarning,
            stacklevel=4,
        )
    if blank.any():
        logger.info("%s: %d rows with a blank time or value; the previous value holds there.", source,
                    int(blank.sum()))
    data = pd.DataFrame({"t": times, "v": values}).dropna()
    if data.empty:
        raise ConfigurationError(
            f"`{arguments.trace}` {source} has no usable rows in columns {time_col!r} and {value_col!r} "
            f"(`{arguments.time_column}`, `{arguments.value_column}`): every row needs a parsable time and a "
            "numeric intensity."
        )
    if (data["v"] < 0).any():
        bad = data.loc[data["v"] < 0].iloc[0]
        raise ConfigurationError(
            f"`{arguments.value_column}` {value_col!r} of {source} has a negative intensity {bad['v']} at "
            f"{bad['t']}; carbon intensity must be >= 0 gCO2eq/kWh."
        )
    if not data["t"].is_monotonic_increasing:
        logger.info("%s: rows are not in time order; sorting.", source)
    series = data.groupby("t", sort=True)["v"].mean()
    times_s = np.asarray(series.index.as_unit("s").asi8, dtype=np.int64)
    return ParsedTrace(times_s, series.to_numpy(dtype=float), str(time_col), str(value_col), fmt,
                       int(blank.sum()), int(unparsable.sum()))


def _to_utc(raw):
    """Parse timestamps as UTC (naive ones are UTC): ISO-8601 fast path, then any format pandas knows."""
    import pandas as pd

    try:
        return pd.to_datetime(raw, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")


def _cell(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _blank(raw):
    if raw.dtype == object:
        return raw.isna() | (raw.astype(str).str.strip() == "")
    return raw.isna()
