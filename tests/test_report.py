"""Whole reports on real changes and real noise: what a subscriber would be sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.clauses import Clause, severity_rank
from monitor.extract import extract_clauses
from monitor.report import build_report, report_to_json, service_name

DATA = Path(__file__).resolve().parent / "data" / "classify"
EVENTS = DATA / "events"
NOISE = DATA / "noise"


def clauses(path: Path) -> list[Clause]:
    return extract_clauses(path.read_text(), media_type="text/markdown")


EVENT_LIST = [json.loads(line) for line in (EVENTS / "events.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("event", EVENT_LIST, ids=[e["what"][:40] for e in EVENT_LIST])
def test_every_hand_checked_event_is_reported_at_medium_or_above(event: dict) -> None:
    parts = event["old"].split("/")
    report = build_report(
        clauses(EVENTS / event["old"]),
        clauses(EVENTS / event["new"]),
        document_name=f"{parts[1]} {parts[2]}",
    )
    hits = [
        c
        for c in report.clauses
        if set(c.labels) & set(event["labels"]) and severity_rank(c.severity) >= 2
    ]
    assert hits, report.summary
    assert severity_rank(report.severity) >= 2
    assert all(0 < len(c.annotation) <= 300 for c in hits)


@pytest.mark.parametrize("case", ["uk_us", "links", "foreign", "date"])
def test_real_noise_pairs_report_nothing_above_cosmetic(case: str) -> None:
    report = build_report(clauses(NOISE / case / "old.md"), clauses(NOISE / case / "new.md"))
    assert [c for c in report.clauses if c.severity != "cosmetic"] == []
    assert report.severity == "cosmetic"


def test_another_language_says_so() -> None:
    report = build_report(
        clauses(NOISE / "foreign" / "old.md"), clauses(NOISE / "foreign" / "new.md")
    )
    assert "page served in another language" in report.summary
    assert report.clauses  # the edits are kept, marked cosmetic


def test_a_variant_seen_in_history_is_cosmetic_and_history_empty_is_plain() -> None:
    old, new = clauses(NOISE / "flip" / "old.md"), clauses(NOISE / "flip" / "new.md")
    history = [clauses(NOISE / "flip" / "history-1.md"), clauses(NOISE / "flip" / "history-2.md")]
    plain = build_report(old, new)
    assert plain.severity != "cosmetic"
    filtered = build_report(old, new, history=history)
    assert filtered.severity == "cosmetic"
    assert "variant already seen" in filtered.summary
    flipped = [c for c in filtered.clauses if c.annotation.startswith("Variant already seen")]
    assert len(flipped) == sum(c.severity != "cosmetic" for c in plain.clauses)
    assert len(filtered.clauses) == len(plain.clauses)


def test_a_real_change_is_not_hidden_by_history() -> None:
    old = [
        Clause(("Content",), "You grant us a non-exclusive, royalty-free licence to your content.")
    ]
    new = [
        Clause(
            ("Content",),
            "You grant us a non-exclusive, transferable, sub-licensable, royalty-free licence to "
            "your content.",
        )
    ]
    report = build_report(old, new, document_name="Example Terms of Service", history=[old, old])
    assert report.severity == "high"
    assert report.summary.startswith("1 clause changed: licence now")
    assert "Example may now" in report.clauses[0].annotation


def test_announced_terms_get_a_note_and_context() -> None:
    old = [Clause(("Terms",), "You grant us a royalty-free licence to your content.")]
    new = [
        Clause((), "An update to our Terms of Service will be effective on July 26, 2022."),
        Clause(
            ("Updated terms",),
            "You grant us a royalty-free, perpetual and irrevocable licence to your content.",
        ),
    ]
    report = build_report(old, new)
    assert report.notes == (
        "The page announces new terms effective July 26, 2022; the current terms remain in force "
        "until then.",
    )
    changed = [c for c in report.clauses if "perpetual" in (c.after or "")]
    assert changed and changed[0].annotation.startswith(
        "Announced terms (takes effect July 26, 2022)"
    )


def test_terms_shown_until_a_date_alongside_new_ones() -> None:
    old = [Clause(("Terms",), "We may use your content to provide the service.")]
    new = [
        Clause(("Terms",), "The following terms apply until 15 November 2024."),
        Clause(("Terms",), "We may use your content to train our AI models."),
    ]
    notes = build_report(old, new).notes
    assert any("apply until 15 November 2024" in n and "not yet in force" in n for n in notes)


def test_summary_lists_the_most_severe_first_and_counts_cosmetic_edits() -> None:
    licence = "You grant us a non-exclusive, royalty-free licence to host and use your content."
    old = [Clause(("A",), licence), Clause(("B",), "Our offices are in Dublin, Ireland.")]
    new = [
        Clause(("A",), licence.replace("non-exclusive,", "non-exclusive, sublicensable,")),
        Clause(("B",), "Our offices are in Dublin,  Ireland"),
        Clause(("C",), "We use your public posts to train generative AI models."),
    ]
    report = build_report(old, new)
    assert report.summary == (
        "2 clauses changed: licence now sublicensable (high); new AI training clause (high); "
        "1 cosmetic edit"
    )
    data = report_to_json(report)
    assert set(data) == {"clauses", "summary", "severity", "notes", "headline", "dates", "opt_outs"}
    assert data["headline"] == report.headline != ""
    assert set(data["clauses"][0]) == {
        "kind",
        "section",
        "before",
        "after",
        "labels",
        "direction",
        "severity",
        "annotation",
    }
    json.dumps(data)


def test_no_change_at_all() -> None:
    same = [Clause((), "Hello.")]
    report = build_report(same, same)
    assert (report.clauses, report.summary, report.severity) == ((), "No change", "cosmetic")


def test_service_name_from_document_name() -> None:
    assert service_name("Instagram Terms of Service") == "Instagram"
    assert service_name("Llama API Privacy Policy") == "Llama API"
    assert service_name("") == ""
