"""Time the analysis of one huge changed clause: diff, then the whole report (diff + classify).

A hostile or broken page can put megabytes into one clause. Two shapes, each at 90 KB, 1 MB and
5 MB of clause text:

- ``varied``: distinct sentences, every other one reworded (an ordinary long clause);
- ``repeated``: sentences drawn from a pool of 40 (boilerplate repeated over and over), every
  tenth one replaced by the same new sentence: the shape that made sentence matching quadratic.

Each case runs in a child process with a time limit (``--limit``, default 300 s); a case that
does not finish is printed as ``> limit``. Figures are wall seconds on this machine.

    .venv/bin/python bench/diff_budget.py
    .venv/bin/python bench/diff_budget.py --sizes 90000 --limit 60
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time

SIZES = (90_000, 1_000_000, 5_000_000)
SHAPES = ("varied", "repeated")


def clause_texts(size: int, shape: str) -> tuple[str, str]:
    """The old and new text of one clause of about ``size`` characters."""
    rng = random.Random(size)
    vocabulary = [f"w{n}" for n in range(5000)] + [
        "you",
        "grant",
        "us",
        "a",
        "licence",
        "to",
        "use",
        "your",
        "content",
        "and",
        "data",
        "to",
        "train",
        "artificial",
        "intelligence",
        "models",
        "we",
        "may",
        "share",
        "it",
        "with",
        "partners",
        "and",
        "affiliates",
        "worldwide",
    ]

    def sentence() -> str:
        words = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(8, 20)))
        return words.capitalize() + "."

    pool = [sentence() for _ in range(40)]
    old: list[str] = []
    length = 0
    while length < size:
        old.append(rng.choice(pool) if shape == "repeated" else sentence())
        length += len(old[-1]) + 1
    if shape == "repeated":
        fresh = "We may now use what you share in new ways worldwide."
        new = [s if k % 10 else fresh for k, s in enumerate(old)]
    else:
        new = [s if k % 2 else sentence() for k, s in enumerate(old)]
    return " ".join(old), " ".join(new)


def run_case(size: int, shape: str) -> dict[str, object]:
    from monitor.clauses import Clause
    from monitor.diff import diff_clauses
    from monitor.report import build_report

    before, after = clause_texts(size, shape)
    old = [Clause(("Terms",), "Intro."), Clause(("Terms",), before)]
    new = [Clause(("Terms",), "Intro."), Clause(("Terms",), after)]
    started = time.perf_counter()
    changes = diff_clauses(old, new)
    diff_s = time.perf_counter() - started
    started = time.perf_counter()
    report = build_report(old, new, document_name="Example Terms of Service")
    report_s = time.perf_counter() - started
    coarse = any(getattr(c, "coarse", False) for c in changes)
    return {"diff": diff_s, "report": report_s, "coarse": coarse, "severity": report.severity}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per case")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(int(args.child[0]), args.child[1])))
        return
    print(f"{'shape':<9} {'size':>10} {'diff s':>9} {'report s':>9}  coarse")
    for shape in args.shapes:
        for size in args.sizes:
            argv = [sys.executable, __file__, "--child", str(size), shape]
            try:
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=args.limit, check=True
                )
            except subprocess.TimeoutExpired:
                print(f"{shape:<9} {size:>10} {'> ' + str(int(args.limit)):>9} {'-':>9}  -")
                continue
            result = json.loads(done.stdout)
            print(
                f"{shape:<9} {size:>10} {result['diff']:>9.2f} {result['report']:>9.2f}  "
                f"{'yes' if result['coarse'] else 'no'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
