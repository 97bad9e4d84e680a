"""Versioned rubrics: YAML files (analyzers/rubrics/*.yaml, plus a configured directory) turned into prompts.

A rubric file:

    name: helpfulness
    version: 2
    description: ...
    score: {type: scale, min: 1, max: 5, good_at_least: 4}      # or {type: pass_fail}
                                                                   # or {type: labels, labels: {name: good?}}
    system: |  instructions for the judge
    template: | the user message, with {{input}}, {{output}}, {{feature}}, {{app}}, {{model}},
                {{prompt_version}}, {{metadata}} (all of it, one "key: value" per line) or {{metadata.KEY}}
    max_output_tokens: 300

The strict answer format is appended by code (`format_instructions`), so every rubric of a score type asks for
the same JSON shape and `parsing.parse_verdict` can check it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

BUILTIN_DIR: Final = Path(__file__).resolve().parent.parent / "rubrics"
TEMPLATE_VARIABLES: Final = ("input", "output", "feature", "app", "model", "prompt_version", "metadata")
_VARIABLE: Final = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_.\-]+))?\s*\}\}")


class RubricError(ValueError):
    """A rubric file is missing, unreadable or invalid; the message names the file and the problem."""


class ScoreType(StrEnum):
    SCALE = "scale"
    PASS_FAIL = "pass_fail"
    LABELS = "labels"


class _ScoreSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ScoreType
    min: int = 1
    max: int = 5
    good_at_least: int | None = None
    labels: dict[str, bool] = Field(default_factory=dict, description="label -> counts as good")

    @model_validator(mode="after")
    def _check(self) -> _ScoreSpec:
        if self.type == ScoreType.SCALE:
            if self.max <= self.min:
                raise ValueError(f"score.max ({self.max}) must be above score.min ({self.min})")
            if self.good_at_least is not None and not self.min <= self.good_at_least <= self.max:
                raise ValueError("score.good_at_least must lie within [min, max]")
        if self.type == ScoreType.LABELS:
            if len(self.labels) < 2:
                raise ValueError("a labels rubric needs at least two labels under score.labels")
            if not any(self.labels.values()) or all(self.labels.values()):
                raise ValueError("score.labels must mark some labels good (true) and some bad (false)")
        elif self.labels:
            raise ValueError(f"score.labels only applies to type 'labels', not {self.type.value!r}")
        return self


class _RubricFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: int = Field(ge=1)
    description: str = ""
    score: _ScoreSpec
    system: str = Field(min_length=1)
    template: str = Field(min_length=1)
    max_output_tokens: int = Field(default=300, ge=16, le=4096)


@dataclass(frozen=True, slots=True)
class Rubric:
    name: str
    version: int
    description: str
    score_type: ScoreType
    scale_min: int
    scale_max: int
    good_at_least: int
    labels: tuple[str, ...]
    good_labels: frozenset[str]
    system: str
    template: str
    max_output_tokens: int
    source: str

    @property
    def categories(self) -> tuple[float, ...]:
        """The score values a judgment or a human label can take (ordered; kappa uses them)."""
        if self.score_type == ScoreType.SCALE:
            return tuple(float(v) for v in range(self.scale_min, self.scale_max + 1))
        if self.score_type == ScoreType.PASS_FAIL:
            return (0.0, 1.0)
        return tuple(float(i) for i in range(len(self.labels)))

    def is_good(self, score: float) -> bool:
        """Whether a stored score counts as acceptable (review failures and pass rates use this)."""
        if self.score_type == ScoreType.SCALE:
            return score >= self.good_at_least
        return score >= 1.0

    def format_instructions(self) -> str:
        if self.score_type == ScoreType.SCALE:
            shape = (
                f'{{"score": <integer from {self.scale_min} to {self.scale_max}>, '
                f'"reason": "<one short sentence>"}}'
            )
        elif self.score_type == ScoreType.PASS_FAIL:
            shape = '{"verdict": "pass" or "fail", "reason": "<one short sentence>"}'
        else:
            names = ", ".join(f'"{label}"' for label in self.labels)
            shape = f'{{"label": one of {names}, "reason": "<one short sentence>"}}'
        return f"Respond with only a JSON object, no other text, exactly in this shape: {shape}"

    def render(
        self,
        *,
        input_text: str,
        output_text: str,
        feature: str = "",
        app: str = "",
        model: str = "",
        prompt_version: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> list[dict[str, str]]:
        """The chat messages for one event (texts already redacted by the caller)."""
        meta = dict(metadata or {})
        values = {
            "input": input_text,
            "output": output_text,
            "feature": feature,
            "app": app,
            "model": model,
            "prompt_version": prompt_version,
            "metadata": "\n".join(f"{k}: {v}" for k, v in sorted(meta.items())) or "(none)",
        }

        def fill(match: re.Match[str]) -> str:
            name, key = match.group(1), match.group(2)
            if key is not None:
                return meta.get(key, "")
            return values[name]

        user = _VARIABLE.sub(fill, self.template)
        system = f"{self.system.rstrip()}\n\n{self.format_instructions()}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _check_template(template: str, where: str) -> None:
    seen = set()
    for match in _VARIABLE.finditer(template):
        name, key = match.group(1), match.group(2)
        if name not in TEMPLATE_VARIABLES:
            raise RubricError(
                f"{where}: unknown template variable {{{{{name}}}}}; use one of "
                + ", ".join("{{" + v + "}}" for v in TEMPLATE_VARIABLES)
                + " or {{metadata.KEY}}"
            )
        if key is not None and name != "metadata":
            raise RubricError(f"{where}: only metadata has keys ({{{{metadata.KEY}}}}), not {{{{{name}.{key}}}}}")
        seen.add(name)
    if "output" not in seen:
        raise RubricError(f"{where}: the template never shows the output to judge ({{{{output}}}})")


def load_rubric(path: Path) -> Rubric:
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RubricError(f"cannot read rubric {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise RubricError(f"rubric {path}: expected a mapping at the top level")
    try:
        spec = _RubricFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors()
        )
        raise RubricError(f"rubric {path}: {problems}") from None
    _check_template(spec.template, f"rubric {path}")
    score = spec.score
    labels = tuple(score.labels)
    return Rubric(
        name=spec.name,
        version=spec.version,
        description=spec.description.strip(),
        score_type=score.type,
        scale_min=score.min,
        scale_max=score.max,
        # Unless told otherwise, the top two points of a scale are "good" (4 and 5 of 1-5).
        good_at_least=(score.good_at_least if score.good_at_least is not None else score.max - 1)
        if score.type == ScoreType.SCALE
        else 1,
        labels=labels,
        good_labels=frozenset(k for k, good in score.labels.items() if good),
        system=spec.system,
        template=spec.template,
        max_output_tokens=spec.max_output_tokens,
        source=str(path),
    )


def load_rubrics(extra_dirs: Iterable[Path | None] = ()) -> dict[str, Rubric]:
    """Built-in rubrics, then each extra directory's (a later file with the same name wins)."""
    rubrics: dict[str, Rubric] = {}
    for directory in (BUILTIN_DIR, *extra_dirs):
        if directory is None:
            continue
        if not directory.is_dir():
            raise RubricError(f"rubric directory {directory} does not exist")
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            rubric = load_rubric(path)
            rubrics[rubric.name] = rubric
    return rubrics


def score_value(rubric: Rubric, *, score: Any = None, label: str | None = None) -> tuple[float, str]:
    """(stored score, stored label) for a verdict already checked against the rubric's score type."""
    if rubric.score_type == ScoreType.SCALE:
        return float(score), ""
    if rubric.score_type == ScoreType.PASS_FAIL:
        return (1.0, "pass") if label == "pass" else (0.0, "fail")
    assert label is not None
    return (1.0 if label in rubric.good_labels else 0.0), label
