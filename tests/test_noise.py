"""Noise rules: which edits mean nothing to a reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import noise, report
from monitor.clauses import Clause
from monitor.report import build_report

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


# --- history-wide noise in reports ----------------------------------------------------------------

TERMS = [
    Clause(("Terms",), "We provide the Service to you as described in these terms."),
    Clause(("Terms",), "You must be at least 13 years old to use the Service."),
    Clause(("Licence",), "You grant us a non-exclusive licence to host and show your content."),
]
AI_BLOCK = [
    Clause(
        ("Regional terms",),
        "We use your public posts and photos to train and improve our artificial intelligence "
        "models, including generative AI.",
    ),
    Clause(("Regional terms",), "Meta Platforms Ireland Limited is the controller of your data."),
]


def test_a_block_that_came_and_went_twice_is_a_recurring_variant() -> None:
    with_block, without = TERMS + AI_BLOCK, list(TERMS)
    # the block appeared once and now goes: a change undone is news
    once = build_report(with_block, without, recurring=[without, with_block])
    assert once.severity in ("medium", "high")
    # it has appeared, gone and come back before: a regional variant flipping, not news
    again = build_report(with_block, without, recurring=[without, with_block, without, with_block])
    assert again.severity == "cosmetic"
    assert {c.annotation for c in again.clauses} == {report.VARIANT_RECURRING}
    # a real change made alongside the flip is still reported
    edited = [*TERMS[:2], Clause(("Licence",), TERMS[2].text + " The licence is perpetual.")]
    mixed = build_report(with_block, edited, recurring=[without, with_block, without, with_block])
    assert mixed.severity in ("medium", "high")
    assert [c.kind for c in mixed.clauses if c.severity != "cosmetic"] == ["modified"]


def test_a_page_showing_a_block_twice_is_no_change() -> None:
    doubled = TERMS + AI_BLOCK + AI_BLOCK
    assert build_report(TERMS + AI_BLOCK, doubled).severity == "cosmetic"
    assert build_report(doubled, TERMS + AI_BLOCK).severity == "cosmetic"
    assert build_report(TERMS, TERMS + AI_BLOCK).severity in ("medium", "high")


def test_help_links_and_rename_banners_are_page_furniture() -> None:
    # real texts from Instagram's Terms of Use captures (Open Terms Archive, ODbL)
    banner = (
        "Facebook Ireland Limited has changed its name to Meta Platforms Ireland Limited. We've "
        "updated our Terms of Use, Data Policy and Cookies Policy to reflect the new name on 4 "
        "January 2022. While our company name has changed, we are continuing to offer the same "
        "products."
    )
    help_link = Clause(
        ("Terms of Use", "Other ways to get help"), "Chat with Meta AI support assistant"
    )
    assert noise.is_page_furniture(("Facebook",), banner)
    assert noise.is_page_furniture(help_link.section, help_link.text)
    assert noise.is_page_furniture((), "X. How will we notify you of changes to this Policy?")
    assert not noise.is_page_furniture((), "Can we use your posts to train AI? Yes, we can.")
    assert not noise.is_page_furniture(("Terms of Use",), help_link.text)
    assert not noise.is_page_furniture(("Get help",), AI_BLOCK[0].text * 3)  # long: terms text
    with_banner = build_report(TERMS, [Clause(("Facebook",), banner), *TERMS, help_link])
    assert with_banner.severity == "cosmetic"
    # the banner and the help link both say they are not terms (the classifier names a link
    # "navigation", the history check calls the rest "page furniture")
    assert all(c.annotation.endswith("not part of the terms.") for c in with_banner.clauses)
    assert report.FURNITURE in {c.annotation for c in with_banner.clauses}
