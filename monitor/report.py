"""A whole change between two versions of a document: diff, noise filtering, labels, summary, notes.

    build_report(old, new, document_name="Instagram Terms of Service", history=earlier_versions)

Pure: plain clause lists in, a ``ChangeReport`` out. ``history`` (earlier versions, most recent
first, not including ``old``) only serves to recognise variants the page has shown before; with
``history=()`` the report is the plain, unfiltered comparison of ``old`` and ``new``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from typing import Any, Protocol

from monitor import noise
from monitor.classify import (
    Facts,
    Taxonomy,
    classify_change,
    find_facts,
    headline_for,
    load_taxonomy,
    summarise_change,
)
from monitor.clauses import (
    ChangeReport,
    Clause,
    ClauseChange,
    WordSpan,
    max_severity,
    severity_rank,
)

VARIANT_SEEN = "Variant already seen: the page has shown this wording before; not a new change."
VARIANT_RECURRING = (
    "Recurring variant: this wording has come and gone on the page before (a regional or partial "
    "version of the page); not a new change."
)
FURNITURE = "Page furniture (a help link or a company-name banner), not part of the terms."
DUPLICATE = "The page repeats (or stops repeating) a clause it also shows elsewhere; not a change."
RECURRING_TRANSITIONS = 2
"""Flipping this many times in the recent run makes a wording a recurring variant."""
OTHER_LANGUAGE = "Page served in another language; not a change of terms."
_SUMMARY_ITEMS = 5
COARSE_NOTE = (
    "This change is too large to mark word by word: some changed passages are shown whole."
)
CLASSIFY_CHARS = 20_000
"""Characters of each side of a clause change the classifier reads (its cost grows with them)."""
CLASSIFY_TOTAL = 400_000
"""Characters the classifier reads for one report; past it, each clause gets ``CLASSIFY_MIN``."""
CLASSIFY_MIN = 2_000
CONTEXT_CHARS = 200
"""Unchanged characters kept on each side of a changed passage when a long clause is clipped."""
CLIPPED_NOTE = (
    "This change is too large to classify in full: the topics and severity of its longest "
    "clauses come from their first changed passages only; read the full change."
)

_DOC_WORDS = re.compile(
    r"\s+(?:terms|privacy|acceptable|cookies?|data|community|developer|supplemental|usage|user|"
    r"end[- ]user|eula|legal|ai terms|generative)\b.*$",
    re.IGNORECASE,
)

_DATE = noise.DATE_RE.pattern
_ANNOUNCE_FUTURE = re.compile(
    rf"(?:will|shall)\s+(?:be\s+)?(?:take|come into|go into|become|be)\s*(?:effect(?:ive)?)"
    rf"\s*(?:on|from|as of|starting)?\s*(?P<date>{_DATE})"
    rf"|(?:will be|are being|have been)\s+updated,?\s+effective\s+(?:on\s+|from\s+)?"
    rf"(?P<date2>{_DATE})"
    rf"|(?:new|updated|upcoming|revised)\s+(?:terms|policy|privacy policy|terms of (?:service|use))"
    rf"\b[^.]{{0,80}}?\b(?:effective|take effect|apply|applies|starting|from)\s+(?:on\s+)?"
    rf"(?P<date3>{_DATE})",
    re.IGNORECASE,
)
_ANNOUNCE_UNTIL = re.compile(
    rf"(?:appl(?:y|ies)|in (?:effect|force)|remain(?:s)? (?:in effect|in force|valid)|valid)\s+"
    rf"(?:until|through|till)\s+(?P<date>{_DATE})",
    re.IGNORECASE,
)
_ANNOUNCE_UNDATED = re.compile(
    r"(?:updated|new|upcoming|revised) (?:terms|policy|privacy policy)[^.]{0,40}\b(?:coming|soon)"
    r"|preview (?:the )?(?:updated|new|upcoming) (?:version|terms|policy)"
    r"|(?:terms|policy) (?:is|are) changing",
    re.IGNORECASE,
)


def service_name(document_name: str) -> str:
    """'Instagram Terms of Service' -> 'Instagram'; '' when no name is given."""
    name = _DOC_WORDS.sub("", document_name.strip())
    return name.strip(" -–:") if name else ""


@dataclasses.dataclass(frozen=True)
class _Announcement:
    kind: str  # "future" | "until" | "undated"
    date: str
    sentence_key: str


_DIGIT = re.compile(r"\d")
# Words every match of a pattern holds (in ASCII text, where ignoring case is lowering it): a few
# substring tests rule most clauses out at a fraction of the patterns' cost.
_FUTURE_WORDS = ("effect", "terms", "policy")
_UNTIL_WORDS = ("until", "through", "till")
_UNDATED_WORDS = ("coming", "soon", "preview", "changing")


def _may_hold(text: str, words: tuple[str, ...]) -> bool:
    if not text.isascii():
        return True
    lowered = text.lower()
    return any(word in lowered for word in words)


def _announcements(clauses: Sequence[Clause]) -> list[_Announcement]:
    found: list[_Announcement] = []
    for clause in clauses:
        text = noise.plain_text(clause.text[:CLASSIFY_CHARS])  # announcements are short
        # a dated announcement needs a date, and every date a digit: most clauses have none,
        # and a digit search costs far less than these patterns
        if _DIGIT.search(text):
            if _may_hold(text, _FUTURE_WORDS):
                for m in _ANNOUNCE_FUTURE.finditer(text):
                    date = m.group("date") or m.group("date2") or m.group("date3")
                    key = noise.equivalence_key(m.group(0))
                    found.append(_Announcement("future", date, key))
            if _may_hold(text, _UNTIL_WORDS):
                for m in _ANNOUNCE_UNTIL.finditer(text):
                    key = noise.equivalence_key(m.group(0))
                    found.append(_Announcement("until", m.group("date"), key))
        if not found and _may_hold(text, _UNDATED_WORDS):
            undated = _ANNOUNCE_UNDATED.search(text)
            if undated:
                found.append(_Announcement("undated", "", noise.equivalence_key(undated.group(0))))
    return found


def _announcement_notes(old: Sequence[Clause], new: Sequence[Clause]) -> tuple[list[str], str]:
    """Notes on announced future terms in ``new`` and the date they take effect ('' if none)."""
    ann = _announcements(new)
    if not ann:
        return [], ""
    old_keys = {a.sentence_key for a in _announcements(old)}
    notes = []
    future = next((a for a in ann if a.kind == "future"), None)
    until = next((a for a in ann if a.kind == "until"), None)
    fresh = any(a.sentence_key not in old_keys for a in ann)
    lead = "The page announces" if fresh else "The page still announces"
    if future:
        notes.append(
            f"{lead} new terms effective {future.date}; the current terms remain in force "
            "until then."
        )
    if until:
        notes.append(
            f"The page shows the current terms, which apply until {until.date}, alongside the "
            "upcoming terms; the upcoming terms are not yet in force."
        )
    if not future and not until:
        notes.append(
            f"{lead} upcoming terms; the current terms remain in force until they take effect."
        )
    date = future.date if future else until.date if until else ""
    return notes, date


_ANNOUNCED_SECTION = re.compile(
    r"\b(?:new|updated|upcoming|revised|future)\b.{0,30}\b(?:terms|policy|version)\b|"
    r"\bcoming soon\b|\beffective (?:on |from )?(?:" + _DATE + ")",
    re.IGNORECASE,
)


def _mark_announced(change: ClauseChange, date: str) -> ClauseChange:
    if severity_rank(change.severity) == 0:
        return change
    section = " ".join(change.section)
    if not _ANNOUNCED_SECTION.search(section):
        return change
    when = f"takes effect {date}" if date else "not yet in force"
    annotation = f"Announced terms ({when}): {change.annotation}"
    return dataclasses.replace(change, annotation=annotation[:300])


# --- variants already seen ------------------------------------------------------------------------


def _key(text: str) -> str:
    """``noise.equivalence_key``, within budget: a long text's tail counts byte for byte."""
    if len(text) <= CLASSIFY_CHARS:
        return noise.equivalence_key(text)
    tail = hashlib.sha256(text[CLASSIFY_CHARS:].encode("utf-8")).hexdigest()
    return f"{noise.equivalence_key(text[:CLASSIFY_CHARS])} #{tail}"


def _keys(clauses: Sequence[Clause]) -> set[str]:
    return {_key(c.text) for c in clauses}


def _language_sample(clauses: Sequence[Clause]) -> str:
    """The start of a version's text, as much as the language test reads."""
    parts: list[str] = []
    size = 0
    for clause in clauses:
        parts.append(clause.text)
        size += len(clause.text) + 1
        if size >= noise.ENGLISH_SAMPLE_CHARS:
            break
    return "\n".join(parts)


def _comparable_history(
    history: Sequence[Sequence[Clause]],
    old: Sequence[Clause],
    new: Sequence[Clause],
    new_text: str,
) -> list[set[str]]:
    """Key sets of the history versions in the language of ``new`` that resemble ``old`` or
    ``new`` (share half their clauses): a page that alternates with an error page or another
    variant is recognised, while an unrelated capture does not make every clause look seen."""
    if not history:
        return []
    ends = [keys for keys in (_keys(old), _keys(new)) if keys]
    kept = []
    for version in history:
        if not version:
            continue
        if noise.is_other_language(new_text, _language_sample(version)):
            continue
        keys = _keys(version)
        if any(len(keys & end) >= 0.5 * min(len(keys), len(end)) for end in ends):
            kept.append(keys)
    return kept


def _recurring_keys(run: Sequence[Sequence[Clause]], wanted: set[str]) -> set[str]:
    """The keys among ``wanted`` whose presence flipped at least ``RECURRING_TRANSITIONS`` times
    along ``run`` (versions oldest first): blocks that come and go (a regional variant, a partial
    capture), as opposed to a change made once and, perhaps, undone once."""
    if not wanted or len(run) < RECURRING_TRANSITIONS + 1:
        return set()
    flips = dict.fromkeys(wanted, 0)
    before: set[str] | None = None
    for version in run:
        if not version:
            continue  # an empty capture says nothing about any clause
        keys = _keys(version) & wanted
        if before is not None:
            for key in keys ^ before:
                flips[key] += 1
        before = keys
    return {key for key, n in flips.items() if n >= RECURRING_TRANSITIONS}


def _change_keys(change: ClauseChange) -> list[str]:
    """The wordings a clause change is about: the old one, the new one, or both."""
    keys = []
    if change.before is not None and change.kind in ("removed", "modified"):
        keys.append(noise.equivalence_key(change.before))
    if change.after is not None and change.kind in ("added", "modified"):
        keys.append(noise.equivalence_key(change.after))
    return keys


def _is_furniture(change: ClauseChange) -> bool:
    texts = [t for t in (change.before, change.after) if t is not None]
    return bool(texts) and all(noise.is_page_furniture(change.section, t) for t in texts)


def _is_duplicate(change: ClauseChange, old_keys: set[str], new_keys: set[str]) -> bool:
    """An added clause the old page already had elsewhere, or a removed one the new page keeps
    elsewhere: the page doubled or un-doubled a block, its terms did not change."""
    if change.kind == "added":
        return noise.equivalence_key(change.after or "") in old_keys
    if change.kind == "removed":
        return noise.equivalence_key(change.before or "") in new_keys
    return False


def _seen_before(change: ClauseChange, history_keys: list[set[str]]) -> bool:
    if not history_keys:
        return False
    if change.kind == "removed":
        key = _key(change.before or "")
        return any(key not in keys for keys in history_keys)
    key = _key(change.after or "")
    return any(key in keys for keys in history_keys)


# --- size budget ---------------------------------------------------------------------------------


def _too_long(change: ClauseChange, limit: int) -> bool:
    return max(len(change.before or ""), len(change.after or "")) > limit


def clip_for_classification(change: ClauseChange, *, limit: int = CLASSIFY_CHARS) -> ClauseChange:
    """The change as the classifier should read it: within ``limit`` characters a side.

    A long reworded clause keeps its changed passages (in order, until the budget is spent) with
    ``CONTEXT_CHARS`` of unchanged text around each; other long clauses keep their beginning.
    """
    if not _too_long(change, limit):
        return change
    if not change.words:
        return dataclasses.replace(
            change,
            before=None if change.before is None else change.before[:limit],
            after=None if change.after is None else change.after[:limit],
        )
    kept: list[WordSpan] = []
    before_len = after_len = 0
    spans = change.words
    for k, span in enumerate(spans):
        text = span.text
        if span.op == "equal":
            head = text[:CONTEXT_CHARS] if k else ""
            tail = text[-CONTEXT_CHARS:] if k + 1 < len(spans) else ""
            text = text if len(text) <= len(head) + len(tail) + 3 else f"{head} … {tail}"
        room = limit - max(before_len, after_len)
        if room <= 0:
            break
        text = text[:room]
        kept.append(WordSpan(span.op, text))
        if span.op != "insert":
            before_len += len(text)
        if span.op != "delete":
            after_len += len(text)
    before = "".join(s.text for s in kept if s.op != "insert")
    after = "".join(s.text for s in kept if s.op != "delete")
    return dataclasses.replace(change, before=before, after=after, words=tuple(kept))


# --- summary --------------------------------------------------------------------------------------


def _summary(
    changes: Sequence[ClauseChange], phrases: dict[int, str], *, flips: int, language: bool
) -> str:
    if language:
        return f"No change of terms: page served in another language ({len(changes)} edits ignored)"
    real = [(i, c) for i, c in enumerate(changes) if c.severity != "cosmetic"]
    cosmetic = len(changes) - len(real)
    if not real:
        if not changes:
            return "No change"
        why = " (variant already seen)" if flips else ""
        return f"No real change: {cosmetic} cosmetic edit{'s' if cosmetic != 1 else ''}{why}"
    counted: dict[tuple[str, str], int] = {}
    for i, c in sorted(real, key=lambda ic: -severity_rank(ic[1].severity)):
        key = (phrases[i], c.severity)
        counted[key] = counted.get(key, 0) + 1
    items = []
    for (phrase, severity), n in counted.items():
        items.append(f"{phrase} ({severity})" if n == 1 else f"{n}× {phrase} ({severity})")
    shown = items[:_SUMMARY_ITEMS]
    if len(items) > _SUMMARY_ITEMS:
        rest = sum(list(counted.values())[_SUMMARY_ITEMS:])
        shown.append(f"{rest} more")
    if cosmetic:
        shown.append(f"{cosmetic} cosmetic edit{'s' if cosmetic != 1 else ''}")
    n = len(real)
    return f"{n} clause{'s' if n != 1 else ''} changed: " + "; ".join(shown)


# --- public API -----------------------------------------------------------------------------------


def build_report(
    old: Sequence[Clause],
    new: Sequence[Clause],
    *,
    document_name: str = "",
    history: Sequence[Sequence[Clause]] = (),
    recurring: Sequence[Sequence[Clause]] = (),
    taxonomy: Taxonomy | None = None,
) -> ChangeReport:
    """Diff ``old`` and ``new``, drop noise, label and grade each clause change, and summarise.

    ``history``: earlier versions of the same document, most recent first, excluding ``old``.
    Clause changes whose new wording the page already showed in ``history`` are marked cosmetic
    ("variant already seen"); ``history=()`` gives the plain report.

    ``recurring``: the recent run of versions, oldest first (repeats included, unlike
    ``history``). Clause changes whose wordings came and went at least twice along it are a
    block the page shows and hides (a regional or partial version), marked cosmetic.
    Independently of both, a clause added or removed while the same wording stays elsewhere on
    the page (a doubled block) is cosmetic.
    """
    from monitor.diff import diff_clauses  # the differ is a sibling pure module

    taxonomy = taxonomy or load_taxonomy()
    service = service_name(document_name)
    old_text = "\n".join(c.text for c in old)
    new_text = "\n".join(c.text for c in new)
    notes: list[str] = []

    language = bool(old) and noise.is_other_language(old_text, new_text)
    if not language and old and noise.is_other_language(new_text, old_text):
        # Back from a page served in another language: compare with the last version in this one.
        for i, version in enumerate(history):
            if version and not noise.is_other_language(
                new_text, "\n".join(c.text for c in version)
            ):
                notes.append(
                    "The previous capture was in another language; compared with the last "
                    "capture in this language."
                )
                old, history = version, history[i + 1 :]
                break

    changes = []
    phrases = {}
    budget = CLASSIFY_TOTAL
    for i, change in enumerate(diff_clauses(old, new)):
        clipped = clip_for_classification(
            change, limit=max(CLASSIFY_MIN, min(CLASSIFY_CHARS, budget))
        )
        budget -= max(len(clipped.before or ""), len(clipped.after or ""))
        judged = classify_change(clipped, taxonomy, service=service)
        phrases[i] = summarise_change(judged, taxonomy)
        changes.append(
            dataclasses.replace(
                change,
                labels=judged.labels,
                direction=judged.direction,
                severity=judged.severity,
                annotation=judged.annotation,
            )
        )
    if any(c.coarse for c in changes):
        notes.append(COARSE_NOTE)
    if any(_too_long(c, CLASSIFY_CHARS) for c in changes) or budget < 0:
        notes.append(CLIPPED_NOTE)

    flips = 0
    announced = ""
    if language:
        changes = [
            dataclasses.replace(
                c, severity="cosmetic", direction="neutral", annotation=OTHER_LANGUAGE
            )
            for c in changes
        ]
        notes.append("The page was served in another language; no change of terms is reported.")
    else:
        history_keys = _comparable_history(history, old, new, new_text)
        real = [i for i, c in enumerate(changes) if c.severity != "cosmetic"]
        old_keys, new_keys = _keys(old), _keys(new)
        wanted = {key for i in real for key in _change_keys(changes[i])}
        comes_and_goes = _recurring_keys(recurring, wanted)
        for i in real:
            c = changes[i]
            if _is_furniture(c):
                why = FURNITURE
            elif _is_duplicate(c, old_keys, new_keys):
                why = DUPLICATE
            elif comes_and_goes and all(k in comes_and_goes for k in _change_keys(c)):
                why = VARIANT_RECURRING
            elif _seen_before(c, history_keys):
                why = VARIANT_SEEN
            else:
                continue
            changes[i] = dataclasses.replace(
                c, severity="cosmetic", direction="neutral", annotation=why
            )
            flips += 1
        if flips:
            notes.append(
                f"{flips} change{'s' if flips != 1 else ''} restore wording the page showed "
                "before (it alternates between variants, or repeats a block); marked cosmetic."
            )
        if any(c.severity != "cosmetic" for c in changes):
            announce_notes, date = _announcement_notes(old, new)
            notes.extend(announce_notes)
            announced = date
            changes = [_mark_announced(c, date) for c in changes]

    summary = _summary(changes, phrases, flips=flips, language=language)
    severity = max_severity([c.severity for c in changes])
    facts = _facts(changes, old, announced)
    if language:
        headline = f"{service or 'The page'}: page served in another language; no change of terms"
    else:
        headline = headline_for(changes, service=service, facts=facts, taxonomy=taxonomy)
    return ChangeReport(
        clauses=tuple(changes),
        summary=summary,
        severity=severity,
        notes=tuple(notes),
        headline=headline,
        dates=facts.dates,
        opt_outs=facts.opt_outs,
    )


def _facts(changes: Sequence[ClauseChange], old: Sequence[Clause], announced: str) -> Facts:
    """Dates and opt-out routes stated by the changed clauses that the old version did not state."""
    shown = [c.after for c in changes if c.severity != "cosmetic" and c.after]
    if not shown:
        return Facts()
    facts = find_facts(shown, old_texts=tuple(c.text for c in old))
    if announced and not any(announced in d for d in facts.dates):
        facts = dataclasses.replace(facts, dates=(f"effective {announced}", *facts.dates)[:4])
    return facts


class ClauseLike(Protocol):
    """A changed clause as any stage holds it (a report's, a stored record's, a view's)."""

    @property
    def kind(self) -> str: ...
    @property
    def section(self) -> Sequence[str]: ...
    @property
    def before(self) -> str | None: ...
    @property
    def after(self) -> str | None: ...
    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def direction(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def annotation(self) -> str: ...


def clause_to_json(clause: ClauseLike) -> dict[str, Any]:
    """One changed clause as JSON-ready data: the same keys in `--json`, `/api/` and webhooks."""
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


def report_to_json(report: ChangeReport) -> dict[str, Any]:
    """The report as JSON-ready data (for ``--json`` output and the store)."""
    return {
        "clauses": [clause_to_json(c) for c in report.clauses],
        "summary": report.summary,
        "severity": report.severity,
        "notes": list(report.notes),
        "headline": report.headline,
        "dates": list(report.dates),
        "opt_outs": list(report.opt_outs),
    }
