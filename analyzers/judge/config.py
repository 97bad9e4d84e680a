"""Builds the judge's parts from Settings (the only module of the judge that reads them)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult
from analyzers.judge.budget import Caps, JudgeCostModel
from analyzers.judge.client import CircuitBreaker, OpenAICompatibleClient
from analyzers.judge.quality import QualityConfig
from analyzers.judge.redaction import Redactor
from analyzers.judge.rubrics import Rubric, load_rubrics
from analyzers.judge.rules import JudgeRules, load_rules
from analyzers.judge.runner import JudgeRunner, RunnerConfig, RunReport
from analyzers.judge.store import JudgeStore
from llmpulse.settings import Settings

log = logging.getLogger(__name__)


class JudgeConfigError(ValueError):
    pass


def api_key(settings: Settings) -> str | None:
    if settings.judge_api_key_file is not None:
        try:
            return settings.judge_api_key_file.read_text("utf-8").strip() or None
        except OSError as exc:
            raise JudgeConfigError(
                f"cannot read LLMPULSE_JUDGE_API_KEY_FILE {settings.judge_api_key_file}: {exc}"
            ) from None
    if settings.judge_api_key is not None:
        return settings.judge_api_key.get_secret_value() or None
    return None


def build_redactor(settings: Settings) -> Redactor:
    return Redactor(
        emails=settings.judge_redact_emails,
        phones=settings.judge_redact_phones,
        api_keys=settings.judge_redact_api_keys,
        patterns=tuple(settings.judge_redact_patterns),
    )


def build_rubrics(settings: Settings) -> dict[str, Rubric]:
    return load_rubrics([settings.judge_rubrics_dir])


def build_rules(settings: Settings, rubrics: Mapping[str, Rubric]) -> JudgeRules:
    rules = load_rules(settings.judge_rules_file)
    rules.check_rubrics(list(rubrics), str(settings.judge_rules_file or "built-in judge rules"))
    return rules


def quality_config(settings: Settings) -> QualityConfig:
    return QualityConfig(
        window=timedelta(hours=settings.quality_window_hours),
        baseline=timedelta(days=settings.quality_baseline_days),
        min_samples=settings.quality_min_samples,
        min_effect=settings.quality_min_effect,
        alpha=settings.quality_alpha,
        interval=timedelta(minutes=settings.quality_interval_minutes),
        kappa_floor=settings.judge_kappa_floor,
        calibration_window=timedelta(days=settings.judge_calibration_days),
        calibration_min_overlap=settings.judge_calibration_min_overlap,
    )


def build_client(settings: Settings, breaker: CircuitBreaker, **overrides: Any) -> OpenAICompatibleClient:
    if not settings.judge_base_url:
        raise JudgeConfigError("no judge configured: set LLMPULSE_JUDGE_BASE_URL (and LLMPULSE_JUDGE_MODEL)")
    kwargs: dict[str, Any] = {
        "base_url": settings.judge_base_url,
        "model": settings.judge_model,
        "api_key": api_key(settings),
        "api_key_header": settings.judge_api_key_header,
        "api_version": settings.judge_api_version,
        "timeout_s": settings.judge_timeout_s,
        "max_retries": settings.judge_max_retries,
        "backoff_s": settings.judge_backoff_s,
        "max_backoff_s": settings.judge_max_backoff_s,
        "json_mode": settings.judge_json_mode,
        "breaker": breaker,
    }
    kwargs.update(overrides)
    return OpenAICompatibleClient(**kwargs)


@dataclass
class JudgeParts:
    """What a judge run needs besides the store; built once per process (the breaker outlives runs)."""

    settings: Settings
    rubrics: dict[str, Rubric]
    rules: JudgeRules
    client: OpenAICompatibleClient
    breaker: CircuitBreaker
    cost_model: JudgeCostModel
    redactor: Redactor
    runner_config: RunnerConfig

    def runner(self, store: JudgeStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> JudgeRunner:
        return JudgeRunner(
            store=store, client=self.client, breaker=self.breaker, rubrics=self.rubrics, rules=self.rules,
            cost_model=self.cost_model, redactor=self.redactor, config=self.runner_config, clock=clock,
        )


def build_judge_parts(settings: Settings, rubrics: dict[str, Rubric] | None = None) -> JudgeParts:
    from llmpulse.runtime import build_price_catalog  # composition root; imported late to keep imports acyclic

    rubrics = rubrics if rubrics is not None else build_rubrics(settings)
    breaker = CircuitBreaker(settings.judge_breaker_failures, settings.judge_breaker_cooldown_s)
    return JudgeParts(
        settings=settings,
        rubrics=rubrics,
        rules=build_rules(settings, rubrics),
        client=build_client(settings, breaker),
        breaker=breaker,
        cost_model=JudgeCostModel(build_price_catalog(settings), settings.judge_model, settings.judge_provider),
        redactor=build_redactor(settings),
        runner_config=RunnerConfig(
            judge_model=settings.judge_model,
            judge_provider=settings.judge_provider,
            concurrency=settings.judge_concurrency,
            max_text_chars=settings.judge_max_text_chars,
            max_run_seconds=settings.judge_max_run_seconds,
            global_caps=Caps(settings.judge_max_per_hour, settings.judge_max_usd_per_day),
        ),
    )


class JudgeJob:
    """The scheduled judging run, as an analyzer that emits nothing (its output is the judgments table).

    It never raises: a broken judge must not stop the other analyzers of the same schedule."""

    name: str = "judge"
    alertnames: tuple[AlertName, ...] = ()

    def __init__(self, parts: JudgeParts, *, lookback: timedelta, interval: timedelta = timedelta(minutes=5)) -> None:
        self.parts = parts
        self.lookback = lookback
        self.interval = interval
        self.last_report: RunReport | None = None

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        at = ctx.at.astimezone(UTC)
        try:
            self.last_report = self.parts.runner(JudgeStore(ctx.client)).run(
                since=at - self.lookback, until=at, trigger="scheduler"
            )
        except Exception:
            log.exception("judge run failed; quality findings will use the judgments stored so far")
        return AnalyzerResult(observations=[], evaluated=[])
