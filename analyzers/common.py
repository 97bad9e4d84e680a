"""Helpers shared by the built-in analyzers: baseline windows, rule partitions, multiple testing, links."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import numpy as np

from analyzers.findings import AlertName, AnalysisContext, Observation, Severity
from analyzers.rules import AppRules, BaselineRules, Rules
from analyzers.series import LiveSeriesSource, Range, SeriesSource, floor_minute
from analyzers.stats import SRE_BURN_TIERS, BurnAlert, adjust, binomial_sf


def rules_of(ctx: AnalysisContext) -> Rules:
    return ctx.rules if isinstance(ctx.rules, Rules) else Rules()


def source_of(ctx: AnalysisContext) -> SeriesSource:
    if ctx.source is not None:
        source: SeriesSource = ctx.source
        return source
    return LiveSeriesSource(ctx.client, exclude_operations=rules_of(ctx).exclude_operations)


def run_at(ctx: AnalysisContext) -> datetime:
    """Analyses work on whole minutes: the rollup's resolution."""
    return floor_minute(ctx.at)


def seasonal_ranges(at: datetime, window: timedelta, baseline: BaselineRules, *, weeks: bool = True) -> list[Range]:
    """The same window on each of the previous days, then the same weekday 2..N weeks back."""
    offsets = [timedelta(days=d) for d in range(1, baseline.seasonal_days + 1)]
    if weeks:
        offsets += [
            timedelta(days=7 * w) for w in range(2, baseline.seasonal_weeks + 1) if 7 * w > baseline.seasonal_days
        ]
    return [(at - o - window, at - o) for o in offsets]


def trailing_ranges(at: datetime, window: timedelta, span: timedelta) -> list[Range]:
    """Consecutive windows of the same length before the current one, newest first."""
    n = max(1, int(span / window))
    return [(at - window * (k + 1), at - window * k) for k in range(1, n + 1)]


# Window lengths an analyzer may widen to (minutes). A slice is judged over the shortest length in
# [window, max_window] that holds enough evidence, so a busy slice is judged on minutes of traffic and a quiet
# one waits exactly as long as its own traffic needs; no slice is silenced by a count it can never reach.
_LADDER_MINUTES: tuple[int, ...] = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1440)


def window_ladder(shortest: timedelta, longest: timedelta) -> list[timedelta]:
    """`shortest`, the ladder's lengths between the two, and `longest` (at least one window)."""
    longest = max(longest, shortest)
    steps = [timedelta(minutes=m) for m in _LADDER_MINUTES if shortest < timedelta(minutes=m) < longest]
    return [shortest, *steps] if longest == shortest else [shortest, *steps, longest]


def first_sufficient(evidence: np.ndarray, need: float) -> int | None:
    """Index of the shortest window (rows in ladder order) whose evidence reaches `need`; None if none does."""
    hits = np.flatnonzero(np.asarray(evidence, dtype=np.float64) >= need)
    return int(hits[0]) if hits.size else None


@dataclass(frozen=True, slots=True)
class LadderRanges:
    """Ranges for one `windows()` call over a ladder: the K current windows, then each rung's baselines."""

    ladder: list[timedelta]
    ranges: list[Range]
    baselines: list[list[slice]]  # per rung: slices of `ranges` (e.g. seasonal, trailing)

    @classmethod
    def build(
        cls, at: datetime, ladder: list[timedelta], baselines: Callable[[timedelta], Sequence[Sequence[Range]]]
    ) -> LadderRanges:
        ranges: list[Range] = [(at - w, at) for w in ladder]
        per_rung: list[list[slice]] = []
        for w in ladder:
            slices = []
            for part in baselines(w):
                slices.append(slice(len(ranges), len(ranges) + len(part)))
                ranges.extend(part)
            per_rung.append(slices)
        return cls(ladder, ranges, per_rung)

    @property
    def current(self) -> slice:
        return slice(0, len(self.ladder))


def usable(ranges: Sequence[Range], first: datetime | None) -> list[Range]:
    """Ranges that lie within the stored history (a range before the first event would read as zeros)."""
    if first is None:
        return []
    return [r for r in ranges if r[0] >= first]


def partitions(rules: Rules, section: str) -> list[tuple[Any, Callable[[str], bool]]]:
    """Distinct settings of one rules section, each with the apps it applies to.

    Apps without an override share the defaults; each distinct override gets its own pass (its own
    windows), so per-app windows cost one query per distinct setting rather than one per app.
    """
    default = getattr(rules.defaults, section)
    by_cfg: dict[Any, set[str]] = {}
    for app in rules.apps:
        cfg = getattr(rules.for_app(app), section)
        if cfg != default:
            by_cfg.setdefault(cfg, set()).add(app)
    special = {app for apps in by_cfg.values() for app in apps}
    out: list[tuple[Any, Callable[[str], bool]]] = [(default, lambda app: app not in special)]
    for cfg, apps in by_cfg.items():
        out.append((cfg, lambda app, apps=frozenset(apps): app in apps))  # type: ignore[misc]
    return out


def app_rules(rules: Rules, app: str) -> AppRules:
    return rules.for_app(app)


@dataclass(slots=True)
class Candidate:
    """A group that was tested: its p-value, whether the effect is big enough, and its observation.

    `observation` may be a zero-argument callable that builds it: most tested groups are fine, and
    formatting evidence for each of them at every backtest step would dominate the replay's time.
    """

    p: float
    effect: bool
    observation: Observation | Callable[[], Observation]

    def build(self) -> Observation:
        return self.observation if isinstance(self.observation, Observation) else self.observation()


def select(candidates: Sequence[Candidate], rules: Rules) -> list[Observation]:
    """Observations whose effect is big enough and whose test survives the multiple-testing correction.

    The family is every group tested in this run (not only the big effects), so the false discovery rate
    holds over the number of groups looked at.
    """
    if not candidates:
        return []
    reject = adjust([c.p for c in candidates], rules.tests.alpha, rules.tests.method)
    return [c.build() for c, r in zip(candidates, reject, strict=True) if r and c.effect]


# A baseline window is left out only when its count is this improbable under the rest's pooled ratio.
TRIM_SURPRISE = 1e-3


def trimmed_ratio(
    num: Sequence[float] | np.ndarray, den: Sequence[float] | np.ndarray, trim: float = 0.25
) -> float | None:
    """Pooled num/den over windows, leaving out (up to `trim` of them) the windows with the highest ratios
    whose counts are improbable under the others' (an incident's).

    Only surprising windows go: at low traffic most windows count zero errors and the few with one are
    the normal rate, so leaving out a fixed share would pool the baseline down to nothing and make every
    ordinary error look like a spike.
    """
    n = np.asarray(num, dtype=np.float64)
    d = np.asarray(den, dtype=np.float64)
    ok = d > 0
    n, d = n[ok], d[ok]
    if d.size == 0:
        return None
    kept = np.ones(d.size, dtype=bool)
    for i in np.argsort(-(n / d), kind="stable")[: int(d.size * trim)].tolist():
        kept[i] = False
        rest_den = float(d[kept].sum())
        rest = float(n[kept].sum()) / rest_den if rest_den > 0 else 0.0
        if rest > 0 and binomial_sf(int(n[i] + 0.5), int(d[i] + 0.5), rest) >= TRIM_SURPRISE:
            kept[i] = True
            break
    total = float(d[kept].sum())
    return float(n[kept].sum()) / total if total > 0 else None


def dashboard_link(ctx: AnalysisContext, dashboard: str, labels: dict[str, str], window: timedelta) -> str:
    """A link to the dashboard for the labels, around the run's time ('' without a dashboard URL)."""
    base = ctx.dashboard_base_url.rstrip("/")
    if not base:
        return ""
    at = run_at(ctx)
    frm = int((at - max(window * 12, timedelta(hours=3))).timestamp() * 1000)
    to = int((at + timedelta(minutes=30)).timestamp() * 1000)
    params = {"from": str(frm), "to": str(to)}
    params.update({f"var-{k}": v for k, v in labels.items() if v})
    return f"{base}/d/{dashboard}?{urlencode(params)}"


def fmt_window(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def fmt_ms(ms: float) -> str:
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.0f}ms"


def fmt_usd(x: float) -> str:
    if x >= 100:
        return f"${x:,.0f}"
    if x >= 1:
        return f"${x:,.2f}"
    return f"${x:.5f}"


def label_text(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items() if v)


# Every window the SRE workbook's multiwindow, multi-burn-rate tiers look at, shortest first.
BURN_SPANS: tuple[timedelta, ...] = tuple(sorted({t.long for t in SRE_BURN_TIERS} | {t.short for t in SRE_BURN_TIERS}))


def burn_observation(
    ctx: AnalysisContext,
    alertname: AlertName,
    labels: dict[str, str],
    at: datetime,
    alert: BurnAlert,
    *,
    summary: str,
    evidence: str,
    dashboard: str,
) -> Observation:
    """An SLO burning too fast: severity and threshold come from the tier that fired."""
    tier = alert.tier
    return Observation(
        alertname=alertname,
        severity=Severity(tier.severity),
        labels=labels,
        at=at,
        value=alert.short_burn,
        baseline=1.0,
        threshold=tier.factor,
        summary=summary,
        evidence=evidence,
        details={
            "long_window": fmt_window(tier.long),
            "short_window": fmt_window(tier.short),
            "dashboard_url": dashboard_link(ctx, dashboard, labels, tier.long),
        },
    )
