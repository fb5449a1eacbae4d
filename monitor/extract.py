"""Extract: HTML, Markdown or plain text → ordered clauses with section paths and normalised text.

A *clause* is a paragraph-sized block (``p``, ``li``, ``td``, ``blockquote``, ``dd``, or a run of
text inside a ``div``) together with the stack of headings above it. Headings are ``h1``…``h6``
(or ``#`` / setext headings in Markdown) plus *pseudo-headings*: short paragraphs that are entirely
bold, the way Meta writes "**1. The Instagram Service**".

Only text survives: markup, attributes, link targets, scripts, styles, forms, navigation, cookie
banners and hidden elements are dropped, so per-request tokens (nonces, CSRF inputs, ``data-*`` ids,
tracking parameters) never change the result. Text is normalised by ``normalise_text``.

The canonical text of a clause list is Markdown (``clauses_to_text``): each section heading once, as
``#`` × depth, then the clauses as paragraphs separated by blank lines, with Markdown syntax in the
text escaped. It parses back to the same clauses::

    extract_clauses(clauses_to_text(c), media_type="text/markdown") == c

Selectors: ``select`` and ``remove`` take CSS selectors; an item may also be an Open Terms Archive
range, a mapping with ``startBefore`` or ``startAfter`` and ``endBefore`` or ``endAfter`` (each a
CSS selector, first match in document order). ``remove`` applies before ``select``.

HTML is parsed with lxml directly and walked once in C-driven document order; CSS selectors are
compiled to XPath once and cached. This module does no I/O.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from cssselect import HTMLTranslator
from lxml import etree

from monitor.charsets import decode
from monitor.clauses import Clause
from monitor.errors import ExtractError

Selector = str | Mapping[str, str]
"""A CSS selector, or an Open Terms Archive range ``{"startBefore": css, "endAfter": css}``."""

__all__ = ["Extraction", "Selector", "clauses_to_text", "extract_clauses", "normalise_text"]

_MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown", "text/md"})
_TEXT_TYPES = frozenset({"text/plain"})

# --------------------------------------------------------------------------------------------
# Text normalisation
# --------------------------------------------------------------------------------------------

_EXPLICIT: dict[int, str | None] = {}
for _cp in (0x2018, 0x2019, 0x201A, 0x201B, 0x02BC, 0xFF07):
    _EXPLICIT[_cp] = "'"
for _cp in (0x201C, 0x201D, 0x201E, 0x201F, 0xFF02):
    _EXPLICIT[_cp] = '"'
for _cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE58, 0xFE63, 0xFF0D):
    _EXPLICIT[_cp] = "-"
for _cp in (0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, *range(0x2000, 0x200B)):
    _EXPLICIT[_cp] = " "
_EXPLICIT[0xAD] = None  # soft hyphen
_EXPLICIT[0x034F] = None  # combining grapheme joiner
_EXPLICIT[0x180E] = None  # Mongolian vowel separator
_SAFE_DECOMPOSITIONS = frozenset(
    {"<compat>", "<wide>", "<narrow>", "<font>", "<noBreak>", "<small>"}
    | {"<isolated>", "<initial>", "<medial>", "<final>", "<vertical>"}
)


class _CharTable(dict[int, Any]):
    """A ``str.translate`` table filled lazily: each character is decided once, then cached."""

    def __missing__(self, cp: int) -> Any:
        value = self._decide(cp)
        self[cp] = value
        return value

    def _decide(self, cp: int) -> str | None:
        if cp in _EXPLICIT:
            return _EXPLICIT[cp]
        ch = chr(cp)
        if 0xE000 <= cp <= 0xF8FF:  # private use: icon-font glyphs, never legal text
            return None
        category = unicodedata.category(ch)
        if category == "Cf":  # zero-width spaces and joiners, BOM, bidi marks, word joiner
            return None
        if category == "Cc":
            return " "
        decomposition = unicodedata.decomposition(ch)
        if decomposition.startswith("<") and decomposition.split(" ", 1)[0] in _SAFE_DECOMPOSITIONS:
            # ligatures, full-width forms, ellipsis...; not superscripts, fractions or circled
            return "".join(self[ord(c)] or "" for c in unicodedata.normalize("NFKC", ch))
        return ch


_TABLE = _CharTable()
_SPECIAL_CHAR = re.compile(r"[^\x20-\x7e]")
"""A character ``normalise_text`` looks up in ``_TABLE`` (printable ASCII is left alone)."""
_TRAILING_ANCHOR = re.compile(r"(?:^|\s)[#¶]+$")


def normalise_text(text: str) -> str:
    """One line of comparable text: Unicode cleaned up, whitespace collapsed.

    Removes zero-width characters, soft hyphens, BOM, bidi marks and icon glyphs; turns every
    space-like character (NBSP too) and every control character (C0 such as ESC and BEL, DEL,
    C1: page text must not drive a terminal or hide in an email) into a space, curly quotes into
    straight ones and dashes into "-"; applies NFKC only where it is safe (ligatures, full-width
    forms), then NFC; collapses whitespace; strips a trailing "#" or "¶" permalink anchor.
    Idempotent.
    """
    if not text.isascii() or not text.isprintable():
        # few distinct characters need work: str.replace on each beats translate per character
        for ch in set(_SPECIAL_CHAR.findall(text)):
            replacement = _TABLE[ord(ch)]
            if replacement != ch:
                text = text.replace(ch, replacement or "")
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
    # every whitespace character is now a plain space (_TABLE maps them all to one): collapsing
    # runs is only needed where two meet, else stripping the ends is the same as split and join
    if "  " in text:
        text = " ".join(text.split())
    elif text[:1] == " " or text[-1:] == " ":
        text = text.strip(" ")
    if text.endswith(("#", "¶")):
        text = _TRAILING_ANCHOR.sub("", text).rstrip()
    return text


_HEADING_TAIL = re.compile(r"[,;]$")


def _looks_like_heading(text: str) -> bool:
    """Whether a bold-only paragraph is short enough to act as a section heading."""
    if not 2 <= len(text) <= 150 or _HEADING_TAIL.search(text):
        return False
    words = text.count(" ") + 1
    if words > 20:
        return False
    if text[-1] in ".!?" and words > 8:
        return False
    return any(c.isalpha() for c in text)


# --------------------------------------------------------------------------------------------
# Clause building (shared by the HTML, Markdown and plain-text readers)
# --------------------------------------------------------------------------------------------


class _Builder:
    """Collects clauses and keeps the heading stack as (level, title, pseudo) entries."""

    __slots__ = ("clauses", "section", "stack")

    def __init__(self) -> None:
        self.clauses: list[Clause] = []
        self.stack: list[tuple[int, str, bool]] = []
        self.section: tuple[str, ...] = ()

    def heading(self, level: int, title: str) -> None:
        if not title:
            return
        stack = self.stack
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title, False))
        self.section = tuple(entry[1] for entry in stack)

    def pseudo_heading(self, title: str) -> None:
        stack = self.stack
        level = 1
        for entry in reversed(stack):
            if not entry[2]:
                level = entry[0] + 1
                break
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title, True))
        self.section = tuple(entry[1] for entry in stack)

    def paragraph(self, text: str, *, bold_only: bool = False) -> None:
        """Add a normalised paragraph; a short bold-only one becomes a pseudo-heading."""
        if not text:
            return
        if bold_only and _looks_like_heading(text):
            self.pseudo_heading(text)
        else:
            self.clauses.append(Clause(self.section, text))


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_DROP_TAGS = frozenset(
    [
        "head",
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "iframe",
        "object",
        "embed",
        "canvas",
        "video",
        "audio",
        "img",
        "picture",
        "source",
        "track",
        "map",
        "area",
        "input",
        "button",
        "select",
        "textarea",
        "option",
        "optgroup",
        "datalist",
        "meter",
        "progress",
    ]
)
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hgroup",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
_BOLD_TAGS = frozenset({"b", "strong"})

_CHROME_TAGS = ("nav", "form", "dialog", "header", "footer")
_FLAG_ATTRS_XPATH = etree.XPath("//@role|//@hidden|//@aria-hidden|//@style")
_CHROME_ROLES = frozenset(
    [
        "navigation",
        "banner",
        "contentinfo",
        "dialog",
        "alertdialog",
        "search",
        "menubar",
        "toolbar",
        "tooltip",
    ]
)
_HIDDEN_STYLE = re.compile(r"(?:display\s*:\s*none|visibility\s*:\s*hidden)", re.IGNORECASE)
_BANNER_WORDS = ("cookie", "Cookie", "COOKIE", "consent", "Consent", "CONSENT", "gdpr", "GDPR")
_ANCHOR_LABELS = frozenset({"", "#", "¶", "§", "🔗"})
_BANNER_TOKEN = re.compile(
    r"consent|gdpr|onetrust|cookiebot|didomi|usercentrics|truste|"
    r"cookie.*(banner|notice|bar|popup|pop-up|modal|dialog|overlay|alert|message|wall|law|notif)|"
    r"(banner|notice|bar|popup|modal|dialog|overlay|alert|message|wall|law|notif).*cookie",
    re.IGNORECASE,
)
_NEVER_BANNERS = frozenset({"html", "body", "main", "article"})
_SKIP_LINK_TEXT = re.compile(r"^\s*(skip|jump)\s+to\b|^\s*back\s+to\s+top\s*$", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*>")


@lru_cache(maxsize=1024)
def _compile_css(css: str) -> etree.XPath:
    try:
        return etree.XPath(HTMLTranslator().css_to_xpath(css))
    except Exception as exc:  # cssselect raises SelectorSyntaxError, ExpressionError
        raise ExtractError(f"invalid CSS selector {css!r}: {exc}") from None


def selector_problem(css: str) -> str | None:
    """Why ``css`` is not a selector the extractor can use (for the config's checks), or None."""
    try:
        _compile_css(css)
    except ExtractError as exc:
        return str(exc)
    return None


_CLASS_ATTRS_XPATH = etree.XPath("//@class")
_SIMPLE_CLASS = re.compile(r"^\s*\.(-?[_a-zA-Z][\w-]*)\s*$")


def _matching(root: etree._Element, selectors: Sequence[str]) -> list[etree._Element]:
    """Elements matching any of the CSS selectors (bare ".class" selectors share one scan)."""
    classes = set()
    found: list[etree._Element] = []
    for css in selectors:
        simple = _SIMPLE_CLASS.match(css)
        if simple:
            classes.add(simple.group(1))
        else:
            found.extend(_compile_css(css)(root))
    if classes:
        # one scan of class attributes with a Python token test beats XPath string functions
        found.extend(
            attribute.getparent()
            for attribute in _CLASS_ATTRS_XPATH(root)
            if not classes.isdisjoint(attribute.split())
        )
    return found


@lru_cache(maxsize=256)
def _compile_xpath(xpath: str) -> etree.XPath:
    return etree.XPath(xpath)


def _first(root: etree._Element, css: str) -> etree._Element | None:
    found = _compile_css(css)(root)
    return found[0] if found else None


_RANGE_KEYS = frozenset({"startBefore", "startAfter", "endBefore", "endAfter"})


def _range_anchors(
    root: etree._Element, selector: Mapping[str, str]
) -> tuple[tuple[str, etree._Element], tuple[str, etree._Element] | None] | None:
    """(("before"|"after", start element), end or None) for an OTA range; None if it misses."""
    unknown = set(selector) - _RANGE_KEYS
    starts = [k for k in ("startBefore", "startAfter") if k in selector]
    ends = [k for k in ("endBefore", "endAfter") if k in selector]
    if unknown or len(starts) != 1 or len(ends) > 1:
        raise ExtractError(
            f"a range selector needs one of startBefore/startAfter and at most one of "
            f"endBefore/endAfter, got {sorted(selector)}"
        )
    start = _first(root, selector[starts[0]])
    if start is None:
        return None
    end: tuple[str, etree._Element] | None = None
    if ends:
        end_el = _first(root, selector[ends[0]])
        if end_el is None:
            return None
        end = ("before" if ends[0] == "endBefore" else "after", end_el)
    return ("before" if starts[0] == "startBefore" else "after", start), end


class _Gates:
    """What switches text on and off during the walk: selected elements, ranges, removals."""

    __slots__ = ("on_end", "on_start", "removed")

    def __init__(self) -> None:
        self.on_start: dict[etree._Element, list[tuple[str, int]]] = {}
        self.on_end: dict[etree._Element, list[tuple[str, int]]] = {}
        self.removed: set[etree._Element] = set()

    def add(self, when: str, element: etree._Element, counter: str, delta: int) -> None:
        table = self.on_start if when == "before" else self.on_end
        table.setdefault(element, []).append((counter, delta))


def _parse_html(text: str) -> etree._Element:
    text = _XML_DECLARATION.sub("", text, count=1)
    if not text.strip():
        raise ExtractError("the page is empty")
    # huge_tree lifts libxml2's nesting limit from 256 to 2048 levels; past any limit libxml2
    # stops reading and returns the tree so far, so a limit error fails the extraction instead
    # of silently dropping the rest of the page.
    parser = etree.HTMLParser(
        remove_comments=True, remove_pis=True, default_doctype=False, huge_tree=True
    )
    try:
        root = etree.fromstring(text, parser)
    except etree.LxmlError as exc:
        raise ExtractError(f"the page is not readable HTML: {exc}") from None
    for error in parser.error_log:
        if error.type_name == "ERR_RESOURCE_LIMIT" or "Excessive depth" in error.message:
            raise ExtractError(
                f"the page cannot be read past line {error.line}: {error.message.strip()} "
                "(the rest of its text would be lost)"
            )
    if root is None:
        raise ExtractError("the page is empty")
    return root


_ID_AND_CLASS_XPATH = etree.XPath("//@id | //@class", smart_strings=False)


def _banner_words(root: etree._Element) -> list[str]:
    """The cookie-banner words that occur inside an id or class attribute of the page."""
    values = " ".join(_ID_AND_CLASS_XPATH(root))
    return [word for word in _BANNER_WORDS if word in values]


def _noise(
    root: etree._Element, aria_hidden: set[etree._Element] | None = None
) -> set[etree._Element]:
    """Page chrome: navigation, forms, dialogs, hidden elements, cookie banners, skip links.

    A few cheap XPath scans over tags and attribute nodes, then Python checks on the handful of
    hits: XPath predicates on every element would cost more than parsing the page. Elements hidden
    only from screen readers (``aria-hidden="true"``) are also collected in ``aria_hidden``.
    """
    noise: set[etree._Element] = set()
    for element in root.iter(*_CHROME_TAGS):  # one walk in C; XPath's union makes five
        if element.tag in ("header", "footer") and any(
            a.tag in ("main", "article") or a.get("role") == "main" for a in element.iterancestors()
        ):
            continue  # an article's own header (its title) or footer (its date) is content
        noise.add(element)
    for attribute in _FLAG_ATTRS_XPATH(root):
        name = attribute.attrname
        if (
            (name == "role" and attribute.strip().lower() in _CHROME_ROLES)
            or name == "hidden"
            or (name == "style" and _HIDDEN_STYLE.search(attribute))
        ):
            noise.add(attribute.getparent())
        elif name == "aria-hidden" and attribute.strip().lower() == "true":
            noise.add(attribute.getparent())
            if aria_hidden is not None:
                aria_hidden.add(attribute.getparent())
    words = _banner_words(root)
    if words:
        tests = " or ".join(f"contains(., '{word}')" for word in words)
        for attribute in _compile_xpath(f"//@id[{tests}] | //@class[{tests}]")(root):
            element = attribute.getparent()
            if element.tag in _NEVER_BANNERS or element.get("role") == "main":
                continue
            if _BANNER_TOKEN.search(attribute):
                noise.add(element)
    for link in root.iter("a"):
        if not (link.get("href") or "").startswith("#"):
            continue
        label = "".join(link.itertext())  # its string value, without an XPath evaluation
        if label.strip() in _ANCHOR_LABELS or _SKIP_LINK_TEXT.search(label):
            noise.add(link)  # "skip to content", or a heading's "#" permalink
    return noise


def _range_gates(
    root: etree._Element, gates: _Gates, item: Mapping[str, str], counter: str
) -> list[etree._Element]:
    """Switch ``counter`` on where an OTA range starts and off where it ends; its anchors (none
    when its start is not on the page)."""
    anchors = _range_anchors(root, item)
    if anchors is None:
        return []
    (when, start), end = anchors
    gates.add(when, start, counter, 1)
    if end is None:
        return [start]
    gates.add(end[0], end[1], counter, -1)
    return [start, end[1]]


class _HtmlPage:
    """A parsed page with what the walk needs: the gates of the selectors, and what it skips."""

    __slots__ = ("gates", "hidden", "root", "selecting", "skip")

    def __init__(self, text: str, select: Sequence[Selector], remove: Sequence[Selector]) -> None:
        root = self.root = _parse_html(text)
        gates = self.gates = _Gates()
        gates.removed.update(_matching(root, [item for item in remove if isinstance(item, str)]))
        for item in remove:
            if not isinstance(item, str):
                _range_gates(root, gates, item, "removed")
        protected = _matching(root, [item for item in select if isinstance(item, str)])
        for element in protected:
            gates.add("before", element, "selected", 1)
            gates.add("after", element, "selected", -1)
        for item in select:
            if not isinstance(item, str):
                protected += _range_gates(root, gates, item, "selected")
        if select and not protected:
            shown = ", ".join(repr(s) if isinstance(s, str) else repr(dict(s)) for s in select)
            raise ExtractError(f"the selector {shown} matches nothing on the page")
        self.selecting = bool(select)

        aria_hidden: set[etree._Element] = set()
        noise = _noise(root, aria_hidden)
        if protected and noise:
            # what the declaration explicitly selects is never chrome, nor are its ancestors
            for element in protected:
                noise.discard(element)
                for ancestor in element.iterancestors():
                    noise.discard(ancestor)
        self.skip = noise | gates.removed
        # chrome hidden only from screen readers: walked after all when too little is left
        self.hidden = (aria_hidden & noise) - gates.removed

    def clauses(self) -> list[Clause]:
        clauses = _walk(self.root, self.gates, self.skip, selecting=self.selecting)
        hidden = self.hidden
        if hidden and _text_size(clauses) < ARIA_HIDDEN_FALLBACK_CHARS:
            # Rendered pages mark the whole content aria-hidden while a dialog (a cookie or
            # login prompt) is open: that text is still what every sighted reader sees. When
            # hardly anything is left without it, keep it.
            fuller = _walk(self.root, self.gates, self.skip - hidden, selecting=self.selecting)
            if _text_size(fuller) > 2 * _text_size(clauses):
                return fuller
        return clauses

    def digest(self) -> str | None:
        """A hash of everything the walk reads, without walking: equal digests, equal clauses.

        The tree goes into it with its attributes stripped (the walk reads none: the selectors
        and the chrome detection, which do, have already run, and what they found goes in as
        marks) and with the content of the elements the walk skips cut out, so per-request
        tokens and chrome whose text changes at every request (a rotating banner in the site
        header, a "generated in 0.2 s" footer) leave it unchanged. The content of a skipped
        element stays where a walk can still read it: inside a list item (whether the item is
        one bold clause reads all its text) and in chrome hidden only from screen readers (see
        ``clauses``). The page is changed for good: take it after the selectors and the chrome
        detection, as here, and walk it only for ``clauses``. None if the tree cannot be
        serialised.
        """
        root, skip, hidden = self.root, self.skip, self.hidden
        cut = [element for element in skip if element not in hidden]
        cut += root.iter(*_DROP_TAGS)
        for element in cut:
            if next(element.iterancestors("li"), None) is None:
                element.clear(keep_tail=True)
        etree.strip_attributes(root, "{}*", "{*}*")  # every attribute, in C
        for element in skip:
            element.set("tosmon-skip", "hidden" if element in hidden else "")
        for name, table in (
            ("tosmon-start", self.gates.on_start),
            ("tosmon-end", self.gates.on_end),
        ):
            for element, actions in table.items():
                element.set(name, " ".join(f"{counter}{delta:+d}" for counter, delta in actions))
        try:
            serialised = etree.tostring(root, encoding="utf-8", xml_declaration=False)
        except (ValueError, etree.LxmlError):
            return None
        digest = hashlib.sha256(_code_id())
        digest.update(b"select" if self.selecting else b"whole")
        digest.update(serialised)
        return digest.hexdigest()


@lru_cache(maxsize=1)
def _code_id() -> bytes:
    """What identifies the code a digest was made with: this module's source, the clause type's
    and the Python version (``str`` methods and Unicode data). A digest from other code means
    nothing."""
    import sys

    from monitor import clauses

    parts = [sys.version.encode(), unicodedata.unidata_version.encode()]
    for module in (sys.modules[__name__], clauses):
        try:
            parts.append(Path(module.__file__ or "").read_bytes())
        except OSError:
            from monitor import __version__

            parts.append(f"tos-monitor {__version__}".encode())
    return hashlib.sha256(b"\0".join(parts)).digest()


def _html_clauses(
    text: str, select: Sequence[Selector], remove: Sequence[Selector]
) -> list[Clause]:
    return _HtmlPage(text, select, remove).clauses()


ARIA_HIDDEN_FALLBACK_CHARS = 200
"""Below this much text without the ``aria-hidden`` parts, their content is kept."""


def _text_size(clauses: Sequence[Clause]) -> int:
    return sum(len(clause.text) for clause in clauses)


_SPAN_STACK_PARENTS = frozenset({"div", "section", "article", "main", "body", "aside"})


def _in_span_stack(span: etree._Element, cache: dict[etree._Element, bool]) -> bool:
    """Whether a span is one of several stacked like paragraphs (React pages style them as blocks).

    True when its parent is a div-like container holding two or more elements and no text of its
    own between them: ``<div><h1>..</h1><span>para</span><span>para</span></div>``.
    """
    parent = span.getparent()
    if parent is None or parent.tag not in _SPAN_STACK_PARENTS:
        return False
    stacked = cache.get(parent)
    if stacked is None:
        stacked = (not parent.text or parent.text.isspace()) and len(parent) > 1
        if stacked:
            stacked = all(not child.tail or child.tail.isspace() for child in parent)
        cache[parent] = stacked
    return stacked


def _is_clause_item(item: etree._Element) -> bool:
    """Whether a list item is all bold (``<li><strong>You can't ...</strong></li>``): one clause.
    A bold title followed by more text or a nested list is a titled section and stays a heading."""
    if next(item.iterdescendants("ol", "ul", "dl"), None) is not None:
        return False
    bolds = [e for e in item.iter("b", "strong") if e.getparent().tag not in _BOLD_TAGS]
    if not bolds:  # most items: a clause item only if it holds no text at all
        text = item.text
        return not (text and not text.isspace()) and not "".join(item.itertext()).strip()
    bold = "".join(text for element in bolds for text in element.itertext())
    return "".join(bold.split()) == "".join("".join(item.itertext()).split())


_DROP, _BLOCK, _HEADING, _BOLD, _BR, _SPAN = 1, 2, 3, 4, 5, 6
_KINDS: dict[object, int] = {
    **dict.fromkeys(_DROP_TAGS, _DROP),
    **dict.fromkeys(_BLOCK_TAGS, _BLOCK),
    **dict.fromkeys(_HEADING_TAGS, _HEADING),
    **dict.fromkeys(_BOLD_TAGS, _BOLD),
    "br": _BR,
    "span": _SPAN,
}
"""What the walk does with a tag, in one lookup (0: inline, only its text counts)."""


def _walk(
    root: etree._Element, gates: _Gates, skip: set[etree._Element], *, selecting: bool
) -> list[Clause]:
    out = _Builder()
    parts: list[str] = []
    append = parts.append
    plain = False  # saw non-space text outside <b>/<strong> in the current run
    pending_br = False
    bold = 0
    # open list items; whether one is a clause item (bold-only text in it is then no heading)
    # matters only for a bold-only run, so it is worked out only then
    open_items: list[etree._Element] = []
    clause_items: dict[etree._Element, bool] = {}
    heading_level = 0
    heading_owner: etree._Element | None = None
    counters = {"selected": 0, "removed": 0}
    active = not selecting
    on_start, on_end = gates.on_start, gates.on_end
    kinds = _KINDS

    def in_clause_item() -> bool:
        for item in open_items:
            found = clause_items.get(item)
            if found is None:
                found = clause_items[item] = _is_clause_item(item)
            if found:
                return True
        return False

    def flush() -> None:
        # called only when ``parts`` holds something: ``plain`` and ``pending_br`` are only
        # ever set along with a part, so with no parts there is nothing to reset either
        nonlocal plain, pending_br
        text = normalise_text("".join(parts))
        parts.clear()
        if heading_level:
            out.heading(heading_level, text)
        elif text:
            out.paragraph(text, bold_only=not plain and not (open_items and in_clause_item()))
        plain = False
        pending_br = False

    def apply(actions: list[tuple[str, int]]) -> None:
        nonlocal active
        for counter, delta in actions:
            counters[counter] += delta
        now = counters["removed"] <= 0 and (counters["selected"] > 0 or not selecting)
        if now != active:
            if parts:
                flush()
            active = now

    stacks: dict[etree._Element, bool] = {}
    walker = etree.iterwalk(root, events=("start", "end"))
    skipped: etree._Element | None = None
    for event, element in walker:
        tag = element.tag
        kind = kinds.get(tag, 0)
        if event == "start":
            if on_start and element in on_start:
                apply(on_start[element])
            if kind == _DROP or element in skip or not isinstance(tag, str):
                walker.skip_subtree()
                skipped = element
                continue
            if kind == _BLOCK or (kind == _SPAN and _in_span_stack(element, stacks)):
                if parts and not heading_level:
                    flush()
                if tag == "li":
                    open_items.append(element)
            elif kind == _HEADING:
                if not heading_level:
                    if parts:
                        flush()
                    if active:
                        heading_level = _HEADING_TAGS[tag]
                        heading_owner = element
            elif kind == _BOLD:
                bold += 1
            elif kind == _BR:
                if pending_br:
                    flush()
                else:
                    pending_br = True
                    append(" ")
            text = element.text
            if active and text:
                append(text)
                if not text.isspace():
                    pending_br = False
                    if not bold:
                        plain = True
        else:
            if skipped is element:
                skipped = None
            elif element is heading_owner:
                if parts:
                    flush()
                heading_level = 0
                heading_owner = None
            elif kind == _BLOCK or (kind == _SPAN and _in_span_stack(element, stacks)):
                if parts and not heading_level:
                    flush()
                if tag == "li":
                    open_items.pop()
            elif kind == _BOLD:
                bold -= 1
            if on_end and element in on_end:
                apply(on_end[element])
            tail = element.tail
            if active and tail:
                append(tail)
                if not tail.isspace():
                    pending_br = False
                    if not bold:
                        plain = True
    if parts:
        flush()
    return out.clauses


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

_ESCAPABLE = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_PROTECT = {ord(c): chr(0xE000 + ord(c)) for c in _ESCAPABLE}
_UNPROTECT = {0xE000 + ord(c): c for c in _ESCAPABLE}
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_ATX = re.compile(r"^(#{1,12})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^(=+|-+)[ \t]*$")
_THEMATIC = re.compile(r"^(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_LIST_MARKER = re.compile(r"^(?:[*+-]|\d{1,9}[.)])(?:[ \t]+|$)")
_QUOTE = re.compile(r"^(?:>[ \t]?)+")
_FENCE = re.compile(r"^(```|~~~)")
_LINK_DEFINITION = re.compile(r"^\[[^\]]+\]:\s+\S+")
_TABLE_SEPARATOR = re.compile(r"^\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_CELL_BREAKS = re.compile(r"(?:<br\s*/?>\s*){2,}", re.IGNORECASE)
_BOLD_ONLY = re.compile(r"^(\*\*|__)(?:(?!\1).)+\1[ \t]*$")
_IMAGE = re.compile(r"!\[[^\]]*\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
_REFERENCE_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto|ftp):[^>\s]*)>", re.IGNORECASE)
_BR_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_CODE = re.compile(r"`+")
_EMPHASIS = re.compile(r"[*_]+")


def _strip_emphasis(match: re.Match[str]) -> str:
    string, start, end = match.string, match.start(), match.end()
    before = string[start - 1] if start else " "
    after = string[end] if end < len(string) else " "
    return match.group(0) if before.isspace() and after.isspace() else ""


_PERMALINK = re.compile(r"\[[#¶§]?\]\([^)]*\)")


def _inline(markdown: str) -> str:
    """Markdown inline syntax → plain normalised text (link text kept, targets dropped)."""
    escaped = "\\" in markdown
    if escaped:
        markdown = _ESCAPED.sub(lambda m: m.group(1).translate(_PROTECT), markdown)
    if "[" in markdown:
        markdown = _IMAGE.sub("", markdown)
        markdown = _PERMALINK.sub("", markdown)  # a heading's [#](#anchor) or [¶](...)
        markdown = _LINK.sub(r"\1", markdown)
        markdown = _REFERENCE_LINK.sub(r"\1", markdown)
    if "<" in markdown:
        markdown = _AUTOLINK.sub(r"\1", markdown)
        markdown = _BR_TAG.sub(" ", markdown)
        markdown = _HTML_TAG.sub("", markdown)
    if "`" in markdown:
        markdown = _CODE.sub("", markdown)
    if "*" in markdown or "_" in markdown:
        markdown = _EMPHASIS.sub(_strip_emphasis, markdown)
    return normalise_text(markdown.translate(_UNPROTECT) if escaped else markdown)


def _markdown_block(out: _Builder, lines: list[str], *, item: bool = False) -> None:
    """One paragraph; a bold-only one is a pseudo-heading unless it is a list item."""
    if not lines:
        return
    raw = " ".join(lines)
    bold_only = not item and _BOLD_ONLY.match(raw) is not None
    out.paragraph(_inline(raw), bold_only=bold_only)


def _markdown_cell(out: _Builder, cell: str) -> None:
    for piece in _CELL_BREAKS.split(cell):
        piece = piece.strip()
        heading = _ATX.match(piece)
        if heading:
            out.heading(len(heading.group(1)), _inline(heading.group(2) or ""))
        else:
            _markdown_block(out, [piece])


def _has_nested_content(lines: list[str], index: int) -> bool:
    """Whether the list item on ``lines[index]`` is followed by content indented under it (a
    nested list, or a paragraph after a blank line): then the item is a title, not a clause."""
    indent = len(lines[index]) - len(lines[index].lstrip())
    blank = False
    for line in lines[index + 1 :]:
        stripped = line.strip()
        if not stripped:
            blank = True
            continue
        deeper = len(line) - len(line.lstrip()) > indent
        return deeper and (blank or _LIST_MARKER.match(stripped) is not None)
    return False


def _markdown_clauses(text: str) -> list[Clause]:
    out = _Builder()
    all_lines = text.splitlines()
    block: list[str] = []
    item = False  # the block is a list item
    in_fence = False
    for index, raw_line in enumerate(all_lines):
        line = raw_line.strip()
        if in_fence:
            if _FENCE.match(line):
                in_fence = False
                _markdown_block(out, block, item=item)
                block, item = [], False
            elif line:
                block.append(line)
            continue
        if line.startswith(">"):
            line = _QUOTE.sub("", line).strip()
        if not line:
            _markdown_block(out, block, item=item)
            block, item = [], False
            continue
        if block and _SETEXT.match(line):
            title = _inline(" ".join(block))
            block, item = [], False
            out.heading(1 if line[0] == "=" else 2, title)
            continue
        if _THEMATIC.match(line):
            _markdown_block(out, block, item=item)
            block, item = [], False
            continue
        heading = _ATX.match(line)
        if heading:
            _markdown_block(out, block, item=item)
            block, item = [], False
            out.heading(len(heading.group(1)), _inline(heading.group(2) or ""))
            continue
        if _FENCE.match(line):
            _markdown_block(out, block, item=item)
            block, item = [], False
            in_fence = True
            continue
        if line[0] == "|":
            _markdown_block(out, block, item=item)
            block, item = [], False
            if not _TABLE_SEPARATOR.match(line):
                cells = _CELL_SPLIT.split(line.strip("|"))
                for cell in cells:
                    _markdown_cell(out, cell)
            continue
        marker = _LIST_MARKER.match(line)
        if marker:
            _markdown_block(out, block, item=item)
            block, item = [], False
            line = line[marker.end() :]
            item = not _has_nested_content(all_lines, index)
            nested = _ATX.match(line)
            if nested:
                out.heading(len(nested.group(1)), _inline(nested.group(2) or ""))
                item = False
                continue
            if not line:
                continue
        elif _LINK_DEFINITION.match(line):
            continue
        block.append(line)
    _markdown_block(out, block, item=item)
    return out.clauses


# --------------------------------------------------------------------------------------------
# Plain text
# --------------------------------------------------------------------------------------------

_NUMBERED_HEADING = re.compile(r"^(\d{1,3}(?:\.\d{1,3})*)\.?\s+\S")


def _text_clauses(text: str) -> list[Clause]:
    out = _Builder()
    for block in re.split(r"\n[ \t\r\f\v]*\n", text.replace("\r\n", "\n")):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        paragraph = normalise_text(" ".join(lines))
        numbered = _NUMBERED_HEADING.match(paragraph) if len(lines) == 1 else None
        if (
            numbered
            and len(paragraph) <= 100
            and paragraph[-1] not in ".;,:"
            and _looks_like_heading(paragraph)
        ):
            out.heading(numbered.group(1).count(".") + 1, paragraph)
        else:
            out.paragraph(paragraph)
    return out.clauses


# --------------------------------------------------------------------------------------------
# Public interface
# --------------------------------------------------------------------------------------------


MEDIA_TYPES_BY_SUFFIX = {
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
}
"""The media type of a local file (``tosmon compare``, ``tosmon import``) by its ending."""


class Extraction:
    """A page read for extraction: its clauses, and for HTML a digest of what they depend on.

    Reading parses the page and applies ``select`` and ``remove`` (ExtractError when the page
    is empty or unreadable, or ``select`` matches nothing); the clauses are made when first
    asked for. ``digest()`` tells, without making them, whether they are the clauses of an
    earlier read whose digest was kept (see ``_HtmlPage.digest``): the quiet path of a check
    compares it with the one stored for the document's current text.
    """

    __slots__ = ("_clauses", "_digest", "_html", "_text", "kind")

    def __init__(
        self,
        content: str | bytes,
        *,
        media_type: str = "text/html",
        select: Sequence[Selector] | Selector = (),
        remove: Sequence[Selector] | Selector = (),
        charset: str | None = None,
    ) -> None:
        if isinstance(select, (str, Mapping)):
            select = (select,)
        if isinstance(remove, (str, Mapping)):
            remove = (remove,)
        kind = self.kind = media_type.split(";", 1)[0].strip().lower()
        self._text = (
            decode(content, charset, media_type=kind) if isinstance(content, bytes) else content
        )
        self._html = None
        if kind not in _MARKDOWN_TYPES and kind not in _TEXT_TYPES:
            self._html = _HtmlPage(self._text, select, remove)
        self._clauses: list[Clause] | None = None
        self._digest: str | None = None

    def clauses(self) -> list[Clause]:
        """The ordered clauses (ExtractError when no text remains)."""
        if self._clauses is None:
            if self._html is not None:
                clauses = self._html.clauses()
            elif self.kind in _MARKDOWN_TYPES:
                clauses = _markdown_clauses(self._text)
            else:
                clauses = _text_clauses(self._text)
            clauses = _split_long_clauses(clauses)
            if not clauses:
                raise ExtractError("no text remains after extraction")
            self._clauses = clauses
        return self._clauses

    def digest(self) -> str | None:
        """For HTML, a hash of everything the clauses depend on (None for other pages): the
        same digest, the same clauses, with this version of the code."""
        if self._html is None:
            return None
        if self._digest is None:
            self._digest = self._html.digest()
        return self._digest


def extract_clauses(
    content: str | bytes,
    *,
    media_type: str = "text/html",
    select: Sequence[Selector] = (),
    remove: Sequence[Selector] = (),
    charset: str | None = None,
) -> list[Clause]:
    """Ordered clauses of a page: HTML (default), Markdown (``text/markdown``) or ``text/plain``.

    ``select`` / ``remove`` (HTML only) are CSS selectors or OTA ranges; several ``select`` items
    are kept in document order. Bytes are decoded as the fetcher decodes them
    (``monitor.charsets``: ``charset`` if given, else BOM, ``<meta charset>``, UTF-8, then
    Windows-1252). Raises ``ExtractError`` when ``select`` matches nothing or no text remains.
    """
    return Extraction(
        content, media_type=media_type, select=select, remove=remove, charset=charset
    ).clauses()


_INLINE_SPECIALS = re.compile(r"([\\`*_\[\]])|<(?=[A-Za-z/!])")
_LINE_START = re.compile(r"^(?:[#>+\-=|~]|\d+(?=[.)](?:\s|$)))")


def _escape_inline(text: str) -> str:
    # most clauses hold none of these characters: seven substring tests are ~30x cheaper than
    # letting the regex scan them (it matters on every check that extracts a page)
    if not (
        "\\" in text
        or "`" in text
        or "*" in text
        or "_" in text
        or "[" in text
        or "]" in text
        or "<" in text
    ):
        return text
    return _INLINE_SPECIALS.sub(lambda m: "\\" + m.group(0), text)


_LINE_START_CHARS = frozenset("#>+-=|~")


def _escape(text: str) -> str:
    text = _escape_inline(text)
    first = text[:1]
    if not (first in _LINE_START_CHARS or first.isdecimal()):  # all _LINE_START can match
        return text
    start = _LINE_START.match(text)
    if start:
        token = start.group(0)
        text = token + "\\" + text[len(token) :] if token[0].isdigit() else "\\" + text
    return text


LONG_CLAUSE = 5000
"""A block longer than this many characters is split into sentences: some pages (and some
archived extractions) run a whole document into one paragraph, which would make one change
look like a rewrite of everything."""
SHORT_SENTENCE = 40
_SENTENCE_BREAK = re.compile(r"(?<=[a-z0-9)\]][.!?;])[\"'”’)]?\s*(?=[A-Z(“\"])")


def _split_long_clauses(clauses: list[Clause]) -> list[Clause]:
    """Clauses longer than ``LONG_CLAUSE`` become one clause per sentence (a fragment shorter
    than ``SHORT_SENTENCE`` stays with the next sentence), so alignment works sentence by
    sentence where the page gave no paragraphs."""
    if all(len(c.text) <= LONG_CLAUSE for c in clauses):
        return clauses
    out: list[Clause] = []
    for clause in clauses:
        if len(clause.text) <= LONG_CLAUSE:
            out.append(clause)
            continue
        pending = ""
        for sentence in _SENTENCE_BREAK.split(clause.text):
            pending = f"{pending} {sentence.strip()}" if pending else sentence.strip()
            if len(pending) >= SHORT_SENTENCE:
                out.append(Clause(clause.section, pending))
                pending = ""
        if pending:
            out.append(Clause(clause.section, pending))
    return out


def clauses_to_text(clauses: Sequence[Clause]) -> str:
    """The canonical Markdown text of clauses: each heading once ("#" × depth), then paragraphs.

    Blocks are separated by one blank line and the text ends with a newline; Markdown syntax in
    clause text is backslash-escaped so that the text parses back to the same clauses.
    """
    blocks: list[str] = []
    current: tuple[str, ...] = ()
    for clause in clauses:
        section = clause.section
        if section != current:
            common = 0
            for a, b in zip(section, current, strict=False):
                if a != b:
                    break
                common += 1
            if common == len(section) and common:
                common -= 1  # back up to a parent section: repeat its heading
            for depth in range(common, len(section)):
                blocks.append("#" * (depth + 1) + " " + _escape_inline(section[depth]))
            current = section
        blocks.append(_escape(clause.text))
    return "\n\n".join(blocks) + "\n" if blocks else ""
