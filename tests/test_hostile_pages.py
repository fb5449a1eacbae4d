"""Hostile and careless responses end as failed checks, never versions (real HTTP, real DBs)."""

from __future__ import annotations

import gzip
import zlib

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import DocumentConfig
from monitor.models import Document, Version
from monitor.store import history as store
from tests.pageserver import TERMS_HTML, PageServer
from tests.test_tracker import count, declare, run_checks


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
