"""Analyzer plugin entry point: the registry imports this and calls `build_analyzers(settings)`."""

from __future__ import annotations

from analyzers.drift.analyzer import DriftAnalyzer, settings_from
from analyzers.findings import Analyzer
from llmpulse.settings import Settings


def build_analyzers(settings: Settings) -> list[Analyzer]:
    if not settings.drift_enabled:
        return []
    return [DriftAnalyzer(settings_from(settings))]
