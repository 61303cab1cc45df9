"""``chase backtest``: rolling-origin accuracy of forecasters on a carbon-intensity trace.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="chase")
    >>> add_parser(parser.add_subparsers(dest="command"))  # doctest: +ELLIPSIS
    ArgumentParser(prog='chase backtest', ...)
    >>> args = parser.parse_args(["backtest", "--trace", "t.csv", "--start", "2024-01-01", "--days", "7"])
    >>> args.horizons, args.forecasters
    ('1,6,24', 'arima,persistence,seasonal_naive')
"""

from __future__ import annotations

import argparse
import json
import math
import sys

_MAPE_NOTE = "MAPE is a fraction over hours whose actual value is > 0; '-' where none (use MAE)."


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``backtest`` on an argparse ``subparsers`` object and return its parser."""
    parser = subparsers.add_parser(
        "backtest",
        help="rolling-origin forecast accuracy (MAPE, MAE) on a trace",
        description="Forecast every hour of DAYS days from START using only the data before it "
        "(rolling origin) and report MAPE and MAE per forecaster and horizon. ARIMA refits every "
        "24 h and appends new hours in between, as it does live. " + _MAPE_NOTE,
    )
    parser.add_argument("--trace", required=True, help="CSV trace (a timestamp and an intensity column) or an "
                        "embedded trace's short name, e.g. US-CISO-2022 (`chase data list`)")
    parser.add_argument("--start", required=True, help="first evaluated hour, ISO-8601 (UTC if no zone)")
    parser.add_argument("--days", required=True, type=float, help="evaluation window in days")
    parser.add_argument("--horizons", default="1,6,24", help="hours ahead, comma-separated (default 1,6,24)")
    parser.add_argument(
        "--forecasters",
        default="arima,persistence,seasonal_naive",
        help="comma-separated: arima, persistence, seasonal_naive",
    )
    parser.add_argument("--history-hours", type=int, default=14 * 24, help="history before the first origin")
    parser.add_argument("--time-column", default=None, help="timestamp column (default: inferred)")
    parser.add_argument("--value-column", default=None, help="intensity column (default: inferred)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: only when stderr is a terminal)")
    parser.set_defaults(func=run, run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the backtest described by ``args``; print a table or JSON; return the exit code."""
    from chase_integrations.carbon.formats import CLI_ARGUMENTS
    from chase_integrations.carbon.trace import TraceProvider
    from chase_integrations.errors import ChaseError
    from chase_integrations.forecast.backtest import backtest
    from chase_integrations.simulation.clock import parse_utc

    try:
        horizons = _int_list(args.horizons, "--horizons")
        names = [n.strip() for n in str(args.forecasters).split(",") if n.strip()]
        try:
            start = parse_utc(args.start)
        except ValueError as e:
            raise _usage(f"--start must be an ISO-8601 time, got {args.start!r}") from e
        trace = TraceProvider(args.trace, time_column=args.time_column, value_column=args.value_column,
                              arguments=CLI_ARGUMENTS)
        results = backtest(
            trace.times_s, trace.values_g_per_kwh, start, args.days, horizons, names, args.history_hours,
            progress=getattr(args, "progress", None),
        )
    except (ChaseError, _UsageError) as e:
        print(f"chase backtest: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        rows = [{k: _json_safe(v) for k, v in r.to_dict().items()} for r in results]
        print(json.dumps({"results": rows}))
        return 0
    print(f"trace {trace.path.name} [{trace.value_column}], {args.days:g} days from {start.isoformat()}")
    print(f"{'forecaster':<16} {'horizon_h':>9} {'MAPE':>8} {'MAE g/kWh':>10} {'n':>6}")
    for r in results:
        mape = "-" if r.mape is None else f"{r.mape:.4f}"
        print(f"{r.forecaster:<16} {r.horizon_h:>9d} {mape:>8} {r.mae:>10.2f} {r.n:>6d}")
    print(_MAPE_NOTE)
    return 0


class _UsageError(Exception):
    pass


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError as e:
        raise _usage(f"{option} must be comma-separated integers, got {text!r}") from e
    if not values or min(values) < 1:
        raise _usage(f"{option} must be integers >= 1, got {text!r}")
    return values


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
