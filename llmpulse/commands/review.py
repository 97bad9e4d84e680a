"""`llmpulse review export|import|promote`: the weekly human review of judged traffic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from llmpulse.console import console
from llmpulse.errors import OperatorError


def _fail(message: str) -> OperatorError:
    return OperatorError(message)


def register(app: typer.Typer) -> None:
    review = typer.Typer(no_args_is_help=True, help="Human review: sample out, labels in, golden set out.")
    app.add_typer(review, name="review")

    @review.command("export")
    def export(
        since: Annotated[str, typer.Option(help="Window start: a duration ago (7d) or RFC 3339.")] = "7d",
        until: Annotated[str | None, typer.Option(help="Window end (default now).")] = None,
        n: Annotated[int, typer.Option("--n", help="Events to review.")] = 50,
        rubric: Annotated[
            str | None, typer.Option(help="Rubric whose judge scores to show (default: first rule's).")
        ] = None,
        out: Annotated[Path, typer.Option(help="Directory for the CSV and JSONL files.")] = Path(".llmpulse/review"),
    ) -> None:
        """Write a stratified review sample (low scores, high cost, errors, new prompt versions, random)."""
        from analyzers.judge.config import build_redactor, build_rubrics
        from analyzers.judge.review import ReviewError, select_review_sample, write_review_files
        from analyzers.judge.rules import load_rules
        from llmpulse.commands.judge import parse_when
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        settings = get_settings()
        rubrics = build_rubrics(settings)
        name = rubric or load_rules(settings.judge_rules_file).rules[0].rubric
        if name not in rubrics:
            raise _fail(f"unknown rubric {name!r} (known: {', '.join(sorted(rubrics))})")
        end = parse_when(until, datetime.now(UTC), "--until")
        start = parse_when(since, end, "--since")
        try:
            items = select_review_sample(
                open_store(settings), rubric=rubrics[name], since=start, until=end, n=n,
                link_template=settings.review_link_template, redactor=build_redactor(settings),
            )
        except ReviewError as exc:
            raise _fail(str(exc)) from None
        stem = f"review-{end:%Y%m%d-%H%M}"
        csv_path, jsonl_path = write_review_files(items, out, stem)
        by_stratum: dict[str, int] = {}
        for item in items:
            by_stratum[item["stratum"]] = by_stratum.get(item["stratum"], 0) + 1
        console.print(f"wrote {len(items)} events to {csv_path} and {jsonl_path} "
                      f"({', '.join(f'{k}: {v}' for k, v in by_stratum.items()) or 'nothing in the window'})")
        console.print("fill in human_score or human_label (and is_failure, notes, reviewer), then "
                      f"`llmpulse review import {csv_path}`")

    @review.command("import")
    def import_(
        file: Annotated[Path, typer.Argument(help="A filled-in review CSV or JSONL.")],
        reviewer: Annotated[str, typer.Option(help="Reviewer for rows that name none.")] = "unknown",
        rubric: Annotated[str | None, typer.Option(help="Rubric for rows without a rubric column.")] = None,
    ) -> None:
        """Store the human labels of a review file (all rows or none)."""
        from analyzers.judge.config import build_rubrics
        from analyzers.judge.review import ReviewError, parse_labels, read_review_file, store_labels
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        settings = get_settings()
        try:
            labels, unlabeled = parse_labels(
                read_review_file(file), rubrics=build_rubrics(settings), source=str(file),
                default_rubric=rubric, default_reviewer=reviewer,
            )
        except ReviewError as exc:
            raise _fail(str(exc)) from None
        store_labels(open_store(settings), labels)
        failures = sum(label.is_failure for label in labels)
        console.print(f"stored {len(labels)} labels ({failures} failures) from {file}; {unlabeled} rows unlabeled")

    @review.command("promote")
    def promote(
        out: Annotated[Path, typer.Option(help="Golden-set JSONL to write.")] = Path(".llmpulse/review/golden.jsonl"),
        since: Annotated[str, typer.Option(help="Labels imported since (duration ago or RFC 3339).")] = "3650d",
    ) -> None:
        """Export reviewed failures as a golden evaluation set (input, bad output, label, notes)."""
        from analyzers.judge.config import build_redactor
        from analyzers.judge.review import golden_examples, write_golden
        from llmpulse.commands.judge import parse_when
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        settings = get_settings()
        examples = golden_examples(open_store(settings), since=parse_when(since, datetime.now(UTC), "--since"),
                                   redactor=build_redactor(settings))
        write_golden(examples, out)
        console.print(f"wrote {len(examples)} reviewed failures to {out}")
