"""Hugging Face adapter: :class:`ChaseTrainerCallback`. Importing this module imports transformers."""

from chase_integrations.huggingface.callback import ChaseTrainerCallback

__all__ = ["ChaseTrainerCallback"]
