"""GPU power limits through Zeus's ``GPUs`` interface: read, set, remember and always restore.

This module and :mod:`chase_integrations.power.meter` are the only places that see Zeus's milliwatts
and millijoules; everything else speaks W and J.

Restoring is idempotent and runs on every exit path: the adapters call :meth:`restore` at train end
and on exceptions; an ``atexit`` hook and a chained SIGTERM handler cover the rest. Unlike Zeus's own
optimizer (whose ``atexit`` resets to the *maximum*), we restore each GPU's *original* limit. The exits
this process never sees (SIGKILL, a segfault) are covered by a limit watchdog, a separate process started
before the first limit change (:mod:`chase_integrations.power.watchdog`).
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import weakref
from collections.abc import Sequence

from chase_integrations.errors import PowerControlError, PowerPermissionError

logger = logging.getLogger(__name__)

_MW_PER_W = 1000


def _zeus_error_types():
    from zeus.device.gpu.common import (
        ZeusGPUInvalidArgError,
        ZeusGPUNoPermissionError,
        ZeusGPUNotSupportedError,
    )

    return ZeusGPUNoPermissionError, ZeusGPUNotSupportedError, ZeusGPUInvalidArgError


def translate_zeus_error(err: BaseException, action: str, gpu_index: int) -> PowerControlError:
    """Map a Zeus/NVML error to the package's tree (one table, at the boundary)."""
    no_permission, not_supported, invalid = _zeus_error_types()
    text = f"GPU {gpu_index}: could not {action}: {type(err).__name__}: {err}"
    if isinstance(err, no_permission):
        return PowerPermissionError(
            text + ". HINT: run as root, grant CAP_SYS_ADMIN, or run Zeus's zeusd daemon and set ZEUSD_SOCK_PATH."
        )
    if isinstance(err, PermissionError):
        return PowerPermissionError(text)
    if isinstance(err, not_supported):
        return PowerControlError(text + " (not supported by this GPU)")
    if isinstance(err, invalid):
        return PowerControlError(text + " (value outside the GPU's allowed range)")
    return PowerControlError(text)


class PowerLimitController:
    """Reads and sets the power limit of the GPUs this process trains on.

    Args:
        gpus: A Zeus ``GPUs`` object (real, zeusd-backed, or simulated).
        gpu_indices: The indices (in ``gpus``) this process owns; it never touches the others.
        watchdog: Start a limit watchdog process before the first limit change, which restores the
            original limits if this process dies without doing so (SIGKILL, segfault). It needs GPUs another
            process can reach: Zeus's NVML/AMD GPUs, or a ``GPUs`` with ``watchdog_spec()``.
        strict: A watchdog that is wanted but cannot guard these GPUs (it fails to start, or ``gpus`` gives
            another process no way to reach them) raises :class:`PowerControlError` at the first limit
            change, before any limit is changed, instead of a warning. GPUs that need no watchdog (simulated,
            in memory) never raise.

    No hardware is touched in the constructor.
    """

    def __init__(self, gpus, gpu_indices: Sequence[int], watchdog: bool = True, strict: bool = False) -> None:
        self.gpus = gpus
        self.gpu_indices = list(gpu_indices)
        self.original_limits_w: dict[int, int] = {}
        self._restored = True
        self._lock = threading.Lock()
        #: Set by the SIGTERM handler: the process is going away, so no limit is changed any more.
        self.terminating = False
        self._watchdog_wanted = watchdog
        self._strict = strict
        self._watchdog = None  # a LimitWatchdog once started
        self._watchdog_skipped = "watchdog=False" if not watchdog else "no power limit was changed (monitor/advisory)"

    # --- reading ---------------------------------------------------------------------------------
    def constraints_w(self) -> tuple[int, int]:
        """``(min, max)`` allowed limit in W common to all owned GPUs."""
        lows, highs = [], []
        for i in self.gpu_indices:
            try:
                lo_mw, hi_mw = self.gpus.get_power_management_limit_constraints(i)
            except Exception as e:
                raise translate_zeus_error(e, "read power limit constraints", i) from e
            lows.append(lo_mw // _MW_PER_W)
            highs.append(hi_mw // _MW_PER_W)
        return max(lows), min(highs)

    def current_limits_w(self) -> dict[int, int]:
        """The limit of each owned GPU, in W."""
        out = {}
        for i in self.gpu_indices:
            try:
                out[i] = int(round(self.gpus.get_power_management_limit(i) / _MW_PER_W))
            except Exception as e:
                raise translate_zeus_error(e, "read the power limit", i) from e
        return out

    # --- writing ---------------------------------------------------------------------------------
    def remember_originals(self) -> dict[int, int]:
        """Record each GPU's current limit (to restore later) and arm the exit hooks."""
        self.original_limits_w = self.current_limits_w()
        self._restored = False
        _register(self)
        return dict(self.original_limits_w)

    def check_permission(self) -> None:
        """Write each GPU's current limit back (a no-op change) to learn whether we may set limits.

        Raises:
            PowerPermissionError: the process may not set limits.
            PowerControlError: setting is otherwise impossible (not supported, GPU lost).
        """
        for i, w in self.current_limits_w().items():
            self._set_one(i, w)

    def set_all_w(self, power_limit_w: int) -> None:
        """Set every owned GPU to ``power_limit_w`` W.

        Raises:
            PowerControlError: setting failed, or SIGTERM was received (after it, training may go on until
                the framework stops, but a limit set then could outlive the process if SIGKILL follows).
        """
        if self.terminating:
            raise PowerControlError("SIGTERM received: original limits restored; no further limit is set.")
        watchdog = self._ensure_watchdog()
        if self.terminating:  # SIGTERM arrived while the watchdog started
            raise PowerControlError("SIGTERM received: original limits restored; no further limit is set.")
        for i in self.gpu_indices:
            if watchdog is not None:
                watchdog.announce(i, power_limit_w)
            self._set_one(i, power_limit_w)
            if watchdog is not None:
                watchdog.confirm(i, power_limit_w)

    def _set_one(self, i: int, power_limit_w: int) -> None:
        try:
            self.gpus.set_power_management_limit(i, int(power_limit_w) * _MW_PER_W)
        except Exception as e:
            raise translate_zeus_error(e, f"set the power limit to {power_limit_w} W", i) from e

    def restore(self) -> list[str]:
        """Put every owned GPU back to its original limit; idempotent. Returns problems (never raises)."""
        with self._lock:
            if self._restored:
                return []
            self._restored = True
        problems = []
        for i, w in self.original_limits_w.items():
            try:
                if self.gpus.get_power_management_limit(i) == int(w) * _MW_PER_W:
                    continue  # never changed (monitor/advisory): write nothing
            except Exception:  # cannot read: try to write anyway
                pass
            try:
                self.gpus.set_power_management_limit(i, int(w) * _MW_PER_W)
            except Exception as e:  # restore must never raise on an exit path
                problems.append(f"GPU {i}: could not restore {w} W: {type(e).__name__}: {e}")
        for p in problems:
            logger.error("%s", p)
        if problems:  # stay armed: the next restore (train end, teardown, atexit) tries again
            with self._lock:
                self._restored = False
            return problems
        if self.original_limits_w:
            logger.debug("Restored original power limits %s W.", self.original_limits_w)
        if self._watchdog is not None:
            self._watchdog.dismiss()  # every limit is back: the watchdog exits without touching any
        _unregister(self)
        return problems

    @property
    def restored(self) -> bool:
        """Whether the originals are back (or were never changed)."""
        return self._restored

    def watchdog_status(self) -> dict:
        """The run report's ``watchdog`` field (:class:`~chase_integrations.power.watchdog.WatchdogStatus`)."""
        from chase_integrations.power.watchdog import WatchdogStatus

        if self._watchdog is not None:
            return self._watchdog.status().to_json()
        return WatchdogStatus(ran=False, reason=self._watchdog_skipped).to_json()

    def _ensure_watchdog(self):
        """The running watchdog, started now if this is the first limit change; ``None`` when none can run."""
        if self._watchdog is not None:
            return self._watchdog if self._watchdog.state == "watching" else None
        if not self._watchdog_wanted or not self.original_limits_w or self._restored:
            return None
        from chase_integrations.power.watchdog import LimitWatchdog, WatchdogError, gpus_factory

        self._watchdog_wanted = False  # one attempt per run: a failure is reported once, not at every set
        factory, why_not = gpus_factory(self.gpus)
        if factory is None:
            self._watchdog_skipped = why_not
            declined = getattr(self.gpus, "watchdog_spec", None) is not None  # e.g. simulated, in memory: quiet
            if self._strict and not declined:
                self._watchdog_wanted = True  # strict: every attempt to change a limit fails the same way
                raise PowerControlError(f"strict=True: no limit watchdog can guard these GPUs ({why_not}), so a "
                                        "SIGKILL could leave them throttled; no limit was changed. Pass "
                                        "watchdog=False to run without one.")
            logger.log(logging.INFO if declined else logging.WARNING, "chase: no limit watchdog: %s.", why_not)
            return None
        watchdog = LimitWatchdog(factory, self.original_limits_w)
        try:
            watchdog.start()
        except WatchdogError as e:
            self._watchdog_skipped = f"could not start: {e}"
            if self._strict:
                self._watchdog_wanted = True
                raise PowerControlError(f"strict=True: the limit watchdog {self._watchdog_skipped}, so a SIGKILL "
                                        "could leave the GPUs throttled; no limit was changed. Pass "
                                        "watchdog=False to run without one.") from e
            logger.warning("chase: the limit watchdog %s; limits are still restored on every exit this process "
                           "sees, but not after SIGKILL.", self._watchdog_skipped)
            return None
        logger.info("chase: limit watchdog pid %d guards GPU %s (original limits %s W).", watchdog.pid,
                    self.gpu_indices, self.original_limits_w)
        self._watchdog = watchdog
        return watchdog


# --- exit hooks: atexit and a chained SIGTERM handler, shared by all live controllers -----------
_live: weakref.WeakSet[PowerLimitController] = weakref.WeakSet()
_hooks_lock = threading.Lock()
_hooks_installed = False
_previous_sigterm = None


def _restore_all() -> None:
    for controller in list(_live):
        controller.restore()


def _on_sigterm(signum, frame) -> None:
    logger.warning("SIGTERM received: restoring original GPU power limits.")
    for controller in list(_live):
        controller.terminating = True
    _restore_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        # The default action would kill the process on the spot. Exit instead (status 128 + 15), so that
        # `finally` blocks and the callbacks' exception paths still run and write their reports.
        raise SystemExit(128 + signal.SIGTERM)


def _register(controller: PowerLimitController) -> None:
    global _hooks_installed, _previous_sigterm
    _live.add(controller)
    with _hooks_lock:
        if _hooks_installed:
            return
        atexit.register(_restore_all)
        if threading.current_thread() is threading.main_thread():
            try:
                _previous_sigterm = signal.getsignal(signal.SIGTERM)
                signal.signal(signal.SIGTERM, _on_sigterm)
            except (ValueError, OSError):  # pragma: no cover - exotic embedders
                logger.debug("Could not install a SIGTERM handler; atexit still restores limits.")
        _hooks_installed = True


def _unregister(controller: PowerLimitController) -> None:
    _live.discard(controller)


def sigterm_handler_installed() -> bool:
    """Whether our SIGTERM handler is the active one (for diagnostics and tests)."""
    return signal.getsignal(signal.SIGTERM) is _on_sigterm
