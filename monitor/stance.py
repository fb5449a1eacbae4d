"""Where platforms stand: for each service and AI / content-licence topic, whether its current
terms carry such a clause, the clause quoted, and since when it has stood unchanged in meaning.

"Since" walks the document's versions back from the current one for as long as a clause with
the same equivalence key (see :func:`monitor.noise.equivalence_key`: cosmetic edits ignored) is
present; past ``WALK_LIMIT`` versions it says "since at least". Results are cached per document
and current version, so a page view costs the work once per change of the terms.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from monitor import noise
from monitor.classify import label_text, load_taxonomy
from monitor.clauses import Clause
from monitor.models import Document
from monitor.store import browse
from monitor.tracker import version_clauses

STANCE_GROUPS = ("ai", "content_license")
WALK_LIMIT = 200
QUOTE_LIMIT = 400


@dataclass(frozen=True, slots=True)
class StanceCell:
    document_id: str
    document_title: str
    quote: str
    section: str
    since: datetime
    since_at_least: bool
    """True when the walk stopped at ``WALK_LIMIT`` versions: the clause may be older."""


@dataclass(frozen=True, slots=True)
class StanceRow:
    service: str
    cells: dict[str, StanceCell]


@dataclass(frozen=True, slots=True)
class StanceTable:
    topics: tuple[tuple[str, str, str], ...]
    """(label, short name, description) of each topic shown, in taxonomy order."""
    rows: tuple[StanceRow, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "topics": [
                {"label": label, "name": short, "description": description}
                for label, short, description in self.topics
            ],
            "services": [
                {
                    "service": row.service,
                    "clauses": {
                        label: {
                            "document": cell.document_id,
                            "quote": cell.quote,
                            "section": cell.section,
                            "since": cell.since,
                            "since_at_least": cell.since_at_least,
                        }
                        for label, cell in row.cells.items()
                    },
                }
                for row in self.rows
            ],
        }


_CACHE: dict[tuple[str, int], dict[str, StanceCell]] = {}
_CACHE_LOCK = threading.Lock()


def _clip(text: str) -> str:
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1].rstrip() + "…"


def _document_cells(
    session: Session, document: Document, topics: set[str]
) -> dict[str, StanceCell]:
    versions = browse.versions_newest_first(session, document.id, limit=WALK_LIMIT + 1)
    if not versions:
        return {}
    current = versions[0]
    key = (document.id, current.id)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    found: dict[str, Clause] = {}
    for clause in version_clauses(session, current):
        for label in label_text(clause.text):
            if label in topics and label not in found:
                found[label] = clause
    cells: dict[str, StanceCell] = {}
    title = f"{document.service} {document.type}"
    for label, clause in found.items():
        wanted = noise.equivalence_key(clause.text)
        since, at_least = current.seen_at, False
        for index, older in enumerate(versions[1:], start=1):
            keys = {noise.equivalence_key(c.text) for c in version_clauses(session, older)}
            if wanted not in keys:
                break
            since = older.seen_at
            at_least = index == WALK_LIMIT
        cells[label] = StanceCell(
            document_id=document.id,
            document_title=title,
            quote=_clip(clause.text),
            section=clause.section_label,
            since=since,
            since_at_least=at_least,
        )
    with _CACHE_LOCK:
        _CACHE[key] = cells
    return cells


def current_stance(session: Session) -> StanceTable:
    """The table for every service in the database (documents without a version are skipped)."""
    taxonomy = load_taxonomy()
    shown = tuple(
        (t.id, t.short or t.id, t.description)
        for t in taxonomy.topics.values()
        if t.group in STANCE_GROUPS
    )
    labels = {label for label, _, _ in shown}
    services: dict[str, dict[str, StanceCell]] = {}
    for document in browse.documents(session):
        cells = services.setdefault(document.service, {})
        for label, cell in _document_cells(session, document, labels).items():
            cells.setdefault(label, cell)
    rows = tuple(
        StanceRow(service=name, cells=cells)
        for name, cells in sorted(services.items(), key=lambda kv: kv[0].lower())
    )
    return StanceTable(topics=shown, rows=rows)
