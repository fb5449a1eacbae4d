"""Atom feeds: valid RFC 4287 a feed reader accepts, one entry per change, hostile text inert."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import feedparser

from monitor.feeds import ATOM_NS, MAX_ENTRIES, FeedSpec, render_atom
from tests.test_render import clause, view

BASE = "https://tos.example.org"
SPEC = FeedSpec(
    title="tos-monitor: Instagram",
    self_url=f"{BASE}/feeds/service/instagram.atom",
    alternate_url=f"{BASE}/services/instagram",
)


def parse(data: bytes) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def test_one_entry_per_change_newest_first_with_link_and_summary() -> None:
    t0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    views = [
        view(change_id=1, detected_at=t0),
        view(change_id=2, detected_at=t0 + timedelta(days=3)),
    ]
    feed = parse(render_atom(SPEC, views, base_url=BASE))

    assert feed.feed.title == "tos-monitor: Instagram"
    assert feed.feed.updated == "2025-06-04T09:00:00Z"
    assert [e.link for e in feed.entries] == [f"{BASE}/changes/2", f"{BASE}/changes/1"]
    assert [e.id for e in feed.entries] == [f"{BASE}/changes/2", f"{BASE}/changes/1"]
    entry = feed.entries[0]
    assert entry.title.startswith("Instagram: ")
    assert "Your posts may become training material." in entry.summary
    assert {t.term for t in entry.tags} == {"high", "AI_TRAINING_ON_USER_DATA"}


def test_hostile_page_text_cannot_break_the_feed_or_inject_markup() -> None:
    evil = "Terms\x1b[31m\x07 <script>alert(1)</script> ]]> &amp; \ufffe end"
    views = [view(clause(annotation=evil), summary=evil)]
    data = render_atom(SPEC, views, base_url=BASE)

    assert b"<script>" not in data
    assert b"\x1b" not in data and b"\x07" not in data
    root = ET.fromstring(data)  # well-formed XML
    assert root.tag == f"{{{ATOM_NS}}}feed"
    summary = parse(data).entries[0].summary
    assert "<script>alert(1)</script>" in summary  # shown as text, not markup
    assert "\x1b" not in summary


def test_wording_only_clauses_are_counted_not_listed() -> None:
    wording = clause(severity="cosmetic", labels=(), annotation="Spelling only.")
    feed = parse(render_atom(SPEC, [view(clause(), wording)], base_url=BASE))
    summary = feed.entries[0].summary
    assert "Spelling only." not in summary
    assert "1 wording-only clause changes not listed" in summary


def test_an_empty_feed_is_valid_and_stable() -> None:
    first = render_atom(SPEC, [], base_url=BASE)
    assert first == render_atom(SPEC, [], base_url=BASE)
    assert parse(first).entries == []


def test_a_long_history_is_capped_to_the_newest_entries() -> None:
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    views = [view(change_id=i, detected_at=t0 + timedelta(days=i)) for i in range(120)]
    feed = parse(render_atom(SPEC, views, base_url=BASE))
    assert len(feed.entries) == MAX_ENTRIES
    assert feed.entries[0].link.endswith("/changes/119")
