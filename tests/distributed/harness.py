"""Running a two-process job from a test: its inputs, the launch (never a hang), and what it left behind.

Shared by the Trainer DDP tests (``tests/test_distributed.py``) and the plain-loop ones
(``tests/test_distributed_plain.py``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests" / "distributed"
SLOWDOWN_RANK1 = 1.25


def write_inputs(folder: Path) -> dict[str, Path]:
    """The GPU profile, a 25 %-slower copy for rank 1, the carbon trace, and a trace that ends weeks early."""
    profile = write_synthetic_gpu_profile(folder / "profile.csv")
    with profile.open() as f:
        rows = list(csv.reader(f))
    column = rows[0].index("time_per_epoch")
    slow = folder / "profile_slow.csv"
    with slow.open("w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [
            [f"{float(v) * SLOWDOWN_RANK1:.4f}" if i == column else v for i, v in enumerate(r)] for r in rows[1:]
        ])
    trace = write_synthetic_trace(folder / "trace.csv", start="2023-03-01T00:00:00Z", days=14)
    stale = write_synthetic_trace(folder / "stale.csv", start="2023-01-01T00:00:00Z", days=14)
    return {"profile": profile, "slow": slow, "trace": trace, "stale": stale}


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Job:
    """A finished two-process job: exit status, per-rank results and ``log`` calls, rank 0's report, log."""

    def __init__(self, rc: int, out: Path, elapsed_s: float, log: str) -> None:
        self.rc, self.out, self.elapsed_s, self.log = rc, out, elapsed_s, log
        self.ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
        logs = [out / f"log{r}.json" for r in (0, 1)]
        self.logged = [json.loads(p.read_text()) for p in logs] if all(p.exists() for p in logs) else None
        report = out / "report.json"
        self.report = json.loads(report.read_text()) if report.exists() else None

    def __repr__(self) -> str:
        return f"Job(rc={self.rc}, out={self.out}, log tail:\n{self.log[-3000:]})"


def run_job(name: str, command: list[str], out: Path, port: int, timeout_s: float, **env_extra: str) -> Job:
    """Run ``command`` (a launcher and its options) as a job; fail the test, never hang, past ``timeout_s``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK") and not k.startswith("ACCELERATE_")}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), PL_DISABLE_FORK="1",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               **env_extra)
    log_path = out / "job.log"
    t0 = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
            # A launcher's rank 0 may exit before the rank it launched has written its results.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all((out / f"rank{r}.json").exists() for r in (0, 1)):
                time.sleep(0.2)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the whole job: launcher and every rank
            proc.wait()
    elapsed = time.monotonic() - t0
    text = log_path.read_text(errors="replace")
    if rc is None:
        pytest.fail(f"{name} job did not finish within {timeout_s} s (a rank hung?). Log tail:\n{text[-3000:]}")
    missing = [r for r in (0, 1) if not (out / f"rank{r}.json").exists()]
    if missing:
        pytest.fail(f"{name} job (rc={rc}) left no results for ranks {missing}. Log tail:\n{text[-3000:]}")
    return Job(rc, out, elapsed, text)
