"""Rebuild the data embedded in the wheel (``chase_integrations/data/``) from its sources.

    python scripts/build_embedded_data.py            # needs the shared data folder (CHASE_DATA_DIR)

* ``gpu/summary_power_{a40,v100,rtx6000,p100}.csv``: the Zeus NSDI'23 power traces, byte for byte.
* ``gpu/summary_power_h200.csv``: our own H200 sweep (``bench/results/h200/sweep_NVIDIA_H200.csv``, written by
  ``scripts/gpu_check.py``) in the plain Zeus trace format: the two extra per-step columns are dropped (they
  follow from ``time_per_epoch`` and ``average_power``) and the GPT-2 rows get the optimizer the sweep really
  used (AdamW; ``gpu_check.py`` wrote ``sgd`` for every row).
* ``traces/US-<BA>-2022.csv.gz``: the SustainDC EIA-930 traces, columns ``timestamp`` and ``avg_CI`` only (the
  text of each value unchanged), gzip-compressed (``-n``: no timestamp, so rebuilding is byte-identical).

Prints each file's size and the total (the wheel's budget is about 2 MB).
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chase_integrations._data import data_dir  # noqa: E402

OUT = ROOT / "chase_integrations" / "data"
ZEUS_GPUS = ("a40", "v100", "rtx6000", "p100")
BALANCING_AUTHORITIES = ("AZPS", "BPAT", "CISO", "ERCO", "MISO", "NYIS", "PJM", "SOCO")
ZEUS_COLUMNS = ["dataset", "network", "batch_size", "optimizer", "power_limit", "time_per_epoch", "average_power"]
H200_OPTIMIZERS = {"resnet50": "sgd", "gpt2": "adamw"}  # what scripts/gpu_check.py's _workloads() builds


def build_h200(sweep: Path, out: Path) -> None:
    with sweep.open(newline="") as f:
        rows = list(csv.DictReader(f))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ZEUS_COLUMNS)
    for row in rows:
        row["optimizer"] = H200_OPTIMIZERS[row["network"]]
        writer.writerow([row[c] for c in ZEUS_COLUMNS])
    out.write_text(buffer.getvalue())


def build_trace(source: Path, out: Path) -> None:
    with source.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        t, v = header.index("timestamp"), header.index("avg_CI")
        text = "timestamp,avg_CI\n" + "".join(f"{row[t]},{row[v]}\n" for row in reader)
    with out.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode())


def main() -> int:
    shared = data_dir()
    if shared is None:
        print("shared data folder not found (set CHASE_DATA_DIR)", file=sys.stderr)
        return 1
    (OUT / "gpu").mkdir(parents=True, exist_ok=True)
    (OUT / "traces").mkdir(parents=True, exist_ok=True)
    for gpu in ZEUS_GPUS:
        name = f"summary_power_{gpu}.csv"
        shutil.copyfile(shared / "gpu" / "nsdi23_trace" / name, OUT / "gpu" / name)
    build_h200(ROOT / "bench" / "results" / "h200" / "sweep_NVIDIA_H200.csv", OUT / "gpu" / "summary_power_h200.csv")
    for ba in BALANCING_AUTHORITIES:
        source = shared / "carbon" / "sustaindc_eia930" / f"{ba}_2022_hourly.csv"
        build_trace(source, OUT / "traces" / f"US-{ba}-2022.csv.gz")
    total = 0
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            total += path.stat().st_size
            print(f"{path.stat().st_size:>9,d}  {path.relative_to(ROOT)}")
    print(f"{total:>9,d}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
