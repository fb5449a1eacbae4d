"""Replay each document's real history through extract -> build_report and count what would be sent.

    .venv/bin/python bench/replay_history.py [--corpus ../shared/corpus] [--history 10]
                                             [--only "Instagram/Terms of Service"] [--show medium]

For every document folder in ``versions/`` and ``versions-pga/`` the captures are replayed in
capture order; each consecutive pair becomes one report, with the ``--history`` versions before the
old one as history (most recent first). Printed per document: captures, reports by severity, and
whether each hand-checked event of ``events.jsonl`` landed: some report between the event's old and
new capture has a clause carrying one of the event's labels at medium or above.
``--show medium`` also lists every report at medium or above with its summary.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.clauses import Clause, severity_rank
from monitor.extract import extract_clauses
from monitor.report import build_report

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SEVERITIES = ("high", "medium", "low", "cosmetic")


def _captures(folder: Path) -> list[str]:
    manifest = folder / "manifest.tsv"
    if manifest.exists():
        with manifest.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        return [row["file"] for row in sorted(rows, key=lambda r: r["date"])]
    return sorted(p.name for p in folder.glob("*.md"))


def replay(folder: Path, corpus: Path, history_size: int, events: list[dict], show: int) -> dict:
    files = _captures(folder)
    rel = folder.relative_to(corpus).as_posix()
    name = f"{folder.parent.name} {folder.name}"
    clauses: list[list[Clause]] = []
    for f in files:
        try:
            clauses.append(extract_clauses((folder / f).read_text(), media_type="text/markdown"))
        except Exception:  # an empty capture: keep position, no clauses
            clauses.append([])
    counts: Counter[str] = Counter()
    landed: dict[int, list[str]] = {}  # report index -> labels at medium+
    shown = []
    start = time.perf_counter()
    for i in range(1, len(files)):
        old, new = clauses[i - 1], clauses[i]
        if not old or not new:
            counts["skipped"] += 1
            continue
        history = [clauses[j] for j in range(i - 2, max(-1, i - 2 - history_size), -1)]
        report = build_report(old, new, document_name=name, history=history)
        counts[report.severity] += 1
        labels = [
            label for c in report.clauses if severity_rank(c.severity) >= 2 for label in c.labels
        ]
        landed[i] = labels
        if show and severity_rank(report.severity) >= show:
            shown.append(f"    {files[i]}  [{report.severity}] {report.summary[:220]}")
    event_results = []
    for event in events:
        old_dir, _, old_file = event["old"].rpartition("/")
        new_file = event["new"].rpartition("/")[2]
        if old_dir != rel:
            continue
        lo, hi = files.index(old_file), files.index(new_file)
        ok = any(set(landed.get(i, ())) & set(event["labels"]) for i in range(lo + 1, hi + 1))
        event_results.append((event["what"], ok))
    return {
        "document": rel,
        "captures": len(files),
        "counts": counts,
        "events": event_results,
        "seconds": time.perf_counter() - start,
        "shown": shown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--only", default="", help="substring of 'versions/<service>/<doc>'")
    parser.add_argument("--show", choices=("", "low", "medium", "high"), default="")
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    corpus: Path = args.corpus
    if not corpus.is_dir():
        sys.exit(f"corpus not found: {corpus}")
    events = [json.loads(line) for line in (corpus / "events.jsonl").read_text().splitlines()]
    folders = [
        f
        for top in ("versions", "versions-pga")
        for f in sorted((corpus / top).glob("*/*"))
        if f.is_dir() and args.only in f.relative_to(corpus).as_posix()
    ]
    show = severity_rank(args.show) if args.show else 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(
            pool.map(
                replay,
                folders,
                [corpus] * len(folders),
                [args.history] * len(folders),
                [events] * len(folders),
                [show] * len(folders),
            )
        )
    header = f"{'document':48} {'captures':>8} {'high':>5} {'medium':>6} {'low':>5} {'cosm.':>5}"
    print(header + "  events landed (medium+)   secs")
    print("-" * (len(header) + 30))
    all_ok = True
    for r in results:
        c = r["counts"]
        ev = r["events"]
        ok = sum(1 for _, good in ev if good)
        all_ok &= ok == len(ev)
        ev_text = f"{ok}/{len(ev)}" if ev else "-"
        print(
            f"{r['document']:48} {r['captures']:>8} {c['high']:>5} {c['medium']:>6} {c['low']:>5} "
            f"{c['cosmetic']:>5}  {ev_text:>22}   {r['seconds']:5.1f}"
        )
        for what, good in ev:
            if not good:
                print(f"    MISSED event: {what}")
        for line in r["shown"]:
            print(line)
    print("all events landed at medium+" if all_ok else "SOME EVENTS DID NOT LAND")


if __name__ == "__main__":
    main()
