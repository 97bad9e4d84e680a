"""Cohen's kappa against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analyzers.judge.stats import agreement_weights, cohens_kappa


def _pairs(table: list[list[int]], categories: list[int]) -> tuple[list[int], list[int]]:
    a, b = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [categories[i]] * count
            b += [categories[j]] * count
    return a, b


def test_unweighted_kappa_of_the_textbook_two_by_two_table() -> None:
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    # p_o = 35/50 = 0.70; A says yes 25/50, B 30/50: p_e = 0.5*0.6 + 0.5*0.4 = 0.50; kappa = 0.2/0.5 = 0.40.
    a, b = _pairs([[20, 5], [10, 15]], [1, 0])
    result = cohens_kappa(a, b, [1, 0])

    assert result.kappa == pytest.approx(0.40)
    assert result.observed_agreement == pytest.approx(0.70)
    assert result.expected_agreement == pytest.approx(0.50)
    assert result.ci_low < 0.40 < result.ci_high


def test_quadratic_weighted_kappa_of_a_three_point_scale() -> None:
    # Rows: rater A on 1..3, columns: rater B. n = 10.
    #   [[2, 1, 0],
    #    [1, 2, 1],
    #    [0, 1, 2]]
    # Quadratic agreement weights: 1 on the diagonal, 1 - (1/2)^2 = 0.75 one apart, 0 two apart.
    # p_o = (2+2+2)/10 + 0.75*(1+1+1+1)/10 = 0.6 + 0.3 = 0.90.
    # Marginals: A = B = (0.3, 0.4, 0.3).
    # p_e = sum_ij w_ij a_i b_j = (0.09+0.16+0.09) + 0.75*2*(0.3*0.4 + 0.4*0.3) + 0*2*(0.3*0.3)
    #     = 0.34 + 0.75*0.48 = 0.70.
    # kappa_w = (0.90 - 0.70) / (1 - 0.70) = 0.6667.
    a, b = _pairs([[2, 1, 0], [1, 2, 1], [0, 1, 2]], [1, 2, 3])
    result = cohens_kappa(a, b, [1, 2, 3], "quadratic")

    assert result.kappa == pytest.approx(2 / 3)
    assert result.observed_agreement == pytest.approx(0.90)
    assert result.expected_agreement == pytest.approx(0.70)
    # Unweighted on the same table: p_o = 0.6, p_e = 0.34, kappa = 0.26/0.66.
    assert cohens_kappa(a, b, [1, 2, 3]).kappa == pytest.approx(0.26 / 0.66)


def test_linear_weights_and_perfect_and_chance_agreement() -> None:
    assert agreement_weights(3, "linear").tolist() == [[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]]
    perfect = cohens_kappa([1, 2, 3, 4, 5] * 4, [1, 2, 3, 4, 5] * 4, [1, 2, 3, 4, 5], "quadratic")
    assert perfect.kappa == pytest.approx(1.0) and perfect.se == pytest.approx(0.0)
    # Independent raters: A alternates, B is constant in blocks -> the table is exactly the product of marginals.
    independent = cohens_kappa([0, 1, 0, 1], [0, 0, 1, 1], [0, 1])
    assert independent.kappa == pytest.approx(0.0)
    assert math.isnan(cohens_kappa([1, 1], [1, 1], [1, 2]).kappa)  # chance agreement is already perfect


def test_analytic_confidence_interval_matches_a_bootstrap() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(1, 6, 300)
    noisy = np.clip(truth + rng.choice([-2, -1, 0, 0, 0, 1, 2], 300), 1, 5)
    result = cohens_kappa(truth.tolist(), noisy.tolist(), [1, 2, 3, 4, 5], "quadratic")
    boots = []
    for _ in range(600):
        idx = rng.integers(0, 300, 300)
        boots.append(cohens_kappa(truth[idx].tolist(), noisy[idx].tolist(), [1, 2, 3, 4, 5], "quadratic").kappa)

    assert result.se == pytest.approx(float(np.std(boots)), rel=0.2)


def test_bad_input_is_explained() -> None:
    with pytest.raises(ValueError, match="different numbers of items"):
        cohens_kappa([1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="outside the categories"):
        cohens_kappa([1, 7], [1, 2], [1, 2])
