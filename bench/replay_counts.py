"""Import each corpus document's whole history and print how many changes reach medium or above.

    .venv/bin/python bench/replay_counts.py [--collection versions] [--only Instagram]
                                            [--list] [--jobs 2] [--labels FILE]

Every document folder of ../shared/corpus/versions, versions-pga and versions-more is imported on
its own into a fresh SQLite database with the library's importer (exactly what `tosmon import`
does: variant flips, settling, error pages, manifest upgrades), then the change records are
counted. Printed per document: captures, change records, records at medium or above; with
``--list`` each medium+ record's date, severity, labels and summary (what to label by hand).
``--labels`` (a JSONL file of hand labels: collection, service, document, capture, real) adds
how many medium+ records are real, and lists the records nobody labelled yet.
Corpus: Open Terms Archive (ODbL 1.0 / ODC-By 1.0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
COLLECTIONS = ("versions", "versions-pga", "versions-more")


def replay(folder: Path, show: bool) -> dict:
    from monitor.clauses import severity_rank
    from monitor.db import ensure_schema, make_engine, session_factory
    from monitor.extract import MEDIA_TYPES_BY_SUFFIX
    from monitor.importer import capture_time, import_document
    from monitor.store import history as store

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/replay.db")
        ensure_schema(engine)
        sessions = session_factory(engine)
        captures = sorted(
            (when, path)
            for path in folder.iterdir()
            if path.suffix.lower() in MEDIA_TYPES_BY_SUFFIX
            and (when := capture_time(path)) is not None
        )
        extra = {}
        try:
            from monitor.manifest import read_manifest

            extra["manifest"] = read_manifest(folder)
        except ImportError:  # before manifest support: every capture is a change
            pass
        started = time.perf_counter()
        summary = import_document(sessions, folder.parent.name, folder.name, captures, **extra)
        seconds = time.perf_counter() - started
        with sessions() as session:
            changes = store.changes_of(session, summary.document_id)
            severe = [c for c in changes if severity_rank(c.severity) >= severity_rank("medium")]
            shown = [
                f"    #{c.id} {c.detected_at:%Y-%m-%d %H:%M} [{c.severity}] "
                f"{','.join(c.labels)[:60]} | {c.summary[:200]}"
                for c in severe
            ]
            captures_at = [f"{c.detected_at:%Y-%m-%d %H:%M}" for c in severe]
        engine.dispose()
    return {
        "document": folder.relative_to(folder.parents[2]).as_posix(),
        "captures": len(captures),
        "changes": len(changes),
        "severe": len(severe),
        "seconds": seconds,
        "shown": shown if show else [],
        "severe_at": captures_at,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--collection", action="append", choices=COLLECTIONS)
    parser.add_argument("--only", default="", help="substring of '<collection>/<service>/<doc>'")
    parser.add_argument("--list", action="store_true", help="list every medium+ change")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--labels", type=Path, help="JSONL hand labels of medium+ records")
    args = parser.parse_args()
    labels: dict[tuple[str, str], bool] = {}
    if args.labels:
        for line in args.labels.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                where = f"{row['collection']}/{row['service']}/{row['document']}"
                labels[(where, row["capture"])] = bool(row["real"])
    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 1
    folders = [
        folder
        for collection in args.collection or COLLECTIONS
        for folder in sorted((args.corpus / collection).glob("*/*"))
        if folder.is_dir() and args.only in folder.relative_to(args.corpus).as_posix()
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(replay, folders, [args.list] * len(folders)))
    real_column = f" {'real':>5}" if labels else ""
    print(
        f"{'document':<52} {'captures':>8} {'changes':>7} {'medium+':>7} {'seconds':>7}"
        + real_column
    )
    unlabelled: list[str] = []
    real_total = 0
    for r in results:
        real = ""
        if labels:
            known = [labels.get((r["document"], at)) for at in r["severe_at"]]
            unlabelled += [
                f"{r['document']} {at}"
                for at, k in zip(r["severe_at"], known, strict=True)
                if k is None
            ]
            real_total += sum(bool(k) for k in known)
            real = f" {sum(bool(k) for k in known):>5}"
        print(
            f"{r['document']:<52} {r['captures']:>8} {r['changes']:>7} {r['severe']:>7} "
            f"{r['seconds']:>7.1f}{real}"
        )
        for line in r["shown"]:
            print(line)
    severe_total = sum(r["severe"] for r in results)
    print(
        f"{'total':<52} {sum(r['captures'] for r in results):>8} "
        f"{sum(r['changes'] for r in results):>7} {severe_total:>7}"
        + (f" {'':>7} {real_total:>5}" if labels else "")
    )
    if labels:
        share = f" = {real_total / severe_total:.2f}" if severe_total else ""
        print(f"precision on the hand labels: {real_total}/{severe_total} real{share}")
        for record in unlabelled:
            print(f"  not labelled: {record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
