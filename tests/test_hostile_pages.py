"""Hostile and careless responses end as failed checks, never versions (real HTTP, real DBs)."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
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
from tests.test_api import write_config
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


# -- markup that made the regular expressions quadratic -------------------------------------------

UNCLOSED = {
    # after a real page: the page fingerprint scans all of it
    "terms-then-unclosed-scripts": TERMS_HTML.replace("</body>", "<script>" * 125_000),
    "terms-then-unclosed-comments": TERMS_HTML.replace("</body>", "<!--" * 250_000),
    # no word at all: block detection strips the tags of the whole page
    "unclosed-styles-only": "<html><body>" + "<style>" * 140_000,
    "lone-openings-only": "<html><body>" + "<" * 1_000_000,
}


@pytest.mark.parametrize("case", sorted(UNCLOSED))
def test_a_megabyte_of_unclosed_markup_does_not_hold_the_check(
    page_server: PageServer, database_url: str, tmp_path: Path, case: str
) -> None:
    """Each unclosed <script>, <style> or <!-- made the expressions that strip them scan to the
    end of the page again: a 1 MB page took half an hour of CPU (5 MB, the default size limit,
    days), and the daemon's cycle waited. Two `tosmon check` runs now end, each in a child
    process with a time limit (a regular expression holds the interpreter: no thread could
    time it out)."""
    page_server.set("/tos", UNCLOSED[case])
    config = write_config(tmp_path / "tosmon.toml", database_url, page_server.url("/tos"))
    command = [sys.executable, "-m", "monitor", "--config", str(config), "check", "--no-send"]
    outcomes = []
    for _ in range(2):
        try:
            done = subprocess.run(
                [*command, "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("the check of a page of unclosed markup did not end")
        [result] = json.loads(done.stdout)
        outcomes.append(result["outcome"])
    if case == "unclosed-styles-only":  # nothing a reader sees: failed checks, no version
        assert outcomes == ["failed", "failed"]
    else:  # the terms (or a page of "<" signs shown as text): a first version, then unchanged
        assert outcomes == ["first", "unchanged"]
