"""Pure: change records -> an Atom feed (RFC 4287).

One entry per change: its headline as the title, the annotated summary (most severe clauses first)
as the summary, a link to the change's page. Page text is untrusted: the XML is built with
ElementTree, which escapes every text node, and characters XML 1.0 cannot carry (C0 controls other
than tab and newline, lone surrogates, U+FFFE/U+FFFF) are dropped first, so a hostile page can
neither break the feed nor inject markup into a reader.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.render import ChangeView, headline, topic_name

ATOM_NS = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 50
ANNOTATION_LIMIT = 600

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """What a feed is about: its title, its own URL and the page it mirrors."""

    title: str
    self_url: str
    alternate_url: str


def xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold removed."""
    return _NOT_XML.sub("", text)


def change_url(base_url: str, change_id: int) -> str:
    return f"{base_url.rstrip('/')}/changes/{change_id}"


def _stamp(when: datetime) -> str:
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_summary(view: ChangeView) -> str:
    """Plain text: the severity, then each clause a reader is shown with its annotation."""
    lines = [f"{view.title}: severity {view.top_severity}."]
    for clause in view.shown_clauses:
        topics = ", ".join(clause.topics)
        annotation = clause.annotation
        if len(annotation) > ANNOTATION_LIMIT:
            annotation = annotation[: ANNOTATION_LIMIT - 1].rstrip() + "…"
        label = f"[{clause.severity}] " + (f"{topics}: " if topics else "")
        lines.append(f"- {label}{annotation or clause.kind}")
    if view.cosmetic_count:
        lines.append(f"({view.cosmetic_count} wording-only clause changes not listed.)")
    return "\n".join(lines)


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
    if text is not None:
        element.text = xml_text(text)
    return element


def render_atom(spec: FeedSpec, views: Sequence[ChangeView], *, base_url: str) -> bytes:
    """The feed as UTF-8 XML, newest change first, at most ``MAX_ENTRIES`` entries.

    ``updated`` is the newest change's time (a feed with no entries uses the Unix epoch, so the
    same database always gives the same bytes and readers see nothing new).
    """
    ET.register_namespace("", ATOM_NS)
    newest = sorted(views, key=lambda v: (v.detected_at, v.change_id), reverse=True)[:MAX_ENTRIES]
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _add(feed, "id", spec.self_url)
    _add(feed, "title", spec.title)
    _add(feed, "link", rel="self", type="application/atom+xml", href=xml_text(spec.self_url))
    _add(feed, "link", rel="alternate", type="text/html", href=xml_text(spec.alternate_url))
    updated = newest[0].detected_at if newest else datetime(1970, 1, 1, tzinfo=UTC)
    _add(feed, "updated", _stamp(updated))
    author = _add(feed, "author")
    _add(author, "name", "tos-monitor")
    _add(feed, "generator", "tos-monitor")
    for view in newest:
        url = change_url(base_url, view.change_id)
        entry = _add(feed, "entry")
        _add(entry, "id", url)
        _add(entry, "title", f"{view.service}: {headline(view)}")
        _add(entry, "updated", _stamp(view.detected_at))
        _add(entry, "link", rel="alternate", type="text/html", href=xml_text(url))
        _add(entry, "category", term=view.top_severity, label=f"severity {view.top_severity}")
        for label in sorted({label for c in view.shown_clauses for label in c.labels}):
            _add(entry, "category", term=label, label=xml_text(topic_name(label)))
        _add(entry, "summary", entry_summary(view), type="text")
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document
