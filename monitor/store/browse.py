"""Queries behind the read-only web history: timelines, neighbours, incidents, versions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from monitor.models import Change, Check, ClauseChangeRow, Document, Version

FAILED_OUTCOMES = ("failed", "blocked")


def generation(session: Session) -> tuple[int, int]:
    """What moves when the history does: the newest check and change ids (two index lookups)."""
    newest_check = session.scalar(select(func.max(Check.id))) or 0
    newest_change = session.scalar(select(func.max(Change.id))) or 0
    return newest_check, newest_change


def documents(session: Session) -> list[Document]:
    """Every document, by service then type."""
    return list(session.scalars(select(Document).order_by(Document.service, Document.type)))


def recent_changes(
    session: Session,
    *,
    document_ids: Sequence[str] | None = None,
    severities: Sequence[str] | None = None,
    limit: int = 50,
    light: bool = True,
) -> list[tuple[Change, Document]]:
    """Changes newest first, of some documents and severities (``None``: all).

    ``light`` loads of each clause only what a timeline line needs (kind, labels, severity,
    annotation), not the quoted texts and word diffs.
    """
    query = select(Change, Document).join(Document, Document.id == Change.document_id)
    if light:
        query = query.options(
            selectinload(Change.clauses).load_only(
                ClauseChangeRow.position,
                ClauseChangeRow.kind,
                ClauseChangeRow.labels,
                ClauseChangeRow.severity,
                ClauseChangeRow.direction,
                ClauseChangeRow.annotation,
                ClauseChangeRow.section,
            )
        )
    if document_ids is not None:
        query = query.where(Change.document_id.in_(list(document_ids)))
    if severities is not None:
        query = query.where(Change.severity.in_(list(severities)))
    query = query.order_by(Change.detected_at.desc(), Change.id.desc()).limit(limit)
    return [(change, document) for change, document in session.execute(query).all()]


def incidents(session: Session, document_id: str, *, limit: int = 50) -> list[Check]:
    """The document's failed or blocked checks, newest first."""
    query = (
        select(Check)
        .where(Check.document_id == document_id, Check.outcome.in_(FAILED_OUTCOMES))
        .order_by(Check.checked_at.desc(), Check.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def neighbours(session: Session, change: Change) -> tuple[int | None, int | None]:
    """The ids of the document's previous and next change (by time, then id)."""
    same = select(Change.id).where(Change.document_id == change.document_id)
    earlier = (
        same.where(
            (Change.detected_at < change.detected_at)
            | ((Change.detected_at == change.detected_at) & (Change.id < change.id))
        )
        .order_by(Change.detected_at.desc(), Change.id.desc())
        .limit(1)
    )
    later = (
        same.where(
            (Change.detected_at > change.detected_at)
            | ((Change.detected_at == change.detected_at) & (Change.id > change.id))
        )
        .order_by(Change.detected_at, Change.id)
        .limit(1)
    )
    return session.scalar(earlier), session.scalar(later)


def get_version(session: Session, version_id: int) -> Version | None:
    return session.get(Version, version_id)


def versions_newest_first(session: Session, document_id: str, *, limit: int) -> list[Version]:
    query = (
        select(Version)
        .where(Version.document_id == document_id)
        .order_by(Version.seen_at.desc(), Version.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
