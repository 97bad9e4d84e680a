"""Analyzer plugin of the judge: the judging job (when a judge is configured) and the quality analyzer."""

from __future__ import annotations

from datetime import timedelta

from analyzers.findings import Analyzer
from analyzers.judge.config import JudgeJob, build_judge_parts, build_rubrics, quality_config
from analyzers.judge.quality import QualityAnalyzer
from llmpulse.settings import Settings


def build_analyzers(settings: Settings) -> list[Analyzer]:
    rubrics = build_rubrics(settings)
    analyzers: list[Analyzer] = []
    if settings.judge_base_url:
        parts = build_judge_parts(settings, rubrics)
        analyzers.append(JudgeJob(parts, lookback=timedelta(hours=settings.judge_lookback_hours)))
    # Without a judge, quality findings still come from stored judgments and imported human labels.
    analyzers.append(QualityAnalyzer(quality_config(settings), rubrics))
    return analyzers
