"""Noise rules: which edits mean nothing to a reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import noise

NOISE = Path(__file__).resolve().parent / "data" / "classify" / "noise"


@pytest.mark.parametrize(
    ("uk", "us"),
    [
        ("licence", "license"),
        ("organisation", "organization"),
        ("personalised", "personalized"),
        ("analyse", "analyze"),
        ("behaviour", "behavior"),
        ("favourite", "favorite"),
        ("centre", "center"),
        ("cancelled", "canceled"),
        ("labelling", "labeling"),
        ("programme", "program"),
        ("judgement", "judgment"),
        ("defence", "defense"),
    ],
)
def test_uk_and_us_spellings_fold_together(uk: str, us: str) -> None:
    assert noise.us_spelling(uk) == noise.us_spelling(us)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("filled", "filed"),
        ("our", "or"),
        ("your", "yor"),
        ("hour", "hor"),
        ("licensed", "licenses"),
    ],
)
def test_distinct_words_never_collide(a: str, b: str) -> None:
    assert noise.us_spelling(a) != noise.us_spelling(b)


def test_equivalence_ignores_links_markup_numbering_and_hyphenation() -> None:
    marked_up = (
        "**3.** See our [Terms](https://l.example.com/?u=x&e=AT0) for a *sub-licensable* licence."
    )
    assert noise.equivalence_key(marked_up) == noise.equivalence_key(
        "See our Terms for a sublicensable license."
    )
    assert noise.equivalence_key("open-source licence") == noise.equivalence_key(
        "open source license"
    )


def test_dates_are_ignored_only_on_date_lines() -> None:
    assert noise.is_cosmetic_edit(
        "Effective Date: January 12 2024", "Effective Date: 12 January 2024"
    )
    assert noise.is_cosmetic_edit("Last updated: 3 May 2024", "Last updated: June 1, 2025")
    assert not noise.is_cosmetic_edit(
        "You may cancel within 30 days, until 1 May 2024, and we will refund you in full.",
        "You may cancel within 30 days, until 1 May 2025, and we will refund you in full.",
    )


def test_content_word_changes_ignore_filler_but_keep_negation() -> None:
    assert noise.content_word_changes(
        "Technologies such as AI help us to ensure that it works.",
        "Technologies like AI help us ensure it works.",
    ) == ([], [])
    assert noise.content_word_changes("We will use it.", "We will not use it.") == (["not"], [])


def test_language_detection_on_real_captures() -> None:
    english = (NOISE / "foreign" / "old.md").read_text()
    other = (NOISE / "foreign" / "new.md").read_text()
    assert noise.english_ratio(english) > 0.35
    assert noise.english_ratio(other) < 0.05
    assert noise.is_other_language(english, other)
    assert not noise.is_other_language(english, (NOISE / "uk_us" / "new.md").read_text())
    assert not noise.is_other_language(other, english)  # the reference must be English
