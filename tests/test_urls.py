"""Credentials in document URLs are never shown: CLI, logs, emails, errors (real HTTP and DBs)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.config import url_problem
from monitor.logs import JSONFormatter, TextFormatter
from monitor.urls import mask_credentials
from tests.pages import AI_TRAINING, terms_page
from tests.pageserver import PageServer

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://bob:hunter2@example.org/tos", "https://***@example.org/tos"),
        ("https://token@example.org", "https://***@example.org"),
        ("http://a:b@c@example.org:8080/x?y=1#z", "http://***@example.org:8080/x?y=1#z"),
        ("failed: HTTP://u:p@h/ and https://v:q@i/x", "failed: HTTP://***@h/ and https://***@i/x"),
        ("https://example.org/path@not-userinfo", "https://example.org/path@not-userinfo"),
        ("https://example.org/?to=me@example.org", "https://example.org/?to=me@example.org"),
        ("write to bob@example.org", "write to bob@example.org"),
        ("no url at all", "no url at all"),
    ],
)
def test_mask_credentials(text: str, shown: str) -> None:
    assert mask_credentials(text) == shown


def test_log_lines_never_show_credentials() -> None:
    record = logging.LogRecord(
        "monitor.tracker",
        logging.INFO,
        __file__,
        1,
        "fetching %s",
        (f"https://bob:{SECRET}@h/",),
        None,
    )
    assert TextFormatter().format(record).endswith("fetching https://***@h/")
    assert json.loads(JSONFormatter().format(record))["message"] == "fetching https://***@h/"


def test_config_errors_never_show_credentials() -> None:
    problem = url_problem(f"https://bob:{SECRET}@example.org:notaport/")
    assert problem is not None and SECRET not in problem and "***@example.org" in problem


@pytest.fixture
def config_file(tmp_path: Path, page_server: PageServer, database_url: str, data_dir: Path) -> Path:
    page_server.set("/tos", terms_page())
    secret_url = page_server.url("/tos").replace("http://", f"http://bob:{SECRET}@")
    missing_url = page_server.url("/missing").replace("http://", f"http://bob:{SECRET}@")
    path = tmp_path / "tosmon.toml"
    path.write_text(
        f"""
use_catalog = false
[storage]
database_url = "{database_url}"
[fetch]
retries = 0
timeout = 5
[[documents]]
service = "Example"
type = "Terms of Service"
url = "{secret_url}"
[[documents]]
service = "Example"
type = "Privacy Policy"
url = "{missing_url}"
[[documents]]
service = "Example"
type = "Cookie Policy"
url = "{page_server.url("/cookies")}\\u001b]0;pwned\\u0007\\u001b[2J"
""",
        encoding="utf-8",
    )
    return path


def tosmon(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_output_never_shows_credentials_or_terminal_controls(
    config_file: Path, page_server: PageServer
) -> None:
    check = tosmon(config_file, "check", "example/terms-of-service", "example/privacy-policy")
    assert "failed" in check and "404" in check
    assert page_server.hits("/tos") == 1  # the credentials were still used to fetch
    page_server.set("/tos", terms_page(extra=AI_TRAINING))
    tosmon(config_file, "check", "example/terms-of-service")

    documents = tosmon(config_file, "documents")
    assert "http://***@127.0.0.1" in documents
    assert "\x1b" not in documents and "\x07" not in documents
    assert "/cookies\ufffd]0;pwned" in documents
    as_json = json.loads(tosmon(config_file, "documents", "--json"))
    failing = next(d for d in as_json if d["id"] == "example/privacy-policy")
    assert failing["url"].startswith("http://***@127.0.0.1") and failing["last_error"]
    status = tosmon(config_file, "status", "--json")
    report = tosmon(config_file, "report", "1", "--text")
    assert "http://***@127.0.0.1" in report
    for output in (check, documents, json.dumps(as_json), status, report):
        assert SECRET not in output
