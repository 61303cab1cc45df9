"""Progress bars for batches of simulations and backtests: stderr only, off when stderr is no terminal.

``progress`` arguments across the package mean:

* ``None`` (default): on when ``sys.stderr`` is a terminal; ``CHASE_PROGRESS=1`` / ``0`` in the environment
  forces it on / off.
* ``True``: on (e.g. a notebook or a log file that should show it anyway); ``False``: off.

The bar appears only once the work has taken longer than ``delay_s`` (1 s), so quick batches print nothing.
It uses ``rich`` (installed with zeus) when it can be imported, else ``tqdm``, else nothing.

Example:
    >>> with progress_bar(3, "simulations", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.advance()
    >>> bar.completed
    3
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

#: Seconds of work before a bar is shown.
DEFAULT_DELAY_S = 1.0
_ENV = "CHASE_PROGRESS"


def progress_enabled(progress: bool | None) -> bool:
    """Resolve a ``progress`` argument (see the module docstring) to on/off."""
    if progress is not None:
        return bool(progress)
    env = os.environ.get(_ENV, "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # closed or detached stream
        return False


class ProgressBar:
    """A counter that draws a bar on stderr once the work has lasted ``delay_s``.

    Args:
        total: Units of work expected.
        description: Short text before the bar.
        enabled: ``progress`` argument (see the module docstring).
        delay_s: Seconds before the bar is first drawn (``None``: :data:`DEFAULT_DELAY_S`).

    Attributes:
        completed: Units done so far (counted whether or not a bar is drawn).
    """

    def __init__(self, total: int, description: str, enabled: bool | None = None,
                 delay_s: float | None = None) -> None:
        self.total = max(0, int(total))
        self.description = description
        self.enabled = progress_enabled(enabled)
        self.delay_s = DEFAULT_DELAY_S if delay_s is None else float(delay_s)
        self.completed = 0
        self._t0 = time.monotonic()
        self._backend: Any = None
        self._task: Any = None
        self._kind: str | None = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done; draw or update the bar when it is due."""
        self.completed += n
        if not self.enabled:
            return
        if self._backend is None:
            if time.monotonic() - self._t0 < self.delay_s:
                return
            self._start()  # starts at ``completed``
            return
        if self._kind == "rich":
            self._backend.update(self._task, completed=self.completed)
        elif self._kind == "tqdm":
            self._backend.update(n)

    def close(self) -> None:
        """Finish the bar (leaves the last state on stderr)."""
        if self._kind == "rich":
            self._backend.update(self._task, completed=self.completed)
            self._backend.stop()
        elif self._kind == "tqdm":
            self._backend.close()
        self._backend, self._kind = None, None
        self.enabled = False

    def _start(self) -> None:
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._backend = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=Console(file=sys.stderr), transient=False,
            )
            self._task = self._backend.add_task(self.description, total=self.total, completed=self.completed)
            self._backend.start()
            self._kind = "rich"
            return
        except ImportError:
            pass
        try:
            from tqdm import tqdm

            self._backend = tqdm(total=self.total, initial=self.completed, desc=self.description, file=sys.stderr)
            self._kind = "tqdm"
        except ImportError:
            self.enabled = False


def progress_bar(total: int, description: str, enabled: bool | None = None,
                 delay_s: float | None = None) -> ProgressBar:
    """A :class:`ProgressBar`; use it as a context manager so that it is closed on every exit path."""
    return ProgressBar(total, description, enabled, delay_s)
