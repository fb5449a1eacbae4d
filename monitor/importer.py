"""Backfill history from an Open Terms Archive dataset (``tosmon import``).

The dataset is laid out as ``<service>/<document type>/<YYYY-MM-DDTHH-MM-SSZ>.md``. Each capture
becomes a version at its capture date and the change records are computed as a live check would
compute them (variant flips included), but nothing is queued for email.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from monitor.clauses import SEVERITIES
from monitor.config import document_id as make_document_id
from monitor.errors import ExtractError, MonitorError
from monitor.extract import MEDIA_TYPES_BY_SUFFIX, extract_clauses
from monitor.models import Document
from monitor.store import history as store
from monitor.tracker import record_text

COMMIT_EVERY = 50


@dataclass
class ImportSummary:
    document_id: str
    captures: int = 0
    imported: int = 0
    skipped: int = 0
    unreadable: list[str] = field(default_factory=list)
    severities: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        by_severity = ", ".join(f"{self.severities[s]} {s}" for s in reversed(SEVERITIES))
        extra = f", {self.skipped} already imported" if self.skipped else ""
        bad = f", {len(self.unreadable)} refused (error pages)" if self.unreadable else ""
        return (
            f"{self.document_id}: {self.captures} captures, {self.imported} imported{extra}{bad}; "
            f"changes: {by_severity}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "document": self.document_id,
            "captures": self.captures,
            "imported": self.imported,
            "skipped": self.skipped,
            "unreadable": self.unreadable,
            "changes": {s: self.severities[s] for s in SEVERITIES},
        }


def capture_time(path: Path) -> datetime | None:
    """``2024-11-21T06-08-26Z.md`` -> 2024-11-21 06:08:26 UTC; None for other names."""
    stem = path.name.rsplit(".", 1)[0].split("__", 1)[0]
    try:
        return datetime.strptime(stem, "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def dataset_documents(root: Path) -> Iterator[tuple[str, str, list[tuple[datetime, Path]]]]:
    """(service, document type, captures sorted by date) for each document folder in the dataset."""
    found = False
    for service_dir in sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        for type_dir in sorted(p for p in service_dir.iterdir() if p.is_dir()):
            captures = sorted(
                (when, path)
                for path in type_dir.iterdir()
                if path.suffix.lower() in MEDIA_TYPES_BY_SUFFIX
                and (when := capture_time(path)) is not None
            )
            if captures:
                found = True
                yield service_dir.name, type_dir.name, captures
    if not found:
        raise MonitorError(
            f"{root} holds no Open Terms Archive captures "
            "(expected <service>/<document type>/<YYYY-MM-DDTHH-MM-SSZ>.md)"
        )


def import_dataset(
    sessions: sessionmaker[Session],
    root: Path,
    *,
    services: set[str] | None = None,
    on_document: Callable[[ImportSummary], None] | None = None,
) -> list[ImportSummary]:
    """Import every document of the dataset (or of the given lower-cased service names)."""
    summaries = []
    for service, type_, captures in dataset_documents(root):
        if services and service.lower() not in services:
            continue
        summary = import_document(sessions, service, type_, captures)
        summaries.append(summary)
        if on_document is not None:
            on_document(summary)
    return summaries


def import_document(
    sessions: sessionmaker[Session],
    service: str,
    type_: str,
    captures: list[tuple[datetime, Path]],
) -> ImportSummary:
    document_id = make_document_id(service, type_)
    summary = ImportSummary(document_id, captures=len(captures))
    session = sessions()
    try:
        document = _document(session, document_id, service, type_, first_seen=captures[0][0])
        # history is appended, never inserted: skip what is not newer than the last capture
        # recorded (imported or checked)
        latest = store.version_at(session, document_id, None)
        marks = [t for t in (document.last_check_at, latest.seen_at if latest else None) if t]
        start_after = max(marks) if marks else None
        pending = 0
        for when, path in captures:
            if start_after is not None and when <= start_after:
                summary.skipped += 1
                continue
            try:
                raw = path.read_bytes()
                clauses = extract_clauses(
                    raw, media_type=MEDIA_TYPES_BY_SUFFIX[path.suffix.lower()]
                )
            except (OSError, ExtractError) as exc:
                summary.unreadable.append(f"{path.name}: {exc}")
                continue
            result = record_text(
                session, document, clauses, raw=None, now=when, notify=False, source="import"
            )
            document.last_check_at = when
            if result.outcome == "failed":
                summary.unreadable.append(f"{path.name}: {result.detail}")
                continue
            summary.imported += 1
            pending += 1
            if pending >= COMMIT_EVERY:
                session.commit()
                pending = 0
        session.commit()
        summary.severities.update(
            change.severity for change in store.changes_of(session, document_id)
        )
    finally:
        session.close()
    return summary


def _document(
    session: Session, document_id: str, service: str, type_: str, *, first_seen: datetime
) -> Document:
    document = store.get_document(session, document_id)
    if document is None:
        document = Document(
            id=document_id,
            service=service,
            type=type_,
            url=f"ota:{service}/{type_}",
            select=[],
            remove=[],
            render=False,
            created_at=first_seen,
            consecutive_failures=0,
        )
        session.add(document)
        session.flush()
    return document
