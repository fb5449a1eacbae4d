"""The outbox: every matching change reaches each subscriber exactly once, whatever breaks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config
from monitor.errors import ConfigError
from monitor.models import Delivery, Subscriber
from monitor.outbox import CRASH_ENV, deliver_pending, enqueue_alert
from tests.mailfactory import (
    AI_CLAUSE,
    COSMETIC_CLAUSE,
    SECRET,
    T0,
    add_subscriber,
    mail_config,
    record_change,
)
from tests.smtp import SMTPTestServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOSMON_SECRET_KEY", SECRET)


@pytest.fixture
def config(tmp_path: Path, smtp_server: SMTPTestServer) -> Config:
    return mail_config(tmp_path, smtp=smtp_server)


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def rows(sessions: sessionmaker[Session]) -> list[Delivery]:
    with sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_a_matching_change_reaches_a_confirmed_subscriber_once(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions, "reader@example.org")
    change_id, written = record_change(sessions)
    assert written == 1

    stats = deliver_pending(sessions, config, now=at(T0))
    assert (stats.sent, stats.failed, stats.retried) == (1, 0, 0)
    [message] = smtp_server.messages
    assert message["To"] == "reader@example.org"
    assert message["Subject"] == "Instagram Terms of Use: AI training clause changed (high)"
    [row] = rows(sessions)
    assert (row.status, row.change_id, message["Message-ID"]) == ("sent", change_id, row.message_id)
    assert smtp_server.envelopes[0].rcpt_tos == ("reader@example.org",)

    assert deliver_pending(sessions, config, now=at(T0 + timedelta(hours=1))).sent == 0
    assert len(smtp_server.messages) == 1
    with sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.last_delivery_at == T0


def test_nothing_but_the_confirmation_reaches_an_unconfirmed_address(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions, "new@example.org", confirm=True)
    _, written = record_change(sessions)
    assert written == 0
    deliver_pending(sessions, config, now=at(T0))
    [message] = smtp_server.messages
    assert message["Subject"] == "Confirm your tos-monitor subscription"
    assert "List-Unsubscribe" not in message


@pytest.mark.parametrize(
    "filters",
    [
        {"topics": ["privacy"]},
        {"min_severity": "high", "services": ["Facebook"]},
        {"documents": ["instagram/privacy-policy"]},
    ],
    ids=["other-topic", "other-service", "other-document"],
)
def test_a_change_outside_the_filters_writes_nothing(
    sessions: sessionmaker[Session], filters: dict[str, object]
) -> None:
    add_subscriber(sessions, **filters)
    assert record_change(sessions)[1] == 0


def test_a_change_below_the_minimum_severity_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    add_subscriber(sessions, min_severity="high")
    medium = {**AI_CLAUSE, "severity": "medium"}
    assert record_change(sessions, [medium, COSMETIC_CLAUSE])[1] == 0
    assert record_change(sessions, [AI_CLAUSE], doc_id="instagram/privacy")[1] == 1


def test_a_purely_cosmetic_change_sends_nothing(sessions: sessionmaker[Session]) -> None:
    add_subscriber(sessions, min_severity="cosmetic", topics=[])
    assert record_change(sessions, [COSMETIC_CLAUSE])[1] == 0


def test_an_smtp_outage_then_recovery_yields_exactly_one_email(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions)
    record_change(sessions)
    smtp_server.stop()
    first = deliver_pending(sessions, config, now=at(T0))
    assert (first.sent, first.retried) == (0, 1)
    [row] = rows(sessions)
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt_at is not None and row.next_attempt_at > T0

    smtp_server.start()
    # still inside the backoff: nothing is tried
    assert deliver_pending(sessions, config, now=at(T0)).total == 0
    assert deliver_pending(sessions, config, now=at(T0 + timedelta(minutes=5))).sent == 1
    assert deliver_pending(sessions, config, now=at(T0 + timedelta(hours=1))).sent == 0
    assert len(smtp_server.messages) == 1


def test_one_refused_address_does_not_block_the_others(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions, "gone@example.org")
    add_subscriber(sessions, "reader@example.org")
    smtp_server.refuse("gone@example.org")
    record_change(sessions)
    stats = deliver_pending(sessions, config, now=at(T0))
    assert (stats.sent, stats.failed) == (1, 1)
    assert [m["To"] for m in smtp_server.messages] == ["reader@example.org"]
    failed = [r for r in rows(sessions) if r.status == "failed"]
    assert [r.to_address for r in failed] == ["gone@example.org"]
    assert "550" in (failed[0].last_error or "")


def test_an_address_refused_three_times_is_marked_bouncing(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions, "gone@example.org")
    smtp_server.refuse("gone@example.org")
    for n in range(4):
        record_change(sessions, [AI_CLAUSE], doc_id=f"instagram/doc-{n}")
        deliver_pending(sessions, config, now=at(T0))
    with sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.state == "bouncing"
    # the fourth change found no active subscriber
    assert len(rows(sessions)) == 3


def test_a_daily_subscriber_gets_one_digest_grouped_by_service(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions, cadence="daily")
    record_change(sessions)
    record_change(
        sessions,
        [AI_CLAUSE],
        now=T0 + timedelta(hours=1),
        doc_id="facebook/terms",
        service="Facebook",
        type_="Terms of Service",
    )
    assert {r.status for r in rows(sessions)} == {"queued"}
    assert deliver_pending(sessions, config, now=at(T0 + timedelta(hours=2))).sent == 0

    next_morning = datetime(2025, 3, 4, 8, 0, 1, tzinfo=UTC)
    stats = deliver_pending(sessions, config, now=at(next_morning))
    assert (stats.digests, stats.sent) == (1, 1)
    [message] = smtp_server.messages
    assert message["Subject"] == (
        "Daily digest: Facebook Terms of Service: AI training clause changed (high); "
        "Instagram Terms of Use: AI training clause changed (high)"
    )
    text = message.get_body(("plain",)).get_content()
    assert text.index("######## Facebook") < text.index("######## Instagram")
    assert {r.status for r in rows(sessions)} == {"sent"}
    assert deliver_pending(sessions, config, now=at(next_morning + timedelta(days=1))).sent == 0


def test_an_unsubscribed_reader_gets_nothing_already_queued(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    from monitor.subscriptions import unsubscribe

    add_subscriber(sessions)
    record_change(sessions)
    with sessions.begin() as session:
        unsubscribe(session, "reader@example.org", now=T0)
    assert deliver_pending(sessions, config, now=at(T0)).sent == 0
    assert smtp_server.messages == []
    assert [r.status for r in rows(sessions)] == ["cancelled"]


def test_an_alert_with_the_same_key_is_sent_once(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    for _ in range(2):
        with sessions.begin() as session:
            enqueue_alert(
                session,
                to="ops@example.org",
                subject="instagram/terms failing since 2025-03-03\r\nBcc: evil@example.org",
                body="HTTP 503 three times",
                now=T0,
                key="failing:instagram/terms:2025-03-03",
            )
    deliver_pending(sessions, config, now=at(T0))
    [message] = smtp_server.messages
    assert message["Subject"].startswith("instagram/terms failing since 2025-03-03 Bcc:")
    assert message["Bcc"] is None
    assert smtp_server.envelopes[0].rcpt_tos == ("ops@example.org",)


def test_two_senders_never_send_the_same_row(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    for n in range(6):
        add_subscriber(sessions, f"reader{n}@example.org")
    for n in range(3):
        record_change(sessions, [AI_CLAUSE], doc_id=f"instagram/doc-{n}")
    errors: list[BaseException] = []

    def run(worker: str) -> None:
        try:
            deliver_pending(sessions, config, now=at(T0), worker=worker)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = Counter(m["Message-ID"] for m in smtp_server.messages)
    assert len(ids) == 18 and set(ids.values()) == {1}
    assert {r.status for r in rows(sessions)} == {"sent"}


def test_without_a_host_messages_are_written_to_the_mail_folder(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    config = mail_config(tmp_path)
    add_subscriber(sessions)
    record_change(sessions)
    assert deliver_pending(sessions, config, now=at(T0)).sent == 1
    [row] = rows(sessions)
    files = list((tmp_path / "mail").iterdir())
    assert [f.name for f in files] == [row.message_id.strip("<>") + ".eml"]
    assert b"Subject: Instagram Terms of Use" in files[0].read_bytes()


# ---------------------------------------------------------------------------------------------
# A sender killed at any point

SENDER = """
import sys
from datetime import UTC, datetime
from monitor.db import make_engine, session_factory
from monitor.outbox import deliver_pending
from tests.mailfactory import mail_config
from tests.smtp import SMTPTestServer
from pathlib import Path

url, tmp, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
smtp = SMTPTestServer.__new__(SMTPTestServer)
smtp.host, smtp.port = "127.0.0.1", port
config = mail_config(tmp, smtp=smtp)
sessions = session_factory(make_engine(url))
stats = deliver_pending(sessions, config, worker="doomed")
print("finished", stats.sent)
"""


@pytest.mark.parametrize(
    ("point", "emails_after_crash", "emails_in_the_end"),
    [
        ("claimed", 0, 1),
        ("before_send", 0, 1),
        ("after_send", 1, 2),
        ("marked", 1, 1),
    ],
)
def test_a_sender_killed_at_any_point_loses_nothing(
    sessions: sessionmaker[Session],
    database_url: str,
    config: Config,
    smtp_server: SMTPTestServer,
    tmp_path: Path,
    point: str,
    emails_after_crash: int,
    emails_in_the_end: int,
) -> None:
    add_subscriber(sessions)
    record_change(sessions)
    env = {**os.environ, CRASH_ENV: point, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", SENDER, database_url, str(tmp_path), str(smtp_server.port)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert len(smtp_server.wait_for(emails_after_crash)) == emails_after_crash

    # another sender, after the dead one's lease ran out
    later = datetime.now(UTC) + config.daemon.lease + timedelta(minutes=1)
    deliver_pending(sessions, config, now=at(later), worker="survivor")
    deliver_pending(sessions, config, now=at(later + timedelta(hours=1)), worker="survivor")
    messages = smtp_server.messages
    assert len(messages) == emails_in_the_end
    assert len({m["Message-ID"] for m in messages}) == 1
    assert [r.status for r in rows(sessions)] == ["sent"]


# ---------------------------------------------------------------------------------------------
# End to end with the tracker: a real page, a real check, a real SMTP server


def test_a_check_that_finds_a_change_yields_one_email_and_the_next_check_none(
    sessions: sessionmaker[Session],
    config: Config,
    smtp_server: SMTPTestServer,
    page_server: object,
) -> None:
    from monitor.config import DocumentConfig
    from monitor.fetcher import Fetcher
    from monitor.store import history
    from monitor.tracker import check_documents
    from tests.pages import AI_TRAINING, terms_page

    server = page_server
    server.set("/terms", terms_page())  # type: ignore[attr-defined]
    doc = DocumentConfig(
        id="example/terms",
        service="Example",
        type="Terms of Service",
        url=server.url("/terms"),  # type: ignore[attr-defined]
    )
    with sessions.begin() as session:
        history.sync_documents(session, [doc], now=T0)
    add_subscriber(sessions)

    def check(moment: datetime) -> None:
        async def go() -> None:
            async with Fetcher(retries=1, backoff=0.01, timeout=5) as fetcher:
                await check_documents(
                    [doc.id],
                    sessions=sessions,
                    fetcher=fetcher,
                    interval_for=lambda _d: timedelta(hours=6),
                    now=lambda: moment,
                )

        asyncio.run(go())
        deliver_pending(sessions, config, now=at(moment))

    check(T0)  # the baseline sends nothing
    assert smtp_server.messages == []
    server.set("/terms", terms_page(extra=AI_TRAINING))  # type: ignore[attr-defined]
    check(T0 + timedelta(hours=6))
    check(T0 + timedelta(hours=12))
    [message] = smtp_server.messages
    # the subject states the fact, from the change's headline
    assert message["Subject"] == (
        "Example may now use your public posts to train or improve AI (Terms of Service, high)"
    )
    assert "artificial intelligence" in message.get_body(("plain",)).get_content()


def test_the_digest_hour_comes_from_the_config(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    import dataclasses

    evening = dataclasses.replace(config, daemon=dataclasses.replace(config.daemon, digest_hour=18))
    add_subscriber(sessions, cadence="daily")
    record_change(sessions)  # written at 10:00
    assert deliver_pending(sessions, evening, now=at(T0.replace(hour=17, minute=59))).sent == 0
    stats = deliver_pending(sessions, evening, now=at(T0.replace(hour=18, minute=0)))
    assert (stats.digests, stats.sent) == (1, 1)
    assert str(stats) == "sent 1, digests built 1"
    assert str(deliver_pending(sessions, evening, now=at(T0.replace(hour=19)))) == ""


def test_an_error_after_claiming_a_row_gives_it_back(
    sessions: sessionmaker[Session],
    config: Config,
    smtp_server: SMTPTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key file others can read stops the sender after it claimed a row: the row must not stay
    `sending` until its lease runs out, but be sent by the very next run."""
    monkeypatch.delenv("TOSMON_SECRET_KEY")
    config.secret_key_file.parent.mkdir(parents=True, exist_ok=True)
    config.secret_key_file.write_text("k" * 40 + "\n", encoding="ascii")
    config.secret_key_file.chmod(0o640)
    add_subscriber(sessions, "reader@example.org")
    record_change(sessions)

    with pytest.raises(ConfigError, match="readable by others"):
        deliver_pending(sessions, config, now=at(T0))
    [row] = rows(sessions)
    assert (row.status, row.claimed_by, row.claim_expires_at) == ("pending", None, None)

    config.secret_key_file.chmod(0o600)
    assert deliver_pending(sessions, config, now=at(T0)).sent == 1  # at once, no lease to wait
    assert len(smtp_server.messages) == 1


# ---------------------------------------------------------------------------------------------
# `tosmon send`: the operator who just fixed the SMTP server


def test_send_now_tries_what_waits_for_a_retry_and_says_what_is_left(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    from monitor.outbox import send_now

    add_subscriber(sessions)
    add_subscriber(sessions, "weekly@example.org", cadence="weekly")
    record_change(sessions)
    smtp_server.stop()
    down = send_now(sessions, config, now=at(T0))
    assert (down.stats.sent, down.stats.retried) == (0, 1)
    [row] = [r for r in rows(sessions) if r.status == "pending"]
    assert row.next_attempt_at == T0 + timedelta(minutes=1)
    text = str(down)
    assert text.startswith("Sent 0, postponed 1. Still pending: 1 (next attempt 2025-03-03 10:01")
    assert "last error: cannot reach 127.0.0.1:" in text
    assert "Waiting for the weekly digest: 1 (leaves 2025-03-10 08:00 UTC)." in text

    smtp_server.start()
    # ten seconds later, long before the backoff ends: the operator's send delivers
    fixed = send_now(sessions, config, now=at(T0 + timedelta(seconds=10)))
    assert fixed.stats.sent == 1
    assert [m["To"] for m in smtp_server.messages] == ["reader@example.org"]
    assert str(fixed) == ("Sent 1. Waiting for the weekly digest: 1 (leaves 2025-03-10 08:00 UTC).")
    assert send_now(sessions, config, now=at(T0 + timedelta(minutes=5))).stats.sent == 0
    assert len(smtp_server.messages) == 1


def test_the_daemon_keeps_the_backoff_that_send_ignores(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions)
    record_change(sessions)
    smtp_server.stop()
    deliver_pending(sessions, config, now=at(T0))
    smtp_server.start()
    assert deliver_pending(sessions, config, now=at(T0 + timedelta(seconds=10))).total == 0
    forced = deliver_pending(sessions, config, now=at(T0 + timedelta(seconds=10)), force=True)
    assert forced.sent == 1 and len(smtp_server.messages) == 1


def test_send_with_nothing_to_do_says_so(sessions: sessionmaker[Session], config: Config) -> None:
    from monitor.outbox import send_now

    assert str(send_now(sessions, config, now=at(T0))) == "Sent 0. Nothing pending."


def test_each_reader_sees_the_clauses_at_or_above_their_own_floor(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    low = {
        **AI_CLAUSE,
        "section": ["Contact"],
        "before": "Write to us by post.",
        "after": "Write to us by post or email.",
        "words": [],
        "severity": "low",
        "annotation": "One more way to reach the company.",
    }
    add_subscriber(sessions, "medium@example.org")
    add_subscriber(sessions, "low@example.org", min_severity="low")
    record_change(sessions, [AI_CLAUSE, low, COSMETIC_CLAUSE])
    assert deliver_pending(sessions, config, now=at(T0)).sent == 2
    texts = {
        m["To"]: m.get_body(("plain",)).get_content()
        for m in smtp_server.messages  # type: ignore[union-attr]
    }
    assert "train our AI models" in texts["medium@example.org"]
    assert "Write to us by post or email" not in texts["medium@example.org"]
    assert "2 lower-severity clauses not shown (1 low, 1 cosmetic)" in texts["medium@example.org"]
    assert "https://tos.example.org/changes/" in texts["medium@example.org"]
    assert "Write to us by post or email" in texts["low@example.org"]
    assert "1 lower-severity clause not shown (1 cosmetic)" in texts["low@example.org"]


# ---------------------------------------------------------------------------------------------
# Changes found together reach an immediate subscriber as one email

WINDOW = timedelta(minutes=10)


@pytest.fixture
def grouping(tmp_path: Path, smtp_server: SMTPTestServer) -> Config:
    return mail_config(tmp_path, smtp=smtp_server, group_window=WINDOW)


def record_meta_morning(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Instagram's terms change at 10:00, Facebook's at 10:03 (the same morning)."""
    instagram, _ = record_change(sessions)
    facebook, _ = record_change(
        sessions,
        [AI_CLAUSE],
        now=T0 + timedelta(minutes=3),
        doc_id="facebook/terms",
        service="Facebook",
        type_="Terms of Service",
        url="https://www.facebook.com/terms",
    )
    return instagram, facebook


def test_changes_found_together_reach_an_immediate_subscriber_as_one_email(
    sessions: sessionmaker[Session], grouping: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions)
    add_subscriber(sessions, "insta@example.org", services=["Instagram"])
    record_meta_morning(sessions)
    # inside the window nothing leaves: another document may still change
    assert deliver_pending(sessions, grouping, now=at(T0 + timedelta(minutes=9))).total == 0
    stats = deliver_pending(sessions, grouping, now=at(T0 + WINDOW))
    assert (stats.sent, stats.digests) == (2, 1)
    messages = {m["To"]: m for m in smtp_server.messages}
    grouped = messages["reader@example.org"]
    assert grouped["Subject"] == (
        "Facebook Terms of Service: AI training clause changed (high); "
        "Instagram Terms of Use: AI training clause changed (high)"
    )
    text = grouped.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("tos-monitor: 2 changes found together")
    assert "######## Facebook" in text and "######## Instagram" in text
    assert grouped["List-Unsubscribe"] is not None
    alone = messages["insta@example.org"]  # one change: the plain report
    assert alone["Subject"] == "Instagram Terms of Use: AI training clause changed (high)"
    assert {r.status for r in rows(sessions)} == {"sent"}
    assert deliver_pending(sessions, grouping, now=at(T0 + timedelta(hours=1))).total == 0
    assert len(smtp_server.messages) == 2


def test_check_and_send_group_at_once_without_waiting_for_the_window(
    sessions: sessionmaker[Session], grouping: Config, smtp_server: SMTPTestServer
) -> None:
    from monitor.outbox import send_now

    add_subscriber(sessions)
    record_meta_morning(sessions)
    waiting = send_now(sessions, grouping, now=at(T0 + timedelta(minutes=4)))
    assert waiting.stats.sent == 1 and str(waiting) == "Sent 1 (1 digests built). Nothing pending."
    [message] = smtp_server.messages
    assert message["Subject"].count("AI training clause changed") == 2

    record_change(sessions, [AI_CLAUSE], now=T0 + timedelta(hours=1), doc_id="instagram/x")
    held = deliver_pending(sessions, grouping, now=at(T0 + timedelta(hours=1)))
    assert held.total == 0
    with sessions() as session:
        from monitor.outbox import waiting as outbox_waiting

        assert "Held to leave with other changes in one email: 1 (by 2025-03-03 11:10 UTC)." in str(
            outbox_waiting(session, grouping, now=T0 + timedelta(hours=1))
        )
    cycle = deliver_pending(sessions, grouping, now=at(T0 + timedelta(hours=1)), hold=False)
    assert cycle.sent == 1 and len(smtp_server.messages) == 2


def test_a_zero_window_sends_each_report_alone(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions)
    record_meta_morning(sessions)
    assert deliver_pending(sessions, config, now=at(T0 + timedelta(minutes=3))).sent == 2
    assert len({m["Subject"] for m in smtp_server.messages}) == 2


def test_a_grouped_email_is_retried_whole_after_an_outage_and_sent_once(
    sessions: sessionmaker[Session], grouping: Config, smtp_server: SMTPTestServer
) -> None:
    add_subscriber(sessions)
    record_meta_morning(sessions)
    smtp_server.stop()
    assert deliver_pending(sessions, grouping, now=at(T0 + WINDOW)).retried == 1
    record_change(sessions, [AI_CLAUSE], now=T0 + WINDOW, doc_id="threads/terms", service="Threads")
    smtp_server.start()
    later = T0 + WINDOW + timedelta(minutes=30)
    assert deliver_pending(sessions, grouping, now=at(later)).sent == 2
    subjects = sorted(m["Subject"] for m in smtp_server.messages)
    assert subjects[0].startswith("Facebook Terms of Service") and "Instagram" in subjects[0]
    assert subjects[1].startswith("Threads")  # came later: its own email, not a resend
    assert {r.status for r in rows(sessions)} == {"sent"}


def test_three_senders_folding_at_once_send_each_change_once(
    sessions: sessionmaker[Session], grouping: Config, smtp_server: SMTPTestServer
) -> None:
    for n in range(6):
        add_subscriber(sessions, f"reader{n}@example.org")
    record_meta_morning(sessions)
    errors: list[BaseException] = []

    def run(worker: str) -> None:
        try:
            deliver_pending(sessions, grouping, now=at(T0 + WINDOW), worker=worker)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    deliver_pending(sessions, grouping, now=at(T0 + WINDOW + timedelta(minutes=1)))
    assert sorted(m["To"] for m in smtp_server.messages) == [
        f"reader{n}@example.org" for n in range(6)
    ]
    assert {r.status for r in rows(sessions)} == {"sent"}
    assert sum(1 for r in rows(sessions) if r.kind == "digest") == 6


@pytest.mark.parametrize(
    ("point", "emails_in_the_end"), [("before_send", 1), ("after_send", 2), ("marked", 1)]
)
def test_a_sender_killed_while_sending_a_grouped_email_loses_nothing(
    sessions: sessionmaker[Session],
    database_url: str,
    grouping: Config,
    smtp_server: SMTPTestServer,
    tmp_path: Path,
    point: str,
    emails_in_the_end: int,
) -> None:
    from monitor.outbox import build_due_digests

    add_subscriber(sessions)
    record_meta_morning(sessions)
    with sessions.begin() as session:  # what a sender does first: fold the two into one email
        assert build_due_digests(session, now=T0 + WINDOW, window=WINDOW) == 1
    env = {**os.environ, CRASH_ENV: point, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", SENDER, database_url, str(tmp_path), str(smtp_server.port)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    later = datetime.now(UTC) + grouping.daemon.lease + timedelta(minutes=1)
    deliver_pending(sessions, grouping, now=at(later), worker="survivor")
    deliver_pending(sessions, grouping, now=at(later + timedelta(hours=1)), worker="survivor")
    messages = smtp_server.messages
    assert len(messages) == emails_in_the_end
    assert len({m["Message-ID"] for m in messages}) == 1  # a resend folds in mail clients
    assert all(m["Subject"].count("AI training clause changed") == 2 for m in messages)
    assert {r.status for r in rows(sessions)} == {"sent"}


def test_a_server_that_will_not_relay_delays_mail_instead_of_failing_the_address(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    from monitor.outbox import send_now

    add_subscriber(sessions)
    smtp_server.refuse("reader@example.org", "554 5.7.1 <reader@example.org>: Relay access denied")
    record_change(sessions)
    down = send_now(sessions, config, now=at(T0))
    assert (down.stats.failed, down.stats.retried) == (0, 1)
    assert "will not relay to reader@example.org: 554 5.7.1" in str(down)
    assert "check [mail] username / password_env" in str(down)
    smtp_server.accept("reader@example.org")  # the operator fixed the relay rules
    assert send_now(sessions, config, now=at(T0 + timedelta(seconds=30))).stats.sent == 1
    with sessions() as session:
        assert session.scalars(select(Subscriber)).one().failed_deliveries == 0


def test_send_stops_at_an_unreachable_server_and_leaves_the_rest_untouched(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    from monitor.outbox import send_now

    for n in range(3):
        add_subscriber(sessions, f"reader{n}@example.org")
    record_change(sessions)
    smtp_server.stop()
    down = send_now(sessions, config, now=at(T0))
    assert (down.stats.sent, down.stats.retried) == (0, 1)
    assert str(down).startswith(
        "Sent 0, postponed 1. Still pending: 3 (next attempt with the next delivery run, "
        "last error: cannot reach 127.0.0.1:"
    )
    assert sorted(r.attempts for r in rows(sessions)) == [0, 0, 1]


def test_a_huge_change_of_low_clauses_reaches_a_medium_reader_as_a_short_report(
    sessions: sessionmaker[Session], config: Config, smtp_server: SMTPTestServer
) -> None:
    low = {**COSMETIC_CLAUSE, "severity": "low", "before": "x " * 3000, "after": "y " * 3000}
    add_subscriber(sessions)
    record_change(sessions, [AI_CLAUSE] + [low] * 200)
    assert deliver_pending(sessions, config, now=at(T0)).sent == 1
    [message] = smtp_server.messages
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert len(html.encode()) < 20_000 and "y y y" not in html
    assert "200 lower-severity clauses not shown (200 low)" in html
