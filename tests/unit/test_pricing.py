"""Tests for collector.pricing.

Expected costs are computed by hand from the per-million-token (MTok) prices in the catalog bundled with
genai-prices 0.2.3 (genai_prices/data.py), quoted next to each test. A genai-prices upgrade that changes
one of those prices fails the test on purpose: the hand-computed values must then be re-derived.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from genai_prices import Usage, calc_price
from genai_prices.data import providers
from genai_prices.types import ModelPrice, TieredPrices
from pydantic import ValidationError

from collector import pricing
from collector.pricing import (
    EventCost,
    PriceCatalog,
    PriceOverride,
    PriceSource,
    TokenUsage,
    canonical_provider,
)

AT = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12, abs=1e-18)


def assert_cost(
    cost: EventCost,
    *,
    input_usd: float,
    cache_read_usd: float = 0.0,
    cache_write_usd: float = 0.0,
    output_usd: float,
    reasoning_usd: float = 0.0,
    total_usd: float,
    source: PriceSource = PriceSource.CATALOG,
    matched_model: str | None = None,
) -> None:
    assert cost.source is source
    if matched_model is not None:
        assert cost.matched_model == matched_model
    assert cost.input_usd == approx(input_usd)
    assert cost.cache_read_usd == approx(cache_read_usd)
    assert cost.cache_write_usd == approx(cache_write_usd)
    assert cost.output_usd == approx(output_usd)
    assert cost.reasoning_usd == approx(reasoning_usd)
    assert cost.total_usd == approx(total_usd)


# --- catalog prices, hand-computed ---------------------------------------------------------------------


def test_gpt_4o_with_cached_input(catalog: PriceCatalog) -> None:
    # openai gpt-4o: input $2.5, cache read $1.25, output $10 per MTok.
    # The genai-prices docs example: 1000 input tokens of which 200 cached, 500 output.
    #   uncached 800 * 2.5 / 1e6 = 0.002
    #   cached   200 * 1.25 / 1e6 = 0.00025
    #   output   500 * 10 / 1e6  = 0.005
    #   total                      = 0.00725
    cost = catalog.cost(
        model="gpt-4o-2024-08-06",
        provider="openai",
        usage=TokenUsage(input_tokens=1000, output_tokens=500, cache_read_input_tokens=200),
        at=AT,
    )
    assert_cost(
        cost,
        input_usd=0.002,
        cache_read_usd=0.00025,
        output_usd=0.005,
        total_usd=0.00725,
        matched_model="gpt-4o",
    )


def test_gpt_4o_mini(catalog: PriceCatalog) -> None:
    # openai gpt-4o-mini: input $0.15, cache read $0.075, output $0.6 per MTok.
    #   uncached (10_000 - 4_000) * 0.15 / 1e6 = 0.0009
    #   cached   4_000 * 0.075 / 1e6          = 0.0003
    #   output   2_000 * 0.6 / 1e6            = 0.0012
    #   total                                  = 0.0024
    cost = catalog.cost(
        model="gpt-4o-mini",
        provider=None,
        usage=TokenUsage(input_tokens=10_000, output_tokens=2_000, cache_read_input_tokens=4_000),
        at=AT,
    )
    assert_cost(
        cost,
        input_usd=0.0009,
        cache_read_usd=0.0003,
        output_usd=0.0012,
        total_usd=0.0024,
        matched_model="gpt-4o-mini",
    )


def test_o4_mini_reasoning_tokens_billed_at_output_rate(catalog: PriceCatalog) -> None:
    # openai o4-mini: input $1.1, cache read $0.275, output $4.4 per MTok; no separate reasoning price.
    #   input  2_000 * 1.1 / 1e6            = 0.0022
    #   output 1_500 * 4.4 / 1e6            = 0.0066  (includes the 1_200 reasoning tokens)
    #   reasoning share 1_200 * 4.4 / 1e6   = 0.00528
    #   total                                = 0.0088
    cost = catalog.cost(
        model="o4-mini-2025-04-16",
        provider="openai",
        usage=TokenUsage(input_tokens=2_000, output_tokens=1_500, reasoning_output_tokens=1_200),
        at=AT,
    )
    assert_cost(
        cost,
        input_usd=0.0022,
        output_usd=0.0066,
        reasoning_usd=0.00528,
        total_usd=0.0088,
        matched_model="o4-mini",
    )


def test_o3_price_change_on_start_date(catalog: PriceCatalog) -> None:
    # openai o3 has two prices: unconstrained $10 in / $0.5 cache read / $40 out, and from 2025-06-10
    # (UTC date, StartDateConstraint) $2 in / $0.5 cache read / $8 out.
    usage = TokenUsage(input_tokens=1_000, output_tokens=500, reasoning_output_tokens=300)
    before = catalog.cost(
        model="o3", provider="openai", usage=usage, at=datetime(2025, 6, 9, 23, 59, 59, tzinfo=UTC)
    )
    # 1_000 * 10 / 1e6 = 0.01; 500 * 40 / 1e6 = 0.02 (reasoning 300 * 40 / 1e6 = 0.012); total 0.03
    assert_cost(
        before, input_usd=0.01, output_usd=0.02, reasoning_usd=0.012, total_usd=0.03, matched_model="o3"
    )
    after = catalog.cost(model="o3", provider="openai", usage=usage, at=datetime(2025, 6, 10, tzinfo=UTC))
    # 1_000 * 2 / 1e6 = 0.002; 500 * 8 / 1e6 = 0.004 (reasoning 300 * 8 / 1e6 = 0.0024); total 0.006
    assert_cost(
        after, input_usd=0.002, output_usd=0.004, reasoning_usd=0.0024, total_usd=0.006, matched_model="o3"
    )
    # 2025-06-10 01:00 in UTC+02:00 is still 2025-06-09 in UTC, so the old price applies.
    plus_two = timezone(timedelta(hours=2))
    local = catalog.cost(
        model="o3", provider="openai", usage=usage, at=datetime(2025, 6, 10, 1, tzinfo=plus_two)
    )
    assert local.total_usd == approx(0.03)


def test_claude_3_5_sonnet_cache_read_and_write(catalog: PriceCatalog) -> None:
    # anthropic claude-3-5-sonnet: input $3, cache read $0.3, cache write $3.75, output $15 per MTok.
    # OTel input_tokens = 10_000 includes 4_000 cache reads and 2_000 cache writes.
    #   uncached (10_000 - 4_000 - 2_000) * 3 / 1e6 = 0.012
    #   cache read  4_000 * 0.3 / 1e6              = 0.0012
    #   cache write 2_000 * 3.75 / 1e6             = 0.0075
    #   output      1_000 * 15 / 1e6               = 0.015
    #   total                                       = 0.0357
    cost = catalog.cost(
        model="claude-3-5-sonnet-20241022",
        provider="anthropic",
        usage=TokenUsage(
            input_tokens=10_000,
            output_tokens=1_000,
            cache_read_input_tokens=4_000,
            cache_creation_input_tokens=2_000,
        ),
        at=AT,
    )
    assert_cost(
        cost,
        input_usd=0.012,
        cache_read_usd=0.0012,
        cache_write_usd=0.0075,
        output_usd=0.015,
        total_usd=0.0357,
        matched_model="claude-3-5-sonnet",
    )


def test_claude_sonnet_4_vendor_prefixed_name_without_provider(catalog: PriceCatalog) -> None:
    # "anthropic/claude-sonnet-4" is not in the catalog verbatim; the prefix names the vendor.
    # anthropic claude-sonnet-4-0: input $3, cache read $0.3, cache write $3.75, output $15 per MTok.
    #   uncached (5_000 - 1_000 - 3_000) * 3 / 1e6 = 0.003
    #   cache read 1_000 * 0.3 / 1e6              = 0.0003
    #   cache write 3_000 * 3.75 / 1e6            = 0.01125
    #   output 400 * 15 / 1e6                     = 0.006
    #   total                                      = 0.02055
    cost = catalog.cost(
        model="anthropic/claude-sonnet-4",
        provider=None,
        usage=TokenUsage(
            input_tokens=5_000,
            output_tokens=400,
            cache_read_input_tokens=1_000,
            cache_creation_input_tokens=3_000,
        ),
        at=AT,
    )
    assert_cost(
        cost,
        input_usd=0.003,
        cache_read_usd=0.0003,
        cache_write_usd=0.01125,
        output_usd=0.006,
        total_usd=0.02055,
        matched_model="claude-sonnet-4-0",
    )


def test_claude_on_bedrock_via_otel_provider_name(catalog: PriceCatalog) -> None:
    # aws regional.anthropic.claude-sonnet-4-20250514-v1:0: $3 in, $0.3 read, $3.75 write, $15 out per MTok.
    #   uncached (2_000 - 500 - 500) * 3 / 1e6 = 0.003; read 500 * 0.3 / 1e6 = 0.00015;
    #   write 500 * 3.75 / 1e6 = 0.001875; output 100 * 15 / 1e6 = 0.0015; total 0.006525
    cost = catalog.cost(
        model="us.anthropic.claude-sonnet-4-20250514-v1:0",
        provider="aws.bedrock",
        usage=TokenUsage(
            input_tokens=2_000,
            output_tokens=100,
            cache_read_input_tokens=500,
            cache_creation_input_tokens=500,
        ),
        at=AT,
    )
    assert_cost(
        cost,
        input_usd=0.003,
        cache_read_usd=0.00015,
        cache_write_usd=0.001875,
        output_usd=0.0015,
        total_usd=0.006525,
        matched_model="regional.anthropic.claude-sonnet-4-20250514-v1:0",
    )


def test_gemini_2_5_pro_below_and_above_tier_threshold(catalog: PriceCatalog) -> None:
    # google gemini-2.5-pro, tiered on total input tokens (cliff: above 200_000 the whole request pays the
    # higher rate): input $1.25 → $2.5, cache read $0.125 → $0.25, output $10 → $15 per MTok. No cache
    # write price, so cache writes are billed as input.
    small = catalog.cost(
        model="gemini-2.5-pro",
        provider="gcp.vertex_ai",
        usage=TokenUsage(input_tokens=100_000, output_tokens=2_000, cache_read_input_tokens=20_000),
        at=AT,
    )
    # uncached 80_000 * 1.25 / 1e6 = 0.1; read 20_000 * 0.125 / 1e6 = 0.0025; out 2_000 * 10 / 1e6 = 0.02
    assert_cost(
        small,
        input_usd=0.1,
        cache_read_usd=0.0025,
        output_usd=0.02,
        total_usd=0.1225,
        matched_model="gemini-2.5-pro",
    )

    large = catalog.cost(
        model="gemini-2.5-pro",
        provider="gcp.gemini",
        usage=TokenUsage(
            input_tokens=250_000,
            output_tokens=1_000,
            cache_read_input_tokens=50_000,
            cache_creation_input_tokens=10_000,
        ),
        at=AT,
    )
    # uncached (250_000 - 50_000 - 10_000) * 2.5 / 1e6 = 0.475; read 50_000 * 0.25 / 1e6 = 0.0125;
    # write (input rate) 10_000 * 2.5 / 1e6 = 0.025; out 1_000 * 15 / 1e6 = 0.015; total 0.5275
    assert_cost(
        large,
        input_usd=0.475,
        cache_read_usd=0.0125,
        cache_write_usd=0.025,
        output_usd=0.015,
        total_usd=0.5275,
    )

    # Exactly at the threshold is still the base tier (tiers apply when input > 200_000):
    # 200_000 * 1.25 / 1e6 = 0.25; 1_000 * 10 / 1e6 = 0.01
    at_threshold = catalog.cost(
        model="gemini-2.5-pro", provider="google", usage=TokenUsage(200_000, 1_000), at=AT
    )
    assert at_threshold.total_usd == approx(0.26)
    # One more token switches everything to the upper tier: 200_001 * 2.5 / 1e6 + 1_000 * 15 / 1e6
    above = catalog.cost(model="gemini-2.5-pro", provider="google", usage=TokenUsage(200_001, 1_000), at=AT)
    assert above.total_usd == approx(200_001 * 2.5 / 1e6 + 0.015)


def test_gemini_1_5_pro_tier_at_128k(catalog: PriceCatalog) -> None:
    # google gemini-1.5-pro: input $1.25 → $2.5 and output $5 → $10 per MTok above 128_000 input tokens.
    #   130_000 * 2.5 / 1e6 = 0.325; 2_000 * 10 / 1e6 = 0.02; total 0.345
    cost = catalog.cost(model="gemini-1.5-pro", provider="gemini", usage=TokenUsage(130_000, 2_000), at=AT)
    assert_cost(cost, input_usd=0.325, output_usd=0.02, total_usd=0.345, matched_model="gemini-1.5-pro")


def test_mistral_large(catalog: PriceCatalog) -> None:
    # mistral mistral-large (matches mistral-large-latest): input $2, output $6 per MTok.
    #   3_000 * 2 / 1e6 = 0.006; 1_000 * 6 / 1e6 = 0.006; total 0.012
    cost = catalog.cost(
        model="mistral-large-latest", provider="mistral_ai", usage=TokenUsage(3_000, 1_000), at=AT
    )
    assert_cost(cost, input_usd=0.006, output_usd=0.006, total_usd=0.012, matched_model="mistral-large")


def test_deepseek_chat_peak_and_off_peak(catalog: PriceCatalog) -> None:
    # deepseek deepseek-chat: 00:30-16:30 UTC $0.27 in / $0.07 cache read / $1.1 out per MTok;
    # otherwise (off-peak) $0.135 / $0.035 / $0.55.
    usage = TokenUsage(input_tokens=10_000, output_tokens=1_000, cache_read_input_tokens=2_000)
    peak = catalog.cost(
        model="deepseek-chat", provider="deepseek", usage=usage, at=datetime(2025, 9, 1, 10, tzinfo=UTC)
    )
    # 8_000 * 0.27 / 1e6 = 0.00216; 2_000 * 0.07 / 1e6 = 0.00014; 1_000 * 1.1 / 1e6 = 0.0011; total 0.0034
    assert_cost(
        peak,
        input_usd=0.00216,
        cache_read_usd=0.00014,
        output_usd=0.0011,
        total_usd=0.0034,
        matched_model="deepseek-chat",
    )
    off_peak = catalog.cost(
        model="deepseek-chat", provider="deepseek", usage=usage, at=datetime(2025, 9, 1, 20, tzinfo=UTC)
    )
    # Half of each: 0.00108 + 0.00007 + 0.00055 = 0.0017
    assert_cost(off_peak, input_usd=0.00108, cache_read_usd=0.00007, output_usd=0.00055, total_usd=0.0017)


def test_azure_openai_uses_azure_prices(catalog: PriceCatalog) -> None:
    # "azure.ai.openai" would match genai-prices' OpenAI provider by substring; it must be Azure's entry.
    # azure gpt-4o: input $2.5, cache read $1.25, output $10 per MTok → same arithmetic as the gpt-4o test.
    cost = catalog.cost(
        model="gpt-4o",
        provider="azure.ai.openai",
        usage=TokenUsage(input_tokens=1000, output_tokens=500, cache_read_input_tokens=200),
        at=AT,
    )
    assert cost.total_usd == approx(0.00725)
    assert cost.matched_model == "gpt-4o"


def test_per_request_fee_is_in_total_only(catalog: PriceCatalog) -> None:
    # perplexity sonar: input $1, output $1 per MTok, plus $12 per 1_000 requests.
    #   1_000 * 1 / 1e6 = 0.001; 1_000 * 1 / 1e6 = 0.001; request 12 / 1_000 = 0.012; total 0.014
    cost = catalog.cost(model="sonar", provider="perplexity", usage=TokenUsage(1_000, 1_000), at=AT)
    assert_cost(cost, input_usd=0.001, output_usd=0.001, total_usd=0.014, matched_model="sonar")


# --- sources and precedence ------------------------------------------------------------------------------


def test_unknown_model_is_none_not_zero(catalog: PriceCatalog) -> None:
    cost = catalog.cost(model="my-finetune-v7", provider="openai", usage=TokenUsage(1_000, 1_000), at=AT)
    assert cost == EventCost(None, None, None, None, None, None, PriceSource.UNKNOWN, None)
    assert not catalog.is_known("my-finetune-v7", "openai", AT)
    assert catalog.is_known("gpt-4o", "openai", AT)


def test_self_hosted_provider_is_not_priced_from_catalog(catalog: PriceCatalog) -> None:
    # "gpt-oss-20b" would match OpenAI's catalog by name, but on a local Ollama it costs nothing list-priced.
    cost = catalog.cost(model="gpt-oss-20b", provider="ollama", usage=TokenUsage(1_000, 1_000), at=AT)
    assert cost.source is PriceSource.UNKNOWN
    assert cost.total_usd is None


def test_client_cost_wins(catalog: PriceCatalog) -> None:
    cost = catalog.cost(
        model="gpt-4o", provider="openai", usage=TokenUsage(1000, 500), at=AT, client_cost_usd=0.0123
    )
    assert cost == EventCost(None, None, None, None, None, 0.0123, PriceSource.CLIENT, None)
    # Also for models the catalog doesn't know, and over overrides.
    unknown = catalog.cost(model="mystery", provider=None, usage=TokenUsage(), at=AT, client_cost_usd=0.0)
    assert unknown.source is PriceSource.CLIENT
    assert unknown.total_usd == 0.0
    overridden = PriceCatalog([PriceOverride(model="gpt-4o", input_per_mtok=1, output_per_mtok=1)])
    assert (
        overridden.cost(
            model="gpt-4o", provider="openai", usage=TokenUsage(1, 1), at=AT, client_cost_usd=2.0
        ).source
        is PriceSource.CLIENT
    )


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_invalid_client_cost_is_ignored(catalog: PriceCatalog, bad: float) -> None:
    cost = catalog.cost(
        model="gpt-4o",
        provider="openai",
        usage=TokenUsage(input_tokens=1000, output_tokens=500, cache_read_input_tokens=200),
        at=AT,
        client_cost_usd=bad,
    )
    assert cost.source is PriceSource.CATALOG
    assert cost.total_usd == approx(0.00725)


def test_override_beats_catalog() -> None:
    negotiated = PriceOverride(model="gpt-4o", provider="openai", input_per_mtok=2.0, output_per_mtok=8.0)
    cat = PriceCatalog([negotiated])
    # Cache reads default to the input rate: (800 + 200) * 2 / 1e6 = 0.002; 500 * 8 / 1e6 = 0.004
    cost = cat.cost(
        model="GPT-4o",
        provider="openai",
        usage=TokenUsage(input_tokens=1000, output_tokens=500, cache_read_input_tokens=200),
        at=AT,
    )
    assert_cost(
        cost,
        input_usd=0.0016,
        cache_read_usd=0.0004,
        output_usd=0.004,
        total_usd=0.006,
        source=PriceSource.OVERRIDE,
        matched_model="gpt-4o",
    )
    # The override is provider-specific: another provider still gets the catalog price.
    assert (
        cat.cost(model="gpt-4o", provider="azure", usage=TokenUsage(1, 1), at=AT).source
        is PriceSource.CATALOG
    )


def test_override_effective_dates() -> None:
    switch = datetime(2025, 3, 1, tzinfo=UTC)
    cat = PriceCatalog(
        [
            PriceOverride(
                model="llama-3.1-70b",
                provider="vllm",
                input_per_mtok=0.5,
                output_per_mtok=1.0,
                effective_to=switch,
            ),
            PriceOverride(
                model="llama-3.1-70b",
                provider="vllm",
                input_per_mtok=0.3,
                output_per_mtok=0.6,
                effective_from=switch,
            ),
        ]
    )
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=100_000)
    before = cat.cost(model="llama-3.1-70b", provider="vllm", usage=usage, at=switch - timedelta(seconds=1))
    # 1_000_000 * 0.5 / 1e6 = 0.5; 100_000 * 1.0 / 1e6 = 0.1
    assert_cost(before, input_usd=0.5, output_usd=0.1, total_usd=0.6, source=PriceSource.OVERRIDE)
    # effective_to is exclusive, so the switch instant already has the new price:
    # 1_000_000 * 0.3 / 1e6 = 0.3; 100_000 * 0.6 / 1e6 = 0.06
    at_switch = cat.cost(model="llama-3.1-70b", provider="vllm", usage=usage, at=switch)
    assert_cost(at_switch, input_usd=0.3, output_usd=0.06, total_usd=0.36, source=PriceSource.OVERRIDE)


def test_override_outside_its_interval_falls_back_to_catalog() -> None:
    start = datetime(2025, 10, 1, tzinfo=UTC)
    cat = PriceCatalog(
        [PriceOverride(model="gpt-4o-mini", input_per_mtok=0.1, output_per_mtok=0.4, effective_from=start)]
    )
    usage = TokenUsage(1_000_000, 1_000_000)
    # Catalog: 0.15 + 0.6 = 0.75; override: 0.1 + 0.4 = 0.5
    before = cat.cost(model="gpt-4o-mini", provider="openai", usage=usage, at=start - timedelta(days=1))
    assert (before.source, before.total_usd) == (PriceSource.CATALOG, approx(0.75))
    after = cat.cost(model="gpt-4o-mini", provider="openai", usage=usage, at=start)
    assert (after.source, after.total_usd) == (PriceSource.OVERRIDE, approx(0.5))
    # An override-only model is unknown outside its interval.
    only = PriceCatalog(
        [PriceOverride(model="in-house", input_per_mtok=1, output_per_mtok=1, effective_from=start)]
    )
    assert only.cost(model="in-house", provider=None, usage=usage, at=AT).source is PriceSource.UNKNOWN
    assert not only.is_known("in-house", None, AT)
    assert only.is_known("in-house", None, start)


def test_glob_override_and_specificity() -> None:
    cat = PriceCatalog(
        [
            PriceOverride(model="llama-3*", input_per_mtok=1.0, output_per_mtok=1.0),
            PriceOverride(model="llama-3*", provider="bedrock", input_per_mtok=2.0, output_per_mtok=2.0),
            PriceOverride(model="llama-3.1-8b", input_per_mtok=3.0, output_per_mtok=3.0),
        ],
        use_catalog=False,
    )
    usage = TokenUsage(1_000_000, 0)
    # Glob, any provider, case-insensitive: 1_000_000 * 1.0 / 1e6 = 1.0
    glob = cat.cost(model="Llama-3-70B-Instruct", provider="ollama", usage=usage, at=AT)
    assert (glob.source, glob.matched_model, glob.total_usd) == (
        PriceSource.OVERRIDE,
        "llama-3*",
        approx(1.0),
    )
    # Provider-specific glob beats the any-provider glob; "aws.bedrock" and "bedrock" are the same provider.
    assert cat.cost(model="llama-3-70b", provider="aws.bedrock", usage=usage, at=AT).total_usd == approx(2.0)
    # Exact name beats both globs, even the provider-specific one.
    assert cat.cost(model="llama-3.1-8b", provider="aws.bedrock", usage=usage, at=AT).total_usd == approx(3.0)
    assert cat.cost(model="mistral-7b", provider=None, usage=usage, at=AT).source is PriceSource.UNKNOWN


def test_override_cache_and_reasoning_rates() -> None:
    cat = PriceCatalog(
        [
            PriceOverride(
                model="house-reasoner",
                input_per_mtok=1.0,
                output_per_mtok=4.0,
                cache_read_per_mtok=0.1,
                cache_write_per_mtok=1.25,
                reasoning_per_mtok=2.0,
            )
        ]
    )
    cost = cat.cost(
        model="house-reasoner",
        provider=None,
        usage=TokenUsage(
            input_tokens=1_000_000,
            output_tokens=500_000,
            cache_read_input_tokens=300_000,
            cache_creation_input_tokens=200_000,
            reasoning_output_tokens=200_000,
        ),
        at=AT,
    )
    # uncached 500_000 * 1.0 / 1e6 = 0.5; read 300_000 * 0.1 / 1e6 = 0.03; write 200_000 * 1.25 / 1e6 = 0.25;
    # reasoning 200_000 * 2.0 / 1e6 = 0.4; other output 300_000 * 4.0 / 1e6 = 1.2 → output 1.6; total 2.38
    assert_cost(
        cost,
        input_usd=0.5,
        cache_read_usd=0.03,
        cache_write_usd=0.25,
        output_usd=1.6,
        reasoning_usd=0.4,
        total_usd=2.38,
        source=PriceSource.OVERRIDE,
    )


def test_overlapping_overrides_latest_start_wins() -> None:
    cat = PriceCatalog(
        [
            PriceOverride(model="m", input_per_mtok=1.0, output_per_mtok=0.0),
            PriceOverride(
                model="m",
                input_per_mtok=0.5,
                output_per_mtok=0.0,
                effective_from=datetime(2025, 1, 1, tzinfo=UTC),
            ),
        ]
    )
    usage = TokenUsage(1_000_000, 0)
    assert (
        cat.cost(model="m", provider=None, usage=usage, at=datetime(2024, 6, 1, tzinfo=UTC)).total_usd == 1.0
    )
    assert cat.cost(model="m", provider=None, usage=usage, at=AT).total_usd == 0.5


# --- edge cases --------------------------------------------------------------------------------------------


def test_zero_tokens_on_known_model_is_a_real_zero(catalog: PriceCatalog) -> None:
    cost = catalog.cost(model="gpt-4o", provider="openai", usage=TokenUsage(), at=AT)
    assert cost == EventCost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, PriceSource.CATALOG, "gpt-4o")
    tiered = catalog.cost(model="gemini-2.5-pro", provider="google", usage=TokenUsage(), at=AT)
    assert tiered.total_usd == 0.0
    override = PriceCatalog([PriceOverride(model="x", input_per_mtok=1, output_per_mtok=1)])
    assert override.cost(model="x", provider=None, usage=TokenUsage(), at=AT).total_usd == 0.0


def test_input_smaller_than_cached_is_not_negative(catalog: PriceCatalog) -> None:
    # A client that sent Anthropic-style input_tokens (excluding cache) under OTel semantics:
    # input 100 < cache read 4_000 + cache write 2_000. Uncached clamps to 0; cached tokens still count.
    # claude-3-5-sonnet: read 4_000 * 0.3 / 1e6 = 0.0012; write 2_000 * 3.75 / 1e6 = 0.0075;
    # output 100 * 15 / 1e6 = 0.0015; total 0.0102
    cost = catalog.cost(
        model="claude-3-5-sonnet-20241022",
        provider="anthropic",
        usage=TokenUsage(
            input_tokens=100,
            output_tokens=100,
            cache_read_input_tokens=4_000,
            cache_creation_input_tokens=2_000,
        ),
        at=AT,
    )
    assert_cost(
        cost,
        input_usd=0.0,
        cache_read_usd=0.0012,
        cache_write_usd=0.0075,
        output_usd=0.0015,
        total_usd=0.0102,
    )


def test_reasoning_exceeding_output_and_negative_counts_are_clamped(catalog: PriceCatalog) -> None:
    # o4-mini, reasoning 800 > output 500: output is taken as 800, all reasoning: 800 * 4.4 / 1e6 = 0.00352
    cost = catalog.cost(
        model="o4-mini",
        provider="openai",
        usage=TokenUsage(
            input_tokens=-5, output_tokens=500, cache_read_input_tokens=-3, reasoning_output_tokens=800
        ),
        at=AT,
    )
    assert_cost(cost, input_usd=0.0, output_usd=0.00352, reasoning_usd=0.00352, total_usd=0.00352)


def test_naive_timestamp_is_utc(catalog: PriceCatalog) -> None:
    usage = TokenUsage(1_000, 0)
    # o3 switches from $10 to $2 input per MTok on 2025-06-10 UTC.
    assert catalog.cost(
        model="o3", provider=None, usage=usage, at=datetime(2025, 6, 9, 23, 30)
    ).total_usd == approx(0.01)
    assert catalog.cost(
        model="o3", provider=None, usage=usage, at=datetime(2025, 6, 10, 0, 30)
    ).total_usd == approx(0.002)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("aws.bedrock", "aws"),
        ("azure.ai.openai", "azure"),
        ("az.ai.inference", "azure"),
        ("gcp.vertex_ai", "google"),
        ("gcp.gemini", "google"),
        ("gemini", "google"),
        ("mistral_ai", "mistral"),
        ("x_ai", "x-ai"),
        (" OpenAI ", "openai"),
        ("groq", "groq"),
        ("", None),
        (None, None),
    ],
)
def test_canonical_provider(given: str | None, expected: str | None) -> None:
    assert canonical_provider(given) == expected


def test_x_ai_provider_name(catalog: PriceCatalog) -> None:
    # x-ai grok-3: input $3, output $15 per MTok → 1_000 * 3 / 1e6 + 1_000 * 15 / 1e6 = 0.018
    cost = catalog.cost(model="grok-3", provider="x_ai", usage=TokenUsage(1_000, 1_000), at=AT)
    assert (cost.matched_model, cost.total_usd) == ("grok-3", approx(0.018))


def test_price_override_validation() -> None:
    naive = PriceOverride(model="m", input_per_mtok=1, output_per_mtok=1, effective_from=datetime(2025, 1, 1))
    assert naive.effective_from == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError):
        PriceOverride(
            model="m",
            input_per_mtok=1,
            output_per_mtok=1,
            effective_from=datetime(2025, 2, 1, tzinfo=UTC),
            effective_to=datetime(2025, 1, 1, tzinfo=UTC),
        )
    with pytest.raises(ValidationError):
        PriceOverride(model="m", input_per_mtok=-1, output_per_mtok=1)
    with pytest.raises(ValidationError):
        PriceOverride.model_validate(
            {"model": "m", "input_per_mtok": 1, "output_per_mtok": 1, "input_per_mtoken": 2}
        )


# --- agreement with genai-prices' own calculation ---------------------------------------------------------


def _tier_thresholds(model_price: ModelPrice) -> set[int]:
    return {
        tier.start
        for value in model_price.__dict__.values()
        if isinstance(value, TieredPrices)
        for tier in value.tiers
    }


def test_fast_path_matches_calc_price_for_whole_catalog(catalog: PriceCatalog) -> None:
    """Every catalog model, at dates around price changes and both sides of every tier threshold."""
    timestamps = [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2025, 6, 10, 3, tzinfo=UTC),
        datetime(2026, 11, 1, 20, tzinfo=UTC),
    ]
    checked = 0
    for provider in providers:
        for model in provider.models:
            prices = (
                [model.prices] if isinstance(model.prices, ModelPrice) else [c.prices for c in model.prices]
            )
            thresholds = set().union(*(_tier_thresholds(p) for p in prices))
            totals = sorted({0, 10_000, *thresholds, *(t + 1 for t in thresholds)})
            for at in timestamps:
                for total in totals:
                    cache_read, cache_write, output, reasoning = total // 5, total // 10, 700, 300
                    try:
                        reference = calc_price(
                            Usage(
                                input_tokens=total,
                                cache_read_tokens=cache_read,
                                cache_write_tokens=cache_write,
                                output_tokens=output,
                                output_reasoning_tokens=reasoning,
                            ),
                            model.id,
                            provider_id=provider.id,
                            genai_request_timestamp=at,
                        )
                    except LookupError:
                        continue  # a model id its own match rules don't accept; not reachable by name
                    ours = catalog.cost(
                        model=model.id,
                        provider=provider.id,
                        usage=TokenUsage(total, output, cache_read, cache_write, reasoning),
                        at=at,
                    )
                    assert ours.matched_model == reference.model.id
                    assert ours.total_usd is not None
                    assert ours.input_usd is not None and ours.cache_read_usd is not None
                    assert ours.cache_write_usd is not None
                    where = (provider.id, model.id, at, total)
                    assert ours.total_usd == pytest.approx(
                        float(reference.total_price), rel=1e-9, abs=1e-15
                    ), where
                    assert ours.output_usd == pytest.approx(
                        float(reference.output_price), rel=1e-9, abs=1e-15
                    ), where
                    assert ours.input_usd + ours.cache_read_usd + ours.cache_write_usd == pytest.approx(
                        float(reference.input_price), rel=1e-9, abs=1e-15
                    ), where
                    checked += 1
    assert checked > 5_000


def test_no_catalog_price_needs_the_slow_path(catalog: PriceCatalog) -> None:
    # If genai-prices' pricing ever stops being flat per tier, affected models silently fall back to
    # per-event calc_price (~60 µs); this test makes that visible.
    delegated = []
    for provider in providers:
        for model in provider.models:
            entry = pricing._build_catalog_entry(model)
            tables = [entry.static, *(t for _, t in entry.periods), *entry.tables_by_price_id.values()]
            if any(isinstance(t, pricing._Delegated) for t in tables):
                delegated.append((provider.id, model.id))
    assert delegated == []


def test_delegated_path_agrees_with_fast_path() -> None:
    # The fallback path, exercised directly on a tiered price: gemini-2.5-pro above its threshold.
    model = next(m for p in providers if p.id == "google" for m in p.models if m.id == "gemini-2.5-pro")
    assert isinstance(model.prices, ModelPrice)
    usage = TokenUsage(250_000, 1_000, 50_000, 10_000, 400)
    slow = pricing._cost_delegated(model.prices, usage, model.id)
    fast = PriceCatalog().cost(model="gemini-2.5-pro", provider="google", usage=usage, at=AT)
    assert slow.source is fast.source is PriceSource.CATALOG
    for field in (
        "input_usd",
        "cache_read_usd",
        "cache_write_usd",
        "output_usd",
        "reasoning_usd",
        "total_usd",
    ):
        assert getattr(slow, field) == pytest.approx(getattr(fast, field), rel=1e-12), field
