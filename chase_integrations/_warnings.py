"""Warn once per key, in the package's own category.

Each session owns a :class:`OnceWarner`, so "loud once" means once per training run, not once per
process (two runs in one notebook both warn).
"""

from __future__ import annotations

import threading
import warnings

from chase_integrations.errors import ChaseWarning


class OnceWarner:
    """Emit each keyed warning at most once.

    Example:
        >>> import warnings
        >>> w = OnceWarner()
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = w.warn("k", "first"); _ = w.warn("k", "second")
        >>> [str(c.message) for c in caught]
        ['first']
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def warn(self, key: str, message: str, stacklevel: int = 3) -> bool:
        """Warn with ``message`` the first time ``key`` is seen; return whether it warned."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
        warnings.warn(message, ChaseWarning, stacklevel=stacklevel)
        return True

    @property
    def keys(self) -> frozenset[str]:
        """The keys warned about so far."""
        return frozenset(self._seen)
