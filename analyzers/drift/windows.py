"""Which current windows a drift run tests, how their results combine, and when a slice's verdict counts.

Pure decisions, no I/O (the analyzer feeds them counts from ClickHouse):

- `choose_windows`: every current window ends at the run's instant. The first is the shortest one that
  is at least `min_window` long (the run interval, so every call lands in a window of some run) and holds
  `first_events` calls; each next one is the shortest holding twice the calls of the previous, until one
  holds `enough_events` or the `max_window` cap is reached (the cap itself is tried when it holds more
  calls than the last window and at least `min_events`). A slice with steady low traffic therefore gets
  windows of hours (evidence accumulates), a busy one windows of minutes (it is detected at once), and
  the doubling bounds how many windows are tried: about log2(enough / first) + 1.
- `combine_windows`: one feature tested over K windows is one test with a Bonferroni-corrected p-value
  (K times the smallest p of the windows whose effect passes its threshold, else of all windows), so
  trying several windows does not inflate the false-alarm rate; the Benjamini–Hochberg step across
  groups and features runs afterwards on these combined p-values.
- `persists`: a run's drift counts once `hits` of the last `runs` runs (this one included) showed it.
- `is_silent`: a slice without a call for `stale_after` gets no test; its drift findings resolve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from analyzers.drift.detect import STATUS_OK, DriftConfig, FeatureTest, Verdict, apply_fdr, compare_windows, verdicts
from analyzers.drift.features import Direction, Window
from analyzers.drift.text import HashedDocs

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    min_window: timedelta = timedelta(minutes=15)  # at least the run interval
    max_window: timedelta = timedelta(hours=24)
    first_events: int = 30  # calls in the shortest window tried
    enough_events: int = 500  # stop widening at a window holding this many calls
    min_events: int = 20  # fewer calls than this in the widest window: no test can reach the alpha

    def __post_init__(self) -> None:
        if self.min_window <= timedelta(0) or self.max_window < self.min_window:
            raise ValueError(f"drift windows: need 0 < min_window <= max_window, got {self.min_window} and "
                             f"{self.max_window}")
        if self.max_window.total_seconds() % 60 or self.min_window.total_seconds() % 60:
            raise ValueError("drift windows: min_window and max_window must be whole minutes")
        if not 1 <= self.min_events <= self.first_events <= self.enough_events:
            raise ValueError(f"drift windows: need 1 <= min_events ({self.min_events}) <= first_events "
                             f"({self.first_events}) <= enough_events ({self.enough_events})")

    @property
    def max_minutes(self) -> int:
        return int(self.max_window.total_seconds() // 60)

    @property
    def min_minutes(self) -> int:
        return int(self.min_window.total_seconds() // 60)


def choose_windows(calls_by_age_minute: Sequence[int] | I64, policy: WindowPolicy) -> list[int]:
    """Lengths in minutes of the current windows to test, shortest first (see the module doc).

    `calls_by_age_minute[i]` = calls that started i to i+1 minutes before the run's instant (at least
    `policy.max_minutes` entries are read; missing ones count as zero). Empty: too few calls to test.
    """
    cap = policy.max_minutes
    counts = np.zeros(cap, dtype=np.int64)
    given = np.asarray(calls_by_age_minute, dtype=np.int64)[:cap]
    counts[: len(given)] = given
    cum = np.cumsum(counts)  # cum[m - 1] = calls in the window of the last m minutes
    out: list[int] = []
    target = policy.first_events
    shortest = policy.min_minutes
    while True:
        # smallest m >= shortest with cum[m-1] >= target
        m = int(np.searchsorted(cum, target, side="left")) + 1
        m = max(m, shortest)
        if m > cap:
            held = int(cum[-1])
            if held >= policy.min_events and (not out or held > int(cum[out[-1] - 1])):
                out.append(cap)
            return out
        out.append(m)
        held = int(cum[m - 1])
        if held >= policy.enough_events or m == cap:
            return out
        target = max(2 * held, target + 1)
        shortest = m + 1


def combine_windows(tests: Sequence[FeatureTest], windows: Sequence[int]) -> FeatureTest:
    """One feature's tests over several windows (aligned with `windows`, minutes) as one Bonferroni test.

    The representative test is the window with the smallest p among those whose effect reaches its
    threshold (else among all tested windows); its p-value is multiplied by the number of windows in
    which the feature could be tested. P(some window has p <= alpha/K and passes) <= alpha under
    "nothing changed", whatever the windows' dependence.
    """
    if len(tests) != len(windows) or not tests:
        raise ValueError(f"combine_windows: {len(tests)} tests for {len(windows)} windows")
    ok = [i for i, t in enumerate(tests) if t.status == STATUS_OK]
    if not ok:
        return tests[-1]
    passing = [i for i in ok if passes_threshold(tests[i])]
    pick = min(passing or ok, key=lambda i: (tests[i].p_value, -windows[i]))
    t = tests[pick]
    k = len(ok)
    details = dict(t.details)
    details.update({"window_minutes": windows[pick], "windows_tested": [windows[i] for i in ok],
                    "p_window": t.p_value})
    return replace(t, p_value=min(1.0, t.p_value * k), details=details)


def passes_threshold(t: FeatureTest) -> bool:
    """The effect reaches its threshold (a NaN effect never does)."""
    return math.isfinite(t.effect) and t.effect >= t.threshold


def persists(now: bool, earlier: Sequence[bool], runs: int, hits: int) -> bool:
    """This run's drift counts once `hits` of the last `runs` runs showed it (`earlier`: newest first)."""
    if not now:
        return False
    recent = [now, *earlier[: max(runs - 1, 0)]]
    return sum(recent) >= min(hits, runs)


def is_silent(minutes_since_last_call: float | None, stale_after: timedelta) -> bool:
    """No call for `stale_after` (None: none in the look-back at all): nothing to test, findings resolve."""
    return minutes_since_last_call is None or minutes_since_last_call * 60 >= stale_after.total_seconds()


def verdicts_over_windows(
    pairs: Sequence[tuple[Window, Window]], windows: Sequence[int], cfg: DriftConfig, *,
    rng: np.random.Generator | None = None,
    docs: Sequence[Mapping[str, tuple[HashedDocs, HashedDocs]] | None] | None = None,
) -> tuple[dict[Direction, Verdict], list[FeatureTest]]:
    """One group's decision from in-memory (reference, current) pairs, one per window, as the analyzer makes it.

    Each window's features are tested (`compare_windows`), each feature's windows combined
    (`combine_windows`), Benjamini–Hochberg applied over the combined tests, and the verdicts given on the
    widest window's sizes.
    """
    if len(pairs) != len(windows) or not pairs:
        raise ValueError(f"verdicts_over_windows: {len(pairs)} window pairs for {len(windows)} windows")
    rng = rng or np.random.default_rng(cfg.seed)
    per_feature: dict[tuple[str, str], list[tuple[FeatureTest, int]]] = {}
    for i, ((ref, cur), minutes) in enumerate(zip(pairs, windows, strict=True)):
        for t in compare_windows(ref, cur, cfg, rng=rng, docs=docs[i] if docs else None):
            per_feature.setdefault((t.feature, t.kind), []).append((t, minutes))
    combined = [combine_windows([t for t, _ in ts], [m for _, m in ts]) for ts in per_feature.values()]
    tests = apply_fdr(combined, cfg.fdr)
    ref, cur = pairs[-1]
    return verdicts(tests, len(ref["input_tokens"]), len(cur["input_tokens"]), cfg), tests
