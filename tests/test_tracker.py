"""One check of one document, end to end, over real HTTP into a real database."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import DocumentConfig
from monitor.fetcher import Fetcher
from monitor.models import Blob, Change, Check, Document, Version
from monitor.store import history as store
from monitor.tracker import SETTLE_AFTER, CheckResult, check_documents, record_text
from tests.pages import AI_TRAINING, LICENCE_SUBLICENSABLE, terms_page
from tests.test_noise import FACEBOOK_NOTES_CAPTURES

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def declare(sessions: sessionmaker[Session], *docs: DocumentConfig) -> None:
    with sessions.begin() as session:
        store.sync_documents(session, docs, now=T0)


def run_checks(
    sessions: sessionmaker[Session], ids: list[str], clock: Callable[[], datetime] = lambda: T0
) -> list[CheckResult]:
    async def go() -> list[CheckResult]:
        async with Fetcher(retries=1, backoff=0.01, timeout=5) as fetcher:
            return await check_documents(
                ids,
                sessions=sessions,
                fetcher=fetcher,
                interval_for=lambda _d: timedelta(hours=6),
                now=clock,
                notify=False,
            )

    return asyncio.run(go())


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def terms(page_server, sessions):  # type: ignore[no-untyped-def]
    page_server.set("/tos", terms_page())
    declare(
        sessions,
        DocumentConfig(id="ex/terms", service="Ex", type="Terms", url=page_server.url("/tos")),
    )
    return page_server


def test_first_check_is_a_baseline_then_unchanged_costs_one_check_row(terms, sessions) -> None:
    [first] = run_checks(sessions, ["ex/terms"])
    assert first.outcome == "first"
    blobs = count(sessions, Blob)
    # every fetch carries a new per-request token: the raw page differs, the text does not
    for _ in range(3):
        [again] = run_checks(sessions, ["ex/terms"])
        assert again.outcome == "unchanged"
    assert count(sessions, Version) == 1
    assert count(sessions, Blob) == blobs
    assert count(sessions, Check) == 4
    assert count(sessions, Change) == 0


def test_a_new_licence_word_becomes_a_change_with_its_clause(terms, sessions) -> None:
    run_checks(sessions, ["ex/terms"])
    terms.set("/tos", terms_page(licence=LICENCE_SUBLICENSABLE))
    [result] = run_checks(sessions, ["ex/terms"])
    assert result.outcome == "changed"
    assert result.change_id is not None
    with sessions() as session:
        change = session.get(Change, result.change_id)
        assert change is not None
        [clause] = [c for c in change.clauses if c.kind == "modified"]
        assert "sub-licensable" in (clause.after or "")
        assert "sub-licensable" not in (clause.before or "")
        assert ["insert", "sub-licensable"] in [[op, text.strip(" ,")] for op, text in clause.words]
        assert "LICENSE_SUBLICENSE_TRANSFER" in clause.labels
        assert change.severity in ("medium", "high")
        document = session.get(Document, "ex/terms")
        assert document is not None and document.last_change_at is not None


def test_an_edit_inside_a_quoted_tag_example_is_a_change(terms, sessions) -> None:
    """The page fingerprint leaves out attribute values (per-request tokens), inside tags only:
    an AI policy that quotes the tag to write in a page changes when its example does."""
    example = '<meta name="robots" content="{}">'

    def page(directives: str) -> str:
        quoted = html.escape(example.format(directives), quote=False)
        return terms_page(extra=f"To keep AI crawlers out, add {quoted} to your pages.")

    terms.set("/tos", page("noai"))
    run_checks(sessions, ["ex/terms"])
    terms.set("/tos", page("noai, noimageai"))
    [result] = run_checks(sessions, ["ex/terms"])
    assert result.outcome == "changed"
    with sessions() as session:
        change = session.get(Change, result.change_id)
        assert change is not None
        assert any("noimageai" in (c.after or "") for c in change.clauses)


def test_added_ai_clause_is_reported_and_the_next_check_is_quiet(terms, sessions) -> None:
    run_checks(sessions, ["ex/terms"])
    terms.set("/tos", terms_page(extra=AI_TRAINING))
    [changed] = run_checks(sessions, ["ex/terms"])
    [quiet] = run_checks(sessions, ["ex/terms"])
    assert changed.outcome == "changed" and changed.severity == "high"
    assert quiet.outcome == "unchanged"
    assert count(sessions, Change) == 1


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ("/captcha", "captcha"),
        ("/missing", "404"),
        ("/empty", "empty"),
        ("/reset", ""),
    ],
)
def test_failed_fetch_is_recorded_never_a_version(page_server, sessions, route, reason) -> None:
    declare(
        sessions, DocumentConfig(id="ex/bad", service="Ex", type="Bad", url=page_server.url(route))
    )
    [result] = run_checks(sessions, ["ex/bad"])
    assert result.outcome == "failed"
    assert reason.lower() in result.detail.lower()
    assert count(sessions, Version) == 0
    with sessions() as session:
        document = session.get(Document, "ex/bad")
        assert document is not None
        assert document.consecutive_failures == 1 and document.failing_since == T0
        [check] = store.last_checks(session, "ex/bad")
        assert check.outcome in ("failed", "blocked") and check.error


def test_selectors_matching_nothing_fail_and_keep_the_last_version(terms, sessions) -> None:
    run_checks(sessions, ["ex/terms"])
    declare(
        sessions,
        DocumentConfig(
            id="ex/terms", service="Ex", type="Terms", url=terms.url("/tos"), select=("#gone",)
        ),
    )
    [result] = run_checks(sessions, ["ex/terms"])
    assert result.outcome == "failed" and result.blocked
    assert count(sessions, Version) == 1


def test_a_page_far_smaller_than_the_last_is_not_a_version(terms, sessions) -> None:
    run_checks(sessions, ["ex/terms"])
    terms.set(
        "/tos", "<html><body><main><h1>Terms</h1><p>Something went wrong.</p></main></body></html>"
    )
    [result] = run_checks(sessions, ["ex/terms"])
    assert result.outcome == "failed"
    assert "last version" in result.detail
    assert count(sessions, Version) == 1 and count(sessions, Change) == 0


def test_failures_count_up_then_reset_on_recovery(terms, sessions) -> None:
    run_checks(sessions, ["ex/terms"])
    clock = Clock()
    terms.fail("/tos", times=4, status=503)
    for _ in range(2):
        clock.advance(timedelta(hours=1))
        [result] = run_checks(sessions, ["ex/terms"], clock)
        assert result.outcome == "failed"
    with sessions() as session:
        document = session.get(Document, "ex/terms")
        assert document is not None
        assert document.consecutive_failures == 2
        assert document.failing_since == T0 + timedelta(hours=1)
        assert "503" in (document.last_error or "")
    clock.advance(timedelta(hours=1))
    [ok] = run_checks(sessions, ["ex/terms"], clock)
    assert ok.outcome == "unchanged"
    with sessions() as session:
        document = session.get(Document, "ex/terms")
        assert document is not None and document.consecutive_failures == 0
        assert document.failing_since is None


def test_conditional_get_uses_the_stored_etag(page_server, sessions) -> None:
    declare(
        sessions,
        DocumentConfig(id="ex/etag", service="Ex", type="Etag", url=page_server.url("/etag")),
    )
    run_checks(sessions, ["ex/etag"])
    [result] = run_checks(sessions, ["ex/etag"])
    assert result.outcome == "unchanged" and result.http_status == 304
    last = page_server.requests_to("/etag")[-1]
    assert last.headers.get("if-none-match") == '"v1"'


def test_one_bad_document_does_not_stop_the_others(terms, sessions) -> None:
    declare(
        sessions,
        DocumentConfig(id="ex/terms", service="Ex", type="Terms", url=terms.url("/tos")),
        DocumentConfig(id="ex/bad", service="Ex", type="Bad", url=terms.url("/reset")),
    )
    results = run_checks(sessions, ["ex/terms", "ex/bad"])
    assert [r.outcome for r in results] == ["first", "failed"]


def _clauses(html: str):  # type: ignore[no-untyped-def]
    from monitor.extract import extract_clauses

    return extract_clauses(html, media_type="text/html")


def test_a_flip_back_is_quiet_but_a_return_that_stays_is_reported(sessions) -> None:
    declare(
        sessions, DocumentConfig(id="ex/flip", service="Ex", type="Flip", url="http://127.0.0.1:9/")
    )
    plain, with_ai = (
        _clauses(terms_page(token="t")),
        _clauses(terms_page(extra=AI_TRAINING, token="t")),
    )
    with sessions.begin() as session:
        document = session.get(Document, "ex/flip")
        assert document is not None
        assert (
            record_text(session, document, plain, raw=None, now=T0, notify=False).outcome == "first"
        )
        added = record_text(
            session, document, with_ai, raw=None, now=T0 + timedelta(days=1), notify=False
        )
        assert added.severity == "high"
        # the page flips back to the text it had before: already seen, not news yet
        back = record_text(
            session, document, plain, raw=None, now=T0 + timedelta(days=2), notify=False
        )
        assert back.outcome == "changed" and back.severity in ("cosmetic", "low")
        # ... and stays there: the removal of the AI clause is now reported in full
        later = T0 + timedelta(days=2) + SETTLE_AFTER + timedelta(hours=1)
        still = record_text(session, document, plain, raw=None, now=later, notify=False)
        assert still.outcome == "unchanged"
        settled = [c for c in store.changes_of(session, "ex/flip") if c.source == "settled"]
        assert len(settled) == 1
        assert settled[0].severity in ("medium", "high")
        assert any(
            c.kind == "removed" and "artificial intelligence" in (c.before or "")
            for c in settled[0].clauses
        )


def test_a_page_that_really_got_shorter_is_accepted_once_it_stays(terms, sessions) -> None:
    run_checks(sessions, ["ex/terms"])
    short = (
        "<html><body><main><h1>Terms</h1><p>We now keep it short: be nice.</p></main></body></html>"
    )
    terms.set("/tos", short)
    outcomes = [run_checks(sessions, ["ex/terms"])[0].outcome for _ in range(3)]
    assert outcomes == ["failed", "failed", "changed"]
    assert count(sessions, Version) == 2
    # a different short page in between restarts the count
    terms.set("/tos", terms_page())
    run_checks(sessions, ["ex/terms"])


def _long_clause(sentences: int, *, changed_every: int = 0, seed: int = 7) -> str:
    """A hostile clause: boilerplate sentences repeated over and over (every ``changed_every``-th
    one reworded), the shape that made sentence matching quadratic."""
    import random

    rng = random.Random(seed)
    pool = [
        f"section {n} applies to your use of the service and to the content you share;"
        for n in range(30)
    ]
    out = []
    for k in range(sentences):
        sentence = pool[rng.randrange(len(pool))]
        if changed_every and k % changed_every == 0:
            sentence = "we may now use what you share in new ways worldwide;"
        out.append(sentence)
    return " ".join(out)


def test_a_huge_changed_clause_is_analysed_outside_the_write_transaction(
    page_server, sessions, engine, monkeypatch
) -> None:
    """A 100 KB+ reworded clause: the check completes, the change says its diff is coarse, and
    another writer (a subscribe on its own connection) succeeds while the analysis runs."""
    import threading

    from sqlalchemy import create_engine

    from monitor import subscriptions, tracker
    from monitor.db import session_factory
    from monitor.report import COARSE_NOTE

    before = _long_clause(1600)
    after = _long_clause(1600, changed_every=7)
    assert len(after) > 100_000
    page_server.set("/tos", terms_page(licence=before))
    declare(
        sessions,
        DocumentConfig(id="ex/terms", service="Ex", type="Terms", url=page_server.url("/tos")),
    )
    [first] = run_checks(sessions, ["ex/terms"])
    assert first.outcome == "first"

    # Another writer on its own connection, with a short lock wait (a locked SQLite file fails
    # with "database is locked" after it), runs while the report is being built.
    other_engine = create_engine(
        engine.url, connect_args={"timeout": 2} if engine.dialect.name == "sqlite" else {}
    )
    other = session_factory(other_engine)
    outcome: list[object] = []
    real_build_report = tracker.build_report

    def build_report_while_someone_subscribes(*args, **kwargs):  # type: ignore[no-untyped-def]
        def subscribe() -> None:
            try:
                with other.begin() as session:
                    result = subscriptions.subscribe(
                        session, "reader@example.org", subscriptions.as_filter(), now=T0
                    )
                outcome.append(result.state)
            except Exception as exc:
                outcome.append(exc)

        if not outcome:
            writer = threading.Thread(target=subscribe)
            writer.start()
            writer.join()
        return real_build_report(*args, **kwargs)

    monkeypatch.setattr(tracker, "build_report", build_report_while_someone_subscribes)
    page_server.set("/tos", terms_page(licence=after))
    try:
        [second] = run_checks(sessions, ["ex/terms"])
    finally:
        other_engine.dispose()
    assert outcome == ["pending"], outcome
    assert second.outcome == "changed"
    with sessions() as session:
        change = session.get(Change, second.change_id)
        assert change is not None
        assert COARSE_NOTE in change.notes
        [clause] = [c for c in change.clauses if c.kind == "modified"]
        # the diff is exact text even where it is coarse
        after_text = "".join(text for op, text in clause.words if op != "delete")
        assert after_text == clause.after
        assert "we may now use what you share" in after_text


def test_the_transaction_redoes_an_analysis_made_against_an_older_version(terms, sessions) -> None:
    """If the document moved on between analysis and transaction, the report compares with the
    version that is current at write time, never with the stale one."""
    from monitor.fetcher import FetchResult
    from monitor.tracker import analyse_fetch, record_fetch

    [first] = run_checks(sessions, ["ex/terms"])
    assert first.outcome == "first"

    def fetched(html: str) -> FetchResult:
        return FetchResult(
            url=terms.url("/tos"),
            status=200,
            content=html.encode(),
            media_type="text/html",
            charset="utf-8",
            etag=None,
            last_modified=None,
            not_modified=False,
            duration=0.0,
        )

    middle = fetched(terms_page(extra=AI_TRAINING))
    final = fetched(terms_page(extra=AI_TRAINING, licence=LICENCE_SUBLICENSABLE))
    with sessions() as session:
        document = store.get_document(session, "ex/terms")
        stale = analyse_fetch(session, document, final)  # against the first version
    assert stale is not None and stale.report is not None
    # meanwhile another version is recorded
    with sessions.begin() as session:
        document = store.get_document(session, "ex/terms")
        record_fetch(session, document, middle, now=T0, duration=0.0, interval=timedelta(hours=6))
    with sessions.begin() as session:
        document = store.get_document(session, "ex/terms")
        result = record_fetch(
            session,
            document,
            final,
            now=T0 + timedelta(hours=1),
            duration=0.0,
            interval=timedelta(hours=6),
            analysis=stale,
        )
    assert result.outcome == "changed"
    with sessions() as session:
        change = session.get(Change, result.change_id)
        assert change is not None
        # compared with the middle version: the AI clause is not new any more, the licence is
        assert [c.kind for c in change.clauses] == ["modified"]
    assert sorted(c.kind for c in stale.report.clauses) == ["added", "modified"]


def test_a_page_nested_too_deep_to_read_is_a_failed_check_not_a_shorter_version(
    terms, sessions
) -> None:
    [first] = run_checks(sessions, ["ex/terms"])
    assert first.outcome == "first"
    deep = "<div>" * 5000 + "<p>Deep.</p>" + "</div>" * 5000
    terms.set("/tos", terms_page(extra=AI_TRAINING).replace("<main>", "<main>" + deep, 1))
    [second] = run_checks(sessions, ["ex/terms"])
    assert second.outcome == "failed"
    assert "depth" in second.detail
    assert count(sessions, Version) == 1


def test_a_return_that_stays_is_reported_by_a_scheduled_check_too(terms, sessions) -> None:
    """The settled report is built before the check's write transaction, then recorded once."""
    clock = Clock()
    assert run_checks(sessions, ["ex/terms"], clock)[0].outcome == "first"
    terms.set("/tos", terms_page(extra=AI_TRAINING))
    clock.advance(timedelta(days=1))
    assert run_checks(sessions, ["ex/terms"], clock)[0].severity == "high"
    terms.set("/tos", terms_page())
    clock.advance(timedelta(days=1))
    back = run_checks(sessions, ["ex/terms"], clock)[0]
    assert back.outcome == "changed" and back.severity in ("cosmetic", "low")
    clock.advance(SETTLE_AFTER + timedelta(hours=1))
    assert run_checks(sessions, ["ex/terms"], clock)[0].outcome == "unchanged"
    clock.advance(timedelta(hours=6))
    assert run_checks(sessions, ["ex/terms"], clock)[0].outcome == "unchanged"
    with sessions() as session:
        settled = [c for c in store.changes_of(session, "ex/terms") if c.source == "settled"]
        assert len(settled) == 1 and settled[0].severity in ("medium", "high")


def test_a_change_keeps_its_headline_and_the_email_leads_with_it(terms, sessions) -> None:
    from monitor import render
    from monitor.store.mail import load_change_view

    run_checks(sessions, ["ex/terms"])
    terms.set("/tos", terms_page(extra=AI_TRAINING))
    [changed] = run_checks(sessions, ["ex/terms"])
    headline = "Ex may now use your public posts to train or improve AI"
    with sessions() as session:
        change = session.get(Change, changed.change_id)
        assert change is not None and change.headline == headline
        view = load_change_view(session, change.id)
    assert view is not None and view.headline == headline
    assert render.subject_for(view) == f"{headline} (Terms, high)"  # the fact first
    email = render.render_change(view, base_url=None, unsubscribe_url=None)
    assert headline in email.text.split("\n\n")[1]
    assert headline in email.html


# --- real Meta captures (Open Terms Archive, ODbL 1.0 / ODC-By 1.0; see tests/data/README.md) -----

DATA = Path(__file__).resolve().parent / "data"


def _declare_offline(
    sessions: sessionmaker[Session], doc_id: str, service: str, type_: str
) -> None:
    """Declare a document whose versions the test records itself (its URL is never fetched)."""
    declare(
        sessions,
        DocumentConfig(id=doc_id, service=service, type=type_, url="http://127.0.0.1:9/"),
    )


def _capture(path: Path):  # type: ignore[no-untyped-def]
    from monitor.extract import extract_clauses

    return extract_clauses(path.read_bytes(), media_type="text/markdown")


def test_notes_shown_again_that_stay_are_not_reported_when_they_settle(sessions) -> None:
    """Facebook's privacy policy (first two sections): notes written out in May 2025, closed in
    June, open in November, the December update captured with its notes closed, then the notes
    written out again in January and kept. The page staying with its notes open is not a
    change: the notes' AI wording came with the December change, reported then."""
    folder = DATA / "classify" / "noise" / "notes" / "versions" / "Facebook" / "Privacy Policy"
    may, june, november, december, january = (
        _capture(folder / f"{stamp}.md") for stamp in FACEBOOK_NOTES_CAPTURES
    )
    _declare_offline(sessions, "fb/privacy", "Facebook", "Privacy Policy")
    with sessions.begin() as session:
        document = session.get(Document, "fb/privacy")
        assert document is not None
        for day, version in ((-180, may), (-160, june), (0, november)):
            record_text(
                session, document, version, raw=None, now=T0 + timedelta(days=day), notify=False
            )
        update = record_text(
            session, document, december, raw=None, now=T0 + timedelta(days=21), notify=False
        )
        assert update.severity == "high"
        back = T0 + timedelta(days=50)
        record_text(session, document, january, raw=None, now=back, notify=False)
        stays = record_text(
            session, document, january, raw=None, now=back + SETTLE_AFTER * 2, notify=False
        )
        assert stays.outcome == "unchanged"
        severe = [
            c.detected_at
            for c in store.changes_of(session, "fb/privacy")
            if c.severity in ("medium", "high")
        ]
        assert severe == [T0 + timedelta(days=21)]


def test_a_page_of_the_document_showing_an_error_is_refused_until_it_stays(sessions) -> None:
    """Llama API Terms of Service: three pages in one document; in some captures the first page
    shows Meta's error message ("This page isn't available. An unexpected error has occurred").
    Such a capture is not a version (its missing page is not a removal), unless it stays."""
    folder = DATA / "partial" / "Llama API" / "Terms of Service"
    complete = _capture(folder / "2025-11-13T00-52-16Z.md")
    failed = _capture(folder / "2025-11-14T00-52-28Z.md")
    _declare_offline(sessions, "llama/terms", "Llama API", "Terms")
    with sessions.begin() as session:
        document = session.get(Document, "llama/terms")
        assert document is not None
        assert record_text(session, document, complete, raw=None, now=T0).outcome == "first"
        outcomes = [
            record_text(session, document, failed, raw=None, now=T0 + timedelta(days=day))
            for day in (1, 2, 3)
        ]
        assert [r.outcome for r in outcomes] == ["failed", "failed", "failed"]
        assert "error message" in outcomes[0].detail
        assert store.changes_of(session, "llama/terms") == []
        # the same text for SETTLE_AFTER and three checks: the page really is that way now
        kept = record_text(
            session, document, failed, raw=None, now=T0 + timedelta(days=1) + SETTLE_AFTER
        )
        assert kept.outcome == "changed"
