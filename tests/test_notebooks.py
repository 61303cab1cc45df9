"""The notebooks: stored without outputs, and each runs top to bottom on a fresh kernel and draws a figure.

Each notebook runs with nbclient on a new ``python3`` kernel of this interpreter (the venv's), in a temporary
working directory. Any cell that raises fails the test. The notebooks run on the real data inside the package
(never the shared data folder, which a user does not have), through the public API only; notebook 01 also runs
on a CSV the user brings (``test_notebook_01_runs_on_your_own_trace``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
REQUIRED = ("01_will_it_pay_off.ipynb", "02_forecasting_my_grid.ipynb", "03_reading_a_run.ipynb")
CELL_TIMEOUT_S = 240
#: What each notebook prints about its data (the embedded real trace by default).
DATA_MARKERS = {
    "01_will_it_pay_off.ipynb": "REAL data (embedded): US-CISO-2022",
    "02_forecasting_my_grid.ipynb": "REAL data (embedded): US-CISO-2022",
    "03_reading_a_run.ipynb": "trace: US-CISO-2022, embedded real data",
}


def _ids(path: Path) -> str:
    return path.stem


def _need(module: str):
    """Import a notebook-test dependency (the ``dev`` extra): skip locally when absent, fail in CI."""
    if os.environ.get("CI"):
        try:
            return importlib.import_module(module)
        except ImportError as e:
            pytest.fail(f"{module} is missing in CI; it comes with the `dev` extra ({e})")
    return pytest.importorskip(module)


def test_the_three_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert set(REQUIRED) <= names, f"missing notebooks: {set(REQUIRED) - names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_is_stored_with_outputs_stripped(path: Path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["nbformat"] == 4
    assert raw["metadata"].get("kernelspec", {}).get("name") == "python3"
    for i, cell in enumerate(raw["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name}: cell {i} is stored with outputs (strip them)"
        assert cell.get("execution_count") is None, f"{path.name}: cell {i} is stored with an execution count"
    nbformat = _need("nbformat")
    nbformat.validate(nbformat.read(path, as_version=4))


@pytest.fixture
def venv_kernel(tmp_path_factory, monkeypatch) -> str:
    """A ``python3`` kernel spec that runs ipykernel on this interpreter, first on JUPYTER_PATH.

    A user-level ``python3`` kernel pointing at another Python would otherwise win.
    """
    _need("ipykernel")
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (chase-integrations test)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.delenv("CHASE_PROGRESS", raising=False)
    return "python3"


def _execute(path: Path, workdir: Path, kernel_name: str):
    nbformat = _need("nbformat")
    nbclient = _need("nbclient")
    _need("matplotlib")
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=kernel_name,
                                     resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name}: a cell failed:\n{e}")
    return nb


def _outputs(nb) -> tuple[str, int]:
    """All text the notebook printed, and how many PNG images it displayed."""
    texts, images = [], 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"error output: {out.get('ename')}: {out.get('evalue')}"
            if out.get("output_type") == "stream":
                texts.append(out.get("text", ""))
            data = out.get("data", {})
            images += "image/png" in data
            texts.append(data.get("text/plain", ""))
    return "\n".join(texts), images


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_uses_only_the_public_api(path: Path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in raw["cells"] if c["cell_type"] == "code")
    assert "chase_integrations._" not in code and "CHASE_DATA_DIR" not in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_and_draws(path: Path, tmp_path: Path, venv_kernel: str, monkeypatch):
    monkeypatch.setenv("CHASE_DATA_DIR", str(tmp_path / "absent"))  # what a user has: the package, no data folder
    nb = _execute(path, tmp_path, venv_kernel)
    text, images = _outputs(nb)
    assert images >= 1, f"{path.name} displayed no figure (no image/png output)"
    if path.name in DATA_MARKERS:
        expected = DATA_MARKERS[path.name]
        assert expected in text, f"{path.name} does not say which data it used ({expected!r} not printed)"


def test_notebook_01_runs_on_your_own_trace(tmp_path: Path, venv_kernel: str, monkeypatch):
    """"Your grid": the yearly CSV a user downloads from Electricity Maps' portal, set in the settings cell."""
    from datetime import datetime, timedelta

    from chase_integrations.simulation.synthetic import synthetic_intensity

    nbformat = _need("nbformat")
    export = tmp_path / "my_zone_2023_hourly.csv"
    lines = ["Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
             "Carbon Intensity gCO₂eq/kWh (LCA),Data Source,Data Estimated"]
    t0 = datetime(2023, 1, 1)
    for h in range(24 * 60):
        v = synthetic_intensity(h)
        lines.append(f"{t0 + timedelta(hours=h):%Y-%m-%d %H:%M:%S},Somewhere,Somewhere,XX,{v},{v * 1.2:.2f},test,false")
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    nb = nbformat.read(NOTEBOOK_DIR / "01_will_it_pay_off.ipynb", as_version=4)
    settings = nb.cells[1].source
    assert 'TRACE = "US-CISO-2022"' in settings
    mine = tmp_path / "01_mine.ipynb"
    nb.cells[1].source = settings.replace('TRACE = "US-CISO-2022"', f"TRACE = {str(export)!r}")
    nbformat.write(nb, mine)
    monkeypatch.setenv("CHASE_DATA_DIR", str(tmp_path / "absent"))
    text, images = _outputs(_execute(mine, tmp_path, venv_kernel))
    assert images >= 1
    assert f"your file {export}" in text and "Electricity Maps data portal export" in text
    assert "Carbon Intensity gCO₂eq/kWh (direct)" in text and "grid trace : REAL data" not in text
