"""HTML blocks and tags cut out of raw markup without parsing it, in linear time (pure, no I/O).

Block detection counts the words a page shows and the page fingerprint leaves out what cannot
change the extracted text; both run on every fetched page before anything is parsed. Written as
regular expressions (``<(script|style)\\b.*?</\\1\\s*>|<[^>]*>``) they took time quadratic in a
hostile page: each unclosed ``<script>`` or ``<!--`` made the engine scan to the end of the page
again (40 KB of ``<script>`` took 3 to 6 s; a 5 MB body would have held a check for hours).

Tags: pages whose every block opening has its closing mark after it (every real page: a cheap
test on the last opening of each kind) still go through the expression, which is fast there.
Others take a scanner that remembers each search for a closing mark that failed, since a later
search from further on cannot succeed either: every character is scanned a bounded number of
times, and what is cut is exactly what the expression cuts. Hidden blocks (the fingerprint's)
are found from their openings alone, with the same memory of what failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["body_start", "strip_hidden_blocks", "strip_tags", "whole_blocks"]

# the expressions, unrolled: blocks skipped a run of non-"<" at a time (same matches)
_TAGS = re.compile(
    r"<(script|style|noscript)\b[^<]*(?:<(?!/\1\s*>)[^<]*)*</\1\s*>|<[^>]*>", re.I | re.S
)
LOOSE_OPENINGS = 64
"""How many "<" after the last ">" (each scanned to the end by ``<[^>]*>``) a page may hold and
still go through the expression."""

_TEXT_BLOCK = re.compile(r"<(script|style|noscript)\b", re.IGNORECASE)
_TEXT_CLOSE = {
    name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style", "noscript")
}
_RAW_CLOSE: dict[object, re.Pattern[bytes]] = {  # searched in lowered markup
    name: re.compile(rb"</" + name + rb"\s*>")
    for name in (b"script", b"style", b"noscript", b"template")
}


class _Search:
    """``pattern.search(text, start)`` for increasing starts, remembering a search that failed."""

    def __init__(self) -> None:
        self.failed_from: dict[object, int] = {}

    def end(self, key: object, pattern: re.Pattern[Any], text: Any, start: int) -> int:
        """End of the first match of ``pattern`` at or after ``start``, or -1."""
        if start >= self.failed_from.get(key, len(text) + 1):
            return -1
        match = pattern.search(text, start)
        if match is None:
            self.failed_from[key] = start
            return -1
        return match.end()


_GT_TEXT = re.compile(">")


def _closed(
    lowered: Any, openings: Mapping[Any, Any], closings: Mapping[Any, re.Pattern[Any]]
) -> bool:
    """Whether the last opening of each kind (a prefix, so also "<scriptx": a false alarm at
    worst) has its closing mark after it, and so every earlier one too."""
    for name, opening in openings.items():
        last = lowered.rfind(opening)
        if last != -1 and closings[name].search(lowered, last) is None:
            return False
    return True


_TEXT_OPENINGS = {name: "<" + name for name in _TEXT_CLOSE}
_TEXT_OPENINGS_RAW: dict[object, bytes] = {
    name: opening.encode() for name, opening in _TEXT_OPENINGS.items()
}
_TEXT_CLOSE_RAW: dict[object, re.Pattern[bytes]] = {
    name: _RAW_CLOSE[name.encode()] for name in _TEXT_CLOSE
}


def _ascii_lower(text: str) -> bytes:
    """``text`` as UTF-8 with A-Z lowered: what ``_closed`` needs of it (the marks it looks
    for are ASCII). ``str.lower`` goes through the Unicode tables once a page holds one
    character outside ASCII (a curly quote): 4 ns a character, ten times this."""
    return text.encode("utf-8", "surrogatepass").lower()


def strip_tags(text: str) -> str:
    """Script, style and noscript blocks and every tag replaced by a space: what
    ``re.sub(r"<(script|style|noscript)\\b.*?</\\1\\s*>|<[^>]*>", " ", text, flags=re.I | re.S)``
    gives."""
    if text.count("<", text.rfind(">") + 1) <= LOOSE_OPENINGS and _closed(
        _ascii_lower(text), _TEXT_OPENINGS_RAW, _TEXT_CLOSE_RAW
    ):
        return _TAGS.sub(" ", text)
    searches = _Search()
    parts: list[str] = []
    emit = start = 0
    while (lt := text.find("<", start)) != -1:
        end = -1
        block = _TEXT_BLOCK.match(text, lt)
        if block is not None:
            name = block.group(1).lower()
            end = searches.end(name, _TEXT_CLOSE[name], text, block.end())
        if end == -1:  # an ordinary tag: up to the first ">"
            end = searches.end(">", _GT_TEXT, text, lt + 1)
        if end == -1:
            start = lt + 1
            continue
        parts += (text[emit:lt], " ")
        emit = start = end
    parts.append(text[emit:])
    return "".join(parts)


_HIDDEN_OPENING = re.compile(rb"<(?:(script|style|noscript|template)\b|!--)")


def strip_hidden_blocks(raw: bytes) -> bytes:
    """The blocks a reader never sees, and comments, cut out: what
    ``re.sub(rb"<(script|style|noscript|template)\\b[^>]*>.*?</\\1\\s*>|<!--.*?-->", b"", raw,
    flags=re.I | re.S)`` gives.

    The openings are found on the lowered page by an expression without alternatives after
    them, and each block's end by a search of its own: the expression above, unrolled, tried
    its alternatives at every "<" of the page (0.3 ms of a 100 KB page's 0.7 ms fingerprint). A
    kind of block found unclosed once is given up at its later openings without a search: none
    of them can be closed either.
    """
    lowered = raw.lower()  # A-Z only: every position is raw's
    unclosed: set[bytes | None] = set()  # the names (None: comments) closed nowhere further on
    parts: list[bytes] = []
    emit = start = 0
    while (opening := _HIDDEN_OPENING.search(lowered, start)) is not None:
        at, name = opening.start(), opening.group(1)
        end = -1 if name in unclosed else _hidden_block_end(lowered, name, opening.end())
        if end == -1:
            unclosed.add(name)
            start = at + 1
            continue
        parts.append(raw[emit:at])
        emit = start = end
    parts.append(raw[emit:])
    return b"".join(parts)


def _hidden_block_end(lowered: bytes, name: bytes | None, after: int) -> int:
    """The end of the block ``name`` (None: a comment) whose opening ends at ``after``; -1 when
    it is never closed (no "-->", or no ">" or closing tag after it)."""
    if name is None:
        end = lowered.find(b"-->", after)
        return -1 if end == -1 else end + 3
    opened = lowered.find(b">", after)
    if opened == -1:
        return -1
    closing = _RAW_CLOSE[name].search(lowered, opened + 1)
    return -1 if closing is None else closing.end()


_BODY_TAG = re.compile(r"<body\b", re.IGNORECASE)


def body_start(text: str) -> int:
    """Where a page's body begins (just after its ``<body>`` tag); 0 when it has none, or when
    the one found may be inside a script, style or noscript block of the head."""
    found = _BODY_TAG.search(text)
    if found is None:
        return 0
    end = text.find(">", found.end())
    head = _ascii_lower(text[: found.start()])
    if end == -1 or not _closed(head, _TEXT_OPENINGS_RAW, _TEXT_CLOSE_RAW):
        return 0
    return end + 1


def whole_blocks(text: str, start: int, size: int) -> str:
    """``text[start:start + size]``, cut before a script, style or noscript block or a tag
    that it would cut in two: stripped, the part holds only words a reader sees."""
    part = text[start : start + size]
    if start + size >= len(text):
        return part
    lowered = _ascii_lower(part)
    end = len(lowered)
    kinds = dict(_TEXT_OPENINGS_RAW)
    cut = True
    while cut:  # a cut can leave an earlier tag or block open: look again
        cut = False
        lt = lowered.find(b"<", lowered.rfind(b">", 0, end) + 1, end)  # no ">" after it
        if lt != -1:
            end, cut = lt, True
        for name, opening in list(kinds.items()):
            last = lowered.rfind(opening, 0, end)
            if last == -1:
                del kinds[name]  # none before a later end either
            elif _TEXT_CLOSE_RAW[name].search(lowered, last, end) is None:
                end, cut = last, True
    if end == len(lowered):
        return part
    if part.isascii():
        return part[:end]
    return part.encode("utf-8", "surrogatepass")[:end].decode("utf-8", "surrogatepass")
