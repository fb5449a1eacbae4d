"""Import each corpus document's whole history and print how many changes reach medium or above.

    .venv/bin/python bench/replay_counts.py [--collection versions] [--only Instagram]
                                            [--list] [--dump clauses.jsonl] [--jobs 2]
                                            [--labels FILE ...]

Every document folder of ../shared/corpus/versions, versions-pga and versions-more is imported on
its own into a fresh SQLite database with the library's importer (exactly what `tosmon import`
does: variant flips, settling, error pages, manifest upgrades), then the change records are
counted. Printed per document: captures, change records, records at medium or above; with
``--list`` each medium+ record's date, severity, labels and summary (what to label by hand);
with ``--dump`` every medium+ clause of those records (before, after, labels, direction,
annotation) and the capture files on each side, one JSON line each, to read while labelling.
The hand labels (``--labels``, by default tests/data/classify/meta_replay_labels.jsonl and
more_replay_labels.jsonl) give the precision of the medium+ records, the records nobody labelled
yet and the labelled real records that are no longer medium+.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
COLLECTIONS = ("versions", "versions-pga", "versions-more")
LABELS = tuple(
    Path(__file__).resolve().parents[1] / "tests/data/classify" / name
    for name in ("meta_replay_labels.jsonl", "more_replay_labels.jsonl")
)


def replay(folder: Path, show: bool, dump: bool = False) -> dict:
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
            dumped = [_dump(session, folder, c, captures) for c in severe]
        engine.dispose()
    document = folder.relative_to(folder.parents[2]).as_posix()
    return {
        "document": document,
        "captures": len(captures),
        "changes": len(changes),
        "severe": len(severe),
        "seconds": seconds,
        "shown": shown if show else [],
        "dumped": dumped if dump else [],
        "keys": [(document, f"{c.detected_at:%Y-%m-%d %H:%M}") for c in severe],
    }


def _dump(session: Any, folder: Path, change: Any, captures: list[tuple[Any, Path]]) -> dict:
    """One medium+ record with its medium+ clauses and the captures either side of it."""
    from monitor.clauses import severity_rank
    from monitor.store import history as store

    old = store.get_version(session, change.old_version_id)
    new = store.get_version(session, change.new_version_id)

    def capture_at(when: Any) -> str:
        seen = [path.name for at, path in captures if at <= when.replace(tzinfo=at.tzinfo)]
        return seen[-1] if seen else ""

    return {
        "document": folder.relative_to(folder.parents[1]).as_posix(),
        "change": change.id,
        "date": f"{change.detected_at:%Y-%m-%d %H:%M}",
        "severity": change.severity,
        "summary": change.summary,
        "old_capture": capture_at(old.last_seen_at) if old else "",
        "new_capture": capture_at(new.seen_at) if new else "",
        "clauses": [
            {
                "kind": row.kind,
                "section": row.section,
                "labels": row.labels,
                "direction": row.direction,
                "severity": row.severity,
                "annotation": row.annotation,
                "before": row.before,
                "after": row.after,
            }
            for row in change.clauses
            if severity_rank(row.severity) >= severity_rank("medium")
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--collection", action="append", choices=COLLECTIONS)
    parser.add_argument("--only", default="", help="substring of '<collection>/<service>/<doc>'")
    parser.add_argument("--list", action="store_true", help="list every medium+ change")
    parser.add_argument("--dump", type=Path, help="write each medium+ clause here (JSON lines)")
    parser.add_argument(
        "--labels",
        type=Path,
        nargs="+",
        default=list(LABELS),
        help="hand labels of medium+ records (JSON lines: document, date or capture, real)",
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
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
        n = len(folders)
        results = list(pool.map(replay, folders, [args.list] * n, [bool(args.dump)] * n))
    if args.dump:
        with args.dump.open("w") as fh:
            for r in results:
                for record in r["dumped"]:
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{'document':<52} {'captures':>8} {'changes':>7} {'medium+':>7} {'seconds':>7}")
    for r in results:
        print(
            f"{r['document']:<52} {r['captures']:>8} {r['changes']:>7} {r['severe']:>7} "
            f"{r['seconds']:>7.1f}"
        )
        for line in r["shown"]:
            print(line)
    print(
        f"{'total':<52} {sum(r['captures'] for r in results):>8} "
        f"{sum(r['changes'] for r in results):>7} {sum(r['severe'] for r in results):>7}"
    )
    replayed = {r["document"] for r in results}
    keys = [key for r in results for key in r["keys"]]
    _score([path for path in args.labels if path.exists()], keys, replayed)
    return 0


def _label_key(row: dict) -> tuple[str, str]:
    """(collection/service/document, date of the change record) of one hand label; labels of
    versions-more name the document as service/document and carry `date`."""
    if "service" in row:
        document = f"{row['collection']}/{row['service']}/{row['document']}"
    else:
        document = f"versions-more/{row['document']}"
    return document, row.get("capture") or row["date"]


def _score(paths: list[Path], keys: list[tuple[str, str]], replayed: set[str]) -> None:
    """Precision of the medium+ records against the hand labels, the records with no label and
    the labelled real records that are no longer medium+ (keyed by document and date)."""
    labels = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                key = _label_key(row)
                if key[0] in replayed:
                    labels[key] = row
    labelled = [labels[k] for k in keys if k in labels]
    if not labelled:
        return
    real = sum(bool(row["real"]) for row in labelled)
    print(
        f"hand labels: {real} of {len(labelled)} labelled medium+ records are real "
        f"(precision {real / len(labelled):.2f}); {len(keys) - len(labelled)} have no label"
    )
    for key in keys:
        if key not in labels:
            print(f"  not labelled: {key[0]} {key[1]}")
    shown = set(keys)
    lost = [(k, row) for k, row in labels.items() if row["real"] and k not in shown]
    total = sum(bool(row["real"]) for row in labels.values())
    print(f"labelled real records still medium+: {total - len(lost)} of {total}")
    for (document, date), row in lost:
        print(f"  no longer medium+: {document} {date}: {row['why'][:100]}")


if __name__ == "__main__":
    sys.exit(main())
