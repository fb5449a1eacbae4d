"""Queries for subscribers, subscriptions and the delivery outbox. Never commits."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from monitor.models import Change, ClauseChangeRow, Delivery, Document, Subscriber, Subscription
from monitor.render import ChangeView, ClauseView, WordView
from monitor.urls import mask_credentials

OPEN_STATUSES = ("pending", "queued", "sending")


# ---------------------------------------------------------------------------------------------
# Subscribers and subscriptions


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).first()


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def create_subscriber(session: Session, *, email: str, state: str, now: datetime) -> Subscriber:
    subscriber = Subscriber(
        email=email,
        state=state,
        created_at=now,
        confirmed_at=now if state == "active" else None,
        failed_deliveries=0,
    )
    session.add(subscriber)
    session.flush()
    return subscriber


def add_subscription(
    session: Session,
    subscriber: Subscriber,
    *,
    services: Sequence[str],
    documents: Sequence[str],
    topics: Sequence[str],
    min_severity: str,
    cadence: str,
    now: datetime,
) -> Subscription:
    subscription = Subscription(
        subscriber_id=subscriber.id,
        services=list(services),
        documents=list(documents),
        topics=list(topics),
        min_severity=min_severity,
        cadence=cadence,
        created_at=now,
    )
    session.add(subscription)
    session.flush()
    session.refresh(subscriber)
    return subscription


def replace_subscriptions(
    session: Session,
    subscriber: Subscriber,
    *,
    services: Sequence[str],
    documents: Sequence[str],
    topics: Sequence[str],
    min_severity: str,
    cadence: str,
    now: datetime,
) -> Subscription:
    """Give ``subscriber`` exactly one subscription with these filters (the first one is kept
    and updated, any others are deleted)."""
    keep, *others = sorted(subscriber.subscriptions, key=lambda s: s.id)
    keep.services, keep.documents, keep.topics = list(services), list(documents), list(topics)
    keep.min_severity, keep.cadence = min_severity, cadence
    for other in others:
        session.delete(other)
    session.flush()
    session.refresh(subscriber)
    return keep


def open_confirmation(session: Session, subscriber_id: int) -> Delivery | None:
    """The subscriber's confirmation email not sent yet (waiting, retrying or being sent)."""
    return session.scalars(
        select(Delivery)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.kind == "confirm",
            Delivery.status.in_(("pending", "sending")),
        )
        .order_by(Delivery.id.desc())
    ).first()


def last_confirmation_sent_at(session: Session, subscriber_id: int) -> datetime | None:
    return session.scalar(
        select(func.max(Delivery.sent_at)).where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.kind == "confirm",
            Delivery.status == "sent",
        )
    )


def list_subscribers(session: Session) -> list[Subscriber]:
    return list(session.scalars(select(Subscriber).order_by(Subscriber.email)))


def active_subscriptions(session: Session) -> list[Subscription]:
    """Every subscription of a confirmed (active) subscriber."""
    return list(
        session.scalars(
            select(Subscription)
            .join(Subscriber, Subscription.subscriber_id == Subscriber.id)
            .where(Subscriber.state == "active")
            .order_by(Subscription.subscriber_id, Subscription.id)
        )
    )


def set_subscriber_state(
    session: Session, subscriber: Subscriber, state: str, *, now: datetime
) -> None:
    subscriber.state = state
    if state == "active":
        subscriber.confirmed_at = now
        subscriber.unsubscribed_at = None
        subscriber.failed_deliveries = 0
    elif state == "unsubscribed":
        subscriber.unsubscribed_at = now
        cancel_open_deliveries(session, subscriber.id, reason="unsubscribed", now=now)
    session.flush()


def cancel_open_deliveries(
    session: Session, subscriber_id: int, *, reason: str, now: datetime
) -> int:
    """Reports not yet handed to the SMTP server will not be sent (sending ones finish)."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status.in_(("pending", "queued")),
        )
        .values(status="cancelled", last_error=reason, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------------------------
# Outbox rows


def delivery_exists(session: Session, *, subscriber_id: int, change_id: int) -> bool:
    return (
        session.scalar(
            select(Delivery.id).where(
                Delivery.subscriber_id == subscriber_id, Delivery.change_id == change_id
            )
        )
        is not None
    )


def find_delivery_by_message_id(session: Session, message_id: str) -> Delivery | None:
    return session.scalars(select(Delivery).where(Delivery.message_id == message_id)).first()


def add_delivery(session: Session, **fields: Any) -> Delivery:
    fields.setdefault("attempts", 0)
    fields.setdefault("payload", {})
    delivery = Delivery(**fields)
    session.add(delivery)
    session.flush()
    return delivery


def queued_rows(session: Session, *, written_before: datetime) -> list[Delivery]:
    """Queued report rows that no digest holds yet (the caller decides which are due)."""
    return list(
        session.scalars(
            select(Delivery)
            .where(
                Delivery.status == "queued",
                Delivery.digest_id.is_(None),
                Delivery.created_at <= written_before,
            )
            .order_by(Delivery.subscriber_id, Delivery.cadence, Delivery.id)
        )
    )


def _queued(ids: Collection[int]) -> Any:
    return and_(
        Delivery.id.in_(list(ids)), Delivery.status == "queued", Delivery.digest_id.is_(None)
    )


def _update_queued(session: Session, ids: Collection[int], **values: Any) -> int:
    result = session.execute(
        update(Delivery)
        .where(_queued(ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def attach_to_digest(session: Session, ids: Collection[int], digest_id: int) -> int:
    """Put queued rows in a digest; returns how many were still free to take."""
    return _update_queued(session, ids, digest_id=digest_id)


def detach_from_digest(session: Session, digest_id: int) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.digest_id == digest_id, Delivery.status == "queued")
        .values(digest_id=None)
        .execution_options(synchronize_session=False)
    )


def release_queued(session: Session, ids: Collection[int], *, now: datetime) -> int:
    """Queued rows become pending reports of their own, due now."""
    return _update_queued(session, ids, status="pending", due_at=now)


def cancel_queued(session: Session, ids: Collection[int], *, reason: str) -> int:
    return _update_queued(session, ids, status="cancelled", last_error=reason)


def rows_of_digest(session: Session, digest_id: int) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery).where(Delivery.digest_id == digest_id).order_by(Delivery.id)
        )
    )


def mark_digest_rows_sent(session: Session, digest_id: int, *, now: datetime) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.digest_id == digest_id, Delivery.status == "queued")
        .values(status="sent", sent_at=now)
        .execution_options(synchronize_session=False)
    )


def claim_next_delivery(
    session: Session,
    *,
    now: datetime,
    worker: str,
    lease: timedelta,
    ids: Collection[int] | None = None,
    skip: Collection[int] = (),
    ignore_backoff: bool = False,
) -> Delivery | None:
    """Claim one due row: pending and due, or ``sending`` with an expired lease (its sender died).

    ``ignore_backoff`` also claims pending rows whose next retry is still in the future (an
    operator's ``tosmon send`` after fixing the SMTP server).

    PostgreSQL locks the candidate with ``FOR UPDATE SKIP LOCKED``; on every database the claim
    itself is a conditional UPDATE, so two senders can never both win the same row.
    """
    due = and_(Delivery.status == "pending", Delivery.due_at <= now)
    if not ignore_backoff:
        due = and_(due, or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
    stale = and_(Delivery.status == "sending", Delivery.claim_expires_at < now)
    query = select(Delivery.id, Delivery.status, Delivery.claimed_by).where(or_(due, stale))
    if ids is not None:
        query = query.where(Delivery.id.in_(list(ids)))
    if skip:
        query = query.where(Delivery.id.not_in(list(skip)))
    query = query.order_by(Delivery.due_at, Delivery.id).limit(5)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Delivery)
    for row_id, status, claimed_by in session.execute(query).all():
        condition = [Delivery.id == row_id, Delivery.status == status]
        condition.append(
            Delivery.claimed_by.is_(None)
            if claimed_by is None
            else Delivery.claimed_by == claimed_by
        )
        result = session.execute(
            update(Delivery)
            .where(*condition)
            .values(status="sending", claimed_by=worker, claim_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            delivery = session.get(Delivery, row_id, populate_existing=True)
            return delivery
    return None


def load_claimed(session: Session, delivery_id: int, *, worker: str) -> Delivery | None:
    """The row if this worker still holds its claim (a slower twin may have retaken it)."""
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    if delivery is None or delivery.status != "sending" or delivery.claimed_by != worker:
        return None
    return delivery


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    return {status: int(count) for status, count in rows}


def waiting_rows(session: Session) -> tuple[int, int, datetime | None, str | None]:
    """Rows not sent yet: (pending, sending, soonest next try, the latest retry's error)."""
    counts = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.status.in_(("pending", "sending")))
            .group_by(Delivery.status)
        ).all()
    )
    soonest = session.scalar(
        select(func.min(func.coalesce(Delivery.next_attempt_at, Delivery.due_at))).where(
            Delivery.status == "pending"
        )
    )
    error = session.scalar(
        select(Delivery.last_error)
        .where(Delivery.status == "pending", Delivery.last_error.is_not(None))
        .order_by(Delivery.next_attempt_at.desc(), Delivery.id.desc())
        .limit(1)
    )
    return int(counts.get("pending", 0)), int(counts.get("sending", 0)), soonest, error


def queued_by_cadence(session: Session) -> dict[str, tuple[int, datetime]]:
    """Queued rows no digest holds yet: cadence -> (count, earliest written)."""
    rows = session.execute(
        select(Delivery.cadence, func.count(), func.min(Delivery.created_at))
        .where(Delivery.status == "queued", Delivery.digest_id.is_(None))
        .group_by(Delivery.cadence)
    ).all()
    return {str(cadence): (int(count), earliest) for cadence, count, earliest in rows}


# ---------------------------------------------------------------------------------------------
# Changes as plain data for rendering


def get_change(session: Session, change_id: int) -> tuple[Change, Document] | None:
    change = session.get(Change, change_id)
    if change is None:
        return None
    document = session.get(Document, change.document_id)
    if document is None:
        return None
    return change, document


def clause_view(row: ClauseChangeRow, *, texts: bool = True) -> ClauseView:
    """One clause row as ``render`` needs it; ``texts=False`` leaves out the quoted texts and
    word diff (a timeline line shows only labels and severity, and they may not be loaded)."""
    words: list[WordView] = []
    for item in (row.words or []) if texts else []:
        if isinstance(item, dict):
            op, text = item.get("op"), item.get("text")
        else:
            op, text = item[0], item[1]
        words.append(WordView(op=str(op), text=str(text)))
    return ClauseView(
        kind=row.kind,
        section=tuple(str(part) for part in row.section or []),
        before=row.before if texts else None,
        after=row.after if texts else None,
        words=tuple(words),
        labels=tuple(str(label) for label in row.labels or []),
        direction=row.direction,
        severity=row.severity,
        annotation=row.annotation or "",
    )


def change_view(change: Change, document: Document, *, texts: bool = True) -> ChangeView:
    """A change and its document as the plain data ``render`` needs (see :func:`clause_view`
    for ``texts``)."""
    return ChangeView(
        change_id=change.id,
        service=document.service,
        document_id=document.id,
        document_type=document.type,
        url=mask_credentials(document.url),
        detected_at=change.detected_at,
        summary=change.summary,
        severity=change.severity,
        clauses=tuple(
            clause_view(row, texts=texts) for row in sorted(change.clauses, key=_position)
        ),
        notes=tuple(str(note) for note in change.notes or []),
        headline=change.headline or "",
        dates=tuple(str(d) for d in change.dates or []),
        opt_outs=tuple(str(o) for o in change.opt_outs or []),
    )


def _position(row: ClauseChangeRow) -> int:
    return row.position


def load_change_view(session: Session, change_id: int) -> ChangeView | None:
    found = get_change(session, change_id)
    return change_view(*found) if found else None


# ---------------------------------------------------------------------------------------------
# [[notify]] targets


def checked_changes_since(session: Session, since: datetime) -> list[tuple[Change, Document]]:
    """Changes found by checks (not imported) at or after ``since``, oldest first."""
    query = (
        select(Change, Document)
        .join(Document, Document.id == Change.document_id)
        .where(Change.detected_at >= since, Change.source == "check")
        .order_by(Change.detected_at, Change.id)
    )
    return [(change, document) for change, document in session.execute(query).all()]


def notified_change_ids(session: Session, *, kind: str, target: str) -> set[int]:
    """The changes a notify target already has an outbox row for."""
    query = select(Delivery.change_id).where(
        Delivery.kind == kind, Delivery.to_address == target, Delivery.change_id.is_not(None)
    )
    return {change_id for change_id in session.scalars(query) if change_id is not None}
