"""Child script: a two-process plain ``torch.distributed`` loop on the CPU (gloo), each on a simulated node.

Run under ``python -m torch.distributed.run --nproc_per_node=2 tests/distributed/plain_torch.py --out DIR ...``.
``Chase`` finds the initialised process group by itself. See ``tests/test_distributed_plain.py``.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from chase_integrations import Chase
from tests.distributed._common import make_simulation, parse_args, run_and_record
from tests.distributed.plain_common import LogRecorder, chase_options, dataset, model_and_optimizer, train


def main() -> int:
    args = parse_args()
    rank = int(os.environ["RANK"])  # set by torchrun
    sim = make_simulation(args, rank)
    log = LogRecorder()
    chase = Chase(**chase_options(args, sim), log=log)
    # A short collective timeout: a mismatch between ranks fails within a minute instead of hanging.
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    model, optimizer = model_and_optimizer()
    ddp = DistributedDataParallel(model)
    data = dataset(args.steps)
    sampler = DistributedSampler(data, shuffle=False)
    loader = DataLoader(data, batch_size=2, sampler=sampler)

    def batches(epoch: int):
        sampler.set_epoch(epoch)
        return loader

    def run() -> None:
        try:
            train(chase, args.epochs, batches, lambda loss: loss.backward(), ddp, optimizer)
        finally:
            log.write(args.out, rank)

    return run_and_record(args, dist.get_rank, run, lambda: sim, lambda: chase)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skip interpreter teardown (see tests/distributed/hf_ddp.py)
