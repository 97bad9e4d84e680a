"""Small, explicit events for tests that need to know exactly what they sent."""

from __future__ import annotations

from typing import Any


def make_event(i: int, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"evt-{i:06d}",
        "app": "support-bot",
        "model": "gpt-4o",
        "provider": "openai",
        "feature": "answer",
        "start_time": f"2026-11-20T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        "latency_ms": 800.0 + i,
        "usage": {"input_tokens": 1000, "output_tokens": 500},
        "input": "How do I reset my password?",
        "output": "Open Settings, then Security, then Reset password.",
    }
    event.update(overrides)
    return event
