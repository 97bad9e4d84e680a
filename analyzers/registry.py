"""Which analyzers run: the built-in ones plus every plugin package found under analyzers/.

A plugin is a package `analyzers/<name>/` with a module `plugin.py` defining

    def build_analyzers(settings: Settings) -> list[Analyzer]

It is imported when present; a package without `plugin.py` is not a plugin, and a plugin that fails to
import or build is logged and skipped (the built-in analyzers still run) unless `strict=True`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
from collections.abc import Sequence
from datetime import timedelta

import analyzers
from analyzers.cost import SPREAD_LAG, SPREAD_MAX_SPAN, BudgetAnalyzer, CostAnalyzer, RunawayAnalyzer
from analyzers.errors import AbsenceAnalyzer, ErrorRateAnalyzer, OutageAnalyzer
from analyzers.findings import Analyzer
from analyzers.latency import LatencyAnalyzer
from analyzers.rules import Rules
from llmpulse.settings import Settings

log = logging.getLogger(__name__)


def builtin_analyzers() -> list[Analyzer]:
    return [
        CostAnalyzer(),
        BudgetAnalyzer(),
        RunawayAnalyzer(),
        LatencyAnalyzer(),
        ErrorRateAnalyzer(),
        OutageAnalyzer(),
        AbsenceAnalyzer(),
    ]


def plugin_modules() -> list[str]:
    """Dotted names of plugin modules present under analyzers/ (packages that have plugin.py)."""
    names = []
    for info in sorted(pkgutil.iter_modules(analyzers.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        spec = importlib.util.find_spec(f"analyzers.{info.name}.plugin")
        if spec is not None:
            names.append(f"analyzers.{info.name}.plugin")
    return names


def plugin_analyzers(settings: Settings, *, strict: bool = False) -> list[Analyzer]:
    out: list[Analyzer] = []
    for module_name in plugin_modules():
        try:
            module = importlib.import_module(module_name)
            build = getattr(module, "build_analyzers", None)
            if build is None:
                raise AttributeError(f"{module_name} has no build_analyzers(settings)")
            built = list(build(settings))
        except Exception:
            if strict:
                raise
            log.exception("analyzer plugin %s could not be loaded; skipping it", module_name)
            continue
        for analyzer in built:
            for attr in ("name", "alertnames", "interval", "run"):
                if not hasattr(analyzer, attr):
                    raise TypeError(f"{module_name}: {analyzer!r} lacks `{attr}` (see analyzers.findings.Analyzer)")
        out.extend(built)
    return out


def build_analyzers(
    settings: Settings, *, only: Sequence[str] | None = None, plugins: bool = True, strict: bool = False
) -> list[Analyzer]:
    """Built-ins, then plugins; `only` keeps the named ones (error on an unknown name)."""
    found = builtin_analyzers() + (plugin_analyzers(settings, strict=strict) if plugins else [])
    names = [a.name for a in found]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"two analyzers share a name: {dupes}")
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"unknown analyzer(s) {unknown}; available: {names}")
        found = [a for a in found if a.name in only]
    return found


def required_lookback(rules: Rules) -> timedelta:
    """How much history before a replay's start the built-in analyzers read (what a backtest preloads)."""
    spans: list[timedelta] = []
    b = rules.baseline
    seasonal = timedelta(days=max(b.seasonal_days, 7 * b.seasonal_weeks if b.seasonal_weeks >= 2 else 0))
    for r in rules.all_app_rules():
        longest_window = max(
            r.cost.max_window, r.cost.spend_max_window, r.latency.max_window, r.errors.max_window,
            r.absence.max_window, r.outage.max_window,
        )
        spans.append(seasonal + longest_window + max(r.latency.trailing, r.latency.max_window))
        spans.append(r.cost.max_window * 4 + timedelta(hours=2))
        spans.append(SPREAD_LAG + SPREAD_MAX_SPAN + max(r.cost.max_window, r.cost.spend_max_window))
        spans.append(r.latency.max_window * 2 + r.latency.trailing)
        spans.append(r.errors.max_window * 4 + max(r.errors.trailing, timedelta(hours=4)))
        spans.append(r.outage.max_window * 4 + timedelta(hours=4))
        spans.append(r.absence.max_window + r.absence.trailing + r.absence.recent)
        spans.append(r.runaway.window + r.runaway.baseline + timedelta(hours=1))
        spans.append(timedelta(hours=2, minutes=30))
        if r.slo.availability or (r.slo.latency_threshold_ms and r.slo.latency_objective):
            spans.append(timedelta(days=3))
        if r.budget.daily_usd:
            spans.append(timedelta(days=1) + r.budget.projection_window)
        if r.budget.monthly_usd:
            spans.append(timedelta(days=31) + r.budget.projection_window)
    return max(spans) + timedelta(hours=1)
