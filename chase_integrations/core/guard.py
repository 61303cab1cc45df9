"""Adapter hooks that cannot break the user's training: the fail-safe boundary of both callbacks.

A tool that changes other people's GPU settings must never be why their job fails. Every adapter hook
that runs engine code goes through :func:`guarded`: an unexpected exception raised inside
chase-integrations is handed to :meth:`ChaseSession.absorb_internal_error
<chase_integrations.core.session.ChaseSession.absorb_internal_error>`, which (single process,
``strict=False``) counts it, warns once, restores the GPUs and stops the session; the hook returns
``None`` and training goes on. ``KeyboardInterrupt`` and ``SystemExit`` always propagate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def guarded(where: str, *, after_failure: bool = False) -> Callable[[F], F]:
    """Decorate an adapter hook (a method of an object with a ``session`` attribute).

    Args:
        where: The hook's name, for the report's ``notes`` and the warning.
        after_failure: Still run the hook once the session has absorbed an internal error (train end:
            the report is written and the GPUs are restored either way).
    """

    def decorate(hook: F) -> F:
        @functools.wraps(hook)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.session.broken and not after_failure:
                return None
            try:
                return hook(self, *args, **kwargs)
            except Exception as e:
                self.session.absorb_internal_error(where, e)  # re-raises when strict or multi-process
                return None

        return wrapper  # type: ignore[return-value]

    return decorate
