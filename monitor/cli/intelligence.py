"""tosmon commands for clause intelligence: compare two files, list change records."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.clauses import SEVERITIES
from monitor.cli.app import (
    AppContext,
    emit_json,
    fmt_time,
    is_tty,
    main,
    parse_when,
    safe_terminal_text,
)
from monitor.cli.terminal import SEVERITY_COLOURS, print_report


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
    from monitor.api import compare_files
    from monitor.report import report_to_json

    report = compare_files(old, new, service=service)
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
    from monitor.listing import chosen_min_severity

    records = app.monitor.changes(
        since=parse_when(since, option="--since") if since else None,
        services=services,
        topics=topics,
        min_severity=chosen_min_severity(min_severity, show_all=show_all),
        limit=limit,
    )
    if as_json:
        emit_json([r.as_dict() for r in records])
        return
    if not records:
        click.echo("No changes match.")
    for r in records:
        sev = click.style(f"{r.severity:<8}", fg=SEVERITY_COLOURS.get(r.severity))
        click.echo(
            f"#{r.id:<6} {fmt_time(r.detected_at)}  {sev} {r.document}: "
            f"{safe_terminal_text(r.headline or r.summary)}"
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
