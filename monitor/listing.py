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
