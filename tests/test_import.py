"""`tosmon import`: years of real history on day one, with no email sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from monitor.cli import main
from monitor.models import Delivery
from tests.conftest import DATA_DIR

DATASET = DATA_DIR / "ota"


@pytest.fixture
def config_file(tmp_path: Path, database_url: str, data_dir: Path) -> Path:
    path = tmp_path / "tosmon.toml"
    path.write_text(
        f'use_catalog = false\n[storage]\ndatabase_url = "{database_url}"\n', encoding="utf-8"
    )
    return path


def tosmon(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_import_records_each_capture_at_its_date(config_file: Path) -> None:
    status, out = tosmon(config_file, "import", str(DATASET))
    assert status == 0, out
    assert "meta-ai/terms-of-service: 3 captures, 3 imported" in out
    # two captures of 2020-10-23 are an error page the archive kept: refused, not versions
    assert "whatsapp/terms-of-service: 14 captures, 12 imported, 2 refused (error pages)" in out

    status, out = tosmon(config_file, "history", "whatsapp/terms-of-service", "--json")
    history = json.loads(out)
    seen = [v["seen_at"][:19].replace(":", "-") + "Z" for v in history["versions"]]
    # a capture whose text is the same as the one before (only link targets changed) is no version
    assert seen == [
        "2020-07-29T13-32-35Z",
        "2020-10-28T08-31-14Z",
        "2021-01-01T18-03-01Z",
        "2021-02-15T09-02-44Z",
        "2021-04-29T13-10-22Z",
    ]
    assert {v["source"] for v in history["versions"]} == {"import"}
    assert len(history["changes"]) == len(seen) - 1

    # the version in force between two captures is the earlier one
    _, between = tosmon(config_file, "show", "whatsapp/terms-of-service", "--at", "2021-03-01")
    _, at_capture = tosmon(
        config_file, "show", "whatsapp/terms-of-service", "--at", "2021-02-15T09:02:44Z"
    )
    _, before = tosmon(config_file, "show", "whatsapp/terms-of-service", "--at", "2021-02-15")
    assert between == at_capture != before


def test_import_is_idempotent_and_sends_nothing(config_file: Path, database_url: str) -> None:
    from monitor.db import make_engine, session_factory

    status, out = tosmon(config_file, "subscribe", "reader@example.org", "--no-confirm")
    assert status == 0, out
    tosmon(config_file, "import", str(DATASET))
    status, out = tosmon(config_file, "import", str(DATASET), "--json")
    assert status == 0
    counts = {row["document"]: row for row in json.loads(out)}
    assert counts["whatsapp/terms-of-service"]["imported"] == 0
    assert counts["whatsapp/terms-of-service"]["skipped"] == 14
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            reports = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.kind != "confirm")
            )
    finally:
        engine.dispose()
    assert reports == 0


def test_link_only_captures_and_variant_returns_are_not_news(config_file: Path) -> None:
    tosmon(config_file, "import", str(DATASET))
    status, out = tosmon(config_file, "history", "whatsapp/terms-of-service", "--json")
    assert status == 0
    history = json.loads(out)
    # 2022-01-17 .. 2025-09-23 differ from 2021-04-29 only by link targets and anchors (the
    # 2023-08-19 capture even returns to a variant first seen on 2022-10-13): no change at all
    assert history["versions"][-1]["seen_at"].startswith("2021-04-29")
    assert all(c["detected_at"] < "2022" for c in history["changes"])


def test_an_empty_folder_is_a_clear_error(config_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    status, out = tosmon(config_file, "import", str(empty))
    assert status == 1
    assert "holds no Open Terms Archive captures" in out


def test_changes_lists_imported_records_with_filters(config_file: Path) -> None:
    tosmon(config_file, "import", str(DATASET))
    status, out = tosmon(config_file, "changes", "--json", "--min-severity", "cosmetic")
    everything = json.loads(out)
    assert status == 0 and everything
    dates = [c["detected_at"] for c in everything]
    assert dates == sorted(dates, reverse=True)
    status, out = tosmon(config_file, "changes", "--json", "--service", "Meta AI")
    assert {c["service"] for c in json.loads(out)} <= {"Meta AI"}
    status, out = tosmon(config_file, "changes", "--json", "--min-severity", "high")
    assert all(c["severity"] == "high" for c in json.loads(out))
    status, out = tosmon(config_file, "changes", "--since", "2024-01-01", "--json")
    assert all(c["detected_at"] >= "2024-01-01" for c in json.loads(out))
    status, out = tosmon(config_file, "changes", "--topic", "NOT_A_TOPIC")
    assert status == 2 and "unknown topic" in out


def test_each_imported_change_has_a_headline_and_the_changes_line_shows_it(
    config_file: Path,
) -> None:
    tosmon(config_file, "import", str(DATASET))
    status, out = tosmon(config_file, "changes", "--json", "--min-severity", "medium")
    records = json.loads(out)
    assert status == 0 and records
    assert all(r["headline"] and r["headline"][0].isupper() for r in records)
    status, out = tosmon(config_file, "changes", "--min-severity", "medium")
    assert status == 0
    for record in records:
        assert f"#{record['id']}" in out and record["headline"][:40] in out


def test_the_llama_api_training_change_is_found_in_full_history(
    config_file: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    """Replay the real history of one document from ../shared/corpus (skipped without it)."""
    dataset = tmp_path / "llama"
    (dataset / "Llama API").mkdir(parents=True)
    (dataset / "Llama API" / "Terms of Service").symlink_to(
        corpus_dir / "versions" / "Llama API" / "Terms of Service"
    )
    status, out = tosmon(config_file, "import", str(dataset))
    assert status == 0, out
    status, out = tosmon(
        config_file, "changes", "--json", "--min-severity", "medium", "--service", "Llama API"
    )
    found = [c for c in json.loads(out) if c["detected_at"].startswith("2026-07-08T22:33:30")]
    assert found, "the 2026-07-08 change (free tier used for training) was not reported"
    assert {"AI_TRAINING_ON_USER_DATA", "AI_NO_TRAINING_COMMITMENT"} & set(found[0]["labels"])
