"""Queries for the record of what pages said: documents, checks, blobs, versions, changes."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from monitor.clauses import ChangeReport
from monitor.models import Blob, Change, Check, ClauseChangeRow, Document, Version

if TYPE_CHECKING:
    from monitor.config import DocumentConfig

COMPRESSION = "zlib"
COMPRESSION_LEVEL = 4
"""zlib level of new blobs: 4 takes half the CPU of the default 6 on a 100 KB page (1.3 vs
2.7 ms) for 7% more bytes; any level reads back the same."""


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_blob(session: Session, data: bytes) -> str:
    """Store bytes once, compressed, under their sha256; return the hash."""
    digest = content_hash(data)
    if session.get(Blob, digest) is None:
        session.add(
            Blob(
                hash=digest,
                size=len(data),
                compression=COMPRESSION,
                data=zlib.compress(data, COMPRESSION_LEVEL),
            )
        )
    return digest


def get_blob(session: Session, digest: str) -> bytes:
    blob = session.get(Blob, digest)
    if blob is None:
        raise LookupError(f"blob {digest} is missing from the database")
    return zlib.decompress(blob.data) if blob.compression == COMPRESSION else blob.data


def version_text(session: Session, version: Version) -> str:
    return get_blob(session, version.text_hash).decode("utf-8")


def sync_documents(
    session: Session, declarations: Sequence[DocumentConfig], *, now: datetime
) -> None:
    """Make the documents table match the declarations (new ones added, URLs and rules updated).

    Documents no longer declared are kept with their history; they are simply not checked.
    """
    existing = {doc.id: doc for doc in session.scalars(select(Document))}
    for decl in declarations:
        interval = int(decl.interval.total_seconds()) if decl.interval else None
        doc = existing.get(decl.id)
        if doc is None:
            session.add(
                Document(
                    id=decl.id,
                    service=decl.service,
                    type=decl.type,
                    url=decl.url,
                    select=list(decl.select),
                    remove=list(decl.remove),
                    render=decl.render,
                    interval_seconds=interval,
                    created_at=now,
                    consecutive_failures=0,
                )
            )
            continue
        changed_rules = doc.select != list(decl.select) or doc.remove != list(decl.remove)
        if doc.url != decl.url or changed_rules:
            doc.page_fingerprint = doc.content_digest = None  # re-extract with the new rules
            doc.etag = None
            doc.last_modified = None
        doc.service, doc.type, doc.url = decl.service, decl.type, decl.url
        doc.select, doc.remove = list(decl.select), list(decl.remove)
        doc.render, doc.interval_seconds = decl.render, interval


def get_document(session: Session, document_id: str) -> Document | None:
    return session.get(Document, document_id)


def get_documents(session: Session, document_ids: Sequence[str]) -> list[Document]:
    return list(session.scalars(select(Document).where(Document.id.in_(list(document_ids)))))


def current_text_hashes(session: Session, document_ids: Sequence[str]) -> dict[str, str]:
    """The text hash of each document's current version (documents without one are left out),
    with one query: what an unchanged check compares its extracted text with."""
    query = (
        select(Document.id, Version.text_hash)
        .join(Version, Version.id == Document.current_version_id)
        .where(Document.id.in_(list(document_ids)))
    )
    return {doc_id: text_hash for doc_id, text_hash in session.execute(query)}


def list_documents(session: Session) -> list[Document]:
    return list(session.scalars(select(Document).order_by(Document.service, Document.type)))


def add_check(session: Session, check: Check) -> Check:
    session.add(check)
    return check


def current_version(session: Session, document: Document) -> Version | None:
    if document.current_version_id is None:
        return None
    return session.get(Version, document.current_version_id)


def recent_versions(
    session: Session, document_id: str, *, limit: int, before_id: int | None = None
) -> list[Version]:
    """The latest versions of a document, newest first (optionally only those before an id)."""
    query = select(Version).where(Version.document_id == document_id)
    if before_id is not None:
        query = query.where(Version.id < before_id)
    return list(
        session.scalars(query.order_by(Version.seen_at.desc(), Version.id.desc()).limit(limit))
    )


def distinct_earlier_versions(
    session: Session, document_id: str, *, before_id: int, limit: int, scan: int = 2000
) -> list[Version]:
    """Up to ``limit`` versions with distinct texts, newest first, among the ``scan`` versions
    before ``before_id``: the variants a page has shown, for recognising flips."""
    query = (
        select(Version)
        .where(Version.document_id == document_id, Version.id < before_id)
        .order_by(Version.seen_at.desc(), Version.id.desc())
        .limit(scan)
    )
    seen: set[str] = set()
    distinct: list[Version] = []
    for version in session.scalars(query):
        if version.text_hash not in seen:
            seen.add(version.text_hash)
            distinct.append(version)
            if len(distinct) >= limit:
                break
    return distinct


def add_version(
    session: Session,
    document: Document,
    *,
    text: str,
    raw: bytes | None,
    clause_count: int,
    seen_at: datetime,
    source: str = "check",
) -> Version:
    version = Version(
        document_id=document.id,
        seen_at=seen_at,
        last_seen_at=seen_at,
        text_hash=put_blob(session, text.encode("utf-8")),
        raw_hash=put_blob(session, raw) if raw is not None else None,
        clause_count=clause_count,
        source=source,
    )
    session.add(version)
    session.flush()
    document.current_version_id = version.id
    # what vouched for the last page's text vouches for no other: a check that recorded this
    # text from a fetched page sets them again (an imported text leaves the next check to
    # extract and compare the live page)
    document.page_fingerprint = document.content_digest = None
    return version


def add_change(
    session: Session,
    document: Document,
    *,
    old: Version,
    new: Version,
    report: ChangeReport,
    detected_at: datetime,
    source: str = "check",
) -> Change:
    labels = sorted({label for clause in report.clauses for label in clause.labels})
    change = Change(
        document_id=document.id,
        old_version_id=old.id,
        new_version_id=new.id,
        detected_at=detected_at,
        summary=report.summary,
        severity=report.severity,
        labels=labels,
        notes=list(report.notes),
        source=source,
        headline=report.headline,
        dates=list(report.dates),
        opt_outs=list(report.opt_outs),
    )
    change.clauses = [
        ClauseChangeRow(
            position=position,
            kind=clause.kind,
            section=list(clause.section),
            before=clause.before,
            after=clause.after,
            words=[[span.op, span.text] for span in clause.words],
            labels=list(clause.labels),
            direction=clause.direction,
            severity=clause.severity,
            annotation=clause.annotation,
        )
        for position, clause in enumerate(report.clauses)
    ]
    session.add(change)
    session.flush()
    return change


def version_at(session: Session, document_id: str, when: datetime | None) -> Version | None:
    """The version in force at ``when`` (the latest first seen at or before it); latest if None."""
    query = select(Version).where(Version.document_id == document_id)
    if when is not None:
        query = query.where(Version.seen_at <= when)
    return session.scalars(
        query.order_by(Version.seen_at.desc(), Version.id.desc()).limit(1)
    ).first()


def versions_of(session: Session, document_id: str) -> list[Version]:
    query = select(Version).where(Version.document_id == document_id)
    return list(session.scalars(query.order_by(Version.seen_at, Version.id)))


def changes_of(session: Session, document_id: str) -> list[Change]:
    query = select(Change).where(Change.document_id == document_id)
    return list(session.scalars(query.order_by(Change.detected_at, Change.id)))


def get_change(session: Session, change_id: int) -> Change | None:
    return session.get(Change, change_id)


def get_version(session: Session, version_id: int) -> Version | None:
    return session.get(Version, version_id)


def find_changes(
    session: Session,
    *,
    since: datetime | None = None,
    services: Sequence[str] = (),
    min_severity_levels: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[tuple[Change, Document]]:
    """Change records across documents, newest first (topic filtering is done by the caller)."""
    query = select(Change, Document).join(Document, Document.id == Change.document_id)
    if since is not None:
        query = query.where(Change.detected_at >= since)
    if services:
        lowered = [s.lower() for s in services]
        query = query.where(func.lower(Document.service).in_(lowered))
    if min_severity_levels is not None:
        query = query.where(Change.severity.in_(list(min_severity_levels)))
    query = query.order_by(Change.detected_at.desc(), Change.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [(change, doc) for change, doc in session.execute(query).all()]


def last_checks(session: Session, document_id: str, *, limit: int = 20) -> list[Check]:
    query = select(Check).where(Check.document_id == document_id)
    return list(
        session.scalars(query.order_by(Check.checked_at.desc(), Check.id.desc()).limit(limit))
    )


def count_versions(session: Session, document_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Version).where(Version.document_id == document_id)
        )
        or 0
    )


@dataclass(frozen=True, slots=True)
class UnchangedCheck:
    """A healthy check that found the page unchanged, waiting to be written in a batch."""

    document_id: str
    version_id: int
    checked_at: datetime
    next_check_at: datetime
    duration: float
    http_status: int | None
    fingerprint: str | None
    """The page fingerprint computed for this check (None: none was)."""
    page_fingerprint: str | None
    """What the document keeps as its page fingerprint (None: the one it has)."""
    etag: str | None
    last_modified: str | None
    worker: str | None
    content_digest: str | None = None
    """What the document keeps as its content digest (None: the one it has)."""


def record_unchanged_checks(session: Session, checks: Sequence[UnchangedCheck]) -> None:
    """Write a batch of unchanged checks with three executemany statements.

    A document whose current version moved on since the check began keeps its newer state
    (the guard on ``current_version_id``); its check row is still recorded. Each check's
    ``page_fingerprint`` and ``content_digest`` become the document's (a check without one, a
    304, keeps the document's).
    """
    documents = Document.__table__.c
    session.execute(
        update(cast(Table, Document.__table__))
        .where(
            documents.id == bindparam("b_id"),
            documents.current_version_id == bindparam("b_version"),
        )
        .values(
            last_check_at=bindparam("b_at"),
            last_success_at=bindparam("b_at"),
            next_check_at=bindparam("b_next"),
            etag=bindparam("b_etag"),
            last_modified=bindparam("b_modified"),
            page_fingerprint=func.coalesce(bindparam("b_fingerprint"), documents.page_fingerprint),
            content_digest=func.coalesce(bindparam("b_digest"), documents.content_digest),
        ),
        [
            {
                "b_id": c.document_id,
                "b_version": c.version_id,
                "b_at": c.checked_at,
                "b_next": c.next_check_at,
                "b_etag": c.etag,
                "b_modified": c.last_modified,
                "b_fingerprint": c.page_fingerprint,
                "b_digest": c.content_digest,
            }
            for c in checks
        ],
    )
    session.execute(
        update(cast(Table, Version.__table__))
        .where(Version.__table__.c.id == bindparam("b_version"))
        .values(last_seen_at=bindparam("b_at")),
        [{"b_version": c.version_id, "b_at": c.checked_at} for c in checks],
    )
    session.execute(
        insert(cast(Table, Check.__table__)),
        [
            {
                "document_id": c.document_id,
                "checked_at": c.checked_at,
                "duration": c.duration,
                "outcome": "unchanged",
                "http_status": c.http_status,
                "error": None,
                "page_fingerprint": c.fingerprint,
                "version_id": c.version_id,
                "worker": c.worker,
            }
            for c in checks
        ],
    )


def record_failure(document: Document, *, error: str, now: datetime) -> None:
    if document.consecutive_failures == 0:
        document.failing_since = now
    document.consecutive_failures += 1
    document.last_error = error


def record_success(document: Document, *, now: datetime) -> None:
    document.consecutive_failures = 0
    document.failing_since = None
    document.last_success_at = now


def schedule_next(document: Document, *, now: datetime, interval: timedelta) -> None:
    document.last_check_at = now
    document.next_check_at = now + interval
