"""The carbon CSVs users download are read by their columns, and trace errors name the argument the user typed."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from chase_integrations.carbon import TraceProvider
from chase_integrations.carbon.formats import KNOWN_FORMATS, LBS_PER_MWH_TO_G_PER_KWH, detect_format
from chase_integrations.errors import ChaseWarning, ConfigurationError

EM_OLD = ("Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
          "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,Data Estimated,"
          "Data Estimation Method\n"
          "2024-01-01 00:00:00,Germany,Germany,DE,400.5,450.1,40.0,35.0,entsoe.eu,false,\n"
          "2024-01-01 01:00:00,Germany,Germany,DE,380.0,430.0,41.0,36.0,entsoe.eu,false,\n")
EM_NEW = ("Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),"
          "Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),"
          "Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method\n"
          "2024-01-01 00:00:00,Germany,Germany,DE,400.5,450.1,40,35,entsoe.eu,false,\n"
          "2024-01-01 01:00:00,Germany,Germany,DE,380.0,430.0,41,36,entsoe.eu,false,\n")
EIA930 = ("timestamp,WND,SUN,WAT,OIL,NG,COL,NUC,OTH,avg_CI\n"
          "2022-01-01 00:00:00+00:00,3130.0,1367.0,2304.0,44.0,6764.0,19.0,2265.0,189.0,222.29\n"
          "2022-01-01 01:00:00+00:00,3013.0,0.0,2723.0,42.0,8603.0,19.0,2265.0,1159.0,\n"
          "2022-01-01 02:00:00+00:00,3013.0,0.0,2723.0,42.0,8603.0,19.0,2265.0,1159.0,260.91\n")
NESO = ("DATETIME,GAS,COAL,NUCLEAR,WIND,HYDRO,IMPORTS,BIOMASS,OTHER,SOLAR,STORAGE,GENERATION,CARBON_INTENSITY,"
        "LOW_CARBON,ZERO_CARBON,RENEWABLE,FOSSIL\n"
        "2024-01-01T00:00:00,5000,0,4000,9000,300,2000,1000,100,0,50,21450,120,70,65,50,23\n"
        "2024-01-01T00:30:00,5200,0,4000,8800,300,2000,1000,100,0,50,21450,125,69,64,49,24\n")
NESO_KRISN13 = ("datetime_utc,ci_gco2_per_kwh,ci_pred_1h_hgb\n"
                "2024-01-01 00:00:00,87.0,83.99\n2024-01-01 01:00:00,90,88\n")
WATTTIME_V2 = ("timestamp,MOER,frequency,market,ba,datatype,version\n"
               "2022-10-20T06:00:00+00:00,1000,300,RTM,MISO_MASON_CITY,MOER,3.2\n"
               "2022-10-20T06:05:00+00:00,500,300,RTM,MISO_MASON_CITY,MOER,3.2\n")
WATTTIME_V3 = ("point_time,value,frequency,signal_type\n"
               "2024-01-01T00:00:00+00:00,1000,300,co2_moer\n2024-01-01T00:05:00+00:00,800,300,co2_moer\n")


def _csv(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "fmt", "time_column", "value_column", "first"),
    [
        (EM_OLD, "electricitymaps", "Datetime (UTC)", "Carbon Intensity gCO₂eq/kWh (direct)", 400.5),
        (EM_NEW, "electricitymaps", "Datetime (UTC)", "Carbon intensity gCO₂eq/kWh (direct)", 400.5),
        (EIA930, "eia930", "timestamp", "avg_CI", 222.29),
        (NESO, "neso", "DATETIME", "CARBON_INTENSITY", 120.0),
        (NESO_KRISN13, "neso-krisn13", "datetime_utc", "ci_gco2_per_kwh", 87.0),
        (WATTTIME_V2, "watttime", "timestamp", "MOER", 1000 * LBS_PER_MWH_TO_G_PER_KWH),
        (WATTTIME_V3, "watttime-v3", "point_time", "value", 1000 * LBS_PER_MWH_TO_G_PER_KWH),
    ],
    ids=["electricitymaps", "electricitymaps-2025", "eia930", "neso", "neso-krisn13", "watttime", "watttime-v3"],
)
def test_downloaded_formats_are_detected_by_their_columns(tmp_path, text, fmt, time_column, value_column, first):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChaseWarning)  # a blank hour is not worth a warning
        trace = TraceProvider(_csv(tmp_path, text))
    assert trace.format is not None and trace.format.name == fmt
    assert (trace.time_column, trace.value_column) == (time_column, value_column)
    assert trace.values_g_per_kwh[0] == pytest.approx(first)


def test_blank_hours_are_counted_and_hold_the_previous_value(tmp_path):
    trace = TraceProvider(_csv(tmp_path, EIA930))
    assert trace.dropped_rows == 1 and len(trace) == 2


def test_electricitymaps_lifecycle_column_by_name(tmp_path):
    trace = TraceProvider(_csv(tmp_path, EM_OLD), value_column="Carbon Intensity gCO₂eq/kWh (LCA)")
    assert trace.values_g_per_kwh.tolist() == [450.1, 430.0]


def test_watttime_moer_is_converted_from_lbs_per_mwh_even_when_named(tmp_path):
    trace = TraceProvider(_csv(tmp_path, WATTTIME_V2), value_column="MOER")
    assert trace.values_g_per_kwh.tolist() == pytest.approx([453.592, 226.796])


def test_gzipped_csv_reads_like_plain(tmp_path):
    import gzip

    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(EIA930.encode()))
    assert TraceProvider(path).values_g_per_kwh.tolist() == [222.29, 260.91]


def test_unknown_layout_lists_the_expected_formats(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        TraceProvider(_csv(tmp_path, "datetime,a,b\n2024-01-01,1,2\n2024-01-01T01:00,3,4\n"))
    message = str(info.value)
    assert "`value_column`" in message and "HINT: pass value_column='NAME'" in message
    for fmt in KNOWN_FORMATS:
        assert fmt.name in message
    assert "Datetime (UTC)" in message and "lbs CO2/MWh" in message


def test_text_values_say_they_are_not_numbers(tmp_path):
    with pytest.raises(ConfigurationError, match="values are not numbers") as info:
        TraceProvider(_csv(tmp_path, "datetime_utc,ci\n2024-01-01,high\n2024-01-01T01:00,low\n"))
    assert "`value_column` 'ci'" in str(info.value) and "row 2" in str(info.value)


def test_unparsable_rows_are_warned_and_counted(tmp_path):
    text = "datetime_utc,carbon\n2024-01-01 00:00,100\n2024-01-01 01:00,12 g\n2024-01-01 02:00,300\nsoon,5\n"
    with pytest.warns(ChaseWarning, match=r"dropped 2 of 4 rows .* row 3") as record:
        trace = TraceProvider(_csv(tmp_path, text), value_column="carbon")
    assert len(record) == 1
    assert trace.dropped_rows == 2 and trace.values_g_per_kwh.tolist() == [100.0, 300.0]
    assert trace.describe() == "trace(trace.csv, column carbon, 2 rows skipped)"  # the run report's `provider`


def test_na_markers_are_blanks_not_warnings(tmp_path):
    text = "datetime_utc,carbon\n2024-01-01 00:00,100\n2024-01-01 01:00,n/a\n2024-01-01 02:00,\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChaseWarning)
        trace = TraceProvider(_csv(tmp_path, text), value_column="carbon")
    assert trace.dropped_rows == 2 and trace.values_g_per_kwh.tolist() == [100.0]


AMBIGUOUS = "datetime_utc,ci_direct,ci_lca\n2024-01-01,1,2\n2024-01-01T01:00,1,2\n2024-01-01T02:00,1,2\n"


def test_errors_name_the_provider_arguments(tmp_path):
    with pytest.raises(ConfigurationError, match=r"^`value_column` is ambiguous.*HINT: pass value_column='ci_direct'"):
        TraceProvider(_csv(tmp_path, AMBIGUOUS))
    with pytest.raises(ConfigurationError, match=r"^`path` must be an existing CSV file or the short name"):
        TraceProvider(tmp_path / "missing.csv")


def test_errors_name_the_simulation_arguments(tmp_path, gpu_profile_csv):
    from chase_integrations.simulation import Simulation, simulate

    with pytest.raises(ConfigurationError,
                       match=r"^`trace_value_column` is ambiguous.*HINT: pass trace_value_column='ci_direct'"):
        Simulation(gpu_profile=gpu_profile_csv, trace=_csv(tmp_path, AMBIGUOUS), steps_per_epoch=20)
    with pytest.raises(ConfigurationError, match=r"^`trace_value_column` 'ci' .*values are not numbers"):
        Simulation(gpu_profile=gpu_profile_csv, trace=_csv(tmp_path, "datetime_utc,ci\n2024-01-01,x\n", "t2.csv"),
                   trace_value_column="ci", steps_per_epoch=20)
    with pytest.raises(ConfigurationError, match=r"^`trace` must be .*US-CISO-2022.*got 'nope\.csv'"):
        Simulation(gpu_profile=gpu_profile_csv, trace="nope.csv", steps_per_epoch=20)
    with pytest.raises(ConfigurationError, match=r"^`trace_value_column` is ambiguous"):
        simulate(trace=_csv(tmp_path, AMBIGUOUS, "t3.csv"), gpu_profile=gpu_profile_csv, job_hours=1,
                 start="2024-01-01T00:00:00Z")


def test_errors_name_the_command_line_options(tmp_path, gpu_profile_csv, capsys):
    from chase_integrations.cli import main

    common = ["--gpu-profile", str(gpu_profile_csv), "--job-hours", "1", "--start", "2024-01-01T00:00:00Z"]
    assert main(["simulate", "--trace", str(_csv(tmp_path, AMBIGUOUS)), *common]) == 2
    err = capsys.readouterr().err
    assert "`--trace-value-column` is ambiguous" in err and "HINT: pass --trace-value-column 'ci_direct'" in err
    assert main(["simulate", "--trace", "missing.csv", *common]) == 2
    assert "`--trace` must be an existing CSV file" in capsys.readouterr().err
    assert main(["simulate", "--trace", "US-CISO-2022", "--gpu-profile", "a41", "--job-hours", "1",
                 "--start", "2022-03-01T00:00:00Z"]) == 2
    assert "`--gpu-profile` must be" in capsys.readouterr().err
    assert main(["backtest", "--trace", str(_csv(tmp_path, AMBIGUOUS)), "--start", "2024-01-01", "--days", "1"]) == 2
    assert "`--value-column` is ambiguous" in capsys.readouterr().err


def test_detect_format_ignores_case_spacing_and_subscripts():
    assert detect_format(["datetime (utc)", "carbon intensity gco2eq/kwh (direct)"]).name == "electricitymaps"
    assert detect_format(["Timestamp", "moer"]).name == "watttime"
    assert detect_format(["datetime_utc", "ci_gco2_per_kwh"]) is None  # no forecast column: a generic CSV
