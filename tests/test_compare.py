"""`tosmon compare OLD NEW`: the annotated report on two files a user saved, no database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from tests.conftest import DATA_DIR
from tests.pages import AI_TRAINING, LICENCE_SUBLICENSABLE, terms_page

EVENTS_DIR = DATA_DIR / "classify" / "events"
EVENTS = [json.loads(line) for line in (EVENTS_DIR / "events.jsonl").read_text().splitlines()]
SEVERE = ("medium", "high")


def compare(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["compare", *args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize("event", EVENTS, ids=[e["what"][:40] for e in EVENTS])
def test_every_known_event_is_found_by_compare(event: dict[str, object]) -> None:
    status, out = compare(
        str(EVENTS_DIR / str(event["old"])), str(EVENTS_DIR / str(event["new"])), "--json"
    )
    assert status == 0, out
    report = json.loads(out)
    expected = set(event["labels"])  # type: ignore[arg-type]
    hits = [c for c in report["clauses"] if expected & set(c["labels"]) and c["severity"] in SEVERE]
    assert hits, f"{event['what']}: no clause labelled {sorted(expected)} at medium or above"
    assert report["severity"] in SEVERE
    assert set(report) >= {"clauses", "summary", "severity"}
    assert set(hits[0]) >= {
        "kind",
        "section",
        "before",
        "after",
        "labels",
        "direction",
        "severity",
        "annotation",
    }


def test_compare_html_files_explains_a_sublicence_in_plain_words(tmp_path: Path) -> None:
    old, new = tmp_path / "old.html", tmp_path / "new.html"
    old.write_text(terms_page(token="a"), encoding="utf-8")
    new.write_text(
        terms_page(licence=LICENCE_SUBLICENSABLE, extra=AI_TRAINING, token="b"), encoding="utf-8"
    )
    status, out = compare(str(old), str(new))
    assert status == 0
    assert "sub-licensable" in out
    assert "{+" in out  # changed words marked without colour when not on a terminal
    status, out = compare(str(old), str(new), "--json", "--service", "Instagram")
    report = json.loads(out)
    labels = {label for clause in report["clauses"] for label in clause["labels"]}
    assert {"LICENSE_SUBLICENSE_TRANSFER", "AI_TRAINING_ON_USER_DATA"} <= labels
    annotations = " ".join(c["annotation"] for c in report["clauses"])
    assert "Instagram" in annotations and "new.html" not in annotations
    assert report["severity"] == "high"
    modified = next(c for c in report["clauses"] if "LICENSE_SUBLICENSE_TRANSFER" in c["labels"])
    assert modified["direction"] == "expands"
    assert "sub-licensable" in modified["annotation"].lower()
    assert len(modified["annotation"]) < 400


def test_noise_only_is_cosmetic(tmp_path: Path) -> None:
    old, new = tmp_path / "old.html", tmp_path / "new.html"
    old.write_text(terms_page(token="a"), encoding="utf-8")
    new.write_text(terms_page(token="b").replace("license", "licence"), encoding="utf-8")
    status, out = compare(str(old), str(new), "--json")
    assert status == 0
    report = json.loads(out)
    assert report["severity"] == "cosmetic"


def test_compare_markdown_and_text_files(tmp_path: Path) -> None:
    old, new = tmp_path / "old.md", tmp_path / "new.txt"
    old.write_text("# Terms\n\nWe do not sell your data.\n", encoding="utf-8")
    new.write_text("Terms\n\nWe may use your posts to train our AI models.\n", encoding="utf-8")
    status, out = compare(str(old), str(new), "--json")
    assert status == 0
    labels = {label for clause in json.loads(out)["clauses"] for label in clause["labels"]}
    assert "AI_TRAINING_ON_USER_DATA" in labels


def test_an_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    old, new = tmp_path / "old.html", tmp_path / "new.html"
    old.write_text(terms_page(), encoding="utf-8")
    new.write_text("", encoding="utf-8")
    status, out = compare(str(old), str(new))
    assert status == 1
    assert "new.html" in out


OTHER_PLATFORMS = [
    json.loads(line)
    for line in (DATA_DIR / "classify" / "other_platforms.jsonl").read_text().splitlines()
]


@pytest.mark.parametrize("case", OTHER_PLATFORMS, ids=[c["what"] for c in OTHER_PLATFORMS])
def test_changes_on_platforms_outside_the_corpus_are_reported(
    case: dict[str, str], tmp_path: Path
) -> None:
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text(f"Terms\n\n{case['before']}\n", encoding="utf-8")
    new.write_text(f"Terms\n\n{case['after']}\n", encoding="utf-8")
    status, out = compare(str(old), str(new), "--json", "--service", "Acme")
    assert status == 0
    report = json.loads(out)
    hits = [c for c in report["clauses"] if case["label"] in c["labels"]]
    assert hits, f"{case['what']}: not labelled {case['label']}"
    assert report["severity"] in SEVERE
    assert all(c["annotation"] for c in hits)
