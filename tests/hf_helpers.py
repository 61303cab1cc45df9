"""A tiny Hugging Face model, dataset and Trainer factory for CPU tests (nothing downloaded)."""

from __future__ import annotations

import os
import signal

from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

from chase_integrations.huggingface import ChaseTrainerCallback
from chase_integrations.huggingface.demo import RegressionDataset, TinyRegressor

__all__ = ["FaultyRegressor", "RegressionDataset", "SFTStyleTrainer", "chase_callback", "hf_trainer"]


class FaultyRegressor(TinyRegressor):
    """:class:`TinyRegressor` that raises (or signals) on its ``n``-th forward call (1-based)."""

    def __init__(self, fail_at_call: int | None = None, interrupt_at_call: int | None = None,
                 sigterm_at_call: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at_call = fail_at_call
        self.interrupt_at_call = interrupt_at_call
        self.sigterm_at_call = sigterm_at_call

    def forward(self, x, labels=None):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise RuntimeError("boom in forward")
        if self.calls == self.interrupt_at_call:
            raise KeyboardInterrupt
        if self.calls == self.sigterm_at_call:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().forward(x, labels)


class SFTStyleTrainer(Trainer):
    """A TRL ``SFTTrainer``-like subclass: extra constructor argument; own compute_loss, log and train."""

    def __init__(self, *args, loss_scale: float = 1.0, **kwargs) -> None:
        self.loss_scale = loss_scale
        self._metrics: dict[str, list[float]] = {"train": []}
        super().__init__(*args, **kwargs)
        self.train_calls = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        loss = outputs["loss"] * self.loss_scale
        self._metrics["train"].append(float(loss.detach()))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, start_time=None):
        values = self._metrics["train"]
        if values:
            logs = {**logs, "sft/mean_loss": sum(values) / len(values)}
        super().log(logs, start_time)
        self._metrics["train"].clear()

    def train(self, *args, **kwargs):
        self.train_calls += 1
        return super().train(*args, **kwargs)


def chase_callback(sim, tmp_path, **kwargs) -> ChaseTrainerCallback:
    """The same options as the Lightning tests' ``_callback``."""
    options = dict(provider=sim.provider, simulation=sim, forecaster="persistence", decision_interval_s=1800,
                   report_path=str(tmp_path / "report.json"), profile_warmup_steps=1, profile_measure_steps=3)
    options.update(kwargs)
    return ChaseTrainerCallback(**options)


def hf_trainer(callbacks, tmp_path, model=None, steps: int = 20, epochs: int = 3, trainer_cls=Trainer,
               trainer_kwargs=None, **args_kwargs) -> Trainer:
    """A quiet CPU ``Trainer`` over ``steps`` batches of 2 per epoch (so ``steps`` optimizer steps without
    gradient accumulation)."""
    options = dict(
        output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, num_train_epochs=epochs,
        per_device_train_batch_size=2, save_strategy="no", logging_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, seed=0, learning_rate=0.01,
    )
    options.update(args_kwargs)
    trainer = trainer_cls(model=model if model is not None else TinyRegressor(),
                          args=TrainingArguments(**options), train_dataset=RegressionDataset(2 * steps),
                          callbacks=list(callbacks), **(trainer_kwargs or {}))
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer

