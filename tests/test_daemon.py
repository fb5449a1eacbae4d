"""``tosmon run`` as a real process: a real page server, a real SMTP server, a real database.

Intervals are one or two seconds, so each test watches a few check cycles. Every test runs on
SQLite and on PostgreSQL (the two-daemon test on PostgreSQL only).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from tests.daemonkit import (
    Daemon,
    checks_of,
    environment,
    tosmon,
    wait_until,
    write_config,
)
from tests.pages import AI_TRAINING, terms_page
from tests.pageserver import PageServer
from tests.smtp import SMTPTestServer

READER = "reader@example.org"


def subscribe(config: Path, env: dict[str, str], address: str = READER) -> None:
    result = tosmon(config, "subscribe", address, "--no-confirm", env=env)
    assert result.returncode == 0, result.stderr


def test_a_change_reaches_the_reader_once_and_sigterm_stops_the_daemon(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    smtp_server: SMTPTestServer,
) -> None:
    page_server.set("/tos", terms_page())
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=database_url,
        documents=[("example/terms", page_server.url("/tos"))],
        smtp_port=smtp_server.port,
    )
    env = environment(data_dir)
    subscribe(config, env)
    with Daemon(config, env=env, log=tmp_path / "daemon.log") as daemon:
        wait_until(
            lambda: [c for c in checks_of(sessions, "example/terms") if c.outcome == "first"],
            what="the baseline check",
            daemon=daemon,
        )
        page_server.set("/tos", terms_page(extra=AI_TRAINING))
        messages = smtp_server.wait_for(1, timeout=20)
        assert len(messages) == 1, daemon.log()
        seen = len(checks_of(sessions, "example/terms"))
        wait_until(
            lambda: len(checks_of(sessions, "example/terms")) >= seen + 2,
            what="two more checks",
        )
        assert daemon.terminate(timeout=10) == 0
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["To"] == READER
    outcomes = [c.outcome for c in checks_of(sessions, "example/terms")]
    assert outcomes[0] == "first"
    assert outcomes.count("changed") == 1
    log = daemon.log()
    assert "check example/terms changed" in log
    assert "daemon" in log and "stopped" in log
