"""Real-GPU validation: Zeus limits and NVML energy, ChaseCallback on a real Lightning run, a limit sweep.

Run on a machine with an NVIDIA GPU (no downloads needed)::

    python scripts/gpu_check.py --out results/            # all checks
    python scripts/gpu_check.py --out results/ --no-sweep # skip the sweep

Writes ``gpu_check.json`` (everything observed) and, when limits can be set, ``sweep_<gpu>.csv`` in the
Zeus trace format (dataset, network, batch_size, optimizer, power_limit, time_per_epoch,
average_power) plus ``time_per_step_s`` and ``energy_per_step_j``. ``time_per_epoch`` is the time per
step times ``steps_per_epoch`` (ImageNet: 1,281,167 / batch; the GPT-2 row: 1,000 steps), so the file
loads as a ``gpu_profile`` with ``steps_per_epoch`` of that value. The original limit is restored in a
``finally`` on every path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def gpu_basics(gpus, index: int) -> dict:
    lo, hi = gpus.get_power_management_limit_constraints(index)
    return {
        "name": gpus.get_name(index),
        "constraints_w": [lo // 1000, hi // 1000],
        "limit_w": gpus.get_power_management_limit(index) // 1000,
        "energy_counter_j": gpus.get_total_energy_consumption(index) / 1000.0,
    }


def set_and_restore(index: int) -> dict:
    from zeus.device import get_gpus

    from chase_integrations.errors import PowerControlError
    from chase_integrations.power.limits import PowerLimitController

    ctl = PowerLimitController(get_gpus(), [index])
    original = ctl.remember_originals()
    lo, hi = ctl.constraints_w()
    target = max(lo, hi - 100)
    out = {"original_w": original[index], "target_w": target}
    try:
        ctl.set_all_w(target)
        out["read_back_w"] = ctl.current_limits_w()[index]
        out["permission"] = True
    except PowerControlError as e:
        out["permission"] = False
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        out["restore_problems"] = ctl.restore()
        out["after_restore_w"] = ctl.current_limits_w()[index]
    return out


def lightning_run(out_dir: Path, index: int, steps: int) -> dict:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from zeus.device import get_gpus

    from chase_integrations.carbon import StaticProvider
    from chase_integrations.lightning import ChaseCallback

    gpus = get_gpus()
    seen: list[int] = []
    gpu = gpus.gpus[index]
    original_set = gpu.set_power_management_limit

    def logged(power_limit_mw, block=True):
        original_set(power_limit_mw, block)
        seen.append(power_limit_mw // 1000)

    gpu.set_power_management_limit = logged

    class Conv(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 128, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(128, 128, 3, padding=1),
                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(128, 10))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    n = 64 * steps
    data = TensorDataset(torch.randn(n, 3, 64, 64), torch.randint(0, 10, (n,)))
    lo, hi = gpus.get_power_management_limit_constraints(index)
    lo_w, hi_w = lo // 1000, hi // 1000
    candidates = sorted({hi_w, max(lo_w, hi_w - 100), max(lo_w, hi_w - 200), max(lo_w, hi_w - 300)})
    report_path = out_dir / "lightning_report.json"
    cb = ChaseCallback(provider=StaticProvider(400.0), policy="chase", eta=0.5, forecaster="persistence",
                       decision_interval_s=5, power_limits_w=candidates, report_path=str(report_path))
    before = gpus.get_power_management_limit(index) // 1000
    trainer = L.Trainer(max_epochs=1, accelerator="gpu", devices=[index], callbacks=[cb], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    t0 = time.time()
    trainer.fit(Conv(), DataLoader(data, batch_size=64, num_workers=2))
    report = cb.report
    return {
        "wall_s": time.time() - t0,
        "limit_before_w": before,
        "limit_after_w": gpus.get_power_management_limit(index) // 1000,
        "limits_set_w": seen,
        "mode": report["mode"],
        "energy_j": report["energy_j"],
        "carbon_g": report["carbon_g"],
        "profile": report["profile"],
        "intervals": [
            {k: iv[k] for k in ("start", "power_limit_w", "energy_j", "steps", "duration_s", "phase")}
            for iv in report["intervals"]
        ],
        "warnings": report["warnings"],
        "notes": report["notes"],
    }


def sweep(out_dir: Path, index: int, warmup: int, measure: int) -> dict:
    import torch
    from zeus.device import get_gpus

    from chase_integrations.power.limits import PowerLimitController
    from chase_integrations.power.meter import EnergyMeter

    gpus = get_gpus()
    name = gpus.get_name(index).replace(" ", "_")
    ctl = PowerLimitController(gpus, [index])
    ctl.remember_originals()
    lo, hi = ctl.constraints_w()
    limits = sorted(set(range(lo + (-lo) % 25, hi + 1, 25)) | {hi}, reverse=True)
    meter = EnergyMeter(gpus, [index], sync_execution=True)
    device = torch.device("cuda", index)
    rows, results = [], {}
    try:
        for workload, batch, make_step, steps_per_epoch in _workloads(device):
            step = make_step()
            for limit in limits:
                ctl.set_all_w(limit)
                for _ in range(warmup):
                    step()
                torch.cuda.synchronize(device)
                meter.begin("sweep")
                t0 = time.perf_counter()
                for _ in range(measure):
                    step()
                torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - t0
                energy = meter.end("sweep").energy_j
                t_step, e_step = elapsed / measure, energy / measure
                dataset, network = workload.split("/")
                rows.append(f"{dataset},{network},{batch},sgd,{limit},{t_step * steps_per_epoch:.4f},"
                            f"{e_step / t_step:.4f},{t_step:.6f},{e_step:.4f}")
                results.setdefault(workload, []).append({"limit_w": limit, "time_per_step_s": t_step,
                                                         "energy_per_step_j": e_step, "power_w": e_step / t_step})
                print(f"{workload} {limit} W: {1000 * t_step:.2f} ms/step, {e_step:.2f} J/step, "
                      f"{e_step / t_step:.0f} W", flush=True)
    finally:
        ctl.restore()
    path = out_dir / f"sweep_{name}.csv"
    path.write_text("dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power,time_per_step_s,"
                    "energy_per_step_j\n" + "\n".join(rows) + "\n")
    return {"csv": path.name, "limits_w": limits, "results": results,
            "limit_after_w": gpus.get_power_management_limit(index) // 1000}


def _workloads(device):
    import torch

    def resnet():
        import torchvision

        model = torchvision.models.resnet50().to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        x = torch.randn(128, 3, 224, 224, device=device).to(memory_format=torch.channels_last)
        y = torch.randint(0, 1000, (128,), device=device)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    def gpt2():
        from transformers import GPT2Config, GPT2LMHeadModel

        model = GPT2LMHeadModel(GPT2Config()).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ids = torch.randint(0, 50257, (16, 512), device=device)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    return [
        ("synthetic-imagenet/resnet50", 128, resnet, 1_281_167 // 128),
        ("synthetic-text/gpt2", 16, gpt2, 1000),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="gpu_check_out")
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--measure", type=int, default=20)
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    from zeus.device import get_gpus

    result: dict = {"basics": gpu_basics(get_gpus(), args.gpu)}
    print(json.dumps(result["basics"]), flush=True)
    for name, fn in (("set_and_restore", lambda: set_and_restore(args.gpu)),
                     ("lightning", lambda: lightning_run(out_dir, args.gpu, args.steps))):
        try:
            result[name] = fn()
        except Exception:
            result[name] = {"error": traceback.format_exc()}
        print(name, json.dumps(result[name], default=str)[:3000], flush=True)
    if not args.no_sweep and result.get("set_and_restore", {}).get("permission"):
        try:
            result["sweep"] = sweep(out_dir, args.gpu, args.warmup, args.measure)
        except Exception:
            result["sweep"] = {"error": traceback.format_exc()}
    elif not args.no_sweep:
        result["sweep"] = {"skipped": "no permission to set power limits"}
    result["final_limit_w"] = get_gpus().get_power_management_limit(args.gpu) // 1000
    (out_dir / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
    print("final limit", result["final_limit_w"], "W; original", result["basics"]["limit_w"], "W")
    return 0


if __name__ == "__main__":
    sys.exit(main())
