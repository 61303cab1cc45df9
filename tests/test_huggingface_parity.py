"""One scripted scenario through both adapters: the same decisions and the same ledger."""

from __future__ import annotations

import math

import pytest

from chase_integrations.lightning import ChaseCallback
from tests import lightning_helpers as pl_helpers
from tests.hf_helpers import hf_trainer

EPOCHS, STEPS = 3, 20
_EXACT = ("start", "end", "power_limit_w", "phase", "steps")
_CLOSE = ("energy_j", "carbon_g", "intensity_g_per_kwh", "forecast_g_per_kwh", "duration_s",
          "baseline_carbon_g")


def _options(sim, policy: str) -> dict:
    return dict(provider=sim.provider, simulation=sim, policy=policy, forecaster="persistence",
                decision_interval_s=1800, eta=1.0, max_slowdown=0.05, profile_warmup_steps=1,
                profile_measure_steps=3)


@pytest.mark.parametrize(
    ("policy", "accumulate", "max_steps", "steps"),
    [
        ("chase", 1, None, EPOCHS * STEPS),
        ("budget", 1, None, EPOCHS * STEPS),
        ("budget", 2, None, EPOCHS * STEPS // 2),  # gradient accumulation: optimizer steps only
        ("budget", 1, 25, 25),  # max_steps ends mid-epoch
    ],
)
def test_lightning_and_hugging_face_agree(make_sim, tmp_path, policy, accumulate, max_steps, steps):
    from chase_integrations.huggingface import ChaseTrainerCallback

    pl_sim = make_sim()
    pl_cb = ChaseCallback(**_options(pl_sim, policy))
    pl_helpers.trainer(pl_cb, tmp_path / "pl", max_epochs=EPOCHS, accumulate_grad_batches=accumulate,
                       max_steps=max_steps or -1).fit(pl_helpers.TinyModel(), pl_helpers.loader(STEPS))

    hf_sim = make_sim()
    hf_cb = ChaseTrainerCallback(**_options(hf_sim, policy))
    hf_trainer([hf_cb], tmp_path / "hf", steps=STEPS, epochs=EPOCHS, gradient_accumulation_steps=accumulate,
               max_steps=max_steps or -1).train()

    a, b = pl_cb.report, hf_cb.report
    assert a["steps"] == b["steps"] == steps
    assert pl_cb.session.total_steps == hf_cb.session.total_steps == steps
    assert pl_sim.gpus.gpus[0].limit_history_w == hf_sim.gpus.gpus[0].limit_history_w  # same decisions
    assert len(set(hf_sim.gpus.gpus[0].limit_history_w)) > 2  # the scenario really decides something
    assert len(a["intervals"]) == len(b["intervals"])
    for x, y in zip(a["intervals"], b["intervals"], strict=True):
        assert {k: x[k] for k in _EXACT} == {k: y[k] for k in _EXACT}
        for k in _CLOSE:
            if x[k] is None or y[k] is None:
                assert x[k] is y[k] is None, k
            else:
                assert math.isclose(x[k], y[k], rel_tol=1e-9, abs_tol=1e-9), (k, x[k], y[k])
    for key in ("carbon_g", "energy_j", "time_s", "baseline_carbon_g", "baseline_time_s", "carbon_saved_g"):
        assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-9), key
    for key in ("original_power_limits_w", "power_limits_used_w", "mode", "status", "fallbacks", "profile"):
        assert a[key] == b[key], key
    assert pl_sim.power_limits_w == hf_sim.power_limits_w == [275]
