"""``chase report`` and ``chase_integrations.reporting`` on reports from simulated runs."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from chase_integrations.cli import main
from chase_integrations.reporting import (
    MissingExtraError,
    ReportError,
    format_summary,
    format_table,
    limit_breakdown,
    load_report,
    summarize,
    validate_report,
)
from chase_integrations.simulation.synthetic import write_synthetic_gpu_profile, write_synthetic_trace

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _need_matplotlib() -> None:
    """matplotlib comes with the ``dev`` extra: skip locally when absent, fail in CI."""
    if os.environ.get("CI"):
        import matplotlib  # noqa: F401
    else:
        pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    """A run report written by ``chase demo --report``: Lightning on CPU over a simulated GPU."""
    pytest.importorskip("lightning")
    d = tmp_path_factory.mktemp("demo")
    trace = write_synthetic_trace(d / "trace.csv", start="2023-03-01T00:00:00Z", days=14)
    profile = write_synthetic_gpu_profile(d / "profile.csv")
    out = d / "run.json"
    rc = main(["demo", "--trace", str(trace), "--gpu-profile", str(profile), "--epochs", "10",
               "--steps-per-epoch", "10", "--decision-interval-s", "1800", "--report", str(out)])
    assert rc == 0 and out.is_file()
    return out


@pytest.fixture(scope="module")
def simulated_report(tmp_path_factory) -> Path:
    """A run report written by ``simulate(report_path=...)`` (the engine without a framework)."""
    from chase_integrations.simulation.simulate import simulate

    d = tmp_path_factory.mktemp("sim")
    trace = write_synthetic_trace(d / "trace.csv", start="2023-03-01T00:00:00Z", days=14)
    profile = write_synthetic_gpu_profile(d / "profile.csv")
    out = d / "run.json"
    simulate(trace=trace, gpu_profile=profile, job_hours=12, start="2023-03-02T00:00:00Z", policy="budget",
             max_slowdown=0.05, forecaster="seasonal_naive", report_path=out)
    return out


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# --------------------------------------------------------------------------- the command
def test_report_prints_summary_and_table(demo_report: Path, capsys):
    assert main(["report", str(demo_report)]) == 0
    out = capsys.readouterr().out
    report = json.loads(demo_report.read_text())
    assert "Run report: policy budget" in out
    assert "default limit (estimate)" in out and "saved" in out
    assert "limit W" in out and "energy kWh" in out and "total" in out
    for limit in report["power_limits_used_w"]:
        assert f"{limit:>8d}" in out  # one table row per limit used


def test_report_plot_writes_a_readable_png(demo_report: Path, tmp_path: Path, capsys):
    _need_matplotlib()
    png = tmp_path / "sub" / "run.png"
    assert main(["report", str(demo_report), "--plot", str(png)]) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    width, height = _png_size(png)
    assert width >= 1000 and height >= 700
    assert png.stat().st_size > 30_000  # three panels of lines and text, not a blank canvas


def test_report_plot_of_simulate_report(simulated_report: Path, tmp_path: Path):
    _need_matplotlib()
    png = tmp_path / "sim.png"
    assert main(["report", str(simulated_report), "--plot", str(png), "--dpi", "80"]) == 0
    width, _ = _png_size(png)
    assert width == 12 * 80


def test_report_json_matches_the_report(demo_report: Path, capsys):
    assert main(["report", str(demo_report), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    report = json.loads(demo_report.read_text())
    assert summary["carbon_g"] == pytest.approx(report["carbon_g"])
    assert summary["baseline_carbon_g"] == pytest.approx(report["baseline_carbon_g"])
    assert summary["carbon_reduction"] == pytest.approx(report["carbon_saved_g"] / report["baseline_carbon_g"])
    assert summary["time_increase"] == pytest.approx(report["time_s"] / report["baseline_time_s"] - 1)
    assert summary["intervals"] == len(report["intervals"])
    assert summary["power_limits_used_w"] == report["power_limits_used_w"]


def test_report_intervals_lists_every_interval(simulated_report: Path, capsys):
    assert main(["report", str(simulated_report), "--intervals"]) == 0
    out = capsys.readouterr().out
    report = json.loads(simulated_report.read_text())
    rows = [line for line in out.splitlines() if line[:4].isdigit() and ":" in line[:17]]
    assert len(rows) == len(report["intervals"])


def test_console_script_end_to_end(simulated_report: Path):
    proc = subprocess.run([sys.executable, "-m", "chase_integrations", "report", str(simulated_report)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Run report" in proc.stdout


# --------------------------------------------------------------------------- errors
def test_missing_file_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "nope.json" in err and "--report" in err


def test_directory_is_a_clear_error(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_invalid_json_is_a_clear_error(tmp_path: Path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"policy": "budget",')
    assert main(["report", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"hello": 1}, "missing policy, carbon_g"),
        ({"policy": "budget", "carbon_g": "x", "energy_j": 1, "time_s": 1, "baseline_carbon_g": 1,
          "baseline_time_s": 1, "intervals": []}, "`carbon_g` must be a number"),
        ({"policy": "budget", "carbon_g": 1, "energy_j": 1, "time_s": 1, "baseline_carbon_g": 1,
          "baseline_time_s": 1, "intervals": [{"start": "2024-01-01T00:00:00Z"}]}, "intervals[0] has no `end`"),
        ({"policy": "budget", "carbon_g": 1, "energy_j": 1, "time_s": 1, "baseline_carbon_g": 1,
          "baseline_time_s": 1, "intervals": [{"start": "yesterday", "end": "2024-01-01T01:00:00Z",
                                               "power_limit_w": 250, "intensity_g_per_kwh": 1, "energy_j": 1,
                                               "carbon_g": 1}]}, "intervals[0].start must be an ISO-8601 time"),
    ],
)
def test_not_a_run_report_is_a_clear_error(tmp_path: Path, capsys, content, message):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(content))
    assert main(["report", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_plot_without_intervals_is_a_clear_error(simulated_report: Path, tmp_path: Path, capsys):
    _need_matplotlib()
    report = json.loads(simulated_report.read_text())
    report["intervals"] = []
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(report))
    assert main(["report", str(path), "--plot", str(tmp_path / "x.png")]) == 2
    assert "no intervals" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_names_the_extra(simulated_report: Path, tmp_path: Path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["report", str(simulated_report), "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and 'pip install "chase-integrations[plot]"' in err
    # the text summary needs no matplotlib
    assert main(["report", str(simulated_report)]) == 0


def test_missing_matplotlib_error_types(simulated_report: Path, monkeypatch):
    from chase_integrations.reporting import plot_timeline

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError) as info:
        plot_timeline(load_report(simulated_report))
    assert isinstance(info.value, ImportError)


# --------------------------------------------------------------------------- library
def test_summary_text_and_table_add_up(demo_report: Path):
    report = load_report(demo_report)
    rows = limit_breakdown(report)
    assert sum(r["carbon_g"] for r in rows) == pytest.approx(report["carbon_g"], rel=1e-9)
    assert sum(r["time_share"] for r in rows) == pytest.approx(1.0)
    assert [r["power_limit_w"] for r in rows] == sorted(report["power_limits_used_w"])
    text = format_summary(report)
    assert report["policy"] in text and "gCO2eq" in text
    assert len(format_table(report).splitlines()) == len(rows) + 4


def test_plot_timeline_panels_have_units(demo_report: Path):
    _need_matplotlib()
    from chase_integrations.reporting import plot_timeline

    report = load_report(demo_report)
    fig = plot_timeline(report)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert len(labels) == 3
    assert "gCO2eq/kWh" in labels[0] and "(W)" in labels[1] and "CO2eq" in labels[2]
    assert fig.axes[2].get_xlabel() == "time (UTC)"
    legend_texts = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert any("default limit" in t for t in legend_texts)
    # a short run can emit more than the default limit (profiling costs): the words follow the sign
    word, legend = ("saved", "carbon saved:") if report["carbon_saved_g"] >= 0 else ("extra", "extra carbon:")
    assert word in fig._suptitle.get_text()
    assert any(t.startswith(legend) for t in legend_texts)


def test_plot_timeline_words_follow_the_sign(simulated_report: Path):
    _need_matplotlib()
    from chase_integrations.reporting import plot_timeline

    report = load_report(simulated_report)
    for saved in (abs(report["carbon_saved_g"]) + 1.0, -abs(report["carbon_saved_g"]) - 1.0):
        title = plot_timeline(dict(report, carbon_saved_g=saved))._suptitle.get_text()
        assert ("saved" in title and "less than" in title) if saved > 0 else ("extra" in title and "more than" in title)


def test_summarize_handles_a_minimal_api_report():
    """The fields API.md promises are enough (no phase, baseline per interval, prediction or mode)."""
    report = validate_report({
        "policy": "chase", "provider": "static(400)", "carbon_g": 800.0, "energy_j": 7.2e6, "time_s": 7200.0,
        "baseline_carbon_g": 1000.0, "baseline_time_s": 7000.0, "carbon_saved_g": 200.0, "fallbacks": 0,
        "original_power_limits_w": [300],
        "intervals": [
            {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T01:00:00Z", "power_limit_w": 300,
             "intensity_g_per_kwh": 400.0, "forecast_g_per_kwh": None, "energy_j": 3.6e6, "carbon_g": 400.0},
            {"start": "2024-01-01T01:00:00Z", "end": "2024-01-01T02:00:00Z", "power_limit_w": 250,
             "intensity_g_per_kwh": 400.0, "forecast_g_per_kwh": 420.0, "energy_j": 3.6e6, "carbon_g": 400.0},
        ]})
    s = summarize(report)
    assert s["carbon_reduction"] == pytest.approx(0.2)
    assert s["forecast_mae_g_per_kwh"] == pytest.approx(20.0)
    assert s["profiling_intervals"] == 0
    assert "chase" in format_summary(report)
    with pytest.raises(ReportError):
        validate_report({"policy": "x"})


def test_report_piped_into_a_reader_that_stops_early_exits_quietly(demo_report: Path):
    """`chase report r.json | head -1`: no BrokenPipeError traceback, the shell's status for a cut pipe."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "chase_integrations", "report", str(demo_report), "--intervals"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader leaves before the first line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 141), err.decode()[-2000:]
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
