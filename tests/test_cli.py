"""The `tosmon` command as a user runs it: config file, real HTTP, real database."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from monitor.cli import main
from tests.pages import AI_TRAINING, terms_page


@pytest.fixture
def config_file(tmp_path: Path, page_server, database_url: str, data_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    page_server.set("/tos", terms_page())
    path = tmp_path / "tosmon.toml"
    path.write_text(
        f"""
use_catalog = false

[storage]
database_url = "{database_url}"

[fetch]
retries = 1
timeout = 5

[[documents]]
service = "Example"
type = "Terms of Service"
url = "{page_server.url("/tos")}"

[[documents]]
service = "Example"
type = "Privacy Policy"
url = "{page_server.url("/missing")}"
""",
        encoding="utf-8",
    )
    return path


def tosmon(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_check_json_reports_each_document_and_exits_zero(config_file, page_server) -> None:
    status, out = tosmon(config_file, "check", "--json", "--no-send")
    assert status == 0, out
    results = {r["document"]: r for r in json.loads(out)}
    assert results["example/terms-of-service"]["outcome"] == "first"
    assert results["example/privacy-policy"]["outcome"] == "failed"
    assert "404" in results["example/privacy-policy"]["detail"]

    page_server.set("/tos", terms_page(extra=AI_TRAINING))
    status, out = tosmon(config_file, "check", "example/terms-of-service", "--json", "--no-send")
    [result] = json.loads(out)
    assert result["outcome"] == "changed"
    assert isinstance(result["change_id"], int)


def test_plain_check_output_names_outcomes(config_file) -> None:
    status, out = tosmon(config_file, "check", "--no-send")
    assert status == 0
    assert "example/terms-of-service" in out and "first" in out
    assert "example/privacy-policy" in out and "failed" in out


def test_unknown_document_id_is_a_usage_error(config_file) -> None:
    status, out = tosmon(config_file, "check", "nope/terms")
    assert status == 2
    assert "unknown document id(s): nope/terms" in out


def test_history_show_and_diff_after_a_change(config_file, page_server) -> None:
    tosmon(config_file, "check", "--no-send")
    page_server.set("/tos", terms_page(extra=AI_TRAINING))
    tosmon(config_file, "check", "--no-send")

    status, out = tosmon(config_file, "history", "example/terms-of-service", "--json")
    assert status == 0, out
    data = json.loads(out)
    assert len(data["versions"]) == 2
    [change] = data["changes"]
    assert change["severity"] == "high"
    assert "AI_TRAINING_ON_USER_DATA" in change["labels"]

    first_seen = data["versions"][0]["seen_at"]
    status, out = tosmon(config_file, "show", "example/terms-of-service", "--at", first_seen)
    assert status == 0
    assert "Permissions You Give to Us" in out
    assert "artificial intelligence" not in out
    status, out = tosmon(config_file, "show", "example/terms-of-service")
    assert "artificial intelligence" in out

    status, out = tosmon(config_file, "diff", "example/terms-of-service")
    assert status == 0, out
    assert "ADDED" in out
    assert "{+We use information you share" in out  # plain markers when not a terminal


def test_show_before_the_first_version_is_a_clear_error(config_file) -> None:
    tosmon(config_file, "check", "--no-send")
    status, out = tosmon(config_file, "show", "example/terms-of-service", "--at", "2001-01-01")
    assert status == 1
    assert "no version at or before 2001-01-01" in out


def test_documents_lists_failure_state(config_file) -> None:
    tosmon(config_file, "check", "--no-send")
    status, out = tosmon(config_file, "documents", "--json")
    assert status == 0
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["example/terms-of-service"]["failing"] is False
    assert rows["example/terms-of-service"]["versions"] == 1
    assert rows["example/privacy-policy"]["failing"] is True
    assert "404" in rows["example/privacy-policy"]["last_error"]


def test_terminal_output_cannot_carry_escape_sequences(config_file, page_server) -> None:
    tosmon(config_file, "check", "--no-send")
    page_server.set(
        "/tos", terms_page(extra="Evil \x1b]0;pwned\x07 \x1b[2J clause about AI training.")
    )
    tosmon(config_file, "check", "--no-send")
    status, out = tosmon(config_file, "show", "example/terms-of-service")
    assert status == 0
    assert "\x1b" not in out and "clause about AI training" in out


def test_an_unversioned_database_is_refused_with_the_upgrade_command(
    config_file, database_url
) -> None:
    from monitor.db import make_engine

    tosmon(config_file, "check", "--no-send")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    status, out = tosmon(config_file, "documents")
    assert status == 1
    assert "tosmon db upgrade" in out


def test_a_schema_from_a_newer_release_is_refused(config_file, database_url) -> None:
    from monitor.db import make_engine

    tosmon(config_file, "documents")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    status, out = tosmon(config_file, "history", "example/terms-of-service")
    assert status == 1
    assert "newer than this tos-monitor" in out


def test_db_upgrade_is_idempotent(config_file) -> None:
    status, out = tosmon(config_file, "db", "upgrade")
    assert status == 0 and "upgraded" in out
    status, out = tosmon(config_file, "db", "upgrade")
    assert status == 0 and "already at" in out


def test_init_writes_a_config_that_loads(tmp_path: Path, data_dir: Path) -> None:
    from monitor.config import load_config

    target = tmp_path / "new.toml"
    result = CliRunner().invoke(main, ["init", str(target)])
    assert result.exit_code == 0
    assert load_config(target).use_catalog is True
    again = CliRunner().invoke(main, ["init", str(target)])
    assert again.exit_code == 2 and "--force" in again.output


def test_broken_config_names_file_line_and_key(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('use_catalog = false\n\n[fetch]\ntimeout = "soon"\n', encoding="utf-8")
    status, out = tosmon(path, "documents")
    assert status == 2
    assert f"{path}:4" in out and "timeout" in out


def test_every_command_has_help_text() -> None:
    for name, command in main.commands.items():
        assert command.help, f"tosmon {name} has no help text"


def test_check_skips_a_document_a_daemon_is_checking(config_file, database_url) -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.db import make_engine, session_factory
    from monitor.store import scheduling

    tosmon(config_file, "documents")  # declares the documents
    engine = make_engine(database_url)
    try:
        with session_factory(engine).begin() as session:
            claimed = scheduling.claim_due_documents(
                session,
                worker="daemon-elsewhere",
                now=datetime.now(UTC),
                lease=timedelta(minutes=5),
                limit=1,
                only=["example/terms-of-service"],
                due_only=False,
            )
        assert claimed == ["example/terms-of-service"]
        status, out = tosmon(config_file, "check", "--json", "--no-send")
        assert status == 0
        results = {r["document"]: r["outcome"] for r in json.loads(out)}
        assert results == {
            "example/terms-of-service": "skipped",
            "example/privacy-policy": "failed",
        }
        with session_factory(engine)() as session:  # check released only its own claims
            from monitor.models import Document

            assert (
                session.get(Document, "example/terms-of-service").claimed_by == "daemon-elsewhere"
            )
            assert session.get(Document, "example/privacy-policy").claimed_by is None
    finally:
        engine.dispose()


def test_safe_terminal_text_neutralises_c0_c1_and_bidi_controls() -> None:
    from monitor.cli.app import safe_terminal_text

    hostile = "a\x1b[2Jb\x9b31mc\u202edcba\x07\nnext\tline"
    assert safe_terminal_text(hostile) == "a\ufffd[2Jb\ufffd31mc\ufffddcba\ufffd\nnext\tline"


def _three_versions(config_file: Path, page_server) -> None:  # type: ignore[no-untyped-def]
    """A baseline, a UK-spelling edition of it (no real change), then an AI-training clause."""
    from tests.pages import LICENCE

    tosmon(config_file, "check", "--no-send")
    uk_edition = LICENCE.replace("license", "licence")
    assert uk_edition != LICENCE
    page_server.set("/tos", terms_page(licence=uk_edition))
    tosmon(config_file, "check", "--no-send")
    page_server.set("/tos", terms_page(licence=LICENCE, extra=AI_TRAINING))
    tosmon(config_file, "check", "--no-send")


def test_history_and_changes_hide_no_real_change_unless_asked(config_file, page_server) -> None:
    _three_versions(config_file, page_server)
    status, out = tosmon(config_file, "history", "example/terms-of-service")
    assert status == 0, out
    assert "3 version(s), 1 change(s) at low or above" in out
    assert "No real change" not in out
    assert "1 version(s) with no change at low or above not listed" in out
    _, everything = tosmon(config_file, "history", "example/terms-of-service", "--all")
    assert "No real change" in everything and "not listed" not in everything
    _, high = tosmon(config_file, "history", "example/terms-of-service", "--json")
    assert [c["severity"] for c in json.loads(high)["changes"]] == ["high"]
    assert json.loads(high)["hidden_changes"] == 1

    _, listed = tosmon(config_file, "changes", "--json")
    assert [c["severity"] for c in json.loads(listed)] == ["high"]
    _, listed = tosmon(config_file, "changes", "--json", "--all")
    assert [c["severity"] for c in json.loads(listed)] == ["high", "cosmetic"]
    _, listed = tosmon(config_file, "changes", "--json", "--all", "--min-severity", "high")
    assert [c["severity"] for c in json.loads(listed)] == ["high"]


def test_diff_shows_a_stored_change_by_id_and_orders_by_severity(config_file, page_server) -> None:  # type: ignore[no-untyped-def]
    tosmon(config_file, "check", "--no-send")
    # one check brings an AI clause at the end and reworded filler at the start
    page_server.set(
        "/tos",
        terms_page(extra=AI_TRAINING).replace(
            "We agree to provide you with the Service.", "We agree to offer you the Service."
        ),
    )
    tosmon(config_file, "check", "--no-send")
    _, listed = tosmon(config_file, "changes", "--json")
    [change] = json.loads(listed)
    status, out = tosmon(config_file, "diff", "--change", str(change["id"]))
    assert status == 0, out
    assert out.startswith("example/terms-of-service: ")
    headings = [line for line in out.splitlines() if line.startswith(("ADDED", "MODIFIED"))]
    assert [h.split()[0] for h in headings] == ["MODIFIED", "ADDED"]  # document order
    _, ordered = tosmon(config_file, "diff", "--change", str(change["id"]), "--by-severity")
    headings = [line for line in ordered.splitlines() if line.startswith(("ADDED", "MODIFIED"))]
    assert [h.split()[0] for h in headings] == ["ADDED", "MODIFIED"]  # the AI clause first
    assert "[high" in headings[0]
    status, out = tosmon(config_file, "diff", "--change", "999999")
    assert status == 1 and "no change #999999" in out
    status, out = tosmon(config_file, "diff")
    assert status == 2 and "give a document ID" in out


def test_topics_lists_labels_with_their_descriptions(config_file) -> None:
    status, out = tosmon(config_file, "topics")
    assert status == 0, out
    assert "AI_TRAINING_ON_USER_DATA" in out
    assert "train, fine-tune, develop or improve AI" in out
    status, out = tosmon(config_file, "topics", "--json")
    ids = [t["id"] for t in json.loads(out)]
    assert "LICENSE_GRANT" in ids and len(ids) == len(set(ids))


@pytest.mark.parametrize(("setting", "expected"), [("false", 0), ("maybe", 2)])
def test_the_garbage_collector_is_on_after_start_up(
    tmp_path: Path, setting: str, expected: int
) -> None:
    # start-up pauses it while the libraries load; a daemon left without it would grow for ever
    config = tmp_path / "tosmon.toml"
    database = tmp_path / "tosmon.db"
    config.write_text(
        f'use_catalog = {setting}\n[storage]\ndatabase_url = "sqlite:///{database}"\n',
        encoding="utf-8",
    )
    assert gc.isenabled()
    status, out = tosmon(config, "status")
    assert status == expected, out  # a broken config line fails the command, not the collector
    assert gc.isenabled()
