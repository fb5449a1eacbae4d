"""Noise rules: which edits mean nothing to a reader."""

from __future__ import annotations

import random
import re
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


_WORD_PIECES = ("the", "of", "we", "your", "licence", "données", "Daten")
_MARKUP_PIECES = ("*", "_", "`", "\n# ", "\n- ", "\n> ", "[1]", "\\[", "\\", "[", "](", ")")
_LINK_PIECES = ("https://example.com/x", "www.example.org", "\u00ad", "\u200b", "’", " ", "\n")


def test_language_ratio_counts_the_words_a_reader_sees() -> None:
    """The share of English function words among the words of the text as a reader sees it
    (``match_text``), whatever Markdown marks, links, note references and escapes surround or
    split them: the test reads the text without making it plain, and must count the same."""
    letters = re.compile(r"[^\W\d_]+")
    pieces = _WORD_PIECES + _MARKUP_PIECES + _LINK_PIECES + ("a", "b", "1")
    rng = random.Random(7)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 24)))
        words = letters.findall(noise.match_text(text))
        stop = sum(w in {"the", "of", "we", "your", "a"} for w in words)
        expected = stop / len(words) if words else 0.0
        assert noise.english_ratio(text) == pytest.approx(expected), repr(text)


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


# --- real Meta captures (Open Terms Archive, ODbL 1.0 / ODC-By 1.0; see tests/data/README.md) -----

NOTES = NOISE / "notes"
FACEBOOK_PRIVACY = "versions/Facebook/Privacy Policy"
FACEBOOK_NOTES_CAPTURES = (
    "2025-05-28T00-30-56Z",
    "2025-06-16T12-31-49Z",
    "2025-11-26T00-30-51Z",
    "2025-12-17T00-30-45Z",
    "2026-01-15T00-30-46Z",
)
"""Facebook's privacy policy with its notes open (May), closed (June), open (November), the
December update captured closed, then open again (January)."""
INSTAGRAM_PRIVACY = "versions-pga/Instagram/Privacy Policy"


def _capture(folder: Path, path: str, stamp: str) -> list[Clause]:
    from monitor.extract import extract_clauses

    return extract_clauses((folder / path / f"{stamp}.md").read_bytes(), media_type="text/markdown")


def _severe(result: report.ChangeReport) -> list[str]:
    return [
        (c.after or c.before or "")[:60] for c in result.clauses if c.severity in ("medium", "high")
    ]


def test_note_reference_numbers_are_not_a_change() -> None:
    # Facebook's privacy policy renumbers its notes whenever one is added (16 Dec 2022 / 4 Apr
    # 2023): "...it will be deleted[50]." became "...deleted[51]."
    before = (
        "And when you search for something on Facebook, we keep your search history until you "
        "clear the search in your activity log or delete your account. Once you clear a search or "
        "delete your account, it will no longer be visible to you, and it will be deleted[50]."
    )
    assert noise.is_cosmetic_edit(before, before.replace("[50]", "[51]"))
    assert noise.plain_text("Learn more[8] about it") == "Learn more about it"
    assert noise.plain_text("[2] A numbered item") == "[2] A numbered item"
    assert not noise.is_cosmetic_edit("We keep it for 50 days.", "We keep it for 51 days.")


def test_numbered_notes_written_out_or_closed_are_no_change() -> None:
    """Facebook's privacy policy, 30 Nov and 16 Dec 2022 (first two sections): the second capture
    writes out the text of the policy's numbered notes (examples, 'learn more' boxes: "For
    example, if we see someone without an account trying to load too many pages, they could be
    trying to scrape our site"). That is the page, not a change of terms; the day's real edits
    (the effective date, special categories of data) stay."""
    closed = _capture(NOTES, FACEBOOK_PRIVACY, "2022-11-30T18-30-08Z")
    written = _capture(NOTES, FACEBOOK_PRIVACY, "2022-12-16T00-30-22Z")
    opened = build_report(closed, written, document_name="Facebook Privacy Policy")
    assert _severe(opened) == []
    assert report.NOTE_TEXT in {c.annotation for c in opened.clauses}
    assert any(
        c.kind == "modified" and "religious views" in (c.after or "") for c in opened.clauses
    )
    shut = build_report(written, closed, document_name="Facebook Privacy Policy")
    assert _severe(shut) == []


def test_a_note_reworded_while_notes_were_closed_is_compared_with_their_last_showing() -> None:
    """Instagram's privacy policy (pga collection): written out on 4 Apr 2023, closed on 5 Apr,
    written out again on 28 Jun 2023 with the June AI update inside a note ("Support AI research"
    -> "Improve our AI technologies ... tools for people and businesses to create content")."""
    shown = _capture(NOTES, INSTAGRAM_PRIVACY, "2023-04-04T18-31-12Z")
    closed = _capture(NOTES, INSTAGRAM_PRIVACY, "2023-04-05T00-31-11Z")
    reopened = _capture(NOTES, INSTAGRAM_PRIVACY, "2023-06-28T18-31-10Z")
    result = build_report(
        closed, reopened, document_name="Instagram Privacy Policy", history=[shown]
    )
    clause = next(c for c in result.clauses if "create content" in (c.after or ""))
    assert clause.kind == "modified"
    assert "Support AI research" in (clause.before or "")
    assert clause.severity == "high" and "AI_TRAINING_ON_USER_DATA" in clause.labels


def test_notes_back_after_the_policy_changed_belong_to_that_change() -> None:
    """Facebook's privacy policy writes out its notes (no numbers in this layout) in some
    captures: open on 28 May 2025, closed on 16 June, open on 26 Nov; the December update is
    captured with them closed (17 Dec, a real AI change), then they are open again on 15 Jan
    2026 with the December wording. The notes' new AI wording came with the December change; on
    15 January the page only shows its notes again. A block shown only once before is not such
    a variant: its new wording is compared with that showing."""
    may, june, november, december, january = (
        _capture(NOTES, FACEBOOK_PRIVACY, stamp) for stamp in FACEBOOK_NOTES_CAPTURES
    )
    update = build_report(november, december, document_name="Facebook Privacy Policy")
    assert update.severity == "high"
    back = build_report(
        december,
        january,
        document_name="Facebook Privacy Policy",
        history=[november, june, may],
    )
    assert _severe(back) == []
    returned = [c for c in back.clauses if c.annotation == report.RETURNING_BLOCK]
    assert any("AI at Meta" in (c.after or "") for c in returned)
    once = build_report(
        december, january, document_name="Facebook Privacy Policy", history=[november]
    )
    assert any("AI at Meta" in clause for clause in _severe(once))


UPDATE_NOTICES = NOISE / "update_notices"


@pytest.mark.parametrize(
    ("old", "new", "news"),
    [
        ("2024-08-16T12-31-14Z", "2024-11-15T00-31-18Z", True),  # "still delaying" AI use
        ("2024-11-15T00-31-18Z", "2024-12-15T00-31-32Z", False),  # "We updated ... on Nov 14"
        ("2024-12-15T00-31-32Z", "2025-01-18T00-31-41Z", True),  # "our plans to use ..."
        ("2025-01-18T00-31-41Z", "2025-02-18T12-31-39Z", False),  # "updates go into effect"
        ("2025-02-18T12-31-39Z", "2025-04-07T12-31-41Z", False),  # "We updated ... on Apr 7"
        ("2025-04-09T00-31-42Z", "2025-04-15T00-31-37Z", True),  # public posts for generative AI
        ("2025-04-15T00-31-37Z", "2025-05-07T12-31-47Z", False),  # "Policy update ..." dropped
    ],
)
def test_notices_of_the_page_own_updates_are_not_changes_of_terms(
    old: str, new: str, news: bool
) -> None:
    """Instagram's privacy policy banner (pga collection), top of each capture: sentences that
    only say the policy was or will be updated stay low; edits of the AI notice itself do not."""
    result = build_report(
        _capture(UPDATE_NOTICES, INSTAGRAM_PRIVACY, old),
        _capture(UPDATE_NOTICES, INSTAGRAM_PRIVACY, new),
        document_name="Instagram Privacy Policy",
    )
    assert bool(_severe(result)) is news
    if not news:
        assert report.UPDATE_NOTICE in {c.annotation for c in result.clauses}


def test_update_notice_sentences() -> None:
    assert noise.is_update_notice("Other updates We updated our Privacy Policy on April 7, 2025.")
    assert noise.is_update_notice("The updates go into effect on April 7, 2025.")
    assert noise.is_update_notice("View our previous policy.")
    assert noise.is_update_notice(
        "We've added information about how WhatsApp provides an option for users to message with "
        "Meta AI."
    )
    assert not noise.is_update_notice("We updated our terms to use your content for AI training.")
    assert not noise.is_update_notice("We may update this policy from time to time.")
    # a banner that states what Meta will do is not only a notice
    assert not noise.only_update_notices_changed(
        None,
        "Based on feedback from regulators, we're delaying our change to the use of your "
        "information to develop and improve AI at Meta. We've reflected this change in our "
        "Privacy Policy update on June 26, 2024. View our previous policy.",
    )
