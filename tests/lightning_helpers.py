"""A tiny Lightning model and trainer factory for CPU tests."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class TinyModel(L.LightningModule):
    """Linear regression; optionally raises at a given global step."""

    def __init__(self, fail_at_step: int | None = None, interrupt_at_step: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.fail_at_step = fail_at_step
        self.interrupt_at_step = interrupt_at_step

    def training_step(self, batch, batch_idx):
        if self.fail_at_step is not None and self.global_step >= self.fail_at_step:
            raise RuntimeError("boom in training_step")
        if self.interrupt_at_step is not None and self.global_step >= self.interrupt_at_step:
            raise KeyboardInterrupt
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader(steps: int, batch_size: int = 2) -> DataLoader:
    """A dataloader with exactly ``steps`` batches per epoch."""
    g = torch.Generator().manual_seed(0)
    n = steps * batch_size
    data = TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g))
    return DataLoader(data, batch_size=batch_size)


def trainer(callbacks, tmp_path, max_epochs: int = 3, logger=False, **kwargs) -> L.Trainer:
    """A quiet CPU trainer."""
    options = dict(
        max_epochs=max_epochs, callbacks=callbacks, logger=logger, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
        default_root_dir=str(tmp_path), num_sanity_val_steps=0,
    )
    options.update(kwargs)
    return L.Trainer(**options)
