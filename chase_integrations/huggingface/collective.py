"""The engine's collectives on accelerate / ``torch.distributed`` (used when ``world_size > 1``).

:class:`AccelerateCollective` lives in :mod:`chase_integrations.plain.collectives` (an Accelerate loop
must not need transformers); it is re-exported here for the ``Trainer`` callback and existing imports.

Every rank calls the same collectives in the same hooks in the same order (the engine guarantees it);
none is ever called from rank-zero-only code.
"""

from __future__ import annotations

from chase_integrations.plain.collectives import AccelerateCollective

__all__ = ["AccelerateCollective"]
