"""A scriptable OpenAI-compatible judge on loopback, run as a real server in a subprocess.

    python -m tests.support.fake_judge [--port 0]     # prints "PORT=<n>" once it accepts connections

POST /v1/chat/completions answers like a judge model. What it does with a request is a *behaviour*: the
next step of the script if one is queued (POST /_control/script {"steps": [...]}), else the mode
(POST /_control/mode {"mode": ..., "slow_s": ..., "retry_after": ...}). Behaviours:

    ok          a verdict by RULE (below), in the JSON shape the system prompt asks for
    slow        sleeps `slow_s` seconds, then answers like ok
    429         HTTP 429 with a Retry-After header of `retry_after` seconds
    500, 503    an HTTP error
    malformed   200 with broken JSON in the message ('{"score": 4, "reason": "fine"')
    nonjson     200 with prose and no JSON in the message
    fenced      200 with the verdict inside a ```json fence and prose around it
    garbage     200 whose body is not JSON at all

RULE: the verdict follows the first user message (so a fix-up request gets the same verdict). A message
containing BAD_MARKER ("sim_quality: bad", the simulator's quality_drop metadata, which rubrics show through
{{metadata}}) gets a bad verdict (score 1-2, fail, the last label); others a good one mostly (5/4/3 at
50/35/15%, pass 95%, the first label), chosen by an MD5 of the message so the same prompt always scores the
same. `verdict_for(user_text, shape)` is the rule, importable by tests.

GET /_control/stats gives request counts; GET /_control/requests the recent request bodies (to check
redaction); POST /_control/reset clears script, mode and counters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BAD_MARKER = "sim_quality: bad"
_SCALE = re.compile(r'"score": <integer from (\d+) to (\d+)>')
_LABELS = re.compile(r'"label": one of ((?:"[^"]+"(?:, )?)+)')


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "little") / 2**64


def request_shape(system: str) -> tuple[str, Any]:
    """('scale', (lo, hi)) | ('pass_fail', None) | ('labels', [names]) from the format instruction."""
    if m := _SCALE.search(system):
        return "scale", (int(m.group(1)), int(m.group(2)))
    if m := _LABELS.search(system):
        return "labels", re.findall(r'"([^"]+)"', m.group(1))
    return "pass_fail", None


def verdict_for(user_text: str, shape: tuple[str, Any]) -> dict[str, Any]:
    kind, spec = shape
    bad = BAD_MARKER in user_text
    u = _unit(user_text)
    if kind == "scale":
        lo, hi = spec
        good_score = hi if u < 0.5 else hi - 1 if u < 0.85 else hi - 2
        score = (lo if u < 0.5 else lo + 1) if bad else good_score
        return {"score": score, "reason": "degraded reply" if bad else "answers the request"}
    if kind == "labels":
        return {"label": spec[-1] if bad else spec[0], "reason": "rule"}
    return {"verdict": "fail" if bad or u >= 0.95 else "pass", "reason": "rule"}


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.script: deque[str] = deque()
        self.mode = "ok"
        self.slow_s = 0.5
        self.retry_after = "0"
        self.counts: Counter[str] = Counter()
        self.requests = 0
        self.bodies: deque[dict[str, Any]] = deque(maxlen=2000)

    def next_behaviour(self, body: dict[str, Any]) -> str:
        with self.lock:
            behaviour = self.script.popleft() if self.script else self.mode
            self.requests += 1
            self.counts[behaviour] += 1
            self.bodies.append(body)
            return behaviour


STATE = _State()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write (flushed after each request) and without Nagle's delay: split
    # writes on a keep-alive connection would cost a delayed-ACK wait (~40 ms) per answer.
    wbufsize = 1 << 16

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), headers)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        value = json.loads(raw or b"{}")
        return value if isinstance(value, dict) else {}

    def do_GET(self) -> None:
        if self.path == "/_control/stats":
            with STATE.lock:
                self._json(200, {"requests": STATE.requests, "by_behaviour": dict(STATE.counts),
                                 "queued": len(STATE.script), "mode": STATE.mode})
        elif self.path == "/_control/requests":
            with STATE.lock:
                self._json(200, list(STATE.bodies))
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        try:
            body = self._body()
        except ValueError:
            self._json(400, {"error": {"message": "invalid JSON body"}})
            return
        if self.path == "/_control/script":
            with STATE.lock:
                STATE.script.extend(str(s) for s in body.get("steps", []))
            self._json(200, {"queued": len(STATE.script)})
        elif self.path == "/_control/mode":
            with STATE.lock:
                STATE.mode = str(body.get("mode", STATE.mode))
                STATE.slow_s = float(body.get("slow_s", STATE.slow_s))
                STATE.retry_after = str(body.get("retry_after", STATE.retry_after))
            self._json(200, {"mode": STATE.mode})
        elif self.path == "/_control/reset":
            with STATE.lock:
                STATE.reset()
            self._json(200, {"ok": True})
        elif self.path.split("?")[0].rstrip("/").endswith("/chat/completions"):
            self._chat(body)
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def _chat(self, request: dict[str, Any]) -> None:
        behaviour = STATE.next_behaviour(request)
        if behaviour == "slow":
            time.sleep(STATE.slow_s)
            behaviour = "ok"
        if behaviour in ("429", "500", "502", "503"):
            headers = {"retry-after": STATE.retry_after} if behaviour == "429" else {}
            self._json(int(behaviour), {"error": {"message": f"fake judge says {behaviour}"}}, headers)
            return
        if behaviour == "garbage":
            self._send(200, b"<html>upstream proxy error</html>", content_type="text/html")
            return
        messages = request.get("messages") or []
        system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
        user = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        verdict = verdict_for(user, request_shape(system))
        if behaviour == "malformed":
            content = '{"score": 4, "reason": "fine"'
        elif behaviour == "nonjson":
            content = "I would rate this reply a four out of five."
        elif behaviour == "fenced":
            content = f"Here is my assessment:\n```json\n{json.dumps(verdict)}\n```\nHope that helps."
        else:
            content = json.dumps(verdict)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
        self._json(200, {
            "id": "chatcmpl-judge",
            "object": "chat.completion",
            "created": 1_763_600_000,
            "model": request.get("model", "fake-judge"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(content) // 4 + 1,
                      "total_tokens": prompt_chars // 4 + len(content) // 4 + 1},
        })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    print(f"PORT={server.server_address[1]}", flush=True)
    server.serve_forever()


class FakeJudge:
    """Starts the server in a subprocess and drives its control endpoints (for tests)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 20.0) -> FakeJudge:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_judge", "--port", "0"],
            cwd=root, env=env, stdout=subprocess.PIPE, text=True,
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = self._process.stdout.readline()
        if not line.startswith("PORT=") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"fake judge did not start (said {line!r})")
        self.port = int(line.strip().split("=", 1)[1])
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def __enter__(self) -> FakeJudge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        url = f"http://127.0.0.1:{self.port}/_control/{path}"
        response = httpx.request(method, url, json=body, timeout=5.0)
        response.raise_for_status()
        return response.json()

    def script(self, *steps: str) -> None:
        self._control("POST", "script", {"steps": list(steps)})

    def mode(self, mode: str, *, slow_s: float | None = None, retry_after: str | None = None) -> None:
        body: dict[str, Any] = {"mode": mode}
        if slow_s is not None:
            body["slow_s"] = slow_s
        if retry_after is not None:
            body["retry_after"] = retry_after
        self._control("POST", "mode", body)

    def reset(self) -> None:
        self._control("POST", "reset", {})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control("GET", "stats")
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._control("GET", "requests")
        return result


if __name__ == "__main__":
    main()
