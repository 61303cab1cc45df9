"""The real `chase` entry point dispatches every subcommand (not just each module's `run`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from chase_integrations.cli import main


def test_every_subcommand_is_registered(capsys):
    for name in ("demo", "simulate", "backtest", "report", "data"):
        try:
            main([name, "--help"])
        except SystemExit as e:
            assert e.code == 0
        assert f"chase {name}" in capsys.readouterr().out


def test_simulate_and_backtest_through_main(gpu_profile_csv, trace_csv, capsys):
    assert (
        main(
            [
                "simulate",
                "--trace",
                str(trace_csv),
                "--gpu-profile",
                str(gpu_profile_csv),
                "--job-hours",
                "6",
                "--start",
                "2023-03-02T00:00:00Z",
                "--policy",
                "budget",
                "--forecaster",
                "persistence",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["time_increase"] <= 0.06 and result["carbon_g"] > 0
    assert (
        main(
            [
                "backtest",
                "--trace",
                str(trace_csv),
                "--start",
                "2023-03-05T00:00:00Z",
                "--days",
                "1",
                "--horizons",
                "1,6",
                "--forecasters",
                "persistence,seasonal_naive",
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["results"]
    assert {(r["forecaster"], r["horizon_h"]) for r in rows} == {
        ("persistence", 1),
        ("persistence", 6),
        ("seasonal_naive", 1),
        ("seasonal_naive", 6),
    }


def test_demo_then_report_in_a_fresh_process_without_data(tmp_path):
    env = {"CHASE_DATA_DIR": str(tmp_path / "absent"), "PATH": "", "HOME": str(tmp_path)}
    run_json = tmp_path / "run.json"
    demo = subprocess.run(
        [sys.executable, "-m", "chase_integrations", "demo", "--epochs", "4", "--report", str(run_json)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    # no shared data folder: the demo runs on the real data inside the package, and says which
    assert "trace: US-CISO-2022, embedded real data" in demo.stdout
    assert "GPU profile: a40, embedded real data" in demo.stdout
    assert "SYNTHETIC" not in demo.stdout and "carbon" in demo.stdout
    report = subprocess.run(
        [sys.executable, "-m", "chase_integrations", "report", str(run_json)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    bad = subprocess.run(
        [sys.executable, "-m", "chase_integrations", "report", str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert bad.returncode == 2 and "nope.json" in bad.stderr


def test_demo_synthetic_only_when_asked(capsys):
    assert main(["demo", "--synthetic", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "trace: SYNTHETIC" in out and "GPU profile: SYNTHETIC" in out and "start: 2023-03-01T00:00:00Z" in out


def test_demo_on_a_user_trace_starts_inside_it(trace_csv, capsys):
    assert main(["demo", "--trace", str(trace_csv), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"trace: {trace_csv}" in out and "start: 2023-03-01T00:00:00+00:00" in out


def test_demo_errors_name_its_options(capsys):
    assert main(["demo", "--trace", "nope.csv"]) == 2
    assert "`--trace` must be an existing CSV file" in capsys.readouterr().err
    assert main(["demo", "--gpu-profile", "a41"]) == 2
    assert "`--gpu-profile` must be" in capsys.readouterr().err
    assert main(["demo", "--start", "2023-03-01T00:00:00Z"]) == 2  # the embedded trace is 2022
    assert "`--start` must be a time within the trace" in capsys.readouterr().err


def test_simulate_flags_that_mirror_arguments_share_their_documentation():
    """`chase simulate --pue` and `pue=` say the same thing: the help text comes from the one definition."""
    import argparse

    from chase_integrations.cli import build_parser
    from chase_integrations.core.arguments import argument_help

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {a.dest: a.help for a in sub.choices["simulate"]._actions}
    for name in ("max_slowdown", "eta", "static_power_limit_w", "pue", "host_power_w", "embodied_g_per_gpu_hour",
                 "policy", "forecaster"):
        assert flags[name].startswith(argument_help(name)), name
        assert "``" not in flags[name] and not re.search(r"\bobject\b", flags[name]), flags[name]
    assert flags["max_intensity"] == argument_help("max_intensity_g_per_kwh")
