"""Operator alerts: one email when a document starts failing, one when it recovers.

The decision is made from the document's state, not from the event that changed it, so it is
safe to repeat after a crash: a document that has failed ``[alerts] after_failures`` checks in a
row and has not been alerted (``failure_alerted_at`` is NULL) gets the "failing" alert and is
marked, in the same transaction as the outbox row; a document that checks fine again while marked
gets the "recovered" alert and is unmarked. However many checks fail in between, that is two
emails. With no ``[alerts] email`` configured nothing is queued (and nothing is marked).

The daemon calls :func:`update_alert` after each check, while it still holds the document's claim,
so two daemons never decide for the same document at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from monitor.config import AlertsConfig
from monitor.logs import escape_controls
from monitor.models import Document
from monitor.store import scheduling as store
from monitor.urls import mask_credentials

log = logging.getLogger("monitor.alerts")

ERROR_LIMIT = 1000
"""The last error is quoted up to this many characters."""


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert to send: who, subject and plain-text body, and its idempotency key."""

    kind: str
    """failing | recovered"""
    document_id: str
    to: str
    subject: str
    body: str
    key: str


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "unknown"


def _name(document: Document) -> str:
    return escape_controls(f"{document.service} {document.type}")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def failing_alert(document: Document, *, to: str, now: datetime) -> Alert:
    since = document.failing_since or now
    error = escape_controls((document.last_error or "no reason recorded")[:ERROR_LIMIT])
    body = (
        f"The document {document.id} ({_name(document)}) has failed its last "
        f"{document.consecutive_failures} checks.\n"
        f"\n"
        f"URL:           {escape_controls(mask_credentials(document.url))}\n"
        f"Failing since: {_when(since)}\n"
        f"Last check:    {_when(document.last_check_at or now)}\n"
        f"Last error:    {error}\n"
        f"\n"
        f"tos-monitor keeps checking it on schedule. You will get one more email when it "
        f"recovers, not one per failed check. `tosmon status` lists every failing document."
    )
    return Alert(
        kind="failing",
        document_id=document.id,
        to=to,
        subject=f"tos-monitor: {_name(document)} failing since {since:%Y-%m-%d %H:%M} UTC",
        body=body,
        key=f"alert:failing:{document.id}:{since.isoformat()}",
    )


def recovered_alert(document: Document, *, to: str, now: datetime, since: datetime | None) -> Alert:
    checked = document.last_success_at or now
    outage = f" (down for about {_duration((checked - since).total_seconds())})" if since else ""
    body = (
        f"The document {document.id} ({_name(document)}) was checked successfully again.\n"
        f"\n"
        f"URL:           {escape_controls(mask_credentials(document.url))}\n"
        f"Failing since: {_when(since)}\n"
        f"Recovered at:  {_when(checked)}{outage}\n"
    )
    marker = since.isoformat() if since else (document.failure_alerted_at or now).isoformat()
    return Alert(
        kind="recovered",
        document_id=document.id,
        to=to,
        subject=f"tos-monitor: {_name(document)} recovered",
        body=body,
        key=f"alert:recovered:{document.id}:{marker}",
    )


def update_alert(
    session: Session, document: Document, *, alerts: AlertsConfig, now: datetime
) -> Alert | None:
    """Queue the alert the document's state calls for (if any) and mark the document.

    The caller commits, so the mark and the outbox row land together.
    """
    if alerts.email is None:
        return None
    alert: Alert | None = None
    if document.consecutive_failures >= alerts.after_failures:
        if document.failure_alerted_at is None:
            alert = failing_alert(document, to=alerts.email, now=now)
            document.failure_alerted_at = now
    elif document.consecutive_failures == 0 and document.failure_alerted_at is not None:
        since = store.failure_streak_start(
            session, document.id, before=document.last_success_at or now
        )
        alert = recovered_alert(document, to=alerts.email, now=now, since=since)
        document.failure_alerted_at = None
    if alert is None:
        return None
    from monitor.outbox import enqueue_alert

    enqueue_alert(
        session, to=alert.to, subject=alert.subject, body=alert.body, now=now, key=alert.key
    )
    log.warning(
        "alert %s %s queued for %s",
        alert.document_id,
        alert.kind,
        alert.to,
        extra={"document": alert.document_id, "outcome": f"alert-{alert.kind}"},
    )
    return alert
