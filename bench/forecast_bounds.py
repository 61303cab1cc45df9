"""How far below persistence can a 1-hour forecast get on the grids where ours misses 0.85x?

A diagnostic for issue 5's 1-hour target, not a model we ship. On each grid's evaluation window of
``bench/forecast.py`` (28 days, rolling origin, one refit per day on the past only, the same
metric: MAE on NO, MAPE elsewhere) it scores three stronger-than-ARIMA learners that see more
history than our forecaster keeps (14 days), as the ratio of their 1-hour error to persistence's:

* ``ols_ar``: least squares on lags 1-6, 12, 23-25, 48, 168 plus hour-of-day dummies;
* ``lad_ar``: the same regression fitted by least absolute (MAPE: relative) error, the loss the
  target is scored with (``statsmodels`` ``QuantReg``, median);
* ``hgb_change``: scikit-learn gradient boosting (absolute error) on the change from the last value,
  same lags plus hour of day and day of week.

    .venv/bin/python bench/forecast_bounds.py            # ~15 min on 2 cores; writes bench/results/forecast_bounds.json
    .venv/bin/python bench/forecast_bounds.py --grids "EM NO" --train-days 28

scikit-learn is not a dependency of the package; this script needs it (``pip install scikit-learn``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from forecast import GRIDS, _load  # noqa: E402

HARD = ("EM NO", "DACF PJM", "DACF SE", "EIA NYIS", "EIA PJM")
LAGS = (1, 2, 3, 4, 5, 6, 12, 23, 24, 25, 48, 168)


def _lag_matrix(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.column_stack([values[idx - lag] for lag in LAGS])


def _hour_dummies(times_s: np.ndarray, idx: np.ndarray) -> np.ndarray:
    hour = ((times_s[idx] // 3600) % 24).astype(int)
    return np.eye(24)[hour][:, 1:]


def _linear_x(values, times_s, idx):
    return np.column_stack([np.ones(len(idx)), _lag_matrix(values, idx), _hour_dummies(times_s, idx)])


def _tree_x(values, times_s, idx):
    return np.column_stack([_lag_matrix(values, idx), (times_s[idx] // 3600) % 24, (times_s[idx] // 86400) % 7])


def grid_bounds(name: str, rel: str, column: str, start: str, mae_only: bool, train_days: int) -> dict:
    import statsmodels.api as sm
    from sklearn.ensemble import HistGradientBoostingRegressor

    trace = _load(rel, column)
    times_s, values = trace.times_s.astype(float), trace.values_g_per_kwh.astype(float)
    i0 = int(np.searchsorted(times_s, datetime.fromisoformat(start).replace(tzinfo=timezone.utc).timestamp()))
    preds: dict[str, list[np.ndarray]] = {"ols_ar": [], "lad_ar": [], "hgb_change": []}
    for day in range(28):
        train = np.arange(i0 + 24 * day - 24 * train_days, i0 + 24 * day)
        test = np.arange(i0 + 24 * day, i0 + 24 * day + 24)
        y = values[train]
        weight = np.ones(len(y)) if mae_only else 1.0 / np.maximum(np.abs(y), 1e-9)
        x_lin = _linear_x(values, times_s, train)
        preds["ols_ar"].append(_linear_x(values, times_s, test) @ np.linalg.lstsq(x_lin, y, rcond=None)[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # QuantReg warns when it stops at max_iter
            beta = sm.QuantReg(y * weight, x_lin * weight[:, None]).fit(q=0.5, max_iter=3000).params
        preds["lad_ar"].append(_linear_x(values, times_s, test) @ beta)
        hgb = HistGradientBoostingRegressor(loss="absolute_error", max_iter=150, learning_rate=0.05, random_state=0)
        hgb.fit(_tree_x(values, times_s, train), y - values[train - 1], sample_weight=weight)
        preds["hgb_change"].append(values[test - 1] + hgb.predict(_tree_x(values, times_s, test)))
    actual = values[i0 : i0 + 28 * 24]
    last = values[i0 - 1 : i0 + 28 * 24 - 1]

    def error(pred: np.ndarray) -> float:
        return float(np.mean(np.abs(pred - actual)) if mae_only else np.mean(np.abs(pred - actual) / np.abs(actual)))

    base = error(last)
    return {"metric": "mae" if mae_only else "mape", "persistence": base,
            "ratio_to_persistence": {k: error(np.concatenate(v)) / base for k, v in preds.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default=",".join(HARD))
    parser.add_argument("--train-days", default="28,90", help="comma-separated training windows (days)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "forecast_bounds.json"))
    args = parser.parse_args()
    wanted = args.grids.split(",")
    out: dict = {"command": " ".join(["bench/forecast_bounds.py", *sys.argv[1:]]), "lags": LAGS, "grids": {}}
    t0 = time.perf_counter()
    for name, rel, column, start, _tune, mae_only in GRIDS:
        if name not in wanted:
            continue
        for days in map(int, args.train_days.split(",")):
            res = grid_bounds(name, rel, column, start, mae_only, days)
            out["grids"].setdefault(name, {})[f"train_{days}d"] = res
            ratios = "  ".join(f"{k} {v:.3f}" for k, v in res["ratio_to_persistence"].items())
            print(f"{name:10s} train {days:3d} d  {ratios}", flush=True)
    out["wall_s"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
