"""A huge change makes a report of readable size: over real SMTP and the real web endpoint."""

from __future__ import annotations

from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.outbox import deliver_pending
from monitor.render import REPORT_LIMIT
from monitor.web import serve
from tests.mailfactory import AI_CLAUSE, SECRET, T0, add_subscriber, mail_config, record_change
from tests.smtp import SMTPTestServer

SENTENCE = "The provider may update the features of the service from time to time. "


def _long_clause(n: int) -> dict[str, Any]:
    before = f"Clause {n}. " + SENTENCE * 150  # about 11 KB a side
    after = before.replace("from time to time", "at any time")
    return {
        "kind": "modified",
        "section": ["Service", f"Part {n}"],
        "before": before,
        "after": after,
        "words": [
            [op, text]
            for part in before.split("from time to time")[:-1]
            for op, text in (
                ["equal", part],
                ["delete", "from time to time"],
                ["insert", "at any time"],
            )
        ]
        + [["equal", before.split("from time to time")[-1]]],
        "labels": [],
        "direction": "neutral",
        "severity": "low",
        "annotation": "Rewords a clause.",
    }


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOSMON_SECRET_KEY", SECRET)


def _part(message: Message, subtype: str) -> str:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part")


def test_a_huge_change_is_mailed_as_a_short_report_linking_to_the_whole(
    sessions: sessionmaker[Session], tmp_path: Path, smtp_server: SMTPTestServer
) -> None:
    # a reader of every severity: at the default (medium) the 400 low clauses are only counted
    add_subscriber(sessions, "reader@example.org", min_severity="low")
    change_id = _record(sessions)
    config = mail_config(tmp_path, smtp=smtp_server)
    assert deliver_pending(sessions, config, now=lambda: T0).sent == 1
    [message] = smtp_server.messages
    html = _part(message, "html")
    text = _part(message, "plain")
    assert len(html.encode()) <= REPORT_LIMIT
    assert len(text.encode()) <= REPORT_LIMIT
    for body in (html, text):
        # the most severe clause comes first, whole; the rest is summarised with a link
        assert "Your posts may become training material for AI systems." in body
        assert "This report is shortened" in body
        assert f"https://tos.example.org/changes/{change_id}" in body
    assert html.index("training material") < html.index("Clause 0.")


def _record(sessions: sessionmaker[Session]) -> int:
    clauses = [_long_clause(n) for n in range(400)] + [AI_CLAUSE]
    change_id, _ = record_change(sessions, clauses)
    return change_id


def test_the_page_of_a_huge_change_is_short_and_rendered_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    change_id = _record(sessions)
    server = serve(mail_config(tmp_path), sessions, now=lambda: T0)
    try:
        page = httpx.get(f"{server.url}/changes/{change_id}", timeout=30)
        assert page.status_code == 200
        assert len(page.content) <= REPORT_LIMIT
        assert "Your posts may become training material for AI systems." in page.text
        assert "This report is shortened" in page.text
        assert "tosmon diff instagram/terms-of-use --to " in page.text
        # the page is rendered once: a row edited behind the server's back (no new check or
        # change, so the history has not moved) does not show until it does
        from sqlalchemy import update

        from monitor.models import Change

        with sessions.begin() as session:
            session.execute(update(Change).values(summary="edited behind the server's back"))
        again = httpx.get(f"{server.url}/changes/{change_id}", timeout=30)
        assert again.status_code == 200 and again.text == page.text
    finally:
        server.stop()


def test_a_long_clause_in_a_report_of_ordinary_size_is_quoted_whole() -> None:
    from monitor.render import ChangeView, ClauseView, render_change

    after = "We may use your content to train AI models. " * 120  # 5,400 characters
    view = ChangeView(
        change_id=7,
        service="Example",
        document_id="example/terms",
        document_type="Terms",
        url="https://example.org/terms",
        detected_at=T0,
        summary="1 clause changed",
        severity="high",
        clauses=(
            ClauseView(kind="added", section=("Terms",), before=None, after=after, severity="high"),
        ),
    )
    rendered = render_change(view, base_url="https://tos.example.org", unsubscribe_url=None)
    assert after.strip() in rendered.html
    assert after.strip() in rendered.text
    assert "shortened" not in rendered.html


def test_a_digest_of_huge_changes_stays_short_and_names_every_change() -> None:
    from monitor.render import ChangeView, ClauseView, WordView, render_digest

    text = SENTENCE * 150

    def huge(change_id: int) -> ChangeView:
        clause = ClauseView(
            kind="modified",
            section=("Service",),
            before=text,
            after=text + "Now for AI.",
            words=(WordView("equal", text), WordView("insert", "Now for AI.")),
            severity="low",
        )
        return ChangeView(
            change_id=change_id,
            service=f"Service {change_id}",
            document_id=f"s{change_id}/terms",
            document_type="Terms",
            url="https://example.org/terms",
            detected_at=T0,
            summary="400 clauses changed",
            severity="low",
            clauses=(clause,) * 400,
        )

    digest = render_digest(
        [huge(n) for n in range(1, 9)],
        cadence="daily",
        period_end=T0,
        base_url="https://tos.example.org",
        unsubscribe_url=None,
    )
    assert len(digest.html.encode()) <= REPORT_LIMIT
    for n in range(1, 9):
        assert f"Service {n}" in digest.html
        assert f"https://tos.example.org/changes/{n}" in digest.html
