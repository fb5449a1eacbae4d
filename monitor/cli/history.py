"""tosmon commands for the record: init, db, check, documents, history, show, diff, import."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor.clauses import SEVERITIES
from monitor.cli.app import (
    AppContext,
    emit_json,
    fmt_time,
    freeze_start_up,
    is_tty,
    main,
    parse_when,
    safe_terminal_text,
)
from monitor.cli.terminal import SEVERITY_COLOURS, print_report

if TYPE_CHECKING:
    from monitor.tracker import CheckResult

OUTCOME_COLOURS = {
    "first": "cyan",
    "unchanged": None,
    "changed": "yellow",
    "failed": "red",
    "skipped": "magenta",
}


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path | None, force: bool) -> None:
    """Write a commented config file to start from (default: ./tosmon.toml)."""
    from monitor.config import example_config_text

    target = path or Path("tosmon.toml")
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; pass --force to overwrite it")
    target.write_text(example_config_text(), encoding="utf-8")
    click.echo(f"Wrote {target}. Edit it, then: tosmon --config {target} check")


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(app: AppContext) -> None:
    """Apply Alembic migrations up to the version this tos-monitor expects."""
    before, after, head = app.monitor.upgrade_schema()
    if before == after:
        click.echo(f"Schema already at {after} (head {head}).")
    else:
        click.echo(f"Schema upgraded from {before or 'empty'} to {after}.")


@main.command()
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option("--no-send", is_flag=True, help="Queue reports but do not deliver them now.")
@click.pass_obj
def check(app: AppContext, ids: tuple[str, ...], as_json: bool, no_send: bool) -> None:
    """Check documents now, once (all declared documents when no ID is given).

    Prints per document: first (a baseline), unchanged, changed (with a summary) or failed (with
    the reason); skipped when a running daemon is checking that document at this moment. Exit
    status 0 whenever the checks ran, whatever they found. Reports queued by the changes found
    are delivered before the command exits (unless --no-send).
    """
    monitor = app.monitor
    if not no_send:
        monitor.check_mail_settings()  # before any work: not after recording a change
    freeze_start_up()
    results = monitor.check(ids)
    if as_json:
        emit_json([r.as_dict() for r in results])
    else:
        _print_results(results)
    delivered = None if no_send else str(monitor.deliver(hold=False)) or None  # after the results
    if delivered and not as_json:
        click.echo(delivered)


def _print_results(results: Sequence[CheckResult]) -> None:
    width = max((len(r.document_id) for r in results), default=10)
    for r in results:
        outcome = click.style(f"{r.outcome:<9}", fg=OUTCOME_COLOURS.get(r.outcome))
        detail = safe_terminal_text(r.detail)
        if r.change_id is not None:
            detail = f"#{r.change_id} [{r.severity}] {detail}"
        click.echo(f"{r.document_id:<{width}}  {outcome}  {detail}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def documents(app: AppContext, as_json: bool) -> None:
    """Every document: its URL, last check, last change and failure state."""
    rows = app.monitor.documents()
    if as_json:
        emit_json([row.as_dict() for row in rows])
        return
    for row in rows:
        state = (
            "ok"
            if not row.failing
            else click.style(
                f"failing since {fmt_time(row.failing_since)} ({row.consecutive_failures}x): "
                f"{safe_terminal_text(str(row.last_error))}",
                fg="red",
            )
        )
        if row.last_check_at is None:
            state = "never checked"
        click.echo(f"{safe_terminal_text(row.id)}  {safe_terminal_text(row.url)}")
        click.echo(
            f"    last check {fmt_time(row.last_check_at)}, last change "
            f"{fmt_time(row.last_change_at)}, {row.versions} version(s), {state}"
        )


@main.command()
@click.argument("document_id", metavar="ID")
@click.option(
    "--min-severity",
    type=click.Choice(SEVERITIES),
    default=None,
    help="Least severity of the changes to show (default: low, which hides 'no real change').",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Show every version and change, 'no real change' (cosmetic) ones too.",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def history(
    app: AppContext,
    document_id: str,
    min_severity: str | None,
    show_all: bool,
    as_json: bool,
) -> None:
    """The versions of one document over time, and the changes between them.

    By default only versions that brought a real change are listed (with the first and the
    latest): versions whose change is cosmetic (a variant the page showed before, spelling, link
    targets) are counted, not listed. --all lists everything; --json always lists every version.
    """
    from monitor.listing import chosen_min_severity

    level = chosen_min_severity(min_severity, show_all=show_all)
    record = app.monitor.history(document_id, min_severity=level)
    if as_json:
        emit_json(record.as_dict())
        return
    versions, changes = record.versions, record.changes
    by_new = {c.new_version: c for c in changes}
    click.echo(
        f"{document_id}: {len(versions)} version(s), {len(changes)} change(s) at {level} or above"
    )
    ends = {versions[0].id, versions[-1].id} if versions else set()
    folded = 0
    for v in versions:
        c = by_new.get(v.id)
        if c is None and v.id not in ends and level != "cosmetic":
            folded += 1
            continue
        click.echo(
            f"  v{v.id:<6} {fmt_time(v.seen_at)}  {v.clauses:>4} clauses  "
            f"{v.text_hash[:10]}  {v.source}"
        )
        if c is not None:
            sev = click.style(c.severity, fg=SEVERITY_COLOURS.get(c.severity))
            click.echo(f"           change #{c.id} [{sev}] {safe_terminal_text(c.summary)}")
    if folded:
        click.echo(
            f"  ({folded} version(s) with no change at {level} or above not listed; --all lists "
            "them)"
        )


@main.command()
@click.argument("document_id", metavar="ID")
@click.option("--at", "at", help="Show the version in force at this date/time (default: latest).")
@click.pass_obj
def show(app: AppContext, document_id: str, at: str | None) -> None:
    """The text of the version in force at a moment (default: the latest)."""
    when = parse_when(at, option="--at") if at else None
    click.echo(safe_terminal_text(app.monitor.text_at(document_id, when)))


@main.command()
@click.argument("document_id", metavar="ID", required=False)
@click.option("--from", "from_", help="Compare from the version in force at this date/time.")
@click.option("--to", "to", help="Compare to the version in force at this date/time.")
@click.option(
    "--change",
    "change_id",
    type=int,
    help="Show this change record (its id from `tosmon changes` or `history`) as reported.",
)
@click.option("--by-severity", is_flag=True, help="Most severe clause changes first.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def diff(
    app: AppContext,
    document_id: str | None,
    from_: str | None,
    to: str | None,
    change_id: int | None,
    by_severity: bool,
    as_json: bool,
) -> None:
    """What changed, clause by clause, with the changed words marked.

    Default: the latest version of ID against the one before it. With --change N: the change
    record N as it was reported (ID not needed).
    """
    from monitor.listing import by_severity as order_by_severity
    from monitor.report import report_to_json

    if change_id is not None:
        if from_ or to:
            raise click.UsageError("--change cannot be combined with --from or --to")
        comparison = app.monitor.stored_change(change_id, document_id=document_id)
    else:
        if not document_id:
            raise click.UsageError("give a document ID, or --change N")
        comparison = app.monitor.diff(
            document_id,
            from_at=parse_when(from_, option="--from") if from_ else None,
            to_at=parse_when(to, option="--to") if to else None,
        )
    report = comparison.report
    if by_severity:
        report = order_by_severity(report)
    if as_json:
        emit_json(
            {
                "document": comparison.document,
                "from": comparison.from_at,
                "to": comparison.to_at,
                **report_to_json(report),
            }
        )
        return
    click.echo(
        f"{comparison.document}: {fmt_time(comparison.from_at)} -> {fmt_time(comparison.to_at)}"
    )
    print_report(report, colour=is_tty())


@main.command("import")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--service", "services", multiple=True, help="Only these services (repeatable).")
@click.option(
    "--collection",
    default="",
    help="The archive collection the dataset comes from (contrib, pga, genai-eu...), for links "
    "to archived versions; default: read from each manifest.tsv.",
)
@click.option(
    "--archive-url",
    default=None,
    help="Address template of an archived version, with {collection} and {commit} "
    "(default: the Open Terms Archive versions repository on GitHub).",
)
@click.option("--json", "as_json", is_flag=True, help="Print per-document counts as JSON.")
@click.pass_obj
def import_(
    app: AppContext,
    path: Path,
    services: tuple[str, ...],
    collection: str,
    archive_url: str | None,
    as_json: bool,
) -> None:
    """Backfill history from an Open Terms Archive dataset.

    PATH is laid out as <service>/<document type>/<YYYY-MM-DDTHH-MM-SSZ>.md. Each capture becomes a
    version at its date, with change records computed between them. No email is sent. Captures
    already imported (same document, same date) are skipped, so re-running is safe. Only regular
    files are read: symbolic links, devices, FIFOs and files larger than [fetch] max_bytes are
    skipped, each named in the output.

    Where a document folder holds the archive's manifest.tsv, captures it marks as technical
    upgrades (re-extractions) become versions without a change record, and each change notes the
    address of the archived version (its commit).
    """
    summaries = app.monitor.import_history(
        path,
        services=services,
        on_document=None if as_json else lambda s: click.echo(s.line()),
        collection=collection,
        archive_url=archive_url,
    )
    if as_json:
        emit_json([s.as_dict() for s in summaries])
