"""What the record shows a reader: filtered change lists, a document's history, stored changes.

Functions of a session (or of plain data) that return plain data: the CLI prints them, the
``Monitor`` facade returns them. Nothing here prints.

Filtering rule shared by ``tosmon history`` and ``tosmon changes``: a change whose severity is
below ``min_severity`` is hidden; the default, ``low``, hides the "no real change" records
(cosmetic only: variant flips, spelling editions, link targets, another language), which a reader
asks for with ``min_severity="cosmetic"`` (``--all``).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from monitor.classify import Taxonomy, load_taxonomy
from monitor.clauses import (
    SEVERITIES,
    ChangeReport,
    ClauseChange,
    WordSpan,
    severity_rank,
)
from monitor.errors import MonitorError
from monitor.models import ClauseChangeRow
from monitor.store import history as store

DEFAULT_MIN_SEVERITY = "low"
"""Hide cosmetic-only ("no real change") records unless asked."""


def chosen_min_severity(min_severity: str | None, *, show_all: bool = False) -> str:
    """The level a reader asked for: an explicit one, else everything with ``show_all``, else
    the default that hides "no real change" records."""
    if min_severity is not None:
        return min_severity
    return "cosmetic" if show_all else DEFAULT_MIN_SEVERITY


def severities_from(min_severity: str) -> list[str]:
    """The severities at or above ``min_severity`` (a ValueError names a bad one)."""
    rank = severity_rank(min_severity)
    return [s for s in SEVERITIES if severity_rank(s) >= rank]


def clause_to_json(clause: ClauseChangeRow | ClauseChange) -> dict[str, Any]:
    return {
        "kind": clause.kind,
        "section": list(clause.section),
        "before": clause.before,
        "after": clause.after,
        "labels": list(clause.labels),
        "direction": clause.direction,
        "severity": clause.severity,
        "annotation": clause.annotation,
    }


def change_records(
    session: Session,
    *,
    since: datetime | None = None,
    services: tuple[str, ...] | list[str] = (),
    topics: tuple[str, ...] | list[str] = (),
    min_severity: str = DEFAULT_MIN_SEVERITY,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Change records across documents, newest first, as plain data (with clause details)."""
    from monitor.importer import archived_url

    wanted = set(topics)
    records: list[dict[str, Any]] = []
    rows = store.find_changes(
        session,
        since=since,
        services=services,
        min_severity_levels=severities_from(min_severity),
    )
    for change, document in rows:
        if wanted and not wanted.intersection(change.labels):
            continue
        records.append(
            {
                "id": change.id,
                "document": document.id,
                "service": document.service,
                "type": document.type,
                "detected_at": change.detected_at,
                "severity": change.severity,
                "labels": change.labels,
                "summary": change.summary,
                "headline": change.headline or "",
                "dates": change.dates or [],
                "opt_outs": change.opt_outs or [],
                "notes": change.notes,
                "source": change.source,
                "archive_url": archived_url(change),
                "clauses": [clause_to_json(c) for c in change.clauses],
            }
        )
        if limit is not None and len(records) >= limit:
            break
    return records


def document_history(
    session: Session, document_id: str, *, min_severity: str = DEFAULT_MIN_SEVERITY
) -> dict[str, Any]:
    """Every version of a document, and its changes at or above ``min_severity``.

    ``hidden`` counts the changes left out, so a reader knows they exist.
    """
    severities = set(severities_from(min_severity))
    versions = [
        {
            "id": v.id,
            "seen_at": v.seen_at,
            "last_seen_at": v.last_seen_at,
            "clauses": v.clause_count,
            "text_hash": v.text_hash,
            "source": v.source,
        }
        for v in store.versions_of(session, document_id)
    ]
    changes = []
    hidden = 0
    for c in store.changes_of(session, document_id):
        if c.severity not in severities:
            hidden += 1
            continue
        changes.append(
            {
                "id": c.id,
                "detected_at": c.detected_at,
                "old_version": c.old_version_id,
                "new_version": c.new_version_id,
                "severity": c.severity,
                "labels": c.labels,
                "summary": c.summary,
                "source": c.source,
            }
        )
    return {
        "document": document_id,
        "min_severity": min_severity,
        "versions": versions,
        "changes": changes,
        "hidden_changes": hidden,
    }


@dataclasses.dataclass(frozen=True)
class StoredChange:
    """A change record as it was reported, ready to print like a fresh report."""

    id: int
    document_id: str
    old_at: datetime
    new_at: datetime
    report: ChangeReport


def stored_change(session: Session, change_id: int) -> StoredChange:
    """The change record ``change_id`` as a ``ChangeReport`` (as stored, not recomputed)."""
    change = store.get_change(session, change_id)
    if change is None:
        raise MonitorError(f"no change #{change_id} (see `tosmon changes`)")
    old = store.get_version(session, change.old_version_id)
    new = store.get_version(session, change.new_version_id)
    clauses = tuple(
        ClauseChange(
            kind=row.kind,  # type: ignore[arg-type]
            section=tuple(row.section),
            before=row.before,
            after=row.after,
            words=tuple(WordSpan(op, text) for op, text in row.words),
            labels=tuple(row.labels),
            direction=row.direction,  # type: ignore[arg-type]
            severity=row.severity,  # type: ignore[arg-type]
            annotation=row.annotation,
        )
        for row in sorted(change.clauses, key=lambda r: r.position)
    )
    report = ChangeReport(
        clauses=clauses,
        summary=change.summary,
        severity=change.severity,  # type: ignore[arg-type]
        notes=tuple(change.notes),
    )
    return StoredChange(
        id=change.id,
        document_id=change.document_id,
        old_at=old.seen_at if old else change.detected_at,
        new_at=new.seen_at if new else change.detected_at,
        report=report,
    )


def by_severity(report: ChangeReport) -> ChangeReport:
    """The report with its clauses most severe first (document order kept within a severity)."""
    ordered = sorted(report.clauses, key=lambda c: -severity_rank(c.severity))
    return dataclasses.replace(report, clauses=tuple(ordered))


def without_cosmetic(report: ChangeReport) -> ChangeReport:
    """The report without its cosmetic clause changes (the summary still counts them)."""
    kept = tuple(c for c in report.clauses if c.severity != "cosmetic")
    return dataclasses.replace(report, clauses=kept)


def topic_list(taxonomy: Taxonomy | None = None) -> list[dict[str, str]]:
    """The topic labels a change can carry, in taxonomy order, with group and description."""
    taxonomy = taxonomy or load_taxonomy()
    return [
        {
            "id": topic.id,
            "group": topic.group,
            "short": topic.short,
            "description": topic.description,
        }
        for topic in taxonomy.topics.values()
    ]
