"""A judge run: pick the unscored sampled events of each rule, ask the judge with bounded concurrency within
the caps, store one judgment per event (scored, parse_failure or error) and a run record.

Nothing here raises for a judge problem: failures become stored judgments and counters, the breaker stops
the run early, and the next run picks up what is left (events without a terminal judgment stay candidates).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from analyzers.judge.budget import GLOBAL, BudgetLedger, Caps, Denial, JudgeCostModel, Reservation
from analyzers.judge.client import BreakerState, ChatClient, CircuitBreaker, JudgeCallError
from analyzers.judge.parsing import VerdictError, fix_up_message, parse_verdict
from analyzers.judge.redaction import Redactor
from analyzers.judge.rubrics import Rubric
from analyzers.judge.rules import JudgeRules, SamplingRule
from analyzers.judge.store import JudgeEvent, JudgeRunRecord, JudgeStore, Judgment

log = logging.getLogger(__name__)


@dataclass
class RuleReport:
    candidates: int = 0
    no_output: int = 0
    judged: int = 0
    scored: int = 0
    parse_failures: int = 0
    errors: int = 0
    skipped_budget: int = 0
    skipped_breaker: int = 0
    skipped_deadline: int = 0
    spend_usd: float = 0.0
    stop_reason: str = ""


@dataclass
class RunReport:
    run_id: str
    started_at: datetime
    finished_at: datetime
    since: datetime
    until: datetime
    rules: dict[str, RuleReport] = field(default_factory=dict)
    breaker_state: BreakerState = BreakerState.CLOSED
    breaker_opened: int = 0

    def total(self, name: str) -> float:
        return sum(getattr(r, name) for r in self.rules.values())


@dataclass(frozen=True)
class RunnerConfig:
    judge_model: str
    judge_provider: str
    concurrency: int = 4
    max_text_chars: int = 8000
    max_run_seconds: float = 240.0
    max_candidates_per_rule: int = 5000
    global_caps: Caps = field(default_factory=Caps)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-(limit - head):]}"


class JudgeRunner:
    def __init__(
        self,
        *,
        store: JudgeStore,
        client: ChatClient,
        breaker: CircuitBreaker,
        rubrics: Mapping[str, Rubric],
        rules: JudgeRules,
        cost_model: JudgeCostModel,
        redactor: Redactor,
        config: RunnerConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        rules.check_rubrics(list(rubrics), "judge rules")
        self.store = store
        self.client = client
        self.breaker = breaker
        self.rubrics = rubrics
        self.rules = rules
        self.cost_model = cost_model
        self.redactor = redactor
        self.config = config
        self.clock = clock

    # ------------------------------------------------------------------------------------------- one event

    def judge_event(
        self, event: JudgeEvent, rule: SamplingRule, ledger: BudgetLedger, reservation: Reservation, run_id: str
    ) -> Judgment:
        """Ask the judge about one event (plus one fix-up request when the answer is unusable)."""
        rubric = self.rubrics[rule.rubric]
        limit = self.config.max_text_chars
        messages = rubric.render(
            input_text=_clip(self.redactor(event.input_text), limit),
            output_text=_clip(self.redactor(event.output_text), limit),
            feature=event.feature,
            app=event.app,
            model=event.model,
            prompt_version=event.prompt_version,
            metadata={k: self.redactor(v) for k, v in event.metadata.items()},
        )
        judgment = Judgment(
            judgment_id=uuid.uuid4().hex, run_id=run_id, event_id=event.event_id, event_time=event.start_time,
            trace_id=event.trace_id, app=event.app, environment=event.environment, feature=event.feature,
            provider=event.provider, model=event.model, prompt_version=event.prompt_version, rule=rule.name,
            rubric=rubric.name, rubric_version=rubric.version, score_type=rubric.score_type.value,
            judge_model=self.config.judge_model, judge_provider=self.config.judge_provider, status="error",
            score=None, label="", reason="", error_kind="", error="", attempts=0, calls=0, input_tokens=0,
            output_tokens=0, latency_ms=0.0, cost_usd=None, judged_at=self.clock(),
        )
        costs: list[float | None] = []
        started = time.perf_counter()
        try:
            answer = self.client.complete(messages, max_tokens=rubric.max_output_tokens)
        except JudgeCallError as exc:
            ledger.settle(reservation, 0.0, called=exc.attempts > 0)
            judgment.error_kind, judgment.error, judgment.attempts = exc.kind, str(exc), exc.attempts
            judgment.latency_ms = (time.perf_counter() - started) * 1000
            judgment.cost_usd = 0.0  # failed requests carry no usage
            if exc.attempts == 0:
                judgment.status = "skipped"
            return judgment
        judgment.attempts, judgment.calls = answer.attempts, 1
        cost = self._answer_cost(answer.input_tokens, answer.output_tokens, messages, answer.content)
        costs.append(cost)
        ledger.settle(reservation, cost)
        judgment.input_tokens += answer.input_tokens or 0
        judgment.output_tokens += answer.output_tokens or 0
        try:
            verdict = parse_verdict(answer.content, rubric)
        except VerdictError as first_error:
            verdict = None
            fix_up = [*messages, {"role": "assistant", "content": answer.content},
                      {"role": "user", "content": fix_up_message(first_error, rubric)}]
            extra = ledger.reserve(
                rule.name,
                self.cost_model.estimate(sum(len(m["content"]) for m in fix_up), rubric.max_output_tokens,
                                         self.clock()),
                counted=False,
            )
            if isinstance(extra, Denial):
                judgment.error = f"{first_error}; no budget left for the fix-up request ({extra.reason})"
            else:
                try:
                    second = self.client.complete(fix_up, max_tokens=rubric.max_output_tokens)
                except JudgeCallError as exc:
                    ledger.settle(extra, 0.0, called=exc.attempts > 0)
                    judgment.error = f"{first_error}; the fix-up request failed: {exc}"
                    judgment.attempts += exc.attempts
                else:
                    judgment.attempts += second.attempts
                    judgment.calls += 1
                    judgment.input_tokens += second.input_tokens or 0
                    judgment.output_tokens += second.output_tokens or 0
                    cost2 = self._answer_cost(second.input_tokens, second.output_tokens, fix_up, second.content)
                    costs.append(cost2)
                    ledger.settle(extra, cost2)
                    try:
                        verdict = parse_verdict(second.content, rubric)
                    except VerdictError as second_error:
                        judgment.error = f"{first_error}; after the fix-up request: {second_error}"
            if verdict is None:
                judgment.status, judgment.error_kind = "parse_failure", "parse_failure"
                judgment.reason = answer.content[:500]
        if verdict is not None:
            judgment.status, judgment.score, judgment.label = "scored", verdict.score, verdict.label
            judgment.reason = verdict.reason
        judgment.latency_ms = (time.perf_counter() - started) * 1000
        judgment.cost_usd = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
        judgment.judged_at = self.clock()
        return judgment

    def _answer_cost(
        self, input_tokens: int | None, output_tokens: int | None, messages: list[dict[str, str]], content: str
    ) -> float | None:
        # Servers that leave out `usage` (some local ones) are priced on ~4 characters per token.
        tokens_in = input_tokens if input_tokens is not None else sum(len(m["content"]) for m in messages) // 4
        tokens_out = output_tokens if output_tokens is not None else len(content) // 4
        return self.cost_model.cost(tokens_in, tokens_out, self.clock())

    # -------------------------------------------------------------------------------------------- a run

    def run(self, *, since: datetime, until: datetime, trigger: str = "cli", ledger: BudgetLedger | None = None,
            limit_per_rule: int | None = None) -> RunReport:
        run_id = uuid.uuid4().hex
        started_at = self.clock()
        deadline = time.monotonic() + self.config.max_run_seconds
        opened_before = self.breaker.times_opened
        if ledger is None:
            ledger = BudgetLedger(
                self.config.global_caps,
                {r.name: r.caps for r in self.rules.rules},
                self.store.usage(started_at),
                self.clock,
            )
        report = RunReport(run_id, started_at, started_at, since, until)
        limit = min(limit_per_rule or self.config.max_candidates_per_rule, self.config.max_candidates_per_rule)
        work: list[tuple[JudgeEvent, SamplingRule]] = []
        for rule in self.rules.rules:
            batch = self.store.candidates(rule, since=since, until=until, limit=limit)
            report.rules[rule.name] = RuleReport(candidates=len(batch.events), no_output=batch.no_output)
            work.extend((event, rule) for event in batch.events)
        # Newest first across rules, so a tight budget goes to what the quality analyzer looks at next.
        work.sort(key=lambda item: item[0].start_time, reverse=True)

        pending: dict[Future[Judgment], tuple[JudgeEvent, SamplingRule]] = {}
        stored: list[Judgment] = []
        denied_rules: set[str] = set()
        stop = ""

        def collect(done: set[Future[Judgment]]) -> None:
            for future in done:
                _, rule = pending.pop(future)
                rr = report.rules[rule.name]
                try:
                    judgment = future.result()
                except Exception as exc:  # a bug must not lose the run's other judgments
                    log.exception("judging an event failed unexpectedly")
                    rr.errors += 1
                    rr.stop_reason = rr.stop_reason or f"unexpected error: {exc}"
                    continue
                if judgment.status == "skipped":
                    rr.skipped_breaker += 1
                    continue
                stored.append(judgment)
                rr.judged += 1
                rr.spend_usd += judgment.cost_usd or 0.0
                if judgment.status == "scored":
                    rr.scored += 1
                elif judgment.status == "parse_failure":
                    rr.parse_failures += 1
                else:
                    rr.errors += 1
            if len(stored) >= 200:
                self.store.insert_judgments(stored)
                stored.clear()

        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="judge") as pool:
            for index, (event, rule) in enumerate(work):
                rr = report.rules[rule.name]
                if not stop and time.monotonic() > deadline:
                    stop = "deadline"
                if not stop and self.breaker.state == BreakerState.OPEN:
                    stop = "breaker_open"
                if stop:
                    for _, later_rule in work[index:]:
                        later = report.rules[later_rule.name]
                        if stop == "deadline":
                            later.skipped_deadline += 1
                        else:
                            later.skipped_breaker += 1
                    break
                if rule.name in denied_rules:
                    rr.skipped_budget += 1
                    continue
                rubric = self.rubrics[rule.rubric]
                estimate = self.cost_model.estimate(
                    min(len(event.input_text), self.config.max_text_chars)
                    + min(len(event.output_text), self.config.max_text_chars)
                    + len(rubric.template) + len(rubric.system) + 400,
                    rubric.max_output_tokens,
                    self.clock(),
                )
                # Bounded in-flight work: settled calls give unused reservations back before the next one.
                while len(pending) >= self.config.concurrency:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    collect(done)
                reservation = ledger.reserve(rule.name, estimate)
                if isinstance(reservation, Denial) and pending:
                    # Settle what is in flight (actual costs are below their estimates), then ask again.
                    done, _ = wait(pending)
                    collect(done)
                    reservation = ledger.reserve(rule.name, estimate)
                if isinstance(reservation, Denial):
                    rr.skipped_budget += 1
                    scope = "all rules" if reservation.scope == GLOBAL else f"rule {rule.name}"
                    rr.stop_reason = f"{reservation.reason} of {scope}"
                    denied_rules.add(rule.name)
                    if reservation.scope == GLOBAL:
                        denied_rules.update(r.name for r in self.rules.rules)
                    continue
                pending[pool.submit(self.judge_event, event, rule, ledger, reservation, run_id)] = (event, rule)
            while pending:
                done, _ = wait(pending)
                collect(done)
        self.store.insert_judgments(stored)

        for rr in report.rules.values():
            if stop and not rr.stop_reason and (rr.skipped_breaker or rr.skipped_deadline):
                rr.stop_reason = stop
        report.finished_at = self.clock()
        report.breaker_state = self.breaker.state
        report.breaker_opened = self.breaker.times_opened - opened_before
        self.store.record_run(self._record(report, trigger))
        return report

    def _record(self, report: RunReport, trigger: str) -> JudgeRunRecord:
        def total(name: str) -> int:
            return int(report.total(name))

        per_rule = {name: vars(rr) for name, rr in report.rules.items()}
        reasons = sorted({rr.stop_reason for rr in report.rules.values() if rr.stop_reason})
        return JudgeRunRecord(
            run_id=report.run_id, started_at=report.started_at, finished_at=report.finished_at,
            window_start=report.since, window_end=report.until, trigger=trigger,
            judge_model=self.config.judge_model, candidates=total("candidates"), no_output=total("no_output"),
            judged=total("judged"), scored=total("scored"), parse_failures=total("parse_failures"),
            errors=total("errors"), skipped_budget=total("skipped_budget"),
            skipped_breaker=total("skipped_breaker"), skipped_deadline=total("skipped_deadline"),
            spend_usd=report.total("spend_usd"), breaker_state=report.breaker_state.value,
            breaker_opened=report.breaker_opened, per_rule=json.dumps(per_rule, sort_keys=True),
            message="; ".join(reasons),
        )
