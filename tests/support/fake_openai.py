"""A tiny OpenAI-compatible provider on loopback, so real instrumented clients can be traced end to end.

Run as ``python -m tests.support.fake_openai [--port N]``: it binds 127.0.0.1 (port 0 = any free one) and
prints ``PORT=<n>`` on its first stdout line once it accepts connections.

Behaviour is fixed so tests can assert exact numbers:
- ``POST /v1/chat/completions`` answers with ``REPLY_TEXT`` and ``USAGE`` (cached and reasoning details
  included), as ``RESPONSE_MODEL`` with id ``RESPONSE_ID``;
- ``"stream": true`` sends the reply in ``len(STREAM_PIECES)`` SSE chunks, the first after
  ``FIRST_CHUNK_DELAY_S`` and the rest ``CHUNK_GAP_S`` apart, then a usage chunk when
  ``stream_options.include_usage`` asks for it — so time to first token is well below the call's latency;
- a request with ``tools`` gets a tool call to the first tool, finish reason ``tool_calls``;
- a last user message containing ``ERROR_TRIGGER`` gets HTTP 400 with an OpenAI-style error body, one
  containing ``RATE_LIMIT_TRIGGER`` HTTP 429 (``rate_limit_exceeded``) with ``retry-after``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
RESPONSE_ID = "chatcmpl-fake0001"
REPLY_TEXT = "Open Settings, then Security, then Reset password."
STREAM_PIECES = ("Open Settings, ", "then Security, ", "then Reset password.")
TOOL_CALL_ID = "call_fake_weather_1"
TOOL_ARGUMENTS = '{"city": "Paris"}'
ERROR_TRIGGER = "please fail"
RATE_LIMIT_TRIGGER = "please rate limit"
USAGE: dict[str, Any] = {
    "prompt_tokens": 120,
    "completion_tokens": 30,
    "total_tokens": 150,
    "prompt_tokens_details": {"cached_tokens": 64},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
RESPONSE_DELAY_S = 0.05
FIRST_CHUNK_DELAY_S = 0.05
CHUNK_GAP_S = 0.08
CREATED = 1_763_600_000


def _last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _message(request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    tools = request.get("tools") or []
    if tools:
        name = tools[0].get("function", {}).get("name", "tool")
        call = {
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": name, "arguments": TOOL_ARGUMENTS},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    return {"role": "assistant", "content": REPLY_TEXT}, "stop"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read their own assertions, not an access log

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        if ERROR_TRIGGER in _last_user_text(request):
            self._json(
                400,
                {
                    "error": {
                        "message": "The request was rejected on purpose.",
                        "type": "invalid_request_error",
                        "code": "fake_rejection",
                    }
                },
            )
            return
        if RATE_LIMIT_TRIGGER in _last_user_text(request):
            self._json(
                429,
                {
                    "error": {
                        "message": "Rate limit reached for requests (fake).",
                        "type": "requests",
                        "code": "rate_limit_exceeded",
                    }
                },
            )
            return
        message, finish_reason = _message(request)
        if request.get("stream"):
            self._stream(request, message, finish_reason)
            return
        time.sleep(RESPONSE_DELAY_S)
        self._json(
            200,
            {
                "id": RESPONSE_ID,
                "object": "chat.completion",
                "created": CREATED,
                "model": RESPONSE_MODEL,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
                ],
                "usage": USAGE,
            },
        )

    def _stream(self, request: dict[str, Any], message: dict[str, Any], finish_reason: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def send(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> None:
            chunk: dict[str, Any] = {
                "id": RESPONSE_ID,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": RESPONSE_MODEL,
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if usage is not None:
                chunk["usage"] = usage
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()

        time.sleep(FIRST_CHUNK_DELAY_S)
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            send(
                [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "tool_calls": [{"index": 0, **call}]},
                        "finish_reason": None,
                    }
                ]
            )
        else:
            for i, piece in enumerate(STREAM_PIECES):
                if i:
                    time.sleep(CHUNK_GAP_S)
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                send([{"index": 0, "delta": delta, "finish_reason": None}])
        send([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
        if (request.get("stream_options") or {}).get("include_usage"):
            send([], USAGE)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def serve(port: int = 0) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    print(f"PORT={server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    serve(parser.parse_args().port)
    sys.exit(0)
