"""Rendering: the report a reader gets, complete in both parts, with untrusted text kept inert."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.render import (
    ChangeView,
    ClauseView,
    WordView,
    marked_text,
    one_line,
    render_alert,
    render_change,
    render_confirm,
    render_digest,
    subject_for,
)

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def clause(**overrides: object) -> ClauseView:
    fields: dict[str, object] = {
        "kind": "modified",
        "section": ("Your Commitments", "Permissions"),
        "before": "We use your content to provide the Service.",
        "after": "We use your content to provide the Service and to train AI.",
        "words": (
            WordView("equal", "We use your content to provide the Service"),
            WordView("delete", "."),
            WordView("insert", " and to train AI."),
        ),
        "labels": ("AI_TRAINING_ON_USER_DATA",),
        "direction": "expands",
        "severity": "high",
        "annotation": "Your posts may become training material.",
    }
    fields.update(overrides)
    return ClauseView(**fields)  # type: ignore[arg-type]


def view(*clauses: ClauseView, **overrides: object) -> ChangeView:
    fields: dict[str, object] = {
        "change_id": 7,
        "service": "Instagram",
        "document_id": "instagram/terms-of-use",
        "document_type": "Terms of Use",
        "url": "https://help.instagram.com/terms",
        "detected_at": T0,
        "summary": "Instagram may now train AI on your posts.",
        "severity": "high",
        "clauses": clauses or (clause(),),
    }
    fields.update(overrides)
    return ChangeView(**fields)  # type: ignore[arg-type]


def test_the_subject_names_service_document_and_most_severe_topic() -> None:
    added = clause(kind="added", before=None, words=())
    low = clause(labels=("LICENSE_GRANT",), severity="low")
    assert subject_for(view(low, added)) == "Instagram Terms of Use: new AI training clause (high)"
    removed = clause(kind="removed", after=None, words=(), labels=("AI_NO_TRAINING_COMMITMENT",))
    assert subject_for(view(removed)) == (
        "Instagram Terms of Use: no-AI-training promise clause removed (high)"
    )


def test_page_text_in_the_subject_cannot_break_the_header() -> None:
    hostile = view(service="Evil\r\nBcc: victim@example.org", document_type="Terms\x1b[31m")
    subject = subject_for(hostile)
    assert "\r" not in subject and "\n" not in subject and "\x1b" not in subject
    assert len(one_line("word " * 100)) <= 160


def test_both_parts_carry_summary_annotation_section_and_marked_words() -> None:
    email = render_change(
        view(), base_url="https://tos.example.org", unsubscribe_url="https://u.example/x"
    )
    for part in (email.text, email.html):
        assert "Instagram may now train AI on your posts." in part
        assert "Your posts may become training material." in part
        assert "Your Commitments › Permissions" in part
        assert "https://help.instagram.com/terms" in part
        assert "https://tos.example.org/changes/7" in part
        assert "https://u.example/x" in part
    assert "[-.-]" in email.text and "{+ and to train AI.+}" in email.text
    assert "<del " in email.html and ">.</del>" in email.html
    assert "<ins " in email.html and "> and to train AI.</ins>" in email.html
    # marked by more than colour: strike-through and underline, inline only
    assert "text-decoration:line-through" in email.html
    assert "text-decoration:underline" in email.html
    assert "<style" not in email.html and "class=" not in email.html


def test_without_a_base_url_there_is_no_diff_link() -> None:
    email = render_change(view(), base_url=None, unsubscribe_url=None)
    assert "/changes/7" not in email.html + email.text
    assert "Unsubscribe" not in email.text


def test_cosmetic_changes_are_counted_not_shown() -> None:
    cosmetic = clause(
        before="Welcome to Instagram!",
        after="Welcome to Instagram.",
        words=(),
        labels=(),
        severity="cosmetic",
        annotation="",
    )
    email = render_change(view(clause(), cosmetic, cosmetic), base_url=None, unsubscribe_url=None)
    assert "Welcome to Instagram" not in email.text + email.html
    assert "2 lower-severity clauses not shown (2 cosmetic); the full change:" in email.text
    assert "2 lower-severity clauses not shown (2 cosmetic):" in email.html


def test_a_reader_at_medium_sees_no_low_or_cosmetic_clause_but_a_count_and_a_link() -> None:
    low = clause(
        before="You can contact us by post.",
        after="You can contact us by email.",
        words=(),
        labels=("CONTACT",),
        severity="low",
        annotation="A new way to reach the company.",
    )
    cosmetic = clause(before="Hi!", after="Hi.", words=(), labels=(), severity="cosmetic")
    change = view(clause(), low, cosmetic)
    everything = render_change(change, base_url="https://tos.example.org", unsubscribe_url=None)
    assert "contact us by email" in everything.text and "contact us by email" in everything.html
    email = render_change(
        change, base_url="https://tos.example.org", unsubscribe_url=None, min_severity="medium"
    )
    for part in (email.text, email.html):
        assert "contact us by" not in part and "A new way to reach" not in part
        assert "train AI" in part
        assert "2 lower-severity clauses not shown (1 low, 1 cosmetic)" in part
        assert "https://tos.example.org/changes/7" in part
    assert email.subject == everything.subject
    digest = render_digest(
        [change],
        cadence="daily",
        period_end=T0,
        base_url=None,
        unsubscribe_url=None,
        min_severity="medium",
    )
    assert "contact us by" not in digest.text + digest.html
    assert "not shown (1 low, 1 cosmetic); the full change: https://help.instagram.com" in (
        digest.text
    )


def test_the_subject_states_the_headline_when_the_change_has_one() -> None:
    plain = subject_for(view())
    assert plain == "Instagram Terms of Use: AI training clause changed (high)"
    fact = "Instagram may now use your posts to train its AI models."
    assert subject_for(view(headline=fact)) == (
        "Instagram may now use your posts to train its AI models (Terms of Use, high)"
    )
    titled = "Instagram Terms of Use now lets Meta train AI on your posts"
    assert subject_for(view(headline=titled)) == f"{titled} (high)"
    untitled = "Your posts may train AI"
    assert subject_for(view(headline=untitled)) == (
        "Instagram Terms of Use: Your posts may train AI (high)"
    )
    assert render_change(view(headline=fact), base_url=None, unsubscribe_url=None).subject == (
        subject_for(view(headline=fact))
    )


def test_page_text_is_escaped_in_html_and_verbatim_in_text() -> None:
    hostile = clause(
        after="Click <script>alert(1)</script> <a href='javascript:x'>here</a>",
        words=(),
        annotation="<b>bold</b>",
        section=("<img src=x onerror=alert(1)>",),
    )
    email = render_change(
        view(hostile, summary="<script>steal()</script>"), base_url=None, unsubscribe_url=None
    )
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "<img" not in email.html and "<a href='javascript" not in email.html
    assert "<script>steal()</script>" in email.text
    assert "&lt;" not in email.text


def test_added_and_removed_clauses_show_one_side() -> None:
    added = clause(kind="added", before=None, words=(), after="A brand new clause.")
    removed = clause(kind="removed", after=None, words=(), before="An old promise.")
    email = render_change(view(added, removed), base_url=None, unsubscribe_url=None)
    assert "New clause" in email.text and "Clause removed" in email.text
    assert email.text.count("After:") == 1 and email.text.count("Before:") == 1


def test_marked_text_without_words_falls_back_to_the_whole_clause() -> None:
    plain = clause(words=())
    assert marked_text(plain, "before") == plain.before
    assert marked_text(plain, "after") == plain.after


def test_a_digest_groups_changes_by_service() -> None:
    facebook = view(change_id=8, service="Facebook", document_type="Terms of Service")
    instagram = view(change_id=7)
    email = render_digest(
        [instagram, facebook],
        cadence="weekly",
        period_end=T0,
        base_url="https://tos.example.org",
        unsubscribe_url="https://u.example/x",
    )
    assert email.subject == (
        "Weekly digest: Facebook Terms of Service: AI training clause changed (high); "
        "Instagram Terms of Use: AI training clause changed (high)"
    )
    assert email.text.index("######## Facebook") < email.text.index("######## Instagram")
    assert "https://tos.example.org/changes/8" in email.html
    assert email.html.index(">Facebook</h2>") < email.html.index(">Instagram</h2>")


@pytest.mark.parametrize("renderer", ["confirm", "alert"])
def test_confirmation_and_alert_emails_have_both_parts(renderer: str) -> None:
    if renderer == "confirm":
        email = render_confirm(
            email="a@example.org",
            confirm_url="https://tos.example.org/confirm?token=abc",
            filters=["all services · 12 topics · medium+ · immediate"],
        )
        needle = "https://tos.example.org/confirm?token=abc"
    else:
        email = render_alert(subject="instagram/terms failing", body="HTTP <503>")
        needle = "HTTP "
    assert needle in email.text and needle in email.html
    if renderer == "alert":
        assert "HTTP &lt;503&gt;" in email.html and "HTTP <503>" in email.text


def test_the_most_severe_clauses_come_first_in_both_parts() -> None:
    minor = clause(
        severity="low", labels=(), annotation="Minor rewording.", after="Contact us by post."
    )
    major = clause(annotation="Your posts may become training material.")
    email = render_change(view(minor, major), base_url=None, unsubscribe_url=None)
    for part in (email.text, email.html):
        assert part.index("training material") < part.index("Minor rewording")


def test_a_digest_of_many_changes_names_the_most_severe_and_counts_the_rest() -> None:
    medium = clause(severity="medium")
    views = [
        view(change_id=n, service=f"Service{n}", document_type="Terms", clauses=(medium,))
        for n in range(1, 6)
    ]
    views.append(view(change_id=9, service="Instagram"))
    email = render_digest(
        views, cadence="daily", period_end=T0, base_url=None, unsubscribe_url=None
    )
    assert email.subject == (
        "Daily digest: Instagram Terms of Use: AI training clause changed (high), "
        "and 5 more changes (Service1, Service2, Service3, Service4, Service5)"
    )
    assert len(email.subject) <= 160


def test_a_shortened_report_still_counts_the_clauses_below_the_readers_floor() -> None:
    long_text = "We may use what you post to improve our systems. " * 200
    many = [
        clause(section=(f"Part {n}",), before=long_text, after=long_text + f" Item {n}.", words=())
        for n in range(40)
    ]
    low = clause(severity="low", before="Write to us.", after="Email us.", words=(), labels=())
    email = render_change(
        view(*many, low),
        base_url="https://tos.example.org",
        unsubscribe_url=None,
        min_severity="medium",
    )
    assert "This report is shortened to stay readable" in email.text
    assert "1 lower-severity clause not shown (1 low)" in email.text
    assert "Email us." not in email.text
