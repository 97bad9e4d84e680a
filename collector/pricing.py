"""Cost of one LLM call, computed at ingest.

Prices come from user overrides (self-hosted or negotiated prices, with effective dates) and otherwise from
the catalog bundled with the `genai-prices` package. A client-sent cost wins over both.

Token semantics are OpenTelemetry GenAI's: `input_tokens` counts ALL input tokens, including cache reads and
cache writes, and `output_tokens` includes reasoning tokens. genai-prices' `Usage` uses the same nesting
(`input_tokens` ⊇ `cache_read_tokens` + `cache_write_tokens`, `output_tokens` ⊇ `output_reasoning_tokens`),
so counts map one to one; that includes cache *write* tokens, which are priced at the catalog's cache-write
rate rather than dropped.

Performance: `cost()` runs for every ingested event, and genai-prices' `calc_price` takes ~60 µs per call
(Decimal arithmetic and a generic decomposition of usage into priced units). So per (provider, model) we
resolve the catalog entry once and turn each of its `ModelPrice` objects into plain float rates, asking
genai-prices for every rate (`calc_unit_price`, which also picks the tier); within one input-token tier and
one effective-date period a price is linear in the token counts, so the per-event work is a handful of
float multiplications. Every rate table is checked against `ModelPrice.calc_price` when it is built, and a
price whose shape we don't reproduce exactly is priced by genai-prices itself on every call instead.

Resolution of a model name (first hit wins): the event's provider, mapped through `PROVIDER_ALIASES`, with
the name as sent and then without a "vendor/" or "models/" prefix; the provider named by such a prefix;
any provider whose genai-prices model pattern matches the name (so an OpenAI-compatible client reporting
provider "openai" for a Claude model still gets Claude's price). Providers in `SELF_HOSTED_PROVIDERS` are
never catalog-priced. Overrides match the model name as sent (case-insensitively) and never go through
this resolution.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Final, NamedTuple, Protocol

from genai_prices import Usage
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
    calc_unit_price,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = (
    "PROVIDER_ALIASES",
    "SELF_HOSTED_PROVIDERS",
    "EventCost",
    "PriceCatalog",
    "PriceOverride",
    "PriceSource",
    "TokenUsage",
    "canonical_provider",
)


class UsageCounts(Protocol):
    """Anything with the five token counts (TokenUsage, or the event contract's own Usage model)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_input_tokens(self) -> int: ...
    @property
    def cache_creation_input_tokens(self) -> int: ...
    @property
    def reasoning_output_tokens(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one call, OpenTelemetry GenAI semantics (see module docstring)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_output_tokens: int = 0


class PriceSource(StrEnum):
    CATALOG = "catalog"
    OVERRIDE = "override"
    CLIENT = "client"
    UNKNOWN = "unknown"
    """No price: every amount is None, never 0, so unknown models can't pass for free ones."""


class EventCost(NamedTuple):
    """USD cost of one event (a named tuple: built once per event, ~5x cheaper than a frozen dataclass).

    `input_usd + cache_read_usd + cache_write_usd + output_usd` equals `total_usd`, except that `total_usd`
    also includes per-request fees some catalog models charge (e.g. Perplexity Sonar), which are not tokens.

    For `source == CLIENT` only `total_usd` is set: the client's figure is not split into parts, and mixing
    catalog parts with a client total would make the parts disagree with the total.
    """

    input_usd: float | None
    """Uncached input tokens."""
    cache_read_usd: float | None
    cache_write_usd: float | None
    output_usd: float | None
    """All output tokens, reasoning included."""
    reasoning_usd: float | None
    """The part of `output_usd` due to reasoning tokens (already included in `output_usd`)."""
    total_usd: float | None
    source: PriceSource
    matched_model: str | None
    """Catalog model id, or the `model` pattern of the override that priced the event."""


_UNKNOWN_COST: Final = EventCost(None, None, None, None, None, None, PriceSource.UNKNOWN, None)


class PriceOverride(BaseModel):
    """A user-configured price for self-hosted or negotiated models; wins over the catalog while effective.

    Naive `effective_from` / `effective_to` values (e.g. a bare `2025-03-01` in YAML) are taken as UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)
    """Exact model name or an fnmatch pattern (`*`, `?`, `[...]`); matched case-insensitively against the
    model name as the application sent it."""
    provider: str | None = None
    """None matches any provider, including events without one; names are normalised like event providers,
    so `bedrock` also matches events from `aws.bedrock`."""
    input_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    cache_read_per_mtok: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cache_write_per_mtok: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    reasoning_per_mtok: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    """Exclusive."""

    @field_validator("effective_from", "effective_to")
    @classmethod
    def _assume_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _interval_not_empty(self) -> PriceOverride:
        if (
            self.effective_from is not None
            and self.effective_to is not None
            and self.effective_to <= self.effective_from
        ):
            raise ValueError("effective_to must be later than effective_from")
        return self


# OpenTelemetry `gen_ai.provider.name` (and the older `gen_ai.system`) values, plus spellings common in
# SDKs and gateways, mapped to genai-prices provider ids. Names not listed here are still looked up by
# genai-prices' own provider matching (e.g. anything containing "bedrock" is AWS), so this only needs the
# names that matching gets wrong or misses: "azure.ai.openai" would match the OpenAI provider by substring,
# "x_ai" and "fireworks_ai" match nothing.
PROVIDER_ALIASES: Final[dict[str, str]] = {
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "azure_ai": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google_genai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "together_ai": "together",
    "togetherai": "together",
    "fireworks_ai": "fireworks",
    "moonshot": "moonshotai",
    "zhipu": "zhipuai",
    "z_ai": "zai",
    "z.ai": "zai",
}

# Local inference servers: catalog list prices would be fiction for them ("gpt-oss" on Ollama is not
# OpenAI's bill), so only overrides price their events; otherwise they stay UNKNOWN.
SELF_HOSTED_PROVIDERS: Final[frozenset[str]] = frozenset(
    {
        "ollama",
        "vllm",
        "sglang",
        "lmstudio",
        "lm_studio",
        "llama.cpp",
        "llamacpp",
        "llamafile",
        "localai",
        "tgi",
        "triton",
        "local",
        "self-hosted",
        "self_hosted",
        "selfhosted",
    }
)


def canonical_provider(provider: str | None) -> str | None:
    """Event provider name → the id used for matching (genai-prices' id where it differs); None if empty."""
    if provider is None:
        return None
    name = provider.strip().lower()
    if not name:
        return None
    return PROVIDER_ALIASES.get(name, name)


_MTOK: Final = 1_000_000.0
_MTOK_INT: Final = 1_000_000
# Model names come from applications, so the (provider, model) cache is bounded against high cardinality;
# clearing it wholesale is cheap and only costs re-resolution.
_MAX_CACHE_ENTRIES: Final = 50_000
_REL_TOLERANCE: Final = 1e-9


@dataclass(frozen=True, slots=True)
class _Rates:
    """Flat prices valid for one tier and one period: USD per million tokens, per request for the last."""

    input: float
    cache_read: float
    cache_write: float
    output: float
    reasoning: float
    per_request: float


@dataclass(frozen=True, slots=True)
class _TieredRates:
    """`rates[i]` applies when total input tokens exceed exactly `i` of the sorted `thresholds`."""

    thresholds: tuple[int, ...]
    rates: tuple[_Rates, ...]


@dataclass(frozen=True, slots=True)
class _Delegated:
    """A price we don't reproduce with flat rates: genai-prices computes every event itself (slow)."""

    model_price: ModelPrice


_PriceTable = _Rates | _TieredRates | _Delegated


@dataclass(frozen=True, slots=True)
class _CatalogEntry:
    model_id: str
    # Exactly one of these is used, cheapest first: a single price for all time; or start-date periods
    # (`(start_ts, table)`, ascending, mirroring `ModelInfo.get_prices`); or, for time-of-day prices, the
    # model itself, asked per event with tables keyed by id() of the `ModelPrice` it picks.
    static: _PriceTable | None
    periods: tuple[tuple[float, _PriceTable], ...]
    model: ModelInfo | None
    tables_by_price_id: dict[int, _PriceTable]


@dataclass(frozen=True, slots=True)
class _CompiledOverride:
    name: str
    pattern: str
    is_glob: bool
    provider: str | None
    from_ts: float
    to_ts: float
    rates: _Rates
    index: int


@dataclass(frozen=True, slots=True)
class _Resolved:
    overrides: tuple[_CompiledOverride, ...]
    catalog: _CatalogEntry | None


class PriceCatalog:
    """Prices LLM-call events; one instance is meant to live for the collector process.

    The genai-prices snapshot current at construction is used for the instance's lifetime; build a new
    instance to pick up other price data.
    """

    def __init__(self, overrides: Sequence[PriceOverride] = (), *, use_catalog: bool = True) -> None:
        self._use_catalog = use_catalog
        self._providers: list[Provider] = get_snapshot().providers if use_catalog else []
        self._overrides = tuple(_compile_override(ov, i) for i, ov in enumerate(overrides))
        self._resolved: dict[tuple[str | None, str], _Resolved] = {}
        # Shared across (provider, model) keys, as many names resolve to one catalog model; bounded by the
        # catalog's size.
        self._catalog_entries: dict[tuple[str, str], _CatalogEntry] = {}

    def cost(
        self,
        *,
        model: str,
        provider: str | None,
        usage: UsageCounts,
        at: datetime,
        client_cost_usd: float | None = None,
    ) -> EventCost:
        """Cost of one event at time `at` (the call's start; naive datetimes are taken as UTC).

        Precedence: a finite, non-negative `client_cost_usd` → CLIENT; an override effective at `at` →
        OVERRIDE; the genai-prices catalog → CATALOG; otherwise UNKNOWN with every amount None.
        """
        if client_cost_usd is not None and client_cost_usd >= 0 and math.isfinite(client_cost_usd):
            return EventCost(None, None, None, None, None, float(client_cost_usd), PriceSource.CLIENT, None)

        resolved = self._resolved.get((provider, model))
        if resolved is None:
            resolved = self._resolve(provider, model)

        ts = 0.0
        if resolved.overrides:
            ts = _timestamp(at)
            for ov in resolved.overrides:
                if ov.from_ts <= ts < ov.to_ts:
                    return _cost_flat(ov.rates, usage, PriceSource.OVERRIDE, ov.name)

        entry = resolved.catalog
        if entry is None:
            return _UNKNOWN_COST
        table = entry.static
        if table is None:
            table = _select_table(entry, at, ts if resolved.overrides else _timestamp(at))
        if type(table) is _Rates:
            return _cost_flat(table, usage, PriceSource.CATALOG, entry.model_id)
        if type(table) is _TieredRates:
            rates = table.rates[bisect_left(table.thresholds, _total_input(usage))]
            return _cost_flat(rates, usage, PriceSource.CATALOG, entry.model_id)
        assert isinstance(table, _Delegated)
        return _cost_delegated(table.model_price, usage, entry.model_id)

    def is_known(self, model: str, provider: str | None, at: datetime) -> bool:
        """Whether `cost()` would price this model at `at` from an override or the catalog."""
        resolved = self._resolved.get((provider, model))
        if resolved is None:
            resolved = self._resolve(provider, model)
        if resolved.catalog is not None:
            return True
        ts = _timestamp(at)
        return any(ov.from_ts <= ts < ov.to_ts for ov in resolved.overrides)

    def _resolve(self, provider: str | None, model: str) -> _Resolved:
        canon = canonical_provider(provider)
        model_lower = model.strip().lower()
        resolved = _Resolved(
            overrides=self._matching_overrides(canon, model_lower),
            catalog=self._catalog_entry(canon, model_lower) if self._use_catalog else None,
        )
        if len(self._resolved) >= _MAX_CACHE_ENTRIES:
            self._resolved.clear()
        self._resolved[(provider, model)] = resolved
        return resolved

    def _matching_overrides(self, canon: str | None, model_lower: str) -> tuple[_CompiledOverride, ...]:
        ranked: list[tuple[tuple[int, int, int, float, int], _CompiledOverride]] = []
        for ov in self._overrides:
            if ov.provider is not None and ov.provider != canon:
                continue
            if ov.is_glob:
                if not fnmatchcase(model_lower, ov.pattern):
                    continue
            elif model_lower != ov.pattern:
                continue
            # Most specific first: exact name before glob, provider-specific before any-provider, longer
            # glob before shorter; then the latest-starting interval (a newer deal that overlaps an
            # open-ended older one replaces it), then the later config entry.
            rank = (int(ov.is_glob), int(ov.provider is None), -len(ov.pattern), -ov.from_ts, -ov.index)
            ranked.append((rank, ov))
        ranked.sort(key=lambda pair: pair[0])
        return tuple(ov for _, ov in ranked)

    def _catalog_entry(self, canon: str | None, model_lower: str) -> _CatalogEntry | None:
        if not model_lower or canon in SELF_HOSTED_PROVIDERS:
            return None
        found = self._find_model(canon, model_lower)
        if found is None:
            return None
        provider, model = found
        key = (provider.id, model.id)
        entry = self._catalog_entries.get(key)
        if entry is None:
            entry = _build_catalog_entry(model)
            self._catalog_entries[key] = entry
        return entry

    def _find_model(self, canon: str | None, ref: str) -> tuple[Provider, ModelInfo] | None:
        # Mirrors genai-prices' `DataSnapshot.find_provider_model` but without its caches, which are
        # unbounded dicts keyed by the raw model name, and with two fallbacks for names as applications
        # send them: a "vendor/model" or "models/model" prefix, and a provider that doesn't sell the model
        # (an OpenAI-compatible client pointed at another vendor's endpoint).
        providers = self._providers
        tail = ref.rsplit("/", 1)[1] if "/" in ref else None
        refs = (ref,) if tail is None else (ref, tail)

        if canon is not None and (provider := find_provider_by_id(providers, canon)) is not None:
            for candidate in refs:
                if model := provider.find_model(candidate, all_providers=providers):
                    return provider, model

        if tail is not None:
            prefix = ref.split("/", 1)[0]
            hinted = find_provider_by_id(providers, canonical_provider(prefix) or prefix)
            if hinted is not None and (model := hinted.find_model(tail, all_providers=providers)):
                return hinted, model

        for candidate in refs:
            for provider in providers:
                if (
                    provider.model_match is not None
                    and provider.model_match.is_match(candidate)
                    and (model := provider.find_model(candidate, all_providers=providers))
                ):
                    return provider, model
        return None


def _timestamp(at: datetime) -> float:
    # genai-prices treats naive timestamps as UTC; datetime.timestamp() would take them as local time.
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def _total_input(usage: UsageCounts) -> int:
    """Input tokens as priced: never fewer than the cached tokens the client reported."""
    cached = max(usage.cache_read_input_tokens, 0) + max(usage.cache_creation_input_tokens, 0)
    return max(usage.input_tokens, cached)


def _select_table(entry: _CatalogEntry, at: datetime, ts: float) -> _PriceTable:
    if entry.model is not None:
        return entry.tables_by_price_id[id(entry.model.get_prices(at))]
    periods = entry.periods
    # Like `ModelInfo.get_prices`: the last period already started wins; before all of them, the first.
    for start_ts, table in reversed(periods):
        if start_ts <= ts:
            return table
    return periods[0][1]


def _cost_flat(rates: _Rates, usage: UsageCounts, source: PriceSource, name: str) -> EventCost:
    cache_read = usage.cache_read_input_tokens
    cache_write = usage.cache_creation_input_tokens
    if cache_read < 0:
        cache_read = 0
    if cache_write < 0:
        cache_write = 0
    # Bad client data (input smaller than its cached part) clamps uncached input at zero instead of
    # producing a negative cost; the cached tokens are still priced as reported.
    uncached = usage.input_tokens - cache_read - cache_write
    if uncached < 0:
        uncached = 0
    output = usage.output_tokens
    reasoning = usage.reasoning_output_tokens
    if reasoning < 0:
        reasoning = 0
    if output < reasoning:
        output = reasoning

    input_usd = uncached * rates.input / _MTOK
    cache_read_usd = cache_read * rates.cache_read / _MTOK
    cache_write_usd = cache_write * rates.cache_write / _MTOK
    reasoning_usd = reasoning * rates.reasoning / _MTOK
    output_usd = (output - reasoning) * rates.output / _MTOK + reasoning_usd
    total = input_usd + cache_read_usd + cache_write_usd + output_usd + rates.per_request
    return EventCost(
        input_usd, cache_read_usd, cache_write_usd, output_usd, reasoning_usd, total, source, name
    )


def _genai_usage(usage: UsageCounts) -> tuple[Usage, int, int, int, int]:
    """genai-prices `Usage` for our counts (clamped like `_cost_flat`), plus the clamped leaf counts."""
    cache_read = max(usage.cache_read_input_tokens, 0)
    cache_write = max(usage.cache_creation_input_tokens, 0)
    uncached = max(usage.input_tokens - cache_read - cache_write, 0)
    reasoning = max(usage.reasoning_output_tokens, 0)
    output = max(usage.output_tokens, reasoning)
    genai_usage = Usage(
        input_tokens=uncached + cache_read + cache_write,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=output,
        output_reasoning_tokens=reasoning,
    )
    return genai_usage, uncached, cache_read, cache_write, reasoning


def _leaf_price(model_price: ModelPrice, key: str, parent_key: str) -> Decimal | TieredPrices | None:
    # genai-prices prices a token count with its own key if the model has one, else as part of its parent
    # (cache reads at the input rate, reasoning at the output rate).
    price = getattr(model_price, key, None)
    return price if price is not None else getattr(model_price, parent_key, None)


def _cost_delegated(model_price: ModelPrice, usage: UsageCounts, model_id: str) -> EventCost:
    genai_usage, uncached, cache_read, cache_write, reasoning = _genai_usage(usage)
    calc = model_price.calc_price(genai_usage)
    total_input = uncached + cache_read + cache_write

    def part(key: str, parent_key: str, count: int) -> float:
        price = _leaf_price(model_price, key, parent_key)
        return float(calc_unit_price(price, count, total_input, _MTOK_INT))

    return EventCost(
        input_usd=part("input_mtok", "input_mtok", uncached),
        cache_read_usd=part("cache_read_mtok", "input_mtok", cache_read),
        cache_write_usd=part("cache_write_mtok", "input_mtok", cache_write),
        output_usd=float(calc["output_price"]),
        reasoning_usd=part("output_reasoning_mtok", "output_mtok", reasoning),
        total_usd=float(calc["total_price"]),
        source=PriceSource.CATALOG,
        matched_model=model_id,
    )


def _rates_at(model_price: ModelPrice, total_input: int) -> _Rates:
    """Flat rates of `model_price` for events with `total_input` input tokens, each from genai-prices."""

    def rate(key: str, parent_key: str) -> float:
        price = _leaf_price(model_price, key, parent_key)
        return float(calc_unit_price(price, _MTOK_INT, total_input, _MTOK_INT))

    requests = getattr(model_price, "requests_kcount", None)
    return _Rates(
        input=rate("input_mtok", "input_mtok"),
        cache_read=rate("cache_read_mtok", "input_mtok"),
        cache_write=rate("cache_write_mtok", "input_mtok"),
        output=rate("output_mtok", "output_mtok"),
        reasoning=rate("output_reasoning_mtok", "output_mtok"),
        per_request=float(calc_unit_price(requests, 1, total_input, 1_000)),
    )


def _build_table(model_price: ModelPrice) -> _PriceTable:
    thresholds = sorted(
        {
            tier.start
            for value in model_price.__dict__.values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        }
    )
    # genai-prices' tiers are cliffs on total input tokens ("above N tokens, all tokens cost X"), so prices
    # are constant between consecutive thresholds: one flat rate set per interval, computed just above its
    # lower threshold (`calc_unit_price` applies a tier when input > start).
    lows = [0, *(t + 1 for t in thresholds)]
    rates = tuple(_rates_at(model_price, low) for low in lows)
    table: _PriceTable = _TieredRates(tuple(thresholds), rates) if thresholds else rates[0]
    if not _table_matches_genai_prices(model_price, table, lows, thresholds):
        return _Delegated(model_price)
    return table


# Probe usages covering every priced token kind: (input incl. cached, cache read, cache write, output incl.
# reasoning, reasoning), offsets from each tier interval's lower end.
_PROBES: Final = ((1_000, 200, 100, 500, 120), (0, 0, 0, 0, 0), (37_000, 0, 3_000, 2_000, 0))


def _table_matches_genai_prices(
    model_price: ModelPrice, table: _PriceTable, lows: list[int], thresholds: list[int]
) -> bool:
    """Whether our flat rates reproduce genai-prices' own result across tiers (e.g. not if tiers ever
    became progressive, or a price key started to interact with token counts in a way we don't model)."""
    uppers = [*thresholds, None]
    for low, high in zip(lows, uppers, strict=True):
        for extra_input, cache_read, cache_write, output, reasoning in _PROBES:
            total_input = low + extra_input
            if high is not None:
                total_input = min(total_input, high)
            # Keep the probe's cached share inside the input, even at the low edge of the first tier.
            cache_read = min(cache_read, total_input)
            cache_write = min(cache_write, total_input - cache_read)
            usage = TokenUsage(total_input, output, cache_read, cache_write, reasoning)
            if type(table) is _TieredRates:
                rates = table.rates[bisect_left(table.thresholds, total_input)]
            else:
                assert isinstance(table, _Rates)
                rates = table
            ours = _cost_flat(rates, usage, PriceSource.CATALOG, "")
            try:
                theirs = model_price.calc_price(_genai_usage(usage)[0])
            except ValueError:
                return False
            pairs = (
                (ours.total_usd, theirs["total_price"]),
                (
                    (ours.input_usd or 0) + (ours.cache_read_usd or 0) + (ours.cache_write_usd or 0),
                    theirs["input_price"],
                ),
                (ours.output_usd, theirs["output_price"]),
            )
            for mine, reference in pairs:
                if not math.isclose(mine or 0.0, float(reference), rel_tol=_REL_TOLERANCE, abs_tol=1e-15):
                    return False
    return True


def _build_catalog_entry(model: ModelInfo) -> _CatalogEntry:
    prices = model.prices
    if isinstance(prices, ModelPrice):
        return _CatalogEntry(model.id, _build_table(prices), (), None, {})

    tables = {id(cp.prices): _build_table(cp.prices) for cp in prices}
    if all(cp.constraint is None or isinstance(cp.constraint, StartDateConstraint) for cp in prices):
        periods = tuple((_period_start(cp), tables[id(cp.prices)]) for cp in prices)
        if len(periods) == 1:
            # `get_prices` falls back to the first price before any start date, so one price is static.
            return _CatalogEntry(model.id, periods[0][1], (), None, {})
        if periods[-1][0] == -math.inf:
            # An unconstrained last price always wins in `get_prices`.
            return _CatalogEntry(model.id, periods[-1][1], (), None, {})
        return _CatalogEntry(model.id, None, periods, None, {})
    # Time-of-day prices (e.g. DeepSeek off-peak): genai-prices picks the price per event.
    return _CatalogEntry(model.id, None, (), model, tables)


def _period_start(conditional: ConditionalPrice) -> float:
    constraint = conditional.constraint
    if constraint is None:
        return -math.inf
    assert isinstance(constraint, StartDateConstraint)
    # StartDateConstraint is active from the UTC start of its date.
    start = datetime(
        constraint.start_date.year, constraint.start_date.month, constraint.start_date.day, tzinfo=UTC
    )
    return start.timestamp()


def _compile_override(override: PriceOverride, index: int) -> _CompiledOverride:
    pattern = override.model.strip().lower()
    input_rate = override.input_per_mtok
    output_rate = override.output_per_mtok
    rates = _Rates(
        input=input_rate,
        cache_read=input_rate if override.cache_read_per_mtok is None else override.cache_read_per_mtok,
        cache_write=input_rate if override.cache_write_per_mtok is None else override.cache_write_per_mtok,
        output=output_rate,
        reasoning=output_rate if override.reasoning_per_mtok is None else override.reasoning_per_mtok,
        per_request=0.0,
    )
    return _CompiledOverride(
        name=override.model,
        pattern=pattern,
        is_glob=any(ch in pattern for ch in "*?["),
        provider=canonical_provider(override.provider),
        from_ts=-math.inf if override.effective_from is None else override.effective_from.timestamp(),
        to_ts=math.inf if override.effective_to is None else override.effective_to.timestamp(),
        rates=rates,
        index=index,
    )
