"""`tosmon import`: years of real history on day one, with no email sent."""

from __future__ import annotations

import json
import os
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
    assert (
        "whatsapp/terms-of-service: 14 captures, 12 imported, 2 technical upgrades, "
        "2 refused (error pages)"
    ) in out

    status, out = tosmon(config_file, "history", "whatsapp/terms-of-service", "--json", "--all")
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


def test_links_devices_fifos_and_huge_files_are_skipped_by_name(
    config_file: Path, tmp_path: Path
) -> None:
    config_file.write_text(
        config_file.read_text(encoding="utf-8") + "[fetch]\nmax_bytes = 50000\n", encoding="utf-8"
    )
    folder = tmp_path / "dataset" / "Meta AI" / "Terms of Service"
    folder.mkdir(parents=True)
    source = DATASET / "Meta AI" / "Terms of Service"
    for name in ("2026-01-21T23-36-24Z.md", "2026-05-13T10-32-30Z.md"):
        (folder / name).write_bytes((source / name).read_bytes())
    passwd = folder / "2026-02-01T00-00-00Z.md"
    passwd.symlink_to("/etc/passwd")
    zero = folder / "2026-02-02T00-00-00Z.md"
    zero.symlink_to("/dev/zero")
    fifo = folder / "2026-02-03T00-00-00Z.md"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    huge = folder / "2026-02-04T00-00-00Z.md"
    huge.write_text("# Terms\n\n" + "You grant us a licence. " * 5000, encoding="utf-8")

    status, out = tosmon(config_file, "import", str(tmp_path / "dataset"))
    assert status == 0, out
    assert "meta-ai/terms-of-service: 6 captures, 2 imported" in out
    assert f"skipped {passwd}: a symbolic link, not followed" in out
    assert f"skipped {zero}: a symbolic link, not followed" in out
    assert f"skipped {fifo}: a FIFO, not a regular file" in out
    assert f"skipped {huge}: larger than 50000 bytes" in out

    status, out = tosmon(config_file, "history", "meta-ai/terms-of-service", "--json")
    assert [v["seen_at"][:10] for v in json.loads(out)["versions"]] == ["2026-01-21", "2026-05-13"]
    _, text = tosmon(config_file, "show", "meta-ai/terms-of-service", "--at", "2026-03-01")
    assert "root:" not in text and "Meta AI" in text


def test_read_capture_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    from monitor.importer import CaptureRefused, read_capture

    page = tmp_path / "page.md"
    page.write_bytes(b"# Terms\n")
    assert read_capture(page, max_bytes=1024) == b"# Terms\n"
    assert read_capture(page, max_bytes=8) == b"# Terms\n"  # exactly at the cap
    with pytest.raises(CaptureRefused, match="larger than 7 bytes"):
        read_capture(page, max_bytes=7)
    with pytest.raises(CaptureRefused, match="a directory"):
        read_capture(tmp_path, max_bytes=1024)
    with pytest.raises(CaptureRefused, match="a character device"):
        read_capture(Path("/dev/null"), max_bytes=1024)
    link = tmp_path / "link.md"
    link.symlink_to(page)
    with pytest.raises(CaptureRefused, match="symbolic link"):
        read_capture(link, max_bytes=1024)


def _dataset_with_manifest(root: Path, manifest: str) -> Path:
    """A one-document dataset: a baseline, a technical upgrade, then a real licence change."""
    folder = root / "ota" / "Example" / "Terms of Service"
    folder.mkdir(parents=True)
    licence = "You grant us a licence to host and share your content."
    (folder / "2024-01-01T00-00-00Z.md").write_text(f"# Terms\n\n{licence}\n\nBe kind.\n")
    # the archive changed its selectors: the same terms, now with the page's footer
    (folder / "2024-02-01T00-00-00Z.md").write_text(
        f"# Terms\n\n{licence}\n\nBe kind.\n\n## About\n\nExample Inc, 1 Main Street.\n"
    )
    (folder / "2024-03-01T00-00-00Z.md").write_text(
        "# Terms\n\nYou grant us a licence to host, share and use your content to train our "
        "artificial intelligence models.\n\nBe kind.\n\n## About\n\nExample Inc, 1 Main Street.\n"
    )
    (folder / "manifest.tsv").write_text(manifest)
    return root / "ota"


MANIFEST = (
    "date\tfile\tkind\tcommit\tsnapshot\n"
    "2024-01-01T00:00:00Z\t2024-01-01T00-00-00Z.md\tstart\t" + "a" * 40 + "\t\n"
    "2024-02-01T00:00:00Z\t2024-02-01T00-00-00Z.md\tupgrade\t" + "b" * 40 + "\t\n"
    "2024-03-01T00:00:00Z\t2024-03-01T00-00-00Z.md\tchange\t" + "c" * 40 + "\t"
    "https://github.com/OpenTermsArchive/contrib-snapshots/commit/" + "d" * 40 + "\n"
)


def test_manifest_upgrades_are_versions_without_change_and_changes_link_to_the_archive(
    config_file: Path, tmp_path: Path
) -> None:
    dataset = _dataset_with_manifest(tmp_path, MANIFEST)
    status, out = tosmon(config_file, "import", str(dataset))
    assert status == 0, out
    assert "3 imported, 1 technical upgrade" in out
    status, out = tosmon(config_file, "history", "example/terms-of-service", "--json")
    history = json.loads(out)
    assert [v["source"] for v in history["versions"]] == ["import", "upgrade", "import"]
    # the upgrade is no change record: the one change compares the licence against the upgrade
    [change] = history["changes"]
    assert change["old_version"] == history["versions"][1]["id"]
    assert change["severity"] in ("medium", "high")
    status, out = tosmon(config_file, "changes", "--json")
    [listed] = json.loads(out)
    assert listed["archive_url"] == (
        "https://github.com/OpenTermsArchive/contrib-versions/commit/" + "c" * 40
    )
    status, out = tosmon(config_file, "documents", "--json")
    [document] = [d for d in json.loads(out) if d["id"] == "example/terms-of-service"]
    assert document["url"].startswith("https://github.com/OpenTermsArchive/contrib-versions/")


def test_collection_option_gives_links_when_the_manifest_does_not_tell(
    config_file: Path, tmp_path: Path
) -> None:
    dataset = _dataset_with_manifest(tmp_path, MANIFEST.replace("contrib-snapshots", "x"))
    status, out = tosmon(config_file, "import", str(dataset), "--collection", "pga")
    assert status == 0, out
    status, out = tosmon(config_file, "changes", "--json")
    [listed] = json.loads(out)
    assert listed["archive_url"].startswith("https://github.com/OpenTermsArchive/pga-versions/")


def test_a_broken_manifest_is_a_clear_error_naming_file_and_line(
    config_file: Path, tmp_path: Path
) -> None:
    dataset = _dataset_with_manifest(tmp_path, MANIFEST.replace("\tupgrade\t", "\trefilter\t"))
    status, out = tosmon(config_file, "import", str(dataset))
    assert status == 1
    assert "manifest.tsv, line 3: kind 'refilter'" in out


def test_a_regional_block_that_keeps_coming_and_going_is_reported_once(
    config_file: Path, tmp_path: Path
) -> None:
    """Captures alternate, a month apart, between the page with and without a regional block (as
    Facebook's privacy policy does with its EU sections): its first appearance is news; each
    return is compared with the last version reported (so one change, not a removal and an
    addition at the same moment), and the flips are known variants."""
    folder = tmp_path / "ota" / "Example" / "Privacy Policy"
    folder.mkdir(parents=True)
    base = (
        "# Privacy Policy\n\nWe collect the information you give us when you use the Service.\n\n"
        "We keep your information for as long as your account is active.\n\n"
        "You can download a copy of your information at any time.\n"
    )
    block = (
        "\n## Regional terms\n\nWe use your public posts and photos to train and improve our "
        "artificial intelligence models, including generative AI.\n\nMeta Platforms Ireland "
        "Limited is the controller of your information.\n"
    )
    for month in range(1, 9):
        text = base + (block if month % 2 == 0 else "")
        (folder / f"2024-{month:02d}-01T00-00-00Z.md").write_text(text)
    status, out = tosmon(config_file, "import", str(tmp_path / "ota"))
    assert status == 0, out
    status, out = tosmon(config_file, "changes", "--json", "--min-severity", "medium")
    severe = sorted(c["detected_at"][:7] for c in json.loads(out))
    assert severe == ["2024-02"]
    status, out = tosmon(config_file, "changes", "--json", "--all")
    assert len(json.loads(out)) == 7  # every capture is still a version with its change record


PARTIAL = DATA_DIR / "partial"


def _dataset(tmp_path: Path, service: str, document: str) -> Path:
    """A dataset with one document folder of tests/data/partial (real captures, ODbL)."""
    dataset = tmp_path / "ota"
    (dataset / service).mkdir(parents=True)
    (dataset / service / document).symlink_to(PARTIAL / service / document)
    return dataset


def test_captures_with_an_error_message_in_place_of_a_page_are_refused(
    config_file: Path, tmp_path: Path
) -> None:
    """Llama API Terms of Service, 11-14 Nov 2025: the first and last captures hold Meta's error
    message where the Terms page should be (only the Data Security and Processor Terms loaded).
    The Terms are the baseline of the one complete capture, not a change, nor their 'removal'."""
    status, out = tosmon(
        config_file, "import", str(_dataset(tmp_path, "Llama API", "Terms of Service"))
    )
    assert status == 0, out
    assert "1 imported" in out and "2 refused" in out
    status, out = tosmon(config_file, "changes", "--json", "--all")
    assert json.loads(out) == []


def test_a_redirect_stub_upgrade_is_refused_and_a_doubled_page_is_no_change(
    config_file: Path, tmp_path: Path
) -> None:
    """Le Chat's privacy policy, Nov-Dec 2025: the archive's technical upgrade captured only
    "Redirecting to legal.mistral.ai"; had it become the baseline, the next capture (the whole
    policy, shown twice) would have been reported as a wholly new policy, at high."""
    status, out = tosmon(
        config_file, "import", str(_dataset(tmp_path, "Le Chat", "Privacy Policy"))
    )
    assert status == 0, out
    assert "2 imported" in out and "1 refused" in out
    status, out = tosmon(config_file, "history", "le-chat/privacy-policy", "--json", "--all")
    assert [v["source"] for v in json.loads(out)["versions"]] == ["import", "import"]
    status, out = tosmon(config_file, "changes", "--json", "--all")
    [change] = json.loads(out)
    # the second copy of the policy, and "La Plateforme" renamed, are nothing to tell a reader
    assert change["severity"] in ("low", "cosmetic"), change


def test_an_upgrade_that_rightly_drops_most_of_the_page_is_still_the_baseline(
    config_file: Path, tmp_path: Path
) -> None:
    """New selectors may drop most of what the old ones took in (Instagram's privacy policy in
    the pga collection went from 624,000 to 95,000 characters in July 2025): such an upgrade is
    no stub, and the captures after it are compared with it, not refused as error pages."""
    long_page = "# Terms\n\n" + "".join(
        f"Help article {n}: how to use feature {n}.\n\n" for n in range(200)
    )
    terms = "# Terms\n\nYou grant us a licence to host and share your content.\n\nBe kind.\n"
    dataset = _dataset_with_manifest(tmp_path, MANIFEST)
    folder = dataset / "Example" / "Terms of Service"
    (folder / "2024-01-01T00-00-00Z.md").write_text(long_page + terms)
    (folder / "2024-02-01T00-00-00Z.md").write_text(terms + "\n" + "Contact us. " * 40)
    status, out = tosmon(config_file, "import", str(dataset))
    assert status == 0, out
    assert "3 imported, 1 technical upgrade" in out and "refused" not in out
    status, out = tosmon(config_file, "changes", "--json", "--min-severity", "medium")
    [change] = json.loads(out)  # the licence now covers AI training
    assert "AI_TRAINING_ON_USER_DATA" in change["labels"]
