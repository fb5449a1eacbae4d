"""Untrusted page text made safe to show: the one definition of the characters that must not reach
a terminal, a mail header or a one-line summary (pure, no I/O).

Page text can hold escape sequences (ESC, CSI) that drive a terminal, bidi overrides that make
text display reordered, invisible characters, and line breaks that would split a header.
"""

from __future__ import annotations

import re

__all__ = ["UNSAFE_CHARS", "neutralise", "one_line"]

UNSAFE_CHARS = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
"""C0 and C1 controls (all but tab and newline), zero-width characters and direction marks, line
and paragraph separators, bidi embeddings, overrides and isolates."""


def neutralise(text: str, replacement: str = "\ufffd") -> str:
    """``text`` with every unsafe character replaced (U+FFFD: visible, so nothing hides); tabs and
    newlines are kept."""
    return UNSAFE_CHARS.sub(replacement, text)


def one_line(text: str, *, limit: int | None = None) -> str:
    """One line of plain text: unsafe characters and line breaks become spaces, runs of
    whitespace one space; cut at ``limit`` characters with an ellipsis."""
    squeezed = " ".join(UNSAFE_CHARS.sub(" ", text).split())
    if limit is not None and len(squeezed) > limit:
        squeezed = squeezed[: limit - 1].rstrip() + "…"
    return squeezed
