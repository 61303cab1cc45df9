"""Where the project's shared data folder lives: ``CHASE_DATA_DIR`` (default ``../shared/data``).

For the project's own tests and benchmarks only: an installed package has no such folder. The real data
that ships with the package is :mod:`chase_integrations.datasets`.
"""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULT_RELATIVE = Path("..") / "shared" / "data"


def data_dir() -> Path | None:
    """Return the shared data folder, or ``None`` when it is absent.

    ``CHASE_DATA_DIR``, when set, is the only place looked at; otherwise ``../shared/data`` relative to
    the repository root (the folder above this package) and then relative to the working directory.
    """
    env = os.environ.get("CHASE_DATA_DIR")
    if env:  # set explicitly: that folder or nothing
        return Path(env).resolve() if Path(env).is_dir() else None
    candidates = []
    repo_root = Path(__file__).resolve().parent.parent
    candidates += [repo_root / _DEFAULT_RELATIVE, Path.cwd() / _DEFAULT_RELATIVE]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def data_path(*parts: str) -> Path | None:
    """Return a path inside the shared data folder if it exists, else ``None``."""
    root = data_dir()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None
