"""SIGTERM restores the original limit, in a real subprocess (the process boundary is the point)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("mode", ["session", "lightning"])
def test_sigterm_restores_original_limit(tmp_path, mode):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "sigterm_child.py"), mode, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    limits = [int(x) for x in (tmp_path / "limits.log").read_text().split()]
    assert 200 in limits, (limits, proc.stderr[-2000:])
    assert limits[-1] == 275, (limits, proc.stderr[-2000:])
    if mode == "session":
        assert proc.returncode == 143  # our handler restored, then exited with 128 + SIGTERM
    else:
        assert "Received SIGTERM" in proc.stderr  # Lightning's own handler still ran (we chain, not replace)
