"""Drift decisions from counts and samples: one place for the rules, whatever fed the numbers.

Rule (per feature): drifted = the test is significant after Benjamini–Hochberg across every test of the
run AND the effect size reaches its threshold, where threshold = max(practical floor, quantile of the
effect between two same-distribution windows of these sizes). The null quantile keeps small windows from
alerting on noise (a fixed distance cut-off fires there); the floor keeps huge windows from alerting on
shifts too small to matter (a bare significance test fires there). Below minimum sample sizes no verdict is
given, and the result says so.

`compare_windows` runs the same rules from in-memory windows (the Python twins of the SQL features); the
analyzer feeds counts computed in ClickHouse into the same `test_*` functions.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzers.drift import stats
from analyzers.drift.features import (
    AUTO_FORMAT_SHARE,
    CATEGORICAL,
    NUMERIC,
    SKIP,
    TEXT,
    Direction,
    Kind,
    Window,
)
from analyzers.drift.text import HashedDocs, text_drift

F64 = npt.NDArray[np.float64]
OTHER = "__other__"


@dataclass(frozen=True, slots=True)
class DriftConfig:
    fdr: float = 0.01  # Benjamini–Hochberg target over all tests of a run (= per-verdict false-alarm rate)
    null_quantile: float = 0.99  # effect thresholds: this quantile of same-distribution resamples
    null_resamples: int = 200
    bins: int = 10  # numeric features: reference-quantile bins
    min_expected: float = 5.0  # chi-square: cells expected below this are merged
    top_k: int = 20  # categorical features: categories kept before __other__
    psi_floor: float = 0.02  # practical minimums of the effect sizes
    js_floor_bits: float = 0.002
    auc_floor: float = 0.52
    new_category_share: float = 0.01  # an unseen category must reach this share of the current window
    new_category_min_count: int = 5
    min_events: int = 20  # per window and group: fewer and no test could reach the alpha, so none is run
    min_texts: int = 20  # per window, for the text test
    text_sample: int = 2000  # texts drawn per window for the text test
    rank_max_tie_share: float = 0.5  # rank test only when ties leave enough distinct values
    seed: int = 0
    # The effect's null quantile (200 resamples) is only computed for tests with p at most this: a test
    # with a larger p can never be significant, so its threshold decides nothing (it is reported as the
    # floor). 1.0 computes it always.
    null_below_p: float = 1.0


STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient"
STATUS_CONSTANT = "constant"


@dataclass(frozen=True, slots=True)
class FeatureTest:
    """One test of one feature in one group: what was measured and what was decided."""

    feature: str
    direction: Direction
    kind: str  # numeric | categorical | new_category | text
    method: str
    statistic: float
    p_value: float
    effect_name: str
    effect: float
    threshold: float  # max(floor, null_threshold)
    floor: float
    null_threshold: float
    n_reference: int
    n_current: int
    status: str = STATUS_OK
    details: Mapping[str, Any] = field(default_factory=dict)
    p_adjusted: float = math.nan
    significant: bool = False
    drifted: bool = False

    @property
    def strength(self) -> float:
        """How far past its threshold the effect is (ranks contributing features)."""
        return self.effect / self.threshold if self.threshold > 0 else math.inf


def insufficient(feature: str, direction: Direction, kind: str, n_ref: int, n_cur: int, why: str) -> FeatureTest:
    return FeatureTest(feature, direction, kind, "none", math.nan, 1.0, "", math.nan, math.nan, math.nan,
                       math.nan, n_ref, n_cur, STATUS_INSUFFICIENT, {"reason": why})


# ---------------------------------------------------------------------------------------- numeric


def quantile_edges(values: npt.ArrayLike, bins: int, counts: npt.ArrayLike | None = None) -> F64:
    """Interior bin edges at the reference's quantiles, duplicates dropped (atoms keep a bin of their own).

    `counts` (optional) says how many calls took each value, as ClickHouse returns them; the edges are then
    exactly those of the expanded values (numpy's inverted-CDF quantiles).
    """
    v = np.asarray(values, dtype=np.float64)
    levels = np.arange(1, bins) / bins
    if counts is None:
        return np.unique(np.quantile(v, levels, method="inverted_cdf")) if len(v) else np.zeros(0)
    w = np.asarray(counts, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(w[order])
    if len(v) == 0 or cum[-1] <= 0:
        return np.zeros(0)
    # numpy's inverted_cdf: position n*q - 1, rounded up unless whole (same float arithmetic).
    index = cum[-1] * levels - 1
    below = np.floor(index)
    pos = np.maximum(np.where(index - below == 0, below, below + 1), 0)
    return np.unique(v[np.searchsorted(cum, pos, side="right")])


def bin_counts(values: npt.ArrayLike, edges: F64, counts: npt.ArrayLike | None = None) -> F64:
    """Counts in (-inf, e1], (e1, e2], ..., (e_m, inf): as `arrayCount(e -> e < x, edges)` in SQL.

    `counts` (optional): how many calls took each value.
    """
    idx = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="left")
    weights = None if counts is None else np.asarray(counts, dtype=np.float64)
    return np.bincount(idx, weights=weights, minlength=len(edges) + 1).astype(np.float64)


@dataclass(frozen=True, slots=True)
class NumericInput:
    feature: str
    direction: Direction
    edges: F64
    reference: F64  # bin counts
    current: F64
    lo: float  # smallest and largest value over both windows
    hi: float
    reference_mean: float
    current_mean: float
    reference_std: float
    reference_sample: F64 | None = None  # raw values (a seeded sample) for the rank test
    current_sample: F64 | None = None


def numeric_input(
    feature: str,
    direction: Direction,
    reference: tuple[F64, F64],
    current: tuple[F64, F64],
    bins: int,
    edges: F64 | None = None,
    reference_sample: F64 | None = None,
    current_sample: F64 | None = None,
) -> NumericInput:
    """A numeric test's input from each side's (distinct values, counts); edges from the reference's quantiles
    unless given (a pinned reference stores its own)."""
    (rv, rc), (cv, cc) = reference, current
    if edges is None:
        edges = quantile_edges(rv, bins, rc)
    both = np.concatenate([rv[rc > 0], cv[cc > 0]])
    n_r, n_c = float(rc.sum()), float(cc.sum())
    r_mean = float(rv @ rc) / n_r if n_r else 0.0
    r_std = math.sqrt(max(float(((rv - r_mean) ** 2) @ rc) / n_r, 0.0)) if n_r else 0.0
    return NumericInput(
        feature, direction, edges, bin_counts(rv, edges, rc), bin_counts(cv, edges, cc),
        float(both.min()) if len(both) else 0.0, float(both.max()) if len(both) else 0.0,
        r_mean, float(cv @ cc) / n_c if n_c else 0.0, r_std, reference_sample, current_sample,
    )


def _ties_allow(a: F64, b: F64, max_tie_share: float) -> bool:
    both = np.concatenate([a, b])
    if len(both) < 2:
        return False
    _, counts = np.unique(both, return_counts=True)
    return float(counts.max()) / len(both) <= max_tie_share and len(counts) >= 10


def evaluate_numeric(inp: NumericInput, cfg: DriftConfig, rng: np.random.Generator) -> FeatureTest:
    n_r, n_c = int(inp.reference.sum()), int(inp.current.sum())
    if n_r < cfg.min_events or n_c < cfg.min_events:
        return insufficient(inp.feature, inp.direction, Kind.NUMERIC, n_r, n_c,
                            f"needs {cfg.min_events} events per window")
    chi = stats.chi_square_two_sample(inp.reference, inp.current, cfg.min_expected)
    p, method = chi.p_value, "chi2"
    details: dict[str, Any] = {
        "chi2_p": chi.p_value, "chi2_dof": chi.dof, "bins": len(inp.edges) + 1,
        "edges": [float(e) for e in inp.edges],
        "reference_mean": inp.reference_mean, "current_mean": inp.current_mean,
        "hellinger": stats.hellinger(inp.reference, inp.current),
    }
    if inp.reference_std > 0:
        w = stats.wasserstein_binned(inp.edges, inp.reference, inp.current, inp.lo, inp.hi)
        details["wasserstein_std"] = w / inp.reference_std
    rs, cs = inp.reference_sample, inp.current_sample
    if rs is not None and cs is not None and len(rs) >= 20 and len(cs) >= 20 and _ties_allow(
        rs, cs, cfg.rank_max_tie_share
    ):
        mw = stats.mann_whitney(rs, cs)
        details["mann_whitney_p"] = mw.p_value
        details["mann_whitney_auc"] = mw.auc
        # Two tests of one feature: Bonferroni over the pair keeps the feature's p-value valid.
        p, method = min(1.0, 2.0 * min(chi.p_value, mw.p_value)), "chi2+mann-whitney"
    if len(inp.edges) == 0 and chi.dof == 0:
        return FeatureTest(inp.feature, inp.direction, Kind.NUMERIC, method, 0.0, 1.0, "psi", 0.0,
                           cfg.psi_floor, cfg.psi_floor, 0.0, n_r, n_c, STATUS_CONSTANT, details)
    effect = stats.psi(inp.reference, inp.current)
    null = (stats.null_quantile_batch(inp.reference, inp.current, stats.psi_batch, cfg.null_quantile, rng,
                                      cfg.null_resamples) if p <= cfg.null_below_p else math.nan)
    return FeatureTest(inp.feature, inp.direction, Kind.NUMERIC, method, chi.statistic, p, "psi", effect,
                       _threshold(cfg.psi_floor, null), cfg.psi_floor, null, n_r, n_c, STATUS_OK, details)


def _threshold(floor: float, null: float) -> float:
    return floor if math.isnan(null) else max(floor, null)


# ------------------------------------------------------------------------------------ categorical


@dataclass(frozen=True, slots=True)
class CategoricalInput:
    feature: str
    direction: Direction
    reference: Mapping[str, int]
    current: Mapping[str, int]


def evaluate_categorical(inp: CategoricalInput, cfg: DriftConfig, rng: np.random.Generator) -> list[FeatureTest]:
    n_r, n_c = sum(inp.reference.values()), sum(inp.current.values())
    if n_r < cfg.min_events or n_c < cfg.min_events:
        return [insufficient(inp.feature, inp.direction, Kind.CATEGORICAL, n_r, n_c,
                             f"needs {cfg.min_events} events per window")]
    names = set(inp.reference) | set(inp.current)
    pooled = sorted(names, key=lambda k: (-(inp.reference.get(k, 0) + inp.current.get(k, 0)), k))
    kept = pooled[: cfg.top_k]
    rest = pooled[cfg.top_k :]
    ref = np.array([inp.reference.get(k, 0) for k in kept] + [sum(inp.reference.get(k, 0) for k in rest)], float)
    cur = np.array([inp.current.get(k, 0) for k in kept] + [sum(inp.current.get(k, 0) for k in rest)], float)
    shares = {k: (inp.reference.get(k, 0) / n_r, inp.current.get(k, 0) / n_c) for k in kept}
    if rest:
        shares[OTHER] = (float(ref[-1]) / n_r, float(cur[-1]) / n_c)
    moved = sorted(shares.items(), key=lambda kv: -abs(kv[1][1] - kv[1][0]))[:5]
    details: dict[str, Any] = {"categories": {k: {"reference": r, "current": c} for k, (r, c) in moved}}
    out: list[FeatureTest] = []
    if len(names) <= 1:
        out.append(FeatureTest(inp.feature, inp.direction, Kind.CATEGORICAL, "chi2", 0.0, 1.0, "js_bits", 0.0,
                               cfg.js_floor_bits, cfg.js_floor_bits, 0.0, n_r, n_c, STATUS_CONSTANT, details))
    else:
        chi = stats.chi_square_two_sample(ref, cur, cfg.min_expected)
        details["chi2_dof"] = chi.dof
        details["merged_cells"] = chi.merged
        effect = stats.js_divergence(ref, cur, base=2.0)
        null = (stats.null_quantile_batch(ref, cur, stats.js_batch, cfg.null_quantile, rng, cfg.null_resamples)
                if chi.p_value <= cfg.null_below_p else math.nan)
        out.append(FeatureTest(inp.feature, inp.direction, Kind.CATEGORICAL, "chi2", chi.statistic, chi.p_value,
                               "js_bits", effect, _threshold(cfg.js_floor_bits, null), cfg.js_floor_bits, null, n_r,
                               n_c, STATUS_OK, details))
    # New categories: PSI and JS barely move when an unseen value takes 1% of traffic; test it directly.
    new = sorted(
        ((k, c) for k, c in inp.current.items() if inp.reference.get(k, 0) == 0 and c >= cfg.new_category_min_count),
        key=lambda kv: (-kv[1], kv[0]),
    )
    if new:
        top, count = new[0]
        p = stats.new_category_p_value(count, n_c, n_r)
        out.append(FeatureTest(
            inp.feature, inp.direction, "new_category", "unseen-category", float(count), p, "share",
            count / n_c, cfg.new_category_share, cfg.new_category_share, 0.0, n_r, n_c, STATUS_OK,
            {"new_categories": {k: c / n_c for k, c in new[:5]}, "category": top},
        ))
    return out


# ------------------------------------------------------------------------------------------ text


@dataclass(frozen=True, slots=True)
class TextInput:
    feature: str
    direction: Direction
    reference: Sequence[str]
    current: Sequence[str]
    reference_docs: HashedDocs | None = None
    current_docs: HashedDocs | None = None
    n_reference_window: int = 0  # events in the windows the texts were sampled from
    n_current_window: int = 0
    vocabulary: npt.NDArray[np.int64] | None = None  # docs already compact (text.compact) over this


def evaluate_text(inp: TextInput, cfg: DriftConfig, rng: np.random.Generator) -> FeatureTest:
    n_r, n_c = len(inp.reference), len(inp.current)
    if n_r < cfg.min_texts or n_c < cfg.min_texts:
        return insufficient(inp.feature, inp.direction, Kind.TEXT, n_r, n_c,
                            f"needs {cfg.min_texts} non-empty texts per window")
    res = text_drift(inp.reference, inp.current, rng, reference_docs=inp.reference_docs,
                     current_docs=inp.current_docs, null_quantile=cfg.null_quantile,
                     vocabulary=inp.vocabulary)
    details = {
        "rising_terms": [{"term": t.text, "reference": t.reference_share, "current": t.current_share}
                         for t in res.rising],
        "falling_terms": [{"term": t.text, "reference": t.reference_share, "current": t.current_share}
                          for t in res.falling],
        "examples": res.examples,
        "held_out": [res.n_reference, res.n_current],
    }
    return FeatureTest(inp.feature, inp.direction, Kind.TEXT, "nb-domain-classifier+mann-whitney", res.auc,
                       res.p_value, "auc", res.auc, max(cfg.auc_floor, res.null_auc), cfg.auc_floor,
                       res.null_auc, n_r, n_c, STATUS_OK, details)


# -------------------------------------------------------------------------------------- decisions


def apply_fdr(tests: Sequence[FeatureTest], fdr: float) -> list[FeatureTest]:
    """Benjamini–Hochberg over every testable result; drifted = significant and past the effect threshold."""
    idx = [i for i, t in enumerate(tests) if t.status == STATUS_OK]
    adjusted = stats.benjamini_hochberg([tests[i].p_value for i in idx])
    out = list(tests)
    for i, q in zip(idx, adjusted.tolist(), strict=True):
        t = tests[i]
        significant = q <= fdr
        out[i] = replace(t, p_adjusted=q, significant=significant,
                         drifted=significant and t.effect >= t.threshold)
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """A group's verdict in one direction for one run."""

    direction: Direction
    status: str  # ok | insufficient
    drifted: bool
    top: list[FeatureTest]  # drifted features, strongest first
    n_reference: int
    n_current: int


def verdicts(tests: Sequence[FeatureTest], n_reference: int, n_current: int, cfg: DriftConfig) -> dict[
    Direction, Verdict
]:
    out: dict[Direction, Verdict] = {}
    for direction in Direction:
        mine = [t for t in tests if t.direction is direction]
        if n_reference < cfg.min_events or n_current < cfg.min_events or not any(
            t.status == STATUS_OK for t in mine
        ):
            out[direction] = Verdict(direction, STATUS_INSUFFICIENT, False, [], n_reference, n_current)
            continue
        top = sorted((t for t in mine if t.drifted), key=lambda t: -t.strength)
        out[direction] = Verdict(direction, STATUS_OK, bool(top), top, n_reference, n_current)
    return out


# ------------------------------------------------------------------------ windows held in memory


def _non_empty(texts: Sequence[str], idx: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.asarray([i for i in idx.tolist() if texts[i]], dtype=np.int64)


def compare_windows(
    reference: Window,
    current: Window,
    cfg: DriftConfig,
    *,
    rng: np.random.Generator | None = None,
    declared_format: str | None = None,
    docs: Mapping[str, tuple[HashedDocs, HashedDocs]] | None = None,
    features: Sequence[str] | None = None,
) -> list[FeatureTest]:
    """Every feature test between two in-memory windows of one group (before multiple-testing control).

    `docs` may carry pre-featurized texts per text feature (reference, current), aligned with the windows.
    """
    rng = rng or np.random.default_rng(cfg.seed)
    wanted = set(features) if features is not None else None
    n_r = len(reference["input_tokens"])
    n_c = len(current["input_tokens"])
    tests: list[FeatureTest] = []
    sample_r = _sample_index(n_r, cfg.text_sample, rng)
    sample_c = _sample_index(n_c, cfg.text_sample, rng)
    for f in NUMERIC:
        if wanted is not None and f.name not in wanted:
            continue
        a, b = f.python(reference), f.python(current)
        edges = quantile_edges(a, cfg.bins)
        both_lo = float(min(a.min(initial=np.inf), b.min(initial=np.inf)))
        both_hi = float(max(a.max(initial=-np.inf), b.max(initial=-np.inf)))
        inp = NumericInput(f.name, f.direction, edges, bin_counts(a, edges), bin_counts(b, edges), both_lo,
                           both_hi, float(a.mean()) if len(a) else 0.0, float(b.mean()) if len(b) else 0.0,
                           float(a.std()) if len(a) else 0.0, a[sample_r], b[sample_c])
        tests.append(evaluate_numeric(inp, cfg, rng))
    for f in CATEGORICAL:
        if wanted is not None and f.name not in wanted:
            continue
        ref_counts = _count(f.python(reference))
        if f.needs_format and declared_format != "json" and not shows_format(ref_counts):
            continue
        tests.extend(evaluate_categorical(
            CategoricalInput(f.name, f.direction, ref_counts, _count(f.python(current))), cfg, rng
        ))
    for f in TEXT:
        if wanted is not None and f.name not in wanted:
            continue
        ta, tb = f.python(reference), f.python(current)
        ia, ib = _non_empty(ta, sample_r), _non_empty(tb, sample_c)
        pre = (docs or {}).get(f.name)
        tests.append(evaluate_text(TextInput(
            f.name, f.direction, [ta[i] for i in ia], [tb[i] for i in ib],
            pre[0].take(ia) if pre else None, pre[1].take(ib) if pre else None, n_r, n_c,
        ), cfg, rng))
    return tests


def shows_format(reference_counts: Mapping[str, int]) -> bool:
    """A feature whose reference outputs are nearly all valid JSON is held to JSON (as if declared)."""
    valid = reference_counts.get("valid", 0)
    outputs = valid + reference_counts.get("invalid", 0)
    return outputs > 0 and valid / outputs >= AUTO_FORMAT_SHARE


def _sample_index(n: int, limit: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=limit, replace=False)).astype(np.int64)


def _count(values: Sequence[str]) -> dict[str, int]:
    out = Counter(values)
    out.pop(SKIP, None)
    return dict(out)


def group_verdicts(
    reference: Window, current: Window, cfg: DriftConfig, **kwargs: Any
) -> tuple[dict[Direction, Verdict], list[FeatureTest]]:
    """compare_windows + BH within the group + verdicts: one (group, run) decision from memory."""
    tests = apply_fdr(compare_windows(reference, current, cfg, **kwargs), cfg.fdr)
    n_r, n_c = len(reference["input_tokens"]), len(current["input_tokens"])
    return verdicts(tests, n_r, n_c, cfg), tests
