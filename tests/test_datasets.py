"""The real data inside the package: every file loads by its short name, is licensed, and ships in the wheel.

Nothing here reads the shared data folder: these tests check what a user gets from ``pip install``.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from chase_integrations.datasets import (
    DATA_DIR,
    DEMO_GPU_PROFILE,
    DEMO_TRACE,
    get_dataset,
    gpu_profile_path,
    list_datasets,
    trace_path,
)
from chase_integrations.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
#: Mean avg_CI per balancing authority in 2022 (the source's README), gCO2/kWh.
MEANS_2022 = {"AZPS": 575, "BPAT": 55, "CISO": 256, "ERCO": 347, "MISO": 441, "NYIS": 273, "PJM": 363, "SOCO": 423}
#: One workload of each embedded profile: (workload, batch size).
PROFILE_WORKLOADS = {"a40": ("imagenet/resnet50", 256), "v100": ("imagenet/resnet50", 256),
                     "rtx6000": ("imagenet/resnet50", 256), "p100": ("imagenet/resnet50", 128),
                     "h200": ("synthetic-imagenet/resnet50", 128)}


@pytest.fixture(autouse=True)
def _no_shared_data(monkeypatch, tmp_path):
    """Whatever the machine has, these tests see no shared data folder."""
    monkeypatch.setenv("CHASE_DATA_DIR", str(tmp_path / "absent"))


def test_the_names_the_docs_promise():
    assert [d.name for d in list_datasets("gpu_profile")] == ["a40", "v100", "rtx6000", "p100", "h200"]
    assert [d.name for d in list_datasets("trace")] == [f"US-{ba}-2022" for ba in MEANS_2022]
    assert get_dataset(DEMO_TRACE).kind == "trace" and get_dataset(DEMO_GPU_PROFILE).kind == "gpu_profile"


def test_every_file_exists_and_the_whole_stays_small():
    files = [d.path for d in list_datasets()]
    assert all(p.is_file() for p in files)
    total = sum(p.stat().st_size for p in DATA_DIR.rglob("*") if p.is_file())
    assert total < 2_000_000, f"embedded data is {total:,} bytes; the wheel's budget is about 2 MB"
    on_disk = {p for p in DATA_DIR.rglob("*") if p.is_file() and p.name != "NOTICE"}
    assert on_disk == set(files), "every embedded file has a short name, and every name a file"


def test_notice_names_each_file_its_source_and_licence():
    notice = (DATA_DIR / "NOTICE").read_text(encoding="utf-8")
    for d in list_datasets():
        assert d.filename in notice and f'"{d.name}"' in notice
        assert d.licence.split(",")[0] in notice
    assert "Permission is hereby granted" in notice  # the MIT licence text travels with the MIT data


def test_pyproject_package_data_covers_every_file():
    tomllib = pytest.importorskip("tomllib")
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["chase_integrations"]
    for path in DATA_DIR.rglob("*"):
        if path.is_file():
            relative = path.relative_to(DATA_DIR.parent).as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} would not ship in the wheel"


@pytest.mark.parametrize("name", [d.name for d in list_datasets("trace")])
def test_every_trace_loads_by_name(name):
    from chase_integrations.carbon import TraceProvider

    trace = TraceProvider(name)
    assert trace.format.name == "eia930" and trace.value_column == "avg_CI"
    assert trace.start.isoformat() == "2022-01-01T00:00:00+00:00"
    assert trace.end.isoformat() == "2022-12-31T23:00:00+00:00"
    assert len(trace) + trace.dropped_rows == 8760 and trace.resolution_s == 3600
    ba = name.split("-")[1]
    assert trace.values_g_per_kwh.mean() == pytest.approx(MEANS_2022[ba], abs=1)


@pytest.mark.parametrize("name", list(PROFILE_WORKLOADS))
def test_every_gpu_profile_loads_by_name(name):
    from chase_integrations.simulation.gpu_profile import default_steps_per_epoch, load_gpu_profile

    workload, batch = PROFILE_WORKLOADS[name]
    profile = load_gpu_profile(name, workload, batch)
    assert len(profile.limits_w) >= 5
    assert all(profile.time_per_epoch_s[p] > 0 and profile.average_power_w[p] > 0 for p in profile.limits_w)
    assert default_steps_per_epoch(workload, batch) > 1  # steps_per_epoch=None works for every embedded profile


def test_h200_profile_is_the_sweep_in_the_zeus_format():
    import pandas as pd

    from chase_integrations.simulation.gpu_profile import ZEUS_TRACE_COLUMNS

    frame = pd.read_csv(gpu_profile_path("h200"))
    assert tuple(frame.columns) == ZEUS_TRACE_COLUMNS
    assert sorted(set(frame["power_limit"])) == list(range(200, 701, 25))
    assert set(zip(frame["network"], frame["optimizer"])) == {("resnet50", "sgd"), ("gpt2", "adamw")}
    sweep = ROOT / "bench" / "results" / "h200" / "sweep_NVIDIA_H200.csv"
    if sweep.is_file():  # the source, in a clone (not in a wheel)
        source = pd.read_csv(sweep)
        assert (source["time_per_epoch"].to_numpy() == frame["time_per_epoch"].to_numpy()).all()
        assert (source["average_power"].to_numpy() == frame["average_power"].to_numpy()).all()


def test_names_ignore_case_and_an_existing_file_wins(tmp_path, monkeypatch):
    assert trace_path("us-ciso-2022") == trace_path("US-CISO-2022") == get_dataset("US-CISO-2022").path
    assert gpu_profile_path("A40").name == "summary_power_a40.csv"
    assert gpu_profile_path("summary_power_a40.csv") == gpu_profile_path("a40")  # the README's file name works too
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a40").write_text("mine")
    assert gpu_profile_path("a40") == Path("a40")


@pytest.mark.parametrize(("function", "argument"), [(trace_path, "trace"), (gpu_profile_path, "gpu_profile")])
def test_unknown_names_list_the_known_ones(function, argument):
    with pytest.raises(ConfigurationError) as info:
        function("nope.csv")
    message = str(info.value)
    assert message.startswith(f"`{argument}` must be") and "got 'nope.csv'" in message
    names = [d.name for d in list_datasets("trace" if argument == "trace" else "gpu_profile")]
    assert all(n in message for n in names) and "no file" in message and "chase data list" in message
    with pytest.raises(ConfigurationError, match="`--trace` must be"):
        trace_path("nope", argument="--trace")


def test_short_names_work_in_simulation_and_simulate():
    from chase_integrations.simulation import Simulation, simulate

    sim = Simulation(gpu_profile="a40", trace="US-CISO-2022", start="2022-03-01T00:00:00Z", steps_per_epoch=20)
    assert sim.provider.latest().g_per_kwh > 0 and sim.step_profile.limits_w[-1] == 300
    result = simulate(trace="US-ERCO-2022", gpu_profile="h200", workload="synthetic-imagenet/resnet50",
                      batch_size=128, job_hours=6, start="2022-06-01T00:00:00Z", policy="budget",
                      forecaster="persistence")
    assert result.carbon_g > 0 and result.time_increase <= 0.06


def test_chase_data_list_and_path(capsys):
    from chase_integrations.cli import main

    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for d in list_datasets():
        assert d.name in out
    assert "Apache-2.0" in out and "MIT" in out and "NOTICE" in out
    assert main(["data", "list", "--json", "--kind", "trace"]) == 0
    rows = json.loads(capsys.readouterr().out)["datasets"]
    assert {r["kind"] for r in rows} == {"trace"} and all(Path(r["path"]).is_file() for r in rows)
    assert main(["data", "path", "h200"]) == 0
    assert capsys.readouterr().out.strip() == str(gpu_profile_path("h200"))
    assert main(["data", "path", "h100"]) == 2
    assert "`name` must be" in capsys.readouterr().err
