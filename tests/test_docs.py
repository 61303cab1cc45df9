"""README.md and docs/ as tests: every code block runs, the argument table matches the code, links stay inside.

How a block runs, and the directives a page can give, are described in :mod:`tests.docs_blocks`.
A failure names the page and line of the block (its test id is ``path:line``).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.docs_blocks import (
    OUTPUT_LANGS,
    PYTHON_LANGS,
    ROOT,
    SHELL_LANGS,
    Block,
    all_blocks,
    chain,
    check_output_block,
    markdown_files,
    run_python,
    run_shell,
    subprocess_env,
)

BLOCKS = all_blocks()
CHECKED = [b for b in BLOCKS if b.lang != "text"]


# --- what a CPU-only test machine lacks -----------------------------------------------------------


def _setup_lightning(ns: dict[str, Any]) -> None:
    import lightning as L
    import torch
    from torch.utils.data import TensorDataset

    from tests.lightning_helpers import TinyModel

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(40, 4, generator=g), torch.randn(40, 1, generator=g))
    ns["model"] = TinyModel()
    ns["datamodule"] = L.LightningDataModule.from_datasets(train_dataset=data, batch_size=2)


def _setup_hf(ns: dict[str, Any]) -> None:
    from chase_integrations.huggingface.demo import RegressionDataset, TinyRegressor

    ns["model"] = TinyRegressor()
    ns["train_dataset"] = RegressionDataset(160)  # 20 steps per epoch at the Trainer's batch size 8


def _setup_loop(ns: dict[str, Any]) -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(40, 4, generator=g), torch.randn(40, 1, generator=g))
    ns["model"] = model = torch.nn.Linear(4, 1)
    ns["loader"] = DataLoader(data, batch_size=2)
    ns["optimizer"] = torch.optim.SGD(model.parameters(), lr=0.01)


SETUPS = {"lightning": _setup_lightning, "hf": _setup_hf, "loop": _setup_loop}


def _same_name(sub: type, cls: type) -> type:
    sub.__name__, sub.__qualname__, sub.__module__ = cls.__name__, cls.__qualname__, cls.__module__
    sub.__doc__ = cls.__doc__
    return sub


def _on_simulated_gpu(cls: type, simulation: Any) -> type:
    """``cls`` whose instances built without ``gpus`` and ``simulation`` run on ``simulation``."""

    class OnSimulatedGPU(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("gpus") is None and kwargs.get("simulation") is None:
                kwargs["simulation"] = simulation
            super().__init__(*args, **kwargs)

    return _same_name(OnSimulatedGPU, cls)


def _on_local_server(cls: type, base_url: str, clock: Any) -> type:
    """``cls`` whose instances built without ``base_url`` ask ``base_url`` on ``clock``."""

    class OnLocalServer(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if "base_url" not in kwargs:
                kwargs.update(base_url=base_url, clock=clock, sleep=lambda s: None)
            super().__init__(*args, **kwargs)

    return _same_name(OnLocalServer, cls)


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A working folder, environment and namespace in which the docs' blocks run on the CPU."""
    import chase_integrations
    import chase_integrations.carbon as carbon
    from chase_integrations.simulation import Simulation
    from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace
    from tests.provider_server import EM_TOKEN, START, WT_PASSWORD, WT_USER, ProviderServer

    private = tmp_path / "harness"
    private.mkdir()
    sim = Simulation(
        gpu_profile=write_synthetic_gpu_profile(private / "profile.csv"), workload="imagenet/resnet50",
        batch_size=256, trace=write_synthetic_trace(private / "trace.csv", start=START), start=START,
        steps_per_epoch=20,
    )
    env = {
        "ELECTRICITYMAPS_API_TOKEN": EM_TOKEN, "WATTTIME_USERNAME": WT_USER, "WATTTIME_PASSWORD": WT_PASSWORD,
        "CHASE_DATA_DIR": str(private / "no-data-folder"),  # the README must work without the shared data
        "MPLBACKEND": "Agg",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with ProviderServer(clock=sim.clock) as server:
        for name, prefix in (("ElectricityMapsProvider", "/em/v3"), ("UKCarbonIntensityProvider", "/uk"),
                             ("WattTimeProvider", "/wt")):
            monkeypatch.setattr(carbon, name, _on_local_server(getattr(carbon, name), server.url + prefix, sim.clock))
        from chase_integrations import huggingface, lightning

        monkeypatch.setattr(lightning, "ChaseCallback", _on_simulated_gpu(lightning.ChaseCallback, sim))
        hf_callback = _on_simulated_gpu(huggingface.ChaseTrainerCallback, sim)
        monkeypatch.setattr(huggingface, "ChaseTrainerCallback", hf_callback)
        try:
            chase_cls = chase_integrations.Chase
        except AttributeError:  # the plain-loop API has not landed: its blocks fail on their import
            chase_cls = None
        if chase_cls is not None:
            monkeypatch.setattr(chase_integrations, "Chase", _on_simulated_gpu(chase_cls, sim), raising=False)
        yield {"cwd": work, "env": subprocess_env(env), "namespace": {"__name__": "__docs__"}}


# --- the tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", CHECKED, ids=lambda b: b.id)
def test_block_runs(block: Block, harness: dict[str, Any]) -> None:
    """The block runs as written (after the blocks it continues), on the CPU, with no network."""
    blocks = chain(block, BLOCKS)
    for b in blocks:
        if "skip" in b.directives:
            assert b.directives["skip"], f"{b.id}: `skip` needs a reason: <!-- docs-test: skip=why -->"
            pytest.skip(f"{b.id}: {b.directives['skip']}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run_chain(blocks, harness)
    internal = [str(w.message) for w in caught if "failed internally" in str(w.message)]
    assert internal == [], f"{block.id}: ran, but the package failed internally (the run did nothing)"


def _run_chain(blocks: list[Block], harness: dict[str, Any]) -> None:
    for b in blocks:
        setup = b.directives.get("setup")
        if setup:
            assert setup in SETUPS, f"{b.id}: unknown setup {setup!r}; known: {sorted(SETUPS)}"
            SETUPS[setup](harness["namespace"])
        if b.lang in PYTHON_LANGS:
            try:
                run_python(b, harness["namespace"])
            except Exception as e:
                pytest.fail(f"{b.id}: the python block failed\n{traceback.format_exc()}\n{type(e).__name__}: {e}")
        elif b.lang in SHELL_LANGS:
            run_shell(b, harness["cwd"], harness["env"])
        elif b.lang in OUTPUT_LANGS:
            check_output_block(b)
        else:
            pytest.fail(f"{b.id}: a block in {b.lang or 'no language'}; give it one of "
                        f"{sorted(PYTHON_LANGS | SHELL_LANGS | OUTPUT_LANGS)}")


def _table_after(text: str, header: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.replace(" ", "").startswith(header.replace(" ", "")))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _literal(cell: str) -> Any:
    m = re.fullmatch(r"`([^`]*)`", cell)
    if not m:
        return cell  # "required"
    return ast.literal_eval(m[1])


def _code_arguments() -> dict[str, Any]:
    """Every argument of both callbacks (their signatures and the configuration fields), with its default."""
    from chase_integrations.core.config import ChaseConfig
    from chase_integrations.huggingface import ChaseTrainerCallback
    from chase_integrations.lightning import ChaseCallback

    found: dict[str, dict[str, Any]] = {}
    for cls in (ChaseCallback, ChaseTrainerCallback):
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                default = "required" if p.default is p.empty else p.default
                found.setdefault(p.name, {})[cls.__name__] = default
    for f in dataclasses.fields(ChaseConfig):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "required"
        found.setdefault(f.name, {})["ChaseConfig"] = default
    out = {}
    for name, defaults in found.items():
        values = list(defaults.values())
        assert all(v == values[0] for v in values), f"`{name}` has different defaults in the code: {defaults}"
        out[name] = values[0]
    return out


def test_configuration_table_matches_the_code() -> None:
    """docs/configuration.md lists every argument of the callbacks, with the default the code has."""
    rows = _table_after((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"), "| argument | default |")
    documented = {}
    for cells in rows:
        name = re.fullmatch(r"`(\w+)`", cells[0])
        assert name, f"docs/configuration.md: argument cell {cells[0]!r} is not `name`"
        documented[name[1]] = _literal(cells[1])
    code = _code_arguments()
    assert sorted(set(code) - set(documented)) == [], "arguments in the code missing from docs/configuration.md"
    assert sorted(set(documented) - set(code)) == [], "arguments in docs/configuration.md that the code lacks"
    wrong = {n: (documented[n], code[n]) for n in code if documented[n] != code[n]}
    assert wrong == {}, "defaults differ (docs, code)"


def test_readme_is_a_quick_start() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; the reference belongs in docs/"


_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository(page: Path) -> None:
    """Relative links resolve to a file of this repository (web links are left alone)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    bad = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            bad.append(target)
    assert bad == [], f"{page.relative_to(ROOT)}: links that leave the repository or point nowhere"


def _paragraphs(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if len(" ".join(p.split())) >= 160}


def test_no_page_repeats_another() -> None:
    """A paragraph lives in one place: README.md and the pages of docs/ share no long paragraph."""
    seen: dict[str, str] = {}
    repeated = []
    for page in markdown_files():
        name = str(page.relative_to(ROOT))
        for paragraph in _paragraphs(page):
            if paragraph in seen:
                repeated.append(f"{seen[paragraph]} and {name}: {paragraph[:100]}...")
            seen.setdefault(paragraph, name)
    assert repeated == []
