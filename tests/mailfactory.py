"""Helpers for the mail tests: documents, changes and subscribers written straight to the database,
and a Config pointing at a test SMTP server or mail folder."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config, MailConfig, WebConfig, load_config
from monitor.models import Blob, Change, ClauseChangeRow, Document, Version

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
SECRET = "test-secret-key-0123456789abcdef"

AI_CLAUSE: dict[str, Any] = {
    "kind": "modified",
    "section": ["Your Commitments", "Permissions You Give Us"],
    "before": "We use your content to provide the Service.",
    "after": "We use your content to provide the Service and to train our AI models.",
    "words": [
        ["equal", "We use your content to provide the Service"],
        ["delete", "."],
        ["insert", " and to train our AI models."],
    ],
    "labels": ["AI_TRAINING_ON_USER_DATA"],
    "direction": "expands",
    "severity": "high",
    "annotation": "Your posts may become training material for AI systems.",
}
COSMETIC_CLAUSE: dict[str, Any] = {
    "kind": "modified",
    "section": ["Intro"],
    "before": "Welcome to Instagram!",
    "after": "Welcome to Instagram.",
    "words": [["equal", "Welcome to Instagram"], ["delete", "!"], ["insert", "."]],
    "labels": [],
    "direction": "neutral",
    "severity": "cosmetic",
    "annotation": "",
}


def mail_config(
    tmp_path: Path,
    *,
    smtp: Any | None = None,
    base_url: str = "https://tos.example.org",
    bind: str = "127.0.0.1:0",
    group_window: timedelta = timedelta(0),
) -> Config:
    """A Config whose mail goes to ``smtp`` (a tests.smtp server) or else to a mail folder;
    immediate reports leave one by one unless ``group_window`` is given."""
    config = load_config(env={"TOSMON_DATA_DIR": str(tmp_path / "data")})
    mail = MailConfig(
        host=smtp.host if smtp is not None else None,
        port=smtp.port if smtp is not None else 25,
        security="none",
        sender="tos-monitor <monitor@example.org>",
        folder=tmp_path / "mail",
        group_window=group_window,
    )
    return dataclasses.replace(
        config,
        mail=mail,
        web=WebConfig(bind=bind, base_url=base_url),
        secret_key_file=tmp_path / "data" / "secret.key",
    )


def _blob(session: Session, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    if session.get(Blob, digest) is None:
        session.add(Blob(hash=digest, size=len(text), compression="none", data=text.encode()))
    return digest


def make_document(
    session: Session,
    *,
    doc_id: str = "instagram/terms-of-use",
    service: str = "Instagram",
    type_: str = "Terms of Use",
    url: str = "https://help.instagram.com/terms",
) -> Document:
    document = session.get(Document, doc_id)
    if document is None:
        document = Document(
            id=doc_id, service=service, type=type_, url=url, created_at=T0, consecutive_failures=0
        )
        session.add(document)
        session.flush()
    return document


def make_change(
    session: Session,
    document: Document,
    clauses: Sequence[dict[str, Any]] = (AI_CLAUSE, COSMETIC_CLAUSE),
    *,
    summary: str = "Instagram now says it may train AI models on your content.",
    detected_at: datetime = T0,
) -> Change:
    """Two versions of ``document`` and the change between them (flushed, not committed)."""
    versions = []
    for n in (1, 2):
        text = f"{document.id} version {n} at {detected_at.isoformat()} {len(clauses)}"
        version = Version(
            document_id=document.id,
            seen_at=detected_at - timedelta(days=2 - n),
            last_seen_at=detected_at,
            text_hash=_blob(session, text),
            clause_count=3,
        )
        session.add(version)
        versions.append(version)
    session.flush()
    severities = [c["severity"] for c in clauses]
    order = ["cosmetic", "low", "medium", "high"]
    change = Change(
        document_id=document.id,
        old_version_id=versions[0].id,
        new_version_id=versions[1].id,
        detected_at=detected_at,
        summary=summary,
        severity=max(severities, key=order.index) if severities else "cosmetic",
        labels=sorted({label for c in clauses for label in c["labels"]}),
        notes=[],
    )
    change.clauses = [ClauseChangeRow(position=i, **clause) for i, clause in enumerate(clauses)]
    session.add(change)
    session.flush()
    return change


def record_change(
    sessions: sessionmaker[Session],
    clauses: Sequence[dict[str, Any]] = (AI_CLAUSE, COSMETIC_CLAUSE),
    *,
    now: datetime = T0,
    **document: Any,
) -> tuple[int, int]:
    """What the tracker does: a change and its outbox rows in one transaction. (change id, rows)"""
    from monitor.outbox import enqueue_change

    with sessions.begin() as session:
        doc = make_document(session, **document)
        change = make_change(session, doc, clauses, detected_at=now)
        rows = enqueue_change(session, change, doc, now=now)
        return change.id, rows


def add_subscriber(
    sessions: sessionmaker[Session],
    email: str = "reader@example.org",
    *,
    confirm: bool = False,
    now: datetime = T0,
    **filters: Any,
) -> int:
    """A subscriber (active unless ``confirm``); returns the subscriber id."""
    from monitor.subscriptions import as_filter, subscribe

    with sessions.begin() as session:
        return subscribe(
            session, email, as_filter(**filters), now=now, confirm=confirm
        ).subscriber_id
