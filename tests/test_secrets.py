"""Secrets: a token given to a provider reaches the provider's server and nothing else.

A full simulated training per adapter with an Electricity Maps provider on the local test server, DEBUG
logging on, checkpointing on and ``report_path`` set; then every log line, the captured output, the
report and every checkpoint file are searched for the token. Plus a grep-style check that nothing read
from the network or from a checkpoint is unpickled or evaluated.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from chase_integrations.carbon import ElectricityMapsProvider
from tests.faults_helpers import callback_options, make_callback, run
from tests.provider_server import START, ProviderServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "em-DISTINCTIVE-tok-7f3a9c2e51b84d06"


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.parametrize("adapter", ["lightning", "hf"])
@pytest.mark.parametrize("token_from", ["argument", "environment"])
def test_token_never_leaves_the_request(adapter, token_from, make_sim, tmp_path, caplog, capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)
    sim = make_sim(start=START, trace=None)  # the GPU and clock only: intensity comes from the local server
    with ProviderServer(clock=sim.clock) as server:
        if token_from == "environment":
            monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", TOKEN)
        provider = ElectricityMapsProvider(zone="DE", token=TOKEN if token_from == "argument" else None,
                                           base_url=server.url + "/em/v3", clock=sim.clock, sleep=lambda s: None)
        out_dir = tmp_path / "run"
        cb = make_callback(adapter, **callback_options(sim, out_dir, provider=provider, policy="chase",
                                                       profile_path=str(out_dir / "profile.json")))
        if adapter == "lightning":
            from lightning.pytorch.callbacks import ModelCheckpoint

            ckpt = ModelCheckpoint(dirpath=str(out_dir / "ckpt"), save_last=True, every_n_epochs=1)
            result = run(adapter, out_dir, cb, epochs=2, extra_callbacks=[ckpt], enable_checkpointing=True)
        else:
            result = run(adapter, out_dir, cb, epochs=2, save_strategy="epoch")
        assert server.count("/em/v3") > 0
        assert all(r.headers.get("auth-token") == TOKEN for r in server.requests)  # it was really used
    provider.close()
    assert result.steps == 40 and cb.report["provider"].startswith("electricitymaps")

    captured = capfd.readouterr()
    haystacks = {"log": caplog.text, "stdout": captured.out, "stderr": captured.err,
                 "repr": repr(provider) + str(provider.__dict__), "warnings": "\n".join(result.warnings)}
    files = _files(out_dir)
    assert (out_dir / "report.json") in files
    if adapter == "lightning":
        import torch

        ckpts = [p for p in files if p.suffix == ".ckpt"]
        assert ckpts
        for p in ckpts:  # the callback's state, decoded, as Lightning will read it back
            haystacks[f"{p.name} (loaded)"] = repr(torch.load(p, weights_only=False))
    else:
        assert any(p.name == "chase_state.json" for p in files) and any(p.name == "trainer_state.json" for p in files)
    for p in files:
        data = p.read_bytes()
        assert TOKEN.encode() not in data, p
        assert TOKEN.encode("utf-16-le") not in data, p
    for where, text in haystacks.items():
        assert TOKEN not in text, where
    assert "***" in repr(provider) or TOKEN not in repr(provider)


# ------------------------------------------------------------------ nothing is unpickled or evaluated
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_ATTRS = {("pickle", "load"), ("pickle", "loads"), ("marshal", "loads"), ("yaml", "load"),
                   ("torch", "load"), ("dill", "load"), ("dill", "loads"), ("cloudpickle", "loads")}


def _package_sources() -> list[Path]:
    return sorted((ROOT / "chase_integrations").rglob("*.py"))


@pytest.mark.parametrize("path", _package_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unpickling_or_evaluation_anywhere_in_the_package(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                assert f.id not in FORBIDDEN_CALLS, f"{path}:{node.lineno} calls {f.id}"
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                assert (f.value.id, f.attr) not in FORBIDDEN_ATTRS, f"{path}:{node.lineno} calls {f.value.id}.{f.attr}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            assert not {"pickle", "marshal", "shelve", "dill", "cloudpickle"} & set(names), f"{path}:{node.lineno}"


def test_providers_parse_responses_as_json_only():
    """Every provider body goes through ``HttpClient``, which decodes JSON (``response.json()``) and nothing else."""
    carbon = ROOT / "chase_integrations" / "carbon"
    http = (carbon / "_http.py").read_text()
    assert ".json()" in http or "json.loads" in http
    for path in carbon.glob("*.py"):
        text = path.read_text()
        assert "httpx.get(" not in text and "urllib.request" not in text and "requests." not in text, path


def test_checkpoint_state_is_read_as_json(tmp_path):
    from chase_integrations.huggingface import _trainer

    (tmp_path / _trainer.STATE_FILE).write_bytes(b"\x80\x04\x95cos\nsystem\n")  # a pickle, not JSON
    with pytest.raises(ValueError):  # never unpickled: a decode error, which the callback turns into a warning
        _trainer.read_state(tmp_path)
