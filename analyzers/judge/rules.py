"""Which events get judged, by which rubric: sampling rules from a YAML file.

    rules:
      - name: support-answers
        rubric: helpfulness
        rate: 0.1                      # share of matching events, chosen by hash of event_id
        filters:                       # each a value or a list of values; all must match
          app: support-bot
          feature: [answer, summarize-ticket]
          status: ok
        max_per_hour: 100              # optional caps of this rule (the global caps apply as well)
        max_usd_per_day: 1.0

Filter keys: app, environment, feature, model, provider, prompt_version, operation, status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analyzers.judge.budget import Caps
from analyzers.judge.sampling import is_sampled, sample_sql_condition

FILTER_KEYS: Final = ("app", "environment", "feature", "model", "provider", "prompt_version", "operation", "status")
# Calls whose output an LLM wrote; tool runs and embeddings have nothing to judge.
DEFAULT_OPERATIONS: Final = ("chat", "text_completion", "invoke_agent")


class RulesError(ValueError):
    pass


class RuleFilters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app: tuple[str, ...] | None = None
    environment: tuple[str, ...] | None = None
    feature: tuple[str, ...] | None = None
    model: tuple[str, ...] | None = None
    provider: tuple[str, ...] | None = None
    prompt_version: tuple[str, ...] | None = None
    operation: tuple[str, ...] = DEFAULT_OPERATIONS
    status: tuple[str, ...] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str | int | float):
            return (str(value),)
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return value

    def items(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(key, values) for key in FILTER_KEYS if (values := getattr(self, key)) is not None]

    def matches(self, event: Mapping[str, Any]) -> bool:
        return all(str(event.get(key, "")) in values for key, values in self.items())


class SamplingRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    rubric: str = Field(min_length=1)
    rate: float = Field(gt=0, le=1)
    filters: RuleFilters = Field(default_factory=RuleFilters)
    max_per_hour: int | None = Field(default=None, ge=0)
    max_usd_per_day: float | None = Field(default=None, ge=0)

    @property
    def caps(self) -> Caps:
        return Caps(self.max_per_hour, self.max_usd_per_day)

    def selects(self, event: Mapping[str, Any]) -> bool:
        """Pure form of the SQL selection (`sql_condition`), for tests and previews."""
        return self.filters.matches(event) and is_sampled(str(event["event_id"]), self.rate)

    def sql_condition(self) -> tuple[str, dict[str, Any]]:
        """A WHERE clause over `events` and its parameters (values are bound, never inlined)."""
        parts = [sample_sql_condition(self.rate)]
        params: dict[str, Any] = {}
        for key, values in self.filters.items():
            name = f"f_{key}"
            parts.append(f"{key} IN {{{name}:Array(String)}}")
            params[name] = list(values)
        return " AND ".join(parts), params


class JudgeRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[SamplingRule, ...]

    @model_validator(mode="after")
    def _unique(self) -> JudgeRules:
        names = [r.name for r in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique; repeated: {duplicates}")
        return self

    def check_rubrics(self, known: Sequence[str], where: str) -> None:
        for rule in self.rules:
            if rule.rubric not in known:
                raise RulesError(
                    f"{where}: rule {rule.name!r} uses rubric {rule.rubric!r}, which does not exist "
                    f"(known: {', '.join(sorted(known))})"
                )


DEFAULT_RULES: Final = JudgeRules(
    rules=(SamplingRule(name="default", rubric="helpfulness", rate=0.05, filters=RuleFilters(status=("ok",))),)
)


def parse_rules(raw: Any, where: str) -> JudgeRules:
    if isinstance(raw, list):
        raw = {"rules": raw}
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: expected a mapping with a `rules:` list")
    try:
        return JudgeRules.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"]
            path = ".".join(str(p) for p in loc)
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                rule = raw["rules"][loc[1]] if isinstance(raw.get("rules"), list) else None
                label = rule.get("name") if isinstance(rule, dict) else None
                path = f"rule #{loc[1] + 1}" + (f" ({label})" if label else "") + (
                    "." + ".".join(str(p) for p in loc[2:]) if len(loc) > 2 else ""
                )
            problems.append(f"{path}: {err['msg']}")
        raise RulesError(f"{where}: " + "; ".join(problems)) from None


def load_rules(path: Path | None) -> JudgeRules:
    if path is None:
        return DEFAULT_RULES
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(f"cannot read judge rules {path}: {exc}") from None
    return parse_rules(raw, str(path))
