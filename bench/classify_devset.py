"""Recall, direction accuracy and false alarms of the classifier on hand-labelled real changes.

Two sets, reported separately:

- **devset** (``tests/data/classify/devset.jsonl``): clause-level before/after pairs from the real
  histories of 15 other services (``../shared/corpus/versions-more``), each hand-labelled: is it a
  real AI / content-licence change, its topics and its direction. A real change counts as found
  when the classifier gives it one of its labels at medium or above ("loosely found": any ai or
  content_license label at medium or above). Direction accuracy is over the real changes found.
  A false alarm is a non-change (navigation, headings, advertising opt-outs, licences granted *to*
  the user, moved sentences...) graded medium or above.
- **Meta**: ``tests/data/classify/meta_pairs.jsonl`` (hand-checked clause pairs from Instagram,
  Facebook, WhatsApp and Meta AI histories, with the direction they must get) and the events of
  ``tests/data/classify/events/events.jsonl`` (a whole report per event: found when a clause
  carries one of the event's labels at medium or above). False alarms: clauses graded medium or
  above on the real noise pairs of ``tests/data/classify/noise``.
- **licence dev** (``tests/data/classify/tosdr_licence_dev.jsonl``): ToS;DR quotes as added
  clauses, hand-labelled, drawn from the licence, name / likeness and scraping cases and from
  unrelated ones: the sample the content-licence rules are tuned on (never the held-out points).
- **held-out** (``tests/data/classify/heldout.jsonl`` and ``heldout_tosdr.jsonl``): the same
  measure on wording the rules were never tuned on: pairs from ``versions-more`` transitions no
  devset pair comes from, and ToS;DR quotes as added clauses. Each part is reported apart, then
  both together; do not tune the rules on it (see bench/README.md).

Then the time to classify every devset pair once (cold caches), so a rule that slows the warm
check cycle shows up here first. Run by hand:

    .venv/bin/python bench/classify_devset.py            # add --misses to list what was missed
    .venv/bin/python bench/classify_devset.py --set heldout --misses
    .venv/bin/python bench/classify_devset.py --set licence-dev --misses
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.classify import classify_change, load_taxonomy  # noqa: E402
from monitor.clauses import ClauseChange, severity_rank  # noqa: E402
from monitor.extract import extract_clauses  # noqa: E402
from monitor.report import build_report  # noqa: E402

DATA = ROOT / "tests" / "data" / "classify"
CORE = {"ai", "content_license"}


def _pairs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _classify(case: dict, service: str = "") -> ClauseChange:
    change = ClauseChange(
        case["kind"], tuple(case.get("section", ())), case.get("before"), case.get("after")
    )
    return classify_change(change, service=service)


def _direction_ok(direction: str, case: dict) -> bool:
    """The labelled direction, or (when the label leaves it open) any but the excluded ones."""
    if case.get("direction"):
        return direction == case["direction"]
    return direction not in case.get("expect", {}).get("direction_not", [])


def score_pairs(cases: list[dict], *, show_misses: bool) -> dict[str, float | int]:
    groups = {t.id: t.group for t in load_taxonomy().topics.values()}
    real = [c for c in cases if c.get("real", True)]
    non = [c for c in cases if not c.get("real", True)]
    found = loose = right = 0
    misses: list[str] = []
    for case in real:
        got = _classify(case)
        severe = severity_rank(got.severity) >= 2
        hit = severe and bool(set(got.labels) & set(case["labels"]))
        found += hit
        loose += severe and any(groups.get(label) in CORE for label in got.labels)
        if hit:
            ok = _direction_ok(got.direction, case)
            right += ok
            if not ok and show_misses:
                misses.append(f"  direction {got.direction} != {case['direction']}: {case['id']}")
        elif show_misses:
            misses.append(
                f"  missed {case['id']} ({got.severity}, {list(got.labels)}): "
                f"{(case.get('after') or case.get('before') or '')[:100]}"
            )
    alarms = 0
    for case in non:
        got = _classify(case)
        if severity_rank(got.severity) >= 2:
            alarms += 1
            if show_misses:
                misses.append(
                    f"  false alarm {case['id']} ({got.severity}, {list(got.labels)}): "
                    f"{(case.get('after') or case.get('before') or '')[:100]}"
                )
    for line in misses:
        print(line)
    return {
        "real": len(real),
        "found": found,
        "loose": loose,
        "direction_right": right,
        "non": len(non),
        "false_alarms": alarms,
    }


HELDOUT = {
    "held-out, versions-more": DATA / "heldout.jsonl",
    "held-out, ToS;DR quotes": DATA / "heldout_tosdr.jsonl",
}


def score_heldout(*, show_misses: bool) -> None:
    """Each part of the held-out set, then both together."""
    parts = {name: _pairs(path) for name, path in HELDOUT.items()}
    for name, cases in parts.items():
        if show_misses:
            print(f"{name}:")
        _print(name, score_pairs(cases, show_misses=show_misses))
    together = [case for cases in parts.values() for case in cases]
    _print("held-out, both", score_pairs(together, show_misses=False))


def _print(name: str, s: dict[str, float | int]) -> None:
    real, non, found = s["real"], s["non"], s["found"]
    if real:
        print(
            f"{name}: recall {found}/{real} = {found / real:.2f} "
            f"(loosely {s['loose']}/{real} = {s['loose'] / real:.2f}); "
            f"direction {s['direction_right']}/{found} = "
            f"{(s['direction_right'] / found) if found else 0:.2f}"
        )
    if non:
        print(f"{name}: false alarms {s['false_alarms']}/{non} = {s['false_alarms'] / non:.2f}")


def _clauses(path: Path):
    return extract_clauses(path.read_text(), media_type="text/markdown")


def score_events() -> tuple[int, int]:
    events_dir = DATA / "events"
    events = _pairs(events_dir / "events.jsonl")
    found = 0
    for event in events:
        parts = event["old"].split("/")
        report = build_report(
            _clauses(events_dir / event["old"]),
            _clauses(events_dir / event["new"]),
            document_name=f"{parts[1]} {parts[2]}",
        )
        found += any(
            set(c.labels) & set(event["labels"]) and severity_rank(c.severity) >= 2
            for c in report.clauses
        )
    return found, len(events)


def score_noise() -> tuple[int, int]:
    alarms = total = 0
    for case in sorted(p for p in (DATA / "noise").iterdir() if p.is_dir()):
        if not (case / "old.md").exists():
            continue
        report = build_report(_clauses(case / "old.md"), _clauses(case / "new.md"))
        total += len(report.clauses)
        alarms += sum(severity_rank(c.severity) >= 2 for c in report.clauses)
    return alarms, total


def score_licence_dev(*, show_misses: bool) -> None:
    """The ToS;DR licence dev sample: content-licence, name / likeness and scraping wording."""
    cases = _pairs(DATA / "tosdr_licence_dev.jsonl")
    _print("licence dev, ToS;DR quotes", score_pairs(cases, show_misses=show_misses))


def score_devset(*, show_misses: bool) -> None:
    """The devset, Meta's pairs, events and noise, then the cold-cache time of the devset."""
    devset = _pairs(DATA / "devset.jsonl")
    started = time.perf_counter()
    _print("devset (15 services)", score_pairs(devset, show_misses=show_misses))
    elapsed = time.perf_counter() - started
    meta_path = DATA / "meta_pairs.jsonl"
    if meta_path.exists():
        _print("Meta clause pairs", score_pairs(_pairs(meta_path), show_misses=show_misses))
    found, total = score_events()
    print(f"Meta events: {found}/{total} found at medium or above")
    alarms, clauses = score_noise()
    print(f"Meta noise pairs: {alarms} of {clauses} clause edits at medium or above")
    print(f"classifying the {len(devset)} devset pairs (cold caches): {elapsed * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list misses and false alarms")
    parser.add_argument(
        "--set",
        choices=("devset", "licence-dev", "heldout", "all"),
        default="all",
        help="the devset (with Meta and the timing), the ToS;DR licence dev sample, the held-out "
        "set, or all three (default)",
    )
    args = parser.parse_args()
    if args.set in ("devset", "all"):
        score_devset(show_misses=args.misses)
    if args.set in ("licence-dev", "all"):
        score_licence_dev(show_misses=args.misses)
    if args.set in ("heldout", "all"):
        score_heldout(show_misses=args.misses)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
