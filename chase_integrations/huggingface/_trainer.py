"""What the callback needs from the ``Trainer`` that its hooks do not pass.

``TrainerCallback`` hooks receive ``args``, ``state``, ``control`` and the model, optimizer, scheduler and
data loaders, never the ``Trainer``. The callback needs it for two things:

* ``trainer.log(...)``: the only route by which values reach ``state.log_history`` *and* every
  ``report_to`` integration (values added to ``logs`` in a user callback's ``on_log`` reach neither);
* an exception path: the ``Trainer`` has no ``on_exception`` hook, so the callback wraps
  ``trainer.train`` of *that instance* (:func:`guard_train`) to restore limits and write the report
  with status ``failed``/``interrupted`` before the exception propagates.

:func:`find_trainer` finds it at ``on_init_end``: that hook is called by ``Trainer.__init__`` itself,
so the calling frame's ``self`` is the ``Trainer`` (any subclass) whose ``callback_handler`` holds the
callback. ``ChaseTrainerCallback.attach(trainer)`` is the explicit alternative.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATE_FILE = "chase_state.json"
_MAX_FRAMES = 12


def find_trainer(callback: Any) -> Any | None:
    """The ``transformers.Trainer`` on the call stack whose callbacks include ``callback``, or ``None``."""
    from transformers import Trainer

    frame = sys._getframe(1)
    try:
        for _ in range(_MAX_FRAMES):
            if frame is None:
                return None
            candidate = frame.f_locals.get("self")
            handler = getattr(candidate, "callback_handler", None)
            callbacks = getattr(handler, "callbacks", ())
            if isinstance(candidate, Trainer) and any(cb is callback for cb in callbacks):
                return candidate
            frame = frame.f_back
        return None
    finally:
        del frame


def guard_train(trainer: Any, on_call: Callable[[Any], None], on_exception: Callable[[BaseException], None],
                on_return: Callable[[], None]) -> None:
    """Wrap ``trainer.train`` (this instance only) so every call reports its checkpoint and its exception.

    ``on_call(resume_from_checkpoint)`` runs first (``True`` resolved to the last checkpoint of
    ``args.output_dir``), ``on_exception(e)`` on any exception before it propagates unchanged,
    ``on_return()`` after the call either way.
    """
    original = trainer.train

    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        resume = kwargs.get("resume_from_checkpoint", args[0] if args else None)
        if resume is True:
            from transformers.trainer_utils import get_last_checkpoint

            resume = get_last_checkpoint(trainer.args.output_dir)
        on_call(resume or None)
        try:
            return original(*args, **kwargs)
        except BaseException as e:
            on_exception(e)
            raise
        finally:
            on_return()

    train.__chase_guarded__ = True  # type: ignore[attr-defined]
    trainer.train = train


def guard_method(trainer: Any, name: str, on_exception: Callable[[BaseException], None]) -> None:
    """Wrap ``trainer.<name>`` (this instance only) so ``on_exception(e)`` runs before ``e`` propagates."""
    original = getattr(trainer, name)

    @functools.wraps(original)
    def method(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except BaseException as e:
            on_exception(e)
            raise

    setattr(trainer, name, method)


def checkpoint_dir(args: Any, global_step: int) -> Path:
    """The folder the ``Trainer`` just saved a checkpoint to (``output_dir/checkpoint-<global_step>``)."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{global_step}"


def write_state(folder: Path, state: dict) -> None:
    """Write the session state next to the checkpoint, atomically."""
    path = folder / STATE_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"callback": "ChaseTrainerCallback", "state": state}))
    os.replace(tmp, path)


def read_state(folder: str | os.PathLike | None) -> dict | None:
    """The session state saved in a checkpoint folder, or ``None`` when there is none."""
    if folder is None:
        return None
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("state")
