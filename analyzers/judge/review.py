"""Humans in the loop: a stratified review sample out (CSV + JSONL), human labels in, golden set out.

Export strata, in order: low judge scores, high cost, errors, new prompt versions (first seen inside the
window), random. Each stratum gets n/5 of the sample (random takes the remainder); slots a stratum cannot fill
go to the others, so the file has n rows whenever n events exist. Events are LLM calls (no tool runs or
embeddings), ordered by a hash of event_id within a stratum, so the same window gives the same file.

Import validates every row against its rubric and stores nothing if any row is wrong (errors name the file
and line). A blank `is_failure` is derived from the score (below the rubric's "good" threshold, fail, or a bad
label). Re-importing a reviewer's label for an event replaces it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
from clickhouse_connect.driver.client import Client

from analyzers.judge.redaction import Redactor
from analyzers.judge.rubrics import Rubric, ScoreType
from analyzers.judge.rules import DEFAULT_OPERATIONS
from analyzers.judge.sampling import sample_sql_expression

STRATA: Final = ("low_score", "high_cost", "error", "new_prompt_version", "random")
REVIEW_COLUMNS: Final = (
    "event_id", "stratum", "link", "rubric", "rubric_version", "judge_score", "judge_label", "judge_reason",
    "app", "environment", "feature", "model", "prompt_version", "start_time", "status", "error_type",
    "cost_usd", "input", "output", "human_score", "human_label", "is_failure", "notes", "reviewer",
)
_REVIEW_HASH: Final = sample_sql_expression(salt="llmpulse-review:")
_NEW_VERSION_LOOKBACK: Final = timedelta(days=90)
_TRUE: Final = frozenset({"1", "true", "yes", "y", "x", "fail", "failure", "bad"})
_FALSE: Final = frozenset({"0", "false", "no", "n", "ok", "good", "pass"})


class ReviewError(ValueError):
    """A review file that cannot be used; the message lists each bad row as FILE:LINE: problem."""


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# ------------------------------------------------------------------------------------------------- export


def _stratum_ids(client: Client, rubric: Rubric, since: datetime, until: datetime, n: int) -> dict[str, list[str]]:
    params: dict[str, Any] = {
        "since": _utc(since), "until": _utc(until), "n": n, "ops": list(DEFAULT_OPERATIONS),
        "rubric": rubric.name, "good": float(rubric.good_at_least if rubric.score_type == ScoreType.SCALE else 1),
        "first": _utc(since) - _NEW_VERSION_LOOKBACK,
    }
    window = ("start_time >= {since:DateTime64(3, 'UTC')} AND start_time < {until:DateTime64(3, 'UTC')} "
              "AND operation IN {ops:Array(String)}")
    queries = {
        "low_score": f"""
            SELECT event_id FROM judgments
            WHERE rubric = {{rubric:String}} AND status = 'scored'
              AND event_time >= {{since:DateTime64(3, 'UTC')}} AND event_time < {{until:DateTime64(3, 'UTC')}}
            GROUP BY event_id HAVING argMax(score, judged_at) < {{good:Float64}}
            ORDER BY argMax(score, judged_at), {_REVIEW_HASH} LIMIT {{n:UInt32}}""",
        "high_cost": f"""
            SELECT event_id FROM events WHERE {window} AND cost_usd IS NOT NULL
            ORDER BY cost_usd DESC, event_id LIMIT {{n:UInt32}}""",
        "error": f"""
            SELECT event_id FROM events WHERE {window} AND status = 'error'
            ORDER BY {_REVIEW_HASH} LIMIT {{n:UInt32}}""",
        "new_prompt_version": f"""
            SELECT event_id FROM events WHERE {window} AND prompt_version != ''
              AND (app, feature, prompt_version) IN (
                  SELECT app, feature, prompt_version FROM events
                  WHERE start_time >= {{first:DateTime64(3, 'UTC')}} AND start_time < {{until:DateTime64(3, 'UTC')}}
                    AND prompt_version != ''
                  GROUP BY app, feature, prompt_version
                  HAVING min(start_time) >= {{since:DateTime64(3, 'UTC')}})
            ORDER BY {_REVIEW_HASH} LIMIT {{n:UInt32}}""",
        "random": f"""
            SELECT event_id FROM events WHERE {window} AND status = 'ok' AND output_text != ''
            ORDER BY {_REVIEW_HASH} LIMIT {{n:UInt32}}""",
    }
    return {name: [str(r[0]) for r in client.query(sql, parameters=params).result_rows]
            for name, sql in queries.items()}


def allocate(candidates: Mapping[str, Sequence[str]], n: int) -> list[tuple[str, str]]:
    """(event_id, stratum) pairs: n/5 per stratum (random takes the rest), unfilled slots passed on."""
    quota = {s: n // len(STRATA) for s in STRATA}
    quota["random"] += n - sum(quota.values())
    chosen: dict[str, str] = {}
    cursor = {s: 0 for s in STRATA}

    def take(stratum: str, k: int) -> int:
        ids = candidates.get(stratum, ())
        taken = 0
        while taken < k and cursor[stratum] < len(ids):
            event_id = ids[cursor[stratum]]
            cursor[stratum] += 1
            if event_id not in chosen:
                chosen[event_id] = stratum
                taken += 1
        return taken

    for stratum in STRATA:
        take(stratum, quota[stratum])
    for stratum in ("random", *STRATA[:-1]):  # spill-over
        take(stratum, n - len(chosen))
    return list(chosen.items())


_DETAILS_SQL: Final = """
SELECT e.event_id, e.e_trace, e.e_app, e.e_env, e.e_feature, e.e_model, e.e_pv, e.e_start, e.e_status,
       e.e_error, e.e_cost, e.e_input, e.e_output, j.j_score, j.j_label, j.j_reason, j.j_version
FROM (
    SELECT event_id, any(trace_id) AS e_trace, any(app) AS e_app, any(environment) AS e_env,
           any(feature) AS e_feature, any(model) AS e_model, any(prompt_version) AS e_pv,
           any(start_time) AS e_start, any(status) AS e_status, any(error_type) AS e_error,
           any(cost_usd) AS e_cost, any(input_text) AS e_input, any(output_text) AS e_output
    FROM events
    WHERE start_time >= {since:DateTime64(3, 'UTC')} AND start_time < {until:DateTime64(3, 'UTC')}
      AND event_id IN {ids:Array(String)}
    GROUP BY event_id
) AS e
LEFT JOIN (
    SELECT event_id, argMax(score, judged_at) AS j_score, argMax(label, judged_at) AS j_label,
           argMax(reason, judged_at) AS j_reason, argMax(rubric_version, judged_at) AS j_version
    FROM judgments
    WHERE rubric = {rubric:String} AND status = 'scored' AND event_id IN {ids:Array(String)}
    GROUP BY event_id
) AS j ON e.event_id = j.event_id
SETTINGS join_use_nulls = 1
"""


def select_review_sample(
    client: Client,
    *,
    rubric: Rubric,
    since: datetime,
    until: datetime,
    n: int,
    link_template: str,
    redactor: Redactor,
) -> list[dict[str, Any]]:
    if n <= 0:
        raise ReviewError(f"--n must be positive, got {n}")
    picks = allocate(_stratum_ids(client, rubric, since, until, n), n)
    if not picks:
        return []
    ids = [event_id for event_id, _ in picks]
    rows = client.query(
        _DETAILS_SQL, parameters={"since": _utc(since), "until": _utc(until), "ids": ids, "rubric": rubric.name}
    ).result_rows
    details = {r[0]: r for r in rows}
    items = []
    for event_id, stratum in picks:
        row = details.get(event_id)
        if row is None:
            continue
        (_, trace_id, app, env, feature, model, pv, start, status, error_type, cost, inp, out,
         score, label, reason, version) = row
        items.append({
            "event_id": event_id,
            "stratum": stratum,
            "link": link_template.format(event_id=event_id, trace_id=trace_id),
            "rubric": rubric.name,
            "rubric_version": version if version is not None else "",
            "judge_score": "" if score is None else _fmt_score(score),
            "judge_label": label or "",
            "judge_reason": reason or "",
            "app": app, "environment": env, "feature": feature, "model": model, "prompt_version": pv,
            "start_time": _utc(start).isoformat().replace("+00:00", "Z"),
            "status": status, "error_type": error_type,
            "cost_usd": "" if cost is None else f"{cost:.6f}",
            "input": redactor(inp), "output": redactor(out),
            "human_score": "", "human_label": "", "is_failure": "", "notes": "", "reviewer": "",
        })
    return items


def _fmt_score(score: float) -> str:
    return str(int(score)) if float(score).is_integer() else f"{score:g}"


def write_review_files(items: Sequence[Mapping[str, Any]], out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.jsonl"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(REVIEW_COLUMNS))
        writer.writeheader()
        for item in items:
            writer.writerow({k: item.get(k, "") for k in REVIEW_COLUMNS})
    with jsonl_path.open("wb") as fh:
        for item in items:
            fh.write(orjson.dumps({k: item.get(k, "") for k in REVIEW_COLUMNS}) + b"\n")
    return csv_path, jsonl_path


# ------------------------------------------------------------------------------------------------- import


@dataclass(frozen=True, slots=True)
class HumanLabel:
    event_id: str
    rubric: str
    reviewer: str
    score: float | None
    label: str
    is_failure: bool
    notes: str
    event_time: datetime | None
    app: str
    feature: str
    model: str
    prompt_version: str
    input_text: str
    output_text: str
    source_file: str
    labeled_at: datetime


LABEL_COLUMNS: Final = tuple(f.name for f in fields(HumanLabel))


def read_review_file(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a CSV (header line 1) or JSONL file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReviewError(f"cannot read {path}: {exc}") from None
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = []
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ReviewError(f"{path}:{number}: invalid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise ReviewError(f"{path}:{number}: expected a JSON object per line")
            rows.append((number, value))
        return rows
    if path.suffix.lower() != ".csv":
        raise ReviewError(f"{path}: use a .csv or .jsonl file (as `llmpulse review export` writes)")
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    if reader.fieldnames is None or "event_id" not in reader.fieldnames:
        raise ReviewError(f"{path}: the CSV header has no event_id column")
    return [(reader.line_num, dict(row)) for row in reader]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _human_verdict(rubric: Rubric, score_text: str, label_text: str) -> tuple[float, str]:
    """(score, label) as stored, or ValueError saying what is wrong."""
    if rubric.score_type == ScoreType.SCALE:
        raw = score_text or label_text
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(
                f"human_score must be an integer from {rubric.scale_min} to {rubric.scale_max}, got {raw!r}"
            ) from None
        if not value.is_integer() or not rubric.scale_min <= value <= rubric.scale_max:
            raise ValueError(f"human_score must be an integer from {rubric.scale_min} to {rubric.scale_max}, "
                             f"got {raw!r}")
        return value, ""
    if rubric.score_type == ScoreType.PASS_FAIL:
        raw = (label_text or score_text).lower()
        if raw in ("pass", "1", "yes", "true", "ok"):
            return 1.0, "pass"
        if raw in ("fail", "0", "no", "false"):
            return 0.0, "fail"
        raise ValueError(f"human_label must be pass or fail, got {raw!r}")
    raw = label_text or score_text
    names = {name.lower(): name for name in rubric.labels}
    name = names.get(raw.lower())
    if name is None:
        raise ValueError(f"human_label must be one of {', '.join(rubric.labels)}, got {raw!r}")
    return (1.0 if name in rubric.good_labels else 0.0), name


def parse_labels(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    rubrics: Mapping[str, Rubric],
    source: str,
    default_rubric: str | None = None,
    default_reviewer: str = "unknown",
    labeled_at: datetime | None = None,
) -> tuple[list[HumanLabel], int]:
    """Validated labels and the number of rows left unlabeled; ReviewError lists every bad row."""
    labeled_at = labeled_at or datetime.now(UTC)
    labels: list[HumanLabel] = []
    errors: list[str] = []
    unlabeled = 0
    for line, row in rows:
        where = f"{source}:{line}"
        score_text, label_text = _text(row.get("human_score")), _text(row.get("human_label"))
        if not score_text and not label_text:
            unlabeled += 1
            continue
        event_id = _text(row.get("event_id"))
        if not event_id:
            errors.append(f"{where}: event_id is empty")
            continue
        rubric_name = _text(row.get("rubric")) or default_rubric
        if not rubric_name:
            errors.append(f"{where}: no rubric column and no --rubric given")
            continue
        rubric = rubrics.get(rubric_name)
        if rubric is None:
            errors.append(f"{where}: unknown rubric {rubric_name!r} (known: {', '.join(sorted(rubrics))})")
            continue
        try:
            score, label = _human_verdict(rubric, score_text, label_text)
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            continue
        failure_text = _text(row.get("is_failure")).lower()
        if not failure_text:
            is_failure = not rubric.is_good(score)
        elif failure_text in _TRUE:
            is_failure = True
        elif failure_text in _FALSE:
            is_failure = False
        else:
            errors.append(f"{where}: is_failure must be yes or no (or blank), got {failure_text!r}")
            continue
        labels.append(HumanLabel(
            event_id=event_id, rubric=rubric.name, reviewer=_text(row.get("reviewer")) or default_reviewer,
            score=score, label=label, is_failure=is_failure, notes=_text(row.get("notes")),
            event_time=_parse_time(_text(row.get("start_time"))), app=_text(row.get("app")),
            feature=_text(row.get("feature")), model=_text(row.get("model")),
            prompt_version=_text(row.get("prompt_version")), input_text=_text(row.get("input")),
            output_text=_text(row.get("output")), source_file=source, labeled_at=labeled_at,
        ))
    if errors:
        shown = errors[:20]
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ReviewError(f"{len(errors)} row(s) of {source} cannot be imported (nothing was stored):\n"
                          + "\n".join(shown) + more)
    return labels, unlabeled


def store_labels(client: Client, labels: Sequence[HumanLabel]) -> None:
    if labels:
        client.insert(
            "review_labels",
            [[getattr(label, c) for c in LABEL_COLUMNS] for label in labels],
            column_names=list(LABEL_COLUMNS),
        )


# ------------------------------------------------------------------------------------------------ promote

_PROMOTE_SQL: Final = """
SELECT l.event_id, l.rubric, l.reviewer, l.score, l.label, l.notes, l.labeled_at, l.app, l.feature, l.model,
       l.prompt_version, l.input_text, l.output_text, e.e_input, e.e_output
FROM (SELECT * FROM review_labels FINAL
      WHERE is_failure AND labeled_at >= {since:DateTime64(3, 'UTC')}) AS l
LEFT JOIN (
    SELECT event_id, any(input_text) AS e_input, any(output_text) AS e_output
    FROM events WHERE event_id IN (SELECT event_id FROM review_labels WHERE is_failure)
    GROUP BY event_id
) AS e ON l.event_id = e.event_id
ORDER BY l.labeled_at, l.event_id
"""


def golden_examples(client: Client, *, since: datetime, redactor: Redactor) -> list[dict[str, Any]]:
    """Reviewed failures, one per (event, rubric) (the latest label), as golden-set records."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for (event_id, rubric, reviewer, score, label, notes, labeled_at, app, feature, model, pv, file_in,
         file_out, event_in, event_out) in client.query(_PROMOTE_SQL, parameters={"since": _utc(since)}).result_rows:
        latest[(event_id, rubric)] = {
            "event_id": event_id,
            "rubric": rubric,
            # The stored event's text when it is still there (the file may hold an edited copy).
            "input": redactor(event_in or file_in or ""),
            "bad_output": redactor(event_out or file_out or ""),
            "label": label or ("" if score is None else _fmt_score(score)),
            "notes": notes,
            "reviewer": reviewer,
            "app": app, "feature": feature, "model": model, "prompt_version": pv,
            "labeled_at": _utc(labeled_at).isoformat().replace("+00:00", "Z"),
        }
    return list(latest.values())


def write_golden(examples: Sequence[Mapping[str, Any]], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        for example in examples:
            fh.write(orjson.dumps(example) + b"\n")
    return out
