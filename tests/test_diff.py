"""diff: data-driven cases (tests/data/diff), alignment rules, word spans."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from monitor.clauses import Clause, ClauseChange
from monitor.diff import diff_clauses, diff_words
from monitor.extract import extract_clauses

DATA = Path(__file__).resolve().parent / "data" / "diff"
CASES = sorted(path.name for path in DATA.iterdir() if path.is_dir())


def as_json(change: ClauseChange) -> dict[str, object]:
    item: dict[str, object] = {
        "kind": change.kind,
        "section": list(change.section),
        "before": change.before,
        "after": change.after,
        "old_index": change.old_index,
        "new_index": change.new_index,
    }
    if change.kind == "modified":
        item["words"] = [[span.op, span.text] for span in change.words]
    return item


@pytest.mark.parametrize("name", CASES)
def test_case_diffs_as_expected(name: str) -> None:
    case = DATA / name
    old = extract_clauses((case / "old.md").read_text(encoding="utf-8"), media_type="text/markdown")
    new = extract_clauses((case / "new.md").read_text(encoding="utf-8"), media_type="text/markdown")
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    assert [as_json(change) for change in diff_clauses(old, new)] == expected


def c(text: str, *section: str) -> Clause:
    return Clause(tuple(section), text)


BASE = [
    c("Welcome to the service.", "1. Intro"),
    c("You must be 13 or older to use the service.", "2. Account"),
    c("Keep your password secret and do not share it.", "2. Account"),
    c("You own the content you post on the service.", "3. Content"),
    c("We may remove content that breaks these terms.", "3. Content"),
]


def test_identical_versions_have_no_changes() -> None:
    assert diff_clauses(BASE, list(BASE)) == []


def test_renumbered_sections_are_not_changes() -> None:
    renumbered = [
        Clause(tuple(s.replace("2.", "3.").replace("3. C", "4. C") for s in x.section), x.text)
        for x in BASE
    ]
    assert diff_clauses(BASE, renumbered) == []


def test_renumbered_clause_text_is_modified_not_removed_and_added() -> None:
    old = [*BASE, c("3.1 We may use your posts to train AI.", "3. Content")]
    new = [*BASE, c("4.1 We may use your posts to train AI.", "3. Content")]
    [change] = diff_clauses(old, new)
    assert change.kind == "modified"
    assert (change.old_index, change.new_index) == (5, 5)
    assert [(s.op, s.text) for s in change.words if s.op != "equal"] == [
        ("delete", "3.1"),
        ("insert", "4.1"),
    ]


def test_moved_clause_is_reported_once_as_moved() -> None:
    new = [BASE[0], BASE[2], BASE[3], BASE[1], BASE[4]]
    new[3] = c(BASE[1].text, "3. Content")
    [change] = diff_clauses(BASE, new)
    assert (change.kind, change.old_index, change.new_index) == ("moved", 1, 3)
    assert change.section == ("3. Content",)
    assert change.before == change.after == BASE[1].text


def test_reordered_clauses_within_a_section_are_moved() -> None:
    new = [BASE[0], BASE[2], BASE[1], BASE[3], BASE[4]]
    changes = diff_clauses(BASE, new)
    assert [(ch.kind, ch.old_index, ch.new_index) for ch in changes] == [("moved", 2, 1)]


def test_unrelated_rewrite_is_removed_and_added() -> None:
    new = [*BASE[:4], c("Payments are processed by a third party.", "3. Content")]
    changes = diff_clauses(BASE, new)
    assert [(ch.kind, ch.old_index, ch.new_index) for ch in changes] == [
        ("removed", 4, None),
        ("added", None, 4),
    ]


def test_removed_clause_is_placed_where_it_was() -> None:
    new = [BASE[0], BASE[2], BASE[3], c("A new final clause about arbitration.", "4. Disputes")]
    changes = diff_clauses(BASE, new)
    assert [(ch.kind, ch.old_index, ch.new_index) for ch in changes] == [
        ("removed", 1, None),  # after new clause 0, like it followed old clause 0
        ("removed", 4, None),  # after new clause 2 (old clause 3)
        ("added", None, 3),
    ]


def test_repeated_text_pairs_within_its_section() -> None:
    old = [c("Not applicable.", "A"), c("Not applicable.", "C")]
    new = [c("Not applicable.", "A"), c("Not applicable.", "B"), c("Not applicable.", "C")]
    changes = diff_clauses(old, new)
    assert [(ch.kind, ch.section, ch.new_index) for ch in changes] == [("added", ("B",), 1)]


def test_large_rewrite_still_pairs_reworded_clauses() -> None:
    # more leftovers than the all-pairs limit: candidates come from shared rare words
    old = [c(f"Clause {n} about topic{n} and subject{n} with detail{n}.", "S") for n in range(300)]
    new = [
        c(f"Clause {n} about topic{n} and subject{n} with detail{n} today.", "S")
        for n in range(300)
    ]
    changes = diff_clauses(old, new)
    assert len(changes) == 300
    assert all(ch.kind == "modified" and ch.old_index == ch.new_index for ch in changes)


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        (
            "the licence to use",
            "a license to use",
            [("delete", "the licence"), ("insert", "a license")],
        ),
        ("Hello world.", "Hello brave new world.", [("insert", "brave new ")]),
        ("a b c", "a c", [("delete", "b ")]),
        ("", "new text", [("insert", "new text")]),
        ("old text", "", [("delete", "old text")]),
        ("same", "same", []),
        (
            "Effective 1 May 2025.",
            "Effective 13 May 2026.",
            [("delete", "1"), ("insert", "13"), ("delete", "2025"), ("insert", "2026")],
        ),
    ],
)
def test_diff_words(before: str, after: str, changed: list[tuple[str, str]]) -> None:
    spans = diff_words(before, after)
    assert "".join(s.text for s in spans if s.op != "insert") == before
    assert "".join(s.text for s in spans if s.op != "delete") == after
    assert [(s.op, s.text) for s in spans if s.op != "equal"] == changed
    assert all(s.text for s in spans)
    assert all(a.op != b.op for a, b in itertools.pairwise(spans))


def test_a_huge_clause_is_diffed_exactly_by_sentences_then_words() -> None:
    sentences = [
        f"Clause {k} says the company may use your content in way number {k}." for k in range(900)
    ]
    before = " ".join(sentences)
    changed = list(sentences)
    changed[100] = "Clause 100 says the company may train generative AI on your content."
    changed[700] = changed[700].replace("may use", "may sell")
    after = " ".join(changed)
    spans = diff_words(before, after)
    assert "".join(s.text for s in spans if s.op != "insert") == before
    assert "".join(s.text for s in spans if s.op != "delete") == after
    inserted = " ".join(s.text for s in spans if s.op == "insert")
    assert "sell" in inserted and "generative" in inserted
    # the untouched sentences stay equal: only a few words are marked
    assert sum(len(s.text) for s in spans if s.op != "equal") < 300


def _sides(spans) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    old = "".join(s.text for s in spans if s.op != "insert")
    new = "".join(s.text for s in spans if s.op != "delete")
    return old, new


def test_a_long_clause_with_a_few_edits_is_still_marked_word_by_word() -> None:
    """3,000 distinct sentences, three words changed: exactly those words are marked."""
    sentences = [
        f"Rule {n} covers item {n * 7} of the list for region {n % 13}." for n in range(3000)
    ]
    before = " ".join(sentences)
    edited = list(sentences)
    edited[10] = edited[10].replace("covers", "governs")
    edited[1500] = edited[1500].replace("the list", "the annex")
    edited[2990] = edited[2990].replace("region", "country")
    after = " ".join(edited)
    [change] = diff_clauses([Clause((), before)], [Clause((), after)])
    assert not change.coarse
    assert _sides(change.words) == (before, after)
    changed = [(s.op, s.text.strip()) for s in change.words if s.op != "equal"]
    assert changed == [
        ("delete", "covers"),
        ("insert", "governs"),
        ("delete", "list"),
        ("insert", "annex"),
        ("delete", "region"),
        ("insert", "country"),
    ]


def test_a_clause_of_repeated_boilerplate_is_diffed_coarsely_but_exactly() -> None:
    """Hostile input (the same few sentences thousands of times, every seventh replaced): the
    diff stays exact text, gives up marking word by word and says so."""
    pool = [f"part {n} applies to the service;" for n in range(20)]
    old = [pool[(n * 7) % 20] for n in range(6000)]
    new = [s if n % 7 else "we may use your content;" for n, s in enumerate(old)]
    before, after = " ".join(old), " ".join(new)
    [change] = diff_clauses([Clause((), before)], [Clause((), after)])
    assert change.kind == "modified"
    assert change.coarse
    assert _sides(change.words) == (before, after)


def test_a_clause_of_megabytes_is_diffed_exactly_at_its_changed_middle() -> None:
    head = "You keep ownership of your content. " * 40_000
    before = head + "We do not train models on it." + head
    after = head + "We may train models on it." + head
    [change] = diff_clauses([Clause((), before)], [Clause((), after)])
    assert change.coarse
    assert _sides(change.words) == (before, after)
    changed = "".join(s.text for s in change.words if s.op == "insert")
    assert "may" in changed and len(changed) < 100
