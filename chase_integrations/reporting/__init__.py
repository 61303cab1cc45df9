"""Reading run reports and showing them: text summaries, terminal tables, timeline plots, progress bars.

``summary`` and ``progress`` need nothing beyond the package; ``timeline`` needs matplotlib (extra
``plot``), imported only when a plot is made.

Example:
    >>> from chase_integrations.reporting import format_summary, load_report, plot_timeline  # doctest: +SKIP
    >>> report = load_report("run.json")  # doctest: +SKIP
    >>> print(format_summary(report))  # doctest: +SKIP
    >>> plot_timeline(report).savefig("run.png")  # doctest: +SKIP
"""

from chase_integrations.reporting.progress import ProgressBar, progress_bar, progress_enabled
from chase_integrations.reporting.summary import (
    ReportError,
    format_intervals,
    format_summary,
    format_table,
    limit_breakdown,
    load_report,
    summarize,
    validate_report,
)
from chase_integrations.reporting.timeline import MissingExtraError, plot_timeline, require_matplotlib

__all__ = [
    "MissingExtraError",
    "ProgressBar",
    "ReportError",
    "format_intervals",
    "format_summary",
    "format_table",
    "limit_breakdown",
    "load_report",
    "plot_timeline",
    "progress_bar",
    "progress_enabled",
    "require_matplotlib",
    "summarize",
    "validate_report",
]
