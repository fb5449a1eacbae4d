"""How long the web history takes to render its pages for a document with a long history.

    .venv/bin/python bench/site_pages.py [--versions 300]

Builds a SQLite database in bench/out/ with one document of N versions (real Instagram Terms of
Use text from ../shared/corpus when present, else generated paragraphs), one change between each
pair of consecutive versions, and times each kind of page through ``Site.handle`` (no sockets), in
CPU time of this process (other load on the machine does not count): the first render, the median
of 20 uncached renders, and the median of 20 answers from the page cache. Target: under 100 ms.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.db import make_engine, session_factory, upgrade  # noqa: E402
from monitor.site import Site  # noqa: E402
from tests.mailfactory import AI_CLAUSE, COSMETIC_CLAUSE, make_change, make_document  # noqa: E402

OUT = ROOT / "bench" / "out" / "site"
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def build(versions: int) -> Site:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    engine = make_engine(f"sqlite:///{OUT / 'site.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        document = make_document(session)
        for n in range(versions // 2):
            severity_clause = AI_CLAUSE if n % 10 == 0 else {**AI_CLAUSE, "severity": "low"}
            make_change(
                session,
                document,
                [severity_clause, COSMETIC_CLAUSE] * 3,
                detected_at=T0 + timedelta(days=3 * n),
            )
    return Site(sessions, base_url="https://tos.example.org")


def timed(site: Site, target: str, rounds: int = 20) -> tuple[float, float, float]:
    """CPU ms of this process: first render, median uncached render, median cached answer."""
    start = time.process_time()
    response = site.handle(target)
    first = (time.process_time() - start) * 1000
    assert response is not None and response.status == 200, (target, response)
    uncached, cached = [], []
    for _ in range(rounds):
        start = time.process_time()
        site._handle(target)
        uncached.append((time.process_time() - start) * 1000)
        start = time.process_time()
        site.handle(target)
        cached.append((time.process_time() - start) * 1000)
    return first, statistics.median(uncached), statistics.median(cached)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=300)
    args = parser.parse_args()
    site = build(args.versions)
    doc = "/documents/instagram/terms-of-use"
    pages = {
        "home": "/",
        "service": "/services/instagram",
        "document (medium+)": doc,
        "document (all)": doc + "?min_severity=cosmetic",
        "change": "/changes/150",
        "version": doc + "/at/2020-06-01",
        "stance": "/stance",
        "feed (all)": "/feeds/all.atom?min_severity=low",
    }
    print(f"{args.versions} versions, {args.versions // 2} changes; CPU ms per page")
    print(f"  {'page':<20} {'first':>7} {'render':>7} {'cached':>7}")
    for name, target in pages.items():
        first, uncached, cached = timed(site, target)
        print(f"  {name:<20} {first:7.1f} {uncached:7.1f} {cached:7.1f}")


if __name__ == "__main__":
    main()
