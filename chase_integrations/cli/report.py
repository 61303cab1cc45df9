"""``chase report RUN.json [--plot OUT.png]``: summarize a run report and optionally plot it.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="chase")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["report", "run.json", "--plot", "run.png"])
    >>> args.report, args.plot
    ('run.json', 'run.png')
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``chase report`` on an argparse ``subparsers`` object and return its parser."""
    p = subparsers.add_parser(
        "report", help="summarize a run report (JSON) and optionally plot it",
        description="Print a run report's carbon, energy and time against the default limit and a table of "
                    "time, energy and carbon per power limit; with --plot, also draw intensity, forecast, power "
                    "limit and cumulative carbon over time (needs matplotlib: pip install "
                    "\"chase-integrations[plot]\").",
    )
    p.add_argument("report", help="run report JSON (report_path=..., chase demo --report, chase simulate --report)")
    p.add_argument("--plot", metavar="OUT.png", default=None, help="write the timeline plot here (PNG, SVG, PDF)")
    p.add_argument("--dpi", type=int, default=120, help="resolution of --plot for raster formats (default 120)")
    p.add_argument("--intervals", action="store_true", help="also print one row per interval")
    p.add_argument("--json", action="store_true", help="print the summary numbers as one JSON object")
    p.set_defaults(run=run, func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``chase report``; errors are :class:`~chase_integrations.errors.ChaseError` (exit status 2)."""
    from chase_integrations.reporting.summary import (
        format_intervals,
        format_summary,
        format_table,
        load_report,
        summarize,
    )

    report = load_report(args.report)
    figure = None
    if args.plot:
        from chase_integrations.reporting.timeline import plot_timeline

        figure = plot_timeline(report)
    if args.json:
        print(json.dumps(summarize(report)))
    else:
        print(format_summary(report))
        print()
        print(format_table(report))
        if args.intervals:
            print()
            print(format_intervals(report))
    if figure is not None:
        out = Path(args.plot)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(out, dpi=args.dpi)
        except (OSError, ValueError) as e:
            from chase_integrations.reporting.summary import ReportError

            raise ReportError(f"cannot write the plot to {str(out)!r}: {e}") from e
        if not args.json:
            print(f"\nwrote {out}")
    return 0
