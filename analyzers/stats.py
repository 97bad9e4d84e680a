"""Pure statistics for the analyzers: arrays in, typed results out, no I/O.

- Robust seasonal baselines: median and MAD of the same window on previous days/weeks (a spike or an
  incident on one of those days moves neither).
- Rank tests on binned samples: the rollup keeps per-minute log-binned latency histograms, so a
  Mann–Whitney U test runs on the bin counts with the usual tie correction (ties within a bin).
- Exact tail probabilities for counts (binomial errors, Poisson traffic).
- Multiplicity control across the groups tested in one run: Benjamini–Hochberg and Holm.
- SLO burn rates and the SRE-workbook multiwindow, multi-burn-rate tiers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Latency histogram bins (must match llmpulse/migrations/0003_events_1m.sql): bin 0 holds [0, 10 ms),
# bin b >= 1 holds [10 * 1.26^(b-1), 10 * 1.26^b) ms, bin 47 everything above ~410 s.
HIST_BINS = 48
HIST_BASE_MS = 10.0
HIST_RATIO = 1.26
MAD_TO_SIGMA = 1.4826


def bin_lower_edges() -> F64:
    edges = np.empty(HIST_BINS, dtype=np.float64)
    edges[0] = 0.0
    edges[1:] = HIST_BASE_MS * HIST_RATIO ** np.arange(HIST_BINS - 1, dtype=np.float64)
    return edges


def bin_upper_edges() -> F64:
    return HIST_BASE_MS * HIST_RATIO ** np.arange(HIST_BINS, dtype=np.float64)


_LOWER = bin_lower_edges()
_UPPER = bin_upper_edges()


def latency_bin(ms: float) -> int:
    """The bin a latency falls in (the same formula ClickHouse applies in the rollup view)."""
    b = math.floor(math.log(max(ms, 0.001) / HIST_BASE_MS) / math.log(HIST_RATIO)) + 1
    return min(max(b, 0), HIST_BINS - 1)


@dataclass(frozen=True, slots=True)
class RobustBaseline:
    median: float
    scale: float  # MAD scaled to a normal sigma
    n: int


def robust_baseline(values: Sequence[float] | F64) -> RobustBaseline | None:
    """Median and MAD·1.4826 of finite values; None when there are none."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    med = float(np.median(arr))
    mad = float(np.median(np.abs(arr - med)))
    return RobustBaseline(median=med, scale=MAD_TO_SIGMA * mad, n=int(arr.size))


def robust_z(current: float, baseline: RobustBaseline, *, min_relative_scale: float = 0.05) -> float:
    """How many robust sigmas `current` lies above the baseline median.

    The scale is floored at a share of the median: with few, nearly equal baseline values the MAD can be
    ~0 and any wiggle would look infinitely significant.
    """
    scale = max(baseline.scale, abs(baseline.median) * min_relative_scale, 1e-12)
    return (current - baseline.median) / scale


def normal_sf(z: float) -> float:
    """P(Z >= z) for a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_sf_array(z: F64) -> F64:
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    return np.asarray(0.5 * erfc(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)), dtype=np.float64)


# ----------------------------------------------------------------------------------------- rank tests


@dataclass(frozen=True, slots=True)
class RankTest:
    u: float
    z: float
    p_greater: float  # one-sided: the first sample tends to be larger
    n_current: int
    n_baseline: int
    effect: float  # P(X > Y) + 0.5 P(X = Y): the common-language effect size


def mann_whitney_binned(current: npt.ArrayLike, baseline: npt.ArrayLike) -> RankTest:
    """Mann–Whitney U of two samples given as counts per ordered bin (normal approximation, tie-corrected)."""
    res = mann_whitney_binned_many(np.atleast_2d(current), np.atleast_2d(baseline))
    return res[0]


def mann_whitney_binned_many(current: npt.ArrayLike, baseline: npt.ArrayLike) -> list[RankTest]:
    """Row-wise Mann–Whitney U for (groups, bins) count matrices; rows with an empty sample get p = 1."""
    a = np.asarray(current, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (groups, bins) arrays of one shape, got {a.shape} and {b.shape}")
    n_a = a.sum(axis=1)
    n_b = b.sum(axis=1)
    c = a + b
    n = n_a + n_b
    before = np.cumsum(c, axis=1) - c
    mid_rank = before + (c + 1.0) / 2.0
    rank_sum = (a * mid_rank).sum(axis=1)
    u = rank_sum - n_a * (n_a + 1.0) / 2.0
    mean = n_a * n_b / 2.0
    ties = (c**3 - c).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = n_a * n_b / 12.0 * ((n + 1.0) - ties / np.maximum(n * (n - 1.0), 1.0))
        z = np.where(var > 0, (u - mean - 0.5) / np.sqrt(np.maximum(var, 1e-300)), 0.0)
        effect = np.where(n_a * n_b > 0, u / np.maximum(n_a * n_b, 1.0), 0.5)
    p = normal_sf_array(z)
    out = []
    for i in range(a.shape[0]):
        ok = n_a[i] > 0 and n_b[i] > 0 and var[i] > 0
        out.append(
            RankTest(
                u=float(u[i]),
                z=float(z[i]) if ok else 0.0,
                p_greater=float(p[i]) if ok else 1.0,
                n_current=int(n_a[i]),
                n_baseline=int(n_b[i]),
                effect=float(effect[i]) if ok else 0.5,
            )
        )
    return out


# ------------------------------------------------------------------------------------ histograms


def hist_quantiles(hist: npt.ArrayLike, qs: Sequence[float]) -> list[float]:
    """Quantiles of a latency histogram, interpolated log-linearly inside the bin (NaN if empty)."""
    h = np.asarray(hist, dtype=np.float64)
    total = float(h.sum())
    if total <= 0:
        return [math.nan for _ in qs]
    cum = np.cumsum(h)
    out = []
    for q in qs:
        target = q * total
        b = int(np.searchsorted(cum, target, side="left"))
        b = min(b, HIST_BINS - 1)
        below = cum[b] - h[b]
        frac = 0.0 if h[b] <= 0 else min(max((target - below) / h[b], 0.0), 1.0)
        lo = _LOWER[b] if b > 0 else HIST_BASE_MS / HIST_RATIO
        hi = _UPPER[b]
        out.append(float(lo * (hi / lo) ** frac))
    return out


def hist_fraction_above(hist: npt.ArrayLike, threshold_ms: float) -> float:
    """Share of samples above `threshold_ms`, assuming samples spread log-uniformly within their bin."""
    h = np.asarray(hist, dtype=np.float64)
    total = float(h.sum())
    if total <= 0:
        return 0.0
    b = latency_bin(threshold_ms)
    above = float(h[b + 1 :].sum())
    lo = _LOWER[b] if b > 0 else HIST_BASE_MS / HIST_RATIO
    hi = _UPPER[b]
    t = min(max(threshold_ms, lo), hi)
    share_in_bin_above = math.log(hi / t) / math.log(hi / lo) if hi > lo else 0.0
    above += float(h[b]) * share_in_bin_above
    return above / total


# ------------------------------------------------------------------------------------- count tails


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed exactly from the mode side that converges fastest."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if k <= n * p:
        return 1.0 - binomial_cdf(k - 1, n, p)
    total = 0.0
    log_term = _log_binom_pmf(k, n, p)
    term = math.exp(log_term)
    j = k
    while j <= n:
        total += term
        if term < total * 1e-17:
            break
        term *= (n - j) / (j + 1) * p / (1.0 - p)
        j += 1
    return min(total, 1.0)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    if k > n * p:
        return 1.0 - binomial_sf(k + 1, n, p)
    total = 0.0
    term = math.exp(_log_binom_pmf(k, n, p))
    j = k
    while j >= 0:
        total += term
        if term < total * 1e-17:
            break
        term *= j / (n - j + 1) * (1.0 - p) / p
        j -= 1
    return min(total, 1.0)


def poisson_cdf(k: int, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu)."""
    if k < 0:
        return 0.0
    if mu <= 0:
        return 1.0
    if k > mu:
        return 1.0 - poisson_sf(k + 1, mu)
    term = math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1))
    total = 0.0
    j = k
    while j >= 0:
        total += term
        if term < total * 1e-17:
            break
        term *= j / mu
        j -= 1
    return min(total, 1.0)


def poisson_sf(k: int, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(mu)."""
    if k <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    if k <= mu:
        return 1.0 - poisson_cdf(k - 1, mu)
    term = math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1))
    total = 0.0
    j = k
    while True:
        total += term
        if term < total * 1e-17 or j > k + 100_000:
            break
        j += 1
        term *= mu / j
    return min(total, 1.0)


def overdispersion(errors: npt.ArrayLike, requests: npt.ArrayLike, p0: float) -> float:
    """How much more baseline windows' error counts vary than a binomial count would (>= 1).

    Failures come in clusters (an agent retries, one bad prompt fails every step of a trace), so counts of
    a window are overdispersed; a binomial test at face value would page on every cluster. The quarter of
    windows that deviate most is left out (as the baseline ratio leaves out its worst quarter), so an
    incident that is still under way, or one in the baseline, does not blunt the test.
    """
    e = np.asarray(errors, dtype=np.float64)
    n = np.asarray(requests, dtype=np.float64)
    ok = n > 0
    e, n = e[ok], n[ok]
    if e.size < 3 or not 0.0 < p0 < 1.0:
        return 1.0
    resid = (e - n * p0) ** 2
    expected = n * p0 * (1.0 - p0)
    keep = np.argsort(resid / expected, kind="stable")[: max(1, int(np.ceil(e.size * 0.75)))]
    return max(1.0, float(resid[keep].sum() / expected[keep].sum()))


def binomial_sf_overdispersed(k: int, n: int, p: float, dispersion: float) -> float:
    """P(X >= k) with both counts deflated by the dispersion (a quasi-binomial upper tail)."""
    phi = max(1.0, dispersion)
    return binomial_sf(int(k / phi), max(round(n / phi), int(k / phi)), p)


# ------------------------------------------------------------------------------------ multiplicity


def benjamini_hochberg(pvalues: Sequence[float] | F64, alpha: float) -> BoolArray:
    """Which hypotheses are rejected at false discovery rate `alpha` (step-up BH)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    reject = np.zeros(m, dtype=np.bool_)
    if m == 0:
        return reject
    order = np.argsort(p, kind="stable")
    thresholds = alpha * (np.arange(1, m + 1) / m)
    passed = p[order] <= thresholds
    if passed.any():
        last = int(np.max(np.flatnonzero(passed)))
        reject[order[: last + 1]] = True
    return reject


def holm(pvalues: Sequence[float] | F64, alpha: float) -> BoolArray:
    """Which hypotheses are rejected with family-wise error `alpha` (Holm step-down)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    reject = np.zeros(m, dtype=np.bool_)
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] <= alpha / (m - rank):
            reject[i] = True
        else:
            break
    return reject


def adjust(pvalues: Sequence[float] | F64, alpha: float, method: str) -> BoolArray:
    if method == "bh":
        return benjamini_hochberg(pvalues, alpha)
    if method == "holm":
        return holm(pvalues, alpha)
    if method == "none":
        return np.asarray(pvalues, dtype=np.float64) <= alpha
    raise ValueError(f"unknown multiple-testing method {method!r}: use bh, holm or none")


# ---------------------------------------------------------------------------------------- SLO burn


@dataclass(frozen=True, slots=True)
class BurnTier:
    long: timedelta
    short: timedelta
    factor: float
    severity: str  # "critical" pages, "warning" opens a ticket


# Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate alerts.
SRE_BURN_TIERS: tuple[BurnTier, ...] = (
    BurnTier(timedelta(hours=1), timedelta(minutes=5), 14.4, "critical"),
    BurnTier(timedelta(hours=6), timedelta(minutes=30), 6.0, "critical"),
    BurnTier(timedelta(days=1), timedelta(hours=2), 3.0, "warning"),
    BurnTier(timedelta(days=3), timedelta(hours=6), 1.0, "warning"),
)


def burn_rate(bad: float, total: float, objective: float) -> float:
    """How fast the error budget burns: bad ratio over the allowed bad ratio (1 = exactly on budget)."""
    if not 0.0 < objective < 1.0:
        raise ValueError(f"SLO objective must be between 0 and 1 (e.g. 0.995), got {objective}")
    if total <= 0:
        return 0.0
    return (bad / total) / (1.0 - objective)


@dataclass(frozen=True, slots=True)
class BurnAlert:
    tier: BurnTier
    long_burn: float
    short_burn: float


def multiwindow_burn(
    burns: dict[timedelta, float], tiers: Sequence[BurnTier] = SRE_BURN_TIERS
) -> BurnAlert | None:
    """The first (most urgent) tier whose long and short windows both burn at least its factor."""
    for tier in tiers:
        long_burn = burns.get(tier.long, 0.0)
        short_burn = burns.get(tier.short, 0.0)
        if long_burn >= tier.factor and short_burn >= tier.factor:
            return BurnAlert(tier, long_burn, short_burn)
    return None
