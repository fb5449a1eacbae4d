"""Content-Encoding decoding with a bounded output, and telling text bodies from binary ones.

Pure functions on bytes: ``monitor.fetcher`` feeds them what comes off the wire.

``BodyDecoder`` undoes ``Content-Encoding`` layers (``gzip``, ``x-gzip``, ``deflate``, in any
stack such as ``gzip, gzip``) one bounded piece at a time, and counts every byte each layer
produces as it is produced: a 2 KB response that unfolds to gigabytes stops at the cap having used
a few hundred kilobytes, never materialising the whole layer. httpx's own decoders inflate one
network chunk at once, so a stacked bomb could allocate gigabytes before any cap saw them.

``not_text_reason`` says why a decoded body is not a text document (a PNG or gzip blob served as
``text/html``; a body of control characters), or None for text.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

from monitor.errors import FetchError

__all__ = [
    "MAX_LAYERS",
    "PIECE",
    "BodyDecoder",
    "BodyTooLarge",
    "content_codings",
    "not_text_reason",
]

PIECE = 64 * 1024  # the most any layer inflates in one step
MAX_LAYERS = 3  # nobody serves more; each layer costs a zlib state
_GZIP = ("gzip", "x-gzip")
SUPPORTED = frozenset({*_GZIP, "deflate"})


class BodyTooLarge(Exception):
    """Internal: a decoded (or raw) body passed the cap."""


def content_codings(header: str | None) -> list[str]:
    """The Content-Encoding layers in the order they were applied (``identity`` dropped).

    Raises FetchError (without a URL: the caller prefixes it) for a coding we do not decode.
    """
    codings = [c.strip().lower() for c in (header or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for coding in codings:
        if coding not in SUPPORTED:
            raise FetchError(
                f"unsupported Content-Encoding {coding} (we ask for gzip or deflate only)"
            )
    if len(codings) > MAX_LAYERS:
        raise FetchError(
            f"Content-Encoding stacks {len(codings)} layers ({', '.join(codings)}); "
            f"at most {MAX_LAYERS} are decoded"
        )
    return codings


class _Layer:
    """One zlib layer: gzip (several members allowed) or deflate (zlib-wrapped or raw)."""

    def __init__(self, coding: str) -> None:
        self.coding = "gzip" if coding in _GZIP else "deflate"
        self._first = True
        self._obj = self._new()

    def _new(self, *, raw: bool = False) -> zlib._Decompress:
        if self.coding == "gzip":
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        return zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Inflate ``data``, yielding pieces of at most PIECE bytes."""
        while data:
            try:
                piece = self._obj.decompress(data, PIECE)
            except zlib.error as exc:
                if self.coding == "deflate" and self._first:
                    # servers send raw deflate for "deflate" as often as zlib's: try that once
                    self._first = False
                    self._obj = self._new(raw=True)
                    continue
                raise FetchError(f"cannot decode the {self.coding} body ({exc})") from exc
            self._first = False
            data = self._obj.unconsumed_tail
            if self._obj.eof and self._obj.unused_data:
                rest = self._obj.unused_data
                if self.coding == "gzip" and rest.strip(b"\0"):
                    self._obj = self._new()  # another gzip member follows
                    data = rest
                else:
                    data = b""  # trailing garbage after the stream: ignore, as browsers do
            if piece:
                yield piece

    def flush(self) -> Iterator[bytes]:
        rest = self._obj.flush()
        for start in range(0, len(rest), PIECE):
            yield rest[start : start + PIECE]


class BodyDecoder:
    """Undoes ``codings`` (as applied, outermost last) with every layer's output capped."""

    def __init__(self, codings: list[str], *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # decoding runs from the last coding applied to the first
        self._layers = [_Layer(c) for c in reversed(codings)]
        self._produced = [0] * len(self._layers)
        # an intermediate layer holds compressed data, smaller than what it decodes to; the slack
        # covers incompressible data, which deflate grows by a few bytes per block
        self._layer_cap = max_bytes + max_bytes // 100 + 1024
        self.raw_bytes = 0
        self.size = 0
        self._chunks: list[bytes] = []

    def feed(self, raw: bytes) -> None:
        """Take bytes off the wire; raises BodyTooLarge past the cap."""
        self.raw_bytes += len(raw)
        if self._layers and self.raw_bytes > self._layer_cap:
            raise BodyTooLarge
        self._push(0, raw)

    def finish(self) -> bytes:
        """Flush every layer; the whole decoded body."""
        for index, layer in enumerate(self._layers):
            for piece in layer.flush():
                self._push(index + 1, piece, counted=index)
        return b"".join(self._chunks)

    def _push(self, index: int, data: bytes, *, counted: int | None = None) -> None:
        if counted is not None:
            self._count(counted, len(data))
        if index == len(self._layers):
            self.size += len(data)
            if self.size > self.max_bytes:
                raise BodyTooLarge
            self._chunks.append(data)
            return
        for piece in self._layers[index].feed(data):
            self._count(index, len(piece))
            self._push(index + 1, piece)

    def _count(self, index: int, size: int) -> None:
        self._produced[index] += size
        if self._produced[index] > self._layer_cap:
            raise BodyTooLarge


# -- text or binary --------------------------------------------------------------------------

# Magic numbers of formats that are never a terms page, whatever the Content-Type says.
_SIGNATURES = (
    (b"\x1f\x8b", "a gzip file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF-", "a PDF file"),
    (b"\x28\xb5\x2f\xfd", "a zstd stream"),
    (b"\xfd7zXZ\x00", "an xz file"),
    (b"wOFF", "a web font"),
    (b"wOF2", "a web font"),
)
# C0 controls other than tab, newline, form feed and carriage return; DEL; C1 controls.
# (Undecodable bytes, U+FFFD, are the fetcher's separate "not valid <charset>" check.)
_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_ASCII_CONTROLS = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
_C1_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")
"""A C1 control in UTF-8: U+0080-U+009F are the only characters encoded as C2 80-9F."""
NOT_TEXT_SHARE = 0.02
NOT_TEXT_MIN = 16
_SAMPLE = 65_536


def count_controls(text: str) -> int:
    """How many characters of ``text`` match ``_CONTROLS``, counted on its UTF-8 bytes: deleting
    bytes and searching for C2 costs a fraction of a regex scan of every character."""
    data = text.encode("utf-8", "surrogatepass")
    count = len(data) - len(data.translate(None, _ASCII_CONTROLS))
    if b"\xc2" in data:
        count += len(_C1_UTF8.findall(data))
    return count


def not_text_reason(content: bytes, text: str) -> str | None:
    """Why a body is not a text document, or None.

    ``content`` is the decoded body, ``text`` the same decoded with its charset. A known binary
    signature (gzip, PNG, PDF...) at the start is enough; otherwise the body is binary when more
    than 2% of its characters (and at least 16) are control characters, which no page of prose
    has: a stray control in a footer is tolerated.
    """
    head = content[:16]
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return f"body is not text: it is {name}"
    sample = text[:_SAMPLE]
    if not sample:
        return None
    controls = count_controls(sample)
    if controls >= NOT_TEXT_MIN and controls > NOT_TEXT_SHARE * len(sample):
        share = 100 * controls / len(sample)
        return f"body is not text: {share:.0f}% control characters"
    return None
