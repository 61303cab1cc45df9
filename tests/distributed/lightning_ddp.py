"""Child script: a two-process Lightning DDP run on the CPU (gloo), each process on a simulated node.

Run as ``python tests/distributed/lightning_ddp.py --out DIR ...``; Lightning re-launches this script for
rank 1 (``strategy="ddp"``), so everything here runs on every rank. See ``tests/test_distributed.py``.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from lightning.pytorch.strategies import DDPStrategy

from chase_integrations.lightning import ChaseCallback
from tests.distributed._common import callback_options, make_simulation, parse_args, run_and_record
from tests.lightning_helpers import TinyModel, loader, trainer


def main() -> int:
    args = parse_args()
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by Lightning for the process it launches
    sim = make_simulation(args, rank)
    cb = ChaseCallback(**callback_options(args, sim))
    # A short collective timeout: a mismatch between ranks fails within a minute instead of hanging.
    t = trainer(cb, args.out, max_epochs=args.epochs, accelerator="cpu", devices=2,
                strategy=DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60)))

    def rank_of() -> int:
        if t.global_rank != rank:
            raise RuntimeError(f"LOCAL_RANK {rank} but global rank {t.global_rank}")
        return rank

    # Two ranks, `steps` batches each per epoch (the distributed sampler splits the loader).
    return run_and_record(args, rank_of, lambda: t.fit(TinyModel(), loader(2 * args.steps)), lambda: sim, lambda: cb)


if __name__ == "__main__":
    sys.exit(main())
