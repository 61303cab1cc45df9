"""Real-GPU check of the limit watchdog: SIGKILL a Lightning job running at a lowered limit, read the limit back.

Run on a machine with an NVIDIA GPU, as a user allowed to set power limits (root, CAP_SYS_ADMIN, or
``zeusd`` with ``ZEUSD_SOCK_PATH``)::

    python scripts/watchdog_check.py                     # GPU 0, 100 W below the maximum
    python scripts/watchdog_check.py --gpu 1 --drop-w 150 --out bench/results

Two trainer subprocesses (this script with ``--trainer``), each seeing the GPU as ``cuda:0`` through
``CUDA_VISIBLE_DEVICES`` (so the watchdog's physical-index mapping is exercised):

1. ``kill``: ChaseCallback with the static policy at the lowered limit; once the GPU runs at it
   mid-run, the trainer is SIGKILLed. ``nvidia-smi`` is polled until the limit reads the original
   again (``restore_s``, must be under ``--timeout-s``), and the watchdog process must be gone.
2. ``clean``: the same job to its end; the report must say the watchdog was dismissed, its process
   must be gone, and the limit must be the original.

Writes ``watchdog_check_<UTC time>.json`` (everything observed) to ``--out``. If the limit is not the
original at the end, whatever happened, the script puts it back through Zeus and says so. Never part of
the test suite (``scripts/`` is not collected).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MARK_STEP = 40  # the trainer says "mid-run" at the first step from this one on that runs at the lowered limit


# ===================================================================== the trainer (a subprocess)
def trainer(scenario: str, target_w: int, workdir: Path) -> None:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from chase_integrations.carbon import StaticProvider
    from chase_integrations.lightning import ChaseCallback

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

    class Mark(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            marker = workdir / "midrun"
            if trainer.global_step >= MARK_STEP and cb.session.current_limit_w == target_w and not marker.exists():
                tmp = workdir / "midrun.tmp"
                tmp.write_text(str(os.getpid()))
                tmp.replace(marker)

    data = TensorDataset(torch.randn(64 * 32, 3, 64, 64), torch.randint(0, 10, (64 * 32,)))
    cb = ChaseCallback(provider=StaticProvider(400.0), policy="static", static_power_limit_w=target_w,
                       forecaster="persistence", profile_warmup_steps=2, profile_measure_steps=5,
                       report_path=str(workdir / f"report_{scenario}.json"))
    # kill: trains until killed (10 min at most); clean: 30 s (profiling takes ~5 s), then a normal end.
    max_time = {"minutes": 10} if scenario == "kill" else {"seconds": 30}
    L.Trainer(max_steps=-1, max_time=max_time, accelerator="gpu", devices=1, callbacks=[cb, Mark()], logger=False,
              enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(Conv(), DataLoader(data, batch_size=64))


# ===================================================================== the check (this process)
def smi(index: int) -> dict:
    fields = "name,power.limit,power.min_limit,power.max_limit"
    out = subprocess.run(["nvidia-smi", "-i", str(index), f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    name, limit, lo, hi = (x.strip() for x in out.split(","))
    return {"name": name, "limit_w": round(float(limit)), "min_w": round(float(lo)), "max_w": round(float(hi))}


def watchdogs_of(pid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == pid and b"chase_integrations.power.watchdog" in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def spawn(scenario: str, index: int, target_w: int, workdir: Path) -> subprocess.Popen:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(index), PYTHONPATH=str(ROOT))
    stderr = open(workdir / f"stderr_{scenario}.txt", "w")  # noqa: SIM115 - the watchdog inherits it
    return subprocess.Popen([sys.executable, __file__, "--trainer", scenario, "--target-w", str(target_w),
                             "--workdir", str(workdir)], env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def check_kill(index: int, target_w: int, original_w: int, workdir: Path, timeout_s: float) -> dict:
    out: dict = {}
    proc = spawn("kill", index, target_w, workdir)
    try:
        deadline = time.monotonic() + 600
        while not (workdir / "midrun").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out["error"] = f"trainer ended (status {proc.poll()}) or timed out before mid-run"
                return out
            time.sleep(0.2)
        out["limit_mid_run_w"] = smi(index)["limit_w"]
        out["watchdog_pids"] = watchdogs_of(proc.pid)
        proc.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        while smi(index)["limit_w"] != original_w and time.monotonic() - t0 < timeout_s:
            time.sleep(0.1)
        out["restore_s"] = time.monotonic() - t0
        out["limit_after_kill_w"] = smi(index)["limit_w"]
        time.sleep(1.0)
        out["watchdog_alive_after"] = any(alive(p) for p in out["watchdog_pids"])
    finally:
        proc.kill()
        proc.wait()
        out["stderr_tail"] = (workdir / "stderr_kill.txt").read_text()[-3000:]
    out["ok"] = (out.get("limit_mid_run_w") == target_w and len(out.get("watchdog_pids", [])) == 1
                 and out.get("limit_after_kill_w") == original_w and out.get("restore_s", 1e9) < timeout_s
                 and not out.get("watchdog_alive_after", True))
    return out


def check_clean(index: int, target_w: int, original_w: int, workdir: Path) -> dict:
    proc = spawn("clean", index, target_w, workdir)
    out: dict = {"exit_status": proc.wait(900)}
    out["stderr_tail"] = (workdir / "stderr_clean.txt").read_text()[-3000:]
    report_path = workdir / "report_clean.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    out["watchdog"] = report.get("watchdog")
    out["mode"] = report.get("mode")
    out["limits_used_w"] = report.get("power_limits_used_w")
    out["limit_after_w"] = smi(index)["limit_w"]
    pid = (out["watchdog"] or {}).get("pid")
    out["watchdog_alive_after"] = alive(pid) if pid else None
    out["ok"] = (out["exit_status"] == 0 and (out["watchdog"] or {}).get("state") == "dismissed"
                 and out["watchdog_alive_after"] is False and out["limit_after_w"] == original_w)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", type=int, default=0, help="nvidia-smi index of the GPU")
    parser.add_argument("--drop-w", type=int, default=100, help="run at the maximum minus this many W")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="the restore must take less than this")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--trainer", choices=["kill", "clean"], help=argparse.SUPPRESS)
    parser.add_argument("--target-w", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trainer:
        trainer(args.trainer, args.target_w, Path(args.workdir))
        return 0

    try:
        gpu = smi(args.gpu)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"SKIP: no NVIDIA GPU {args.gpu} here ({type(e).__name__}: {e})")
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.out)
    workdir = out_dir / f"watchdog_check_{stamp}_work"
    workdir.mkdir(parents=True, exist_ok=True)
    original_w = gpu["limit_w"]
    target_w = max(gpu["min_w"], gpu["max_w"] - args.drop_w)
    result: dict = {"time_utc": stamp, "gpu_index": args.gpu, "gpu": gpu, "original_w": original_w,
                    "target_w": target_w, "zeusd": bool(os.environ.get("ZEUSD_SOCK_PATH"))}
    try:
        result["kill"] = check_kill(args.gpu, target_w, original_w, workdir, args.timeout_s)
        result["clean"] = check_clean(args.gpu, target_w, original_w, workdir)
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        final = smi(args.gpu)["limit_w"]
        result["final_limit_w"] = final
        if final != original_w:  # never leave the machine throttled, whatever went wrong above
            from zeus.device import get_gpus

            physical = [g.gpu_index for g in get_gpus().gpus].index(args.gpu)
            get_gpus().set_power_management_limit(physical, original_w * 1000)
            result["safety_restore_w"] = smi(args.gpu)["limit_w"]
    result["ok"] = bool(result.get("kill", {}).get("ok") and result.get("clean", {}).get("ok"))
    path = out_dir / f"watchdog_check_{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"{'PASS' if result['ok'] else 'FAIL'}: {path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
