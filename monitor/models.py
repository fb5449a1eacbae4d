"""Typed SQLAlchemy 2.x models: the database schema of tos-monitor.

Only ``store`` runs queries against these; everything else passes plain data. Every timestamp is
timezone-aware UTC (``UTCDateTime`` makes SQLite return aware datetimes too).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime stored as UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: tos-monitor stores UTC-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Document(Base):
    """One terms page of one service, as declared in the catalog or the config."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    service: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)
    select: Mapped[list[Any]] = mapped_column(default=list)
    remove: Mapped[list[Any]] = mapped_column(default=list)
    render: Mapped[bool] = mapped_column(Boolean, default=False)
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    # scheduling and claims (several daemons may share a PostgreSQL database)
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_expires_at: Mapped[datetime | None]
    claim_host: Mapped[str | None] = mapped_column(String(200))
    """Where the claiming process runs (hostname and PID namespace), with ``claim_pid``: a claim
    whose process is gone from this host is released at once rather than after its lease."""
    claim_pid: Mapped[int | None] = mapped_column(Integer)
    # state of the last checks
    last_check_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_change_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    failure_alerted_at: Mapped[datetime | None]
    # conditional GET and the raw-snapshot shortcut
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    page_fingerprint: Mapped[str | None] = mapped_column(String(64))
    """Hash of the last page minus its per-request tokens (see tracker.page_fingerprint), or
    ``noisy:<n>`` for a page whose visible text changes at every request (tracker.NOISY_MARK)."""
    content_digest: Mapped[str | None] = mapped_column(String(64))
    """What the current text was last extracted from: the digest of the parsed page
    (``Extraction.digest``) bound to the current version's text hash (tracker.content_key)."""
    current_version_id: Mapped[int | None] = mapped_column(Integer)
    """The version in force (no foreign key: documents and versions would refer to each other)."""
    reported_version_id: Mapped[int | None] = mapped_column(Integer)
    """The last version whose changes were reported in full: the baseline of a settled flip."""
    settling_version_id: Mapped[int | None] = mapped_column(Integer)
    """A version that returned to text already seen; reported only if it stays (see tracker)."""


class Blob(Base):
    """Content-addressed, compressed bytes: raw snapshots and extracted texts."""

    __tablename__ = "blobs"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    compression: Mapped[str] = mapped_column(String(16))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Check(Base):
    """One attempt to fetch a document, whatever came of it."""

    __tablename__ = "checks"
    __table_args__ = (Index("ix_checks_document_id_checked_at", "document_id", "checked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    checked_at: Mapped[datetime]
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(20))
    """first | unchanged | noise | changed | failed | blocked"""
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    page_fingerprint: Mapped[str | None] = mapped_column(String(64))
    version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id", ondelete="SET NULL"))
    worker: Mapped[str | None] = mapped_column(String(200))


class Version(Base):
    """A distinct extracted text of a document, from the moment it was first seen."""

    __tablename__ = "versions"
    __table_args__ = (Index("ix_versions_document_id_seen_at", "document_id", "seen_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    text_hash: Mapped[str] = mapped_column(ForeignKey("blobs.hash"))
    raw_hash: Mapped[str | None] = mapped_column(ForeignKey("blobs.hash"))
    clause_count: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20), default="check")
    """check | import"""


class Change(Base):
    """What changed between two consecutive versions of a document."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_detected_at", "detected_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    old_version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    new_version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    detected_at: Mapped[datetime]
    summary: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    labels: Mapped[list[Any]] = mapped_column(default=list)
    notes: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(20), default="check")
    headline: Mapped[str] = mapped_column(Text, default="", server_default="")
    dates: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    opt_outs: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")

    clauses: Mapped[list[ClauseChangeRow]] = relationship(
        order_by="ClauseChangeRow.position", cascade="all, delete-orphan", lazy="selectin"
    )


class ClauseChangeRow(Base):
    """One clause added, removed, reworded or moved within a change."""

    __tablename__ = "clause_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    section: Mapped[list[Any]] = mapped_column(default=list)
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    words: Mapped[list[Any]] = mapped_column(default=list)
    labels: Mapped[list[Any]] = mapped_column(default=list)
    direction: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    annotation: Mapped[str] = mapped_column(Text, default="")


def new_token_nonce() -> str:
    """A fresh random nonce for :attr:`Subscriber.token_nonce`."""
    return secrets.token_hex(8)


class Subscriber(Base):
    """An email address and its opt-in state."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    state: Mapped[str] = mapped_column(String(20))
    """pending | active | unsubscribed | bouncing"""
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    last_delivery_at: Mapped[datetime | None]
    failed_deliveries: Mapped[int] = mapped_column(Integer, default=0)
    token_nonce: Mapped[str | None] = mapped_column(String(32), default=new_token_nonce)
    """Bound into confirm links; replaced on unsubscribe, so a confirm link sent before cannot
    confirm a later subscription (NULL: a row from before nonces, whose links carry none)."""

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", lazy="selectin"
    )


class Subscription(Base):
    """What one subscriber wants to hear about, and how often."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    services: Mapped[list[Any]] = mapped_column(default=list)
    documents: Mapped[list[Any]] = mapped_column(default=list)
    topics: Mapped[list[Any]] = mapped_column(default=list)
    min_severity: Mapped[str] = mapped_column(String(16), default="medium")
    cadence: Mapped[str] = mapped_column(String(16), default="immediate")
    created_at: Mapped[datetime]

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")


DeliveryStatus = Literal["pending", "queued", "sending", "sent", "failed", "cancelled"]
"""Where an outbox row stands: pending (due, or retrying later), queued (waiting for a digest),
sending (claimed by a sender, under a lease), sent, failed (given up), cancelled (its subscriber
left, or it was folded away)."""
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = (
    "pending",
    "queued",
    "sending",
    "sent",
    "failed",
    "cancelled",
)


class Delivery(Base):
    """The outbox: one email to send (a report, a digest, a confirmation or an operator alert).

    A row is written in the same transaction as what it reports; the sender marks it sent.
    ``message_id`` is fixed when the row is written, so a resend after a crash folds in mail
    clients.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "change_id", name="uq_deliveries_subscriber_change"),
        Index("ix_deliveries_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """report | digest | confirm | alert"""
    status: Mapped[DeliveryStatus] = mapped_column(String(16), default="pending")
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    cadence: Mapped[str] = mapped_column(String(16), default="immediate")
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_expires_at: Mapped[datetime | None]


class Worker(Base):
    """A running daemon: where it runs and its last heartbeat (for `tosmon status`)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Setting(Base):
    """Small key/value state of the whole installation (e.g. when the last digest went out)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]
