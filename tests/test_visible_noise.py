"""Pages whose visible text changes at every request (a "generated in" footer, a rotating banner)
but whose extracted text does not: each check is "unchanged", recorded in the cycle's batch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import DocumentConfig
from monitor.extract import extract_clauses
from monitor.models import Blob, Check, Document, Version
from monitor.tracker import NOISY_MARK, NOISY_PROBE_AFTER, page_fingerprint, record_text
from tests.pages import AI_TRAINING, terms_page
from tests.pageserver import PageServer
from tests.test_tracker import Clock, count, declare, run_checks

PROMOS = ("Spring sale: 30% off", "New: albums for families", "Join our webinar on Thursday")


def noisy_page(request: int, *, extra: str | None = None) -> str:
    """The same terms, with a banner and a footer line that differ at every request."""
    page = terms_page(extra=extra)
    banner = f'<nav class="promo"><p>{PROMOS[request % len(PROMOS)]}</p></nav>'
    return page.replace("<main>", banner + "<main>").replace(
        "&copy; 2025 Example Inc.", f"&copy; 2025 Example Inc. Page generated in 0.{request}3 s"
    )


def first_check(page_server: PageServer, sessions: sessionmaker[Session], clock: Clock) -> str:
    """Serve the noisy page at /tos, declare it as ex/t and check it once; the outcome."""
    page_server.set("/tos", noisy_page(0))
    declare(
        sessions, DocumentConfig(id="ex/t", service="Ex", type="T", url=page_server.url("/tos"))
    )
    [result] = run_checks(sessions, ["ex/t"], clock)
    return result.outcome


def test_a_page_with_visible_noise_is_unchanged_and_only_a_real_change_counts(
    page_server: PageServer, sessions: sessionmaker[Session]
) -> None:
    clock = Clock()
    assert first_check(page_server, sessions, clock) == "first"
    blobs = count(sessions, Blob)
    for request in range(1, 4):
        page = noisy_page(request)
        page_server.set("/tos", page)
        clock.advance(timedelta(hours=6))
        [result] = run_checks(sessions, ["ex/t"], clock)
        assert (result.outcome, result.detail) == ("unchanged", "same text")
        with sessions() as session:
            doc = session.get(Document, "ex/t")
            # known to be noisy from the first such check on: the fingerprint is not computed
            assert doc.page_fingerprint == f"{NOISY_MARK}{request - 1}"
            assert doc.last_check_at == clock.now
            assert doc.next_check_at == clock.now + timedelta(hours=6)
            assert session.get(Version, doc.current_version_id).last_seen_at == clock.now
    assert count(sessions, Version) == 1
    assert count(sessions, Blob) == blobs  # nothing stored but the check rows
    assert count(sessions, Check) == 4
    with sessions() as session:
        computed = session.scalars(select(Check.page_fingerprint).order_by(Check.id)).all()
    assert computed[1] == page_fingerprint(noisy_page(1).encode(), "text/html")
    assert computed[2:] == [None, None]
    page_server.set("/tos", noisy_page(4, extra=AI_TRAINING))
    clock.advance(timedelta(hours=6))
    [changed] = run_checks(sessions, ["ex/t"], clock)
    assert changed.outcome == "changed"
    assert count(sessions, Version) == 2


def test_a_recovering_document_is_not_batched_so_its_failure_state_clears(
    page_server: PageServer, sessions: sessionmaker[Session]
) -> None:
    first_check(page_server, sessions, Clock())
    page_server.set("/tos", "down", status=503)
    [failed] = run_checks(sessions, ["ex/t"])
    assert failed.outcome == "failed"
    page_server.set("/tos", noisy_page(1))
    [back] = run_checks(sessions, ["ex/t"])
    assert back.outcome == "unchanged"
    with sessions() as session:
        doc = session.get(Document, "ex/t")
        assert doc.consecutive_failures == 0 and doc.failing_since is None


def test_unchanged_text_checks_cost_a_fixed_number_of_statements_not_one_per_page(
    page_server: PageServer, sessions: sessionmaker[Session]
) -> None:
    """Eight noisy pages are written with as many statements as two: no transaction per page."""

    def statements_for(ids: list[str], request: int) -> int:
        for doc_id in ids:
            page_server.set(f"/{doc_id}", noisy_page(request))
        seen: list[str] = []

        def count_statement(*args: Any) -> None:
            seen.append(args[2])

        engine = sessions.kw["bind"]
        event.listen(engine, "before_cursor_execute", count_statement)
        try:
            results = run_checks(sessions, ids)
        finally:
            event.remove(engine, "before_cursor_execute", count_statement)
        assert {r.detail for r in results} == {"same text"}
        return len(seen)

    ids = [f"n{i}/t" for i in range(8)]
    declare(
        sessions,
        *(DocumentConfig(id=i, service=i, type="T", url=page_server.url(f"/{i}")) for i in ids),
    )
    for doc_id in ids:
        page_server.set(f"/{doc_id}", noisy_page(0))
    run_checks(sessions, ids)  # baselines
    assert statements_for(ids[:2], 1) == statements_for(ids, 2)


def test_a_noisy_page_that_calms_down_goes_back_to_the_fingerprint_shortcut(
    page_server: PageServer, sessions: sessionmaker[Session]
) -> None:
    clock = Clock()
    first_check(page_server, sessions, clock)
    probe = NOISY_PROBE_AFTER + 2  # one check finds the page noisy, then the probe comes
    for request in range(1, probe + 1):
        page_server.set("/tos", noisy_page(request))
        clock.advance(timedelta(hours=6))
        [result] = run_checks(sessions, ["ex/t"], clock)
        assert (result.outcome, result.detail) == ("unchanged", "same text")
    with sessions() as session:
        doc = session.get(Document, "ex/t")
        assert doc.page_fingerprint == page_fingerprint(noisy_page(probe).encode(), "text/html")
    # the page stops changing at every request: the fingerprint recognises it again
    for _ in range(2):
        clock.advance(timedelta(hours=6))
        [result] = run_checks(sessions, ["ex/t"], clock)
        assert (result.outcome, result.detail) == ("unchanged", "same page")


def test_a_noisy_page_is_recognised_by_its_content_and_a_one_word_edit_still_counts(
    page_server: PageServer, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first check the page's parsed content (chrome and tokens left out) is kept as a
    digest: a later page with the same content is not walked into clauses again; an edit of one
    word of the licence is still a change."""
    import monitor.extract

    walks: list[object] = []
    walk = monitor.extract._walk

    def counting_walk(*args: Any, **kwargs: Any) -> Any:
        walks.append(args)
        return walk(*args, **kwargs)

    monkeypatch.setattr(monitor.extract, "_walk", counting_walk)
    clock = Clock()
    assert first_check(page_server, sessions, clock) == "first"
    with sessions() as session:
        assert session.get(Document, "ex/t").content_digest is not None
    walks.clear()
    for request in range(1, 4):
        page_server.set("/tos", noisy_page(request))
        clock.advance(timedelta(hours=6))
        [result] = run_checks(sessions, ["ex/t"], clock)
        assert (result.outcome, result.detail) == ("unchanged", "same text")
    assert walks == []
    edited = noisy_page(4).replace("a non-exclusive", "an exclusive")
    assert edited != noisy_page(4)
    page_server.set("/tos", edited)
    clock.advance(timedelta(hours=6))
    [changed] = run_checks(sessions, ["ex/t"], clock)
    assert changed.outcome == "changed"
    assert len(walks) >= 1


def test_a_content_digest_only_vouches_for_the_text_it_was_made_with(
    page_server: PageServer, sessions: sessionmaker[Session]
) -> None:
    """The digest is kept with the hash of its text: once another text is current (recorded
    by an import here), the same page is walked and compared again, and reported."""
    clock = Clock()
    first_check(page_server, sessions, clock)
    clock.advance(timedelta(hours=1))
    with sessions.begin() as session:
        doc = session.get(Document, "ex/t")
        other = extract_clauses(terms_page(extra=AI_TRAINING))
        imported = record_text(session, doc, other, raw=None, now=clock.now, source="import")
        assert imported.outcome == "changed"
    page_server.set("/tos", noisy_page(0))  # the very page the digest was made from
    clock.advance(timedelta(hours=6))
    [result] = run_checks(sessions, ["ex/t"], clock)
    assert result.outcome == "changed"
