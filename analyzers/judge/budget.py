"""Caps on judge calls: judgments per hour and spend per UTC day, per rule and for all rules together.

A call is only started once its estimated cost is reserved against every cap that applies, so concurrent
calls can never overshoot a cap between them: the estimate (`JudgeCostModel.estimate`) is an upper bound of
what the call can cost (input tokens counted at ~3 characters each, the full `max_tokens` of output). After
the call the actual cost replaces the reservation. Usage already spent (earlier runs, other processes) comes
from the judgments table when the ledger is built.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from collector.pricing import PriceCatalog, TokenUsage

GLOBAL = "*"


@dataclass(frozen=True, slots=True)
class Caps:
    per_hour: int | None = None
    usd_per_day: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What was used in the current hour / UTC day before the ledger was built."""

    judgments_this_hour: int = 0
    usd_today: float = 0.0


@dataclass(slots=True)
class Reservation:
    rule: str
    usd: float
    hour: datetime
    day: datetime
    counted: bool = True  # counts as a judgment (a fix-up call only adds spend)


@dataclass(slots=True)
class _Account:
    hour: datetime
    day: datetime
    judgments: int = 0
    usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Denial:
    rule: str
    reason: str  # "hourly_cap" | "daily_spend_cap"
    scope: str  # the rule's name, or "*" for the global cap


def _hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _day(ts: datetime) -> datetime:
    return _hour(ts).replace(hour=0)


@dataclass
class BudgetLedger:
    global_caps: Caps
    rule_caps: Mapping[str, Caps]
    usage: Mapping[str, Usage] = field(default_factory=dict)  # by rule name and GLOBAL, as of `clock()`
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        now = self.clock()
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        for scope, used in self.usage.items():
            self._accounts[scope] = _Account(_hour(now), _day(now), used.judgments_this_hour, used.usd_today)

    def _account(self, scope: str, now: datetime) -> _Account:
        account = self._accounts.get(scope)
        hour, day = _hour(now), _day(now)
        if account is None:
            account = self._accounts[scope] = _Account(hour, day)
        if account.hour != hour:
            account.hour, account.judgments = hour, 0
        if account.day != day:
            account.day, account.usd = day, 0.0
        return account

    def _check(self, scope: str, caps: Caps, now: datetime, usd: float, counted: bool) -> str | None:
        account = self._account(scope, now)
        if counted and caps.per_hour is not None and account.judgments + 1 > caps.per_hour:
            return "hourly_cap"
        if caps.usd_per_day is not None and account.usd + usd > caps.usd_per_day + 1e-12:
            return "daily_spend_cap"
        return None

    def reserve(self, rule: str, usd: float, *, counted: bool = True) -> Reservation | Denial:
        """Reserve one judgment (or, `counted=False`, extra spend of one) under the rule's and global caps."""
        now = self.clock()
        scopes = ((rule, self.rule_caps.get(rule, Caps())), (GLOBAL, self.global_caps))
        with self._lock:
            for scope, caps in scopes:
                reason = self._check(scope, caps, now, usd, counted)
                if reason is not None:
                    return Denial(rule, reason, scope)
            for scope, _ in scopes:
                account = self._account(scope, now)
                account.judgments += int(counted)
                account.usd += usd
        return Reservation(rule, usd, _hour(now), _day(now), counted)

    def settle(self, reservation: Reservation, actual_usd: float | None, *, called: bool = True) -> None:
        """Replace the reservation by what the call cost (None: unknown price, 0 counted); `called=False`
        gives the whole reservation back (no request was sent)."""
        usd = 0.0 if actual_usd is None or not math.isfinite(actual_usd) else actual_usd
        with self._lock:
            for scope in (reservation.rule, GLOBAL):
                account = self._accounts.get(scope)
                if account is None:
                    continue
                if account.day == reservation.day:
                    account.usd += (usd if called else 0.0) - reservation.usd
                if not called and reservation.counted and account.hour == reservation.hour:
                    account.judgments -= 1

    def used(self, scope: str = GLOBAL) -> Usage:
        with self._lock:
            account = self._account(scope, self.clock())
            return Usage(account.judgments, account.usd)


@dataclass(frozen=True)
class JudgeCostModel:
    """Prices judge calls with the collector's catalog (overrides for self-hosted judges included)."""

    catalog: PriceCatalog
    model: str
    provider: str | None

    def cost(self, input_tokens: int, output_tokens: int, at: datetime) -> float | None:
        priced = self.catalog.cost(
            model=self.model,
            provider=self.provider,
            usage=TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens),
            at=at,
        )
        return priced.total_usd

    def estimate(self, prompt_chars: int, max_tokens: int, at: datetime) -> float:
        """An upper bound for one call (0 when the judge model has no known price)."""
        return self.cost(math.ceil(prompt_chars / 3) + 16, max_tokens, at) or 0.0
