"""``tosmon doctor``: is this installation ready to run? One finding per part, with the fix.

Each check looks at one thing the daemon needs and touches it for real, without changing
anything: the config loads; the database answers and its schema is at the code's head; the SMTP
server takes a connection, EHLO, STARTTLS and the login (no message is sent); Playwright starts
the Chromium it would use and closes it; the web endpoint's address can be bound. The CLI prints
the findings; the exit status is non-zero when one of them would make something fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from monitor.config import Config, load_config
from monitor.errors import MonitorError

__all__ = ["Finding", "diagnose"]

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """The result of one check: what was found and, unless it is fine, what to do."""

    check: str  # config | database | mail | browser | web
    status: Status
    detail: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def as_dict(self) -> dict[str, str | None]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


def diagnose(config_path: Path | None, *, smtp_timeout: float = 10.0) -> list[Finding]:
    """Every check, in order; when the config does not load, only that finding."""
    try:
        config = load_config(config_path)
    except MonitorError as exc:
        return [Finding("config", "fail", str(exc), "fix the config file at the place named")]
    findings = [check_config(config)]
    for check in (
        check_database,
        lambda c: check_mail(c, timeout=smtp_timeout),
        check_browser,
        check_web,
    ):
        findings.append(_guarded(check, config))
    return findings


def _guarded(check: Callable[[Config], Finding], config: Config) -> Finding:
    try:
        return check(config)
    except Exception as exc:  # a check must never stop the others
        name = getattr(check, "__name__", "check").removeprefix("check_")
        return Finding(name, "fail", f"unexpected error: {type(exc).__name__}: {exc}")


# -- config ------------------------------------------------------------------------------------


def check_config(config: Config) -> Finding:
    where = str(config.path) if config.path else "built-in defaults (no config file)"
    try:
        config.mail.password()
    except MonitorError as exc:
        return Finding(
            "config",
            "fail",
            f"{where}: {exc}",
            f"export {config.mail.password_env}=... in the daemon's environment",
        )
    documents = config.all_documents()
    return Finding("config", "ok", f"{where}: {len(documents)} documents declared")


# -- database ----------------------------------------------------------------------------------


def check_database(config: Config, *, migrations: Path | None = None) -> Finding:
    """Reachable, and its schema at the head of ``migrations`` (default: the packaged ones)."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.db import alembic_config, current_revision, make_engine
    from monitor.scheduler import sqlite_path

    url = config.storage.database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        parent = _existing_parent(path)
        if not os.access(parent, os.W_OK):
            return Finding(
                "database",
                "fail",
                f"{path} does not exist and {parent} is not writable",
                f"make {parent} writable for this user, or set [storage] data_dir",
            )
        return Finding("database", "ok", f"{path} will be created with the schema on first use")
    try:
        engine = make_engine(url)
    except (MonitorError, SQLAlchemyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Finding(
            "database",
            "fail",
            f"cannot use [storage] database_url: {reason}",
            "set [storage] database_url to sqlite:///<path> or postgresql+psycopg://...",
        )
    shown = engine.url.render_as_string(hide_password=True)
    alembic = alembic_config(engine)
    if migrations is not None:
        alembic.set_main_option("script_location", str(migrations))
    script = ScriptDirectory.from_config(alembic)
    head = script.get_current_head()
    try:
        current = current_revision(engine)
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        return Finding(
            "database",
            "fail",
            f"cannot open {shown}: {reason}",
            "check [storage] database_url, and that the database server runs and lets you in",
        )
    finally:
        engine.dispose()
    if current == head:
        return Finding("database", "ok", f"{shown}: schema at head ({head})")
    if current is None and not tables:
        return Finding(
            "database", "ok", f"{shown}: empty; the schema ({head}) is created on first use"
        )
    if current is None:
        return Finding(
            "database",
            "fail",
            f"{shown} has tables but no tos-monitor schema version",
            "point [storage] database_url at a database of its own",
        )
    if current not in {rev.revision for rev in script.walk_revisions()}:
        return Finding(
            "database",
            "fail",
            f"{shown}: schema {current} is newer than this tos-monitor's ({head})",
            "upgrade tos-monitor",
        )
    return Finding(
        "database",
        "fail",
        f"{shown}: schema {current} is behind the code's {head}",
        "run `tosmon db upgrade`",
    )


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


# -- mail --------------------------------------------------------------------------------------


def check_mail(config: Config, *, timeout: float = 10.0) -> Finding:
    from monitor.mailer import Mailer

    mail = config.mail
    if mail.host is None:
        folder = mail.folder if mail.folder.exists() else _existing_parent(mail.folder)
        if not os.access(folder, os.W_OK):
            return Finding(
                "mail",
                "fail",
                f"no [mail] host: emails are written to {mail.folder}, which is not writable",
                f"make {folder} writable, or set [mail] folder or [mail] host",
            )
        return Finding(
            "mail",
            "warn",
            f"no [mail] host: emails are written as .eml files to {mail.folder}, not sent",
            "set [mail] host (and port, security, username, password_env) to send them",
        )
    mailer = Mailer(mail, timeout=timeout)
    try:
        greeting = mailer.probe()
    except MonitorError as exc:
        return Finding(
            "mail",
            "fail",
            str(exc),
            "check [mail] host, port and security, the network, and the login "
            "(username, the variable named by password_env)",
        )
    steps = ["EHLO"]
    if mail.security == "starttls":
        steps.append("STARTTLS")
    if mail.username:
        steps.append(f"login as {mail.username}")
    server = f" ({greeting})" if greeting else ""
    return Finding(
        "mail", "ok", f"{mailer.target}{server}: {', '.join(steps)} accepted; nothing sent"
    )


# -- browser -----------------------------------------------------------------------------------


def check_browser(config: Config) -> Finding:
    from monitor.browser import ENABLE_COMMAND, Browser, browser_unavailable

    rendered = [doc.id for doc in config.all_documents() if doc.render]
    needed = (
        f"{len(rendered)} documents need it (render = true)" if rendered else "no document needs it"
    )
    status: Status = "fail" if rendered else "warn"
    fix = f"{ENABLE_COMMAND} (or set [browser] executable)"
    if reason := browser_unavailable(config.browser.executable):
        return Finding("browser", status, f"{reason}; {needed}", fix)

    async def launch() -> Path | None:
        browser = Browser(user_agent=config.fetch.user_agent, executable=config.browser.executable)
        await browser.start()
        try:
            return browser.executable
        finally:
            await browser.close()

    try:
        started = asyncio.run(launch())
    except MonitorError as exc:
        return Finding("browser", status, f"{exc}; {needed}", fix)
    return Finding("browser", "ok", f"Chromium at {started} starts and closes; {needed}")


# -- web ---------------------------------------------------------------------------------------


def check_web(config: Config) -> Finding:
    from monitor.scheduler import daemon_lock_holder
    from monitor.web import parse_bind

    bind = config.web.bind
    host, port = parse_bind(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        holder = daemon_lock_holder(config.storage.database_url)
        running = (
            f" (a tosmon daemon runs on this database: {holder}; it may be the one)"
            if holder
            else ""
        )
        return Finding(
            "web",
            "fail",
            f"cannot listen on {bind}: {exc.strerror}{running}",
            "stop what listens there, or set [web] bind to a free address "
            "(or run the daemon with --no-web)",
        )
    return Finding("web", "ok", f"{bind} can be bound; links point at {config.web.base_url}")
