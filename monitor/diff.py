"""Diff: align the clauses of two versions, then mark the changed words inside reworded clauses.

Alignment runs in two passes:

1. **Identical text** (by hash): such clauses are the same clause, even when a heading above
   them was renumbered ("3. Content" → "4. Content"). Repeated texts pair within the same
   section first, then in order.
2. **Similar text** among the leftovers only: token-set Dice similarity (≥ 0.5, leading clause
   numbers ignored), preferring the same section and a nearby position; greedy best-first. Work is
   capped: beyond ``_ALL_PAIRS_LIMIT`` candidate pairs, only clauses sharing a rare word compete.

A paired clause is ``modified`` when its text changed, ``moved`` when its text is the same but it
now sits out of order (outside the longest in-order run of pairs) or under another section (headings
compared without their numbering). The rest is ``added`` or ``removed``. Unchanged clauses are not
returned. Results follow the new document; a removed clause is placed where it used to be.

``diff_words`` splits text into words, punctuation and whitespace, so concatenating the ``equal``
and ``insert`` spans gives the new text and ``equal`` plus ``delete`` the old one. This module does
no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from difflib import SequenceMatcher
from functools import lru_cache

from monitor.clauses import Clause, ClauseChange, WordSpan

__all__ = ["SIMILARITY_THRESHOLD", "diff_clauses", "diff_words"]

SIMILARITY_THRESHOLD = 0.5
"""Minimum token Dice similarity for two different texts to count as one reworded clause."""

_ALL_PAIRS_LIMIT = 40_000
_RARE_TOKEN_LIMIT = 40
_CANDIDATES_PER_CLAUSE = 25

_WORD = re.compile(r"\w+")
_ENUMERATOR = re.compile(r"^\s*(?:\(?(?:\d+(?:\.\d+)*|[a-z]|[ivxlc]+)[.)]+|\d+(?:\.\d+)+)\s+", re.I)
_TOKEN = re.compile(r"\d+(?:[.,:/]\d+)*|\w+|\s+|[^\w\s]")


def _tokens(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(_ENUMERATOR.sub("", text, count=1).lower()))


@lru_cache(maxsize=4096)
def _section_key(section: tuple[str, ...]) -> tuple[str, ...]:
    """A section path compared without numbering, case or punctuation."""
    return tuple(
        " ".join(_WORD.findall(_ENUMERATOR.sub("", title, count=1).lower())) for title in section
    )


def _similarity(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def _pair_identical(old: Sequence[Clause], new: Sequence[Clause]) -> dict[int, int]:
    """new index → old index for clauses with the same text."""
    old_by_text: dict[str, list[int]] = defaultdict(list)
    for i, clause in enumerate(old):
        old_by_text[clause.text].append(i)
    new_by_text: dict[str, list[int]] = defaultdict(list)
    for j, clause in enumerate(new):
        if clause.text in old_by_text:
            new_by_text[clause.text].append(j)
    pairs: dict[int, int] = {}
    for text, new_indices in new_by_text.items():
        old_indices = old_by_text[text]
        if len(old_indices) == 1 and len(new_indices) == 1:
            pairs[new_indices[0]] = old_indices[0]
            continue
        # repeated text: first within the same section, then in order
        free_old = list(old_indices)
        leftover_new = []
        for j in new_indices:
            key = _section_key(new[j].section)
            match = next((i for i in free_old if _section_key(old[i].section) == key), None)
            if match is None:
                leftover_new.append(j)
            else:
                pairs[j] = match
                free_old.remove(match)
        for j, i in zip(leftover_new, free_old, strict=False):
            pairs[j] = i
    return pairs


def _pair_similar(
    old: Sequence[Clause], new: Sequence[Clause], old_left: list[int], new_left: list[int]
) -> dict[int, int]:
    """new index → old index for reworded clauses among the leftovers."""
    if not old_left or not new_left:
        return {}
    old_tokens = {i: _tokens(old[i].text) for i in old_left}
    new_tokens = {j: _tokens(new[j].text) for j in new_left}
    if len(old_left) * len(new_left) <= _ALL_PAIRS_LIMIT:
        candidates = {j: old_left for j in new_left}
    else:
        postings: dict[str, list[int]] = defaultdict(list)
        for i in old_left:
            for token in old_tokens[i]:
                postings[token].append(i)
        candidates = {}
        for j in new_left:
            shared: dict[int, int] = defaultdict(int)
            for token in new_tokens[j]:
                posting = postings.get(token)
                if posting and len(posting) <= _RARE_TOKEN_LIMIT:
                    for i in posting:
                        shared[i] += 1
            best = sorted(shared, key=lambda i: (-shared[i], i))[:_CANDIDATES_PER_CLAUSE]
            candidates[j] = best
    n_old, n_new = max(len(old), 1), max(len(new), 1)
    scored: list[tuple[float, int, int]] = []
    for j, olds in candidates.items():
        b = new_tokens[j]
        new_key = _section_key(new[j].section)
        for i in olds:
            a = old_tokens[i]
            score = _similarity(a, b) if a or b else float(old[i].text == new[j].text)
            if score < SIMILARITY_THRESHOLD:
                continue
            bonus = 0.05 if _section_key(old[i].section) == new_key else 0.0
            distance = abs(i / n_old - j / n_new)
            bonus += 0.05 * max(0.0, 1.0 - 10 * distance)
            scored.append((score + bonus, j, i))
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    pairs: dict[int, int] = {}
    used_old: set[int] = set()
    for _, j, i in scored:
        if j not in pairs and i not in used_old:
            pairs[j] = i
            used_old.add(i)
    return pairs


def _in_order(pairs: list[tuple[int, int]]) -> set[int]:
    """New indices of the longest run of pairs (sorted by new index) whose old indices increase."""
    tails: list[int] = []  # old index ending the best run of each length
    tail_at: list[int] = []  # position in ``pairs`` of that tail
    previous: list[int] = [-1] * len(pairs)
    for position, (_, i) in enumerate(pairs):
        length = bisect_left(tails, i)
        if length == len(tails):
            tails.append(i)
            tail_at.append(position)
        else:
            tails[length] = i
            tail_at[length] = position
        previous[position] = tail_at[length - 1] if length else -1
    keep: set[int] = set()
    position = tail_at[-1] if tail_at else -1
    while position != -1:
        keep.add(pairs[position][0])
        position = previous[position]
    return keep


def diff_clauses(old: Sequence[Clause], new: Sequence[Clause]) -> list[ClauseChange]:
    """Clauses added, removed, modified or moved from ``old`` to ``new``, in new-document order."""
    pairs = _pair_identical(old, new)
    old_paired = set(pairs.values())
    old_left = [i for i in range(len(old)) if i not in old_paired]
    new_left = [j for j in range(len(new)) if j not in pairs]
    similar = _pair_similar(old, new, old_left, new_left)
    pairs.update(similar)

    ordered = sorted(pairs.items())
    stable = _in_order(ordered)
    keyed: list[tuple[tuple[int, int, int], ClauseChange]] = []
    for j, i in ordered:
        before, after = old[i], new[j]
        if j in similar:
            change = ClauseChange(
                kind="modified",
                section=after.section,
                before=before.text,
                after=after.text,
                old_index=i,
                new_index=j,
                words=diff_words(before.text, after.text),
            )
        elif j not in stable or (
            before.section != after.section
            and _section_key(before.section) != _section_key(after.section)
        ):
            change = ClauseChange(
                kind="moved",
                section=after.section,
                before=before.text,
                after=after.text,
                old_index=i,
                new_index=j,
            )
        else:
            continue
        keyed.append(((j, 0, 0), change))
    for j in range(len(new)):
        if j not in pairs:
            clause = new[j]
            change = ClauseChange(
                kind="added", section=clause.section, before=None, after=clause.text, new_index=j
            )
            keyed.append(((j, 0, 0), change))
    anchor_of_old = {i: j for j, i in ordered if j in stable}
    anchor = -1
    old_paired = set(pairs.values())
    for i, clause in enumerate(old):
        if i in anchor_of_old:
            anchor = anchor_of_old[i]
        elif i not in old_paired:
            change = ClauseChange(
                kind="removed", section=clause.section, before=clause.text, after=None, old_index=i
            )
            keyed.append(((anchor, 1, i), change))
    keyed.sort(key=lambda item: item[0])
    return [change for _, change in keyed]


def diff_words(before: str, after: str) -> tuple[WordSpan, ...]:
    """Word-level spans turning ``before`` into ``after``: equal, delete and insert runs.

    Tokens are words, punctuation marks and whitespace runs. Inside a reworded passage, deletions
    come before insertions, and a lone space between two changes joins them into one pair.
    """
    if before == after:
        return (WordSpan("equal", before),) if before else ()
    spans = _token_spans(_TOKEN.findall(before), _TOKEN.findall(after))
    out: list[WordSpan] = []
    k = 0
    while k < len(spans):
        if spans[k][0] == "equal":
            _append(out, *spans[k])
            k += 1
            continue
        # a changed passage: changes joined by single whitespace runs
        region: list[tuple[str, str]] = []
        while k < len(spans):
            op, text = spans[k]
            joins = op == "equal" and text.isspace() and k + 1 < len(spans)
            if op != "equal" or (joins and spans[k + 1][0] != "equal"):
                region.append((op, text))
                k += 1
            else:
                break
        ops = {op for op, _ in region}
        if "delete" in ops and "insert" in ops:
            deleted = "".join(text for op, text in region if op != "insert")
            inserted = "".join(text for op, text in region if op != "delete")
            out.append(WordSpan("delete", deleted))
            out.append(WordSpan("insert", inserted))
        else:
            for op, text in region:
                _append(out, op, text)
    _slide_to_word_starts(out)
    return tuple(out)


WORD_DIFF_LIMIT = 1500
"""Token count above which the changed middle of a clause is matched sentence by sentence first:
difflib's matching is quadratic, and a 40,000-character clause would take seconds."""
_SENTENCE_END = frozenset({".", ";", ":", "!", "?"})


def _token_spans(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    """(op, text) runs turning tokens ``a`` into ``b``; the unchanged ends are trimmed first."""
    prefix = 0
    while prefix < len(a) and prefix < len(b) and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < len(a) - prefix
        and suffix < len(b) - prefix
        and a[len(a) - 1 - suffix] == b[len(b) - 1 - suffix]
    ):
        suffix += 1
    spans: list[tuple[str, str]] = []
    if prefix:
        spans.append(("equal", "".join(a[:prefix])))
    middle_a, middle_b = a[prefix : len(a) - suffix], b[prefix : len(b) - suffix]
    if max(len(middle_a), len(middle_b)) > WORD_DIFF_LIMIT:
        spans.extend(_sentence_spans(middle_a, middle_b))
    else:
        spans.extend(_matched_spans(middle_a, middle_b))
    if suffix:
        spans.append(("equal", "".join(a[len(a) - suffix :])))
    return spans


def _matched_spans(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    spans: list[tuple[str, str]] = []
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            spans.append(("equal", "".join(a[i1:i2])))
        else:
            if i2 > i1:
                spans.append(("delete", "".join(a[i1:i2])))
            if j2 > j1:
                spans.append(("insert", "".join(b[j1:j2])))
    return spans


def _sentences(tokens: list[str]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    start = 0
    for k, token in enumerate(tokens):
        if token in _SENTENCE_END:
            out.append(tuple(tokens[start : k + 1]))
            start = k + 1
    if start < len(tokens):
        out.append(tuple(tokens[start:]))
    return out


def _sentence_spans(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    """Match whole sentences first, then words inside the sentences that differ."""
    sa, sb = _sentences(a), _sentences(b)
    spans: list[tuple[str, str]] = []
    matcher = SequenceMatcher(None, sa, sb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        old = [t for sentence in sa[i1:i2] for t in sentence]
        new = [t for sentence in sb[j1:j2] for t in sentence]
        if op == "equal":
            spans.append(("equal", "".join(old)))
        elif max(len(old), len(new)) <= WORD_DIFF_LIMIT:
            spans.extend(_matched_spans(old, new))
        else:
            if old:
                spans.append(("delete", "".join(old)))
            if new:
                spans.append(("insert", "".join(new)))
    return spans


def _slide_to_word_starts(spans: list[WordSpan]) -> None:
    """Slide "Hello", " brave new", " world" to "Hello ", "brave new ", "world": start on words."""
    for k in range(1, len(spans) - 1):
        left, middle, right = spans[k - 1], spans[k], spans[k + 1]
        if (
            left.op == "equal"
            and right.op == "equal"
            and middle.op != "equal"
            and middle.text[:1].isspace()
            and right.text[:1] == middle.text[:1]
        ):
            ch = middle.text[0]
            spans[k - 1] = WordSpan("equal", left.text + ch)
            spans[k] = WordSpan(middle.op, middle.text[1:] + ch)
            spans[k + 1] = WordSpan("equal", right.text[1:]) if right.text[1:] else right
    spans[:] = [span for span in spans if span.text]


def _append(out: list[WordSpan], op: str, text: str) -> None:
    if out and out[-1].op == op:
        out[-1] = WordSpan(op, out[-1].text + text)
    else:
        out.append(WordSpan(op, text))  # type: ignore[arg-type]
