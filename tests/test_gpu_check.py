"""``scripts/gpu_check.py`` on the simulated GPU: the pieces that need no CUDA run here; the rest skips.

Zeus's GPU singleton (``zeus.device.gpu._gpus``) is pointed at a ``SimulatedGPUs`` for the test, so
``get_gpus()`` inside the script returns the simulated node, as it would return NVML's on a real one.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from zeus.device.gpu.common import ZeusGPUNoPermissionError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def simulated_node(make_sim, monkeypatch):
    import zeus.device.gpu as zeus_gpu

    sim = make_sim()
    monkeypatch.setattr(zeus_gpu, "_gpus", sim.gpus)
    return sim


def test_basics_read_through_zeus(gpu_check, simulated_node):
    from zeus.device import get_gpus

    basics = gpu_check.gpu_basics(get_gpus(), 0)
    assert basics["constraints_w"] == [100, 300] and basics["limit_w"] == 275
    assert basics["name"].endswith("(simulated)") and basics["energy_counter_j"] == 0.0


def test_set_and_restore(gpu_check, simulated_node):
    out = gpu_check.set_and_restore(0)
    assert out == {"original_w": 275, "target_w": 200, "read_back_w": 200, "permission": True,
                   "restore_problems": [], "after_restore_w": 275}
    assert simulated_node.gpus.gpus[0].limit_history_w == [200, 275]


def test_set_and_restore_without_permission(gpu_check, make_sim, monkeypatch):
    import zeus.device.gpu as zeus_gpu

    sim = make_sim(allow_set_power_limit=False)
    monkeypatch.setattr(zeus_gpu, "_gpus", sim.gpus)
    out = gpu_check.set_and_restore(0)
    assert out["permission"] is False and "PowerPermissionError" in out["error"]
    assert out["after_restore_w"] == 275 and out["restore_problems"] == []


def test_set_and_restore_when_the_gpu_fails_mid_check(gpu_check, simulated_node):
    gpu = simulated_node.gpus.gpus[0]
    gpu.fail_next_set = ZeusGPUNoPermissionError("revoked (simulated)")
    out = gpu_check.set_and_restore(0)
    assert out["permission"] is False and out["after_restore_w"] == 275


def test_sweep_on_the_simulated_gpu(gpu_check, simulated_node, tmp_path, monkeypatch):
    """The sweep loop, CSV and restore; the CUDA workloads are replaced by a simulated step."""
    import zeus.monitor.energy

    sim = simulated_node
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(zeus.monitor.energy, "sync_execution_fn", lambda *a, **k: None)  # no CUDA to sync
    workload = ("imagenet/resnet50", 256, lambda: lambda: sim.step(), 20)  # (name, batch, make_step, steps/epoch)
    monkeypatch.setattr(gpu_check, "_workloads", lambda device: [workload])
    result = gpu_check.sweep(tmp_path, 0, warmup=1, measure=2)
    assert result["limit_after_w"] == 275 and result["limits_w"][0] == 300 and result["limits_w"][-1] == 100
    rows = result["results"]["imagenet/resnet50"]
    assert [r["limit_w"] for r in rows] == result["limits_w"]
    assert all(r["energy_per_step_j"] > 0 for r in rows)
    # energy comes from the simulated counter through ZeusMonitor (time is wall time: instant steps here)
    for r in rows:
        assert r["energy_per_step_j"] == pytest.approx(sim.step_profile.energy_per_step_j(r["limit_w"]), rel=1e-3)
    lines = (tmp_path / result["csv"]).read_text().splitlines()
    assert lines[0].startswith("dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power")
    assert len(lines) == 1 + len(rows)


def test_sweep_restores_when_a_step_raises(gpu_check, simulated_node, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)

    def boom():
        raise RuntimeError("CUDA error: an illegal memory access (simulated)")

    monkeypatch.setattr(gpu_check, "_workloads", lambda device: [("imagenet/resnet50", 256, lambda: boom, 20)])
    with pytest.raises(RuntimeError, match="illegal memory access"):
        gpu_check.sweep(tmp_path, 0, warmup=1, measure=1)
    assert simulated_node.power_limits_w == [275]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Lightning check trains on a CUDA device")
def test_lightning_run_on_a_real_gpu(gpu_check, tmp_path):  # pragma: no cover - needs a GPU
    out = gpu_check.lightning_run(tmp_path, 0, steps=50)
    assert out["limit_after_w"] == out["limit_before_w"]


def test_main_writes_json_and_skips_what_needs_cuda(gpu_check, simulated_node, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--out", str(tmp_path), "--no-sweep"])
    if not torch.cuda.is_available():

        def no_cuda(*args):
            raise RuntimeError("no CUDA device")

        monkeypatch.setattr(gpu_check, "lightning_run", no_cuda)
    assert gpu_check.main() == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["set_and_restore"]["permission"] is True
    assert "error" in result["lightning"] or "wall_s" in result["lightning"]
    assert result["final_limit_w"] == result["basics"]["limit_w"] == 275
