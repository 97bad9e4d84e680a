"""Statistics of the judge: pure functions over arrays or count histograms, no I/O.

- `mann_whitney_counts`: Mann–Whitney U on two samples given as counts per ordered score value (what the
  quality analyzer gets from a GROUP BY), tie-corrected normal approximation with continuity correction, and
  Cliff's delta (P(X > Y) − P(X < Y)) as the effect size. For 0/1 scores Cliff's delta is the difference of
  pass rates, so one minimum effect serves scales, pass/fail and good/bad labels alike.
- `two_proportion_test`: pooled z-test for pass/fail rates.
- `cohens_kappa`: Cohen's kappa, unweighted or with linear/quadratic weights, with the large-sample standard
  error of Fleiss, Cohen & Everitt (1969) and a normal confidence interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Weighting = Literal["none", "linear", "quadratic"]


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """Inverse of `normal_cdf` (Acklam's rational approximation refined by one Newton step)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p > 1 - lo:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    else:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (
            ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    e = normal_cdf(x) - p
    return x - e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)


@dataclass(frozen=True, slots=True)
class RankComparison:
    n_x: int
    n_y: int
    u: float
    z: float
    p_less: float
    """One-sided p-value for "X tends to be smaller than Y" (a regression when X is the current window)."""
    p_greater: float
    cliffs_delta: float
    mean_x: float
    mean_y: float


def mann_whitney_counts(
    values: Sequence[float], x_counts: Sequence[int], y_counts: Sequence[int]
) -> RankComparison:
    """Compare X and Y given as counts per score value (`values` strictly increasing, any ordered scale)."""
    vals = np.asarray(values, dtype=np.float64)
    x = np.asarray(x_counts, dtype=np.float64)
    y = np.asarray(y_counts, dtype=np.float64)
    if not (vals.shape == x.shape == y.shape):
        raise ValueError("values, x_counts and y_counts must have the same length")
    if vals.size > 1 and not np.all(np.diff(vals) > 0):
        raise ValueError("values must be strictly increasing")
    if (x < 0).any() or (y < 0).any():
        raise ValueError("counts must be non-negative")
    n_x, n_y = float(x.sum()), float(y.sum())
    if n_x == 0 or n_y == 0:
        raise ValueError("both samples need at least one observation")
    y_below = np.concatenate(([0.0], np.cumsum(y)[:-1]))
    u = float(np.sum(x * (y_below + 0.5 * y)))  # pairs with X > Y, ties counted half
    n = n_x + n_y
    t = x + y
    tie_term = float(np.sum(t**3 - t)) / (n * (n - 1)) if n > 1 else 0.0
    variance = n_x * n_y / 12.0 * ((n + 1) - tie_term)
    mu = n_x * n_y / 2.0
    if variance <= 0:
        z, p_less, p_greater = 0.0, 1.0, 1.0
    else:
        sigma = math.sqrt(variance)
        z = (u - mu) / sigma
        p_less = normal_cdf((u - mu + 0.5) / sigma)
        p_greater = 1.0 - normal_cdf((u - mu - 0.5) / sigma)
    return RankComparison(
        n_x=int(n_x),
        n_y=int(n_y),
        u=u,
        z=z,
        p_less=min(1.0, p_less),
        p_greater=min(1.0, p_greater),
        cliffs_delta=2.0 * u / (n_x * n_y) - 1.0,
        mean_x=float(np.sum(vals * x) / n_x),
        mean_y=float(np.sum(vals * y) / n_y),
    )


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> RankComparison:
    """Same test on raw samples."""
    values = np.unique(np.concatenate([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)]))
    x_counts = np.searchsorted(values, np.asarray(x, dtype=np.float64))
    y_counts = np.searchsorted(values, np.asarray(y, dtype=np.float64))
    return mann_whitney_counts(
        values.tolist(),
        np.bincount(x_counts, minlength=values.size).tolist(),
        np.bincount(y_counts, minlength=values.size).tolist(),
    )


def cliffs_delta(x: Sequence[float], y: Sequence[float]) -> float:
    xs = np.asarray(x, dtype=np.float64)[:, None]
    ys = np.asarray(y, dtype=np.float64)[None, :]
    return float(np.mean(np.sign(xs - ys)))


@dataclass(frozen=True, slots=True)
class ProportionComparison:
    k_x: int
    n_x: int
    k_y: int
    n_y: int
    z: float
    p_less: float
    """One-sided p-value for "X's rate is lower than Y's"."""
    difference: float


def two_proportion_test(k_x: int, n_x: int, k_y: int, n_y: int) -> ProportionComparison:
    if n_x <= 0 or n_y <= 0:
        raise ValueError("both samples need at least one observation")
    if not (0 <= k_x <= n_x and 0 <= k_y <= n_y):
        raise ValueError("successes must lie within [0, n]")
    p_x, p_y = k_x / n_x, k_y / n_y
    pooled = (k_x + k_y) / (n_x + n_y)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_x + 1 / n_y))
    z = 0.0 if se == 0 else (p_x - p_y) / se
    return ProportionComparison(k_x, n_x, k_y, n_y, z, normal_cdf(z) if se else 1.0, p_x - p_y)


@dataclass(frozen=True, slots=True)
class KappaResult:
    kappa: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    observed_agreement: float
    expected_agreement: float
    weighting: Weighting


def agreement_weights(k: int, weighting: Weighting) -> npt.NDArray[np.float64]:
    """Agreement weights w_ij in [0, 1], 1 on the diagonal."""
    idx = np.arange(k, dtype=np.float64)
    if weighting == "none" or k == 1:
        return np.eye(k)
    distance = np.abs(idx[:, None] - idx[None, :]) / (k - 1)
    if weighting == "linear":
        return 1.0 - distance
    if weighting == "quadratic":
        return 1.0 - distance**2
    raise ValueError(f"unknown weighting {weighting!r}: none, linear or quadratic")


def cohens_kappa(
    a: Sequence[float | str],
    b: Sequence[float | str],
    categories: Sequence[float | str],
    weighting: Weighting = "none",
    confidence: float = 0.95,
) -> KappaResult:
    """Agreement of two raters over the same items; `categories` in their order (it matters when weighted).

    kappa is NaN when chance agreement is already perfect (both raters used one single category)."""
    if len(a) != len(b):
        raise ValueError(f"the raters scored different numbers of items ({len(a)} and {len(b)})")
    index = {c: i for i, c in enumerate(categories)}
    unknown = sorted({str(v) for v in (*a, *b) if v not in index})
    if unknown:
        raise ValueError(f"ratings outside the categories {list(categories)}: {unknown}")
    n = len(a)
    k = len(categories)
    if n == 0:
        nan = float("nan")
        return KappaResult(nan, nan, nan, nan, 0, nan, nan, weighting)
    table = np.zeros((k, k), dtype=np.float64)
    np.add.at(table, ([index[v] for v in a], [index[v] for v in b]), 1.0)
    p = table / n
    w = agreement_weights(k, weighting)
    row, col = p.sum(axis=1), p.sum(axis=0)
    p_o = float(np.sum(w * p))
    p_e = float(np.sum(w * np.outer(row, col)))
    if p_e >= 1.0 - 1e-12:
        nan = float("nan")
        return KappaResult(nan, nan, nan, nan, n, p_o, p_e, weighting)
    kappa = (p_o - p_e) / (1.0 - p_e)
    w_row = w @ col  # w̄_i. = Σ_j p_.j w_ij
    w_col = row @ w  # w̄_.j = Σ_i p_i. w_ij
    inner = float(np.sum(p * (w - (w_row[:, None] + w_col[None, :]) * (1.0 - kappa)) ** 2))
    variance = (inner - (kappa - p_e * (1.0 - kappa)) ** 2) / (n * (1.0 - p_e) ** 2)
    se = math.sqrt(max(variance, 0.0))
    z = normal_quantile(0.5 + confidence / 2.0)
    return KappaResult(
        kappa=kappa,
        se=se,
        ci_low=max(-1.0, kappa - z * se),
        ci_high=min(1.0, kappa + z * se),
        n=n,
        observed_agreement=p_o,
        expected_agreement=p_e,
        weighting=weighting,
    )
