"""Plain data that flows through the pipeline: clauses, clause changes, change reports.

Extract produces ``Clause`` lists; diff turns two lists into ``ClauseChange`` items; classify fills
in labels, direction, severity and annotation; the store persists them; render turns them into
email.
Everything here is immutable plain data with no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ClauseChangeKind = Literal["added", "removed", "modified", "moved"]
Direction = Literal["expands", "narrows", "neutral"]
Severity = Literal["high", "medium", "low", "cosmetic"]
WordOp = Literal["equal", "insert", "delete"]

SEVERITIES: tuple[Severity, ...] = ("cosmetic", "low", "medium", "high")
"""Severities from least to most severe; compare with ``severity_rank``."""


def severity_rank(severity: str) -> int:
    """0 for cosmetic … 3 for high; raises ValueError naming the bad value."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(
            f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}"
        ) from None


def max_severity(severities: list[str] | tuple[str, ...]) -> Severity:
    """The most severe of the given severities ('cosmetic' when empty)."""
    best: Severity = "cosmetic"
    for s in severities:
        if severity_rank(s) > severity_rank(best):
            best = s  # type: ignore[assignment]
    return best


@dataclass(frozen=True, slots=True)
class Clause:
    """One paragraph-sized unit of legal text and the headings above it."""

    section: tuple[str, ...]
    text: str

    @property
    def section_label(self) -> str:
        return " › ".join(self.section)


@dataclass(frozen=True, slots=True)
class WordSpan:
    """A run of words inside a modified clause: kept, inserted or deleted."""

    op: WordOp
    text: str


@dataclass(frozen=True, slots=True)
class ClauseChange:
    """One clause that was added, removed, reworded or moved between two versions."""

    kind: ClauseChangeKind
    section: tuple[str, ...]
    before: str | None
    after: str | None
    old_index: int | None = None
    new_index: int | None = None
    words: tuple[WordSpan, ...] = ()
    labels: tuple[str, ...] = ()
    direction: Direction = "neutral"
    severity: Severity = "cosmetic"
    annotation: str = ""
    coarse: bool = False
    """The diff ran out of budget: some changed passages are shown whole, not word by word."""


@dataclass(frozen=True, slots=True)
class ChangeReport:
    """A whole change between two versions: clause changes plus a summary."""

    clauses: tuple[ClauseChange, ...]
    summary: str
    severity: Severity
    notes: tuple[str, ...] = field(default=())
    """Context a reader needs, e.g. 'the page announces terms that take effect on 1 May 2025'."""
    headline: str = ""
    """One sentence stating the fact: 'Instagram may now use your public posts to train or improve
    AI; you can object until June 26, 2024'."""
    dates: tuple[str, ...] = field(default=())
    """Effective dates and deadlines the changed clauses state: 'effective June 26, 2024'."""
    opt_outs: tuple[str, ...] = field(default=())
    """Ways to say no the changed clauses give: objection links, 'Settings > ...' paths."""
