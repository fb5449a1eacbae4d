"""``tosmon status``: running daemons, what is due, failing documents, the outbox, digests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from monitor.cli import main
from monitor.config import DocumentConfig
from monitor.models import Delivery, Document
from monitor.store import history
from monitor.store import scheduling as store
from tests.daemonkit import write_config

DOCS = [("alpha/terms", "http://127.0.0.1/a"), ("beta/terms", "http://127.0.0.1/b")]
_ids = count(1)


@pytest.fixture
def config(tmp_path: Path, data_dir: Path, database_url: str) -> Path:
    return write_config(
        tmp_path / "tosmon.toml", database_url=database_url, documents=DOCS, smtp_port=None
    )


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def docs(sessions: sessionmaker[Session], now: datetime) -> None:
    declarations = [
        DocumentConfig(id=i, service=i.split("/")[0], type="terms", url=u) for i, u in DOCS
    ]
    with sessions.begin() as session:
        history.sync_documents(session, declarations, now=now)
        session.flush()
        session.get(Document, "alpha/terms").next_check_at = now + timedelta(hours=2)
        session.get(Document, "beta/terms").next_check_at = now + timedelta(minutes=5)


def status(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), "status", *args])
    assert result.exit_code == 0, result.output
    return result.output


def add_delivery(
    sessions: sessionmaker[Session], now: datetime, *, kind: str, status: str, **extra: object
) -> None:
    with sessions.begin() as session:
        session.add(
            Delivery(
                kind=kind,
                status=status,
                to_address="reader@example.org",
                message_id=f"<test.{next(_ids)}@tos-monitor>",
                created_at=now,
                due_at=now,
                **extra,
            )
        )


def test_without_a_daemon_it_says_so(config: Path, docs: None) -> None:
    text = status(config)
    assert "No daemon is running." in text
    assert "No document is failing." in text
    assert "Last digest: none sent yet." in text
    data = json.loads(status(config, "--json"))
    assert data["running"] is False
    assert data["documents"] == 2
    assert [row["document"] for row in data["next_due"]] == ["beta/terms", "alpha/terms"]


def test_a_live_daemon_is_shown_with_its_host_and_a_dead_one_as_presumed_dead(
    config: Path, docs: None, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        store.register_worker(
            session,
            worker="box:41:aaa",
            host="box",
            pid=41,
            now=now,
            info={"heartbeat_seconds": 10, "in_flight": 3},
        )
        store.register_worker(
            session,
            worker="old:7:bbb",
            host="old",
            pid=7,
            now=now - timedelta(hours=1),
            info={"heartbeat_seconds": 10},
        )
    text = status(config)
    assert "Daemon box:41:aaa running on box (pid 41)" in text
    assert "3 check(s) in flight" in text
    assert "daemon old:7:bbb on old last seen" in text and "presumed dead" in text
    data = json.loads(status(config, "--json"))
    assert data["running"] is True
    alive = {d["worker"]: d["alive"] for d in data["daemons"]}
    assert alive == {"box:41:aaa": True, "old:7:bbb": False}


def test_a_daemon_that_stopped_cleanly_is_not_listed(
    config: Path, docs: None, sessions: sessionmaker[Session], now: datetime
) -> None:
    with sessions.begin() as session:
        store.register_worker(session, worker="box:41:aaa", host="box", pid=41, now=now)
        store.stop_worker(session, worker="box:41:aaa", now=now)
    data = json.loads(status(config, "--json"))
    assert data["running"] is False
    assert data["daemons"] == []


def test_failing_documents_are_listed_since_when_with_the_last_error(
    config: Path, docs: None, sessions: sessionmaker[Session], now: datetime
) -> None:
    since = now - timedelta(hours=3)
    with sessions.begin() as session:
        doc = session.get(Document, "beta/terms")
        for hours in (3, 2, 1):
            history.record_failure(
                doc, error="bot wall \x1b[2J served", now=now - timedelta(hours=hours)
            )
    text = status(config)
    assert "1 failing document(s):" in text
    assert f"beta/terms: since {since:%Y-%m-%d %H:%M} UTC, 3 check(s) in a row" in text
    assert "\x1b" not in text  # page text cannot drive the terminal
    (row,) = json.loads(status(config, "--json"))["failing"]
    assert row["document"] == "beta/terms"
    assert row["consecutive_failures"] == 3
    assert row["failing_since"] == since.isoformat()


def test_the_outbox_backlog_and_the_last_digest(
    config: Path, docs: None, sessions: sessionmaker[Session], now: datetime
) -> None:
    for _ in range(2):
        add_delivery(sessions, now - timedelta(minutes=30), kind="report", status="pending")
    add_delivery(sessions, now, kind="report", status="queued", cadence="daily")
    add_delivery(sessions, now, kind="report", status="failed")
    add_delivery(sessions, now, kind="report", status="sent", sent_at=now)
    add_delivery(
        sessions,
        now,
        kind="digest",
        status="sent",
        cadence="weekly",
        sent_at=now - timedelta(days=1),
    )
    text = status(config)
    assert "Outbox: 2 pending, oldest from" in text
    assert "1 queued (for a digest or to be grouped), 0 sending, 1 failed." in text
    assert f"Last digest: {now - timedelta(days=1):%Y-%m-%d %H:%M} UTC (weekly)" in text
    data = json.loads(status(config, "--json"))
    assert data["outbox"]["pending"] == 2
    assert data["outbox"]["queued"] == 1
    assert data["last_digest"]["cadence"] == "weekly"
