"""The published JSON Schema is generated from the model; a stale copy would mislead every integrator."""

from __future__ import annotations

from pathlib import Path

import orjson

from collector.events import event_json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "event-schema.json"


def test_committed_schema_matches_the_model() -> None:
    committed = orjson.loads(SCHEMA_FILE.read_bytes())
    assert committed == orjson.loads(orjson.dumps(event_json_schema())), "run `make schema` and commit the result"
