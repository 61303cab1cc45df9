"""A simulated Hugging Face run: a tiny model trained by ``transformers.Trainer`` on the CPU.

Used by ``chase demo --framework hf``; nothing is downloaded.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from chase_integrations.huggingface.callback import ChaseTrainerCallback


class TinyRegressor(nn.Module):
    """Linear regression that returns ``{"loss", "logits"}`` like a ``transformers`` model."""

    def __init__(self, features: int = 4) -> None:
        super().__init__()
        self.layer = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Predict; with ``labels``, also the mean squared error as ``loss``."""
        logits = self.layer(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.mse_loss(logits, labels)
        return out


class RegressionDataset(Dataset):
    """``n`` random ``{"x", "labels"}`` examples (seeded)."""

    def __init__(self, n: int, features: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, features, generator=g)
        self.y = torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def run_hf_demo(sim: Any, callback_kwargs: dict[str, Any] | None, epochs: int, steps_per_epoch: int) -> dict:
    """Train :class:`TinyRegressor` for ``epochs * steps_per_epoch`` optimizer steps on ``sim``.

    Args:
        sim: A :class:`~chase_integrations.simulation.Simulation`; its provider is the default ``provider``.
        callback_kwargs: Further :class:`ChaseTrainerCallback` arguments (they override the defaults).
        epochs: Training epochs.
        steps_per_epoch: Optimizer steps per epoch (batch size 2).

    Returns:
        The run report (docs/metrics.md).
    """
    from transformers import PrinterCallback, Trainer, TrainingArguments

    options = {"provider": sim.provider, "simulation": sim}
    options.update(callback_kwargs or {})
    callback = ChaseTrainerCallback(**options)
    with tempfile.TemporaryDirectory(prefix="chase-hf-demo-") as out:
        args = TrainingArguments(
            output_dir=out, report_to=[], use_cpu=True, num_train_epochs=epochs,
            per_device_train_batch_size=2, save_strategy="no", logging_strategy="no", disable_tqdm=True,
            dataloader_num_workers=0, seed=0,
        )
        dataset = RegressionDataset(2 * steps_per_epoch)
        trainer = Trainer(model=TinyRegressor(), args=args, train_dataset=dataset, callbacks=[callback])
        trainer.remove_callback(PrinterCallback)  # quiet: the caller prints the report
        trainer.train()
    assert callback.report is not None
    return callback.report
