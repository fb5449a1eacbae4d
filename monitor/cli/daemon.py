"""tosmon commands for the daemon: run, status."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import click

from monitor.cli.app import AppContext, emit_json, fmt_time, main, safe_terminal_text

log = logging.getLogger("monitor.scheduler")


@main.command()
@click.option(
    "--no-web",
    is_flag=True,
    help="Do not serve the confirm / unsubscribe endpoint (another daemon serves it).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Log as text lines or JSON objects (default: [daemon] log_format).",
)
@click.pass_obj
def run(app: AppContext, no_web: bool, log_format: str | None) -> None:
    """Run the daemon: check every document on schedule, deliver reports and digests.

    Runs until SIGTERM or SIGINT (Ctrl-C), then stops within seconds: checks in flight get a
    moment to finish or are dropped without a trace, and the next start picks up from the
    database. SIGHUP reloads the config (documents, intervals, mail settings) without a restart
    and logs what changed; a broken config is logged and the running one kept. Logs go to
    stderr, one line per check. On PostgreSQL several daemons (on several machines) may share
    one database; on SQLite only one runs per database file.
    """
    from monitor.logs import configure_logging
    from monitor.scheduler import acquire_daemon_lock, new_worker_id

    config = app.config  # a broken config stops here: one line, exit status 2
    app.monitor.check_mail_settings()  # a missing password variable or a bad key file too
    worker = new_worker_id()
    level = "DEBUG" if app.verbose else config.daemon.log_level
    configure_logging(log_format=log_format or config.daemon.log_format, level=level, worker=worker)
    lock = acquire_daemon_lock(config.storage.database_url, worker=worker)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(1)
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon = app.monitor.daemon(worker=worker, web=not no_web, load_config=app.load_config)

        def on_hangup(_signum: int, _frame: FrameType | None) -> None:
            log.info("SIGHUP received: reloading the config")
            daemon.request_reload()

        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
        healthy = daemon.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if lock is not None:
            lock.release()
    app.close()
    status = 0 if healthy else 1  # 1: a supervisor (systemd, Docker) should restart it
    if _lingering_threads() or not healthy:
        # a delivery stuck in SMTP would keep the interpreter alive: its row is retried later
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _lingering_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
    ]


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def doctor(app: AppContext, as_json: bool) -> None:
    """Check that everything the daemon needs works here, and say what to fix.

    The config; the database (reachable, schema at head); the SMTP server (connect, EHLO,
    STARTTLS and login as configured; no message is sent); the browser (Playwright starts the
    Chromium it would use, then closes it); the web address (can be bound). Each line is OK,
    WARN or FAIL, with the fix. Exit status 1 when a check failed.
    """
    from pathlib import Path

    from monitor.doctor import diagnose

    findings = diagnose(Path(app.config_path) if app.config_path else None)
    if as_json:
        emit_json([finding.as_dict() for finding in findings])
    else:
        colours = {"ok": "green", "warn": "yellow", "fail": "red"}
        for finding in findings:
            label = click.style(f"{finding.status.upper():<4}", fg=colours[finding.status])
            click.echo(f"{label} {finding.check}: {safe_terminal_text(finding.detail)}")
            if finding.fix and finding.status != "ok":
                click.echo(f"     fix: {finding.fix}")
    if any(finding.failed for finding in findings):
        raise SystemExit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def status(app: AppContext, as_json: bool) -> None:
    """Whether a daemon runs (and where), what is due next, failing documents, the outbox."""
    data = app.monitor.status().as_dict()
    if as_json:
        emit_json(data)
        return
    _print_status(data)


def _print_status(data: dict[str, Any]) -> None:
    alive = [d for d in data["daemons"] if d["alive"]]
    if alive:
        for d in alive:
            click.echo(
                f"Daemon {d['worker']} running on {d['host']} (pid {d['pid']}) since "
                f"{fmt_time(d['started_at'])}; last heartbeat {fmt_time(d['heartbeat_at'])}, "
                f"{d['checks_in_flight']} check(s) in flight"
            )
    elif data["lock_holder"]:
        click.echo(f"Daemon running: {data['lock_holder']}")
    else:
        click.echo(click.style("No daemon is running.", fg="yellow"))
    for d in data["daemons"]:
        if not d["alive"]:
            click.echo(
                f"  (daemon {d['worker']} on {d['host']} last seen "
                f"{fmt_time(d['heartbeat_at'])}, presumed dead; its claims expire by lease)"
            )
    click.echo(f"{data['documents']} document(s) declared. Next due:")
    for row in data["next_due"]:
        when = fmt_time(row["next_check_at"]) if row["next_check_at"] else "now (never checked)"
        click.echo(f"  {when}  {row['document']}")
    failing = data["failing"]
    if failing:
        click.echo(click.style(f"{len(failing)} failing document(s):", fg="red"))
        for row in failing:
            error = safe_terminal_text(str(row["last_error"] or "")).replace("\n", " ")
            click.echo(
                f"  {row['document']}: since {fmt_time(row['failing_since'])}, "
                f"{row['consecutive_failures']} check(s) in a row: {error}"
            )
    else:
        click.echo("No document is failing.")
    out = data["outbox"]
    oldest = f", oldest from {fmt_time(out['oldest_pending_at'])}" if out["pending"] else ""
    click.echo(
        f"Outbox: {out['pending']} pending{oldest}, "
        f"{out['queued']} queued (for a digest or to be grouped), "
        f"{out['sending']} sending, {out['failed']} failed."
    )
    digest = data["last_digest"]
    if digest:
        click.echo(f"Last digest: {fmt_time(digest['sent_at'])} ({digest['cadence']})")
    else:
        click.echo("Last digest: none sent yet.")


@main.command()
@click.option("--bind", help="host:port to listen on (default: [web] bind).")
@click.pass_obj
def serve(app: AppContext, bind: str | None) -> None:
    """Serve the read-only web history, its Atom feeds and the confirm / unsubscribe links.

    The same pages `tosmon run` serves, without checking anything: for a machine that only
    shows what the daemons record. Runs until SIGTERM or SIGINT.
    """
    server = app.monitor.serve(bind=bind)
    click.echo(f"Serving the history at {server.url}/ (feeds at {server.url}/feeds/all.atom)")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    click.echo("Stopped.")
