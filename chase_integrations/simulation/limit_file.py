"""Simulated GPUs' power limits in a JSON file, so that several processes see the same GPUs.

A real GPU's limit lives in the driver: every process on the node (the trainer, the limit watchdog,
``nvidia-smi``) reads and writes the same value. A :class:`~chase_integrations.simulation.SimulatedGPU`
keeps its limit in memory unless :class:`~chase_integrations.simulation.SimulatedGPUs` is given a
``state_path``; then the limit is read from and written to this file on every access, and any process
can open the same GPUs with :meth:`SimulatedGPUs.from_state_file`.

The file (JSON) describes each GPU and records who set what::

    {"version": 1, "gpus": {"0": {"name": "...", "min_limit_w": 100, "max_limit_w": 300,
                                 "power_limit_mw": 275000, "history": [[200, 4242], [275, 4242]]}}}

``history`` lists ``[limit_w, pid]`` for every set (the last :data:`HISTORY_MAX`), so tests can tell the
trainer's writes from the watchdog's. Writes are atomic (a temporary file, then ``os.replace``) and
serialised across processes by ``flock`` on ``<path>.lock``; readers never see a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

VERSION = 1
#: Set operations kept per GPU in the file's ``history``.
HISTORY_MAX = 1000


class LimitFile:
    """The shared state of a set of simulated GPUs (see the module docstring).

    Args:
        path: The JSON file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def create(self, gpus: dict[int, dict]) -> None:
        """(Re)write the file describing ``gpus``: index -> name, min/max limit (W), ``power_limit_mw``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": VERSION, "gpus": {str(i): {**g, "history": []} for i, g in gpus.items()}}
        with self._locked():
            self._write(data)

    def read(self) -> dict:
        """The whole file (see the module docstring)."""
        return json.loads(self.path.read_text())

    def read_mw(self, gpu_index: int) -> int:
        """The current limit of GPU ``gpu_index``, mW."""
        return int(self.read()["gpus"][str(gpu_index)]["power_limit_mw"])

    def write_mw(self, gpu_index: int, power_limit_mw: int) -> None:
        """Set GPU ``gpu_index``'s limit (mW) and append ``[W, this pid]`` to its history."""
        with self._locked():
            data = self.read()
            gpu = data["gpus"][str(gpu_index)]
            gpu["power_limit_mw"] = int(power_limit_mw)
            gpu["history"] = [*gpu["history"], [int(power_limit_mw) // 1000, os.getpid()]][-HISTORY_MAX:]
            self._write(data)

    def history(self, gpu_index: int) -> list[tuple[int, int]]:
        """``(limit_w, pid)`` of every set of GPU ``gpu_index``, oldest first."""
        return [(int(w), int(pid)) for w, pid in self.read()["gpus"][str(gpu_index)]["history"]]

    def _write(self, data: dict) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def _locked(self):
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
