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
from collections.abc import Callable, Hashable, Sequence
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import pairwise

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


_SIMILARITY_CHARS = 50_000
"""Characters of a clause compared to find its reworded counterpart (enough to tell them apart)."""


def _tokens(text: str) -> frozenset[str]:
    text = text[:_SIMILARITY_CHARS]
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
    budget = DiffBudget()
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
            words, coarse = _diff_words(before.text, after.text, budget)
            change = ClauseChange(
                kind="modified",
                section=after.section,
                before=before.text,
                after=after.text,
                old_index=i,
                new_index=j,
                words=words,
                coarse=coarse,
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
    return _diff_words(before, after, DiffBudget())[0]


class DiffBudget:
    """Work left for word-level matching, shared by every clause of one diff.

    A unit is roughly one token visited. When the budget runs out, the passages not yet matched
    are shown whole (deleted, then inserted) and the clause is marked ``coarse``: the diff is
    still exact text, only less finely marked, and its cost stays linear in the text.
    """

    __slots__ = ("exhausted", "left")

    def __init__(self, units: int | None = None) -> None:
        self.left = DIFF_BUDGET if units is None else units
        self.exhausted = False

    def take(self, units: int) -> bool:
        if units > self.left:
            self.exhausted = True
            return False
        self.left -= units
        return True


DIFF_BUDGET = 1_000_000
"""Work units (about one per token visited) one ``diff_clauses`` call may spend on matching words:
about a second of CPU (bench/diff_budget.py), whatever the size of the page; a 90 KB reworded
clause of ordinary prose takes less than half of it."""
WORD_DIFF_LIMIT = 1500
"""Token count above which the changed middle of a clause is matched sentence by sentence first."""
_EXACT_LIMIT = 4096
"""len(a) * len(b) at or below which a gap is matched exactly by difflib (quadratic, so small)."""
_CHARS_PER_UNIT = 2
"""Characters of clause text that cost one unit to split into words and sentences."""
_EXACT_FALLBACK = 16_384
"""len(a) * len(b) up to which a gap with no anchor is still matched exactly."""
_RARE = 4
"""Occurrences on each side up to which an element may anchor a gap that has no unique one."""
_SENTENCE_END = frozenset({".", ";", ":", "!", "?"})


def _diff_words(before: str, after: str, budget: DiffBudget) -> tuple[tuple[WordSpan, ...], bool]:
    """The word spans and whether the budget ran out (some passages shown whole)."""
    if before == after:
        return ((WordSpan("equal", before),) if before else ()), False
    was_exhausted = budget.exhausted
    budget.exhausted = False
    if budget.take((len(before) + len(after)) // _CHARS_PER_UNIT):
        spans = _token_spans(_TOKEN.findall(before), _TOKEN.findall(after), budget)
    else:  # too long to even split into words within budget: the changed middle, whole
        budget.exhausted = True
        spans = _char_spans(before, after)
    coarse = budget.exhausted
    budget.exhausted = budget.exhausted or was_exhausted
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
    return tuple(out), coarse


def _char_spans(a: str, b: str) -> list[tuple[str, str]]:
    """Equal start, the changed middle deleted then inserted, equal end; cut at whitespace."""
    prefix = _common_length(a, b, lambda s, k: s[:k])
    while prefix and not (a[prefix - 1].isspace() and b[prefix - 1].isspace()):
        prefix -= 1
    room = min(len(a), len(b)) - prefix
    suffix = min(_common_length(a, b, lambda s, k: s[len(s) - k :]), room)
    while suffix and not (a[len(a) - suffix].isspace() and b[len(b) - suffix].isspace()):
        suffix -= 1
    spans = [("equal", a[:prefix])] if prefix else []
    if len(a) - suffix > prefix:
        spans.append(("delete", a[prefix : len(a) - suffix]))
    if len(b) - suffix > prefix:
        spans.append(("insert", b[prefix : len(b) - suffix]))
    if suffix:
        spans.append(("equal", a[len(a) - suffix :]))
    return spans


def _common_length(a: str, b: str, part: Callable[[str, int], str]) -> int:
    """The largest k with part(a, k) == part(b, k), by bisection (string compares run in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if part(a, middle) == part(b, middle):
            low = middle
        else:
            high = middle - 1
    return low


def _token_spans(a: list[str], b: list[str], budget: DiffBudget) -> list[tuple[str, str]]:
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
        spans.extend(_sentence_spans(middle_a, middle_b, budget))
    else:
        spans.extend(_matched_spans(middle_a, middle_b, budget))
    if suffix:
        spans.append(("equal", "".join(a[len(a) - suffix :])))
    return spans


def _matched_spans(a: list[str], b: list[str], budget: DiffBudget) -> list[tuple[str, str]]:
    spans: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in _opcodes(_align(a, b, budget), len(a), len(b)):
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


def _sentence_spans(a: list[str], b: list[str], budget: DiffBudget) -> list[tuple[str, str]]:
    """Match whole sentences first, then words inside the passages that differ."""
    sa, sb = _sentences(a), _sentences(b)
    spans: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in _opcodes(_align(sa, sb, budget), len(sa), len(sb)):
        old = [t for sentence in sa[i1:i2] for t in sentence]
        new = [t for sentence in sb[j1:j2] for t in sentence]
        if op == "equal":
            spans.append(("equal", "".join(old)))
        elif old and new:
            spans.extend(_matched_spans(old, new, budget))
        else:
            if old:
                spans.append(("delete", "".join(old)))
            if new:
                spans.append(("insert", "".join(new)))
    return spans


def _opcodes(
    blocks: list[tuple[int, int, int]], len_a: int, len_b: int
) -> list[tuple[str, int, int, int, int]]:
    """difflib-style opcodes from matching blocks (i, j, size), in order."""
    out: list[tuple[str, int, int, int, int]] = []
    i = j = 0
    for bi, bj, size in [*blocks, (len_a, len_b, 0)]:
        if i < bi or j < bj:
            out.append(("replace", i, bi, j, bj))
        if size:
            out.append(("equal", bi, bi + size, bj, bj + size))
        i, j = bi + size, bj + size
    return out


def _align(
    a: Sequence[Hashable], b: Sequence[Hashable], budget: DiffBudget
) -> list[tuple[int, int, int]]:
    """Matching blocks (i, j, size) of ``a`` and ``b`` in order, near-linear and within budget.

    Patience-style: elements unique on both sides (else rare ones) that appear in the same order
    anchor the alignment; the gaps between anchors are aligned the same way, and gaps small
    enough are matched exactly by difflib. Work beyond the budget leaves gaps unmatched.
    """
    matched: list[tuple[int, int]] = []  # (i, j) of single matching elements
    ranges = [(0, len(a), 0, len(b))]
    while ranges:
        alo, ahi, blo, bhi = ranges.pop()
        while alo < ahi and blo < bhi and a[alo] == b[blo]:
            matched.append((alo, blo))
            alo, blo = alo + 1, blo + 1
        while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:
            ahi, bhi = ahi - 1, bhi - 1
            matched.append((ahi, bhi))
        n, m = ahi - alo, bhi - blo
        if not n or not m:
            continue
        if n * m <= _EXACT_LIMIT:
            if budget.take(n * m):
                matcher = SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
                for i, j, size in matcher.get_matching_blocks():
                    matched.extend((alo + i + k, blo + j + k) for k in range(size))
            continue
        if not budget.take(n + m):
            continue
        anchors = _anchors(a, alo, ahi, b, blo, bhi)
        if not anchors:
            if n * m <= _EXACT_FALLBACK and budget.take(n * m):
                matcher = SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
                for i, j, size in matcher.get_matching_blocks():
                    matched.extend((alo + i + k, blo + j + k) for k in range(size))
            else:
                budget.exhausted = True  # a long gap with nothing to hold on to: shown whole
            continue
        matched.extend(anchors)
        edges = [(alo - 1, blo - 1), *anchors, (ahi, bhi)]
        for (i1, j1), (i2, j2) in pairwise(edges):
            if i2 - i1 > 1 or j2 - j1 > 1:
                ranges.append((i1 + 1, i2, j1 + 1, j2))
    matched.sort()
    blocks: list[tuple[int, int, int]] = []
    for i, j in matched:
        if blocks and blocks[-1][0] + blocks[-1][2] == i and blocks[-1][1] + blocks[-1][2] == j:
            blocks[-1] = (blocks[-1][0], blocks[-1][1], blocks[-1][2] + 1)
        else:
            blocks.append((i, j, 1))
    return blocks


def _anchors(
    a: Sequence[Hashable], alo: int, ahi: int, b: Sequence[Hashable], blo: int, bhi: int
) -> list[tuple[int, int]]:
    """The longest in-order chain of pairs of elements unique (else rare) on both sides."""
    where_a: dict[Hashable, list[int]] = defaultdict(list)
    for i in range(alo, ahi):
        where_a[a[i]].append(i)
    where_b: dict[Hashable, list[int]] = defaultdict(list)
    for j in range(blo, bhi):
        where_b[b[j]].append(j)
    for limit in (1, _RARE):
        pairs = [
            (j, i)
            for item, js in where_b.items()
            if len(js) <= limit and 0 < len(where_a.get(item, ())) <= limit
            for j in js
            for i in where_a[item]
        ]
        if pairs:
            pairs.sort(key=lambda ji: (ji[0], -ji[1]))  # one pair per j can join the chain
            chain = _increasing_chain([i for _, i in pairs])
            return [(pairs[k][1], pairs[k][0]) for k in chain]
    return []


def _increasing_chain(values: list[int]) -> list[int]:
    """Positions of a longest strictly increasing subsequence of ``values``, in order."""
    tails: list[int] = []
    tail_at: list[int] = []
    previous = [-1] * len(values)
    for position, value in enumerate(values):
        length = bisect_left(tails, value)
        if length == len(tails):
            tails.append(value)
            tail_at.append(position)
        else:
            tails[length] = value
            tail_at[length] = position
        previous[position] = tail_at[length - 1] if length else -1
    chain: list[int] = []
    position = tail_at[-1] if tail_at else -1
    while position != -1:
        chain.append(position)
        position = previous[position]
    return chain[::-1]


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
