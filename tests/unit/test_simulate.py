from __future__ import annotations

import collections
import gzip
import itertools
import math
import re
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmpulse.simulate import (
    EXPECTED_ALERT,
    INCIDENT_KINDS,
    Incident,
    SimulationConfig,
    default_incidents,
    generate,
    ground_truth,
    load_ground_truth,
    parse_duration,
    write_simulation,
)

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def day_cfg() -> SimulationConfig:
    return SimulationConfig(start=MONDAY, duration=timedelta(days=1), seed=7)


@pytest.fixture(scope="module")
def day_events(day_cfg: SimulationConfig) -> list[dict[str, Any]]:
    return list(generate(day_cfg))


@pytest.fixture(scope="module")
def clean_events(day_cfg: SimulationConfig) -> list[dict[str, Any]]:
    return list(generate(day_cfg.model_copy(update={"clean": True})))


@pytest.fixture(scope="module")
def truth(day_cfg: SimulationConfig) -> dict[str, dict[str, Any]]:
    return {g["kind"]: g for g in ground_truth(day_cfg)}


def _window(events: list[dict[str, Any]], gt: dict[str, Any], inside: bool) -> list[dict[str, Any]]:
    s, e = gt["start"], gt["end"]
    # RFC 3339 strings of one format compare like the instants they denote.
    return [ev for ev in events if (s <= ev["start_time"] < e) == inside]


def _slice(events: list[dict[str, Any]], **labels: str) -> list[dict[str, Any]]:
    return [ev for ev in events if all(ev.get(k) == v for k, v in labels.items())]


def _llm(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [ev for ev in events if ev["operation"] != "execute_tool"]


def _err_share(events: list[dict[str, Any]]) -> float:
    calls = _llm(events)
    return sum(ev["status"] == "error" for ev in calls) / max(1, len(calls))


def _median_latency(events: list[dict[str, Any]]) -> float:
    return statistics.median(ev["latency_ms"] for ev in events if ev["status"] == "ok")


def _tokens(ev: dict[str, Any]) -> int:
    usage = ev.get("usage", {})
    return int(usage.get("input_tokens", 0) + usage.get("output_tokens", 0))


# ------------------------------------------------------------------------------------------ basics


def test_same_seed_is_byte_identical_and_other_seed_differs() -> None:
    cfg = SimulationConfig(start=MONDAY + timedelta(hours=12), duration=timedelta(hours=3), seed=3)
    a = b"".join(orjson.dumps(ev) for ev in generate(cfg))
    b = b"".join(orjson.dumps(ev) for ev in generate(cfg))
    c = b"".join(orjson.dumps(ev) for ev in generate(cfg.model_copy(update={"seed": 4})))
    assert a == b
    assert a != c
    assert len(a) > 100_000


def test_events_ordered_and_inside_the_run(
    day_cfg: SimulationConfig, day_events: list[dict[str, Any]]
) -> None:
    times = [ev["start_time"] for ev in day_events]
    assert times == sorted(times)
    assert _ts(times[0]) >= day_cfg.start
    assert _ts(times[-1]) < day_cfg.start + day_cfg.duration
    assert len({ev["event_id"] for ev in day_events}) == len(day_events)


def test_default_rate_is_about_60k_events_per_day(clean_events: list[dict[str, Any]]) -> None:
    # Monday is a weekday (factor 1.08), so a bit above the weekly average of 60,000.
    assert 50_000 < len(clean_events) < 75_000


def test_required_fields_and_types(day_events: list[dict[str, Any]]) -> None:
    for ev in day_events:
        assert isinstance(ev["event_id"], str) and HEX32.match(ev["event_id"])
        assert isinstance(ev["app"], str) and ev["app"]
        assert isinstance(ev["model"], str) and ev["model"]
        assert TS_RE.match(ev["start_time"])
        assert isinstance(ev["latency_ms"], float) and ev["latency_ms"] > 0
        assert ev["schema_version"] == 1
        assert HEX32.match(ev["trace_id"]) and HEX16.match(ev["span_id"])
        assert ev["environment"] == "prod"
        assert ev["operation"] in ("chat", "embeddings", "execute_tool", "retrieval")
        assert ev["status"] in ("ok", "error")
        assert isinstance(ev["metadata"], dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in ev["metadata"].items())
        assert isinstance(ev["tags"], list) and all(isinstance(t, str) for t in ev["tags"])
        inp = ev["input"]
        assert isinstance(inp, str) or (
            isinstance(inp, list) and [m["role"] for m in inp] == ["system", "user"]
        )
        if "ttft_ms" in ev:
            assert isinstance(ev["ttft_ms"], float) and 0 < ev["ttft_ms"] <= ev["latency_ms"]
        if ev["operation"] == "execute_tool":
            assert "usage" not in ev
            continue
        u = ev["usage"]
        assert set(u) == {
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "reasoning_output_tokens",
        }
        assert all(isinstance(v, int) and v >= 0 for v in u.values())
        assert u["input_tokens"] >= u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        assert u["output_tokens"] >= u["reasoning_output_tokens"]
        if ev["status"] == "error":
            assert ev["error_type"] in (
                "rate_limit",
                "timeout",
                "server_error",
                "context_length_exceeded",
                "content_filter",
            )
            assert u["output_tokens"] == 0 and "output" not in ev and "finish_reason" not in ev
        elif ev["operation"] == "chat":
            assert ev["finish_reason"] in ("stop", "length", "tool_calls", "content_filter")
            assert isinstance(ev["output"], str) and ev["output"]


def test_events_satisfy_the_collector_contract(day_events: list[dict[str, Any]]) -> None:
    events_mod = pytest.importorskip("collector.events")
    for ev in day_events[::97]:
        parsed = events_mod.TraceEvent.model_validate(ev)
        assert parsed.event_id == ev["event_id"]


def test_catalogue_models_and_realistic_mix(clean_events: list[dict[str, Any]]) -> None:
    models = collections.Counter(ev["model"] for ev in clean_events)
    for name in (
        "gpt-4o",
        "gpt-4o-mini",
        "o4-mini",
        "claude-sonnet-4-20250514",
        "claude-3-5-haiku-latest",
        "gemini-2.5-flash",
        "mistral-large-latest",
        "text-embedding-3-small",
        "acme-llama-70b-ft",
    ):
        assert models[name] > 100, name
    llm = _llm(clean_events)
    err = _err_share(clean_events)
    assert 0.005 <= err <= 0.02
    types = collections.Counter(ev["error_type"] for ev in llm if ev["status"] == "error")
    assert {"rate_limit", "timeout", "server_error"} <= set(types)
    chat_ok = [ev for ev in llm if ev["operation"] == "chat" and ev["status"] == "ok"]
    length = sum(ev["finish_reason"] == "length" for ev in chat_ok) / len(chat_ok)
    assert 0.003 < length < 0.03
    answers = [ev for ev in chat_ok if ev["feature"] == "answer"]
    refusals = sum(ev["output"] == "I'm sorry, but I can't help with that." for ev in answers) / len(answers)
    assert 0.01 < refusals < 0.03
    o4 = [ev for ev in chat_ok if ev["model"] == "o4-mini"]
    assert all(ev["usage"]["reasoning_output_tokens"] > 0 for ev in o4)
    cached = sum(ev["usage"]["cache_read_input_tokens"] > 0 for ev in answers) / len(answers)
    assert 0.4 < cached < 0.7
    assert any(ev["usage"]["cache_creation_input_tokens"] > 0 for ev in chat_ok)
    # Agent requests are traces of several calls; RAG requests pair an embedding with a synthesis.
    agent_traces = collections.Counter(ev["trace_id"] for ev in clean_events if ev["feature"] == "agent-step")
    assert statistics.mean(agent_traces.values()) > 3
    rag = collections.defaultdict(set)
    for ev in clean_events:
        if ev["app"] == "search-rag":
            rag[ev["trace_id"]].add(ev["feature"])
    assert sum(v == {"retrieve", "synthesize"} for v in rag.values()) / len(rag) > 0.95
    # Zipf-like users: the top 1% of users make far more than 1% of the calls.
    users = collections.Counter(ev["user_id"] for ev in clean_events if ev["app"] == "support-bot")
    top = sum(c for _, c in users.most_common(max(1, len(users) // 100)))
    assert top / sum(users.values()) > 0.1


def test_latency_heavy_tail_and_scaling(clean_events: list[dict[str, Any]]) -> None:
    ok = [ev for ev in clean_events if ev["operation"] == "chat" and ev["status"] == "ok"]
    lat = sorted(ev["latency_ms"] for ev in ok if ev["model"] == "gpt-4o-mini")
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    assert p99 > 2.5 * p50
    sonnet = [ev for ev in ok if ev["model"] == "claude-sonnet-4-20250514"]
    short = [ev["latency_ms"] for ev in sonnet if ev["usage"]["output_tokens"] < 100]
    long = [ev["latency_ms"] for ev in sonnet if ev["usage"]["output_tokens"] > 400]
    assert statistics.median(long) > 2 * statistics.median(short)
    # Faster models are faster for comparable work.
    gemini = [ev["latency_ms"] for ev in ok if ev["model"] == "gemini-2.5-flash"]
    mistral = [ev["latency_ms"] for ev in ok if ev["model"] == "mistral-large-latest"]
    assert statistics.median(gemini) < statistics.median(mistral)


def test_languages_and_input_formats(clean_events: list[dict[str, Any]]) -> None:
    support = [ev for ev in clean_events if ev["feature"] == "answer" and ev["operation"] == "chat"]
    locales = collections.Counter(ev["metadata"].get("locale", "en") for ev in support)
    es, de = locales["es"] / len(support), locales["de"] / len(support)
    assert 0.02 < es < 0.045 and 0.004 < de < 0.02
    spanish = [ev for ev in support if ev["metadata"].get("locale") == "es" and ev["status"] == "ok"]
    assert all(any(w in ev["output"] for w in ("Gracias", "Hola", "Lo siento", "gracias")) for ev in spanish)
    as_list = sum(isinstance(ev["input"], list) for ev in clean_events) / len(clean_events)
    assert 0.05 < as_list < 0.5


def _word_dist(events: list[dict[str, Any]]) -> collections.Counter[str]:
    words: collections.Counter[str] = collections.Counter()
    for ev in events:
        inp = ev["input"]
        text = inp if isinstance(inp, str) else inp[-1]["content"]
        words.update(re.findall(r"[a-z]+", text.lower()))
    return words


def _jsd(p: collections.Counter[str], q: collections.Counter[str]) -> float:
    tp, tq = sum(p.values()), sum(q.values())
    out = 0.0
    for w in set(p) | set(q):
        a, b = p[w] / tp, q[w] / tq
        m = (a + b) / 2
        if a:
            out += 0.5 * a * math.log2(a / m)
        if b:
            out += 0.5 * b * math.log2(b / m)
    return out


def test_texts_are_stable_without_shift_and_shift_under_drift(
    clean_events: list[dict[str, Any]], day_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]
) -> None:
    gt = truth["input_drift"]
    target = _slice(clean_events, app=gt["labels"]["app"], feature=gt["labels"]["feature"], operation="chat")
    half = len(target) // 2
    baseline = _jsd(_word_dist(target[:half]), _word_dist(target[half:]))
    drifted_window = _window(
        _slice(day_events, app=gt["labels"]["app"], feature=gt["labels"]["feature"], operation="chat"),
        gt,
        True,
    )
    clean_window = _window(target, gt, True)
    assert len(set(_word_dist(target[:half]))) > 300  # a real vocabulary, not a handful of strings
    shifted = _jsd(_word_dist(target[:half]), _word_dist(drifted_window))
    same_hours = _jsd(_word_dist(target[:half]), _word_dist(clean_window))
    assert baseline < 0.02
    assert shifted > 2 * same_hours


# ------------------------------------------------------------------------------------------ shape


def test_diurnal_shape_per_app(clean_events: list[dict[str, Any]]) -> None:
    for app in ("support-bot", "code-assistant", "search-rag"):
        hours = collections.Counter(ev["start_time"][11:13] for ev in clean_events if ev["app"] == app)
        counts = [hours[f"{h:02d}"] for h in range(24)]
        assert max(counts) > 2 * min(counts), app

    # Apps live in different time zones: support-bot (UTC-5) peaks later in UTC than code-assistant (UTC+1).
    def peak(app: str) -> int:
        hours = collections.Counter(int(ev["start_time"][11:13]) for ev in clean_events if ev["app"] == app)
        return max(range(24), key=lambda h: hours[h])

    assert peak("support-bot") > peak("code-assistant")


def test_weekends_are_quieter() -> None:
    cfg = SimulationConfig(
        start=MONDAY, duration=timedelta(days=7), seed=1, rate_per_minute=8, clean=True, text=False
    )
    days = collections.Counter(ev["start_time"][:10] for ev in generate(cfg))
    counts = [days[(MONDAY + timedelta(days=d)).strftime("%Y-%m-%d")] for d in range(7)]
    weekday, weekend = statistics.mean(counts[:5]), statistics.mean(counts[5:])
    assert weekend < 0.85 * weekday
    # rate_per_minute is the weekly average
    assert abs(sum(counts) / (7 * 1440) - 8) < 0.8


# ------------------------------------------------------------------------------------------ incidents


def test_default_incidents_one_day() -> None:
    incs = default_incidents(MONDAY, timedelta(days=1))
    assert sorted(i.kind for i in incs) == sorted(INCIDENT_KINDS)
    for inc in incs:
        assert inc.start >= MONDAY + timedelta(hours=6)
        assert inc.end <= MONDAY + timedelta(days=1)
        assert timedelta(minutes=30) <= inc.end - inc.start <= timedelta(minutes=90)
    for a, b in itertools.pairwise(incs):
        assert b.start - a.end >= timedelta(minutes=30)
    assert len({i.id for i in incs}) == len(incs)


def test_default_incidents_one_week() -> None:
    incs = default_incidents(MONDAY, timedelta(days=7))
    assert len(incs) >= 14
    assert set(i.kind for i in incs) == set(INCIDENT_KINDS)
    assert all(i.start >= MONDAY + timedelta(days=1) for i in incs)
    for a, b in itertools.pairwise(incs):
        assert b.start - a.end >= timedelta(minutes=30)
    # The second round hits other targets.
    targets = collections.defaultdict(set)
    for i in incs:
        targets[i.kind].add(tuple(sorted(i.labels.items())))
    assert len(targets["latency_regression"]) == 2


def test_short_run_scales_incidents() -> None:
    incs = default_incidents(MONDAY, timedelta(hours=4))
    assert len(incs) == 8
    assert all(MONDAY + timedelta(hours=1) <= i.start < i.end <= MONDAY + timedelta(hours=4) for i in incs)


def test_ground_truth_matches_config(day_cfg: SimulationConfig) -> None:
    gt = ground_truth(day_cfg)
    incs = day_cfg.resolved_incidents()
    assert [g["id"] for g in gt] == [i.id for i in incs]
    for g, inc in zip(gt, incs, strict=True):
        assert g["kind"] == inc.kind
        assert _ts(g["start"]) == inc.start and _ts(g["end"]) == inc.end
        assert g["magnitude"] == inc.magnitude
        assert g["expected_alertname"] == EXPECTED_ALERT[inc.kind]
        assert {k: v for k, v in g["labels"].items() if k in inc.labels} == inc.labels
        assert TS_RE.match(g["start"]) and TS_RE.match(g["end"])
    names = {g["expected_alertname"] for g in gt}
    assert names == {
        "LLMCostSpike",
        "LLMLatencyRegression",
        "LLMProviderOutage",
        "LLMErrorRateHigh",
        "LLMTrafficAbsent",
        "LLMRunawayTrace",
        "LLMInputDrift",
        "LLMQualityRegression",
    }
    explicit = day_cfg.model_copy(
        update={
            "incidents": (
                Incident(
                    kind="latency_regression",
                    start=MONDAY + timedelta(hours=14),
                    end=MONDAY + timedelta(hours=15),
                    labels={"provider": "openai"},
                    magnitude=3.0,
                ),
            )
        }
    )
    (only,) = ground_truth(explicit)
    assert only["labels"] == {"provider": "openai"} and only["magnitude"] == 3.0
    assert only["start"] == "2026-11-16T14:00:00.000Z"
    assert ground_truth(day_cfg.model_copy(update={"clean": True})) == []


def test_invalid_incident_targets_are_rejected() -> None:
    with pytest.raises(ValueError):
        SimulationConfig(
            start=MONDAY,
            incidents=[
                Incident(
                    kind="error_burst",
                    start=MONDAY + timedelta(hours=1),
                    end=MONDAY + timedelta(hours=2),
                    labels={"app": "no-such-app"},
                )
            ],
        )
    with pytest.raises(ValueError):
        Incident(kind="provider_outage", start=MONDAY, end=MONDAY + timedelta(hours=1), labels={"app": "x"})
    with pytest.raises(ValueError):
        SimulationConfig(start=datetime(2026, 11, 16))  # naive


def test_clean_run_has_no_incident_markers(clean_events: list[dict[str, Any]]) -> None:
    for ev in clean_events:
        assert "sim_incident" not in ev["metadata"] and "sim_quality" not in ev["metadata"]
        assert "fallback" not in ev["tags"]
    assert not any("NovaPay" in orjson.dumps(ev["input"]).decode() for ev in clean_events)
    assert {ev.get("prompt_version") for ev in clean_events if ev["feature"] == "answer"} == {"v12", None}


def test_untouched_events_equal_the_clean_run(
    day_events: list[dict[str, Any]], clean_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]
) -> None:
    clean = {ev["event_id"]: ev for ev in clean_events}
    marked_traces = {ev["trace_id"] for ev in day_events if "sim_incident" in ev["metadata"]}
    unmarked = [ev for ev in day_events if "sim_incident" not in ev["metadata"]]
    assert len(unmarked) > 0.9 * len(clean_events)
    for ev in unmarked:
        ref = clean[ev["event_id"]]
        if ev["trace_id"] in marked_traces:
            # a later call of a trace whose earlier call was slowed or failed starts later
            ev = {k: v for k, v in ev.items() if k != "start_time"}
            ref = {k: v for k, v in ref.items() if k != "start_time"}
        assert ev == ref
    # Only traffic_absent removes calls, and only its slice in its window.
    gone = set(clean) - {ev["event_id"] for ev in day_events}
    gt = truth["traffic_absent"]
    assert gone
    for eid in gone:
        ev = clean[eid]
        assert ev["app"] == gt["labels"]["app"]
        assert gt["start"] <= ev["start_time"] < _ts_plus(gt["end"], minutes=5)


def _ts_plus(ts: str, minutes: int) -> str:
    return (_ts(ts) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_cost_spike(
    day_events: list[dict[str, Any]], clean_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]
) -> None:
    gt = truth["cost_spike"]
    target = _llm(_slice(day_events, **gt["labels"]))
    inside = statistics.mean(_tokens(ev) for ev in _window(target, gt, True))
    outside = statistics.mean(_tokens(ev) for ev in _window(target, gt, False))
    same_hours = statistics.mean(
        _tokens(ev) for ev in _window(_llm(_slice(clean_events, **gt["labels"])), gt, True)
    )
    assert inside > 3 * outside and inside > 3 * same_hours

    # Other features keep their token counts (the mix of features changes over the day, so compare with the
    # clean run at the same hours rather than with other hours).
    def others(evs: list[dict[str, Any]]) -> int:
        return sum(_tokens(ev) for ev in _window(evs, gt, True) if ev["feature"] != gt["labels"]["feature"])

    assert others(day_events) == others(clean_events)


def test_latency_regression(
    day_events: list[dict[str, Any]], clean_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]
) -> None:
    gt = truth["latency_regression"]
    target = [
        ev for ev in _llm(day_events) if ev["model"] == gt["labels"]["model"] and ev["operation"] == "chat"
    ]
    ratio = _median_latency(_window(target, gt, True)) / _median_latency(_window(target, gt, False))
    assert ratio > 2.0
    ttft_in = [ev["ttft_ms"] for ev in _window(target, gt, True) if "ttft_ms" in ev]
    ttft_out = [ev["ttft_ms"] for ev in _window(target, gt, False) if "ttft_ms" in ev]
    assert statistics.median(ttft_in) > 2.0 * statistics.median(ttft_out)
    same_hours = [ev for ev in _llm(clean_events) if ev["model"] == gt["labels"]["model"]]
    assert _median_latency(_window(target, gt, True)) > 2.0 * _median_latency(
        _window([ev for ev in same_hours if ev["operation"] == "chat"], gt, True)
    )
    for model in ("gpt-4o-mini", "gpt-4o", "gemini-2.5-flash"):
        other = [ev for ev in day_events if ev["model"] == model and ev["operation"] == "chat"]
        ref = [ev for ev in clean_events if ev["model"] == model and ev["operation"] == "chat"]
        assert _median_latency(_window(other, gt, True)) == _median_latency(_window(ref, gt, True)), model


def test_provider_outage(day_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]) -> None:
    gt = truth["provider_outage"]
    provider = gt["labels"]["provider"]
    target = _slice(day_events, provider=provider)
    assert _err_share(_window(target, gt, True)) > 0.7
    assert _err_share(_window(target, gt, False)) < 0.03
    failed = [ev for ev in _window(target, gt, True) if ev["status"] == "error"]
    assert {ev["error_type"] for ev in failed} >= {"server_error", "timeout"}
    fallbacks = [ev for ev in day_events if "fallback" in ev["tags"]]
    assert len(fallbacks) > 0.3 * len(failed)
    assert all(ev["provider"] != provider and ev["metadata"]["fallback_from"] == provider for ev in fallbacks)
    others = [ev for ev in day_events if ev["provider"] != provider and "fallback" not in ev["tags"]]
    assert _err_share(_window(others, gt, True)) < 0.03


def test_error_burst(day_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]) -> None:
    gt = truth["error_burst"]
    app = _slice(day_events, app=gt["labels"]["app"])
    inside = _window(app, gt, True)
    assert 0.10 < _err_share(inside) < 0.22
    assert _err_share(_window(app, gt, False)) < 0.03
    types = collections.Counter(ev["error_type"] for ev in inside if ev["status"] == "error")
    assert types.most_common(1)[0][0] == "rate_limit"
    others = [ev for ev in day_events if ev["app"] != gt["labels"]["app"]]
    assert _err_share(_window(others, gt, True)) < 0.03


def test_input_drift(day_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]) -> None:
    gt = truth["input_drift"]
    target = _slice(day_events, app=gt["labels"]["app"], feature=gt["labels"]["feature"], operation="chat")

    def share(evs: list[dict[str, Any]]) -> float:
        return sum("NovaPay" in orjson.dumps(ev["input"]).decode() for ev in evs) / max(1, len(evs))

    inside = _window(target, gt, True)
    assert len(inside) > 300
    assert 0.18 < share(inside) < 0.33
    assert share(_window(target, gt, False)) == 0
    others = [ev for ev in day_events if ev["feature"] != gt["labels"]["feature"]]
    assert share(_window(others, gt, True)) == 0
    drifted = [ev for ev in inside if "NovaPay" in orjson.dumps(ev["input"]).decode()]
    normal = [ev for ev in inside if "NovaPay" not in orjson.dumps(ev["input"]).decode()]
    assert statistics.median(ev["usage"]["input_tokens"] for ev in drifted) > 1.3 * statistics.median(
        ev["usage"]["input_tokens"] for ev in normal
    )


def test_quality_drop(day_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]) -> None:
    gt = truth["quality_drop"]
    target = _slice(day_events, app=gt["labels"]["app"], feature=gt["labels"]["feature"], operation="chat")
    inside, outside = _window(target, gt, True), _window(target, gt, False)
    assert {ev["prompt_version"] for ev in inside} == {gt["labels"]["prompt_version"]}
    assert gt["labels"]["prompt_version"] not in {ev["prompt_version"] for ev in outside}
    ok_inside = [ev for ev in inside if ev["status"] == "ok"]
    bad = [ev for ev in ok_inside if ev["metadata"].get("sim_quality") == "bad"]
    assert 0.5 < len(bad) / len(ok_inside) < 0.7
    inside_ids = {ev["event_id"] for ev in inside}
    assert not any("sim_quality" in ev["metadata"] for ev in day_events if ev["event_id"] not in inside_ids)

    def visibly_bad(ev: dict[str, Any]) -> bool:
        out = ev["output"]
        return out.startswith("I'm sorry") or not out.rstrip().endswith(("?", ".", "!"))

    bad_in = sum(visibly_bad(ev) for ev in ok_inside) / len(ok_inside)
    bad_out = sum(visibly_bad(ev) for ev in outside if ev["status"] == "ok") / len(outside)
    assert bad_in > 0.3 and bad_out < 0.06


def test_runaway_trace(day_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]) -> None:
    gt = truth["runaway_trace"]
    trace = [ev for ev in day_events if ev["trace_id"] == gt["labels"]["trace_id"]]
    chats = [ev for ev in trace if ev["operation"] == "chat"]
    assert len(chats) == int(gt["magnitude"])
    assert all(gt["start"] <= ev["start_time"] < _ts_plus(gt["end"], 2) for ev in trace)
    assert {ev["feature"] for ev in trace} == {gt["labels"]["feature"]}
    finish = collections.Counter(ev["finish_reason"] for ev in chats if ev["status"] == "ok")
    assert finish["tool_calls"] > 0.95 * len(chats) and not finish["stop"]  # the loop never finishes
    sizes = collections.Counter(
        ev["trace_id"] for ev in day_events if ev["trace_id"] != gt["labels"]["trace_id"]
    )
    assert max(sizes.values()) < 40


def test_traffic_absent(
    day_events: list[dict[str, Any]], clean_events: list[dict[str, Any]], truth: dict[str, dict[str, Any]]
) -> None:
    gt = truth["traffic_absent"]
    app = gt["labels"]["app"]
    assert not _window(_slice(day_events, app=app), gt, True)
    assert len(_window(_slice(clean_events, app=app), gt, True)) > 200
    for other in ("support-bot", "code-assistant", "search-rag"):
        if other != app:
            assert len(_window(_slice(day_events, app=other), gt, True)) == len(
                _window(_slice(clean_events, app=other), gt, True)
            )


def test_text_off_keeps_everything_else(day_cfg: SimulationConfig) -> None:
    cfg = day_cfg.model_copy(update={"duration": timedelta(hours=8), "start": MONDAY + timedelta(hours=6)})
    with_text = list(generate(cfg))
    without = list(generate(cfg.model_copy(update={"text": False})))
    assert len(with_text) == len(without)
    for a, b in zip(with_text, without, strict=True):
        assert "input" not in b and "output" not in b
        assert {k: v for k, v in a.items() if k not in ("input", "output")} == b


# ------------------------------------------------------------------------------------------ files


def test_write_simulation(tmp_path: Path) -> None:
    cfg = SimulationConfig(start=MONDAY + timedelta(hours=10), duration=timedelta(hours=4), seed=5)
    summary = write_simulation(cfg, tmp_path / "ev.ndjson.gz", tmp_path / "truth.json")
    lines = gzip.decompress((tmp_path / "ev.ndjson.gz").read_bytes()).splitlines()
    assert len(lines) == summary.events > 0
    events = [orjson.loads(line) for line in lines]
    assert collections.Counter(ev["app"] for ev in events) == summary.per_app
    marked = collections.Counter(
        ev["metadata"]["sim_incident"] for ev in events if "sim_incident" in ev["metadata"]
    )
    assert {k: v for k, v in summary.per_incident.items() if v} == dict(marked)
    # A plain JSON list: the CLI's demo table reads it as such.
    assert orjson.loads((tmp_path / "truth.json").read_bytes()) == ground_truth(cfg)
    assert load_ground_truth(tmp_path / "truth.json") == ground_truth(cfg)
    assert summary.incidents == len(ground_truth(cfg)) == 8
    # Byte-identical files, gzip header included.
    write_simulation(cfg, tmp_path / "again.ndjson.gz", tmp_path / "again.json")
    assert (tmp_path / "again.ndjson.gz").read_bytes() == (tmp_path / "ev.ndjson.gz").read_bytes()
    plain = write_simulation(cfg, tmp_path / "ev.ndjson", tmp_path / "t2.json")
    assert (tmp_path / "ev.ndjson").read_bytes() == b"\n".join(lines) + b"\n"
    assert plain.events == summary.events


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d", timedelta(days=1)),
        ("36h", timedelta(hours=36)),
        ("90m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(days=7)),
        ("1d12h", timedelta(hours=36)),
        ("45s", timedelta(seconds=45)),
        ("3600", timedelta(hours=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1x", "0m", "-1h", "1d foo"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
