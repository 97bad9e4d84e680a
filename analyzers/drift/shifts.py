"""The documented shift catalogue, applied to windows of simulated traffic (calibration and benchmarks).

Windows are drawn from a pool of clean simulated LLM calls of one group (support-bot/answer by default),
as the collector would store them (messages flattened to text). A pair of windows is two disjoint random
draws; a shift changes the current window only. The null pairs are exchangeable by construction, so their
false-positive rate measures the detector, not the simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from analyzers.drift.features import WINDOW_COLUMNS, Direction
from analyzers.drift.text import HashedDocs, featurize
from collector.validation import flatten_messages
from llmpulse.simulate import Incident, SimulationConfig, default_apps, generate
from llmpulse.simulate.texts import REFUSAL

Columns = dict[str, list[Any]]
_MAX_TEXT = 32 * 1024


def event_row(ev: dict[str, Any]) -> dict[str, Any]:
    """A simulated event as the events table stores the columns drift reads."""
    in_text, in_msgs, _ = flatten_messages(_messages(ev.get("input")), _MAX_TEXT)
    out_text, out_msgs, _ = flatten_messages(_messages(ev.get("output")), _MAX_TEXT)
    usage = ev.get("usage") or {}
    return {
        "event_id": ev["event_id"],
        "input_tokens": int(usage.get("input_tokens", 0)),
        "output_tokens": int(usage.get("output_tokens", 0)),
        "input_text": in_text,
        "output_text": out_text,
        "input_messages": in_msgs,
        "output_messages": out_msgs,
        "finish_reason": ev.get("finish_reason") or "",
        "model": ev["model"],
        "provider": ev.get("provider") or "",
        "error_type": ev.get("error_type") or "",
        "metadata": dict(ev.get("metadata") or {}),
    }


def _messages(value: Any) -> Any:
    if isinstance(value, list):
        from collector.events import ChatMessage

        return [ChatMessage.model_validate(m) for m in value]
    return value


def to_columns(rows: Sequence[dict[str, Any]]) -> Columns:
    return {c: [r[c] for r in rows] for c in WINDOW_COLUMNS}


def take(cols: Columns, idx: Sequence[int] | np.ndarray) -> Columns:
    ii = [int(i) for i in idx]
    return {c: [v[i] for i in ii] for c, v in cols.items()}


@dataclass
class Pool:
    """Clean calls of one group, plus calls of the same group about a new topic (for that shift)."""

    clean: Columns
    new_topic: Columns
    max_output_tokens: int

    def __len__(self) -> int:
        return len(self.clean["event_id"])


def simulated_pool(
    *, hours: float = 24.0, seed: int = 5, app: str = "support-bot", feature: str = "answer",
    rate_per_minute: float = 30.0,
) -> Pool:
    """Chat calls of one app/feature from the simulator (that feature's traffic only, to be quick)."""
    profile = next(a for a in default_apps() if a.name == app)
    feat = profile.feature(feature)
    only = profile.model_copy(update={"features": (feat,)})
    start = datetime(2026, 11, 16, tzinfo=UTC)
    cfg = SimulationConfig(start=start, duration=timedelta(hours=hours), seed=seed, apps=[only], clean=True,
                           rate_per_minute=rate_per_minute)
    clean = [event_row(e) for e in generate(cfg) if e["operation"] == "chat"]
    drift_hours = max(1.0, hours / 6)
    incident = Incident(kind="input_drift", start=start, end=start + timedelta(hours=drift_hours),
                        labels={"app": app, "feature": feature}, magnitude=1.0, params={"input_scale": 1.0})
    dcfg = SimulationConfig(start=start, duration=timedelta(hours=drift_hours), seed=seed + 1000, apps=[only],
                            incidents=[incident], rate_per_minute=rate_per_minute)
    topic = [event_row(e) for e in generate(dcfg) if e["operation"] == "chat"]
    return Pool(to_columns(clean), to_columns(topic), feat.effective_max_output_tokens)


# --------------------------------------------------------------------------------------- the shifts


@dataclass(frozen=True, slots=True)
class Shift:
    name: str
    direction: Direction
    description: str
    apply: Callable[[Columns, Pool, np.random.Generator], Columns]


def _pick(n: int, share: float, rng: np.random.Generator, eligible: Sequence[bool] | None = None) -> list[int]:
    idx = np.arange(n) if eligible is None else np.flatnonzero(np.asarray(eligible, dtype=bool))
    k = round(share * n)
    k = min(k, len(idx))
    return sorted(rng.choice(idx, size=k, replace=False).tolist()) if k else []


def _copy(cols: Columns) -> Columns:
    return {c: list(v) for c, v in cols.items()}


def _longer_inputs(cols: Columns, pool: Pool, rng: np.random.Generator) -> Columns:
    out = _copy(cols)
    out["input_tokens"] = [round(t * 1.3) for t in cols["input_tokens"]]
    # The user's message grows by the same share: they paste more context.
    out["input_text"] = [t + " " + t[-max(1, int(len(t) * 0.3)):] if t else t for t in cols["input_text"]]
    return out


def _new_topic(cols: Columns, pool: Pool, rng: np.random.Generator) -> Columns:
    out = _copy(cols)
    n = len(cols["event_id"])
    rows = _pick(n, 0.20, rng)
    src = rng.integers(0, len(pool.new_topic["event_id"]), size=len(rows))
    for i, j in zip(rows, src.tolist(), strict=True):
        for c in out:
            out[c][i] = pool.new_topic[c][j]
    return out


def _switch_language(cols: Columns, pool: Pool, rng: np.random.Generator) -> Columns:
    out = _copy(cols)
    n = len(cols["event_id"])
    foreign = [i for i, md in enumerate(pool.clean["metadata"]) if md.get("locale") in ("es", "de")
               and pool.clean["output_text"][i]]
    english = [not (md or {}).get("locale") and bool(t) for md, t in zip(cols["metadata"], cols["output_text"],
                                                                         strict=True)]
    rows = _pick(n, 0.10, rng, english)
    src = rng.choice(foreign, size=len(rows))
    for i, j in zip(rows, src.tolist(), strict=True):
        out["output_text"][i] = pool.clean["output_text"][j]
    return out


def _share(cols: Columns, test: Callable[[int], bool]) -> float:
    n = len(cols["event_id"])
    return sum(1 for i in range(n) if test(i)) / max(n, 1)


def _more_refusals(cols: Columns, pool: Pool, rng: np.random.Generator) -> Columns:
    out = _copy(cols)
    n = len(cols["event_id"])
    refusals = set(REFUSAL.values())
    now = _share(cols, lambda i: cols["output_text"][i] in refusals)
    ok = [cols["finish_reason"][i] == "stop" and cols["output_text"][i] not in refusals for i in range(n)]
    rows = _pick(n, max(0.0, 0.08 - now), rng, ok)
    for i in rows:
        out["output_text"][i] = REFUSAL[(cols["metadata"][i] or {}).get("locale", "en")]
        out["output_tokens"][i] = int(rng.integers(8, 14))
    return out


def _new_tool(cols: Columns, pool: Pool, rng: np.random.Generator) -> Columns:
    out = _copy(cols)
    n = len(cols["event_id"])
    ok = [bool(t) for t in cols["output_text"]]
    for i in _pick(n, 0.15, rng, ok):
        out["metadata"][i] = {**(cols["metadata"][i] or {}), "tool": "issue_refund"}
        out["finish_reason"][i] = "tool_calls"
    return out


def _more_length_stops(cols: Columns, pool: Pool, rng: np.random.Generator) -> Columns:
    out = _copy(cols)
    n = len(cols["event_id"])
    now = _share(cols, lambda i: cols["finish_reason"][i] == "length")
    ok = [cols["finish_reason"][i] == "stop" for i in range(n)]
    for i in _pick(n, max(0.0, 0.06 - now), rng, ok):
        out["finish_reason"][i] = "length"
        out["output_tokens"][i] = pool.max_output_tokens
        text = cols["output_text"][i]
        out["output_text"][i] = text[: max(1, int(len(text) * 0.9))].rstrip()
    return out


SHIFTS: tuple[Shift, ...] = (
    Shift("input_length+30%", Direction.INPUT, "input tokens and prompt length +30%", _longer_inputs),
    Shift("new_topic_20%", Direction.INPUT, "20% of prompts about a new topic (NovaPay)", _new_topic),
    Shift("output_language_10%", Direction.OUTPUT, "10% of English answers switch to Spanish/German",
          _switch_language),
    Shift("refusals_2→8%", Direction.OUTPUT, "refusal rate rises from ~2% to 8%", _more_refusals),
    Shift("new_tool_15%", Direction.OUTPUT, "a new tool (issue_refund) called in 15% of calls", _new_tool),
    Shift("finish_length_1→6%", Direction.OUTPUT, "finish_reason=length rises from ~1% to 6%",
          _more_length_stops),
)
SHIFTS_BY_NAME: dict[str, Shift] = {s.name: s for s in SHIFTS}


def window_pair(pool: Pool, n: int, rng: np.random.Generator, shift: Shift | None = None) -> tuple[Columns, Columns]:
    """Two disjoint random windows of n calls; the shift (if any) applied to the second."""
    if 2 * n > len(pool):
        raise ValueError(f"pool of {len(pool)} calls is too small for two windows of {n}")
    perm = rng.permutation(len(pool))
    ref, cur = take(pool.clean, perm[:n]), take(pool.clean, perm[n : 2 * n])
    if shift is not None:
        cur = shift.apply(cur, pool, rng)
    return ref, cur


class DocCache:
    """Featurized texts by content, so repeated windows over one pool featurize each text once."""

    def __init__(self) -> None:
        self._docs: dict[str, np.ndarray] = {}

    def docs(self, texts: Sequence[str]) -> HashedDocs:
        missing = [t for t in dict.fromkeys(texts) if t not in self._docs]
        if missing:
            fresh = featurize(missing)
            for k, t in enumerate(missing):
                self._docs[t] = fresh.indices[fresh.indptr[k] : fresh.indptr[k + 1]]
        parts = [self._docs[t] for t in texts]
        lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return HashedDocs(indptr, flat.astype(np.int64))

    def window_docs(self, ref: Columns, cur: Columns) -> dict[str, tuple[HashedDocs, HashedDocs]]:
        return {c: (self.docs(ref[c]), self.docs(cur[c])) for c in ("input_text", "output_text")}


def write_window(cols: Columns, path: Any) -> None:
    """The columns a tabular drift tool sees, as parquet (metadata as JSON text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: (v if c != "metadata" else [orjson.dumps(m).decode() for m in v]) for c, v in cols.items()})
    pq.write_table(table, path)
