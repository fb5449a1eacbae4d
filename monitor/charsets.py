"""Bytes to text: the one place that decides a page's charset and decodes it (pure, no I/O).

The fetcher records the charset it found; the extractor decodes the stored bytes with it. Both
call :func:`decode`, so a page reads the same wherever it is decoded.

The charset comes from a byte-order mark, else the Content-Type header, else (for HTML and XML)
``<meta charset>`` / ``<meta http-equiv>`` or an XML declaration, else it is detected (UTF-8 if
the bytes are valid UTF-8, otherwise windows-1252). As browsers do (WHATWG Encoding Standard),
ISO-8859-1 and US-ASCII labels decode as windows-1252: servers that say ``ISO-8859-1`` mostly
serve windows-1252, where bytes 0x80-0x9F are curly quotes and dashes, not control characters.
Bytes invalid in the charset become U+FFFD (stable from one fetch to the next).
"""

from __future__ import annotations

import codecs
import re

__all__ = ["codec_for", "decode", "detect_charset"]

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
_DECODE_AS = {"iso8859-1": "cp1252", "ascii": "cp1252", "latin-1": "cp1252"}
"""How browsers decode these labels (Python's canonical codec names)."""


def _known(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    try:
        codecs.lookup(label)
    except LookupError:
        return None
    return label


def _impossible_wide(charset: str, content: bytes) -> bool:
    """A UTF-16/32 label on a body with no NUL byte: ASCII-compatible bytes, a false label.

    UTF-16 writes every ASCII character (all of HTML's markup) with a NUL byte; a page without
    one is not UTF-16, and decoding it as such turns it into a run of CJK characters.
    """
    return codecs.lookup(charset).name.startswith(("utf-16", "utf-32")) and (
        b"\0" not in content[:4096]
    )


def detect_charset(
    content: bytes, media_type: str = "text/html", header_charset: str | None = None
) -> str | None:
    """The charset of ``content``: BOM, header, <meta>/XML declaration, else detected.

    Returns None only for an empty body. Unknown labels are ignored, and so is a UTF-16 or UTF-32
    label on a body without a BOM or a NUL byte (a misconfigured server: see _impossible_wide).
    """
    for bom, name in _BOMS:
        if content.startswith(bom):
            return name
    declared = _known(header_charset)
    if declared and not _impossible_wide(declared, content):
        return declared
    if "html" in media_type or "xml" in media_type:
        head = content[:4096]
        for pattern in (_XML_ENCODING, _META_CHARSET):
            match = pattern.search(head)
            if match and (found := _known(match.group(1).decode("ascii", "replace"))):
                # A page that says UTF-16 in ASCII-compatible bytes is not UTF-16.
                return "utf-8" if found.startswith("utf-16") else found
    if not content:
        return None
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return "windows-1252"
    return "utf-8"


def codec_for(charset: str | None) -> str:
    """The Python codec that decodes ``charset`` as a browser would (UTF-8 when unknown)."""
    if not charset:
        return "utf-8"
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return "utf-8"
    if name == "utf-8":
        return "utf-8-sig"  # drop a BOM
    return _DECODE_AS.get(name, name)


def decode(content: bytes, charset: str | None = None, *, media_type: str = "text/html") -> str:
    """``content`` as text: ``charset`` if given (a BOM still wins), else detected."""
    found = detect_charset(content, media_type, charset)
    codec = codec_for(found)
    for bom, name in _BOMS:
        if found == name and content.startswith(bom):
            content = content[len(bom) :]
            break
    return content.decode(codec, errors="replace")
