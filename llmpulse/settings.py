"""The one typed settings object. Every knob is an env var prefixed LLMPULSE_ (or a line in .env)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def split_comma_list(value: object) -> object:
    """`a, b,c` from an environment variable; lists from code or JSON pass through."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def parse_mapping(value: object, example: str) -> object:
    """`key=value,...` or a JSON object from an environment variable; mappings from code pass through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        return json.loads(text)
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"expected '{example}' or a JSON object")
    return {k.strip(): v.strip() for k, v in pairs}


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

    # ClickHouse TLS (https:// servers; docs/security.md "Transport security")
    clickhouse_password_file: Path | None = Field(
        default=None, description="File holding the ClickHouse password, for a URL without one (Docker/K8s secrets)."
    )
    clickhouse_tls_verify: bool = Field(
        default=True, description="Verify the server's certificate and host name (turn off only to debug)."
    )
    clickhouse_ca_file: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the ClickHouse server's certificate; unset: system CAs."
    )
    clickhouse_client_cert_file: Path | None = Field(default=None, description="Client certificate (PEM) for mTLS.")
    clickhouse_client_key_file: Path | None = Field(default=None, description="Its private key (PEM).")

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
    kafka_client_id: str = "llmpulse-collector"
    kafka_group_instance_id: str | None = Field(
        default=None,
        description="Static membership (KIP-345): a member restarted with the same id takes its partitions back "
        "at once. Unset: llmpulse-<collect|serve>-<hostname>; empty: dynamic membership.",
    )
    kafka_auto_offset_reset: str = Field(default="earliest", pattern="^(earliest|latest)$")
    kafka_topic_encodings: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Message encoding per topic, 'topic=encoding,...' or JSON; others are 'json' events.",
    )
    kafka_batch_max_messages: int = Field(default=20_000, ge=1)
    kafka_batch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    kafka_batch_max_seconds: float = Field(default=1.0, gt=0)
    kafka_max_in_flight_batches: int = Field(default=2, ge=1)
    kafka_poll_timeout_ms: int = Field(default=200, ge=1)
    kafka_max_poll_records: int = Field(default=5_000, ge=1)
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    # A restarted static member is recognised at once; this only bounds how long a member that is gone for
    # good (a crashed host, a scaled-down replica) holds its partitions. Heartbeats run on their own thread.
    kafka_session_timeout_ms: int = Field(default=20_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    kafka_max_partition_fetch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    kafka_check_crcs: bool | None = Field(
        default=None, description="None: only when the crc32c C extension is installed (pure Python is slow)."
    )
    kafka_retry_backoff_s: float = Field(default=0.5, gt=0)
    kafka_retry_backoff_max_s: float = Field(default=30.0, gt=0)
    kafka_revoke_timeout_s: float = Field(default=30.0, gt=0)
    kafka_shutdown_timeout_s: float = Field(default=30.0, gt=0)
    kafka_dead_letter_max_message_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Larger ones are copied truncated (full bytes stay in ClickHouse)."
    )
    kafka_metrics_port: int | None = Field(default=None, description="`llmpulse collect` serves /metrics here.")
    kafka_prepare_workers: int = Field(
        default=2, ge=0,
        description="Processes that decode, validate and price batches while polling goes on; 0: on the poll thread.",
    )
    kafka_prepare_chunk_messages: int = Field(
        default=2_500, ge=1,
        description="Batches reach the prepare workers in chunks of at most this many messages (CPU-cache sized).",
    )

    @field_validator("kafka_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        return split_comma_list(value)

    @field_validator("kafka_topic_encodings", mode="before")
    @classmethod
    def _parse_topic_encodings(cls, value: object) -> object:
        return parse_mapping(value, "topic=encoding,...")

    # Kafka security (docs/kafka.md#security): the same for the consumer, the dead-letter producer and the
    # admin client; combinations are checked at start-up (llmpulse/runtime.py kafka_client_config).
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: str | None = Field(
        default=None, pattern="^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$",
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, description="Or LLMPULSE_KAFKA_SASL_PASSWORD_FILE.")
    kafka_sasl_password_file: Path | None = Field(default=None, description="A file holding the SASL password.")
    kafka_ssl_cafile: Path | None = Field(default=None, description="PEM CA bundle; unset: the system's CAs.")
    kafka_ssl_certfile: Path | None = Field(default=None, description="PEM client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="PEM private key of the client certificate.")
    kafka_ssl_check_hostname: bool = True

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_kafka_security(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        # An empty variable (a compose file's `VAR: ""`) means the default, not a value to reject.
        empty = "PLAINTEXT" if info.field_name == "kafka_security_protocol" else None
        return value.strip().upper() or empty

    # Kafka start-up checks: brokers reachable, credentials accepted, topics present, all within this bound.
    kafka_startup_timeout_s: float = Field(default=20.0, gt=0)
    kafka_create_topics: bool = Field(
        default=True,
        description="Create missing source and dead-letter topics at start-up (broker defaults for partitions "
        "and replication); false: a missing topic is a start-up error.",
    )

    # Kafka membership (static by default: see kafka_group_instance_id above; docs/kafka.md#restarts)
    kafka_leave_group_on_stop: bool = Field(
        default=True,
        description="A static member stopped by SIGTERM/SIGINT leaves the group so its partitions move at once; "
        "false: they wait for its restart (or the session timeout), sparing a rolling restart two rebalances.",
    )

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
        return split_comma_list(value)

    # OTLP/gRPC and log content (collector/otlp/grpc.py, content.py; docs/otlp.md)
    otlp_grpc_port: int = Field(
        default=4317, ge=0, le=65535, description="OTLP/gRPC receiver of `llmpulse serve`; 0 disables it."
    )
    otlp_grpc_host: str | None = Field(default=None, description="Interface of the gRPC receiver; unset: http_host.")
    otlp_grpc_max_message_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest gRPC export request accepted (before gzip)."
    )
    otlp_grpc_workers: int = Field(default=16, ge=1, description="Threads serving gRPC exports concurrently.")
    otlp_content_join_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long content from OTLP log events waits for its span, and after a span is stored how "
        "long late content is still written onto it.",
    )

    # Judge
    judge_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible chat-completions base URL (https://api.openai.com/v1, "
        "http://localhost:11434/v1 for Ollama, a vLLM or llama.cpp server...). Unset: no judging.",
    )
    judge_model: str = Field(default="gpt-4o-mini", min_length=1)
    judge_provider: str = Field(default="openai", description="Provider used to price judge calls from the catalog.")
    judge_api_key: SecretStr | None = Field(default=None, description="LLMPULSE_JUDGE_API_KEY.")
    judge_api_key_file: Path | None = Field(default=None, description="File holding the key (wins over the env var).")
    judge_api_key_header: str = Field(
        default="Authorization", description="'Authorization' sends 'Bearer KEY'; 'api-key' (Azure) sends the key."
    )
    judge_api_version: str | None = Field(default=None, description="Azure OpenAI `api-version` query parameter.")
    judge_json_mode: bool = Field(default=True, description="Ask for response_format json_object.")
    judge_rules_file: Path | None = Field(default=None, description="YAML sampling rules; default: built-in.")
    judge_rubrics_dir: Path | None = Field(default=None, description="Extra rubric YAML files (win over built-ins).")
    judge_timeout_s: float = Field(default=30.0, gt=0)
    judge_max_retries: int = Field(default=2, ge=0, le=10)
    judge_backoff_s: float = Field(default=0.5, ge=0)
    judge_max_backoff_s: float = Field(default=20.0, ge=0)
    judge_concurrency: int = Field(default=4, ge=1, le=64)
    judge_max_per_hour: int | None = Field(default=600, ge=0, description="Judgments per hour, all rules.")
    judge_max_usd_per_day: float | None = Field(default=5.0, ge=0, description="Judge spend per UTC day.")
    judge_breaker_failures: int = Field(default=5, ge=1, description="Consecutive failures that open the breaker.")
    judge_breaker_cooldown_s: float = Field(default=60.0, gt=0)
    judge_lookback_hours: float = Field(default=6.0, gt=0, description="How far back a judge run looks.")
    judge_max_run_seconds: float = Field(default=240.0, gt=0, description="A run stops starting calls after this.")
    judge_max_text_chars: int = Field(default=8000, ge=200, description="Input/output text sent to the judge.")
    judge_redact_emails: bool = True
    judge_redact_phones: bool = True
    judge_redact_api_keys: bool = True
    judge_redact_patterns: list[str] = Field(default_factory=list, description="Extra regexes (JSON list).")
    quality_window_hours: float = Field(default=3.0, gt=0)
    quality_baseline_days: float = Field(default=7.0, gt=0)
    quality_min_samples: int = Field(default=25, ge=5)
    quality_min_effect: float = Field(default=0.2, gt=0, le=1, description="Minimum |Cliff's delta| drop.")
    quality_alpha: float = Field(default=1e-4, gt=0, lt=1, description="Per run, Bonferroni over groups.")
    quality_interval_minutes: float = Field(default=30.0, gt=0)
    judge_kappa_floor: float = Field(default=0.4, ge=-1, le=1)
    judge_calibration_days: float = Field(default=30.0, gt=0)
    judge_calibration_min_overlap: int = Field(default=20, ge=2)
    review_link_template: str = Field(
        default="http://localhost:3000/d/llmpulse-events?var-event_id={event_id}&var-trace_id={trace_id}",
        description="Link written into review exports; {event_id} and {trace_id} are filled in.",
    )

    # Alerts (alerts/, docs/alerts.md)
    alertmanager_url: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Alertmanager base URL(s), comma-separated for an HA pair (all get every alert); "
        "unset: alerts are only recorded in ClickHouse and shown by `llmpulse alerts`.",
    )
    alertmanager_timeout_s: float = Field(default=10.0, gt=0, description="Per POST /api/v2/alerts.")
    alert_resend_interval_s: float = Field(
        default=60.0, gt=0, description="Firing alerts are re-sent this often; endsAt is 4 intervals ahead."
    )
    alert_resolved_retention_s: float = Field(
        default=900.0, ge=0, description="Resolved alerts keep being re-sent this long after resolving."
    )
    alert_retry_max_s: float = Field(default=60.0, gt=0, description="Longest backoff between failed POSTs.")
    alert_public_base_url: str | None = Field(
        default=None,
        description="How people reach this llmpulse API (generatorURL = BASE/v1/findings/{id}); "
        "default http://<http_host>:<http_port>.",
    )
    alert_runbook_base_url: str | None = Field(
        default=None, description="Runbook links are BASE/<alertname>.md; default <public base>/runbooks."
    )
    alert_dashboard_base_url: str = Field(
        default="http://localhost:3000", description="Grafana base URL for dashboard links in alerts."
    )

    @field_validator("alertmanager_url", mode="before")
    @classmethod
    def _split_alertmanager_urls(cls, value: object) -> object:
        return split_comma_list(value)

    # Alertmanager auth (its --web.config.file: basic_auth_users, tls_server_config; docs/security.md)
    alertmanager_username: str | None = Field(
        default=None, description="Basic-auth user for every Alertmanager (a user:pass@ in the URL also works)."
    )
    alertmanager_password: SecretStr | None = Field(default=None, description="Basic-auth password.")
    alertmanager_password_file: Path | None = Field(
        default=None, description="File holding the basic-auth password (wins over LLMPULSE_ALERTMANAGER_PASSWORD)."
    )
    alertmanager_bearer_token: SecretStr | None = Field(
        default=None, description="Sent as 'Authorization: Bearer TOKEN' (e.g. to a reverse proxy in front)."
    )
    alertmanager_bearer_token_file: Path | None = Field(
        default=None, description="File holding the bearer token (wins over LLMPULSE_ALERTMANAGER_BEARER_TOKEN)."
    )
    alertmanager_tls_verify: bool = Field(default=True, description="Verify https:// Alertmanagers' certificates.")
    alertmanager_ca_file: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the Alertmanagers' certificates; unset: system CAs."
    )
    alertmanager_client_cert_file: Path | None = Field(default=None, description="Client certificate (PEM), mTLS.")
    alertmanager_client_key_file: Path | None = Field(default=None, description="Its private key (PEM).")

    # Analyzers (analyzers/, docs/analyzers.md)
    analyzers_enabled: bool = Field(default=True, description="`llmpulse serve` runs the analyzer scheduler.")
    analyzers_rules_file: Path | None = Field(
        default=None, description="Rules YAML; unset: ./llmpulse.yaml when it exists, else built-in defaults."
    )
    analyzers_lag_seconds: int = Field(
        default=60, ge=0, description="Scheduled runs analyse up to now minus this, so late events are in."
    )
    analyzers_dashboard_base_url: str = Field(
        default="", description="Grafana base URL for finding links; empty: alert_dashboard_base_url."
    )
    analyzers_plugins: bool = Field(default=True, description="Load analyzer plugins (analyzers/<pkg>/plugin.py).")

    # Drift (analyzers/drift/, docs/drift.md)
    drift_enabled: bool = Field(default=True, description="Run the input/output drift analyzer.")
    drift_interval_minutes: int = Field(default=15, ge=1, description="How often the drift analyzer runs.")
    drift_min_window_minutes: int = Field(
        default=15, ge=1, description="Shortest current window (at least the interval, so every call is tested)."
    )
    drift_max_window_minutes: int = Field(
        default=1440, ge=5, le=1440, description="Widest current window: quiet slices widen up to this."
    )
    drift_first_window_events: int = Field(
        default=30, ge=10, description="The shortest window tried holds this many calls; each wider one twice."
    )
    drift_enough_events: int = Field(
        default=500, ge=20, description="Windows stop widening once one holds this many calls."
    )
    drift_stale_after_minutes: int = Field(
        default=360, ge=1, description="A slice without a call for this long is 'no traffic': its drift resolves."
    )
    drift_reference: str = Field(
        default="auto", pattern="^(auto|seasonal|trailing)$",
        description="Unpinned reference: 'seasonal' = the same clock window on previous days, 'trailing' = the "
        "hours before the current window, 'auto' = seasonal when it holds enough events, else trailing.",
    )
    drift_seasonal_days: int = Field(default=7, ge=1, le=28)
    drift_trailing_hours: float = Field(default=24.0, gt=0)
    drift_group_by: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["app", "environment", "feature"],
        description="Group keys, comma-separated; add model and/or prompt_version to compare those separately.",
    )
    drift_operations: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["chat", "text_completion", "embeddings"],
        description="Operations whose calls are compared (tool runs and retrievals are not model traffic).",
    )
    drift_fdr: float = Field(default=0.01, gt=0, lt=1, description="Benjamini–Hochberg target per run.")
    drift_null_quantile: float = Field(default=0.99, gt=0.5, lt=1)
    drift_min_events: int = Field(
        default=20, ge=10, description="Calls per window and side below which no test can reach the alpha."
    )
    drift_min_texts: int = Field(default=20, ge=10)
    drift_text_sample: int = Field(
        default=300, ge=20, le=20_000, description="Texts drawn per window and side for the text test."
    )
    drift_bins: int = Field(default=10, ge=3, le=50)
    drift_top_k: int = Field(default=20, ge=2, le=200)
    drift_psi_floor: float = Field(default=0.02, ge=0)
    drift_js_floor_bits: float = Field(default=0.002, ge=0)
    drift_auc_floor: float = Field(default=0.52, ge=0.5, lt=1)
    drift_new_category_share: float = Field(default=0.01, gt=0, lt=1)
    drift_persist_runs: int = Field(default=2, ge=1, le=24, description="Persistence: of the last N runs ...")
    drift_persist_hits: int = Field(default=2, ge=1, le=24, description="... at least K must show drift.")
    drift_one_call_per_trace: bool = Field(
        default=True, description="Count one call per trace (an agent's steps are not independent samples)."
    )
    drift_output_formats: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Declared output formats, 'app/feature=json,...' or JSON; undeclared features whose "
        "reference outputs are >= 90% valid JSON are treated as JSON.",
    )
    drift_seed: int = Field(default=0, ge=0)

    @field_validator("drift_group_by", "drift_operations", mode="before")
    @classmethod
    def _split_drift_lists(cls, value: object) -> object:
        return split_comma_list(value)

    @field_validator("drift_group_by")
    @classmethod
    def _check_drift_group_by(cls, value: list[str]) -> list[str]:
        allowed = ("app", "environment", "feature", "model", "prompt_version")
        bad = [v for v in value if v not in allowed]
        if bad or "app" not in value:
            raise ValueError(f"drift_group_by must include 'app' and only use {allowed}; got {value}")
        return [k for k in allowed if k in value]

    @field_validator("drift_output_formats", mode="before")
    @classmethod
    def _parse_drift_formats(cls, value: object) -> object:
        return parse_mapping(value, "app/feature=json,...")

    # Security: API keys and masking before storage (docs/security.md)
    auth_disabled: bool = Field(
        default=False,
        description="true: the HTTP API answers without API keys (logged as a warning at start-up). Only for a "
        "network nobody else reaches.",
    )
    auth_key_refresh_seconds: float = Field(
        default=2.0, gt=0, le=4.0, description="How often key changes (create, revoke) are picked up."
    )
    redact: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Kinds masked before storage, applied to the default set (secrets and card numbers): "
        "'email,phone,iban' adds, '-card' removes, 'none' removes all.",
    )
    redact_patterns_file: Path | None = Field(
        default=None, description="YAML of name: regex; each match is stored as [REDACTED:name]."
    )

    @field_validator("redact", mode="before")
    @classmethod
    def _split_redact(cls, value: object) -> object:
        return split_comma_list(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
