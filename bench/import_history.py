"""Replay every Meta document's full history through `tosmon import` and count what a user sees.

For each collection of ../shared/corpus (versions, versions-pga) this imports the whole dataset
into a fresh SQLite database with the real command, then prints per document: captures, versions
recorded, captures refused (error pages), change records at each severity, and whether every
hand-checked event of events.jsonl is among the changes at medium or above (its new capture's
date, one of its expected labels). Run by hand:

    .venv/bin/python bench/import_history.py [--collection versions] [--service Instagram]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
SEVERE = ("medium", "high")


def tosmon(config: Path, *args: str) -> str:
    command = [sys.executable, "-m", "monitor", "--config", str(config), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", action="append", choices=["versions", "versions-pga"])
    parser.add_argument("--service", action="append", default=[])
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 1
    events = [json.loads(line) for line in (CORPUS / "events.jsonl").read_text().splitlines()]
    print(
        f"{'collection/document':<48} {'captures':>8} {'versions':>8} {'refused':>7} "
        f"{'high':>5} {'medium':>6} {'low':>5} {'cosm.':>6}  events  seconds"
    )
    for collection in args.collection or ["versions", "versions-pga"]:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "tosmon.toml"
            config.write_text(
                f'use_catalog = false\n[storage]\ndatabase_url = "sqlite:///{tmp}/tosmon.db"\n'
            )
            started = time.perf_counter()
            service_args = [a for s in args.service for a in ("--service", s)]
            rows = json.loads(
                tosmon(config, "import", str(CORPUS / collection), "--json", *service_args)
            )
            seconds = time.perf_counter() - started
            changes = json.loads(
                tosmon(config, "changes", "--json", "--min-severity", "medium", "--limit", "100000")
            )
            severe: dict[str, list[dict]] = defaultdict(list)
            for change in changes:
                severe[change["document"]].append(change)
            for row in rows:
                document = row["document"]
                mine = [
                    e
                    for e in events
                    if e["new"].startswith(f"{collection}/") and _document_id(e["new"]) == document
                ]
                found = sum(_event_found(e, severe[document]) for e in mine)
                counts = row["changes"]
                versions = tosmon(config, "history", document, "--json")
                n_versions = len(json.loads(versions)["versions"])
                print(
                    f"{collection + '/' + document:<48} {row['captures']:>8} {n_versions:>8} "
                    f"{len(row['unreadable']):>7} {counts['high']:>5} {counts['medium']:>6} "
                    f"{counts['low']:>5} {counts['cosmetic']:>6}  "
                    f"{f'{found}/{len(mine)}' if mine else '-':>6}  "
                    f"{seconds * row['captures'] / max(1, sum(r['captures'] for r in rows)):7.1f}"
                )
    return 0


def _document_id(path: str) -> str:
    from monitor.config import document_id

    _, service, type_, _ = path.split("/")
    return document_id(service, type_)


def _event_found(event: dict, severe: list[dict]) -> bool:
    stamp = Path(event["new"]).stem  # 2025-01-02T18-08-33Z
    date, clock = stamp[:10], stamp[11:19].replace("-", ":")
    for change in severe:
        if change["detected_at"].startswith(f"{date}T{clock}") and set(event["labels"]) & set(
            change["labels"]
        ):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
