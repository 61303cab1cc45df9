"""Child script: a two-process 🤗 Accelerate loop (``Accelerator(cpu=True)``, gloo), each on a simulated node.

Run under ``accelerate launch --multi_gpu --num_processes 2 tests/distributed/plain_accelerate.py --out DIR ...``
(on a machine without GPUs the launcher starts two CPU processes). ``Chase`` takes the ``Accelerator``'s
collectives and logs with ``log=accelerator.log`` into a TensorBoard tracker under ``--out``. See
``tests/test_distributed_plain.py``.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs
from torch.utils.data import DataLoader

from chase_integrations import Chase
from tests.distributed._common import make_simulation, parse_args, run_and_record
from tests.distributed.plain_common import LogRecorder, chase_options, dataset, model_and_optimizer, train


def main() -> int:
    args = parse_args()
    # A short collective timeout: a mismatch between ranks fails within a minute instead of hanging.
    accelerator = Accelerator(cpu=True, log_with="tensorboard", project_dir=os.path.join(args.out, "tb"),
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=60))])
    accelerator.init_trackers("chase")
    rank = accelerator.process_index
    sim = make_simulation(args, rank)
    log = LogRecorder(forward=accelerator.log)  # records, then calls accelerator.log (main process only)
    chase = Chase(**chase_options(args, sim), log=log, accelerator=accelerator)
    model, optimizer = model_and_optimizer()
    model, optimizer, loader = accelerator.prepare(model, optimizer, DataLoader(dataset(args.steps), batch_size=2))

    def run() -> None:
        try:
            train(chase, args.epochs, lambda epoch: loader, accelerator.backward, model, optimizer)
        finally:
            log.write(args.out, rank)
            accelerator.end_training()

    return run_and_record(args, lambda: rank, run, lambda: sim, lambda: chase)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skip interpreter teardown (see tests/distributed/hf_ddp.py)
