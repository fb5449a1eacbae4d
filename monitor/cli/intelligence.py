"""tosmon commands for clause intelligence: compare two files, list change records."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.clauses import SEVERITIES
from monitor.cli import main
from monitor.cli.app import AppContext, emit_json, fmt_time, is_tty, parse_when, safe_terminal_text
from monitor.cli.terminal import SEVERITY_COLOURS, print_report
from monitor.errors import MonitorError


def media_type_of(path: Path, content: bytes) -> str:
    """By extension; otherwise HTML if it looks like markup, else plain text."""
    from monitor.extract import MEDIA_TYPES_BY_SUFFIX

    if path.suffix.lower() in MEDIA_TYPES_BY_SUFFIX:
        return MEDIA_TYPES_BY_SUFFIX[path.suffix.lower()]
    head = content[:512].lstrip().lower()
    return "text/html" if head.startswith((b"<!doctype", b"<html", b"<")) else "text/plain"


def read_clauses(path: Path):  # type: ignore[no-untyped-def]
    from monitor.extract import extract_clauses

    try:
        content = path.read_bytes()
    except OSError as exc:
        raise MonitorError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return extract_clauses(content, media_type=media_type_of(path, content))
    except MonitorError as exc:
        raise MonitorError(f"{path}: {exc}") from exc


@main.command()
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--service",
    default="",
    help="The platform's name, used in the explanations (default: 'the platform').",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def compare(old: Path, new: Path, service: str, as_json: bool) -> None:
    """Compare two local files (HTML, Markdown or text) and print the annotated report.

    No database is involved: use it on documents you saved yourself.
    """
    from monitor.report import build_report, report_to_json

    report = build_report(read_clauses(old), read_clauses(new), document_name=service)
    if as_json:
        emit_json(report_to_json(report))
        return
    click.echo(f"{old} -> {new}")
    print_report(report, colour=is_tty())


@main.command()
@click.option("--since", help="Only changes detected on or after this date.")
@click.option("--service", "services", multiple=True, help="Only this service (repeatable).")
@click.option("--topic", "topics", multiple=True, help="Only changes with this label (repeatable).")
@click.option(
    "--min-severity",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Least severity to list (default: low, which hides 'no real change' records).",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List every record, 'no real change' (cosmetic) ones too: --min-severity cosmetic.",
)
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with clause details.")
@click.pass_obj
def changes(
    app: AppContext,
    since: str | None,
    services: tuple[str, ...],
    topics: tuple[str, ...],
    min_severity: str | None,
    show_all: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Change records across all documents, newest first.

    Records that are no real change (only cosmetic edits: a variant the page showed before, a
    spelling edition, link targets, another language) are hidden unless --all is given.
    """
    from monitor.listing import change_records, chosen_min_severity

    _check_topics(topics)
    with app.sessions() as session:
        records = change_records(
            session,
            since=parse_when(since, option="--since") if since else None,
            services=services,
            topics=topics,
            min_severity=chosen_min_severity(min_severity, show_all=show_all),
            limit=limit,
        )
    if as_json:
        emit_json(records)
        return
    if not records:
        click.echo("No changes match.")
    for r in records:
        sev = click.style(f"{r['severity']:<8}", fg=SEVERITY_COLOURS.get(str(r["severity"])))
        click.echo(
            f"#{r['id']:<6} {fmt_time(r['detected_at'])}  {sev} {r['document']}: "
            f"{safe_terminal_text(str(r['headline'] or r['summary']))}"
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def topics(as_json: bool) -> None:
    """The topic labels a change can carry, with what each means (from the taxonomy)."""
    from monitor.listing import topic_list

    rows = topic_list()
    if as_json:
        emit_json(rows)
        return
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            click.echo(f"{group}:")
        click.echo(f"  {row['id']}")
        click.echo(f"      {row['description']}")


def _check_topics(topics: tuple[str, ...]) -> None:
    if not topics:
        return
    from monitor.classify import load_taxonomy

    known = load_taxonomy().topics
    unknown = [t for t in topics if t not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown topic(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            param_hint="--topic",
        )
