"""tosmon commands: subscribe, confirm, unsubscribe, subscribers, report, send."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.clauses import SEVERITIES
from monitor.cli.app import AppContext, emit_json, fmt_time, main, safe_terminal_text
from monitor.subscriptions import CADENCES


@main.command()
@click.argument("email")
@click.option("--service", "services", multiple=True, help="Only this service (repeatable).")
@click.option("--document", "documents", multiple=True, help="Only this document id (repeatable).")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="A topic label or group (ai, content_license, privacy, contract); repeatable. "
    "Default: the ai and content_license groups.",
)
@click.option(
    "--min-severity",
    type=click.Choice([s for s in SEVERITIES]),
    default="medium",
    show_default=True,
    help="Report clauses at least this severe.",
)
@click.option(
    "--cadence",
    type=click.Choice(list(CADENCES)),
    default="immediate",
    show_default=True,
    help="Send each report at once, or in a daily or weekly digest.",
)
@click.option(
    "--no-confirm",
    is_flag=True,
    help="Skip the confirmation email (only for an address you own).",
)
@click.pass_obj
def subscribe(
    app: AppContext,
    email: str,
    services: tuple[str, ...],
    documents: tuple[str, ...],
    topics: tuple[str, ...],
    min_severity: str,
    cadence: str,
    no_confirm: bool,
) -> None:
    """Subscribe EMAIL to change reports (a confirmation email is sent first).

    One subscription per address: subscribing an address again replaces its filters (and, while
    it is unconfirmed, sends the confirmation again, at most once per 10 minutes).
    """
    done = app.monitor.subscribe(
        email,
        services=services,
        documents=documents,
        topics=topics,
        min_severity=min_severity,
        cadence=cadence,
        confirm=not no_confirm,
    )
    if done.action == "updated":
        click.echo(f"Updated {done.email}: {done.description}")
        click.echo(f"  (was: {safe_terminal_text(done.previous)})")
    elif done.action == "unchanged":
        click.echo(f"{done.email} already has this subscription: {done.description}")
    else:
        click.echo(f"Subscribed {done.email}: {done.description}")
    if done.held_until is not None:
        click.echo(
            f"A confirmation email already went to {done.email} less than 10 minutes ago; "
            f"another can be sent from {fmt_time(done.held_until)} "
            "(at most one per address per 10 minutes)."
        )
    elif done.confirmation is None:
        click.echo(f"{done.email} is {done.state}; reports start with the next change.")
    elif done.confirmation == "sent":
        click.echo(f"A confirmation email went to {done.email}; nothing is sent until then.")
    elif done.confirmation == "failed":
        click.echo(
            f"The mail server refused the confirmation email to {done.email} "
            f"({safe_terminal_text(done.error or 'no reason given')}); it will not be retried. "
            "Check the address, then subscribe again."
        )
    else:
        retry = f" at {fmt_time(done.next_attempt_at)}" if done.next_attempt_at else ""
        reason = f" ({safe_terminal_text(done.error)})" if done.error else ""
        click.echo(
            f"The confirmation email to {done.email} is not sent yet{reason}; it stays in "
            f"the outbox and is retried{retry} by the daemon, or now by `tosmon send`."
        )


@main.command()
@click.argument("token")
@click.pass_obj
def confirm(app: AppContext, token: str) -> None:
    """Confirm a subscription with the TOKEN from its confirmation link."""
    email = app.monitor.confirm(token)
    click.echo(f"Confirmed: reports will be sent to {email}.")


@main.command()
@click.argument("email")
@click.pass_obj
def unsubscribe(app: AppContext, email: str) -> None:
    """Stop all reports to EMAIL (reports not yet sent are cancelled)."""
    address = app.monitor.unsubscribe(email)
    click.echo(f"Unsubscribed {address}.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def subscribers(app: AppContext, as_json: bool) -> None:
    """List subscribers, their subscriptions, state and last delivery."""
    rows = app.monitor.subscribers()
    if as_json:
        emit_json([row.as_dict() for row in rows])
        return
    if not rows:
        click.echo("No subscribers yet. Add one with `tosmon subscribe EMAIL`.")
        return
    width = max(len(row.email) for row in rows)
    click.echo(f"{'EMAIL':<{width}}  {'STATE':<12}  LAST DELIVERY")
    for row in rows:
        click.echo(f"{row.email:<{width}}  {row.state:<12}  {fmt_time(row.last_delivery_at)}")
        for sub in row.subscriptions:
            click.echo(f"{'':<{width}}    - {safe_terminal_text(sub.summary)}")


@main.command()
@click.argument("change_id", type=int)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML part to FILE.",
)
@click.option("--text", "show_text", is_flag=True, help="Print the plain-text part.")
@click.pass_obj
def report(app: AppContext, change_id: int, html_file: Path | None, show_text: bool) -> None:
    """Render the email that change CHANGE_ID produces (to preview or archive it)."""
    from monitor.errors import MonitorError

    rendered = app.monitor.render_report(change_id)
    if html_file is not None:
        try:
            html_file.write_text(rendered.html, encoding="utf-8")
        except OSError as exc:
            raise MonitorError(f"cannot write {html_file}: {exc.strerror}") from exc
        click.echo(f"Wrote {html_file}", err=show_text)
    if show_text or html_file is None:
        click.echo(f"Subject: {safe_terminal_text(rendered.subject)}\n")
        click.echo(safe_terminal_text(rendered.text), nl=False)


@main.command()
@click.option("--limit", type=click.IntRange(min=1), help="Deliver at most this many emails.")
@click.pass_obj
def send(app: AppContext, limit: int | None) -> None:
    """Deliver every pending email now (reports, digests that are due, confirmations).

    Emails waiting for a retry after an SMTP failure are tried now too (the daemon keeps
    waiting). Says what is still pending, until when, and why.
    """
    from monitor.outbox import send_now

    click.echo(safe_terminal_text(str(send_now(app.sessions, app.config, limit=limit))))
