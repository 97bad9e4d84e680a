"""Models, apps and features of simulated traffic, with the default catalogue.

Model names are real catalogue names (genai-prices knows them) except one self-hosted fine-tune, so the
"unknown model / no price" path of the pipeline sees traffic too.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmpulse.simulate import texts

Operation = Literal["chat", "embeddings"]


def _diurnal_curve() -> npt.NDArray[np.float64]:
    """Requests per local minute of day, mean 1: quiet at night, late-morning and larger afternoon peaks."""
    h = np.arange(1440, dtype=np.float64) / 60.0
    curve = (
        0.10
        + 0.95 * np.exp(-(((h - 11.0) / 2.6) ** 2))
        + 1.25 * np.exp(-(((h - 15.5) / 3.0) ** 2))
        + 0.35 * np.exp(-(((h - 20.5) / 2.0) ** 2))
    )
    return np.asarray(curve / curve.mean(), dtype=np.float64)


DIURNAL = _diurnal_curve()
# Monday..Sunday, mean 1: weekends are a quarter quieter.
WEEKLY = np.array([1.08, 1.12, 1.12, 1.10, 1.03, 0.75, 0.80], dtype=np.float64)


class TokenDist(BaseModel):
    """Log-normal token count: median and log-space sigma (0.5 ≈ ±65% spread, 1.0 heavy)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    median: float = Field(gt=0)
    sigma: float = Field(ge=0, le=3)
    min: int = Field(default=1, ge=0)


class ModelProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    provider: str
    response_model: str
    tokens_per_s: float = Field(gt=0, description="Decode speed of visible and reasoning tokens.")
    ttft_ms: float = Field(gt=0, description="Median time to first token for a short prompt.")
    context_window: int = 128_000
    error_multiplier: float = Field(default=1.0, ge=0)
    reasoning_tokens: TokenDist | None = Field(
        default=None, description="Hidden reasoning tokens per call (o-series); counted in output_tokens."
    )
    embedding: bool = False


class FeatureProfile(BaseModel):
    """One feature of an app: a prompt, its model mix and its traffic shape."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    weight: float = Field(
        default=1.0,
        ge=0,
        description="Share of the app's requests that start here; 0 = only via next_feature.",
    )
    operation: Operation = "chat"
    models: dict[str, float]
    prompt_id: str | None = None
    prompt_version: str | None = None
    system_prompt: str | None = None
    text_kind: str
    topics: dict[str, float] | None = Field(default=None, description="Topic mix; None = uniform.")
    input_tokens: TokenDist
    output_tokens: TokenDist = TokenDist(median=1, sigma=0, min=0)
    max_output_tokens: int | None = Field(
        default=None, description="max_tokens of the request; None = the ~99th percentile of output_tokens."
    )
    cache_read_share: float = Field(default=0.0, ge=0, le=1)
    cached_prefix_tokens: int = Field(default=0, ge=0)
    cache_creation_share: float = Field(default=0.0, ge=0, le=1)
    streaming: bool = False
    refusal_rate: float = Field(default=0.0, ge=0, le=1)
    error_rate: float = Field(default=0.008, ge=0, le=1)
    chat_input_share: float = Field(default=0.0, ge=0, le=1)
    multilingual: bool = True
    mean_steps: float = Field(default=1.0, ge=1, description="Agent loop: mean LLM calls per request.")
    max_steps: int = Field(default=1, ge=1)
    step_input_growth: float = Field(default=0.0, ge=0, description="Input grows by this share per step.")
    retrieval_share: float = Field(default=0.0, ge=0, le=1, description="Share preceded by a retrieval call.")
    retrieval_model: str | None = None
    next_feature: str | None = Field(default=None, description="Feature called next in the same trace.")
    timeout_ms: float = 30_000.0
    tags: tuple[str, ...] = ()
    metadata: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    topic_metadata_key: str | None = None

    @model_validator(mode="after")
    def _check(self) -> FeatureProfile:
        if not self.models:
            raise ValueError(f"feature {self.name!r} needs at least one model")
        valid = texts.TextRenderer.topics_for(self.text_kind)
        if self.text_kind not in _TEXT_KINDS:
            raise ValueError(f"unknown text_kind {self.text_kind!r}; one of {sorted(_TEXT_KINDS)}")
        for topic in self.topics or {}:
            if topic not in valid:
                raise ValueError(f"topic {topic!r} is not one of {valid} for {self.text_kind}")
        if self.retrieval_share > 0 and not self.retrieval_model:
            raise ValueError(f"feature {self.name!r} has retrieval_share but no retrieval_model")
        return self

    @property
    def effective_max_output_tokens(self) -> int:
        if self.max_output_tokens is not None:
            return self.max_output_tokens
        # ~1% of calls hit the cap (z = 2.33), which is the observed finish_reason="length" rate.
        cap = self.output_tokens.median * math.exp(2.33 * self.output_tokens.sigma)
        return max(1, int(math.ceil(cap / 16.0) * 16))


_TEXT_KINDS = frozenset(
    {
        texts.KIND_SUPPORT_ANSWER,
        texts.KIND_SUPPORT_SUMMARY,
        texts.KIND_SUPPORT_CLASSIFY,
        texts.KIND_CODE_COMPLETE,
        texts.KIND_CODE_EXPLAIN,
        texts.KIND_CODE_AGENT,
        texts.KIND_RAG_QUERY,
        texts.KIND_RAG_ANSWER,
    }
)


class AppProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    share: float = Field(gt=0, description="Share of all events (relative; normalised across apps).")
    tz_offset_hours: float = Field(default=0.0, ge=-12, le=14, description="Where its users live.")
    users: int = Field(default=5000, ge=1)
    user_prefix: str = "u_"
    zipf_exponent: float = Field(default=1.1, gt=0)
    regions: dict[str, float] = Field(default_factory=lambda: {"us-east-1": 1.0})
    tiers: dict[str, float] = Field(default_factory=lambda: {"free": 0.6, "pro": 0.3, "enterprise": 0.1})
    tags: tuple[str, ...] = ()
    features: tuple[FeatureProfile, ...]

    @model_validator(mode="after")
    def _check(self) -> AppProfile:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"app {self.name!r} has duplicate feature names")
        if not any(f.weight > 0 for f in self.features):
            raise ValueError(f"app {self.name!r} has no feature with weight > 0")
        for f in self.features:
            if f.next_feature is not None and f.next_feature not in names:
                raise ValueError(
                    f"feature {f.name!r}: next_feature {f.next_feature!r} is not in app {self.name!r}"
                )
        return self

    def load_factor(self, when: datetime) -> float:
        """Traffic relative to the weekly average at `when` (the diurnal x weekly curve in local time)."""
        local_min = int(when.timestamp() // 60 + round(self.tz_offset_hours * 60))
        return float(DIURNAL[local_min % 1440] * WEEKLY[(local_min // 1440 + 3) % 7])

    def feature(self, name: str) -> FeatureProfile:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)


DEFAULT_MODELS: tuple[ModelProfile, ...] = (
    ModelProfile(
        name="gpt-4o", provider="openai", response_model="gpt-4o-2024-08-06", tokens_per_s=85, ttft_ms=450
    ),
    ModelProfile(
        name="gpt-4o-mini",
        provider="openai",
        response_model="gpt-4o-mini-2024-07-18",
        tokens_per_s=110,
        ttft_ms=350,
    ),
    ModelProfile(
        name="o4-mini",
        provider="openai",
        response_model="o4-mini-2025-04-16",
        tokens_per_s=150,
        ttft_ms=700,
        context_window=200_000,
        reasoning_tokens=TokenDist(median=450, sigma=0.9, min=0),
    ),
    ModelProfile(
        name="claude-sonnet-4-20250514",
        provider="anthropic",
        response_model="claude-sonnet-4-20250514",
        tokens_per_s=65,
        ttft_ms=900,
        context_window=200_000,
        error_multiplier=1.4,
    ),
    ModelProfile(
        name="claude-3-5-haiku-latest",
        provider="anthropic",
        response_model="claude-3-5-haiku-20241022",
        tokens_per_s=95,
        ttft_ms=550,
        context_window=200_000,
        error_multiplier=1.2,
    ),
    ModelProfile(
        name="gemini-2.5-flash",
        provider="google",
        response_model="gemini-2.5-flash",
        tokens_per_s=190,
        ttft_ms=420,
        context_window=1_000_000,
        error_multiplier=0.9,
    ),
    ModelProfile(
        name="mistral-large-latest",
        provider="mistral",
        response_model="mistral-large-2411",
        tokens_per_s=55,
        ttft_ms=500,
        error_multiplier=1.2,
    ),
    ModelProfile(
        name="text-embedding-3-small",
        provider="openai",
        response_model="text-embedding-3-small",
        tokens_per_s=50_000,
        ttft_ms=60,
        context_window=8191,
        error_multiplier=0.4,
        embedding=True,
    ),
    ModelProfile(
        name="acme-llama-70b-ft",
        provider="vllm",
        response_model="acme-llama-70b-ft",
        tokens_per_s=40,
        ttft_ms=250,
        context_window=32_768,
        error_multiplier=1.6,
    ),
)

_REGIONS_US = {"us-east-1": 0.55, "us-west-2": 0.3, "eu-west-1": 0.1, "ap-southeast-1": 0.05}
_REGIONS_EU = {"eu-west-1": 0.5, "eu-central-1": 0.35, "us-east-1": 0.12, "ap-southeast-1": 0.03}
_REGIONS_MIX = {"us-east-1": 0.35, "eu-west-1": 0.35, "ap-southeast-1": 0.2, "us-west-2": 0.1}


def default_apps() -> tuple[AppProfile, ...]:
    """Three apps: a customer-support bot, a coding assistant with an agent, and a docs RAG search."""
    support = AppProfile(
        name="support-bot",
        share=0.45,
        tz_offset_hours=-5.0,
        users=20_000,
        user_prefix="cust_",
        zipf_exponent=1.05,
        regions=_REGIONS_US,
        tiers={"free": 0.55, "pro": 0.35, "enterprise": 0.10},
        tags=("customer-facing",),
        features=(
            FeatureProfile(
                name="answer",
                weight=0.60,
                models={"gpt-4o-mini": 0.7, "claude-3-5-haiku-latest": 0.3},
                prompt_id="support-answer",
                prompt_version="v12",
                system_prompt=(
                    "You are Acme's support assistant. Be friendly and concise, answer in the customer's "
                    "language, and never promise refunds you cannot issue."
                ),
                text_kind=texts.KIND_SUPPORT_ANSWER,
                topics={
                    "billing": 0.22,
                    "login": 0.18,
                    "shipping": 0.20,
                    "refunds": 0.12,
                    "subscription": 0.10,
                    "account": 0.08,
                    "technical": 0.10,
                },
                input_tokens=TokenDist(median=950, sigma=0.45, min=120),
                output_tokens=TokenDist(median=160, sigma=0.55, min=8),
                cache_read_share=0.55,
                cached_prefix_tokens=768,
                cache_creation_share=0.04,
                streaming=True,
                refusal_rate=0.02,
                error_rate=0.008,
                chat_input_share=0.3,
                retrieval_share=0.4,
                retrieval_model="text-embedding-3-small",
                tags=("support", "rag"),
                metadata={"channel": ("web", "web", "mobile-app", "email", "whatsapp")},
            ),
            FeatureProfile(
                name="summarize-ticket",
                weight=0.25,
                models={"gpt-4o": 1.0},
                prompt_id="ticket-summary",
                prompt_version="v4",
                system_prompt="Summarize the support ticket for the next agent in three short sentences.",
                text_kind=texts.KIND_SUPPORT_SUMMARY,
                input_tokens=TokenDist(median=1400, sigma=0.6, min=200),
                output_tokens=TokenDist(median=170, sigma=0.4, min=20),
                refusal_rate=0.005,
                error_rate=0.007,
                tags=("support", "batch"),
                metadata={"channel": ("web", "email", "whatsapp")},
            ),
            FeatureProfile(
                name="classify-intent",
                weight=0.15,
                models={"acme-llama-70b-ft": 1.0},
                prompt_id="intent-classifier",
                prompt_version="v7",
                text_kind=texts.KIND_SUPPORT_CLASSIFY,
                input_tokens=TokenDist(median=230, sigma=0.4, min=30),
                output_tokens=TokenDist(median=14, sigma=0.15, min=6),
                max_output_tokens=32,
                error_rate=0.006,
                timeout_ms=10_000.0,
                tags=("support", "classifier"),
                metadata={"channel": ("web", "web", "mobile-app", "email", "whatsapp")},
            ),
        ),
    )
    code = AppProfile(
        name="code-assistant",
        share=0.30,
        tz_offset_hours=1.0,
        users=3_000,
        user_prefix="dev_",
        zipf_exponent=1.2,
        regions=_REGIONS_EU,
        tiers={"free": 0.3, "pro": 0.5, "enterprise": 0.2},
        tags=("internal-tools",),
        features=(
            FeatureProfile(
                name="complete",
                weight=0.55,
                models={"gemini-2.5-flash": 1.0},
                prompt_id="inline-complete",
                prompt_version="v31",
                text_kind=texts.KIND_CODE_COMPLETE,
                topics={
                    "python": 0.34,
                    "typescript": 0.26,
                    "go": 0.1,
                    "rust": 0.07,
                    "java": 0.1,
                    "sql": 0.08,
                    "bash": 0.05,
                },
                input_tokens=TokenDist(median=700, sigma=0.5, min=50),
                output_tokens=TokenDist(median=55, sigma=0.7, min=1),
                cache_read_share=0.35,
                cached_prefix_tokens=512,
                streaming=True,
                error_rate=0.006,
                multilingual=False,
                timeout_ms=10_000.0,
                tags=("code", "autocomplete"),
                metadata={"ide": ("vscode", "vscode", "jetbrains", "neovim")},
                topic_metadata_key="language",
            ),
            FeatureProfile(
                name="explain",
                weight=0.25,
                models={"claude-sonnet-4-20250514": 1.0},
                prompt_id="code-explain",
                prompt_version="v9",
                system_prompt="You are a senior engineer. Explain code precisely and point out bugs.",
                text_kind=texts.KIND_CODE_EXPLAIN,
                topics={
                    "python": 0.32,
                    "typescript": 0.24,
                    "go": 0.12,
                    "rust": 0.1,
                    "java": 0.1,
                    "sql": 0.07,
                    "bash": 0.05,
                },
                input_tokens=TokenDist(median=650, sigma=0.6, min=40),
                output_tokens=TokenDist(median=340, sigma=0.55, min=20),
                cache_read_share=0.2,
                cached_prefix_tokens=1024,
                cache_creation_share=0.05,
                streaming=True,
                refusal_rate=0.005,
                error_rate=0.008,
                chat_input_share=0.2,
                tags=("code", "chat"),
                metadata={"ide": ("vscode", "vscode", "jetbrains", "neovim")},
                topic_metadata_key="language",
            ),
            FeatureProfile(
                name="agent-step",
                weight=0.20,
                models={"claude-sonnet-4-20250514": 0.8, "o4-mini": 0.2},
                prompt_id="coding-agent",
                prompt_version="v5",
                system_prompt=(
                    "You are an autonomous coding agent. Use the tools to inspect and change the repository; "
                    "finish with a summary when the task is done."
                ),
                text_kind=texts.KIND_CODE_AGENT,
                input_tokens=TokenDist(median=3200, sigma=0.4, min=400),
                output_tokens=TokenDist(median=140, sigma=0.6, min=10),
                cache_read_share=0.8,
                cached_prefix_tokens=2560,
                cache_creation_share=0.08,
                refusal_rate=0.003,
                error_rate=0.01,
                chat_input_share=0.5,
                multilingual=False,
                mean_steps=4.0,
                max_steps=12,
                step_input_growth=0.35,
                timeout_ms=60_000.0,
                tags=("code", "agent"),
                metadata={"ide": ("vscode", "jetbrains", "cli")},
            ),
        ),
    )
    rag = AppProfile(
        name="search-rag",
        share=0.25,
        tz_offset_hours=0.0,
        users=8_000,
        user_prefix="usr_",
        zipf_exponent=1.1,
        regions=_REGIONS_MIX,
        tiers={"free": 0.5, "pro": 0.35, "enterprise": 0.15},
        tags=("docs",),
        features=(
            FeatureProfile(
                name="retrieve",
                weight=1.0,
                operation="embeddings",
                models={"text-embedding-3-small": 1.0},
                text_kind=texts.KIND_RAG_QUERY,
                input_tokens=TokenDist(median=22, sigma=0.45, min=3),
                error_rate=0.004,
                next_feature="synthesize",
                timeout_ms=5_000.0,
                tags=("rag",),
                metadata={"index": ("docs-2026-10",), "top_k": ("8",)},
            ),
            FeatureProfile(
                name="synthesize",
                weight=0.0,
                models={"gemini-2.5-flash": 0.5, "mistral-large-latest": 0.3, "gpt-4o": 0.2},
                prompt_id="docs-answer",
                prompt_version="v3",
                system_prompt=texts.RAG_SYSTEM_PROMPT,
                text_kind=texts.KIND_RAG_ANSWER,
                input_tokens=TokenDist(median=2600, sigma=0.35, min=300),
                output_tokens=TokenDist(median=220, sigma=0.5, min=10),
                cache_read_share=0.3,
                cached_prefix_tokens=384,
                streaming=True,
                refusal_rate=0.015,
                error_rate=0.008,
                chat_input_share=0.6,
                tags=("rag",),
                metadata={"index": ("docs-2026-10",)},
            ),
        ),
    )
    return (support, code, rag)
