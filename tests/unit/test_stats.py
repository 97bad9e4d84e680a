from __future__ import annotations

import itertools
import math
from datetime import timedelta

import numpy as np
import pytest

from analyzers.stats import (
    HIST_BINS,
    benjamini_hochberg,
    binomial_cdf,
    binomial_sf,
    burn_rate,
    hist_fraction_above,
    hist_quantiles,
    holm,
    latency_bin,
    mann_whitney_binned,
    multiwindow_burn,
    poisson_cdf,
    poisson_sf,
    robust_baseline,
    robust_z,
)


def _exact_u(a: list[float], b: list[float]) -> float:
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in itertools.product(a, b))


def _binned(values: list[float]) -> np.ndarray:
    h = np.zeros(HIST_BINS)
    for v in values:
        h[latency_bin(v)] += 1
    return h


def test_mann_whitney_on_bins_equals_the_rank_statistic_of_the_binned_samples() -> None:
    rng = np.random.default_rng(1)
    a = list(rng.lognormal(7.0, 0.5, 40))
    b = list(rng.lognormal(6.8, 0.5, 60))
    # Samples replaced by their bin index: the binned test must see exactly those ties.
    ab = [float(latency_bin(x)) for x in a]
    bb = [float(latency_bin(x)) for x in b]
    test = mann_whitney_binned(_binned(a), _binned(b))
    assert test.u == pytest.approx(_exact_u(ab, bb))
    assert test.n_current == 40 and test.n_baseline == 60
    assert 0.0 < test.p_greater < 0.5  # a is drawn slower


def test_mann_whitney_detects_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(2)
    base = _binned(list(rng.lognormal(7.0, 0.4, 2000)))
    same = _binned(list(rng.lognormal(7.0, 0.4, 30)))
    slower = _binned(list(rng.lognormal(7.0 + math.log(2.0), 0.4, 30)))
    assert mann_whitney_binned(same, base).p_greater > 0.01
    shifted = mann_whitney_binned(slower, base)
    assert shifted.p_greater < 1e-8
    assert shifted.effect > 0.9
    assert mann_whitney_binned(np.zeros(HIST_BINS), base).p_greater == 1.0


def test_histogram_quantiles_land_in_the_right_bin() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(math.log(1500.0), 0.3, 20000)
    q50, q95 = hist_quantiles(_binned(list(values)), (0.5, 0.95))
    assert q50 == pytest.approx(float(np.quantile(values, 0.5)), rel=0.13)
    assert q95 == pytest.approx(float(np.quantile(values, 0.95)), rel=0.13)
    assert math.isnan(hist_quantiles(np.zeros(HIST_BINS), (0.5,))[0])


def test_fraction_above_threshold() -> None:
    rng = np.random.default_rng(4)
    values = rng.lognormal(math.log(1000.0), 0.5, 20000)
    share = hist_fraction_above(_binned(list(values)), 2000.0)
    assert share == pytest.approx(float((values > 2000.0).mean()), abs=0.02)


def test_robust_baseline_ignores_an_outlier_day() -> None:
    base = robust_baseline([10.0, 11.0, 9.5, 10.5, 60.0, 10.2, float("nan")])
    assert base is not None
    assert base.median == pytest.approx(10.35)
    assert base.n == 6
    assert robust_z(20.0, base) > 5
    assert robust_baseline([float("nan")]) is None


@pytest.mark.parametrize(("k", "n", "p"), [(0, 10, 0.1), (3, 20, 0.05), (15, 40, 0.2), (50, 60, 0.9), (7, 7, 0.3)])
def test_binomial_tails_match_direct_sums(k: int, n: int, p: float) -> None:
    pmf = [math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(n + 1)]
    assert binomial_sf(k, n, p) == pytest.approx(sum(pmf[k:]), rel=1e-9, abs=1e-300)
    assert binomial_cdf(k, n, p) == pytest.approx(sum(pmf[: k + 1]), rel=1e-9)


@pytest.mark.parametrize(("k", "mu"), [(0, 3.0), (2, 10.0), (15, 10.0), (40, 12.5)])
def test_poisson_tails_match_direct_sums(k: int, mu: float) -> None:
    pmf = [math.exp(-mu + j * math.log(mu) - math.lgamma(j + 1)) for j in range(200)]
    assert poisson_cdf(k, mu) == pytest.approx(sum(pmf[: k + 1]), rel=1e-9)
    assert poisson_sf(k, mu) == pytest.approx(sum(pmf[k:]), rel=1e-9)


def test_benjamini_hochberg_and_holm() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # BH at 0.05: sorted 0.005, 0.01, 0.03, 0.04, 0.5 vs 0.01, 0.02, 0.03, 0.04, 0.05 -> first four.
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True, True, True, False]
    # Holm at 0.05: 0.005 <= 0.01, 0.01 <= 0.0125, 0.03 > 0.0167 stops.
    assert holm(p, 0.05).tolist() == [True, False, False, True, False]
    assert benjamini_hochberg([], 0.05).tolist() == []


def test_many_null_groups_rarely_produce_a_discovery() -> None:
    rng = np.random.default_rng(5)
    runs = 200
    hits = sum(bool(benjamini_hochberg(rng.random(50), 0.01).any()) for _ in range(runs))
    assert hits <= 8  # FDR = FWER under the global null: about 1% of runs


def test_multiwindow_burn_tiers() -> None:
    objective = 0.99
    assert burn_rate(20, 100, objective) == pytest.approx(20.0)
    burns = {
        timedelta(hours=1): burn_rate(15, 100, objective),
        timedelta(minutes=5): burn_rate(16, 100, objective),
    }
    alert = multiwindow_burn(burns)
    assert alert is not None and alert.tier.factor == 14.4 and alert.tier.severity == "critical"
    # A burst that is over (short window clean) does not page.
    burns[timedelta(minutes=5)] = 0.0
    assert multiwindow_burn(burns) is None
    with pytest.raises(ValueError, match="objective"):
        burn_rate(1, 10, 1.5)
