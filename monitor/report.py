"""A whole change between two versions of a document: diff, noise filtering, labels, summary, notes.

    build_report(old, new, document_name="Instagram Terms of Service", history=earlier_versions)

Pure: plain clause lists in, a ``ChangeReport`` out. ``history`` (earlier versions, most recent
first, not including ``old``) only serves to recognise variants the page has shown before; with
``history=()`` nothing is judged against earlier versions (the rules that need none still apply:
page furniture, doubled blocks, numbered notes written out, notices of the page's own update).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from collections import Counter
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
NOTE_TEXT = (
    "Text of a numbered note (an example or 'learn more' box) that the page shows in some "
    "captures and hides in others; not a change of terms."
)
UPDATE_NOTICE = (
    "A notice that the page was or will be updated (or a link to another version), not a term; "
    "what changed is reported with the clauses themselves."
)
RETURNING_BLOCK = (
    "Part of a block of text the page shows in some captures and not in others: most of the "
    "block is wording seen before, and this part changed while the block was not shown."
)
BLOCK_MIN_CLAUSES = 5
"""A run of added clauses this long or longer can be a block the page shows and hides."""
BLOCK_SEEN_SHARE = 0.6
"""A block is one seen before when this share of its text is wording an earlier version shows."""
BLOCK_PAGE_EDITS = 3
BLOCK_PAGE_SHARE = 0.02
"""While a block was hidden, the rest of the page changed when more than this many (or this
share) of the compared version's clauses are not in the version that last showed the block."""
NOTES_MIN = 2
"""A version shows its notes when at least this many numbered notes are written out."""
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
) -> list[tuple[Sequence[Clause], set[str]]]:
    """The history versions in the language of ``new`` that resemble ``old`` or ``new`` (share
    half their clauses), with their key sets: a page that alternates with an error page or
    another variant is recognised, while an unrelated capture does not make every clause look
    seen."""
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
            kept.append((version, keys))
    return kept


def _recurring_keys(run: Sequence[set[str]], wanted: set[str]) -> set[str]:
    """The keys among ``wanted`` whose presence flipped at least ``RECURRING_TRANSITIONS`` times
    along ``run`` (the key sets of versions, oldest first, empty captures left out): blocks that
    come and go (a regional variant, a partial capture), as opposed to a change made once and,
    perhaps, undone once."""
    if not wanted or len(run) < RECURRING_TRANSITIONS + 1:
        return set()
    flips = dict.fromkeys(wanted, 0)
    before: set[str] | None = None
    for version in run:
        keys = version & wanted
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


def _is_duplicate(
    change: ClauseChange, old_keys: Counter[str], new_keys: Counter[str], moved: Counter[str]
) -> bool:
    """An added clause the old page already had elsewhere, or a removed one the new page keeps
    elsewhere: the page doubled or un-doubled a block, its terms did not change. Also an added
    clause the new page shows more often than it was added (its other copy came from an edit of
    an old clause: a block doubled while a name in it changed), and the same for removals.
    ``moved``: how many times each wording was added or removed by this change."""
    if change.kind == "added":
        key = noise.equivalence_key(change.after or "")
        return key in old_keys or new_keys[key] > moved[key]
    if change.kind == "removed":
        key = noise.equivalence_key(change.before or "")
        return key in new_keys or old_keys[key] > moved[key]
    return False


def _seen_before(change: ClauseChange, history_keys: list[set[str]]) -> bool:
    if not history_keys:
        return False
    if change.kind == "removed":
        key = _key(change.before or "")
        return any(key not in keys for keys in history_keys)
    key = _key(change.after or "")
    return any(key in keys for keys in history_keys)


# --- blocks the page shows and hides: numbered notes, regional sections ------------------------

_NOTE_NUMBER = re.compile(r"\d{1,3}")
_NOTE_REFERENCE = re.compile(r"\S\\?\[(\d{1,3})\\?\]")


def _note_references(clauses: Sequence[Clause]) -> set[str]:
    return {m.group(1) for c in clauses for m in _NOTE_REFERENCE.finditer(c.text)}


def _notes_opened(shown: Sequence[Clause], closed: Sequence[Clause]) -> set[int]:
    """The note marks of ``shown`` when ``closed`` writes out no notes but refers to most of
    them: the same notes, open in one capture and closed in the other."""
    marks = _note_marks(shown)
    if not marks or _note_marks(closed):
        return set()
    referenced = _note_references(closed)
    numbers = [shown[i].text.strip() for i in marks]
    return marks if sum(n in referenced for n in numbers) * 2 >= len(numbers) else set()


def _note_marks(clauses: Sequence[Clause]) -> set[int]:
    """Indices of the clauses that open a written-out numbered note: a clause that is only a
    number N, where another clause of the version refers to note N ('audio[5]', 'Learn
    more[8]'). Some pages (Meta's privacy policy) show the text of their notes in some captures
    and only the references in others."""
    numbered = {
        i: c.text.strip() for i, c in enumerate(clauses) if _NOTE_NUMBER.fullmatch(c.text.strip())
    }
    if len(numbered) < NOTES_MIN:
        return set()
    referenced = _note_references(clauses)
    marks = {i for i, number in numbered.items() if number in referenced}
    return marks if len(marks) >= NOTES_MIN else set()


def _note_text(clauses: Sequence[Clause], marks: set[int], other_keys: set[str]) -> set[int]:
    """Indices of the clauses written out as notes: from a note's number on, the clauses that
    the other version does not have, up to where the page's own text resumes (two clauses in a
    row that the other version has; a note may repeat one line of the page, 'See some
    examples[51].')."""
    inside: set[int] = set()
    for start in sorted(marks):
        i = start + 1
        while i < len(clauses) and i not in marks:
            if _key(clauses[i].text) in other_keys:
                if i + 1 >= len(clauses) or _key(clauses[i + 1].text) in other_keys:
                    break
            else:
                inside.add(i)
            i += 1
        inside.add(start)
    return inside


def _hidden_notes(
    changes: Sequence[ClauseChange], old: Sequence[Clause], new: Sequence[Clause]
) -> set[int]:
    """Positions in ``changes`` of the clauses removed only because ``old`` writes out its
    numbered notes and ``new`` does not (a capture with its 'learn more' boxes closed)."""
    old_marks = _notes_opened(old, new)
    if not old_marks:
        return set()
    inside = _note_text(old, old_marks, _keys(new))
    return {
        k
        for k, c in enumerate(changes)
        if c.kind == "removed" and c.old_index is not None and c.old_index in inside
    }


@dataclasses.dataclass(frozen=True)
class _Return:
    """What an added clause is when it belongs to a block the page shows again."""

    why: str
    """NOTE_TEXT or VARIANT_SEEN (cosmetic), RETURNING_BLOCK (at most low), or "" (reworded
    since the block was last shown: judge it against ``before``)."""
    before: str | None = None


def _runs(changes: Sequence[ClauseChange], taken: set[int]) -> list[list[int]]:
    """Positions of added clauses grouped in runs that are consecutive in the new version."""
    added = sorted(
        (c.new_index, k)
        for k, c in enumerate(changes)
        if c.kind == "added" and c.new_index is not None and k not in taken
    )
    runs: list[list[int]] = []
    last = -2
    for index, k in added:
        if index != last + 1:
            runs.append([])
        runs[-1].append(k)
        last = index
    return runs


def _returning_blocks(
    changes: Sequence[ClauseChange],
    old: Sequence[Clause],
    new: Sequence[Clause],
    earlier: Sequence[tuple[Sequence[Clause], set[str] | None]],
) -> dict[int, _Return]:
    """Added clauses that belong to a block the page shows in some captures and not in others,
    by position in ``changes``: numbered notes written out (recognised by their numbers, even the
    first time), or a run of added clauses most of whose text an ``earlier`` version showed (a
    regional section, notes written out without numbers). ``earlier``: versions most recent
    first, each with its key set when already known.

    Such a block is compared with the last version that showed it. Its clauses worded as there
    are a variant flip when the block comes and goes (``_recurs``) or is numbered notes; a block
    shown once before and back (a section restored) is left to the other rules. A clause worded
    otherwise changed while the block was hidden: if the block comes and goes and the rest of the
    page changed meanwhile too, that edit went with a change already reported (at most ``low``:
    the notes of an update captured with its notes closed); otherwise it is judged as a
    rewording of its counterpart there, or as a new clause."""
    from monitor.diff import diff_clauses  # the differ is a sibling pure module

    found: dict[int, _Return] = {}
    blocks: list[tuple[list[int], Sequence[Clause] | None, str, bool]] = []
    new_marks = _notes_opened(new, old)
    if new_marks:
        inside = _note_text(new, new_marks, _keys(old))
        notes = [
            k
            for k, c in enumerate(changes)
            if c.kind == "added" and c.new_index is not None and c.new_index in inside
        ]
        present = [bool(_note_marks(v)) for v, _ in earlier]
        shown = next((v for (v, _), open_ in zip(earlier, present, strict=True) if open_), None)
        blocks.append((notes, shown, NOTE_TEXT, _recurs(present)))
    taken = {k for members, *_ in blocks for k in members}
    runs = [run for run in _runs(changes, taken) if len(run) >= BLOCK_MIN_CLAUSES]
    keyed = [(v, _keys(v) if keys is None else keys) for v, keys in earlier] if runs else []
    for run in runs:
        total = sum(len(changes[k].after or "") for k in run)
        present = [
            total > 0
            and sum(
                len(changes[k].after or "") for k in run if _key(changes[k].after or "") in keys
            )
            >= BLOCK_SEEN_SHARE * total
            for _, keys in keyed
        ]
        if any(present):
            shown = keyed[present.index(True)][0]
            blocks.append((run, shown, VARIANT_SEEN, _recurs(present)))
    old_keys = _keys(old) if blocks else set()
    for members, shown, seen_why, recurs in blocks:
        if shown is None:  # numbered notes written out for the first time
            found.update(dict.fromkeys(members, _Return(NOTE_TEXT)))
            continue
        shown_keys = _keys(shown)
        fresh = []
        for k in members:
            if _key(changes[k].after or "") not in shown_keys:
                fresh.append(k)
            elif recurs or seen_why == NOTE_TEXT:
                found[k] = _Return(seen_why)
            # else: a block shown once and back (a section restored): the history and the
            # settling of a return judge it, as any wording seen before
        if not fresh:
            continue
        moved_on = sum(key not in shown_keys for key in old_keys)
        if recurs and moved_on > max(BLOCK_PAGE_EDITS, BLOCK_PAGE_SHARE * len(old_keys)):
            found.update(dict.fromkeys(fresh, _Return(RETURNING_BLOCK)))
            continue
        hidden = [c for c in shown if _key(c.text) not in old_keys]
        wanted = [Clause(changes[k].section, changes[k].after or "") for k in fresh]
        counterpart = {
            fresh[c.new_index]: c.before
            for c in diff_clauses(hidden, wanted)
            if c.kind == "modified" and c.new_index is not None
        }
        for k in fresh:
            found[k] = _Return("", counterpart.get(k))
    return found


def _recurs(present: Sequence[bool]) -> bool:
    """Whether a block absent from the compared version came and went along the earlier versions
    (most recent first): shown, hidden and shown again, at least ``RECURRING_TRANSITIONS``
    times, as opposed to a section removed once and now restored."""
    flips = sum(a != b for a, b in itertools.pairwise([False, *present]))
    return flips >= RECURRING_TRANSITIONS


def _reworded(change: ClauseChange, before: str, taxonomy: Taxonomy, service: str) -> ClauseChange:
    """An added clause judged as a rewording of ``before`` (its wording where its block was last
    shown)."""
    from monitor.diff import diff_words

    after = change.after or ""
    reworded = dataclasses.replace(
        change, kind="modified", before=before, words=diff_words(before, after)
    )
    judged = classify_change(clip_for_classification(reworded), taxonomy, service=service)
    return dataclasses.replace(
        reworded,
        labels=judged.labels,
        direction=judged.direction,
        severity=judged.severity,
        annotation=judged.annotation,
    )


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
    shown_before: Sequence[Sequence[Clause]] | None = None,
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
    the page (a doubled block) is cosmetic, and so is the text of numbered notes that one version
    writes out and the other does not. A clause whose only new or dropped sentences announce an
    update of the page ('We updated our Privacy Policy on ...') is at most ``low``.

    ``shown_before``: earlier versions, most recent first, in which to find a block of added
    clauses the page showed before (see ``_returning_blocks``); by default the versions of
    ``history`` that resemble ``old`` or ``new``. The settling of a return judges with no
    ``history`` (a revert that stays is news) but still passes them.
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
        comparable = _comparable_history(history, old, new, new_text)
        history_keys = [keys for _, keys in comparable]
        returns = _returning_blocks(
            changes,
            old,
            new,
            comparable if shown_before is None else [(v, None) for v in shown_before if v],
        )
        for i, back in returns.items():
            if back.before is not None:
                rejudged = _reworded(changes[i], back.before, taxonomy, service)
                phrases[i] = summarise_change(rejudged, taxonomy)
                changes[i] = rejudged
        if any(back.before is not None for back in returns.values()):
            notes.append(
                "Part of the page that some captures do not show is back; its clauses are "
                "compared with the last capture that showed them."
            )
        hidden = _hidden_notes(changes, old, new)
        real = [i for i, c in enumerate(changes) if c.severity != "cosmetic"]
        old_keys = Counter(_key(c.text) for c in old)
        new_keys = Counter(_key(c.text) for c in new)
        moved = Counter(k for c in changes if c.kind != "modified" for k in _change_keys(c))
        wanted = {key for i in real for key in _change_keys(changes[i])}
        run_keys = [_keys(v) for v in recurring if v] if real else []
        comes_and_goes = _recurring_keys(run_keys, wanted)
        noted = 0
        for i in real:
            c = changes[i]
            block = returns.get(i)
            if _is_furniture(c):
                why = FURNITURE
            elif i in hidden:
                why = NOTE_TEXT
            elif block is not None and block.why in (NOTE_TEXT, VARIANT_SEEN):
                why = block.why
            elif _is_duplicate(c, old_keys, new_keys, moved):
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
            if why == NOTE_TEXT:
                noted += 1
            else:
                flips += 1
        if noted:
            notes.append(
                f"{noted} clause{'s are' if noted != 1 else ' is'} the text of numbered notes that "
                "one capture writes out and the other does not; marked cosmetic."
            )
        if flips:
            notes.append(
                f"{flips} change{'s' if flips != 1 else ''} restore wording the page showed "
                "before (it alternates between variants, or repeats a block); marked cosmetic."
            )
        for i, c in enumerate(changes):
            if (
                severity_rank(c.severity) > severity_rank("low")
                and i in returns
                and returns[i].why == RETURNING_BLOCK
            ):
                changes[i] = dataclasses.replace(
                    c, severity="low", direction="neutral", annotation=RETURNING_BLOCK
                )
                phrases[i] = "block shown again"
            elif (
                severity_rank(c.severity) > severity_rank("low")
                and c.kind != "moved"
                and noise.only_update_notices_changed(c.before, c.after)
            ):
                changes[i] = dataclasses.replace(
                    c, severity="low", direction="neutral", annotation=UPDATE_NOTICE
                )
                phrases[i] = "update notice"
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
