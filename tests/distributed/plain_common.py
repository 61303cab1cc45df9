"""What the plain-loop child scripts share: the tiny model, the data, the loop, and the log recorder.

Every rank trains a linear model for ``--epochs`` epochs of ``--steps`` optimizer steps (its shard of a
``2 * steps`` batch dataset) and calls ``chase.step()`` / ``chase.epoch_end()`` like any user loop. What
``log`` received on this rank goes to ``log<r>.json`` before ``rank<r>.json`` is written (see
``tests/distributed/_common.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from tests.distributed._common import callback_options


def dataset(steps: int, ranks: int = 2, batch_size: int = 2) -> TensorDataset:
    """``ranks * steps`` batches of ``batch_size`` samples."""
    g = torch.Generator().manual_seed(0)
    n = ranks * steps * batch_size
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g))


def model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A linear regression and its SGD optimizer."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.01)


class LogRecorder:
    """A ``log`` callable that records every metrics dict it is given (and forwards it, when asked)."""

    def __init__(self, forward: Callable[[dict], object] | None = None) -> None:
        self.calls: list[dict] = []
        self.forward = forward

    def __call__(self, metrics: dict) -> None:
        self.calls.append(dict(metrics))
        if self.forward is not None:
            self.forward(metrics)

    def write(self, out: str, rank: int) -> None:
        """Write ``log<rank>.json``."""
        Path(out, f"log{rank}.json").write_text(json.dumps(self.calls))


def chase_options(args, sim) -> dict:
    """The Trainer tests' callback arguments, plus the job's length."""
    return dict(callback_options(args, sim), total_steps=args.epochs * args.steps)


def train(chase, epochs: int, batches: Callable[[int], object], backward: Callable[[torch.Tensor], None],
          model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """The user's loop: ``batches(epoch)`` yields ``(x, y)``; ``backward(loss)`` is the framework's."""
    with chase:
        for epoch in range(epochs):
            for x, y in batches(epoch):
                loss = torch.nn.functional.mse_loss(model(x), y)
                optimizer.zero_grad()
                backward(loss)
                optimizer.step()
                chase.step()
            chase.epoch_end()
