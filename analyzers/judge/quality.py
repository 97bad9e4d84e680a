"""Quality regression and judge calibration: the analyzer that turns judgments into findings.

Quality regression. Scores are grouped by (rubric, app, environment, feature, provider, model,
prompt_version). Each run compares a group's current window [at − window, at) with a reference taken from
the baseline window [at − window − baseline, at − window):
- a group that appeared after the baseline began (a new prompt_version or model) while an older sibling
  (same rubric/app/environment/feature) was already serving, is compared with the sibling it replaced,
  preferring the same model with another prompt version, then the same prompt version on another model;
- otherwise with its own baseline.
Both sides need `min_samples` scores. The test is one-sided Mann–Whitney (tie-corrected; for 0/1 scores this
is the proportion test) with Bonferroni over the groups compared in the run, and the effect must be at least
`min_effect` in Cliff's delta (= drop in pass rate for pass/fail and labels). Aggregation (score histograms
per group) runs in ClickHouse.

Calibration. Human labels from review imports are paired with the judge's latest score of the same event;
Cohen's kappa (quadratic weights for scales) over the calibration window must stay above `kappa_floor`, or
LLMJudgeDisagreement fires for the rubric: a drifting judge makes every quality alert suspect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, Observation, Severity
from analyzers.judge.rubrics import Rubric, ScoreType
from analyzers.judge.stats import KappaResult, Weighting, cohens_kappa, mann_whitney_counts

GROUP_KEYS: Final = ("rubric", "app", "environment", "feature", "provider", "model", "prompt_version")
LARGE_EFFECT: Final = 0.5


@dataclass(frozen=True)
class QualityConfig:
    window: timedelta = timedelta(hours=3)
    baseline: timedelta = timedelta(days=7)
    min_samples: int = 25
    min_effect: float = 0.2
    alpha: float = 1e-4
    interval: timedelta = timedelta(minutes=30)
    kappa_floor: float = 0.4
    calibration_window: timedelta = timedelta(days=30)
    calibration_min_overlap: int = 20
    for_duration: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True, order=True)
class GroupKey:
    rubric: str
    app: str
    environment: str
    feature: str
    provider: str
    model: str
    prompt_version: str

    def labels(self) -> dict[str, str]:
        return {k: v for k in GROUP_KEYS if (v := getattr(self, k))}

    def describe(self) -> str:
        version = f", prompt {self.prompt_version}" if self.prompt_version else ""
        return f"{self.app}/{self.feature or '-'} ({self.model}{version})"


@dataclass
class GroupScores:
    current: dict[float, int] = field(default_factory=dict)
    baseline: dict[float, int] = field(default_factory=dict)
    first_seen: datetime | None = None
    baseline_last_seen: datetime | None = None

    @property
    def n_current(self) -> int:
        return sum(self.current.values())

    @property
    def n_baseline(self) -> int:
        return sum(self.baseline.values())


@dataclass(frozen=True, slots=True)
class Comparison:
    group: GroupKey
    reference: GroupKey
    replaced: bool  # compared with the sibling it replaced, not its own past


@dataclass(frozen=True, slots=True)
class QualityVerdict:
    comparison: Comparison
    n_current: int
    n_reference: int
    mean_current: float
    mean_reference: float
    cliffs_delta: float
    p_value: float
    alpha: float
    regressed: bool


def _sibling(a: GroupKey, b: GroupKey) -> bool:
    return (a.rubric, a.app, a.environment, a.feature) == (b.rubric, b.app, b.environment, b.feature)


def plan_comparisons(
    groups: Mapping[GroupKey, GroupScores],
    *,
    baseline_start: datetime,
    window: timedelta,
    min_samples: int,
) -> list[Comparison]:
    """Which reference each group with enough current scores is compared with (see module docstring)."""
    plans = []
    for key, scores in sorted(groups.items()):
        if scores.n_current < min_samples or scores.first_seen is None:
            continue
        reference: GroupKey | None = None
        replaced = False
        if scores.first_seen > baseline_start + window:
            ranked = []
            for other, other_scores in groups.items():
                if other == key or not _sibling(key, other) or other_scores.n_baseline < min_samples:
                    continue
                if other_scores.first_seen is None or other_scores.first_seen > scores.first_seen - window:
                    continue  # not older than the group: a peer (e.g. an A/B arm), not a predecessor
                kind = 0 if other.model == key.model else 1 if other.prompt_version == key.prompt_version else 2
                last = other_scores.baseline_last_seen or other_scores.first_seen
                ranked.append((kind, -last.timestamp(), -other_scores.n_baseline, other))
            if ranked:
                reference, replaced = min(ranked)[3], True
        if reference is None and scores.n_baseline >= min_samples:
            reference = key
        if reference is not None:
            plans.append(Comparison(key, reference, replaced))
    return plans


def evaluate(
    comparison: Comparison,
    groups: Mapping[GroupKey, GroupScores],
    *,
    alpha: float,
    min_effect: float,
) -> QualityVerdict:
    current = groups[comparison.group].current
    reference = groups[comparison.reference].baseline
    values = sorted(set(current) | set(reference))
    result = mann_whitney_counts(values, [current.get(v, 0) for v in values], [reference.get(v, 0) for v in values])
    regressed = result.p_less < alpha and result.cliffs_delta <= -min_effect
    return QualityVerdict(
        comparison, result.n_x, result.n_y, result.mean_x, result.mean_y, result.cliffs_delta, result.p_less,
        alpha, regressed,
    )


_HISTOGRAM_SQL: Final = """
SELECT rubric, g_app, g_environment, g_feature, g_provider, g_model, g_prompt_version,
       g_time >= {window_start:DateTime64(3, 'UTC')} AS is_current, g_score,
       count(), min(g_time), max(g_time)
FROM (
    SELECT rubric, event_id, argMax(score, judged_at) AS g_score, any(app) AS g_app,
           any(environment) AS g_environment, any(feature) AS g_feature, any(provider) AS g_provider,
           any(model) AS g_model, any(prompt_version) AS g_prompt_version, any(event_time) AS g_time
    FROM judgments
    WHERE status = 'scored' AND score IS NOT NULL
      AND event_time >= {baseline_start:DateTime64(3, 'UTC')} AND event_time < {at:DateTime64(3, 'UTC')}
    GROUP BY rubric, event_id
)
GROUP BY rubric, g_app, g_environment, g_feature, g_provider, g_model, g_prompt_version, is_current, g_score
"""


def load_group_scores(client: Client, *, baseline_start: datetime, window_start: datetime,
                      at: datetime) -> dict[GroupKey, GroupScores]:
    rows = client.query(
        _HISTOGRAM_SQL,
        parameters={"baseline_start": baseline_start, "window_start": window_start, "at": at},
    ).result_rows
    groups: dict[GroupKey, GroupScores] = {}
    for *labels, is_current, score, count, first, last in rows:
        key = GroupKey(*(str(v) for v in labels))
        scores = groups.setdefault(key, GroupScores())
        side = scores.current if is_current else scores.baseline
        side[float(score)] = side.get(float(score), 0) + int(count)
        first = first.replace(tzinfo=UTC) if first.tzinfo is None else first
        last = last.replace(tzinfo=UTC) if last.tzinfo is None else last
        scores.first_seen = first if scores.first_seen is None else min(scores.first_seen, first)
        if not is_current:
            seen = scores.baseline_last_seen
            scores.baseline_last_seen = last if seen is None else max(seen, last)
    return groups


# ------------------------------------------------------------------------------------------ calibration


@dataclass(frozen=True, slots=True)
class CalibrationPair:
    rubric: str
    event_id: str
    reviewer: str
    human_score: float | None
    human_label: str
    judge_score: float | None
    judge_label: str


_PAIRS_SQL: Final = """
SELECT h.rubric, h.event_id, h.reviewer, h.score, h.label, j.j_score, j.j_label
FROM (
    SELECT rubric, event_id, reviewer, score, label
    FROM review_labels FINAL
    WHERE labeled_at >= {since:DateTime64(3, 'UTC')} AND labeled_at < {until:DateTime64(3, 'UTC')}
) AS h
INNER JOIN (
    SELECT rubric, event_id, argMax(score, judged_at) AS j_score, argMax(label, judged_at) AS j_label
    FROM judgments
    WHERE status = 'scored' AND event_id IN (SELECT event_id FROM review_labels)
    GROUP BY rubric, event_id
) AS j ON h.rubric = j.rubric AND h.event_id = j.event_id
"""


def load_pairs(client: Client, *, since: datetime, until: datetime) -> list[CalibrationPair]:
    rows = client.query(_PAIRS_SQL, parameters={"since": since, "until": until}).result_rows
    return [CalibrationPair(str(r), str(e), str(who), hs, str(hl), js, str(jl)) for r, e, who, hs, hl, js, jl in rows]


def kappa_for(rubric: Rubric, pairs: Sequence[CalibrationPair]) -> KappaResult:
    """Kappa between the judge and humans over `pairs` of one rubric (quadratic weights for a scale)."""
    judge: list[float | str]
    human: list[float | str]
    if rubric.score_type == ScoreType.LABELS:
        usable = [p for p in pairs if p.human_label in rubric.labels and p.judge_label in rubric.labels]
        judge = [p.judge_label for p in usable]
        human = [p.human_label for p in usable]
        categories: Sequence[float | str] = rubric.labels
        weighting: Weighting = "none"
    else:
        categories = rubric.categories
        usable = [p for p in pairs if p.human_score in categories and p.judge_score in categories]
        judge = [float(p.judge_score) for p in usable if p.judge_score is not None]
        human = [float(p.human_score) for p in usable if p.human_score is not None]
        weighting = "quadratic" if rubric.score_type == ScoreType.SCALE else "none"
    return cohens_kappa(judge, human, categories, weighting)


def calibration(
    client: Client, rubrics: Mapping[str, Rubric], *, since: datetime, until: datetime
) -> dict[str, KappaResult]:
    by_rubric: dict[str, list[CalibrationPair]] = {}
    for pair in load_pairs(client, since=since, until=until):
        by_rubric.setdefault(pair.rubric, []).append(pair)
    return {name: kappa_for(rubrics[name], pairs) for name, pairs in sorted(by_rubric.items()) if name in rubrics}


def calibration_history(
    client: Client, rubrics: Mapping[str, Rubric], *, until: datetime, periods: int = 8,
    period: timedelta = timedelta(days=7),
) -> list[tuple[datetime, dict[str, KappaResult]]]:
    """Kappa per period (by label time), oldest first: how agreement moved over time."""
    out = []
    for i in range(periods, 0, -1):
        start = until - period * i
        result = calibration(client, rubrics, since=start, until=start + period)
        if result:
            out.append((start, result))
    return out


# -------------------------------------------------------------------------------------------- analyzer


def _fmt_p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


class QualityAnalyzer:
    """Emits LLMQualityRegression per score group and LLMJudgeDisagreement per rubric."""

    name: str = "judge_quality"
    alertnames: tuple[AlertName, ...] = (AlertName.QUALITY_REGRESSION, AlertName.JUDGE_DISAGREEMENT)

    def __init__(self, config: QualityConfig, rubrics: Mapping[str, Rubric]) -> None:
        self.config = config
        self.rubrics = rubrics
        self.interval = config.interval

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        at = ctx.at.astimezone(UTC)
        observations, evaluated = self._regressions(ctx.client, at)
        calib_obs, calib_eval = self._calibration(ctx.client, at)
        return AnalyzerResult([*observations, *calib_obs], [*evaluated, *calib_eval])

    def regression_verdicts(self, client: Client, at: datetime) -> tuple[list[QualityVerdict],
                                                                         dict[GroupKey, GroupScores]]:
        cfg = self.config
        window_start = at - cfg.window
        baseline_start = window_start - cfg.baseline
        groups = load_group_scores(client, baseline_start=baseline_start, window_start=window_start, at=at)
        plans = plan_comparisons(groups, baseline_start=baseline_start, window=cfg.window,
                                 min_samples=cfg.min_samples)
        alpha = cfg.alpha / max(1, len(plans))
        return [evaluate(p, groups, alpha=alpha, min_effect=cfg.min_effect) for p in plans], groups

    def _regressions(self, client: Client, at: datetime) -> tuple[list[Observation], list[dict[str, str]]]:
        verdicts, groups = self.regression_verdicts(client, at)
        evaluated = [v.comparison.group.labels() for v in verdicts]
        # A group whose traffic stopped (a rolled-back prompt version) was evaluated too: its finding resolves.
        evaluated.extend(k.labels() for k, s in groups.items() if s.n_current == 0)
        observations = []
        for v in verdicts:
            if not v.regressed:
                continue
            group, ref = v.comparison.group, v.comparison.reference
            rubric = self.rubrics.get(group.rubric)
            as_rate = rubric is not None and rubric.score_type != ScoreType.SCALE
            unit = "pass rate" if as_rate else "mean score"

            def show(x: float, rate: bool = as_rate) -> str:
                return f"{x:.0%}" if rate else f"{x:.2f}"

            against = (
                f"the {ref.describe()} it replaced" if v.comparison.replaced else "its baseline"
            )
            observations.append(
                Observation(
                    alertname=AlertName.QUALITY_REGRESSION,
                    severity=Severity.CRITICAL if v.cliffs_delta <= -LARGE_EFFECT else Severity.WARNING,
                    labels=group.labels(),
                    at=at,
                    value=v.mean_current,
                    baseline=v.mean_reference,
                    threshold=-self.config.min_effect,
                    summary=(
                        f"{group.rubric} of {group.describe()} fell: {unit} {show(v.mean_current)} over the "
                        f"last {self.config.window} vs {show(v.mean_reference)} for {against} "
                        f"(Cliff's delta {v.cliffs_delta:+.2f}, p={_fmt_p(v.p_value)}, "
                        f"n={v.n_current} vs {v.n_reference})"
                    ),
                    evidence=(
                        f"SELECT score, count() FROM judgments WHERE rubric = '{group.rubric}' AND app = "
                        f"'{group.app}' AND feature = '{group.feature}' AND model = '{group.model}' AND "
                        f"prompt_version = '{group.prompt_version}' AND status = 'scored' "
                        f"AND event_time >= now() - INTERVAL {int(self.config.window.total_seconds())} SECOND "
                        "GROUP BY score ORDER BY score"
                    ),
                    for_duration=self.config.for_duration,
                    details={
                        "cliffs_delta": v.cliffs_delta,
                        "p_value": v.p_value,
                        "alpha": v.alpha,
                        "n_current": v.n_current,
                        "n_reference": v.n_reference,
                        "reference": ref.labels(),
                        "replaced": v.comparison.replaced,
                    },
                )
            )
        return observations, evaluated

    def _calibration(self, client: Client, at: datetime) -> tuple[list[Observation], list[dict[str, str]]]:
        cfg = self.config
        results = calibration(client, self.rubrics, since=at - cfg.calibration_window, until=at)
        observations, evaluated = [], []
        for rubric, k in results.items():
            if k.n < cfg.calibration_min_overlap or math.isnan(k.kappa):
                continue
            labels = {"rubric": rubric}
            evaluated.append(labels)
            if k.kappa >= cfg.kappa_floor:
                continue
            observations.append(
                Observation(
                    alertname=AlertName.JUDGE_DISAGREEMENT,
                    severity=Severity.WARNING,
                    labels=labels,
                    at=at,
                    value=k.kappa,
                    baseline=None,
                    threshold=cfg.kappa_floor,
                    summary=(
                        f"the judge agrees with human reviewers on {rubric} at kappa {k.kappa:.2f} "
                        f"(95% CI {k.ci_low:.2f}–{k.ci_high:.2f}, {k.n} reviewed events, {k.weighting} "
                        f"weights), below the floor {cfg.kappa_floor:.2f}: quality alerts on {rubric} are suspect"
                    ),
                    evidence="llmpulse judge status  # calibration per week; llmpulse review export for more labels",
                    for_duration=timedelta(0),
                    details={"kappa": k.kappa, "ci_low": k.ci_low, "ci_high": k.ci_high, "n": k.n,
                             "observed_agreement": k.observed_agreement},
                )
            )
        return observations, evaluated


def regression_rows(verdicts: Sequence[QualityVerdict]) -> list[dict[str, Any]]:
    """Flat rows for CLI tables."""
    return [
        {**v.comparison.group.labels(), "n": v.n_current, "mean": v.mean_current, "reference_mean": v.mean_reference,
         "delta": v.cliffs_delta, "p": v.p_value, "regressed": v.regressed}
        for v in verdicts
    ]
