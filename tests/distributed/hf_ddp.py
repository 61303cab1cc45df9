"""Child script: a two-process Hugging Face ``Trainer`` run on the CPU (gloo), each on a simulated node.

Run under ``python -m torch.distributed.run --nproc_per_node=2 tests/distributed/hf_ddp.py --out DIR ...``.
See ``tests/test_distributed.py``.
"""

from __future__ import annotations

import os
import sys

from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

from chase_integrations.huggingface import ChaseTrainerCallback
from chase_integrations.huggingface.demo import RegressionDataset, TinyRegressor
from tests.distributed._common import callback_options, make_simulation, parse_args, run_and_record


def main() -> int:
    args = parse_args()
    rank = int(os.environ["RANK"])  # set by torchrun
    sim = make_simulation(args, rank)
    cb = ChaseTrainerCallback(**callback_options(args, sim))
    targs = TrainingArguments(
        output_dir=os.path.join(args.out, "hf"), report_to=[], use_cpu=True, ddp_backend="gloo",
        ddp_timeout=60,  # a mismatch between ranks fails within a minute instead of hanging
        num_train_epochs=args.epochs, per_device_train_batch_size=2, save_strategy="no", logging_strategy="no",
        disable_tqdm=True, dataloader_num_workers=0, seed=0, learning_rate=0.01,
    )
    # Two ranks of batch 2: `steps` optimizer steps per epoch on each rank.
    trainer = Trainer(model=TinyRegressor(), args=targs, train_dataset=RegressionDataset(4 * args.steps),
                      callbacks=[cb])
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)

    def rank_of() -> int:
        if targs.process_index != rank:
            raise RuntimeError(f"RANK {rank} but process_index {targs.process_index}")
        return rank

    return run_and_record(args, rank_of, trainer.train, lambda: sim, lambda: cb)


if __name__ == "__main__":
    status = main()
    # Leave without the interpreter's teardown: there, after this rank had trained, recorded its results and
    # destroyed the process group, torch's C++ threads were seen to abort it ("terminate called without an
    # active exception", SIGABRT) on a loaded machine, failing a finished job. The results are on disk.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
