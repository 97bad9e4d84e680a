"""Span → event rules for the conventions the e2e instrumentations don't emit: older GenAI names, per-message
events, OpenInference and OpenLLMetry variants, tool/agent/retrieval spans, resource and settings mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from collector.events import TraceEvent
from collector.otlp.mapping import Mapped, OtlpOptions, OtlpSpan, Rejected, Skipped, SpanEvent, map_span
from collector.pricing import PriceCatalog
from collector.rows import EVENT_COLUMNS
from collector.validation import EventValidator, RawItem

T0 = 1_795_000_000_000_000_000
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
RESOURCE = {"service.name": "support-bot", "deployment.environment.name": "prod-eu"}


def make_span(
    attrs: dict[str, Any],
    *,
    events: list[SpanEvent] | None = None,
    resource: dict[str, Any] | None = None,
    status: int = 0,
    message: str = "",
    latency_ms: float = 1200.0,
    name: str = "span",
) -> OtlpSpan:
    return OtlpSpan(
        trace_id=TRACE,
        span_id=SPAN,
        parent_span_id="",
        name=name,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + int(latency_ms * 1e6),
        attributes=attrs,
        resource=RESOURCE if resource is None else resource,
        status_code=status,
        status_message=message,
        events=events or [],
    )


def event_of(span: OtlpSpan, options: OtlpOptions | None = None) -> dict[str, Any]:
    outcome = map_span(span, options)
    assert isinstance(outcome, Mapped), outcome
    TraceEvent.model_validate(outcome.event)  # every mapped event is a valid contract-v1 event
    return outcome.event


def stored_row(event: dict[str, Any]) -> dict[str, Any]:
    result = EventValidator(prices=PriceCatalog()).validate([RawItem(0, event, None)], source="otlp", source_ref="t")
    assert not result.rejections, result.rejections
    return {name: column[0] for name, column in zip(EVENT_COLUMNS, result.batch.columns, strict=True)}


def test_older_genai_names_and_per_message_events() -> None:
    span = make_span(
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-3-5-sonnet-20241022",
            "gen_ai.usage.prompt_tokens": 2000,
            "gen_ai.usage.completion_tokens": 300,
            "gen_ai.response.finish_reasons": ["end_turn"],
        },
        events=[
            SpanEvent("gen_ai.system.message", T0, {"gen_ai.system": "anthropic", "content": "Be terse."}),
            SpanEvent("gen_ai.user.message", T0, {"content": "Summarise the ticket."}),
            SpanEvent(
                "gen_ai.choice",
                T0 + 10,
                {
                    "index": 0,
                    "finish_reason": "end_turn",
                    "message": '{"role": "assistant", "content": "Refund issued."}',
                },
            ),
        ],
    )
    row = stored_row(event_of(span))
    assert (row["provider"], row["model"], row["input_tokens"], row["output_tokens"]) == (
        "anthropic",
        "claude-3-5-sonnet-20241022",
        2000,
        300,
    )
    assert row["input_text"] == "Be terse.\n\nSummarise the ticket."
    # Anthropic's end_turn is stored as the contract's stop (collector/normalize.py), the raw value kept.
    assert row["output_text"] == "Refund issued." and row["finish_reason"] == "stop"
    assert row["metadata"]["finish_reason.raw"] == "end_turn"
    assert row["cost_usd"] and row["cost_usd"] > 0
    assert row["app"] == "support-bot" and row["environment"] == "prod-eu"


def test_semantic_kernel_style_event_content_and_oldest_prompt_events() -> None:
    packed = make_span(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
        events=[
            SpanEvent("gen_ai.user.message", T0, {"gen_ai.event.content": '{"role": "user", "content": "Hi"}'}),
            SpanEvent(
                "gen_ai.choice",
                T0,
                {
                    "gen_ai.event.content": '{"index": 0, "finish_reason": "stop",'
                    ' "message": {"role": "assistant", "content": "Hello"}}'
                },
            ),
        ],
    )
    event = event_of(packed)
    assert event["input"] == [{"role": "user", "content": "Hi"}]
    assert event["output"] == [{"role": "assistant", "content": "Hello", "finish_reason": "stop"}]

    oldest = make_span(
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4"},
        events=[
            SpanEvent("gen_ai.content.prompt", T0, {"gen_ai.prompt": '[{"role": "user", "content": "2+2?"}]'}),
            SpanEvent("gen_ai.content.completion", T0, {"gen_ai.completion": "4"}),
        ],
    )
    event = event_of(oldest)
    assert event["input"] == [{"role": "user", "content": "2+2?"}]
    assert event["output"] == [{"role": "assistant", "content": "4"}]


def test_current_genai_usage_details_ttft_conversation_and_structured_messages() -> None:
    span = make_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "gen_ai.response.id": "msg_01",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.output_tokens": 800,
            "gen_ai.usage.cache_read.input_tokens": 3000,
            "gen_ai.usage.cache_creation.input_tokens": 1000,
            "gen_ai.usage.reasoning.output_tokens": 500,
            "gen_ai.response.time_to_first_chunk": 0.42,
            "gen_ai.conversation.id": "conv-7",
            "user.id": "u-1",
            # Structured (not JSON-string) messages, as an SDK with complex attributes sends them.
            "gen_ai.system_instructions": [{"type": "text", "content": "You are support."}],
            "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}],
            "gen_ai.output.messages": [
                {
                    "role": "assistant",
                    "finish_reason": "stop",
                    "parts": [{"type": "text", "content": "It ships today."}],
                }
            ],
        }
    )
    event = event_of(span)
    assert event["usage"] == {
        "input_tokens": 5000,
        "output_tokens": 800,
        "cache_read_input_tokens": 3000,
        "cache_creation_input_tokens": 1000,
        "reasoning_output_tokens": 500,
    }
    assert event["ttft_ms"] == pytest.approx(420.0)
    assert (event["session_id"], event["user_id"]) == ("conv-7", "u-1")
    assert event["metadata"]["response_id"] == "msg_01"
    row = stored_row(event)
    assert row["input_text"] == "You are support.\n\nWhere is my order?"
    assert row["output_text"] == "It ships today." and row["finish_reason"] == "stop"
    assert row["response_model"] == "claude-sonnet-4-5-20250929"
    assert row["cost_cache_read_usd"] > 0 and row["cost_cache_write_usd"] > 0


def test_openinference_llm_span_with_cost_session_tags_and_multimodal_content() -> None:
    span = make_span(
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "azure",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-2024-08-06",
            "llm.invocation_parameters": '{"model": "gpt-4o", "temperature": 0}',
            "llm.token_count.prompt": 100,
            "llm.token_count.completion": 20,
            "llm.token_count.prompt_details.cache_read": 40,
            "llm.cost.total": 0.0123,
            "session.id": "s-9",
            "user.id": "alice",
            "tag.tags": ["beta", "eu"],
            "metadata": '{"tenant": "acme"}',
            "llm.prompt_template.version": "v3",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.contents.0.message_content.type": "text",
            "llm.input_messages.0.message.contents.0.message_content.text": "What is in this image?",
            "llm.input_messages.0.message.contents.1.message_content.type": "image",
            "llm.input_messages.0.message.contents.1.message_content.image.image.url": "https://x/cat.png",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "A cat.",
        }
    )
    event = event_of(span)
    assert (event["model"], event["response_model"], event["provider"]) == (
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "azure",
    )
    assert event["cost_usd"] == 0.0123 and event["tags"] == ["beta", "eu"]
    assert (event["session_id"], event["user_id"], event["prompt_version"]) == ("s-9", "alice", "v3")
    assert event["metadata"]["tenant"] == "acme"
    assert event["input"][0]["content"][1] == {"type": "uri", "modality": "image", "uri": "https://x/cat.png"}
    row = stored_row(event)
    assert row["cost_usd"] == 0.0123 and row["price_source"] == "client"
    assert row["input_text"] == "What is in this image?" and row["output_text"] == "A cat."


def test_openinference_tool_retriever_agent_and_chain_spans() -> None:
    tool = event_of(
        make_span(
            {
                "openinference.span.kind": "TOOL",
                "tool.name": "search_orders",
                "input.value": '{"q": "123"}',
                "output.value": "order 123: shipped",
            }
        )
    )
    assert (tool["operation"], tool["model"], tool["input"], tool["output"]) == (
        "execute_tool",
        "tool:search_orders",
        '{"q": "123"}',
        "order 123: shipped",
    )
    assert tool["metadata"]["tool"] == "search_orders"

    retriever = event_of(
        make_span({"openinference.span.kind": "RETRIEVER", "input.value": "refund policy"}, name="retrieve")
    )
    assert (retriever["operation"], retriever["model"]) == ("retrieval", "retrieval:retrieve")

    agent = event_of(make_span({"openinference.span.kind": "AGENT", "agent.name": "triage"}))
    assert (agent["operation"], agent["model"]) == ("invoke_agent", "agent:triage")

    assert isinstance(map_span(make_span({"openinference.span.kind": "CHAIN", "input.value": "x"})), Skipped)


def test_openllmetry_legacy_indexed_prompts_total_tokens_and_association_properties() -> None:
    span = make_span(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-3.5-turbo",
            "gen_ai.response.model": "gpt-3.5-turbo-0125",
            "gen_ai.usage.prompt_tokens": 50,
            "llm.usage.total_tokens": 75,
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "You translate.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "Bonjour",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.finish_reason": "tool_calls",
            "gen_ai.completion.0.tool_calls.0.id": "call_1",
            "gen_ai.completion.0.tool_calls.0.name": "translate",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"text": "Bonjour"}',
            "traceloop.association.properties.user_id": "u-42",
            "traceloop.association.properties.session_id": "chat-1",
            "traceloop.association.properties.feature": "translate",
            "traceloop.association.properties.tenant": "acme",
            "traceloop.prompt.version": 7,
        }
    )
    event = event_of(span)
    assert event["usage"] == {"input_tokens": 50, "output_tokens": 25}  # output implied by the total
    assert (event["user_id"], event["session_id"], event["feature"], event["prompt_version"]) == (
        "u-42",
        "chat-1",
        "translate",
        "7",
    )
    assert event["metadata"]["tenant"] == "acme"
    assert event["input"] == [
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Bonjour"},
    ]
    assert event["output"] == [
        {
            "role": "assistant",
            "finish_reason": "tool_calls",
            "content": [{"type": "tool_call", "id": "call_1", "name": "translate", "arguments": {"text": "Bonjour"}}],
        }
    ]
    assert event["finish_reason"] == "tool_calls"

    assert isinstance(map_span(make_span({"traceloop.span.kind": "workflow", "traceloop.entity.name": "x"})), Skipped)
    tool = event_of(
        make_span(
            {
                "traceloop.span.kind": "tool",
                "traceloop.entity.name": "translate",
                "traceloop.entity.input": '{"text": "Bonjour"}',
                "traceloop.entity.output": "Hello",
            }
        )
    )
    assert (tool["operation"], tool["model"], tool["output"]) == ("execute_tool", "tool:translate", "Hello")


def test_genai_tool_and_agent_spans_keep_names_and_arguments() -> None:
    tool = event_of(
        make_span(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "c1",
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.arguments": '{"city": "Paris"}',
                "gen_ai.tool.call.result": '{"temp": 21}',
            },
            latency_ms=35,
        )
    )
    assert (tool["operation"], tool["model"], tool["latency_ms"]) == (
        "execute_tool",
        "tool:get_weather",
        35.0,
    )
    assert tool["metadata"]["tool_call_id"] == "c1" and tool["input"] == '{"city": "Paris"}'
    assert tool["output"] == '{"temp": 21}' and "provider" not in tool

    agent = event_of(
        make_span(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "Math Tutor",
                "gen_ai.agent.id": "asst_1",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
            }
        )
    )
    assert (agent["operation"], agent["model"], agent["metadata"]["agent_name"]) == (
        "invoke_agent",
        "gpt-4o",
        "Math Tutor",
    )
    assert isinstance(
        map_span(make_span({"gen_ai.operation.name": "create_agent", "gen_ai.request.model": "gpt-4o"})),
        Skipped,
    )


def test_errors_take_their_type_from_error_type_or_the_exception_event() -> None:
    class_repr = event_of(make_span({**_chat(), "error.type": "<class 'openai.RateLimitError'>"}, status=2))
    assert (class_repr["status"], class_repr["error_type"]) == ("error", "openai.RateLimitError")

    from_event = event_of(
        make_span(
            _chat(),
            status=2,
            message="boom",
            events=[
                SpanEvent("exception", T0, {"exception.type": "httpx.ReadTimeout", "exception.message": "timed out"})
            ],
        )
    )
    assert (from_event["status"], from_event["error_type"]) == ("error", "httpx.ReadTimeout")
    assert from_event["metadata"]["error_message"] == "boom"

    bare = event_of(make_span(_chat(), status=2))
    assert bare["error_type"] == "_OTHER"
    assert event_of(make_span(_chat()))["status"] == "ok"


def test_streaming_first_chunk_event_gives_ttft() -> None:
    span = make_span(
        _chat(),
        events=[
            SpanEvent("gen_ai.content.completion.chunk", T0 + 250_000_000, {}),
            SpanEvent("gen_ai.content.completion.chunk", T0 + 400_000_000, {}),
        ],
    )
    assert event_of(span)["ttft_ms"] == pytest.approx(250.0)


def test_resource_and_configurable_feature_and_prompt_attributes() -> None:
    options = OtlpOptions(
        feature_attributes=("app.feature",),
        prompt_version_attributes=("app.prompt_rev",),
        prompt_id_attributes=("app.prompt",),
        default_app="fallback-app",
    )
    span = make_span(
        {**_chat(), "app.prompt_rev": "2025-11-01"},
        resource={"deployment.environment": "qa", "app.feature": "search", "app.prompt": "search-v"},
    )
    event = event_of(span, options)
    assert (event["app"], event["environment"], event["feature"]) == ("fallback-app", "qa", "search")
    assert (event["prompt_id"], event["prompt_version"]) == ("search-v", "2025-11-01")

    phoenix = event_of(
        make_span(
            _chat(),
            resource={"service.name": "unknown_service:python", "openinference.project.name": "rag-demo"},
        )
    )
    assert phoenix["app"] == "rag-demo"
    default = event_of(make_span({**_chat(), "llmpulse.feature": "checkout"}, resource={}))
    assert (default["app"], default["feature"]) == (
        "unknown_service",
        "checkout",
    ) and "environment" not in default


def test_event_id_is_deterministic_and_times_are_the_spans() -> None:
    first, again = event_of(make_span(_chat())), event_of(make_span(_chat()))
    assert first["event_id"] == again["event_id"] == f"otel-{TRACE}-{SPAN}"
    row = stored_row(first)
    assert row["start_time"] == datetime.fromtimestamp(T0 / 1e9, UTC)
    assert row["latency_ms"] == pytest.approx(1200.0) and row["trace_id"] == TRACE and row["span_id"] == SPAN


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"http.request.method": "GET"}, "not a GenAI span"),
        ({"gen_ai.conversation.id": "c1"}, "not a GenAI span"),
        ({"db.system.name": "postgresql", "db.query.text": "SELECT 1"}, "not a GenAI span"),
        ({"gen_ai.operation.name": "invoke_workflow"}, "is not a recorded call"),
    ],
)
def test_non_llm_spans_are_skipped_not_rejected(attrs: dict[str, Any], expected: str) -> None:
    outcome = map_span(make_span(attrs))
    assert isinstance(outcome, Skipped) and expected in outcome.reason


def test_llm_spans_missing_required_fields_are_rejected_with_a_reason() -> None:
    no_model = map_span(make_span({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}))
    assert isinstance(no_model, Rejected) and "chat span has no model" in no_model.reason

    span = make_span(_chat())
    for broken, reason in (
        (OtlpSpan(**{**_fields(span), "start_time_unix_nano": 0}), "no start time"),
        (OtlpSpan(**{**_fields(span), "end_time_unix_nano": 0}), "no end time"),
        (OtlpSpan(**{**_fields(span), "end_time_unix_nano": T0 - 1}), "ends before it starts"),
        (OtlpSpan(**{**_fields(span), "span_id": ""}), "no valid traceId/spanId"),
    ):
        outcome = map_span(broken)
        assert isinstance(outcome, Rejected) and reason in outcome.reason


def test_overlong_values_are_cut_to_the_contract_not_rejected() -> None:
    event = event_of(
        make_span(
            {**_chat(), "error.type": "E" * 2000, "gen_ai.conversation.id": "s" * 900},
            resource={"service.name": "a" * 300},
            status=2,
        )
    )
    assert len(event["app"]) == 128 and len(event["error_type"]) == 512 and len(event["session_id"]) == 512
    assert orjson.dumps(event)


def _chat() -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 2,
    }


def _fields(span: OtlpSpan) -> dict[str, Any]:
    return {name: getattr(span, name) for name in OtlpSpan.__dataclass_fields__}


def test_settings_lists_configure_the_mapping() -> None:
    from llmpulse.settings import Settings

    settings = Settings(otlp_feature_attributes="team.feature, llmpulse.feature", otlp_default_app="edge")  # type: ignore[arg-type]
    options = OtlpOptions.from_settings(settings)
    assert options.feature_attributes == ("team.feature", "llmpulse.feature")
    event = event_of(make_span({**_chat(), "team.feature": "search"}, resource={}), options)
    assert (event["feature"], event["app"]) == ("search", "edge")
    assert OtlpOptions.from_settings(Settings()) == OtlpOptions()  # the documented defaults are the code's
