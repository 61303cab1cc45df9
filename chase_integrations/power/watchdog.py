"""A limit watchdog: a separate process that restores the original GPU power limits if the trainer dies.

The trainer restores the original limits itself on every exit it sees (:mod:`.limits`). SIGKILL (the OOM
killer, ``kill -9``) and a segfault in a CUDA extension give it no chance; then this process does it.

One watchdog per training process, started by :class:`~chase_integrations.power.limits.PowerLimitController`
just before it first changes a limit, as a fresh interpreter (``python -m chase_integrations.power.watchdog``,
never a fork of a CUDA process) in its own session, so a Ctrl+C or a signal to the trainer's process group
does not reach it. The trainer talks to it over the child's stdin, one JSON object per line::

    {"op": "watch", "parent_pid": 4242, "factory": "pkg.mod:callable", "args": [...], "originals_w": {"0": 300}}
    {"op": "set", "gpu": 0, "w": 225}     before each limit change (the GPU may read 225 W from now on)
    {"op": "ok", "gpu": 0, "w": 225}      after it succeeded (225 W is the limit we last set)
    {"op": "done"}                        the trainer restored every limit: exit, touch nothing

and the child answers once on stdout, ``{"ready": true}`` (it opened the GPUs through ``factory`` and read
every limit) or ``{"ready": false, "error": "..."}``.

Child states::

    reading "watch" --ready--> watching --"done"--------------------------> exit 0, nothing touched
                                        --EOF, or the trainer's pid gone--> restore what is still ours,
                                                                            log one line, exit 0

"Still ours": a GPU whose limit reads the one we last set (or the one we were setting) is put back to its
original; one that already reads its original is not written; any other value was set by someone else
after us, and that GPU is left alone. The child restores at most once, then exits.

The trainer's death is seen through the pipe (the kernel closes it on any death) and, in case a forked
DataLoader worker still holds the pipe's write end, by polling the parent pid every
:data:`POLL_INTERVAL_S`.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_MW_PER_W = 1000
#: How often the child checks that its trainer is still alive when the pipe is quiet, s.
POLL_INTERVAL_S = 0.25
#: How long the trainer waits for the child to open the GPUs before the first limit change, s.
READY_TIMEOUT_S = 20.0
#: How long the trainer waits for the child to exit after "done" before killing it, s.
DISMISS_TIMEOUT_S = 2.0
_ZEUS_CLASSES = {("zeus.device.gpu.nvidia", "NVIDIAGPUs"), ("zeus.device.gpu.amd", "AMDGPUs")}
#: Not passed to the child: it addresses GPUs by physical index (Zeus's ``GPU.gpu_index``).
_VISIBILITY_VARS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


class WatchdogError(Exception):
    """The watchdog process could not be started (it never reached "ready")."""


@dataclass(frozen=True)
class GPUsFactory:
    """How the watchdog process opens the trainer's GPUs.

    Attributes:
        target: ``"module:qualified.name"`` of a callable returning a Zeus ``GPUs``.
        args: JSON-safe positional arguments for it.
        index_map: The trainer's GPU index -> the child's (``None``: the same).
        unset_env: Environment variables removed from the child's environment.
    """

    target: str
    args: tuple = ()
    index_map: dict[int, int] | None = None
    unset_env: tuple[str, ...] = ()

    def child_index(self, gpu_index: int) -> int:
        """The child's index of the trainer's GPU ``gpu_index``."""
        return gpu_index if self.index_map is None else self.index_map[gpu_index]


def gpus_factory(gpus) -> tuple[GPUsFactory | None, str | None]:
    """``(factory, None)`` for GPUs another process can reach, else ``(None, why not)``.

    Zeus's NVML and AMD GPUs are reopened in the child by physical index (with ``ZEUSD_SOCK_PATH`` in the
    environment, Zeus uses ``zeusd`` there too). Any other ``GPUs`` object must offer ``watchdog_spec()``
    returning ``{"factory": "module:callable", "args": [...]}`` (indices unchanged), or ``None``.
    """
    cls = type(gpus)
    if (cls.__module__, cls.__name__) in _ZEUS_CLASSES:
        index_map = {i: int(g.gpu_index) for i, g in enumerate(gpus.gpus)}
        return GPUsFactory(f"{cls.__module__}:{cls.__name__}", (), index_map, _VISIBILITY_VARS), None
    spec_fn = getattr(gpus, "watchdog_spec", None)
    if spec_fn is None:
        return None, (
            f"{cls.__name__} has no watchdog_spec(): another process cannot reach these GPUs, so a SIGKILLed "
            "trainer would leave the last limit set (see docs/safety.md)"
        )
    spec = spec_fn()
    if spec is None:
        return None, f"{cls.__name__}.watchdog_spec() is None (simulated GPUs keep their limits in memory)"
    return GPUsFactory(str(spec["factory"]), tuple(spec.get("args", ()))), None


@dataclass
class WatchdogStatus:
    """What the run report says about the watchdog.

    Attributes:
        ran: Whether a watchdog process watched this process's GPUs.
        pid: Its process id.
        state: ``"watching"``, ``"dismissed"`` (exited after a clean restore) or ``"lost"`` (it exited early).
        reason: Why none ran, or why it was lost.
    """

    ran: bool
    pid: int | None = None
    state: str | None = None
    reason: str | None = None

    def to_json(self) -> dict:
        """JSON-safe, without empty fields."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


class LimitWatchdog:
    """The trainer's side of one watchdog process (see the module docstring).

    States: ``created`` --:meth:`start`--> ``watching`` --:meth:`dismiss`--> ``dismissed``; a failed start
    raises :class:`WatchdogError` (``failed``); a broken pipe while watching means ``lost``.

    Args:
        factory: How the child opens the GPUs.
        originals_w: The trainer's GPU index -> its original limit, W.
    """

    def __init__(self, factory: GPUsFactory, originals_w: dict[int, int]) -> None:
        self.factory = factory
        self.originals_w = dict(originals_w)
        self.state = "created"
        #: Why the watchdog was lost (``None`` otherwise).
        self.reason: str | None = None
        self._proc: subprocess.Popen | None = None
        self._owner_pid = os.getpid()  # a forked DataLoader worker inherits this object but must stay silent

    @property
    def pid(self) -> int | None:
        """The child's pid once started."""
        return self._proc.pid if self._proc is not None else None

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        """Spawn the child, hand it the originals, wait until it has opened the GPUs.

        Raises:
            WatchdogError: it could not be spawned, or did not report ready in time.
        """
        env = {k: v for k, v in os.environ.items() if k not in self.factory.unset_env}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as e:
            self.state = "failed"
            raise WatchdogError(f"could not spawn {sys.executable!r}: {e}") from e
        os.set_blocking(self._proc.stdin.fileno(), False)  # never block training on a stuck child
        originals = {str(self.factory.child_index(i)): int(w) for i, w in self.originals_w.items()}
        self._send(op="watch", parent_pid=os.getpid(), factory=self.factory.target, args=list(self.factory.args),
                   originals_w=originals)
        reply = self._read_reply(ready_timeout_s)
        if not reply.get("ready"):
            self._stop()
            self.state = "failed"
            raise WatchdogError(reply.get("error", "no reply"))
        self.state = "watching"

    def announce(self, gpu_index: int, power_limit_w: int) -> None:
        """Before setting ``gpu_index`` to ``power_limit_w`` W."""
        self._send(op="set", gpu=self.factory.child_index(gpu_index), w=int(power_limit_w))

    def confirm(self, gpu_index: int, power_limit_w: int) -> None:
        """After ``gpu_index`` was set to ``power_limit_w`` W."""
        self._send(op="ok", gpu=self.factory.child_index(gpu_index), w=int(power_limit_w))

    def dismiss(self, timeout_s: float = DISMISS_TIMEOUT_S) -> None:
        """Every limit is restored: tell the child to exit untouched and wait (bounded) until it has."""
        if self._proc is None or os.getpid() != self._owner_pid:
            return
        if self.state == "watching":
            self._send(op="done")
            if self.state == "watching":
                self.state = "dismissed"
        self._stop(timeout_s)  # also reaps a lost child

    def status(self) -> WatchdogStatus:
        """For the run report."""
        return WatchdogStatus(ran=True, pid=self.pid, state=self.state, reason=self.reason)

    # --- internals -------------------------------------------------------------------------------
    def _send(self, **message) -> None:
        if self.state not in ("created", "watching") or self._proc is None or os.getpid() != self._owner_pid:
            return  # a forked DataLoader worker must not speak for the trainer
        line = (json.dumps(message) + "\n").encode()
        try:
            os.write(self._proc.stdin.fileno(), line)  # < PIPE_BUF: one atomic write, safe from a signal handler
        except OSError as e:  # BrokenPipe: the child died; BlockingIOError: it stopped reading
            self.state, self.reason = "lost", f"the watchdog process stopped listening ({type(e).__name__})"
            logger.warning("chase: %s; the trainer still restores the limits itself on every exit it sees.",
                           self.reason)

    def _read_reply(self, timeout_s: float) -> dict:
        assert self._proc is not None and self._proc.stdout is not None
        fd, data, deadline = self._proc.stdout.fileno(), b"", time.monotonic() + timeout_s
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return {"error": f"no reply within {timeout_s:.0f} s"}
            chunk = os.read(fd, 4096)
            if not chunk:
                return {"error": f"it exited with status {self._proc.wait()} before opening the GPUs"}
            data += chunk
        self._proc.stdout.close()
        try:
            return json.loads(data.split(b"\n", 1)[0])
        except ValueError:
            return {"error": f"unreadable reply {data[:200]!r}"}

    def _stop(self, timeout_s: float = DISMISS_TIMEOUT_S) -> None:
        proc = self._proc
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ==================================================================================== the child
def restore_if_ours(gpus, originals_w: dict[int, int], ours_w: dict[int, set[int]]) -> tuple[list[str], list[str]]:
    """Put each GPU still at one of ``ours_w[i]`` back to ``originals_w[i]``; never raises.

    Returns:
        ``(done, left_alone)``: one phrase per GPU written, and per GPU not written because someone else
        changed its limit (or it could not be read or written).
    """
    done, left = [], []
    for i, original_w in originals_w.items():
        try:
            current_w = int(round(gpus.get_power_management_limit(i) / _MW_PER_W))
        except Exception as e:
            left.append(f"GPU {i} (cannot read its limit: {type(e).__name__}: {e})")
            continue
        if current_w == original_w:
            continue
        if current_w not in ours_w.get(i, set()):
            left.append(f"GPU {i} (at {current_w} W, changed by someone else since our last set)")
            continue
        try:
            gpus.set_power_management_limit(i, original_w * _MW_PER_W)
            done.append(f"GPU {i} {current_w} -> {original_w} W")
        except Exception as e:
            left.append(f"GPU {i} (could not restore {original_w} W: {type(e).__name__}: {e})")
    return done, left


def _load(target: str):
    module, _, qualname = target.partition(":")
    obj = importlib.import_module(module)
    for name in qualname.split("."):
        obj = getattr(obj, name)
    return obj


def _reply(**message) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class _Lines:
    """Lines from a file descriptor: ``next(timeout)`` is ``None`` on timeout, raises ``EOFError`` at EOF."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf = fd, b""

    def next(self, timeout_s: float | None) -> bytes | None:
        while b"\n" not in self.buf:
            if timeout_s is not None and not select.select([self.fd], [], [], timeout_s)[0]:
                return None
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


def main() -> int:
    """The watchdog process (``python -m chase_integrations.power.watchdog``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl+C is for the trainer, which restores and dismisses us
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="chase-integrations watchdog: %(message)s")
    lines = _Lines(sys.stdin.fileno())
    try:
        watch = json.loads(lines.next(None))
        originals_w = {int(i): int(w) for i, w in watch["originals_w"].items()}
        gpus = _load(watch["factory"])(*watch.get("args", []))
        for i in originals_w:
            gpus.get_power_management_limit(i)
    except EOFError:
        return 0  # the trainer died before it said anything: it changed nothing
    except Exception as e:
        _reply(ready=False, error=f"{type(e).__name__}: {e}")
        return 1
    _reply(ready=True)
    parent_pid = int(watch["parent_pid"])
    confirmed = dict(originals_w)
    pending: dict[int, int] = {}
    try:
        while True:
            line = lines.next(POLL_INTERVAL_S)
            if line is None:
                if os.getppid() != parent_pid:
                    break  # reparented: the trainer is gone though a forked worker still holds the pipe
                continue
            message = json.loads(line)
            op = message.get("op")
            if op == "done":
                return 0
            if op == "set":
                pending[int(message["gpu"])] = int(message["w"])
            elif op == "ok":
                confirmed[int(message["gpu"])] = int(message["w"])
                pending.pop(int(message["gpu"]), None)
    except EOFError:
        pass
    ours = {i: {confirmed[i], *([pending[i]] if i in pending else [])} for i in originals_w}
    done, left = restore_if_ours(gpus, originals_w, ours)
    if done or left:
        logger.warning(
            "trainer (pid %d) died without restoring GPU power limits; restored %s%s.",
            parent_pid,
            ", ".join(done) or "nothing",
            f"; left alone {', '.join(left)}" if left else "",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
