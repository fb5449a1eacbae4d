"""The read-only web history over real HTTP: every page reachable from the home page renders,
the links hold, hostile text stays text, feeds parse, and nothing in it writes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import make_engine, session_factory, upgrade
from monitor.importer import import_dataset
from monitor.models import Change, Check, Version
from monitor.web import WebServer, serve
from tests.conftest import _databases, empty_database
from tests.mailfactory import AI_CLAUSE, SECRET, T0, mail_config, make_change, make_document

HISTORY = Path(__file__).parent / "data" / "classify" / "events" / "versions"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module", params=_databases())
def sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """One database per kind for the whole module: the pages only read."""
    with empty_database(request.param, tmp_path_factory.mktemp("site"), request) as url:
        engine = make_engine(url)
        upgrade(engine)
        yield session_factory(engine)
        engine.dispose()


@pytest.fixture(scope="module")
def site(
    sessions: sessionmaker[Session], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    """Real Meta history (Facebook, Instagram, Llama API) plus one change with hostile text."""
    tmp_path = tmp_path_factory.mktemp("web")
    import_dataset(sessions, HISTORY)
    with sessions.begin() as session:
        document = make_document(
            session, doc_id="evil/terms", service="Evil " + HOSTILE, type_="Terms"
        )
        make_change(
            session,
            document,
            [{**AI_CLAUSE, "after": "We train AI on your posts. " + HOSTILE}],
            summary="Summary " + HOSTILE,
        )
    server = serve(mail_config(tmp_path), sessions, now=lambda: T0, key=SECRET.encode())
    yield server
    server.stop()


def links(html: str, base: str) -> list[str]:
    found = []
    for href in re.findall(r'href="([^"]+)"', html):
        url = urljoin(base, href.replace("&amp;", "&"))
        if urlsplit(url).netloc == urlsplit(base).netloc:
            found.append(url.split("#")[0])
    return found


def counts(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    with sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model))
            for model in (Change, Version, Check)
        )


def test_every_page_linked_from_home_renders_and_writes_nothing(
    site: WebServer, sessions: sessionmaker[Session]
) -> None:
    before = counts(sessions)
    seen: set[str] = set()
    queue = [site.url + "/"]
    kinds: set[str] = set()
    with httpx.Client() as client:
        while queue and len(seen) < 300:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            response = client.get(url)
            assert response.status_code == 200, url
            kind = response.headers["content-type"].split(";")[0]
            kinds.add(urlsplit(url).path.split("/")[1] or "home")
            if kind == "text/html":
                assert "<script" not in response.text, url
                assert "script-src" not in response.headers["content-security-policy"]
                assert "'unsafe-inline'" not in response.headers["content-security-policy"]
                queue.extend(links(response.text, url))
            elif kind == "application/atom+xml":
                parsed = feedparser.parse(response.content)
                assert not parsed.bozo, url
    assert {"home", "services", "documents", "changes", "stance", "feeds", "static"} <= kinds
    assert counts(sessions) == before


def test_hostile_page_text_is_shown_as_text(
    site: WebServer, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        change_id = session.scalars(
            select(Change.id).where(Change.document_id == "evil/terms")
        ).one()
    page = httpx.get(f"{site.url}/changes/{change_id}")
    assert page.status_code == 200
    assert "<script>" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    home = httpx.get(site.url + "/")
    assert "<script>" not in home.text and "Evil &lt;script&gt;" in home.text


def test_change_page_has_side_by_side_diff_and_neighbours(
    site: WebServer, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        ids = session.scalars(
            select(Change.id)
            .where(Change.document_id == "instagram/terms-of-service")
            .order_by(Change.detected_at)
        ).all()
    assert ids, "the imported Instagram history has a change"
    page = httpx.get(f"{site.url}/changes/{ids[0]}").text
    assert '<div class="side before">' in page and '<div class="side after">' in page
    assert "<ins>" in page or "<del>" in page  # changed words marked
    assert "Why it matters:" in page
    assert 'href="/documents/instagram/terms-of-service"' in page


def test_document_timeline_filters_by_severity(site: WebServer) -> None:
    path = f"{site.url}/documents/facebook/privacy-policy"
    everything = httpx.get(path, params={"min_severity": "cosmetic"}).text
    high = httpx.get(path, params={"min_severity": "high"}).text
    assert everything.count('class="change"') >= high.count('class="change"')
    assert httpx.get(path, params={"min_severity": "loud"}).status_code == 404


def test_version_page_shows_the_text_in_force_on_a_date(site: WebServer) -> None:
    base = f"{site.url}/documents/instagram/terms-of-service/at"
    later = httpx.get(f"{base}/2025-06-01")
    assert later.status_code == 200
    assert "first seen 02 Jan 2025" in later.text  # the 2025-01-02 capture was in force
    earlier = httpx.get(f"{base}/2024-12-01")
    assert "first seen 21 Nov 2024" in earlier.text
    assert httpx.get(f"{base}/2001-01-01").status_code == 404


def test_stance_quotes_current_clauses_with_since_dates(site: WebServer) -> None:
    page = httpx.get(f"{site.url}/stance").text
    assert "AI training" in page
    assert page.count("<blockquote>") >= 3
    assert re.search(r"since (at least )?\d\d \w\w\w 20\d\d", page)


@pytest.mark.parametrize(
    "path",
    [
        "/changes/999999999",
        "/changes/99999999999999999999999",
        "/documents/nope/nothing",
        "/services/nope",
        "/feeds/topics/NOT_A_TOPIC.atom",
        "/feeds/services/nope.atom",
        "/versions/1/raw",  # imported versions have no raw snapshot
    ],
)
def test_unknown_things_are_404(site: WebServer, path: str) -> None:
    assert httpx.get(site.url + path).status_code == 404


def test_feeds_filter_by_topic_and_severity(site: WebServer) -> None:
    topic = feedparser.parse(
        httpx.get(f"{site.url}/feeds/topics/AI_TRAINING_ON_USER_DATA.atom").content
    )
    assert not topic.bozo and topic.entries
    for entry in topic.entries:
        assert "AI_TRAINING_ON_USER_DATA" in {t.term for t in entry.tags}
    high = feedparser.parse(httpx.get(f"{site.url}/feeds/all.atom?min_severity=high").content)
    assert all("high" in {t.term for t in e.tags} for e in high.entries)


def test_the_json_api_mirrors_the_cli(site: WebServer, sessions: sessionmaker[Session]) -> None:
    documents = httpx.get(f"{site.url}/api/documents").json()
    assert "instagram/terms-of-service" in {d["id"] for d in documents}
    history = httpx.get(f"{site.url}/api/documents/instagram/terms-of-service/history").json()
    assert history["document"] == "instagram/terms-of-service" and history["versions"]

    changes = httpx.get(
        f"{site.url}/api/changes",
        params={"topic": "AI_TRAINING_ON_USER_DATA", "min_severity": "medium", "limit": "5"},
    ).json()
    assert 0 < len(changes) <= 5
    assert all("AI_TRAINING_ON_USER_DATA" in c["labels"] for c in changes)
    one = httpx.get(f"{site.url}/api/changes/{changes[0]['id']}").json()
    assert one["id"] == changes[0]["id"] and one["headline"] and one["clauses"]

    stance = httpx.get(f"{site.url}/api/stance").json()
    assert {s["service"] for s in stance["services"]} >= {"Instagram", "Facebook"}

    assert httpx.get(f"{site.url}/api/changes/999999").status_code == 404
    assert httpx.get(f"{site.url}/api/documents/nope/history").status_code == 404
    bad = httpx.get(f"{site.url}/api/changes", params={"topic": "NOT_A_TOPIC"})
    assert bad.status_code == 404 and "NOT_A_TOPIC" in bad.json()["error"]
    assert httpx.get(f"{site.url}/api/changes", params={"since": "soon"}).status_code == 400
    assert httpx.get(f"{site.url}/api/changes", params={"limit": "0"}).status_code == 400
