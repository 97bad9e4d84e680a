"""Masking before storage on the real API (the app `llmpulse serve` builds, over real chDB): what is stored from
HTTP JSON events, OTLP/HTTP spans and OTLP log content holds `[REDACTED:kind]` and never the secret; card numbers
only when Luhn-valid; emails/phones/IBANs only with LLMPULSE_REDACT; a custom patterns file; the counts in
/metrics; and the Kafka path's validator masks the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from collector.auth import Scope
from collector.keys import ClickHouseKeyStore, create_key
from llmpulse.server import build_server_app
from llmpulse.settings import Settings
from tests.integration.test_otlp_http import PROTOBUF, chat_attrs, export, span
from tests.integration.test_otlp_logs import EVENT_ID, T_SPAN, content_span, logs_request, record
from tests.support.events import make_event

pytestmark = pytest.mark.integration

OPENAI = "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56"
ANTHROPIC = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"
SLACK = "xoxb-1234567890-AbCdEfGhIj"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc123"
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
CARD = "4111 1111 1111 1111"
NOT_A_CARD = "4111 1111 1111 1112"  # fails Luhn
EMAIL = "jane.doe@example.com"
PHONE = "+1 415-555-0132"
IBAN = "DE89 3704 0044 0532 0130 00"
SECRETS = (OPENAI, ANTHROPIC, AWS_ID, GITHUB, SLACK, BEARER, PEM_BODY, CARD)


def _settings(**values: object) -> Settings:
    base: dict[str, object] = {
        "otlp_grpc_port": 0,
        "ingest_workers": 0,
        "alertmanager_url": [],
        "batch_max_seconds": 0.02,
    }
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg, arg-type]


class Api:
    def __init__(self, http: TestClient, key: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}

    def post_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.http.post("/v1/events", content=orjson.dumps(events), headers=self.headers)
        assert response.status_code in (200, 422), response.text
        body: dict[str, Any] = response.json()
        return body

    def redactions(self) -> dict[str, float]:
        text = self.http.get("/metrics", headers=self.headers).text
        counts = {}
        for line in text.splitlines():
            if line.startswith("llmpulse_redactions_total{"):
                labels, value = line.rsplit(" ", 1)
                counts[labels.split('kind="', 1)[1].split('"', 1)[0]] = float(value)
        return counts


@contextmanager
def _api(store_client: Client, settings: Settings) -> Iterator[Api]:
    key = create_key(ClickHouseKeyStore(store_client), "admin", Scope.ADMIN)[1]
    app = build_server_app(settings, store_client, kafka=False, analyzers=False)
    with TestClient(app) as http:
        yield Api(http, key)


@pytest.fixture()
def api(store_client: Client) -> Iterator[Api]:
    with _api(store_client, _settings()) as served:
        yield served


def _stored(client: Client, event_id: str) -> dict[str, Any]:
    columns = ("input_text", "output_text", "input_messages", "output_messages", "metadata", "tags")
    rows = client.query(
        f"SELECT {', '.join(columns)} FROM events WHERE event_id = {{id:String}}", parameters={"id": event_id}
    ).result_rows
    assert len(rows) == 1, rows
    return dict(zip(columns, rows[0], strict=True))


def _everything_stored(client: Client) -> str:
    """Every table llmpulse writes ingest data to, as one text."""
    parts = [str(client.query("SELECT * FROM events").result_rows)]
    parts.append(str(client.query("SELECT * FROM rejected_events").result_rows))
    return "\n".join(parts)


SECRET_TEXT = (
    f"my openai key {OPENAI}, anthropic {ANTHROPIC}, aws {AWS_ID}, github {GITHUB}, slack {SLACK}, "
    f"header 'Authorization: Bearer {BEARER}', card {CARD}, not a card {NOT_A_CARD}, mail {EMAIL}, "
    f"phone {PHONE}, iban {IBAN}\n{PEM}"
)
KINDS = ("openai_key", "anthropic_key", "aws_access_key", "github_token", "slack_token", "bearer_token",
         "card", "private_key")


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "validation-worker"])
def test_http_events_are_masked_before_storage(store_client: Client, workers: int) -> None:
    with _api(store_client, _settings(ingest_workers=workers)) as api:
        event = make_event(
            1,
            input=[{"role": "system", "content": "be terse"}, {"role": "user", "content": SECRET_TEXT}],
            output=f"here is the key again: {OPENAI}",
            metadata={"customer_note": f"card {CARD}"},
            tags=[f"leaked:{GITHUB}"],
        )
        broken = {**make_event(2, input=f"secret {ANTHROPIC}"), "start_time": "not a time"}
        body = api.post_events([event, broken])
        assert body["accepted"] == 1 and body["rejected"] == 1

        stored = _stored(store_client, "evt-000001")
        for kind in KINDS:
            assert f"[REDACTED:{kind}]" in stored["input_text"], kind
        assert "[REDACTED:openai_key]" in orjson.loads(stored["input_messages"])[1]["content"]
        assert stored["output_text"] == "here is the key again: [REDACTED:openai_key]"
        assert stored["metadata"]["customer_note"] == "card [REDACTED:card]"
        assert stored["tags"] == ["leaked:[REDACTED:github_token]"]
        # Not secrets, or not by default: a number failing Luhn, emails, phones, IBANs.
        for kept in (NOT_A_CARD, EMAIL, PHONE, IBAN):
            assert kept in stored["input_text"], kept

        everything = _everything_stored(store_client)
        for secret in SECRETS:
            assert secret not in everything, secret
        [(payload,)] = store_client.query("SELECT payload FROM rejected_events").result_rows
        assert "[REDACTED:anthropic_key]" in (payload if isinstance(payload, str) else payload.decode())

        counts = api.redactions()
        assert counts["openai_key"] >= 2 and counts["card"] >= 2 and counts["github_token"] >= 1
        assert counts["anthropic_key"] >= 2  # the accepted event and the rejected one
        for kind in ("email", "phone", "iban"):
            assert kind not in counts


def test_a_whole_body_that_is_not_json_is_kept_masked(api: Api, store_client: Client) -> None:
    response = api.http.post(
        "/v1/events",
        content=f'{{"input": "{OPENAI}", '.encode(),
        headers={**api.headers, "content-type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    assert OPENAI not in response.text
    everything = _everything_stored(store_client)
    assert OPENAI not in everything and "[REDACTED:openai_key]" in everything


def test_opt_in_kinds_and_custom_patterns(
    store_client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patterns = tmp_path / "patterns.yml"
    patterns.write_text("patterns:\n  ticket: 'TCK-[0-9]{6}'\n  employee_id: 'EMP[0-9]{5}'\n", "utf-8")
    monkeypatch.setenv("LLMPULSE_REDACT", "email, phone,iban,-card")  # as an operator sets it
    monkeypatch.setenv("LLMPULSE_REDACT_PATTERNS_FILE", str(patterns))
    settings = _settings()
    with _api(store_client, settings) as api:
        event = make_event(
            1, input=f"{SECRET_TEXT} ticket TCK-123456 for EMP00042", output=f"mail {EMAIL} or call {PHONE}"
        )
        assert api.post_events([event])["accepted"] == 1
        stored = _stored(store_client, "evt-000001")
        for kind in ("email", "phone", "iban", "ticket", "employee_id", "openai_key", "private_key"):
            assert f"[REDACTED:{kind}]" in stored["input_text"], kind
        assert stored["output_text"] == "mail [REDACTED:email] or call [REDACTED:phone]"
        for value in (EMAIL, PHONE, IBAN, "TCK-123456", "EMP00042", OPENAI):
            assert value not in stored["input_text"] + stored["output_text"]
        assert CARD in stored["input_text"]  # -card turned card masking off
        counts = api.redactions()
        assert counts["email"] == 2 and counts["phone"] == 2 and counts["iban"] == 1
        assert counts["ticket"] == 1 and counts["employee_id"] == 1 and "card" not in counts


def test_otlp_http_spans_are_masked(api: Api, store_client: Client) -> None:
    messages = orjson.dumps([{"role": "user", "content": f"use {OPENAI} and card {CARD}"}]).decode()
    answer = orjson.dumps([{"role": "assistant", "content": f"stored {GITHUB}"}]).decode()
    request = export(
        [span(1, "chat gpt-4o-mini", chat_attrs(**{"gen_ai.input.messages": messages,
                                                    "gen_ai.output.messages": answer}))]
    )
    response = api.http.post("/v1/traces", content=request.SerializeToString(), headers={**PROTOBUF, **api.headers})
    assert response.status_code == 200, response.text
    [(event_id,)] = store_client.query("SELECT event_id FROM events").result_rows
    stored = _stored(store_client, event_id)
    assert "[REDACTED:openai_key]" in stored["input_text"] and "[REDACTED:card]" in stored["input_text"]
    assert "[REDACTED:github_token]" in stored["output_text"]
    everything = _everything_stored(store_client)
    for secret in (OPENAI, CARD, GITHUB):
        assert secret not in everything
    counts = api.redactions()
    assert counts["openai_key"] >= 1 and counts["github_token"] >= 1


def _secret_records() -> list[Any]:
    return [
        record("gen_ai.user.message", {"content": f"my key is {OPENAI}"}),
        record(
            "gen_ai.choice",
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": f"card {CARD}"}},
            offset_ms=700,
        ),
    ]


def _post_logs(api: Api) -> None:
    response = api.http.post(
        "/v1/logs", content=logs_request(_secret_records()).SerializeToString(), headers={**PROTOBUF, **api.headers}
    )
    assert response.status_code == 200, response.text


def _post_span(api: Api) -> None:
    response = api.http.post(
        "/v1/traces", content=content_span().SerializeToString(), headers={**PROTOBUF, **api.headers}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("logs_first", [True, False], ids=["content-before-span", "content-after-span"])
def test_otlp_log_content_is_masked_on_the_event(api: Api, store_client: Client, logs_first: bool) -> None:
    assert T_SPAN  # the span of content_span(), which the records belong to
    if logs_first:
        _post_logs(api)
        _post_span(api)
    else:
        _post_span(api)
        _post_logs(api)
    stored = _stored(store_client, EVENT_ID)
    assert stored["input_text"] == "my key is [REDACTED:openai_key]"
    assert stored["output_text"] == "card [REDACTED:card]"
    assert OPENAI not in stored["input_messages"] and CARD not in stored["output_messages"]
    assert OPENAI not in _everything_stored(store_client)
    if logs_first:
        assert api.redactions()["openai_key"] == 1 and api.redactions()["card"] == 1


def test_otlp_log_content_after_its_span_is_counted_in_metrics(api: Api, store_client: Client) -> None:
    _post_span(api)
    _post_logs(api)
    assert "[REDACTED:openai_key]" in _stored(store_client, EVENT_ID)["input_text"]
    assert api.redactions().get("openai_key", 0) == 1


def test_otlp_log_content_waiting_for_its_span_is_stored_masked(api: Api, store_client: Client) -> None:
    _post_logs(api)
    waiting = str(store_client.query("SELECT * FROM otlp_content").result_rows)
    assert OPENAI not in waiting and CARD not in waiting


def test_kafka_path_masks_with_the_same_validator(store_client: Client) -> None:
    """The Kafka consumer validates with an EventValidator built from the same redaction policy (runtime.
    build_kafka_collector and its PreparePool); its BatchPreparer is what turns records into rows."""
    from collector.kafka.batching import BatchPreparer
    from collector.kafka.decoders import default_decoders
    from collector.kafka.prepare_pool import PrepareConfig
    from collector.pricing import PriceCatalog
    from collector.validation import EventValidator, IngestLimits
    from llmpulse.security import redaction_policy

    settings = _settings(redact=["email"])
    policy = redaction_policy(settings)
    preparers = [
        BatchPreparer(
            validator=EventValidator(prices=PriceCatalog(), limits=IngestLimits(), redaction=policy),
            decoders=default_decoders({}),
        ),
        PrepareConfig(redaction=policy).build(),  # what each Kafka prepare worker process builds
    ]
    for preparer in preparers:
        value = orjson.dumps(make_event(1, input=f"{OPENAI} {EMAIL}", output=f"card {CARD}"))
        broken = orjson.dumps({**make_event(2, input=GITHUB), "start_time": "never"})
        batch = preparer.prepare([("llm-events", 0, 0, 0, None, value, []), ("llm-events", 0, 1, 0, None, broken, [])])
        rows = str(batch.rows.rows)
        assert "[REDACTED:openai_key] [REDACTED:email]" in rows and "card [REDACTED:card]" in rows
        assert OPENAI not in rows and EMAIL not in rows and CARD not in rows
        [rejection] = batch.rejections
        assert GITHUB not in rejection.payload.decode() and "[REDACTED:github_token]" in rejection.payload.decode()
        assert batch.redactions == {"openai_key": 1, "email": 1, "card": 1, "github_token": 1}
