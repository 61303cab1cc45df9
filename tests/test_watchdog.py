"""The limit watchdog: a separate process restores the original limits when the trainer dies unseen (SIGKILL).

Real processes throughout, over simulated GPUs whose limits live in a file (``power_state_path``), which
the trainer, the watchdog and the test all open, as every process on a node sees a real GPU's limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from zeus.device.gpu.common import GPUs

from chase_integrations.carbon import StaticProvider
from chase_integrations.core.collective import LocalCollective
from chase_integrations.core.config import ChaseConfig
from chase_integrations.core.session import ChaseSession, RunContext
from chase_integrations.errors import ConfigurationError, PowerControlError
from chase_integrations.power.limits import PowerLimitController
from chase_integrations.power.watchdog import gpus_factory, restore_if_ours
from chase_integrations.simulation import SimulatedGPU, SimulatedGPUs
from chase_integrations.simulation.limit_file import LimitFile
from tests.test_zeusd import zeusd  # noqa: F401 - the stand-in zeusd fixture

ROOT = Path(__file__).resolve().parent.parent
FACTORY = "chase_integrations.simulation.gpu:SimulatedGPUs.from_state_file"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _gpus(path: Path, n: int = 2, limit_w: int = 275) -> SimulatedGPUs:
    return SimulatedGPUs([SimulatedGPU(i, "sim", 100, 300, power_w_at=lambda w: w, initial_limit_w=limit_w)
                          for i in range(n)], state_path=str(path))


def _limits(path: Path) -> list[int]:
    gpus = json.loads(path.read_text())["gpus"]
    return [gpus[str(i)]["power_limit_mw"] // 1000 for i in range(len(gpus))]


def _writers(path: Path, gpu: int) -> list[int]:
    return [pid for _, pid in LimitFile(path).history(gpu)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition, timeout_s: float) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout_s, f"not within {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - t0


def _watchdogs_of(pid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"chase_integrations.power.watchdog" in cmd:
            found.append(int(d.name))
    return found


# ============================================================ the child, spoken to directly over its protocol
class Child:
    """A watchdog process with the test as its trainer."""

    def __init__(self, state: Path, originals_w: dict[int, int], factory: str = FACTORY) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "chase_integrations.power.watchdog"], env=ENV,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.send(op="watch", parent_pid=os.getpid(), factory=factory, args=[str(state)],
                  originals_w={str(i): w for i, w in originals_w.items()})
        self.reply = json.loads(self.proc.stdout.readline())

    def send(self, **message) -> None:
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def close(self, timeout_s: float = 5.0) -> tuple[int, str]:
        """Close the pipe without "done" (what the trainer's death does); exit status and stderr."""
        self.proc.stdin.close()
        rc = self.proc.wait(timeout_s)
        return rc, self.proc.stderr.read().decode()


def test_child_restores_every_gpu_when_the_pipe_closes(tmp_path):
    state = tmp_path / "gpus.json"
    trainer = _gpus(state)
    child = Child(state, {0: 275, 1: 275})
    assert child.reply == {"ready": True}
    for i in (0, 1):
        child.send(op="set", gpu=i, w=200)
        trainer.set_power_management_limit(i, 200_000)
        child.send(op="ok", gpu=i, w=200)
    t0 = time.monotonic()
    rc, err = child.close()
    assert rc == 0 and time.monotonic() - t0 < 5
    assert _limits(state) == [275, 275]
    assert _writers(state, 0)[-1] == child.proc.pid and _writers(state, 1)[-1] == child.proc.pid
    assert err.count("\n") == 1 and "restored GPU 0 200 -> 275 W, GPU 1 200 -> 275 W" in err, err


def test_child_leaves_alone_a_gpu_someone_else_changed_after_our_last_set(tmp_path):
    state = tmp_path / "gpus.json"
    trainer = _gpus(state)
    child = Child(state, {0: 275, 1: 275})
    for i in (0, 1):
        child.send(op="set", gpu=i, w=200)
        trainer.set_power_management_limit(i, 200_000)
        child.send(op="ok", gpu=i, w=200)
    SimulatedGPUs.from_state_file(str(state)).set_power_management_limit(1, 250_000)  # an admin, nvidia-smi
    rc, err = child.close()
    assert rc == 0 and _limits(state) == [275, 250]
    assert child.proc.pid not in _writers(state, 1)
    assert "left alone GPU 1 (at 250 W, changed by someone else" in err, err


def test_child_restores_a_limit_announced_but_not_confirmed(tmp_path):
    """Killed between the set and its confirmation: the limit read is still ours."""
    state = tmp_path / "gpus.json"
    trainer = _gpus(state, n=1)
    child = Child(state, {0: 275})
    child.send(op="set", gpu=0, w=200)
    trainer.set_power_management_limit(0, 200_000)
    assert child.close()[0] == 0 and _limits(state) == [275]


def test_child_exits_on_done_without_touching_anything(tmp_path):
    state = tmp_path / "gpus.json"
    trainer = _gpus(state, n=1)
    child = Child(state, {0: 275})
    child.send(op="set", gpu=0, w=200)
    trainer.set_power_management_limit(0, 200_000)
    child.send(op="ok", gpu=0, w=200)
    child.send(op="done")
    assert child.proc.wait(2) == 0
    assert _limits(state) == [200]  # left as is: "done" means the trainer restored (here it did not, on purpose)
    assert child.proc.pid not in _writers(state, 0) and child.proc.stderr.read() == b""


def test_never_restores_twice(tmp_path):
    state = tmp_path / "gpus.json"
    trainer = _gpus(state, n=1)
    child = Child(state, {0: 275})
    child.send(op="set", gpu=0, w=200)
    trainer.set_power_management_limit(0, 200_000)
    child.send(op="ok", gpu=0, w=200)
    trainer.set_power_management_limit(0, 275_000)  # the trainer restored, then died before saying "done"
    rc, err = child.close()
    assert rc == 0 and err == "" and child.proc.pid not in _writers(state, 0)
    # The pure restore: a second call finds the original and writes nothing.
    trainer.set_power_management_limit(0, 200_000)
    assert restore_if_ours(trainer, {0: 275}, {0: {200}}) == (["GPU 0 200 -> 275 W"], [])
    assert restore_if_ours(trainer, {0: 275}, {0: {200}}) == ([], [])
    assert trainer.gpus[0].limit_history_w == [200, 275, 200, 275]


def test_child_that_cannot_open_the_gpus_says_so(tmp_path):
    state = tmp_path / "gpus.json"
    _gpus(state, n=1)
    child = Child(state, {0: 275}, factory="chase_integrations.no_such_module:make")
    assert child.reply["ready"] is False and "ModuleNotFoundError" in child.reply["error"]
    assert child.proc.wait(5) == 1


# ============================================================ the trainer's side: PowerLimitController
def test_controller_starts_the_watchdog_at_the_first_change_and_dismisses_it_after_restore(tmp_path):
    state = tmp_path / "gpus.json"
    ctl = PowerLimitController(_gpus(state), [0, 1])
    ctl.remember_originals()
    ctl.check_permission()
    assert ctl.watchdog_status() == {"ran": False, "reason": "no power limit was changed (monitor/advisory)"}
    ctl.set_all_w(200)
    status = ctl.watchdog_status()
    pid = status["pid"]
    assert status == {"ran": True, "pid": pid, "state": "watching"} and _alive(pid)
    assert _watchdogs_of(os.getpid()) == [pid]
    ctl.set_all_w(225)
    assert ctl.watchdog_status()["pid"] == pid  # one per run
    assert ctl.restore() == [] and _limits(state) == [275, 275]
    assert ctl.watchdog_status() == {"ran": True, "pid": pid, "state": "dismissed"}
    assert not _alive(pid)
    assert pid not in _writers(state, 0) + _writers(state, 1)


def test_no_watchdog_when_opted_out_or_unreachable(tmp_path):
    opted_out = PowerLimitController(_gpus(tmp_path / "a.json"), [0], watchdog=False)
    opted_out.remember_originals()
    opted_out.set_all_w(200)
    assert opted_out.watchdog_status() == {"ran": False, "reason": "watchdog=False"}
    in_memory = SimulatedGPUs([SimulatedGPU(0, "sim", 100, 300, power_w_at=lambda w: w)])
    ctl = PowerLimitController(in_memory, [0])
    ctl.remember_originals()
    ctl.set_all_w(200)
    assert "keep their limits in memory" in ctl.watchdog_status()["reason"]
    assert _watchdogs_of(os.getpid()) == []
    opted_out.restore()
    ctl.restore()


class _BrokenSpec(SimulatedGPUs):
    """Simulated GPUs whose watchdog cannot start (its factory module does not exist)."""

    def watchdog_spec(self):
        return {"factory": "chase_integrations.no_such_module:make", "args": []}


class _NoSpecGPUs(GPUs):
    """A ``GPUs`` of the user's own, without ``watchdog_spec()``: another process cannot reach its GPUs."""

    def __init__(self) -> None:
        self._gpus = [SimulatedGPU(0, "sim", 100, 300, power_w_at=lambda w: w, initial_limit_w=275)]

    def __del__(self) -> None:
        pass

    @property
    def gpus(self):
        return self._gpus


def test_a_watchdog_that_cannot_start_is_reported_and_training_goes_on(tmp_path, caplog):
    gpus = _BrokenSpec([SimulatedGPU(0, "sim", 100, 300, power_w_at=lambda w: w, initial_limit_w=275)])
    ctl = PowerLimitController(gpus, [0])
    ctl.remember_originals()
    ctl.set_all_w(200)
    assert gpus.gpus[0].power_limit_w == 200
    assert ctl.watchdog_status()["reason"].startswith("could not start: ModuleNotFoundError")
    assert "not after SIGKILL" in caplog.text
    ctl.restore()


@pytest.mark.usefixtures("zeusd")
def test_zeus_gpus_are_reopened_by_physical_index_with_zeusd_from_the_environment(monkeypatch):
    """The trainer sees physical GPU 3 as its GPU 0; the child opens Zeus's GPUs without CUDA_VISIBLE_DEVICES
    (and with ZEUSD_SOCK_PATH, inherited, so Zeus picks zeusd there too) and addresses it as GPU 3."""
    from zeus.device.gpu.nvidia import NVIDIAGPUs, ZeusdNVIDIAGPU

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    gpus = NVIDIAGPUs()
    assert isinstance(gpus.gpus[0], ZeusdNVIDIAGPU)
    factory, why_not = gpus_factory(gpus)
    assert why_not is None and factory.target == "zeus.device.gpu.nvidia:NVIDIAGPUs"
    assert factory.child_index(0) == 3 and "CUDA_VISIBLE_DEVICES" in factory.unset_env


def test_a_gpus_object_without_spec_gets_no_watchdog_and_a_warning(caplog):
    ctl = PowerLimitController(_NoSpecGPUs(), [0])
    ctl.remember_originals()
    ctl.set_all_w(200)
    assert ctl.watchdog_status()["reason"].startswith("_NoSpecGPUs has no watchdog_spec(): another process cannot")
    assert [r.levelname for r in caplog.records if "no limit watchdog" in r.getMessage()] == ["WARNING"]
    ctl.restore()


@pytest.mark.parametrize("allow_set", [True, False])
def test_session_report_says_whether_a_watchdog_ran(tmp_path, make_sim, allow_set):
    sim = make_sim(power_state_path=tmp_path / "gpus.json", allow_set_power_limit=allow_set)
    session = ChaseSession(ChaseConfig(provider=StaticProvider(300.0), simulation=sim, policy="static",
                                       static_power_limit_w=200, forecaster="persistence", profile_warmup_steps=0,
                                       profile_measure_steps=1))
    session.start(RunContext([0], LocalCollective(), total_steps=10))
    for _ in range(5):
        session.step_end()
    report = session.end()
    if allow_set:
        assert session.mode == "active" and report["watchdog"]["ran"] and report["watchdog"]["state"] == "dismissed"
        assert not _alive(report["watchdog"]["pid"])
    else:  # advisory: nothing to restore, no watchdog
        assert session.mode == "advisory" and report["watchdog"]["ran"] is False
    assert report["config"]["watchdog"] is True and sim.power_limits_w == [275]


def test_watchdog_option_is_validated():
    with pytest.raises(ConfigurationError, match="`watchdog` must be True or False, got 'yes'"):
        ChaseConfig(provider=StaticProvider(300.0), watchdog="yes")
    assert ChaseConfig(provider=StaticProvider(300.0), watchdog=False).to_json()["watchdog"] is False


# ============================================================ end to end: a trainer SIGKILLed mid-run
def _start(tmp_path: Path, adapter: str, scenario: str) -> subprocess.Popen:
    with open(tmp_path / "stderr.txt", "w") as stderr:  # the trainer's, and its watchdog's (inherited)
        return subprocess.Popen([sys.executable, str(ROOT / "tests" / "watchdog_child.py"), adapter, scenario,
                                 str(tmp_path)], env=ENV, stdout=subprocess.DEVNULL, stderr=stderr)


def _mid_run(tmp_path: Path, proc: subprocess.Popen) -> int:
    """Wait for the trainer to sit mid-run at 200 W; its watchdog's pid."""
    marker = tmp_path / "midrun"
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _limits(tmp_path / "gpus.json") == [200, 200]
    watchdogs = _watchdogs_of(proc.pid)
    assert len(watchdogs) == 1, watchdogs
    return watchdogs[0]


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["lightning", "hf"])
def test_sigkill_mid_run_restores_within_5_s_and_leaves_a_foreign_limit(tmp_path, adapter):
    state = tmp_path / "gpus.json"
    proc = _start(tmp_path, adapter, "pause")
    try:
        watchdog = _mid_run(tmp_path, proc)
        SimulatedGPUs.from_state_file(str(state)).set_power_management_limit(1, 250_000)  # someone else, after us
        proc.send_signal(signal.SIGKILL)
        elapsed = _wait(lambda: _limits(state)[0] == 275, 5.0)
        _wait(lambda: not _alive(watchdog), 5.0 - elapsed)
    finally:
        proc.kill()
        proc.wait()
    assert _limits(state) == [275, 250]
    assert _writers(state, 0).count(watchdog) == 1 and watchdog not in _writers(state, 1)
    err = (tmp_path / "stderr.txt").read_text()
    assert f"trainer (pid {proc.pid}) died without restoring" in err and "left alone GPU 1 (at 250 W" in err


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["lightning", "hf"])
def test_clean_run_leaves_no_watchdog_and_no_extra_limit_change(tmp_path, adapter):
    state = tmp_path / "gpus.json"
    proc = _start(tmp_path, adapter, "clean")
    assert proc.wait(180) == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    watchdog = report["watchdog"]
    assert watchdog["ran"] and watchdog["state"] == "dismissed" and not _alive(watchdog["pid"])
    assert _limits(state) == [275, 275]
    for gpu in (0, 1):
        history = LimitFile(state).history(gpu)
        assert {pid for _, pid in history} == {proc.pid}  # every set is the trainer's, none the watchdog's
        assert history[-1] == (275, proc.pid) and [w for w, _ in history].count(200) >= 1


@pytest.mark.slow
def test_a_forked_worker_holding_the_pipe_does_not_hide_the_trainers_death(tmp_path):
    state = tmp_path / "gpus.json"
    proc = _start(tmp_path, "controller", "fork")
    sleeper = None
    try:
        watchdog = _mid_run(tmp_path, proc)
        sleeper = int((tmp_path / "sleeper").read_text())
        proc.send_signal(signal.SIGKILL)
        _wait(lambda: _limits(state) == [275, 275], 5.0)
        assert _alive(sleeper)  # the pipe is still open: the watchdog saw its parent pid go
        _wait(lambda: not _alive(watchdog), 5.0)
    finally:
        proc.kill()
        proc.wait()
        if sleeper is not None:
            os.kill(sleeper, signal.SIGKILL)


def test_strict_makes_a_watchdog_that_cannot_guard_the_gpus_an_error_before_any_change(tmp_path, make_sim):
    """strict=True: no throttled GPU without its guard; a GPU that needs none (in memory) is not an error."""

    broken = _BrokenSpec([SimulatedGPU(0, "sim", 100, 300, power_w_at=lambda w: w, initial_limit_w=275)])
    for gpus, match in ((broken, "could not start: ModuleNotFoundError"), (_NoSpecGPUs(), "no watchdog_spec")):
        ctl = PowerLimitController(gpus, [0], strict=True)
        ctl.remember_originals()
        for _ in range(2):  # every attempt fails the same way: no limit is ever changed unguarded
            with pytest.raises(PowerControlError, match=match):
                ctl.set_all_w(200)
            assert gpus.gpus[0].power_limit_w == 275
        ctl.restore()
    in_memory = SimulatedGPUs([SimulatedGPU(0, "sim", 100, 300, power_w_at=lambda w: w, initial_limit_w=275)])
    ctl = PowerLimitController(in_memory, [0], strict=True)
    ctl.remember_originals()
    ctl.set_all_w(200)
    assert in_memory.gpus[0].power_limit_w == 200
    ctl.restore()
    # through the engine: strict stops the run at its first limit change; the GPU keeps its limit
    sim = make_sim()
    sim.gpus.__class__ = type("BrokenSimulated", (type(sim.gpus),), {"watchdog_spec": _BrokenSpec.watchdog_spec})
    session = ChaseSession(ChaseConfig(provider=StaticProvider(300.0), simulation=sim, policy="static",
                                       static_power_limit_w=200, forecaster="persistence", strict=True,
                                       profile_warmup_steps=0, profile_measure_steps=1))
    with pytest.raises(PowerControlError, match="strict=True: the limit watchdog could not start"):
        session.start(RunContext([0], LocalCollective(), total_steps=10))
        for _ in range(5):
            session.step_end()
    session.end("failed")
    assert sim.power_limits_w == [275]
