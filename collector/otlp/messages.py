"""Prompt and completion content of a span, from whichever convention the instrumentation used.

Every source is normalised to contract v1's chat messages, with OTel GenAI "parts" as the shape of non-text
content, so a tool call looks the same whichever library reported it:

    {"role": "assistant", "content": [{"type": "tool_call", "id": "...", "name": "...", "arguments": {...}}]}

A message whose only part is text gets that text as a plain string `content`.

Sources, first hit wins (inputs and outputs are looked up independently):
1. `gen_ai.input.messages` / `gen_ai.output.messages` (+ `gen_ai.system_instructions`), as a JSON string or
   structured attribute, on the span or on a `gen_ai.client.inference.operation.details` span event;
2. OpenInference `llm.input_messages.N.message.*` / `llm.output_messages.N.message.*`;
3. OpenLLMetry's indexed `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`;
4. earlier GenAI semconv per-message span events (`gen_ai.user.message`, …, `gen_ai.choice`);
5. the oldest GenAI span events `gen_ai.content.prompt` / `gen_ai.content.completion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import orjson

Message = dict[str, Any]

_MESSAGE_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"


class EventLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, Any]: ...


def maybe_json(value: Any) -> Any:
    """Instrumentations put structured content in string attributes as JSON; anything else is kept as is."""
    if isinstance(value, str | bytes):
        text = value.strip() if isinstance(value, str) else value.strip().decode("utf-8", "replace")
        if text[:1] in ("[", "{"):
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                return value
    return value


def _text_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def _tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "tool_call"}
    if call_id not in (None, ""):
        part["id"] = str(call_id)
    if name not in (None, ""):
        part["name"] = str(name)
    if arguments not in (None, ""):
        part["arguments"] = maybe_json(arguments)
    return part


def _finish(role: str, parts: list[dict[str, Any]], extra: Mapping[str, Any] | None = None) -> Message:
    message: Message = {"role": role or "unknown"}
    if len(parts) == 1 and parts[0].get("type") == "text" and isinstance(parts[0].get("content"), str):
        message["content"] = parts[0]["content"]
    elif parts:
        message["content"] = parts
    if extra:
        for key, value in extra.items():
            if value not in (None, "", [], {}):
                message[key] = value
    return message


def _openai_content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, str):
                parts.append({"type": "text", "content": item})
            elif isinstance(item, dict):
                if item.get("type") in ("text", "input_text", "output_text") and isinstance(item.get("text"), str):
                    parts.append({"type": "text", "content": item["text"]})
                else:
                    parts.append(item)
        return parts
    return [{"type": "text", "content": _text_of(content) or ""}]


def normalize_message(obj: Any, default_role: str = "user") -> Message | None:
    """One message in GenAI parts form, OpenAI form, or a `gen_ai.choice` body; None if unrecognisable."""
    if isinstance(obj, str):
        return {"role": default_role, "content": obj}
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("message"), dict):  # gen_ai.choice body and OpenAI choices
        inner = normalize_message(obj["message"], default_role)
        if inner is not None and obj.get("finish_reason"):
            inner["finish_reason"] = obj["finish_reason"]
        return inner
    role = str(obj.get("role") or default_role)
    extra = {"finish_reason": obj.get("finish_reason"), "name": obj.get("name")}
    if isinstance(obj.get("parts"), list):
        parts = [p if isinstance(p, dict) else {"type": "text", "content": str(p)} for p in obj["parts"]]
        return _finish(role, parts, extra)
    parts = _openai_content_parts(obj.get("content"))
    if role == "tool" and obj.get("tool_call_id"):
        response = obj.get("content")
        parts = [{"type": "tool_call_response", "id": str(obj["tool_call_id"]), "response": maybe_json(response)}]
    for call in obj.get("tool_calls") or []:
        if isinstance(call, dict):
            nested = call.get("function")
            function: dict[str, Any] = nested if isinstance(nested, dict) else call
            parts.append(_tool_call_part(call.get("id"), function.get("name"), function.get("arguments")))
    return _finish(role, parts, extra)


def normalize_messages(value: Any, default_role: str) -> list[Message] | None:
    value = maybe_json(value)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, dict):
        # {"messages": [...]} request bodies and single-message objects both occur.
        if isinstance(value.get("messages"), list):
            value = value["messages"]
        elif isinstance(value.get("choices"), list):
            value = value["choices"]
        else:
            value = [value]
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list):
        return None
    messages = [m for m in (normalize_message(item, default_role) for item in value) if m is not None]
    return messages or None


def _indexed(attrs: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """`prefix.N.rest` keys grouped by N: {N: {"rest": value}}; N in numeric order."""
    grouped: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if index.isdigit() and rest:
            grouped.setdefault(int(index), {})[rest] = value
    return dict(sorted(grouped.items()))


def _openinference_message(fields: Mapping[str, Any]) -> Message:
    role = str(fields.get("message.role") or "user")
    parts: list[dict[str, Any]] = []
    contents = _indexed(fields, "message.contents.")
    if contents:
        for content in contents.values():
            kind = content.get("message_content.type", "text")
            if kind == "text" or "message_content.text" in content:
                parts.append({"type": "text", "content": str(content.get("message_content.text", ""))})
            elif "message_content.image.image.url" in content:
                parts.append({"type": "uri", "modality": "image", "uri": content["message_content.image.image.url"]})
            else:
                parts.append({"type": str(kind)})
    elif fields.get("message.content") not in (None, ""):
        parts = _openai_content_parts(maybe_json(fields["message.content"]))
    if role == "tool" and fields.get("message.tool_call_id"):
        response = fields.get("message.content")
        parts = [
            {
                "type": "tool_call_response",
                "id": str(fields["message.tool_call_id"]),
                "response": maybe_json(response),
            }
        ]
    for call in _indexed(fields, "message.tool_calls.").values():
        parts.append(
            _tool_call_part(
                call.get("tool_call.id"),
                call.get("tool_call.function.name"),
                call.get("tool_call.function.arguments"),
            )
        )
    if fields.get("message.function_call_name"):
        parts.append(
            _tool_call_part(
                None, fields["message.function_call_name"], fields.get("message.function_call_arguments_json")
            )
        )
    return _finish(role, parts, {"name": fields.get("message.name")})


def _openllmetry_message(fields: Mapping[str, Any], default_role: str) -> Message:
    role = str(fields.get("role") or default_role)
    parts = _openai_content_parts(maybe_json(fields.get("content")))
    if role == "tool" and fields.get("tool_call_id"):
        parts = [
            {
                "type": "tool_call_response",
                "id": str(fields["tool_call_id"]),
                "response": maybe_json(fields.get("content")),
            }
        ]
    for call in _indexed(fields, "tool_calls.").values():
        parts.append(_tool_call_part(call.get("id"), call.get("name"), call.get("arguments")))
    if fields.get("function_call.name"):
        parts.append(_tool_call_part(None, fields["function_call.name"], fields.get("function_call.arguments")))
    return _finish(role, parts, {"finish_reason": fields.get("finish_reason")})


def _from_message_events(events: Sequence[EventLike]) -> tuple[list[Message] | None, list[Message] | None]:
    inputs: list[Message] = []
    outputs: list[Message] = []
    for event in events:
        attrs = event.attributes
        role = _MESSAGE_EVENT_ROLES.get(event.name)
        if role is None and event.name != "gen_ai.choice":
            continue
        # As span events the body is flattened into attributes, or packed as JSON in gen_ai.event.content.
        body: Any = maybe_json(attrs.get("gen_ai.event.content"))
        if not isinstance(body, dict):
            body = {}
            for key, value in attrs.items():
                if key.startswith("message."):
                    nested = body.setdefault("message", {})
                    if isinstance(nested, dict):
                        nested[key[len("message.") :]] = maybe_json(value)
                elif not key.startswith("gen_ai."):
                    body[key] = maybe_json(value)
        if role is not None:
            body.setdefault("role", role)
            message = normalize_message(body, role)
            if message is not None:
                inputs.append(message)
        else:
            message = normalize_message(body, "assistant")
            if message is not None:
                if message.get("role") in (None, "user"):
                    message["role"] = "assistant"
                outputs.append(message)
    return inputs or None, outputs or None


def _event_attribute(events: Sequence[EventLike], event_name: str, key: str) -> Any:
    for event in events:
        if event.name == event_name and key in event.attributes:
            return event.attributes[key]
    return None


def _with_system_instructions(attrs: Mapping[str, Any], messages: list[Message] | None) -> list[Message] | None:
    instructions = maybe_json(attrs.get("gen_ai.system_instructions"))
    if instructions in (None, "", []):
        return messages
    parts = instructions if isinstance(instructions, list) else [instructions]
    system = _finish("system", [p if isinstance(p, dict) else {"type": "text", "content": str(p)} for p in parts])
    return [system, *(messages or [])]


def extract_messages(
    attrs: Mapping[str, Any], events: Sequence[EventLike]
) -> tuple[list[Message] | None, list[Message] | None]:
    """(input messages, output messages) of an LLM span; either may be None when the span carries none."""
    inputs = normalize_messages(attrs.get("gen_ai.input.messages"), "user")
    outputs = normalize_messages(attrs.get("gen_ai.output.messages"), "assistant")
    if inputs is None:
        inputs = normalize_messages(_event_attribute(events, _DETAILS_EVENT, "gen_ai.input.messages"), "user")
    if outputs is None:
        outputs = normalize_messages(_event_attribute(events, _DETAILS_EVENT, "gen_ai.output.messages"), "assistant")
    inputs = _with_system_instructions(attrs, inputs) if inputs or "gen_ai.system_instructions" in attrs else None
    if inputs is None:
        grouped = _indexed(attrs, "llm.input_messages.")
        inputs = [_openinference_message(fields) for fields in grouped.values()] or None
    if outputs is None:
        grouped = _indexed(attrs, "llm.output_messages.")
        outputs = [_openinference_message(fields) for fields in grouped.values()] or None
    if inputs is None:
        grouped = _indexed(attrs, "gen_ai.prompt.")
        inputs = [_openllmetry_message(fields, "user") for fields in grouped.values()] or None
    if outputs is None:
        grouped = _indexed(attrs, "gen_ai.completion.")
        outputs = [_openllmetry_message(fields, "assistant") for fields in grouped.values()] or None
    if (inputs is None or outputs is None) and events:
        event_inputs, event_outputs = _from_message_events(events)
        inputs = inputs or event_inputs
        outputs = outputs or event_outputs
        if inputs is None:
            inputs = normalize_messages(_event_attribute(events, "gen_ai.content.prompt", "gen_ai.prompt"), "user")
        if outputs is None:
            outputs = normalize_messages(
                _event_attribute(events, "gen_ai.content.completion", "gen_ai.completion"), "assistant"
            )
    return inputs, outputs


def finish_reason_of(messages: Iterable[Message] | None) -> str | None:
    for message in messages or ():
        reason = message.get("finish_reason")
        if isinstance(reason, str) and reason:
            return reason
    return None
