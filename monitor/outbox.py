"""The delivery queue: rows written with what they report, sent later, each exactly once.

Writing: :func:`enqueue_change` runs inside the tracker's transaction, so a change and its outbox
rows are committed together or not at all. Every report row starts ``queued``. Before sending,
:func:`build_due_digests` releases an immediate subscriber's rows once ``[mail] group_window``
has passed since the oldest: one row alone becomes a ``pending`` report, several found together
become one email (a digest row of cadence ``immediate``); daily and weekly rows wait for the next
digest time and fold into one digest row per subscriber and period. A folded row stays
``queued`` with ``digest_id`` set and is marked with its digest, so it is never sent on its own.

Sending: :func:`deliver_pending` claims one row at a time (status ``sending`` + a lease), commits,
renders and hands it to the mailer, then marks it ``sent`` in a second transaction. A sender killed
before the SMTP server accepted the message leaves a claim whose lease runs out, and the row is
sent later; killed after acceptance but before the mark, the row is sent again with the same
Message-ID (fixed when the row was written), which mail clients fold into one. A temporary failure
retries with exponential backoff; a permanent refusal fails only that row.

Test hook: ``TOSMON_OUTBOX_CRASH_AT=claimed|before_send|after_send|marked`` makes the sender kill
itself with SIGKILL at that point (used by the crash tests; never set it in production).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from monitor import render
from monitor.addresses import validate_email
from monitor.clauses import severity_rank
from monitor.clock import utcnow
from monitor.config import Config, MailConfig
from monitor.errors import ConfigError, DeliveryError, SubscriptionError
from monitor.mailer import Mailer, SMTPUnavailable
from monitor.messageids import keyed_message_id, new_message_id
from monitor.models import Change, Delivery, DeliveryStatus, Document, Subscriber
from monitor.store import mail as store
from monitor.subscriptions import (
    ChangeFacts,
    ClauseFacts,
    SubscribeResult,
    SubscriptionFilter,
    fastest_cadence,
    load_secret_key,
    matches,
    next_digest_at,
    sign_token,
    subscribe,
    subscription_filter,
)

log = logging.getLogger(__name__)

CRASH_ENV = "TOSMON_OUTBOX_CRASH_AT"
MAX_ATTEMPTS = 10
CADENCE_ORDER = ("immediate", "daily", "weekly")
BOUNCE_THRESHOLD = 3
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    digests: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.failed + self.retried + self.cancelled

    def __str__(self) -> str:
        """``sent 2, retrying 1`` (only what happened); empty when nothing was due."""
        parts = [
            f"{label} {count}"
            for label, count in (
                ("sent", self.sent),
                ("retrying", self.retried),
                ("failed", self.failed),
                ("cancelled", self.cancelled),
                ("digests built", self.digests),
            )
            if count
        ]
        return ", ".join(parts)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Waiting:
    """What the outbox still holds, for people: how much, until when, and why."""

    pending: int
    sending: int
    next_attempt_at: datetime | None
    last_error: str | None
    queued: dict[str, tuple[int, datetime]]
    """cadence -> (rows waiting, when they leave)"""
    now: datetime

    def __str__(self) -> str:
        """``Still pending: 1 (next attempt 2026-12-02 06:10 UTC, last error: ...)``."""
        parts: list[str] = []
        if self.pending:
            when = self.next_attempt_at
            timing = (
                f"next attempt {_when(when)}"
                if when is not None and when > self.now
                else "next attempt with the next delivery run"
            )
            error = f", last error: {render.one_line(self.last_error or '', limit=300)}"
            parts.append(
                f"Still pending: {self.pending} ({timing}{error if self.last_error else ''})."
            )
        if self.sending:
            parts.append(f"Being sent by another process: {self.sending}.")
        for cadence, (count, leaves) in sorted(
            self.queued.items(), key=lambda item: CADENCE_ORDER.index(item[0])
        ):
            if cadence == "immediate":
                parts.append(
                    f"Held to leave with other changes in one email: {count} (by {_when(leaves)})."
                )
            else:
                parts.append(f"Waiting for the {cadence} digest: {count} (leaves {_when(leaves)}).")
        return " ".join(parts) if parts else "Nothing pending."


@dataclass(frozen=True)
class SendSummary:
    """One ``tosmon send``: what happened, and what is still waiting."""

    stats: DeliveryStats
    waiting: Waiting

    def __str__(self) -> str:
        stats = self.stats
        done = f"Sent {stats.sent}"
        for label, count in (
            ("failed for good", stats.failed),
            ("postponed", stats.retried),
            ("cancelled", stats.cancelled),
        ):
            if count:
                done += f", {label} {count}"
        if stats.digests:
            done += f" ({stats.digests} digests built)"
        return f"{done}. {self.waiting}"


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def backoff(
    attempts: int, *, base: timedelta = BACKOFF_BASE, ceiling: timedelta = BACKOFF_MAX
) -> timedelta:
    """How long to wait after ``attempts`` failed tries: 1, 2, 4 ... minutes, at most 6 hours."""
    return min(base * (1 << max(attempts - 1, 0)), ceiling)


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# Writing to the outbox


def reader_floor(subscriptions: Sequence[object], view: render.ChangeView) -> str:
    """The lowest ``min_severity`` among a reader's subscriptions that match the change (of all
    their subscriptions when none does any more): what the email shows in full."""
    facts = ChangeFacts(
        service=view.service,
        document_id=view.document_id,
        clauses=tuple(ClauseFacts(labels=c.labels, severity=c.severity) for c in view.clauses),
    )
    filters = [subscription_filter(s) for s in subscriptions]
    floors = [f.min_severity for f in filters if matches(f, facts)] or [
        f.min_severity for f in filters
    ]
    return min(floors, key=severity_rank) if floors else "low"


def enqueue_change(
    session: Session,
    change: Change,
    document: Document,
    *,
    now: datetime,
    digest_hour: int = 8,
    weekly_digest_day: str = "monday",
) -> int:
    """Write one outbox row per confirmed subscriber whose subscriptions match ``change``.

    Runs in the caller's transaction; sends nothing, commits nothing. Returns the rows written
    (a subscriber who already has a row for this change gets no second one). Every row starts
    ``queued``: :func:`build_due_digests` releases immediate ones (alone, or several found
    together as one email) and folds daily and weekly ones into their digest.
    """
    session.flush()
    facts = ChangeFacts.of(change, document)
    if not facts.clauses:
        return 0
    wanted: dict[int, list[str]] = {}
    addresses: dict[int, str] = {}
    for subscription in store.active_subscriptions(session):
        if matches(subscription_filter(subscription), facts):
            wanted.setdefault(subscription.subscriber_id, []).append(subscription.cadence)
            addresses[subscription.subscriber_id] = subscription.subscriber.email
    if not wanted:
        return 0
    subject = render.subject_for(store.change_view(change, document))
    written = 0
    for subscriber_id, cadences in wanted.items():
        if store.delivery_exists(session, subscriber_id=subscriber_id, change_id=change.id):
            continue
        cadence = fastest_cadence(cadences)
        immediate = cadence == "immediate"
        store.add_delivery(
            session,
            kind="report",
            status="queued",  # immediate ones too: the sender groups those found together
            subscriber_id=subscriber_id,
            change_id=change.id,
            cadence=cadence,
            to_address=addresses[subscriber_id],
            subject=subject,
            message_id=new_message_id("report", change.id, subscriber_id),
            created_at=now,
            due_at=now
            if immediate
            else next_digest_at(now, cadence, hour=digest_hour, weekday=weekly_digest_day),
        )
        written += 1
    return written


def enqueue_alert(
    session: Session, *, to: str, subject: str, body: str, now: datetime, key: str
) -> None:
    """Queue an operator alert; the same ``key`` never queues a second one."""
    address = validate_email(to)
    message_id = keyed_message_id("alert", key)
    if store.find_delivery_by_message_id(session, message_id) is not None:
        return
    store.add_delivery(
        session,
        kind="alert",
        status="pending",
        subscriber_id=None,
        change_id=None,
        cadence="immediate",
        to_address=address,
        subject=render.one_line(subject),
        message_id=message_id,
        payload={"body": body, "key": key},
        created_at=now,
        due_at=now,
    )


def leaves_at(written_at: datetime, cadence: str, config: Config) -> datetime:
    """When a queued row written at ``written_at`` is due to leave (alone or in its digest)."""
    if cadence == "immediate":
        return written_at + config.mail.group_window
    return next_digest_at(
        written_at,
        cadence,  # type: ignore[arg-type]
        hour=config.daemon.digest_hour,
        weekday=config.daemon.weekly_digest_day,
    )


def build_due_digests(
    session: Session,
    *,
    now: datetime,
    hour: int = 8,
    weekday: str = "monday",
    window: timedelta = timedelta(0),
    hold: bool = True,
) -> int:
    """Fold due queued rows into one digest row per subscriber and cadence. Returns digests.

    A daily or weekly row is due when the first digest time after it was written has passed;
    the schedule (``[daemon] digest_hour`` and ``weekly_digest_day``) is the one in force now,
    so changing it in the config also moves rows already queued.

    Immediate rows wait ``window`` (``[mail] group_window``) after the subscriber's oldest one
    was written; then all that subscriber's immediate rows leave together: one row alone as the
    plain report it is, several as one email (a digest of cadence ``immediate``). ``hold=False``
    folds them at once (``tosmon check`` after its whole cycle, ``tosmon send``). A zero window
    never groups: each report leaves alone, at once.

    Every move is a conditional UPDATE on rows still ``queued`` and in no digest, so two senders
    folding at the same moment can never put one row in two emails: the loser undoes its fold.
    """
    groups: dict[tuple[int, str], list[Delivery]] = {}
    dues: dict[int, datetime] = {}
    immediate: dict[int, list[Delivery]] = {}
    for row in store.queued_rows(session, written_before=now):
        if row.subscriber_id is None:
            continue
        if row.cadence == "immediate":
            immediate.setdefault(row.subscriber_id, []).append(row)
            continue
        due = next_digest_at(row.created_at, row.cadence, hour=hour, weekday=weekday)  # type: ignore[arg-type]
        if due > now:
            continue
        dues[row.id] = due
        groups.setdefault((row.subscriber_id, row.cadence), []).append(row)
    for subscriber_id, rows in immediate.items():
        if not window:
            for row in rows:
                store.release_queued(session, [row.id], now=now)
        elif not hold or min(row.created_at for row in rows) + window <= now:
            if len(rows) == 1:
                store.release_queued(session, [rows[0].id], now=now)
            else:
                dues.update((row.id, now) for row in rows)
                groups[(subscriber_id, "immediate")] = rows
    built = 0
    for (subscriber_id, cadence), rows in groups.items():
        ids = [row.id for row in rows]
        subscriber = store.get_subscriber(session, subscriber_id)
        if subscriber is None or subscriber.state != "active":
            store.cancel_queued(session, ids, reason="subscriber not active")
            continue
        period_end = max(dues[row.id] for row in rows)
        digest = store.add_delivery(
            session,
            kind="digest",
            status="pending",
            subscriber_id=subscriber_id,
            change_id=None,
            cadence=cadence,
            to_address=subscriber.email,
            subject=render.one_line(
                "; ".join(row.subject for row in rows)
                if cadence == "immediate"
                else f"{cadence.capitalize()} digest"
            ),
            message_id=new_message_id("digest", cadence, subscriber_id, rows[0].id),
            payload={
                "change_ids": [row.change_id for row in rows],
                "period_end": period_end.isoformat(),
            },
            created_at=now,
            due_at=now,
        )
        if store.attach_to_digest(session, ids, digest.id) != len(ids):
            log.info("rows %s were folded by another sender; leaving them to it", ids)
            store.detach_from_digest(session, digest.id)
            session.delete(digest)
            continue
        built += 1
    session.flush()
    return built


# ---------------------------------------------------------------------------------------------
# Building messages


@dataclass(frozen=True)
class Links:
    base_url: str
    key: bytes

    def unsubscribe(self, subscriber: Subscriber) -> str:
        token = sign_token(
            self.key,
            "unsubscribe",
            subscriber_id=subscriber.id,
            email=subscriber.email,
            now=subscriber.created_at,
        )
        return f"{self.base_url}/unsubscribe?token={quote(token)}"

    def confirm(self, subscriber: Subscriber, *, issued_at: datetime) -> str:
        token = sign_token(
            self.key,
            "confirm",
            subscriber_id=subscriber.id,
            email=subscriber.email,
            now=issued_at,
            nonce=subscriber.token_nonce,
        )
        return f"{self.base_url}/confirm?token={quote(token)}"


class _Skip(Exception):
    """This row should not be sent (its subscriber left, its change is gone)."""


def _header(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise DeliveryError("refusing a header value containing CR or LF", transient=False)
    return value


def compose(
    rendered: render.RenderedEmail,
    *,
    sender: str,
    to: str,
    message_id: str,
    date: datetime,
    unsubscribe_url: str | None,
) -> EmailMessage:
    """A multipart/alternative message (plain text first, then HTML) with safe headers."""
    message = EmailMessage(policy=SMTP)
    message["From"] = _header(sender)
    try:
        message["To"] = _header(validate_email(to))
    except SubscriptionError as exc:
        raise DeliveryError(f"bad recipient: {exc}", transient=False) from exc
    message["Subject"] = _header(render.one_line(rendered.subject))
    message["Date"] = _header(format_datetime(date.astimezone(UTC)))
    message["Message-ID"] = _header(message_id)
    message["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url:
        message["List-Unsubscribe"] = _header(f"<{unsubscribe_url}>")
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return message


def build_message(
    session: Session, delivery: Delivery, config: Config, links: Links
) -> EmailMessage:
    """Render the row's email from the database as it is now."""
    base_url = config.web.base_url
    subscriber = (
        store.get_subscriber(session, delivery.subscriber_id)
        if delivery.subscriber_id is not None
        else None
    )
    unsubscribe_url: str | None = None
    if delivery.kind == "alert":
        rendered = render.render_alert(
            subject=delivery.subject, body=str(delivery.payload.get("body", ""))
        )
    elif delivery.kind == "confirm":
        if subscriber is None or subscriber.state != "pending":
            raise _Skip("subscriber is no longer waiting for confirmation")
        rendered = render.render_confirm(
            email=subscriber.email,
            confirm_url=links.confirm(subscriber, issued_at=delivery.created_at),
            filters=[subscription_filter(s).describe() for s in subscriber.subscriptions],
        )
    elif delivery.kind in ("report", "digest"):
        if subscriber is None or subscriber.state != "active":
            raise _Skip("subscriber is not active")
        unsubscribe_url = links.unsubscribe(subscriber)
        if delivery.kind == "report":
            view = store.load_change_view(session, delivery.change_id or 0)
            if view is None:
                raise _Skip("the change no longer exists")
            rendered = render.render_change(
                view,
                base_url=base_url,
                unsubscribe_url=unsubscribe_url,
                min_severity=reader_floor(subscriber.subscriptions, view),
            )
        else:
            views = [
                dataclasses.replace(view, min_severity=reader_floor(subscriber.subscriptions, view))
                for change_id in delivery.payload.get("change_ids", [])
                if (view := store.load_change_view(session, int(change_id))) is not None
            ]
            if not views:
                raise _Skip("the changes no longer exist")
            rendered = render.render_digest(
                views,
                cadence=delivery.cadence,
                period_end=datetime.fromisoformat(delivery.payload["period_end"]),
                base_url=base_url,
                unsubscribe_url=unsubscribe_url,
            )
    else:
        raise _Skip(f"unknown delivery kind {delivery.kind!r}")
    return compose(
        rendered,
        sender=config.mail.sender,
        to=delivery.to_address,
        message_id=delivery.message_id,
        date=delivery.created_at,
        unsubscribe_url=unsubscribe_url,
    )


# ---------------------------------------------------------------------------------------------
# Sending


def deliver_pending(
    sessions: sessionmaker[Session],
    config: Config,
    *,
    now: Callable[[], datetime] = utcnow,
    worker: str | None = None,
    limit: int | None = None,
    ids: Collection[int] | None = None,
    mailer: Mailer | None = None,
    force: bool = False,
    hold: bool = True,
) -> DeliveryStats:
    """Deliver every due row (building due digests first); commits per row.

    Stops early when the SMTP server is unreachable (every row would fail the same way); those
    rows are retried after a backoff. ``ids`` restricts delivery to those rows (the CLI uses it
    to send a confirmation right away). ``force`` also tries rows still inside their retry
    backoff (an operator who just fixed the SMTP server); a failure still sets the next backoff.
    ``hold=False`` (and ``force``) sends immediate reports without waiting out
    ``[mail] group_window``, grouping those already written.
    """
    worker = worker or default_worker()
    stats = DeliveryStats()
    lease = config.daemon.lease
    if ids is None:
        with sessions.begin() as session:
            stats.digests = build_due_digests(
                session,
                now=now(),
                hour=config.daemon.digest_hour,
                weekday=config.daemon.weekly_digest_day,
                window=config.mail.group_window,
                hold=hold and not force,
            )
            if config.notify:
                from monitor.notify import enqueue_notifications

                enqueue_notifications(session, config, now=now())
    links: Links | None = None
    own_mailer = mailer is None
    active = mailer or Mailer(config.mail)
    skip: set[int] = set()
    try:
        while limit is None or stats.total < limit:
            with sessions.begin() as session:
                claimed = store.claim_next_delivery(
                    session,
                    now=now(),
                    worker=worker,
                    lease=lease,
                    ids=ids,
                    skip=skip,
                    ignore_backoff=force,
                )
                claimed_id = claimed.id if claimed is not None else None
            if claimed_id is None:
                break
            skip.add(claimed_id)
            try:
                _crash_point("claimed")
                if links is None:
                    links = Links(config.web.base_url, load_secret_key(config.secret_key_file))
                outcome, server_down = _deliver_one(
                    sessions, config, active, links, claimed_id, worker, now
                )
            except BaseException:
                _release_claim(sessions, claimed_id, worker)
                raise
            setattr(stats, outcome, getattr(stats, outcome) + 1)
            if server_down:
                break
    finally:
        if own_mailer:
            active.close()
    return stats


def waiting(session: Session, config: Config, *, now: datetime) -> Waiting:
    """What the outbox holds that is not sent yet, and when it goes."""
    pending, sending, soonest, error = store.waiting_rows(session)
    queued: dict[str, tuple[int, datetime]] = {}
    for cadence, (count, earliest) in store.queued_by_cadence(session).items():
        queued[cadence] = (count, leaves_at(earliest, cadence, config))
    return Waiting(
        pending=pending,
        sending=sending,
        next_attempt_at=soonest,
        last_error=error,
        queued=queued,
        now=now,
    )


def send_now(
    sessions: sessionmaker[Session],
    config: Config,
    *,
    now: Callable[[], datetime] = utcnow,
    limit: int | None = None,
) -> SendSummary:
    """``tosmon send``: try every pending email now, backoff or not; say what is still waiting."""
    stats = deliver_pending(sessions, config, now=now, limit=limit, force=True)
    with sessions() as session:
        return SendSummary(stats=stats, waiting=waiting(session, config, now=now()))


@dataclass(frozen=True)
class Subscribed:
    """``tosmon subscribe``: the subscription, and what became of its confirmation email."""

    result: SubscribeResult
    confirmation: str | None
    """sent | pending (retried later) | failed (refused for good) | sending; None: none due"""
    error: str | None = None
    next_attempt_at: datetime | None = None


def subscribe_now(
    sessions: sessionmaker[Session],
    config: Config,
    email: str,
    flt: SubscriptionFilter,
    *,
    confirm: bool = True,
    now: Callable[[], datetime] = utcnow,
) -> Subscribed:
    """Subscribe (or update) ``email`` and try its confirmation email at once; a confirmation
    the server does not take now stays in the outbox and is retried like any report."""
    with sessions.begin() as session:
        result = subscribe(session, email, flt, now=now(), confirm=confirm)
    if result.confirmation_id is None:
        return Subscribed(result=result, confirmation=None)
    deliver_pending(sessions, config, now=now, ids=[result.confirmation_id], force=True)
    with sessions() as session:
        row = session.get(Delivery, result.confirmation_id)
        if row is None:  # pragma: no cover - rows are never deleted
            return Subscribed(result=result, confirmation=None)
        return Subscribed(
            result=result,
            confirmation=row.status,
            error=row.last_error,
            next_attempt_at=row.next_attempt_at,
        )


def _deliver_one(
    sessions: sessionmaker[Session],
    config: Config,
    mailer: Mailer,
    links: Links,
    delivery_id: int,
    worker: str,
    now: Callable[[], datetime],
) -> tuple[str, bool]:
    """Send one claimed row: (outcome, whether the SMTP server is down)."""
    with sessions() as session:
        delivery = store.load_claimed(session, delivery_id, worker=worker)
        if delivery is None:
            return "cancelled", False
        if delivery.kind in ("webhook", "apprise"):
            return _notify_one(sessions, session, config, delivery, worker, now), False
        try:
            message = build_message(session, delivery, config, links)
        except _Skip as exc:
            message, skip_reason = None, str(exc)
        except (DeliveryError, SubscriptionError) as exc:
            outcome = _record_failure(
                sessions,
                delivery_id,
                worker,
                now(),
                str(exc),
                permanent=True,
                bounce=False,
                mail=config.mail,
            )
            return outcome, False
    if message is None:
        _finish(sessions, delivery_id, worker, now(), status="cancelled", error=skip_reason)
        return "cancelled", False
    _crash_point("before_send")
    try:
        mailer.send(message)
    except SMTPUnavailable as exc:
        log.warning("delivery %s postponed: %s", delivery_id, exc)
        outcome = _record_failure(
            sessions,
            delivery_id,
            worker,
            now(),
            str(exc),
            permanent=False,
            mail=config.mail,
            bounce=False,  # the server's fault, not the address's
        )
        return outcome, True
    except DeliveryError as exc:
        log.warning("delivery %s to %s failed: %s", delivery_id, message["To"], exc)
        outcome = _record_failure(
            sessions,
            delivery_id,
            worker,
            now(),
            str(exc),
            permanent=not exc.transient,
            mail=config.mail,
        )
        return outcome, False
    _crash_point("after_send")
    _finish(sessions, delivery_id, worker, now(), status="sent", error=None)
    _crash_point("marked")
    return "sent", False


def _notify_one(
    sessions: sessionmaker[Session],
    session: Session,
    config: Config,
    delivery: Delivery,
    worker: str,
    now: Callable[[], datetime],
) -> str:
    """Send one claimed ``[[notify]]`` row (webhook or Apprise): its outcome."""
    from monitor.notify import find_target, send_notification

    delivery_id, message_id = delivery.id, delivery.message_id
    target = find_target(config, delivery.kind, delivery.to_address)
    view = store.load_change_view(session, delivery.change_id) if delivery.change_id else None
    session.close()
    if target is None or view is None:
        reason = "no longer configured" if target is None else "its change is gone"
        why = f"{delivery.kind} {delivery.to_address!r}: {reason}"
        _finish(sessions, delivery_id, worker, now(), status="cancelled", error=why)
        return "cancelled"
    try:
        send_notification(target, view, message_id=message_id, config=config)
    except (DeliveryError, ConfigError) as exc:  # ConfigError: its secret variable is unset
        transient = exc.transient if isinstance(exc, DeliveryError) else True
        log.warning("delivery %s to %s failed: %s", delivery_id, target.name, exc)
        return _record_failure(
            sessions,
            delivery_id,
            worker,
            now(),
            str(exc),
            permanent=not transient,
            mail=config.mail,
            bounce=False,
        )
    _finish(sessions, delivery_id, worker, now(), status="sent", error=None)
    return "sent"


def _release_claim(sessions: sessionmaker[Session], delivery_id: int, worker: str) -> None:
    """An error stopped the sender holding this row: give it back now, so the next run sends it
    (rather than leaving it ``sending`` until its lease runs out)."""
    try:
        with sessions.begin() as session:
            delivery = session.get(Delivery, delivery_id, populate_existing=True)
            if delivery is None or delivery.status != "sending" or delivery.claimed_by != worker:
                return
            delivery.status = "pending"
            delivery.claimed_by = None
            delivery.claim_expires_at = None
    except Exception:  # the database itself failed: the lease will free the row
        log.exception("could not release delivery %s", delivery_id)


def _finish(
    sessions: sessionmaker[Session],
    delivery_id: int,
    worker: str,
    at: datetime,
    *,
    status: DeliveryStatus,
    error: str | None,
) -> None:
    with sessions.begin() as session:
        delivery = session.get(Delivery, delivery_id, populate_existing=True)
        if delivery is None:
            return
        if delivery.status != "sending" or delivery.claimed_by != worker:
            log.info("delivery %s was retaken by %s; leaving it", delivery_id, delivery.claimed_by)
            return
        delivery.status = status
        delivery.last_error = error
        delivery.claim_expires_at = None
        if status == "sent":
            delivery.attempts += 1
            delivery.sent_at = at
            if delivery.kind == "digest":
                store.mark_digest_rows_sent(session, delivery.id, now=at)
            if delivery.subscriber_id is not None and delivery.kind in ("report", "digest"):
                subscriber = store.get_subscriber(session, delivery.subscriber_id)
                if subscriber is not None:
                    subscriber.last_delivery_at = at
                    subscriber.failed_deliveries = 0
        elif delivery.kind == "digest":
            for row in store.rows_of_digest(session, delivery.id):
                if row.status == "queued":
                    row.status, row.last_error = status, error


def _record_failure(
    sessions: sessionmaker[Session],
    delivery_id: int,
    worker: str,
    at: datetime,
    error: str,
    *,
    permanent: bool,
    mail: MailConfig,
    bounce: bool = True,
) -> str:
    """Retry later with backoff ([mail] retry_after, doubling up to retry_max), or fail the row
    for good (and count a bounce)."""
    with sessions.begin() as session:
        delivery = session.get(Delivery, delivery_id, populate_existing=True)
        if delivery is None or delivery.status != "sending" or delivery.claimed_by != worker:
            return "retried"
        delivery.attempts += 1
        delivery.last_error = error[:2000]
        delivery.claim_expires_at = None
        if not permanent and delivery.attempts < MAX_ATTEMPTS:
            delivery.status = "pending"
            delivery.next_attempt_at = at + backoff(
                delivery.attempts, base=mail.retry_after, ceiling=mail.retry_max
            )
            return "retried"
        delivery.status = "failed"
        if delivery.kind == "digest":
            for row in store.rows_of_digest(session, delivery.id):
                if row.status == "queued":
                    row.status, row.last_error = "failed", delivery.last_error
        if bounce and delivery.subscriber_id is not None and delivery.kind != "confirm":
            subscriber = store.get_subscriber(session, delivery.subscriber_id)
            if subscriber is not None:
                subscriber.failed_deliveries += 1
                if (
                    subscriber.failed_deliveries >= BOUNCE_THRESHOLD
                    and subscriber.state == "active"
                ):
                    subscriber.state = "bouncing"
        return "failed"
