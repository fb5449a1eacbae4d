"""Compare tos-monitor's warm check cycle between git revisions, runs interleaved.

On a shared machine one revision's CPU figure moves by 15-25% from run to run, more than most
changes worth making; ``check_cycle.py`` compares tos-monitor with urlwatch, not with itself.
Here each revision's ``monitor/`` package is exported (``git archive``) into ``bench/out/`` and
run in turn against the same page server (``bench/pages.py``, ``--visible-noise`` by default),
each from its own cold cycle (a content digest is only valid for the code that made it, so a
revision that changes extraction would otherwise extract every page again):

    .venv/bin/python bench/compare_revisions.py HEAD~3 HEAD              # CPU, 5 runs each
    .venv/bin/python bench/compare_revisions.py HEAD~3 HEAD --instructions --repeat 1

``--instructions`` counts the instructions each run executes under Valgrind (``cachegrind``,
``apt install valgrind``; about 20 times slower, ``PYTHONHASHSEED=0``): the same code gives the
same count within about 0.1% from run to run, so a 2% change shows. ``WORKTREE`` as a revision is
the working tree's ``monitor/``. ``--changed 0`` leaves the server at generation 0 (no page
changed: the cost of the unchanged pages alone).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from check_cycle import OUT, ROOT, Server, forget_db, run_child, snapshot_db, tosmon_config

VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
_INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")


def export(revision: str, into: Path) -> Path:
    """A directory whose ``monitor/`` is ``revision``'s (``WORKTREE``: the working tree's)."""
    target = into / re.sub(r"[^\w.-]", "_", revision)
    target.mkdir(parents=True)
    if revision == "WORKTREE":
        shutil.copytree(
            ROOT / "monitor", target / "monitor", ignore=shutil.ignore_patterns("*.pyc")
        )
        return target
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "monitor"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def cycle(source: Path, workdir: Path, config: Path, *, instructions: bool) -> float:
    """One ``tosmon check`` of ``source``'s code: CPU seconds, or billions of instructions."""
    argv = [sys.executable, "-c", "from monitor.cli import main; main()"]
    argv += ["--config", str(config), "check", "--no-send", "--json"]
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONHASHSEED": "0"}
    out = workdir / "cycle.json"
    _, cpu, _, status = run_child(VALGRIND + argv if instructions else argv, stdout=out, env=env)
    errors = out.with_suffix(".err").read_text(errors="replace")
    if status != 0:
        raise SystemExit(f"{source.name}: tosmon check failed (exit {status}):\n{errors[-2000:]}")
    if not instructions:
        return cpu
    found = _INSTRUCTIONS.search(errors)
    if found is None:
        raise SystemExit(f"no instruction count in Valgrind's output:\n{errors[-2000:]}")
    return int(found.group(1).replace(",", "")) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="+", help="git revisions (or WORKTREE)")
    parser.add_argument("--n", type=int, default=300, help="pages (default 300)")
    parser.add_argument("--repeat", type=int, default=5, help="warm cycles of each (default 5)")
    parser.add_argument("--changed", type=int, default=1, choices=(0, 1), help="server generation")
    parser.add_argument("--plain", action="store_true", help="pages without visible noise")
    parser.add_argument("--instructions", action="store_true", help="count instructions (Valgrind)")
    args = parser.parse_args(argv)
    if args.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs Valgrind: apt install valgrind")
    OUT.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="compare-", dir=OUT))
    server = Server(args.n, visible_noise=not args.plain)
    try:
        sources = [export(revision, root / "src") for revision in args.revisions]
        workdir = root / "run"
        workdir.mkdir()
        config = tosmon_config(workdir, server, per_host=8)
        server.set_generation(0)
        for i, source in enumerate(sources):  # each revision's own cold state
            forget_db(workdir, "tosmon")
            cycle(source, workdir, config, instructions=False)
            snapshot_db(workdir, f"cold-{i}")
        server.set_generation(args.changed)
        figures: list[list[float]] = [[] for _ in sources]
        for _ in range(max(1, args.repeat)):
            for i, source in enumerate(sources):
                snapshot_db(workdir, f"cold-{i}", restore=True)
                figures[i].append(cycle(source, workdir, config, instructions=args.instructions))
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)
    unit = "G instructions" if args.instructions else "CPU ms/page"
    first = statistics.median(figures[0])
    print(f"warm cycle, N = {args.n}, {'plain' if args.plain else 'visible-noise'} pages; {unit}")
    for revision, runs in zip(args.revisions, figures, strict=True):
        scale = 1.0 if args.instructions else 1000 / args.n
        median = statistics.median(runs)
        shown = " ".join(f"{scale * x:.3f}" for x in runs)
        print(
            f"{revision:>20}  median {scale * median:8.3f}  ({median / first:.3f}x)  runs {shown}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
