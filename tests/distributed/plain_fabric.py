"""Child script: a two-process Lightning Fabric loop (``strategy="ddp"`` on the CPU, gloo), each on a simulated node.

Run as ``python tests/distributed/plain_fabric.py --out DIR ...``; ``fabric.launch()`` re-launches this script
for rank 1, so everything before it runs on every rank. ``Chase`` takes Fabric's collectives and logs
through ``fabric.log_dict``. See ``tests/test_distributed_plain.py``.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from lightning.fabric import Fabric
from lightning.fabric.strategies import DDPStrategy
from torch.utils.data import DataLoader

from chase_integrations import Chase
from tests.distributed._common import make_simulation, parse_args, run_and_record
from tests.distributed.plain_common import LogRecorder, chase_options, dataset, model_and_optimizer, train


def main() -> int:
    args = parse_args()
    # strategy="ddp" with a short collective timeout: a mismatch between ranks fails within a minute.
    fabric = Fabric(accelerator="cpu", devices=2, strategy=DDPStrategy(process_group_backend="gloo",
                                                                       timeout=timedelta(seconds=60)))
    fabric.launch()
    rank = fabric.global_rank
    sim = make_simulation(args, rank)
    log = LogRecorder(forward=fabric.log_dict)
    chase = Chase(**chase_options(args, sim), log=log, fabric=fabric)
    model, optimizer = model_and_optimizer()
    model, optimizer = fabric.setup(model, optimizer)
    loader = fabric.setup_dataloaders(DataLoader(dataset(args.steps), batch_size=2))

    def run() -> None:
        try:
            train(chase, args.epochs, lambda epoch: loader, fabric.backward, model, optimizer)
        finally:
            log.write(args.out, rank)

    return run_and_record(args, lambda: rank, run, lambda: sim, lambda: chase)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skip interpreter teardown (see tests/distributed/hf_ddp.py)
