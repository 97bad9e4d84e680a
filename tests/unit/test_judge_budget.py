"""Caps on judge calls and the circuit breaker's state machine (with a clock the test moves)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analyzers.judge.budget import GLOBAL, BudgetLedger, Caps, Denial, Reservation, Usage
from analyzers.judge.client import BreakerState, CircuitBreaker, parse_retry_after


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_hourly_caps_per_rule_and_global() -> None:
    clock = Clock(datetime(2026, 11, 20, 10, 5, tzinfo=UTC))
    ledger = BudgetLedger(Caps(per_hour=5), {"a": Caps(per_hour=3)}, {GLOBAL: Usage(1, 0.0)}, clock)

    granted_a = [ledger.reserve("a", 0.0) for _ in range(4)]
    assert [isinstance(r, Reservation) for r in granted_a] == [True, True, True, False]
    assert isinstance(granted_a[3], Denial) and granted_a[3].scope == "a"
    assert isinstance(ledger.reserve("b", 0.0), Reservation)  # global: 1 earlier + 3 + 1 = 5
    denied = ledger.reserve("b", 0.0)
    assert isinstance(denied, Denial) and denied.scope == GLOBAL and denied.reason == "hourly_cap"

    clock.now += timedelta(hours=1)  # a new hour starts from zero
    assert isinstance(ledger.reserve("a", 0.0), Reservation)


def test_spend_cap_reserves_estimates_and_settles_actual_costs() -> None:
    clock = Clock(datetime(2026, 11, 20, 23, 0, tzinfo=UTC))
    ledger = BudgetLedger(Caps(usd_per_day=1.0), {}, {GLOBAL: Usage(0, 0.5)}, clock)

    first = ledger.reserve("r", 0.3)
    assert isinstance(first, Reservation)
    assert isinstance(ledger.reserve("r", 0.3), Denial)  # 0.5 + 0.3 + 0.3 > 1.0
    ledger.settle(first, 0.1)  # the call cost less than estimated
    assert ledger.used().usd_today == pytest.approx(0.6)
    second = ledger.reserve("r", 0.3)
    assert isinstance(second, Reservation)
    ledger.settle(second, 0.0, called=False)  # never sent: the reservation comes back whole
    assert ledger.used().usd_today == pytest.approx(0.6) and ledger.used().judgments_this_hour == 1

    clock.now += timedelta(hours=1)  # a new UTC day
    assert ledger.used().usd_today == 0.0


def test_fix_up_calls_add_spend_but_not_judgments() -> None:
    ledger = BudgetLedger(Caps(per_hour=1, usd_per_day=1.0), {}, {}, Clock(datetime(2026, 11, 20, tzinfo=UTC)))
    assert isinstance(ledger.reserve("r", 0.1), Reservation)
    assert isinstance(ledger.reserve("r", 0.1, counted=False), Reservation)
    assert isinstance(ledger.reserve("r", 0.1), Denial)


class Seconds:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_after_consecutive_failures_and_probes_after_the_cooldown() -> None:
    clock = Seconds()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == BreakerState.OPEN and not breaker.allow()

    clock.t = 10.0
    assert breaker.state == BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()  # the probe failed: open again for another cooldown
    assert breaker.state == BreakerState.OPEN and breaker.times_opened == 2
    clock.t = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == BreakerState.CLOSED and breaker.allow()


def test_retry_after_header_forms() -> None:
    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("Fri, 20 Nov 2026 10:00:30 GMT", now) == pytest.approx(30.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
