"""`llmpulse simulate`: deterministic LLM trace-event traffic with scheduled incidents and ground truth.

    cfg = SimulationConfig(start=datetime(2026, 11, 16, tzinfo=UTC), duration=parse_duration("1d"), seed=1)
    for event in generate(cfg): ...            # contract-v1 dicts in start_time order
    ground_truth(cfg)                          # [{"id", "kind", "start", "end", "labels", "magnitude",
                                               #   "expected_alertname", "secondary_alertnames", "params"}]
    write_simulation(cfg, Path("events.ndjson.gz"), Path("truth.json"))

What consumers should know about the events:
- `execute_tool` events (the tool runs of agent traces, ~9% of events by default) carry the agent's model
  and provider but no `usage`, and never fail: LLM-call metrics (error ratio, latency per model, cost)
  should leave them out. Incident magnitudes are defined over LLM calls.
- Events an incident changed or added carry `metadata["sim_incident"] = <incident id>`; degraded outputs of a
  quality_drop also carry `metadata["sim_quality"] = "bad"` (the hook for a rule-based judge stub);
  provider_outage fallbacks carry the tag "fallback" and `metadata["fallback_from"]`. Clean runs carry none
  of these. Detectors must not read them; tests and judges may.
- A run with incidents equals the clean run (same config, `clean=True`) event for event, except for events
  carrying a marker, calls that traffic_absent removed, and later calls of a trace whose earlier call an
  incident slowed down or failed (their start_time moves).
- Same config -> byte-identical output (with the same numpy version); different seed -> different traffic.
"""

from llmpulse.simulate.catalog import (
    DEFAULT_MODELS,
    AppProfile,
    FeatureProfile,
    ModelProfile,
    TokenDist,
    default_apps,
)
from llmpulse.simulate.incidents import (
    DEFAULT_MAGNITUDE,
    EXPECTED_ALERT,
    INCIDENT_KINDS,
    MAGNITUDE_MEANING,
    Incident,
    IncidentKind,
    default_incidents,
    runaway_trace_id,
)
from llmpulse.simulate.traffic import (
    DEFAULT_RATE_PER_MINUTE,
    Simulation,
    SimulationConfig,
    SimulationStats,
    SimulationSummary,
    generate,
    ground_truth,
    load_ground_truth,
    parse_duration,
    write_simulation,
)

__all__ = [
    "DEFAULT_MAGNITUDE",
    "DEFAULT_MODELS",
    "DEFAULT_RATE_PER_MINUTE",
    "EXPECTED_ALERT",
    "INCIDENT_KINDS",
    "MAGNITUDE_MEANING",
    "AppProfile",
    "FeatureProfile",
    "Incident",
    "IncidentKind",
    "ModelProfile",
    "Simulation",
    "SimulationConfig",
    "SimulationStats",
    "SimulationSummary",
    "TokenDist",
    "default_apps",
    "default_incidents",
    "generate",
    "ground_truth",
    "load_ground_truth",
    "parse_duration",
    "runaway_trace_id",
    "write_simulation",
]
