"""NumPy ARMA recursions and the per-horizon combination behind ArimaForecaster (fast, synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from chase_integrations.forecast._arma import fit_ar_ols, fit_arma, innovations, paths, psi_sd
from chase_integrations.forecast._combine import COMPONENTS, components, fit_parts, replay, weights


def arma(n: int, phi: float, theta: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n + 100)
    x = np.zeros(n + 100)
    for t in range(1, n + 100):
        x[t] = phi * x[t - 1] + e[t] + theta * e[t - 1]
    return x[100:]


def test_fit_arma_recovers_parameters_and_innovations_invert():
    x = arma(3000, 0.6, 0.3)
    phi, theta, sigma2, (p, q) = fit_arma(x, 0, 2, 1)
    assert (p, q) in {(1, 1), (2, 1), (2, 0)}
    if (p, q) == (1, 1):
        assert phi[0] == pytest.approx(0.6, abs=0.08) and theta[0] == pytest.approx(0.3, abs=0.08)
    assert sigma2 == pytest.approx(1.0, abs=0.1)
    phi0, s0, p0 = fit_ar_ols(arma(3000, 0.8, 0.0, seed=1), 3)
    assert p0 >= 1 and phi0[0] == pytest.approx(0.8, abs=0.05) and s0 == pytest.approx(1.0, abs=0.1)


def test_paths_match_hand_recursion_and_psi_grows():
    x = arma(50, 0.5, 0.4, seed=2)
    phi, theta = np.array([0.5]), np.array([0.4])
    e = innovations(x, phi, theta)
    out = paths(x, e, phi, theta, np.array([49, 30]), 3)
    for row, o in zip(out, (49, 30), strict=True):
        first = 0.5 * x[o] + 0.4 * e[o]
        assert row.tolist() == pytest.approx([first, 0.5 * first, 0.25 * first])
    sd = psi_sd(phi, theta, 1, 1.0, 24)
    assert sd[0] == pytest.approx(1.0) and np.all(np.diff(sd) > 0)


def test_combination_prefers_the_right_component_per_horizon():
    rng = np.random.default_rng(0)
    hours = np.arange(14 * 24)
    daily = 200 + 80 * np.sin(2 * np.pi * hours / 24)
    walk = np.cumsum(rng.normal(0, 8, len(hours)))  # a slow random-walk level on top of the cycle
    values = np.clip(daily + walk, 0, None)
    parts = fit_parts(values, 0, 1, 2, 1, 3, None, "aic")
    fc, actual = replay(parts, values, 0, 24, 7)
    assert fc.shape[1:] == (24, len(COMPONENTS)) and np.isfinite(fc).all()
    w, rms = weights(fc, actual, 2.0, tuple(range(len(COMPONENTS))))
    assert np.allclose(w.sum(axis=1), 1.0) and np.all(np.isfinite(rms))
    assert w[0, COMPONENTS.index("same_hour_yesterday")] < 0.1  # 1 h: yesterday is far off
    combined = np.einsum("nhc,hc->nh", fc, w)
    ok = ~np.isnan(actual)
    for h in (0, 23):
        err = np.abs(combined[ok[:, h], h] - actual[ok[:, h], h]).mean()
        best = np.abs(fc[ok[:, h], h, :] - actual[ok[:, h], h, None]).mean(axis=0)
        assert err <= 1.1 * best.min()
    short, act_short = replay(parts, values[:40], 0, 24, 7)
    w_short, rms_short = weights(short, act_short, 2.0, (0, 1, 2, 3))
    assert w_short[23].tolist() == [1.0, 0.0, 0.0, 0.0] and np.isnan(rms_short[23])  # too few scores


def test_components_never_negative_and_use_only_the_past():
    values = np.clip(5 + 20 * np.sin(2 * np.pi * np.arange(5 * 24) / 24), 0, None)
    parts = fit_parts(values, 0, 1, 1, 0, 3, None, "aic")
    fc = components(parts, values, 0, np.array([100]), 12)
    assert np.all(fc >= 0)
    changed = values.copy()
    changed[101:] = 1e4
    assert np.array_equal(components(parts, changed, 0, np.array([100]), 12), fc)
