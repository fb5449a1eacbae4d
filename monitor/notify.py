"""``[[notify]]`` targets: webhooks and Apprise channels, delivered through the outbox.

A target gets every change found by a check after it was first configured (an outbox row of kind
``notify-start`` marks that moment, so adding a target does not replay the history) and matching
its filters, the same filters as an email subscription. Rows are written by the sender before it
delivers (:func:`enqueue_notifications`, idempotent: one Message-ID per target and change, so a
crash or two senders never write a row twice) and sent like emails: retried with backoff while
the endpoint is down, failed for good when it refuses the request.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from monitor import render
from monitor.config import Config, NotifyConfig
from monitor.errors import DeliveryError
from monitor.messageids import keyed_message_id
from monitor.render import ChangeView
from monitor.store import mail as store
from monitor.subscriptions import ChangeFacts, SubscriptionFilter, matches
from monitor.topics import default_topics
from monitor.webhooks import change_payload, notify_apprise, post_webhook

log = logging.getLogger(__name__)

NOTIFY_KINDS = ("webhook", "apprise")
START_KIND = "notify-start"


def target_filter(target: NotifyConfig) -> SubscriptionFilter:
    return SubscriptionFilter(
        services=target.services,
        documents=target.documents,
        topics=target.topics if target.topics is not None else default_topics(),
        min_severity=target.min_severity,
    )


def _start_of(session: Session, target: NotifyConfig, now: datetime) -> datetime:
    """When ``target`` was first seen (recorded now if this is the first time)."""

    message_id = keyed_message_id(START_KIND, f"{target.kind}:{target.name}")
    mark = store.find_delivery_by_message_id(session, message_id)
    if mark is not None:
        return mark.created_at
    store.add_delivery(
        session,
        kind=START_KIND,
        status="sent",
        subscriber_id=None,
        change_id=None,
        cadence="immediate",
        to_address=target.name,
        subject=f"{target.kind} {target.name} configured",
        message_id=message_id,
        created_at=now,
        due_at=now,
        sent_at=now,
    )
    return now


def enqueue_notifications(session: Session, config: Config, *, now: datetime) -> int:
    """Write the outbox rows each target is owed; returns how many were written."""

    written = 0
    for target in config.notify:
        since = _start_of(session, target, now)
        done = store.notified_change_ids(session, kind=target.kind, target=target.name)
        wanted = target_filter(target)
        for change, document in store.checked_changes_since(session, since):
            if change.id in done or not matches(wanted, ChangeFacts.of(change, document)):
                continue
            store.add_delivery(
                session,
                kind=target.kind,
                status="pending",
                subscriber_id=None,
                change_id=change.id,
                cadence="immediate",
                to_address=target.name,
                subject=render.subject_for(store.change_view(change, document)),
                message_id=keyed_message_id(target.kind, f"{target.name}:{change.id}"),
                created_at=now,
                due_at=now,
            )
            written += 1
    return written


def find_target(config: Config, kind: str, name: str) -> NotifyConfig | None:
    return next((t for t in config.notify if t.kind == kind and t.name == name), None)


def send_notification(
    target: NotifyConfig, view: ChangeView, *, message_id: str, config: Config
) -> None:
    """Deliver one change to one target; DeliveryError when it could not (transient or not)."""
    if target.kind == "webhook":
        key = target.secret()
        if key is None:  # the config refuses a webhook without secret_env
            raise DeliveryError(f"webhook {target.name!r} has no signing key", transient=False)
        payload = change_payload(view, base_url=config.web.base_url, target=target.name)
        post_webhook(target.target_url(), payload, key=key, delivery_id=message_id)
    else:
        link = f"{config.web.base_url.rstrip('/')}/changes/{view.change_id}"
        body = f"{view.summary}\n\n{link}"
        notify_apprise(target.target_url(), title=render.subject_for(view), body=body)
