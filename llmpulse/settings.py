"""The one typed settings object. Every knob is an env var prefixed LLMPULSE_ (or a line in .env)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMPULSE_", env_file=".env", extra="ignore")

    # Store
    clickhouse_url: str = Field(
        default="chdb://./.llmpulse/data",
        description="chdb://PATH for the embedded engine, http(s)://user:pass@host:8123/db for a server.",
    )
    events_retention_days: int = Field(default=90, ge=1)
    text_retention_days: int = Field(default=30, ge=1, description="Prompt/response texts may expire first.")
    rejected_retention_days: int = Field(default=30, ge=1)

    # Ingest limits
    max_text_bytes: int = Field(default=32 * 1024, ge=256)
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # Batching of inserts
    batch_max_rows: int = Field(default=20_000, ge=1)
    batch_max_seconds: float = Field(default=0.25, gt=0)
    batch_max_pending_rows: int = Field(default=400_000, ge=1, description="Beyond this, ingest answers 503.")
    ingest_workers: int = Field(
        default=2, ge=0, description="Validation worker processes for the HTTP API; 0 validates in the API process."
    )

    # Pricing
    prices_file: Path | None = Field(default=None, description="YAML/JSON list of price overrides.")

    # HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = 8080

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topics: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["llm-events"])
    kafka_group_id: str = "llmpulse-collector"
    kafka_dead_letter_topic: str = "llm-events-dlq"

    @field_validator("kafka_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    # OpenTelemetry (POST /v1/traces; docs/otlp.md). Attribute lists are comma-separated and looked up in
    # order, on the span first and then on its resource; the first non-empty value wins.
    otlp_feature_attributes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["llmpulse.feature", "traceloop.association.properties.feature"],
        description="Span/resource attributes that name the event's feature.",
    )
    otlp_prompt_id_attributes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "llmpulse.prompt_id", "gen_ai.prompt.name", "prompt.id", "traceloop.prompt.key",
        ],
        description="Span/resource attributes that name the prompt (template) used.",
    )
    otlp_prompt_version_attributes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "llmpulse.prompt_version", "gen_ai.prompt.version", "llm.prompt_template.version",
            "traceloop.prompt.version",
        ],
        description="Span/resource attributes that carry the prompt version.",
    )
    otlp_default_app: str = Field(
        default="unknown_service", min_length=1, description="App of spans without a service.name resource."
    )

    @field_validator(
        "otlp_feature_attributes", "otlp_prompt_id_attributes", "otlp_prompt_version_attributes",
        mode="before",
    )
    @classmethod
    def _split_attribute_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [a.strip() for a in value.split(",") if a.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
