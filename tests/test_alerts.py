"""Operator alerts: one email when a document starts failing, one when it recovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts import update_alert
from monitor.config import AlertsConfig, DocumentConfig, load_config
from monitor.errors import FetchError
from monitor.models import Check, Delivery, Document
from monitor.outbox import deliver_pending
from monitor.store import history
from monitor.tracker import record_fetch
from tests.daemonkit import write_config
from tests.smtp import SMTPTestServer

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
ALERTS = AlertsConfig(email="ops@example.org", after_failures=3)
DOC = "example/terms"


@pytest.fixture
def doc(sessions: sessionmaker[Session]) -> str:
    declaration = DocumentConfig(
        id=DOC, service="Example", type="Terms of Service", url="http://127.0.0.1/tos"
    )
    with sessions.begin() as session:
        history.sync_documents(session, [declaration], now=T0)
    return DOC


def check(
    sessions: sessionmaker[Session],
    at: datetime,
    *,
    error: str | None = None,
    alerts: AlertsConfig = ALERTS,
) -> str | None:
    """A check at ``at`` (failed with ``error``, else fine), then the alert decision."""
    with sessions.begin() as session:
        document = session.get(Document, DOC)
        if error is not None:
            record_fetch(
                session,
                document,
                FetchError(error, transient=True, status=500),
                now=at,
                duration=0.1,
                interval=timedelta(hours=1),
            )
        else:
            history.schedule_next(document, now=at, interval=timedelta(hours=1))
            history.record_success(document, now=at)
            history.add_check(session, Check(document_id=DOC, checked_at=at, outcome="unchanged"))
    with sessions.begin() as session:
        alert = update_alert(session, session.get(Document, DOC), alerts=alerts, now=at)
        return alert.kind if alert else None


def alert_rows(sessions: sessionmaker[Session]) -> list[Delivery]:
    with sessions() as session:
        query = select(Delivery).where(Delivery.kind == "alert").order_by(Delivery.id)
        return list(session.scalars(query))


def test_one_alert_after_n_failures_and_one_on_recovery(
    sessions: sessionmaker[Session], doc: str
) -> None:
    hour = timedelta(hours=1)
    decisions = [
        check(sessions, T0 + i * hour, error="HTTP 500 Internal Server Error") for i in range(6)
    ]
    assert decisions == [None, None, "failing", None, None, None]
    assert check(sessions, T0 + 6 * hour) == "recovered"
    assert check(sessions, T0 + 7 * hour) is None
    rows = alert_rows(sessions)
    assert [r.to_address for r in rows] == ["ops@example.org"] * 2
    failing, recovered = (r.payload["body"] for r in rows)
    assert "failed its last 3 checks" in failing
    assert "Failing since: 2026-01-05 10:00:00 UTC" in failing
    assert "Last error:    HTTP 500 Internal Server Error" in failing
    assert "Recovered at:  2026-01-05 16:00:00 UTC (down for about 6 h)" in recovered
    assert "Failing since: 2026-01-05 10:00:00 UTC" in recovered


def test_a_second_outage_is_a_new_alert(sessions: sessionmaker[Session], doc: str) -> None:
    at = T0
    for outage in range(2):
        for _ in range(3):
            check(sessions, at, error=f"outage {outage}")
            at += timedelta(minutes=10)
        check(sessions, at)
        at += timedelta(minutes=10)
    kinds = [
        r.subject.split()[-1] if "recovered" in r.subject else "failing"
        for r in alert_rows(sessions)
    ]
    assert kinds == ["failing", "recovered", "failing", "recovered"]


def test_deciding_twice_queues_one_alert(sessions: sessionmaker[Session], doc: str) -> None:
    for i in range(3):
        check(sessions, T0 + timedelta(minutes=i), error="timed out")
    with sessions.begin() as session:  # e.g. a daemon restarted after a crash decides again
        assert update_alert(session, session.get(Document, DOC), alerts=ALERTS, now=T0) is None
    assert len(alert_rows(sessions)) == 1


def test_without_an_operator_address_nothing_is_queued_or_marked(
    sessions: sessionmaker[Session], doc: str
) -> None:
    quiet = AlertsConfig(email=None, after_failures=1)
    assert check(sessions, T0, error="HTTP 503", alerts=quiet) is None
    assert alert_rows(sessions) == []
    with sessions() as session:
        assert session.get(Document, DOC).failure_alerted_at is None


def test_the_alert_email_names_the_document_and_neutralises_page_text(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    doc: str,
    smtp_server: SMTPTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOSMON_SECRET_KEY", "test-secret-key-0123456789abcdef")
    config = load_config(
        write_config(
            tmp_path / "tosmon.toml",
            database_url=database_url,
            documents=[],
            smtp_port=smtp_server.port,
        )
    )
    for i in range(3):
        check(sessions, T0 + timedelta(minutes=i), error="bot wall\x1b[31m\nSubject: forged")
    stats = deliver_pending(sessions, config, now=lambda: T0 + timedelta(minutes=5))
    assert stats.sent == 1
    (message,) = smtp_server.messages
    assert message["To"] == "ops@example.org"
    assert message["Subject"].strip() == (
        "tos-monitor: Example Terms of Service failing since 2026-01-05 10:00 UTC"
    )
    body = message.get_body(("plain",)).get_content()
    assert "The document example/terms (Example Terms of Service)" in body
    assert "\x1b" not in body
    assert "bot wall\\x1b[31m\\nSubject: forged" in body
