"""Deterministic generator of LLM trace events (contract v1) with scheduled incidents and their ground truth.

Traffic is generated hour by hour (in shorter chunks at very high rates). Each hour draws its requests as a
Poisson process whose rate follows a diurnal and weekly curve in each app's local time, expands requests into
the calls of their trace (retrieval + answer, agent loops with tool calls, embeddings + synthesis), draws
tokens, errors and latencies with numpy, applies the incidents active in that hour and turns rows into dicts.

Determinism: every chunk k has its own random streams seeded with (seed, k, stream), so the output depends on
nothing but the config (and the numpy version). Incidents draw from streams of their own and only modify, add
or remove rows, so a run with incidents is byte-identical to the clean run outside the rows they touched.
"""

from __future__ import annotations

import gzip
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from llmpulse.simulate import texts
from llmpulse.simulate.catalog import (
    DEFAULT_MODELS,
    DIURNAL,
    WEEKLY,
    AppProfile,
    FeatureProfile,
    ModelProfile,
    default_apps,
)
from llmpulse.simulate.incidents import (
    Incident,
    default_incidents,
    ground_truth_entry,
    resolved_params,
    rfc3339,
    runaway_trace_id,
    target_has_traffic,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]

DEFAULT_RATE_PER_MINUTE = 60_000 / 1440  # one day at the weekly average ≈ 60,000 events

_MINUTE_MS = 60_000
_MAX_CHUNK_EVENTS = 60_000  # bounds memory: a chunk's columns and their Python lists live at once
_SPILL_MS = 30 * 60_000
_STREAM_BASE = 1
_STREAM_TEXT = 2
_STREAM_INCIDENT = 1000
_STREAM_SCHEDULE = 7
_STREAM_USERS = 99

OP_CHAT, OP_EMBEDDINGS, OP_TOOL, OP_RETRIEVAL = 0, 1, 2, 3
OP_NAMES: tuple[str, ...] = ("chat", "embeddings", "execute_tool", "retrieval")

ERR_NONE, ERR_RATE_LIMIT, ERR_TIMEOUT, ERR_SERVER, ERR_CONTEXT, ERR_FILTER = 0, 1, 2, 3, 4, 5
ERROR_TYPES: tuple[str, ...] = (
    "",
    "rate_limit",
    "timeout",
    "server_error",
    "context_length_exceeded",
    "content_filter",
)
# Baseline mix of error types (rate_limit, timeout, server_error, context_length_exceeded, content_filter).
_ERROR_CUM = np.cumsum([0.40, 0.20, 0.28, 0.07, 0.05])

FIN_NONE, FIN_STOP, FIN_LENGTH, FIN_TOOLS, FIN_FILTER = 0, 1, 2, 3, 4
FINISH_REASONS: tuple[str, ...] = ("", "stop", "length", "tool_calls", "content_filter")

_LANG_CUM = np.cumsum(texts.LANGUAGE_WEIGHTS)
_TOOL_CUM = np.cumsum(texts.TOOL_WEIGHTS) / sum(texts.TOOL_WEIGHTS)
_CONTENT_FILTER_RATE = 0.001
_TAIL_RATE = 0.015  # share of calls hitting a queueing stall (Pareto tail)
_RETRIEVAL_QUERY_MEDIAN = 30.0


def _mix64(x: npt.NDArray[np.uint64]) -> U64:
    """splitmix64 finaliser: a cheap bijective hash for ids derived from (seed, app, user, time bucket)."""
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def parse_duration(text: str) -> timedelta:
    """'1d', '36h', '90m', '7d', '1w', '45s', '1d12h' or a number of seconds."""
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        total = timedelta(seconds=float(s))
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", s)
        if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", "", s).strip():
            raise ValueError(f"invalid duration {text!r}: use e.g. 90m, 36h, 1d, 7d")
        unit = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
        total = timedelta(seconds=sum(float(v) * unit[u] for v, u in parts))
    if total <= timedelta(0):
        raise ValueError(f"duration must be positive: {text!r}")
    return total


class SimulationConfig(BaseModel):
    """What to simulate. `incidents=None` means `default_incidents(start, duration)` unless `clean`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: AwareDatetime
    duration: timedelta = timedelta(days=1)
    seed: int = Field(default=0, ge=0)
    rate_per_minute: float = Field(
        default=DEFAULT_RATE_PER_MINUTE,
        gt=0,
        description="Mean events/min over all apps at the weekly average.",
    )
    apps: Sequence[AppProfile] = Field(default_factory=default_apps)
    models: Sequence[ModelProfile] = DEFAULT_MODELS
    incidents: Sequence[Incident] | None = None
    clean: bool = False
    text: bool = True
    environment: str = "prod"

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        if self.duration <= timedelta(0):
            raise ValueError("duration must be positive")
        if self.clean and self.incidents:
            raise ValueError("clean=True and explicit incidents contradict each other")
        names = [a.name for a in self.apps]
        if not names or len(set(names)) != len(names):
            raise ValueError("apps must be a non-empty list with unique names")
        known = {m.name for m in self.models}
        if len(known) != len(self.models):
            raise ValueError("model names must be unique")
        for app in self.apps:
            for f in app.features:
                missing = [m for m in f.models if m not in known]
                if f.retrieval_model and f.retrieval_model not in known:
                    missing.append(f.retrieval_model)
                if missing:
                    raise ValueError(f"{app.name}/{f.name}: unknown models {missing}; add them to `models`")
        ids = [i.id for i in self.incidents or ()]
        if len(set(ids)) != len(ids):
            raise ValueError("incident ids must be unique")
        for inc in self.incidents or ():
            if not target_has_traffic(inc.labels, self.apps, self.models):
                raise ValueError(f"incident {inc.id}: labels {inc.labels} match no simulated traffic")
        return self

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    def resolved_incidents(self) -> tuple[Incident, ...]:
        if self.clean:
            return ()
        if self.incidents is not None:
            return tuple(self.incidents)
        return tuple(default_incidents(self.start, self.duration, self.apps, self.models))


@dataclass(slots=True)
class _Rows:
    """Structure of arrays, one row per event; every column has the row count as its first dimension."""

    t: F64  # start time in epoch ms; the request's arrival time until trace offsets are applied
    root: I64  # request index within the chunk (-1 for injected rows)
    app: I64
    feat: I64
    op: I64
    model: I64
    step: I64
    last: B
    tool: I64
    user: I64
    session: U64
    trace_hi: U64
    trace_lo: U64
    parent: U64
    span: U64
    eid_hi: U64
    eid_lo: U64
    topic: I64
    lang: I64
    seeds: I64  # (n, 6) text seeds, shared by the calls of one request
    chat_fmt: B
    meta: I64
    in_tok: I64
    out_tok: I64
    cache_read: I64
    cache_create: I64
    reasoning: I64
    err: I64
    finish: I64
    refusal: B
    quality: I64
    drift: B
    fallback: B
    pv: I64
    incident: I64
    z_ttft: F64
    z_speed: F64
    z_net: F64
    z1: F64
    stall: F64
    gap: F64
    lat_mult: F64
    lat: F64
    ttft: F64

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def take(self, idx: Any) -> _Rows:
        return _Rows(*(getattr(self, f.name)[idx] for f in fields(self)))

    @staticmethod
    def concat(parts: Sequence[_Rows]) -> _Rows:
        if len(parts) == 1:
            return parts[0]
        return _Rows(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Rows)))

    @staticmethod
    def skeleton(n: int) -> _Rows:
        zf = np.zeros(n, dtype=np.float64)
        zi = np.zeros(n, dtype=np.int64)
        zu = np.zeros(n, dtype=np.uint64)
        zb = np.zeros(n, dtype=np.bool_)
        cols: dict[str, Any] = {}
        for f in fields(_Rows):
            kind = f.type
            if f.name == "seeds":
                cols[f.name] = np.zeros((n, 6), dtype=np.int64)
            elif kind == "F64":
                cols[f.name] = zf.copy()
            elif kind == "U64":
                cols[f.name] = zu.copy()
            elif kind == "B":
                cols[f.name] = zb.copy()
            else:
                cols[f.name] = zi.copy()
        return _Rows(**cols)


@dataclass
class SimulationStats:
    events: int = 0
    per_app: dict[str, int] = field(default_factory=dict)
    per_incident: dict[str, int] = field(default_factory=dict)  # events carrying the incident marker
    removed_per_incident: dict[str, int] = field(default_factory=dict)  # traffic_absent: calls dropped


@dataclass
class SimulationSummary:
    events: int
    per_app: dict[str, int]
    per_incident: dict[str, int]
    removed_per_incident: dict[str, int]
    incidents: int
    start: str
    end: str
    seed: int
    events_path: Path
    truth_path: Path
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "per_app": self.per_app,
            "per_incident": self.per_incident,
            "removed_per_incident": self.removed_per_incident,
            "incidents": self.incidents,
            "start": self.start,
            "end": self.end,
            "seed": self.seed,
            "events_path": str(self.events_path),
            "truth_path": str(self.truth_path),
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events_per_s, 1),
        }


class Simulation:
    """A configured run: `events()` yields the traffic, `ground_truth` lists the incidents."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.incidents: tuple[Incident, ...] = config.resolved_incidents()
        self.stats = SimulationStats()
        self._start_ms = round(config.start.timestamp() * 1000)
        self._end_ms = round(config.end.timestamp() * 1000)
        # Generated an hour at a time, or in shorter chunks when an hour at peak (~2.5x the average rate)
        # would hold too many events. Derived from the config only, so output stays deterministic.
        minutes = next(
            (m for m in (60, 30, 20, 15, 10, 5, 2) if config.rate_per_minute * m * 2.5 <= _MAX_CHUNK_EVENTS),
            1,
        )
        self._chunk_ms = minutes * _MINUTE_MS
        self._renderer = texts.TextRenderer()
        self._build_models()
        self._build_features()
        self._build_users()
        self._build_incidents()

    # ------------------------------------------------------------------------------------------ tables

    def _build_models(self) -> None:
        ms = self.config.models
        self._m_index = {m.name: i for i, m in enumerate(ms)}
        self._m_name = [m.name for m in ms]
        self._m_provider = [m.provider for m in ms]
        self._m_resp = [m.response_model for m in ms]
        self._m_tps = np.array([m.tokens_per_s for m in ms], dtype=np.float64)
        self._m_ttft = np.array([m.ttft_ms for m in ms], dtype=np.float64)
        self._m_err = np.array([m.error_multiplier for m in ms], dtype=np.float64)
        self._m_has_reason = np.array([m.reasoning_tokens is not None for m in ms], dtype=np.bool_)
        self._m_reason_mu = np.array(
            [math.log(m.reasoning_tokens.median) if m.reasoning_tokens else 0.0 for m in ms], dtype=np.float64
        )
        self._m_reason_sig = np.array(
            [m.reasoning_tokens.sigma if m.reasoning_tokens else 0.0 for m in ms], dtype=np.float64
        )
        self._m_explicit_cache = np.array([m.provider == "anthropic" for m in ms], dtype=np.bool_)

    def _build_features(self) -> None:
        feats: list[tuple[int, AppProfile, FeatureProfile]] = []
        for a, app in enumerate(self.config.apps):
            for f in app.features:
                feats.append((a, app, f))
        self._feats = feats
        gid = {(app.name, f.name): i for i, (_, app, f) in enumerate(feats)}
        self._f_gid = gid
        n = len(feats)

        def arr(values: Sequence[float], dtype: Any = np.float64) -> Any:
            return np.array(values, dtype=dtype)

        self._f_app = arr([a for a, _, _ in feats], np.int64)
        self._f_op = arr(
            [OP_EMBEDDINGS if f.operation == "embeddings" else OP_CHAT for _, _, f in feats], np.int64
        )
        self._f_in_mu = arr([math.log(f.input_tokens.median) for _, _, f in feats])
        self._f_in_sig = arr([f.input_tokens.sigma for _, _, f in feats])
        self._f_in_min = arr([f.input_tokens.min for _, _, f in feats], np.int64)
        self._f_out_mu = arr([math.log(f.output_tokens.median) for _, _, f in feats])
        self._f_out_sig = arr([f.output_tokens.sigma for _, _, f in feats])
        self._f_out_min = arr([f.output_tokens.min for _, _, f in feats], np.int64)
        self._f_max_out = arr([f.effective_max_output_tokens for _, _, f in feats], np.int64)
        self._f_cache_share = arr([f.cache_read_share for _, _, f in feats])
        self._f_cache_prefix = arr([f.cached_prefix_tokens for _, _, f in feats])
        self._f_cache_create = arr([f.cache_creation_share for _, _, f in feats])
        self._f_stream = arr([f.streaming for _, _, f in feats], np.bool_)
        self._f_refusal = arr([f.refusal_rate for _, _, f in feats])
        self._f_err = arr([f.error_rate for _, _, f in feats])
        self._f_chat_share = arr([f.chat_input_share if f.system_prompt else 0.0 for _, _, f in feats])
        self._f_agent = arr([f.max_steps > 1 for _, _, f in feats], np.bool_)
        self._f_step_p = arr([1.0 / f.mean_steps for _, _, f in feats])
        self._f_max_steps = arr([f.max_steps for _, _, f in feats], np.int64)
        self._f_growth = arr([f.step_input_growth for _, _, f in feats])
        self._f_retr_share = arr([f.retrieval_share for _, _, f in feats])
        self._f_retr_model = arr(
            [self._m_index[f.retrieval_model] if f.retrieval_model else -1 for _, _, f in feats], np.int64
        )
        self._f_next = arr(
            [gid[(app.name, f.next_feature)] if f.next_feature else -1 for _, app, f in feats], np.int64
        )
        self._f_timeout = arr([f.timeout_ms for _, _, f in feats])
        self._f_multi = arr([f.multilingual for _, _, f in feats], np.bool_)

        # Model and topic mixes as (values, cumulative weights) per feature.
        self._f_model_mix: list[tuple[I64, F64]] = []
        self._f_topic_mix: list[F64] = []
        self._f_topic_names: list[tuple[str, ...]] = []
        for _, _, f in feats:
            names = list(f.models)
            w = np.array([f.models[x] for x in names], dtype=np.float64)
            self._f_model_mix.append(
                (np.array([self._m_index[x] for x in names], dtype=np.int64), np.cumsum(w) / w.sum())
            )
            domain = texts.TextRenderer.topics_for(f.text_kind)
            tw = np.array(
                [(f.topics or {}).get(t, 0.0) if f.topics else 1.0 for t in domain], dtype=np.float64
            )
            self._f_topic_mix.append(np.cumsum(tw) / tw.sum())
            self._f_topic_names.append(domain)

        # Strings and per-feature constants used when building dicts.
        self._pv_names: list[str] = [""]
        self._f_pv = np.zeros(n, dtype=np.int64)
        for i, (_, _, f) in enumerate(feats):
            if f.prompt_version:
                self._f_pv[i] = self._pv_index(f.prompt_version)
        self._f_name = [f.name for _, _, f in feats]
        self._f_prompt_id = [f.prompt_id for _, _, f in feats]
        self._f_system = [f.system_prompt or "" for _, _, f in feats]
        self._f_tags = [tuple(app.tags) + tuple(f.tags) for _, app, f in feats]
        self._f_meta = [tuple((k, v) for k, v in f.metadata.items() if v) for _, _, f in feats]
        self._f_topic_key = [f.topic_metadata_key for _, _, f in feats]
        self._f_render: list[Callable[..., tuple[str, str]]] = [
            self._renderer.renderer(f.text_kind) for _, _, f in feats
        ]

        # Requests per app: root features and their weights, and expected events per request.
        apps = self.config.apps
        shares = np.array([a.share for a in apps], dtype=np.float64)
        shares = shares / shares.sum()
        self._root_gids: list[I64] = []
        self._root_cum: list[F64] = []
        self._root_rate: list[float] = []
        self._tz_ms: list[int] = []
        for a, app in enumerate(apps):
            g = np.array([gid[(app.name, f.name)] for f in app.features if f.weight > 0], dtype=np.int64)
            w = np.array([f.weight for f in app.features if f.weight > 0], dtype=np.float64)
            w = w / w.sum()
            self._root_gids.append(g)
            self._root_cum.append(np.cumsum(w))
            events_per_request = 0.0
            for gi, wi in zip(g.tolist(), w.tolist(), strict=True):
                p = self._f_step_p[gi]
                cap = int(self._f_max_steps[gi])
                mean_steps = sum((1 - p) ** (k - 1) for k in range(1, cap + 1))
                calls = self._f_retr_share[gi] + 2 * mean_steps - 1 + (1.0 if self._f_next[gi] >= 0 else 0.0)
                events_per_request += wi * calls
            self._root_rate.append(self.config.rate_per_minute * shares[a] / events_per_request)
            self._tz_ms.append(round(app.tz_offset_hours * 3_600_000))

    def _pv_index(self, name: str) -> int:
        if name not in self._pv_names:
            self._pv_names.append(name)
        return self._pv_names.index(name)

    def _build_users(self) -> None:
        seed = self.config.seed
        self._user_cum: list[F64] = []
        self._user_names: list[list[str]] = []
        self._user_region: list[list[str]] = []
        self._user_tier: list[list[str]] = []
        self._user_phase: list[I64] = []
        # More traffic means more users, not busier ones: a user's sessions look the same at any level, so a
        # quiet or busy week does not turn its heaviest users into runaway sessions.
        scale = self.config.rate_per_minute / DEFAULT_RATE_PER_MINUTE
        self._n_users = [max(1, round(app.users * scale)) for app in self.config.apps]
        for a, app in enumerate(self.config.apps):
            users = self._n_users[a]
            # Above the default, the population is the default one repeated: each copy of a user does what the
            # original does at the default rate.
            ranks = (np.arange(users) % app.users).astype(np.float64)
            # Zipf-like with a small offset so the top user is heavy but not half the traffic.
            w = 1.0 / (ranks + 5.0) ** app.zipf_exponent
            self._user_cum.append(np.cumsum(w) / w.sum())
            width = max(5, len(str(users)))
            self._user_names.append([f"{app.user_prefix}{i:0{width}d}" for i in range(users)])
            rng = np.random.default_rng([seed, _STREAM_USERS, a])
            regions = list(app.regions)
            rw = np.array([app.regions[r] for r in regions], dtype=np.float64)
            tiers = list(app.tiers)
            tw = np.array([app.tiers[t] for t in tiers], dtype=np.float64)
            ri = np.searchsorted(np.cumsum(rw) / rw.sum(), rng.random(users), side="right")
            ti = np.searchsorted(np.cumsum(tw) / tw.sum(), rng.random(users), side="right")
            self._user_region.append([regions[min(i, len(regions) - 1)] for i in ri.tolist()])
            self._user_tier.append([tiers[min(i, len(tiers) - 1)] for i in ti.tolist()])
            self._user_phase.append(rng.integers(0, 45 * _MINUTE_MS, users, dtype=np.int64))
        self._seed_salt = int(_mix64(np.array([seed], dtype=np.uint64))[0])

    def _build_incidents(self) -> None:
        cfg = self.config
        self._inc_ids = [i.id for i in self.incidents]
        self._inc_start = [round(i.start.timestamp() * 1000) for i in self.incidents]
        self._inc_end = [round(i.end.timestamp() * 1000) for i in self.incidents]
        self._inc_params = [resolved_params(i, cfg.apps, cfg.models) for i in self.incidents]
        self._inc_pv: list[int] = []
        self._inc_fallback: list[int] = []
        self._inc_fallback_from: list[str] = []
        self._runaway: dict[int, _Rows] = {}
        for idx, inc in enumerate(self.incidents):
            p = self._inc_params[idx]
            self._inc_pv.append(self._pv_index(str(p["prompt_version"])) if inc.kind == "quality_drop" else 0)
            fb = str(p.get("fallback_model", "")) if inc.kind == "provider_outage" else ""
            self._inc_fallback.append(self._m_index.get(fb, -1))
            self._inc_fallback_from.append(inc.labels.get("provider", ""))
            if inc.kind == "runaway_trace":
                self._runaway[idx] = self._plan_runaway(idx, inc)

    def _plan_runaway(self, idx: int, inc: Incident) -> _Rows:
        """An agent that never stops: every call asks for another tool call, with a growing context.

        Planned whole (its own random stream), so it does not depend on how the run is cut into hours.
        """
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, _STREAM_SCHEDULE, idx])
        n = int(inc.magnitude)
        app = next(a for a, x in enumerate(cfg.apps) if x.name == inc.labels["app"])
        feat = self._f_gid[(inc.labels["app"], inc.labels["feature"])]
        model_name = inc.labels.get("model") or next(iter(self._feats[feat][2].models))
        tid = runaway_trace_id(cfg.seed, inc.id)
        r = _Rows.skeleton(2 * n)
        r.root[:] = -1
        r.app[:] = app
        r.feat[:] = feat
        r.op[1::2] = OP_TOOL
        r.model[:] = self._m_index[model_name]
        r.step = np.repeat(np.arange(n, dtype=np.int64), 2)
        r.user[:] = int(rng.integers(0, self._n_users[app]))
        r.session[:] = np.uint64(int(rng.integers(0, 2**63)))
        r.trace_hi[:] = np.uint64(int(tid[:16], 16))
        r.trace_lo[:] = np.uint64(int(tid[16:], 16))
        r.parent[:] = np.uint64(int(rng.integers(0, 2**63)))
        r.seeds[:] = rng.integers(0, 2**31, 6)
        self._draw(r, rng)
        r.tool[1::2] = r.tool[0::2]
        r.incident[:] = idx
        self._latency(r)
        # Sequential: each call starts when the previous one (and its tool run) is done. If that takes
        # longer than the window, the loop is squeezed into it, so the ground-truth window holds every call.
        d = r.lat + r.gap
        offsets = np.cumsum(d) - d
        window = self._inc_end[idx] - self._inc_start[idx]
        total = float(offsets[-1] + d[-1]) if n else 0.0
        if total > window:
            offsets = offsets * (0.995 * window / total)
        r.t = self._inc_start[idx] + offsets
        return r

    # ------------------------------------------------------------------------------------- generation

    def _arrivals(self, rng: np.random.Generator, t0: int, t1: int) -> tuple[F64, I64]:
        n_min = -(-(t1 - t0) // _MINUTE_MS)
        m_start = t0 + np.arange(n_min, dtype=np.int64) * _MINUTE_MS
        span = np.minimum(_MINUTE_MS, t1 - m_start).astype(np.float64)
        level = rng.lognormal(0.0, 0.06, len(self.config.apps))  # chunk-to-chunk wobble per app
        times: list[F64] = []
        apps: list[I64] = []
        for a in range(len(self.config.apps)):
            local_min = (m_start + self._tz_ms[a]) // _MINUTE_MS
            day = (local_min // 1440 + 3) % 7  # 1970-01-01 was a Thursday
            lam = (
                self._root_rate[a] * DIURNAL[local_min % 1440] * WEEKLY[day] * level[a] * (span / _MINUTE_MS)
            )
            counts = rng.poisson(lam)
            total = int(counts.sum())
            t = np.repeat(m_start.astype(np.float64), counts) + rng.random(total) * np.repeat(span, counts)
            times.append(t)
            apps.append(np.full(total, a, dtype=np.int64))
        return np.concatenate(times), np.concatenate(apps)

    def _pick(self, groups: I64, u: F64, mixes: Sequence[tuple[I64, F64]]) -> I64:
        out = np.zeros(len(u), dtype=np.int64)
        for g in np.unique(groups).tolist():
            mask = groups == g
            values, cum = mixes[g]
            out[mask] = values[np.minimum(np.searchsorted(cum, u[mask], side="right"), len(values) - 1)]
        return out

    def _requests(self, k: int, t0: int, t1: int) -> tuple[_Rows, int]:
        """The chunk's requests expanded into their calls, with all random attributes drawn."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, k, _STREAM_BASE])
        t_root, app_root = self._arrivals(rng, t0, t1)
        n = len(t_root)
        u = rng.random((n, 7))
        feat = np.zeros(n, dtype=np.int64)
        user = np.zeros(n, dtype=np.int64)
        for a in range(len(cfg.apps)):
            mask = app_root == a
            g, cum = self._root_gids[a], self._root_cum[a]
            feat[mask] = g[np.minimum(np.searchsorted(cum, u[mask, 0], side="right"), len(g) - 1)]
            ucum = self._user_cum[a]
            user[mask] = np.minimum(np.searchsorted(ucum, u[mask, 1], side="right"), len(ucum) - 1)
        model_root = self._pick(feat, u[:, 2], self._f_model_mix)
        topic_mixes = [(np.arange(len(c), dtype=np.int64), c) for c in self._f_topic_mix]
        topic = self._pick(feat, u[:, 3], topic_mixes)
        lang = np.where(
            self._f_multi[feat], np.searchsorted(_LANG_CUM, u[:, 4] * _LANG_CUM[-1], side="right"), 0
        )
        lang = np.minimum(lang, len(texts.LANGUAGES) - 1)
        pre = (u[:, 5] < self._f_retr_share[feat]).astype(np.int64)
        steps = np.where(
            self._f_agent[feat],
            np.minimum(rng.geometric(self._f_step_p[feat]), self._f_max_steps[feat]),
            1,
        ).astype(np.int64)
        nxt = self._f_next[feat]
        has_next = nxt >= 0
        model_next = np.full(n, -1, dtype=np.int64)
        if has_next.any():
            model_next[has_next] = self._pick(nxt[has_next], u[has_next, 6], self._f_model_mix)
        ids = rng.bit_generator.random_raw(3 * n).reshape(n, 3) if n else np.zeros((0, 3), np.uint64)
        if cfg.text:
            rng_text = np.random.default_rng([cfg.seed, k, _STREAM_TEXT])
            seeds = rng_text.integers(0, 2**31, (n, 6), dtype=np.int64)
        else:
            seeds = np.zeros((n, 6), dtype=np.int64)
        session = self._sessions(app_root, user, t_root)

        # Expand each request into its calls: [retrieval] + chat (tool chat)*steps + [next feature].
        core = 2 * steps - 1
        count = pre + core + has_next.astype(np.int64)
        idx = np.repeat(np.arange(n, dtype=np.int64), count)
        starts = np.cumsum(count) - count
        pos = np.arange(len(idx), dtype=np.int64) - starts[idx]
        q = pos - pre[idx]
        is_pre = q < 0
        is_next = q >= core[idx]
        is_core = ~is_pre & ~is_next
        is_tool = is_core & (q % 2 == 1)
        f_row = np.where(is_next, nxt[idx], feat[idx])
        rows = _Rows.skeleton(len(idx))
        rows.t = t_root[idx]
        rows.root = idx
        rows.app = app_root[idx]
        rows.feat = f_row
        rows.op = np.where(is_pre, OP_RETRIEVAL, np.where(is_tool, OP_TOOL, self._f_op[f_row]))
        rows.model = np.where(
            is_pre, self._f_retr_model[feat[idx]], np.where(is_next, model_next[idx], model_root[idx])
        )
        rows.step = np.where(is_core, q // 2, 0)
        rows.last = ~is_core | (q == core[idx] - 1)
        rows.user = user[idx]
        rows.session = session[idx]
        rows.trace_hi = ids[idx, 0]
        rows.trace_lo = ids[idx, 1]
        rows.parent = ids[idx, 2]
        rows.topic = topic[idx]
        rows.lang = lang[idx]
        rows.seeds = seeds[idx]
        self._draw(rows, rng)
        # A tool call executes the tool its preceding chat step asked for.
        tool_rows = np.flatnonzero(is_tool)
        rows.tool[tool_rows] = rows.tool[tool_rows - 1]
        return rows, n

    def _sessions(self, app: I64, user: I64, t: F64) -> U64:
        phase = np.zeros(len(t), dtype=np.int64)
        for a in range(len(self.config.apps)):
            mask = app == a
            phase[mask] = self._user_phase[a][user[mask]]
        # A session is a user's activity in a 45-minute bucket (shifted per user so they don't all roll over
        # at once).
        bucket = (t.astype(np.int64) + phase) // (45 * _MINUTE_MS)
        key = (
            (app.astype(np.uint64) << np.uint64(56))
            ^ (user.astype(np.uint64) << np.uint64(24))
            ^ bucket.astype(np.uint64)
            ^ np.uint64(self._seed_salt)
        )
        return _mix64(key)

    def _draw(self, r: _Rows, rng: np.random.Generator) -> None:
        """Tokens, errors, finish reasons, noise and ids of rows whose feature, op and model are set."""
        n = len(r)
        feat, op, model = r.feat, r.op, r.model
        z = rng.standard_normal((n, 8))
        u = rng.random((n, 10))
        pareto = rng.pareto(1.5, n)
        r.meta = rng.integers(0, 2**31, n, dtype=np.int64)
        ids = rng.bit_generator.random_raw(3 * n).reshape(n, 3) if n else np.zeros((0, 3), np.uint64)
        r.span, r.eid_hi, r.eid_lo = ids[:, 0].copy(), ids[:, 1].copy(), ids[:, 2].copy()
        r.tool = np.minimum(np.searchsorted(_TOOL_CUM, u[:, 9], side="right"), len(texts.TOOLS) - 1)

        is_chat = op == OP_CHAT
        is_tool = op == OP_TOOL
        is_retr = op == OP_RETRIEVAL
        growth = 1.0 + self._f_growth[feat] * np.minimum(r.step, 20)
        in_raw = np.exp(self._f_in_mu[feat] + self._f_in_sig[feat] * z[:, 0]) * growth
        in_raw = np.where(is_retr, _RETRIEVAL_QUERY_MEDIAN * np.exp(0.45 * z[:, 0]), in_raw)
        in_tok = np.maximum(np.rint(in_raw).astype(np.int64), np.where(is_retr, 3, self._f_in_min[feat]))
        in_tok[is_tool] = 0

        out_raw = np.rint(np.exp(self._f_out_mu[feat] + self._f_out_sig[feat] * z[:, 1])).astype(np.int64)
        out_raw = np.maximum(out_raw, self._f_out_min[feat])
        cap = self._f_max_out[feat]
        hit_cap = is_chat & (out_raw >= cap)
        out_tok = np.where(is_chat, np.minimum(out_raw, cap), 0)
        reasoning = np.where(
            is_chat & self._m_has_reason[model],
            np.rint(np.exp(self._m_reason_mu[model] + self._m_reason_sig[model] * z[:, 2])),
            0,
        ).astype(np.int64)
        out_tok = out_tok + reasoning

        cached = is_chat & (u[:, 0] < self._f_cache_share[feat])
        prefix = np.floor(self._f_cache_prefix[feat] * (1.0 + 0.5 * u[:, 1]) / 64.0).astype(np.int64) * 64
        prefix = np.where(cached, np.minimum(prefix, np.maximum(in_tok - 16, 0)), 0)
        create = (
            cached
            & self._m_explicit_cache[model]
            & (u[:, 2] < self._f_cache_create[feat] / np.maximum(self._f_cache_share[feat], 1e-9))
        )
        cache_create = np.where(create, prefix, 0)
        cache_read = np.where(create, 0, prefix)

        err_p = self._f_err[feat] * self._m_err[model]
        failed = ~is_tool & (u[:, 3] < err_p)
        etype = np.minimum(np.searchsorted(_ERROR_CUM, u[:, 4] * _ERROR_CUM[-1], side="right"), 4) + 1
        # Embedding and retrieval calls do not hit context or content limits in practice.
        etype = np.where(~is_chat & (etype >= ERR_CONTEXT), ERR_RATE_LIMIT, etype)
        err = np.where(failed, etype, ERR_NONE)

        ok_chat = is_chat & ~failed
        finish = np.where(ok_chat, FIN_STOP, FIN_NONE)
        finish = np.where(ok_chat & hit_cap, FIN_LENGTH, finish)
        finish = np.where(ok_chat & self._f_agent[feat] & ~r.last, FIN_TOOLS, finish)
        finish = np.where(ok_chat & (u[:, 5] < _CONTENT_FILTER_RATE), FIN_FILTER, finish)
        refusal = ok_chat & (finish == FIN_STOP) & (u[:, 6] < self._f_refusal[feat])
        out_tok = np.where(refusal, reasoning + 8 + (u[:, 7] * 6).astype(np.int64), out_tok)

        r.in_tok = in_tok
        r.out_tok = np.where(failed, 0, out_tok)
        r.reasoning = np.where(failed, 0, reasoning)
        r.cache_read = np.where(failed, 0, cache_read)
        r.cache_create = np.where(failed, 0, cache_create)
        r.err = err
        r.finish = finish
        r.refusal = refusal
        r.chat_fmt = is_chat & (u[:, 8] < self._f_chat_share[feat])
        r.quality = np.zeros(n, dtype=np.int64)
        r.drift = np.zeros(n, dtype=np.bool_)
        r.fallback = np.zeros(n, dtype=np.bool_)
        r.pv = self._f_pv[feat]
        r.incident = np.full(n, -1, dtype=np.int64)
        r.z_ttft = np.exp(0.35 * z[:, 3])
        r.z_speed = np.exp(0.2 * z[:, 4])
        r.z_net = np.exp(math.log(35.0) + 0.5 * z[:, 5])
        r.z1 = z[:, 6]
        # Pareto queueing stalls, bounded so a successful call still fits in the client timeout.
        stall = np.minimum(self._m_ttft[model] * (1.0 + pareto) * 2.0, 0.4 * self._f_timeout[feat])
        r.stall = np.where(u[:, 7] < _TAIL_RATE, stall, 0.0)
        r.gap = np.exp(math.log(40.0) + 0.6 * z[:, 7])
        r.lat_mult = np.ones(n, dtype=np.float64)

    def _latency(self, r: _Rows) -> None:
        """Latency and TTFT from tokens, model speed and the drawn noise (incidents may have changed them)."""
        m, feat, op, err = r.model, r.feat, r.op, r.err
        tps = self._m_tps[m] * r.z_speed
        ok = err == ERR_NONE
        ttft = self._m_ttft[m] * r.z_ttft * (1.0 + r.in_tok / 40_000.0) + r.reasoning / tps * 1000.0 + r.stall
        lat_chat = ttft + (r.out_tok - r.reasoning) / tps * 1000.0 + r.z_net
        lat_embed = 15.0 + r.in_tok * 0.01 + r.z_net * 1.2 + r.stall * 0.1
        lat_embed = np.where(op == OP_RETRIEVAL, lat_embed + 25.0 * r.z_ttft, lat_embed)
        lat_tool = np.minimum(np.exp(math.log(700.0) + 1.1 * r.z1), 60_000.0)
        lat_ok = np.where(op == OP_CHAT, lat_chat, np.where(op == OP_TOOL, lat_tool, lat_embed))
        z1 = r.z1
        lat_err = np.select(
            [err == ERR_RATE_LIMIT, err == ERR_TIMEOUT, err == ERR_SERVER, err == ERR_CONTEXT],
            [
                np.exp(math.log(150.0) + 0.6 * z1),
                self._f_timeout[feat] + 200.0 * np.abs(z1),
                np.minimum(np.exp(math.log(1100.0) + 0.9 * z1), 30_000.0),
                np.exp(math.log(200.0) + 0.4 * z1),
            ],
            np.exp(math.log(700.0) + 0.5 * z1),
        )
        # A call slower than the client timeout cannot succeed; clip rather than turn it into an error so a
        # latency incident does not also show up as an error-rate incident.
        lat = np.where(ok, np.minimum(lat_ok * r.lat_mult, self._f_timeout[feat]), lat_err)
        show_ttft = ok & (op == OP_CHAT) & self._f_stream[feat]
        r.lat = np.round(lat, 2)
        r.ttft = np.where(show_ttft, np.round(np.minimum(ttft * r.lat_mult, lat), 2), np.nan)

    def _chunk(self, k: int) -> _Rows:
        t0 = self._start_ms + k * self._chunk_ms
        t1 = min(t0 + self._chunk_ms, self._end_ms)
        rows, n_req = self._requests(k, t0, t1)
        # Calls of a request can start up to minutes after it arrived; the slack lets an incident that begins
        # just after this chunk still act on them.
        active = [
            i
            for i in range(len(self.incidents))
            if self._inc_start[i] < t1 + _SPILL_MS and self._inc_end[i] > t0
        ]
        rngs = {i: np.random.default_rng([self.config.seed, k, _STREAM_INCIDENT + i]) for i in active}
        failed_by: dict[int, I64] = {}
        for i in active:
            self._apply(i, rows, rngs[i], n_req, failed_by)
        self._latency(rows)
        # Calls of one request run one after another: offset = sum of earlier latencies and gaps.
        d = rows.lat + rows.gap
        c = np.cumsum(d) - d
        if len(rows):
            first = np.searchsorted(rows.root, np.arange(n_req), side="left")
            rows.t = rows.t + (c - c[first][rows.root])
        parts = [rows]
        for i, failed in failed_by.items():
            parts.append(self._fallbacks(i, rows, failed, rngs[i]))
        for i in active:
            if i in self._runaway:
                planned = self._runaway[i]
                parts.append(planned.take((planned.t >= t0) & (planned.t < t1)))
        out = _Rows.concat(parts)
        for i in active:
            if self.incidents[i].kind == "traffic_absent":
                # By the calls' own start times, so no call of the slice starts inside the window.
                gone = self._match(i, out) & (rngs[i].random(len(out)) < self.incidents[i].magnitude)
                if gone.any():
                    key = self._inc_ids[i]
                    self.stats.removed_per_incident[key] = self.stats.removed_per_incident.get(key, 0) + int(
                        gone.sum()
                    )
                    out = out.take(~gone)
        return out

    def _match(self, i: int, r: _Rows) -> B:
        inc = self.incidents[i]
        mask = (r.t >= self._inc_start[i]) & (r.t < self._inc_end[i])
        labels = inc.labels
        if "app" in labels:
            a = next((j for j, x in enumerate(self.config.apps) if x.name == labels["app"]), -1)
            mask &= r.app == a
        if "feature" in labels:
            gids = [g for (app, f), g in self._f_gid.items() if f == labels["feature"]]
            mask &= np.isin(r.feat, gids)
        if "provider" in labels:
            ms = [j for j, p in enumerate(self._m_provider) if p == labels["provider"]]
            mask &= np.isin(r.model, ms)
        if "model" in labels:
            mask &= r.model == self._m_index.get(labels["model"], -1)
        return mask

    def _apply(
        self, i: int, r: _Rows, rng: np.random.Generator, n_req: int, failed_by: dict[int, I64]
    ) -> None:
        """Change the rows an incident touches, before latencies and times are derived from them."""
        inc = self.incidents[i]
        kind = inc.kind
        mag = inc.magnitude
        n = len(r)
        if kind in ("runaway_trace", "traffic_absent") or n == 0:
            return  # they add or remove calls once times are known
        mask = self._match(i, r)
        llm = r.op != OP_TOOL
        u = rng.random(n)
        if kind == "cost_spike":
            hit = mask & llm
            for col in ("in_tok", "out_tok", "reasoning"):
                v = getattr(r, col)
                setattr(r, col, np.where(hit, np.rint(v * mag).astype(np.int64), v))
            r.incident[hit] = i
        elif kind == "latency_regression":
            hit = mask & llm & (r.err == ERR_NONE)
            r.lat_mult = np.where(hit, mag * np.exp(0.08 * rng.standard_normal(n)), r.lat_mult)
            r.incident[hit] = i
        elif kind == "provider_outage":
            hit = mask & llm & (r.err == ERR_NONE) & (u < mag)
            kinds = np.where(rng.random(n) < 0.7, ERR_SERVER, ERR_TIMEOUT)
            self._fail(r, hit, kinds)
            r.incident[hit] = i
            share = float(self._inc_params[i].get("fallback_share", 0.5))
            if self._inc_fallback[i] >= 0:
                failed_by[i] = np.flatnonzero(hit & (rng.random(n) < share))
        elif kind == "error_burst":
            scope = mask & llm
            base = float(np.mean(r.err[scope] != ERR_NONE)) if scope.any() else 0.0
            p = max(0.0, (mag - base) / max(1e-9, 1.0 - base))
            hit = mask & llm & (r.err == ERR_NONE) & (u < p)
            self._fail(r, hit, np.full(n, ERR_RATE_LIMIT, dtype=np.int64))
            r.incident[hit] = i
        elif kind == "input_drift":
            # Decided per request, so retrieval and answer of one request agree on the topic.
            ur = rng.random(max(n_req, 1))
            hit = mask & (r.root >= 0) & (ur[np.maximum(r.root, 0)] < mag)
            scale = float(self._inc_params[i].get("input_scale", 1.5))
            r.drift |= hit
            r.lang = np.where(hit, 0, r.lang)  # the new topic's prompts are English
            r.in_tok = np.where(hit & llm, np.rint(r.in_tok * scale).astype(np.int64), r.in_tok)
            r.incident[hit] = i
        elif kind == "quality_drop":
            hit = mask & llm & (r.op == OP_CHAT)
            r.pv = np.where(hit, self._inc_pv[i], r.pv)
            r.incident[hit] = i
            bad = hit & (r.err == ERR_NONE) & (r.finish != FIN_TOOLS) & (u < mag)
            how = (
                np.searchsorted([0.4, 0.7], rng.random(n), side="right") + 1
            )  # off-topic, truncated, refusal
            r.quality = np.where(bad, how, r.quality)
            trunc = bad & (how == texts.QUALITY_TRUNCATED)
            refuse = bad & (how == texts.QUALITY_REFUSAL)
            r.out_tok = np.where(trunc, np.maximum(1, (r.out_tok * 0.3).astype(np.int64)), r.out_tok)
            r.finish = np.where(trunc, FIN_LENGTH, r.finish)
            r.out_tok = np.where(refuse, r.reasoning + 10, r.out_tok)
            r.finish = np.where(refuse, FIN_STOP, r.finish)

    @staticmethod
    def _fail(r: _Rows, hit: B, kinds: I64) -> None:
        r.err = np.where(hit, kinds, r.err)
        for col in ("out_tok", "reasoning", "cache_read", "cache_create", "finish"):
            v = getattr(r, col)
            setattr(r, col, np.where(hit, 0, v))
        r.refusal &= ~hit
        r.quality = np.where(hit, 0, r.quality)

    def _fallbacks(self, i: int, rows: _Rows, failed: I64, rng: np.random.Generator) -> _Rows:
        """The app retries a failed call on the fallback model, right after the failure, in the same trace."""
        fb = rows.take(failed)
        tool = fb.tool.copy()
        fb.model = np.full(len(fb), self._inc_fallback[i], dtype=np.int64)
        self._draw(fb, rng)
        fb.tool = tool
        fb.t = rows.t[failed] + rows.lat[failed] + 50.0 + 150.0 * rng.random(len(fb))
        fb.fallback[:] = True
        fb.incident[:] = i
        fb.root[:] = -1
        self._latency(fb)
        return fb

    # ----------------------------------------------------------------------------------------- output

    def events(self) -> Iterator[dict[str, Any]]:
        """All events in start_time order; stats are complete once the iterator is exhausted."""
        self.stats = SimulationStats()
        n_chunks = -(-(self._end_ms - self._start_ms) // self._chunk_ms)
        carry: _Rows | None = None
        for k in range(n_chunks):
            rows = self._chunk(k)
            if carry is not None and len(carry):
                rows = _Rows.concat([carry, rows])
            rows = rows.take(np.argsort(rows.t, kind="stable"))
            t1 = min(self._start_ms + (k + 1) * self._chunk_ms, self._end_ms)
            cut = int(np.searchsorted(rows.t, t1, side="left"))
            carry = rows.take(slice(cut, None))
            yield from self._emit(rows.take(slice(0, cut)))

    @property
    def ground_truth(self) -> list[dict[str, Any]]:
        cfg = self.config
        return [ground_truth_entry(i, cfg.seed, cfg.apps, cfg.models) for i in self.incidents]

    def _count(self, r: _Rows) -> None:
        st = self.stats
        st.events += len(r)
        for a, c in enumerate(np.bincount(r.app, minlength=len(self.config.apps)).tolist()):
            name = self.config.apps[a].name
            st.per_app[name] = st.per_app.get(name, 0) + c
        marked = r.incident[r.incident >= 0]
        if len(marked):
            for i, c in enumerate(np.bincount(marked, minlength=len(self.incidents)).tolist()):
                if c:
                    key = self._inc_ids[i]
                    st.per_incident[key] = st.per_incident.get(key, 0) + c

    def _emit(self, r: _Rows) -> Iterator[dict[str, Any]]:
        n = len(r)
        if n == 0:
            return
        self._count(r)
        text = self.config.text
        env = self.config.environment
        t_ms = np.floor(r.t).astype(np.int64).tolist()
        lat = r.lat.tolist()
        ttft = r.ttft.tolist()
        app, feat, op, model = r.app.tolist(), r.feat.tolist(), r.op.tolist(), r.model.tolist()
        user, step, last, tool = r.user.tolist(), r.step.tolist(), r.last.tolist(), r.tool.tolist()
        sess, th, tl, par, sp = (
            r.session.tolist(),
            r.trace_hi.tolist(),
            r.trace_lo.tolist(),
            r.parent.tolist(),
            r.span.tolist(),
        )
        eh, el = r.eid_hi.tolist(), r.eid_lo.tolist()
        in_tok, out_tok = r.in_tok.tolist(), r.out_tok.tolist()
        c_read, c_create, reason = r.cache_read.tolist(), r.cache_create.tolist(), r.reasoning.tolist()
        err, finish, refusal = r.err.tolist(), r.finish.tolist(), r.refusal.tolist()
        quality, drift, fallback = r.quality.tolist(), r.drift.tolist(), r.fallback.tolist()
        pv, inc, meta, chat_fmt = r.pv.tolist(), r.incident.tolist(), r.meta.tolist(), r.chat_fmt.tolist()
        topic, lang = r.topic.tolist(), r.lang.tolist()
        seeds = r.seeds.tolist() if text else None

        app_names = [a.name for a in self.config.apps]
        app_tags = self._f_tags
        users, regions, tiers = self._user_names, self._user_region, self._user_tier
        f_name, f_pid, f_meta, f_tkey = self._f_name, self._f_prompt_id, self._f_meta, self._f_topic_key
        f_agent = self._f_agent.tolist()
        f_topics, f_system, f_render = self._f_topic_names, self._f_system, self._f_render
        m_name, m_prov, m_resp = self._m_name, self._m_provider, self._m_resp
        pv_names, inc_ids, fb_from = self._pv_names, self._inc_ids, self._inc_fallback_from
        tools = texts.TOOLS
        refusals = [texts.REFUSAL[x] for x in texts.LANGUAGES]
        langs = texts.LANGUAGES
        tool_io = self._renderer.tool_io
        truncate = texts.truncate
        pcache: dict[int, str] = {}

        for i in range(n):
            t = t_ms[i]
            minute, rem = divmod(t, 60_000)
            prefix = pcache.get(minute)
            if prefix is None:
                prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
                pcache[minute] = prefix
            a, f, m, o, e, u = app[i], feat[i], model[i], op[i], err[i], user[i]
            ev: dict[str, Any] = {
                "schema_version": 1,
                "event_id": f"{eh[i]:016x}{el[i]:016x}",
                "trace_id": f"{th[i]:016x}{tl[i]:016x}",
                "span_id": f"{sp[i]:016x}",
                "parent_span_id": f"{par[i]:016x}",
                "app": app_names[a],
                "environment": env,
                "feature": f_name[f],
                "operation": OP_NAMES[o],
                "provider": m_prov[m],
                "model": m_name[m],
            }
            if e == 0 and o != OP_TOOL:
                ev["response_model"] = m_resp[m]
            pid = f_pid[f]
            if pid is not None and o in (OP_CHAT, OP_EMBEDDINGS):
                ev["prompt_id"] = pid
                ev["prompt_version"] = pv_names[pv[i]]
            ev["user_id"] = users[a][u]
            ev["session_id"] = f"sess_{sess[i]:016x}"
            ev["start_time"] = f"{prefix}{rem // 1000:02d}.{rem % 1000:03d}Z"
            ev["latency_ms"] = lat[i]
            if o != OP_TOOL:
                ev["usage"] = {
                    "input_tokens": in_tok[i],
                    "output_tokens": out_tok[i],
                    "cache_read_input_tokens": c_read[i],
                    "cache_creation_input_tokens": c_create[i],
                    "reasoning_output_tokens": reason[i],
                }
            x = ttft[i]
            if x == x:  # not NaN
                ev["ttft_ms"] = x
            if e:
                ev["status"] = "error"
                ev["error_type"] = ERROR_TYPES[e]
            else:
                ev["status"] = "ok"
                fin = finish[i]
                if fin:
                    ev["finish_reason"] = FINISH_REASONS[fin]
            if seeds is not None:
                s = seeds[i]
                if o == OP_TOOL:
                    inp, out = tool_io(tool[i], s, step[i])
                else:
                    inp, out = f_render[f](
                        topic[i], lang[i], s, out_tok[i], step[i], last[i], tool[i], drift[i], quality[i]
                    )
                    if o == OP_RETRIEVAL:
                        tname = f_topics[f][topic[i]]
                        out = f"kb/{tname}/{s[2] % 2000}, kb/{tname}/{s[3] % 2000}, kb/{tname}/{s[4] % 2000}"
                    elif refusal[i] or quality[i] == texts.QUALITY_REFUSAL:
                        out = refusals[lang[i]]
                    elif quality[i] == texts.QUALITY_TRUNCATED:
                        out = truncate(out, 0.4)
                    elif finish[i] == FIN_LENGTH:
                        out = truncate(out, 0.9)
                    elif finish[i] == FIN_FILTER:
                        out = truncate(out, 0.3)
                if chat_fmt[i]:
                    ev["input"] = [
                        {"role": "system", "content": f_system[f]},
                        {"role": "user", "content": inp},
                    ]
                else:
                    ev["input"] = inp
                if e == 0 and o != OP_EMBEDDINGS:
                    ev["output"] = out
            md = {"region": regions[a][u], "tier": tiers[a][u]}
            fm = f_meta[f]
            if fm:
                ms = meta[i]
                for key, vals in fm:
                    md[key] = vals[ms % len(vals)]
                    ms //= 7
            tk = f_tkey[f]
            if tk is not None:
                md[tk] = f_topics[f][topic[i]]
            if f_agent[f]:
                md["agent_step"] = str(step[i])
                if o == OP_TOOL or finish[i] == FIN_TOOLS:
                    md["tool"] = tools[tool[i]]
            if lang[i]:
                md["locale"] = langs[lang[i]]
            if fallback[i]:
                md["fallback_from"] = fb_from[inc[i]]
            j = inc[i]
            if j >= 0:
                md["sim_incident"] = inc_ids[j]
                if quality[i]:
                    md["sim_quality"] = "bad"
            ev["metadata"] = md
            tags = list(app_tags[f])
            if fallback[i]:
                tags.append("fallback")
            ev["tags"] = tags
            yield ev


def generate(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """Events of the run in start_time order, as plain dicts ready for orjson."""
    return Simulation(config).events()


def ground_truth(config: SimulationConfig) -> list[dict[str, Any]]:
    """One entry per incident: id, kind, start, end, labels, magnitude, expected_alertname, ..."""
    return [
        ground_truth_entry(i, config.seed, config.apps, config.models) for i in config.resolved_incidents()
    ]


def load_ground_truth(path: Path) -> list[dict[str, Any]]:
    """Read a ground-truth file written by `write_simulation` (a JSON list, as `ground_truth` returns)."""
    doc = orjson.loads(Path(path).read_bytes())
    incidents: list[dict[str, Any]] = doc["incidents"] if isinstance(doc, dict) else doc
    return incidents


def _open_events(path: Path) -> IO[bytes]:
    raw = path.open("wb")
    if path.suffix == ".gz":
        # mtime=0 and no file name in the header keep the .gz byte-identical across runs.
        return cast(IO[bytes], gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=3, mtime=0))
    return raw


def write_simulation(config: SimulationConfig, events_path: Path, truth_path: Path) -> SimulationSummary:
    """Write events as NDJSON (gzip if the name ends in .gz) and the ground truth as a JSON list."""
    events_path = Path(events_path)
    truth_path = Path(truth_path)
    events_path.parent.mkdir(parents=True, exist_ok=True)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    sim = Simulation(config)
    started = time.perf_counter()
    dumps = orjson.dumps
    opt = orjson.OPT_APPEND_NEWLINE
    fh = _open_events(events_path)
    try:
        batch: list[bytes] = []
        for ev in sim.events():
            batch.append(dumps(ev, option=opt))
            if len(batch) >= 8192:
                fh.write(b"".join(batch))
                batch.clear()
        if batch:
            fh.write(b"".join(batch))
    finally:
        fh.close()
        if isinstance(fh, gzip.GzipFile) and fh.fileobj is not None:
            fh.fileobj.close()
    truth_path.write_bytes(orjson.dumps(ground_truth(config), option=orjson.OPT_INDENT_2) + b"\n")
    elapsed = time.perf_counter() - started
    st = sim.stats
    return SimulationSummary(
        events=st.events,
        per_app=dict(st.per_app),
        per_incident={i: st.per_incident.get(i, 0) for i in sim._inc_ids},
        removed_per_incident=dict(st.removed_per_incident),
        incidents=len(sim.incidents),
        start=rfc3339(config.start),
        end=rfc3339(config.end),
        seed=config.seed,
        events_path=events_path,
        truth_path=truth_path,
        elapsed_s=elapsed,
    )
