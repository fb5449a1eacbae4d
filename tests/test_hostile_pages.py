"""Hostile and careless responses end as failed checks, never versions (real HTTP, real DBs)."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import DocumentConfig, load_config
from monitor.fetcher import Fetcher
from monitor.models import Document, Version
from monitor.store import history as store
from monitor.tracker import CheckResult, check_documents
from tests.network import PUBLIC, Routes, names
from tests.pageserver import TERMS_HTML, PageServer
from tests.test_tracker import T0, count, declare, run_checks


def _stacked_bomb() -> bytes:
    """64 MB of zeros, gzipped twice: about 1 KB on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    body = b"".join(compressor.compress(zeros) for _ in range(64)) + compressor.flush()
    return gzip.compress(body)


def _png() -> bytes:
    return bytes.fromhex("89504e470d0a1a0a0000000d4948445200000010") + bytes(range(256)) * 8


HOSTILE = {
    "stacked-gzip-bomb": (
        lambda: _stacked_bomb(),
        {"Content-Encoding": "gzip, gzip"},
        "text/html",
        "response larger than",
    ),
    "brotli": (
        lambda: bytes(range(256)) * 4,
        {"Content-Encoding": "br"},
        "text/html",
        "unsupported Content-Encoding br",
    ),
    "png-as-html": (_png, {}, "text/html; charset=utf-8", "body is not text: it is a PNG image"),
    "gzip-blob-as-html": (
        lambda: gzip.compress(TERMS_HTML.encode()),
        {},
        "text/html",
        "body is not text: it is a gzip file",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_response_is_a_failed_check_never_a_version(
    page_server: PageServer, sessions: sessionmaker[Session], case: str
) -> None:
    make_body, headers, content_type, reason = HOSTILE[case]
    page_server.set("/tos", make_body(), headers=headers, content_type=content_type)
    declare(
        sessions, DocumentConfig(id="ex/tos", service="Ex", type="Tos", url=page_server.url("/tos"))
    )
    [result] = run_checks(sessions, ["ex/tos"])
    assert result.outcome == "failed"
    assert reason in result.detail
    assert count(sessions, Version) == 0
    with sessions() as session:
        document = session.get(Document, "ex/tos")
        assert document is not None and document.consecutive_failures == 1
        [check] = store.last_checks(session, "ex/tos")
        assert check.outcome == "failed" and check.error is not None and reason in check.error
    # the same page served properly afterwards becomes the first version
    page_server.set("/tos", TERMS_HTML)
    [again] = run_checks(sessions, ["ex/tos"])
    assert again.outcome == "first"


# -- redirects into the private network ------------------------------------------------------


def _check_public_document(
    page_server: PageServer, sessions: sessionmaker[Session], config_text: str, tmp_path: Path
) -> CheckResult:
    """One check of a public document (terms.public.test, routed to the page server)."""
    config_file = tmp_path / "tosmon.toml"
    config_file.write_text(config_text, encoding="utf-8")
    fetch = load_config(config_file).fetch
    url = page_server.url("/tos", host="terms.public.test")
    declare(sessions, DocumentConfig(id="ex/tos", service="Ex", type="Tos", url=url))

    async def go() -> list[CheckResult]:
        async with Fetcher(
            retries=0,
            timeout=5,
            allow_private=fetch.allow_private,
            resolver=names({"terms.public.test": [PUBLIC]}),
            network=Routes({PUBLIC: "127.0.0.1"}),
        ) as fetcher:
            return await check_documents(
                ["ex/tos"],
                sessions=sessions,
                fetcher=fetcher,
                interval_for=lambda _d: timedelta(hours=6),
                now=lambda: T0,
                notify=False,
            )

    [result] = asyncio.run(go())
    return result


def test_public_document_redirected_to_loopback_is_a_failed_check(
    page_server: PageServer, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    page_server.set("/internal", TERMS_HTML.replace("Terms of Service", "Router admin"))
    page_server.redirect("/tos", page_server.url("/internal"))
    result = _check_public_document(page_server, sessions, "", tmp_path)
    assert result.outcome == "failed"
    assert "127.0.0.1 is a private address" in result.detail
    assert count(sessions, Version) == 0
    assert page_server.hits("/internal") == 0


def test_allow_private_in_the_config_opts_in(
    page_server: PageServer, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    page_server.set("/internal", TERMS_HTML)
    page_server.redirect("/tos", page_server.url("/internal"))
    result = _check_public_document(
        page_server, sessions, "[fetch]\nallow_private = true\n", tmp_path
    )
    assert result.outcome == "first"
    assert count(sessions, Version) == 1
