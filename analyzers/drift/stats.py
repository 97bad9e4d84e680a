"""Statistics of drift detection: pure functions of arrays, no I/O.

Conventions: "counts" are non-negative integer arrays over the same cells (bins or categories) for the
reference and the current window. Divergences say their log base: JS is in bits (base 2, so it lies in
[0, 1]); PSI uses natural logs, as the credit-scoring literature that named it does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
ArrayLike = Sequence[float] | npt.NDArray[np.floating] | npt.NDArray[np.integer]


def _counts(x: ArrayLike) -> F64:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-d array of counts, got shape {a.shape}")
    if np.any(a < 0) or not np.all(np.isfinite(a)):
        raise ValueError("counts must be finite and non-negative")
    return a


def _pair(ref: ArrayLike, cur: ArrayLike) -> tuple[F64, F64]:
    r, c = _counts(ref), _counts(cur)
    if r.shape != c.shape:
        raise ValueError(f"reference has {r.shape[0]} cells but current has {c.shape[0]}")
    return r, c


# ------------------------------------------------------------------------------------------ chi-square


@dataclass(frozen=True, slots=True)
class ChiSquare:
    statistic: float
    dof: int
    p_value: float
    cells: int  # cells left after merging small ones
    merged: int  # how many original cells were merged away


def merge_small_cells(ref: ArrayLike, cur: ArrayLike, min_expected: float = 5.0) -> tuple[F64, F64, int]:
    """Pool cells whose expected count (under "same distribution") is below `min_expected` into one cell.

    The pooled cell is merged further with the smallest remaining cell until it too is large enough, so the
    chi-square approximation holds in every cell that is tested. Returns (ref, cur, cells merged away).
    """
    r, c = _pair(ref, cur)
    n_r, n_c = r.sum(), c.sum()
    total = n_r + n_c
    if total == 0:
        return r[:0], c[:0], len(r)
    col = r + c
    keep = col > 0
    r, c, col = r[keep], c[keep], col[keep]
    dropped = int((~keep).sum())
    min_row = min(n_r, n_c)
    expected_min = col * min_row / total
    small = expected_min < min_expected
    if not small.any():
        return r, c, dropped
    big_r, big_c = r[~small], c[~small]
    pool_r, pool_c = float(r[small].sum()), float(c[small].sum())
    merged = int(small.sum()) - 1
    while len(big_r) > 1 and (pool_r + pool_c) * min_row / total < min_expected:
        j = int(np.argmin(big_r + big_c))
        pool_r += float(big_r[j])
        pool_c += float(big_c[j])
        big_r, big_c = np.delete(big_r, j), np.delete(big_c, j)
        merged += 1
    if (pool_r + pool_c) * min_row / total < min_expected and len(big_r) == 1:
        # One big cell plus a too-small pool: nothing testable is left.
        return np.array([big_r[0] + pool_r]), np.array([big_c[0] + pool_c]), merged + 1 + dropped
    return np.append(big_r, pool_r), np.append(big_c, pool_c), merged + dropped


def chi_square_two_sample(ref: ArrayLike, cur: ArrayLike, min_expected: float = 5.0) -> ChiSquare:
    """Pearson chi-square test of homogeneity of two count vectors, small cells merged first."""
    r, c, merged = merge_small_cells(ref, cur, min_expected)
    k = len(r)
    if k < 2 or r.sum() == 0 or c.sum() == 0:
        return ChiSquare(0.0, 0, 1.0, k, merged)
    table = np.vstack([r, c])
    rows = table.sum(axis=1, keepdims=True)
    cols = table.sum(axis=0, keepdims=True)
    expected = rows * cols / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    dof = k - 1
    return ChiSquare(stat, dof, float(special.chdtrc(dof, stat)), k, merged)


# -------------------------------------------------------------------------------------- effect sizes


def proportions(counts: ArrayLike, pseudo: float = 0.0) -> F64:
    a = _counts(counts) + pseudo
    s = a.sum()
    return a / s if s > 0 else a


def psi(ref: ArrayLike, cur: ArrayLike, pseudo: float = 0.5) -> float:
    """Population stability index, natural log: sum (c - r) ln(c / r) over cells.

    A pseudo-count of 0.5 per cell keeps empty cells finite without letting them dominate.
    """
    r, c = _pair(ref, cur)
    p, q = proportions(r, pseudo), proportions(c, pseudo)
    return float(np.sum((q - p) * np.log(q / p)))


def hellinger(ref: ArrayLike, cur: ArrayLike) -> float:
    """Hellinger distance between the two cell distributions, in [0, 1]."""
    r, c = _pair(ref, cur)
    p, q = proportions(r), proportions(c)
    return float(math.sqrt(max(0.0, 0.5 * float(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)))))


def js_divergence(ref: ArrayLike, cur: ArrayLike, base: float = 2.0) -> float:
    """Jensen–Shannon divergence of the two cell distributions; base 2 gives bits, bounded by 1."""
    r, c = _pair(ref, cur)
    p, q = proportions(r), proportions(c)
    m = 0.5 * (p + q)

    def kl(a: F64) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return max(0.0, 0.5 * (kl(p) + kl(q)) / math.log(base))


def wasserstein_binned(
    edges: ArrayLike, ref: ArrayLike, cur: ArrayLike, lo: float, hi: float
) -> float:
    """Earth mover's distance from bin counts: the integral of |F_ref - F_cur| with the CDFs known at edges.

    Bins are (-inf, e1], (e1, e2], ..., (e_m, inf); `lo`/`hi` are the smallest/largest value of both
    windows, which bound the outer bins. Each edge's CDF gap is spread over half of each adjacent bin, so
    the estimate is exact for distributions uniform within bins.
    """
    e = np.asarray(edges, dtype=np.float64)
    r, c = _pair(ref, cur)
    if len(r) != len(e) + 1:
        raise ValueError(f"{len(e)} edges need {len(e) + 1} bins, got {len(r)}")
    if r.sum() == 0 or c.sum() == 0 or len(e) == 0:
        return 0.0
    gap = np.abs(np.cumsum(r)[:-1] / r.sum() - np.cumsum(c)[:-1] / c.sum())
    points = np.concatenate([[min(lo, e[0])], e, [max(hi, e[-1])]])
    widths = (points[2:] - points[:-2]) / 2.0
    return float(np.sum(gap * widths))


def wasserstein_samples(x: ArrayLike, y: ArrayLike) -> float:
    """Exact 1-Wasserstein distance between two empirical distributions."""
    a = np.sort(np.asarray(x, dtype=np.float64))
    b = np.sort(np.asarray(y, dtype=np.float64))
    if len(a) == 0 or len(b) == 0:
        return 0.0
    allv = np.sort(np.concatenate([a, b]))
    deltas = np.diff(allv)
    fa = np.searchsorted(a, allv[:-1], side="right") / len(a)
    fb = np.searchsorted(b, allv[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * deltas))


# ------------------------------------------------------------------------------------------ rank tests


@dataclass(frozen=True, slots=True)
class RankTest:
    u: float
    p_value: float
    auc: float  # P(current > reference) + P(tie)/2: 0.5 = no shift
    z: float


def rank_with_ties(values: F64) -> tuple[F64, float]:
    """Average ranks (1-based) and the tie term sum(t^3 - t) used by the variance correction."""
    order = np.argsort(values, kind="mergesort")
    sorted_v = values[order]
    n = len(values)
    boundaries = np.flatnonzero(np.diff(sorted_v) != 0) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [n]])
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    t = (ends - starts).astype(np.float64)
    return ranks, float(np.sum(t**3 - t))


def mann_whitney(reference: ArrayLike, current: ArrayLike, alternative: str = "two-sided") -> RankTest:
    """Mann–Whitney U (normal approximation, tie-corrected variance, continuity correction).

    `alternative="greater"` tests whether current values tend to be larger than reference values.
    """
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return RankTest(0.0, 1.0, 0.5, 0.0)
    ranks, tie_term = rank_with_ties(np.concatenate([x, y]))
    r2 = float(ranks[n1:].sum())
    u = r2 - n2 * (n2 + 1) / 2.0  # counts pairs with current > reference (ties half)
    n = n1 + n2
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    auc = u / (n1 * n2)
    if var <= 0:
        return RankTest(u, 1.0, auc, 0.0)
    sd = math.sqrt(var)
    if alternative == "greater":
        z = (u - mean - 0.5) / sd
        p = float(special.ndtr(-z))
    elif alternative == "less":
        z = (u - mean + 0.5) / sd
        p = float(special.ndtr(z))
    elif alternative == "two-sided":
        z = (abs(u - mean) - 0.5) / sd
        p = min(1.0, 2.0 * float(special.ndtr(-max(z, 0.0))))
        z = math.copysign(max(z, 0.0), u - mean)
    else:
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', not {alternative!r}")
    return RankTest(u, p, auc, z)


def auc_null_quantile_normal(n_reference: int, n_current: int, tie_term: float, q: float) -> float:
    """Quantile q of the AUC under random relabelling, from the permutation distribution's exact mean and
    (tie-corrected) variance with a normal shape: the closed form of `auc_null_quantile`."""
    n1, n2 = n_reference, n_current
    n = n1 + n2
    if n1 <= 0 or n2 <= 0 or n < 2:
        return 1.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    return 0.5 + float(special.ndtri(q)) * math.sqrt(max(var, 0.0)) / (n1 * n2)


def auc_null_quantile(
    scores: ArrayLike, n_reference: int, q: float, rng: np.random.Generator, resamples: int = 200
) -> float:
    """Quantile q of the AUC under random relabelling of held-out scores (a permutation null).

    `scores` holds the reference scores first (n_reference of them), then the current ones.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    n1, n2 = n_reference, n - n_reference
    if n1 <= 0 or n2 <= 0:
        return 1.0
    ranks, _ = rank_with_ties(s)
    idx = np.argsort(rng.random((resamples, n)), axis=1)[:, :n2]
    r2 = ranks[idx].sum(axis=1)
    aucs = (r2 - n2 * (n2 + 1) / 2.0) / (n1 * n2)
    return float(np.quantile(aucs, q))


# ---------------------------------------------------------------------------------- multiple testing


def benjamini_hochberg(p_values: ArrayLike) -> F64:
    """BH-adjusted p-values (q-values): reject those <= the target false discovery rate."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m, dtype=np.float64)
    out[order] = np.minimum(adjusted, 1.0)
    return out


# ----------------------------------------------------------------------------- calibrated thresholds


def multinomial_null_quantile(
    ref: ArrayLike,
    cur: ArrayLike,
    distance: Callable[[F64, F64], float],
    q: float,
    rng: np.random.Generator,
    resamples: int = 200,
) -> float:
    """Quantile q of `distance` between two windows of these sizes drawn from the same distribution.

    Reference-vs-reference resampling at the real window sizes: both windows are drawn from the pooled
    cell distribution (the best estimate of it when nothing changed), so the threshold shrinks as windows
    grow and a fixed constant never has to fit every window size.
    """
    r, c = _pair(ref, cur)
    n_r, n_c = int(r.sum()), int(c.sum())
    if n_r == 0 or n_c == 0:
        return math.inf
    pooled = (r + c) / (r + c).sum()
    a = rng.multinomial(n_r, pooled, size=resamples).astype(np.float64)
    b = rng.multinomial(n_c, pooled, size=resamples).astype(np.float64)
    values = np.array([distance(a[i], b[i]) for i in range(resamples)])
    return float(np.quantile(values, q))


def psi_batch(a: F64, b: F64, pseudo: float = 0.5) -> F64:
    """PSI of many pairs of count vectors at once (rows)."""
    p = (a + pseudo) / (a + pseudo).sum(axis=1, keepdims=True)
    q = (b + pseudo) / (b + pseudo).sum(axis=1, keepdims=True)
    return np.asarray(np.sum((q - p) * np.log(q / p), axis=1), dtype=np.float64)


def js_batch(a: F64, b: F64) -> F64:
    """JS divergence in bits of many pairs of count vectors at once (rows)."""
    p = a / np.maximum(a.sum(axis=1, keepdims=True), 1e-300)
    q = b / np.maximum(b.sum(axis=1, keepdims=True), 1e-300)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        tp = np.where(p > 0, p * np.log(p / m), 0.0)
        tq = np.where(q > 0, q * np.log(q / m), 0.0)
    return np.asarray(np.maximum(0.0, 0.5 * (tp.sum(axis=1) + tq.sum(axis=1)) / math.log(2.0)))


def null_quantile_batch(
    ref: ArrayLike,
    cur: ArrayLike,
    batch_distance: Callable[[F64, F64], F64],
    q: float,
    rng: np.random.Generator,
    resamples: int = 200,
) -> float:
    """`multinomial_null_quantile` for a vectorised distance (rows in, one value per row out)."""
    r, c = _pair(ref, cur)
    n_r, n_c = int(r.sum()), int(c.sum())
    if n_r == 0 or n_c == 0:
        return math.inf
    pooled = (r + c) / (r + c).sum()
    a = rng.multinomial(n_r, pooled, size=resamples).astype(np.float64)
    b = rng.multinomial(n_c, pooled, size=resamples).astype(np.float64)
    return float(np.quantile(batch_distance(a, b), q))


def new_category_p_value(current_count: int, n_current: int, n_reference: int) -> float:
    """P(all k occurrences land in the current window | k occurrences in total, same distribution).

    Conditional on the category's total count, each occurrence falls in the current window with
    probability n_cur / (n_ref + n_cur); none in the reference has probability that power k.
    """
    if current_count <= 0:
        return 1.0
    share = n_current / (n_current + n_reference)
    return float(share**current_count)


# ------------------------------------------------------------------------------------- MMD (embeddings)


def mmd_permutation_test(
    x: npt.NDArray[np.floating], y: npt.NDArray[np.floating], rng: np.random.Generator, resamples: int = 200
) -> tuple[float, float]:
    """Unbiased MMD² with an RBF kernel (median heuristic) and its permutation p-value.

    For sentence embeddings when an embedding model is configured; rows are samples.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    z = np.vstack([a, b])
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        return 0.0, 1.0
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    med = float(np.median(d2[np.triu_indices(len(z), 1)]))
    k = np.exp(-d2 / max(med, 1e-12))
    np.fill_diagonal(k, 0.0)

    def mmd2(idx_a: I64, idx_b: I64) -> float:
        kaa = k[np.ix_(idx_a, idx_a)].sum() / (n * (n - 1))
        kbb = k[np.ix_(idx_b, idx_b)].sum() / (m * (m - 1))
        kab = k[np.ix_(idx_a, idx_b)].sum() / (n * m)
        return float(kaa + kbb - 2.0 * kab)

    all_idx = np.arange(n + m)
    observed = mmd2(all_idx[:n], all_idx[n:])
    hits = 0
    for _ in range(resamples):
        perm = rng.permutation(n + m)
        if mmd2(perm[:n], perm[n:]) >= observed:
            hits += 1
    return observed, (hits + 1) / (resamples + 1)
