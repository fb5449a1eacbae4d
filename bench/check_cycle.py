"""Time a full check cycle of tos-monitor (and urlwatch 2.29) over N realistic terms pages.

For each N: a page server (bench/pages.py, a separate process whose CPU is not counted) serves N
pages of about 100 KB on 127.0.0.1, each with fresh per-request tokens. Then, each tool in its own
temporary directory:

- cold cycle: empty database, every page is a first version;
- the server switches 5% of the pages (one reworded clause, one added paragraph);
- warm cycle: every page is fetched again (every response differs in its tokens), 5% changed;
- quiet cycle: the same again with nothing changed (the cycle a monitor runs most often).

tos-monitor runs as ``tosmon --config <tmp>/tosmon.toml check --no-send --json``
(``use_catalog = false``, N ``[[documents]]``, SQLite in the temporary directory). urlwatch runs as
``urlwatch --urls <tmp>/urls.yaml --config <tmp>/urlwatch.yaml --cache <tmp>/cache.db`` with
``filter: html2text`` on each job and only the stdout reporter (to a file). Each cycle is one child
process; its CPU (user + sys) and peak RSS come from ``os.wait4`` on that child alone; wall time
is measured around it; the database size is the file plus its WAL. Nothing is subtracted.

urlwatch 2.29 is installed into bench/out/urlwatch-venv (gitignored) on first use, unless
``--urlwatch-venv DIR`` names a venv that already has it (e.g. one in /tmp).

``--visible-noise``: the pages' visible text also changes at every request (a rotating banner in
the site header, a "generated in 0.23 s" footer line), so the page fingerprint cannot recognise an
unchanged page: every page is extracted and compared with its last version (the slow path).

    .venv/bin/python bench/check_cycle.py                       # N = 200 and 1000
    .venv/bin/python bench/check_cycle.py --n 200 --skip-urlwatch
    .venv/bin/python bench/check_cycle.py --n 300 --visible-noise --urlwatch-venv /tmp/uw

``--repeat K``: each cycle runs K times from the same starting state (the database, or
urlwatch's cache, copied back before each run; the two tools take turns), and the run with the
median CPU is tabled with the CPU of every run: on a shared machine one run of urlwatch's warm
cycle has taken from 11.3 to 16.8 ms/page.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
URLWATCH_VENV = OUT / "urlwatch-venv"
URLWATCH_REQUIREMENTS = ("urlwatch==2.29", "html2text")


@dataclass(frozen=True)
class Cycle:
    tool: str
    cycle: str
    n: int
    cpu: float  # seconds, user + sys of the child
    wall: float  # seconds
    peak_mb: float  # ru_maxrss of the child
    db_mb: float  # database file + WAL after the cycle
    outcomes: str  # what the tool reported, e.g. "first=1000"
    runs: tuple[float, ...] = ()  # with --repeat: the CPU seconds of every run (this is the median)

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.cpu / self.n


def median_run(runs: list[Cycle]) -> Cycle:
    """The run with the median CPU (the lower middle one of an even count), knowing the CPU of
    every run, with the highest peak memory of them all."""
    ordered = sorted(runs, key=lambda c: c.cpu)
    middle = ordered[(len(ordered) - 1) // 2]
    return replace(middle, runs=tuple(c.cpu for c in runs), peak_mb=max(c.peak_mb for c in runs))


def run_child(
    argv: list[str], *, stdout: Path, env: dict[str, str] | None = None
) -> tuple[float, float, float, int]:
    """Run argv to completion; (wall s, cpu s, peak MB, exit status) of that child alone.

    The child may write and use a bytecode cache even when PYTHONDONTWRITEBYTECODE is set here:
    pip compiles an installed package (urlwatch's) at install time, but an editable install of
    tos-monitor would otherwise compile every module from source on every run.
    """
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with stdout.open("wb") as out, (stdout.with_suffix(".err")).open("wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=stdout.parent)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, child.returncode


def file_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 1e6


# -- page server -------------------------------------------------------------------------------


class Server:
    def __init__(self, n: int, *, visible_noise: bool = False) -> None:
        self.n = n
        noise = ["--visible-noise"] if visible_noise else []
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "pages.py"), "serve", "--n", str(n), *noise],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.process.kill()
            raise SystemExit(f"page server did not start: {line!r}")
        self.port = int(line)

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/doc/{i}"

    def set_generation(self, generation: int) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/generation/{generation}", method="POST", data=b""
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# -- tos-monitor -------------------------------------------------------------------------------


def tosmon_config(workdir: Path, server: Server, *, per_host: int) -> Path:
    lines = [
        "use_catalog = false",
        "[storage]",
        f'database_url = "sqlite:///{workdir / "tosmon.db"}"',
        f'data_dir = "{workdir / "data"}"',
        "[fetch]",
        "retries = 0",
        f"per_host = {per_host}",
        f"concurrency = {per_host}",
        "timeout = 60.0",
        "[daemon]",
        'log_level = "WARNING"',
    ]
    for i in range(server.n):
        lines += [
            "[[documents]]",
            f'id = "bench/doc-{i}"',
            f'service = "Bench {i}"',
            'type = "Terms of Service"',
            f'url = "{server.url(i)}"',
        ]
    path = workdir / "tosmon.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tosmon_cycle(
    workdir: Path, config: Path, name: str, n: int, *, profile: Path | None = None
) -> Cycle:
    tosmon = Path(sys.executable).parent / "tosmon"
    argv = [str(tosmon), "--config", str(config), "check", "--no-send", "--json"]
    if profile is not None:  # the changed pages' analyses in the profiled thread too
        inline = str(BENCH / "profile_inline.py")
        argv = [sys.executable, "-m", "cProfile", "-o", str(profile), inline, *argv[1:]]
    out = workdir / f"tosmon-{name}.json"
    wall, cpu, peak, status = run_child(argv, stdout=out)
    if status != 0:
        err = out.with_suffix(".err").read_text(errors="replace")[-2000:]
        raise SystemExit(f"tosmon {name} cycle failed (exit {status}):\n{err}")
    results = json.loads(out.read_text(encoding="utf-8"))
    outcomes = Counter(r["outcome"] for r in results)
    db = workdir / "tosmon.db"
    return Cycle(
        "tos-monitor",
        name,
        n,
        cpu,
        wall,
        peak,
        file_mb(db, db.with_name("tosmon.db-wal")),
        " ".join(f"{k}={v}" for k, v in sorted(outcomes.items())),
    )


# -- urlwatch ----------------------------------------------------------------------------------


def ensure_urlwatch(venv: Path | None = None) -> Path:
    if venv is not None:
        binary = venv / "bin" / "urlwatch"
        if not binary.exists():
            raise SystemExit(
                f"{binary} is missing: pip install urlwatch==2.29 html2text into {venv}"
            )
        return binary
    binary = URLWATCH_VENV / "bin" / "urlwatch"
    if not binary.exists():
        print(f"installing {' '.join(URLWATCH_REQUIREMENTS)} into {URLWATCH_VENV}", flush=True)
        python = shutil.which("python3") or sys.executable
        subprocess.run([python, "-m", "venv", str(URLWATCH_VENV)], check=True)
        subprocess.run(
            [str(URLWATCH_VENV / "bin" / "pip"), "install", "-q", *URLWATCH_REQUIREMENTS],
            check=True,
        )
    return binary


def urlwatch_files(workdir: Path, server: Server) -> tuple[Path, Path]:
    jobs = "---\n".join(
        f"name: doc-{i}\nurl: {server.url(i)}\nfilter: html2text\n" for i in range(server.n)
    )
    urls = workdir / "urls.yaml"
    urls.write_text(jobs, encoding="utf-8")
    config = workdir / "urlwatch.yaml"
    config.write_text(
        "display: {new: true, error: true, unchanged: false, empty-diff: true}\n"
        "report:\n"
        "  stdout: {enabled: true, color: false}\n"
        "  email: {enabled: false}\n"
        "  html: {diff: unified, separate: false}\n",
        encoding="utf-8",
    )
    return urls, config


def urlwatch_cycle(
    binary: Path, workdir: Path, urls: Path, config: Path, name: str, n: int
) -> Cycle:
    cache = workdir / "cache.db"
    argv = [
        str(binary),
        "--urls",
        str(urls),
        "--config",
        str(config),
        "--cache",
        str(cache),
        "--hooks",
        str(workdir / "hooks.py"),
    ]
    out = workdir / f"urlwatch-{name}.txt"
    env = {**os.environ, "HOME": str(workdir), "XDG_CACHE_HOME": str(workdir)}
    wall, cpu, peak, status = run_child(argv, stdout=out, env=env)
    if status != 0:
        err = out.with_suffix(".err").read_text(errors="replace")[-2000:]
        raise SystemExit(f"urlwatch {name} cycle failed (exit {status}):\n{err}")
    outcomes: Counter[str] = Counter()
    # read line by line: a child's peak RSS (ru_maxrss) starts from this process's RSS at the
    # fork, so holding urlwatch's report (hundreds of MB of diffs) would inflate the next peak
    with out.open(encoding="utf-8", errors="replace") as report:
        for line in report:
            for kind in ("NEW", "CHANGED", "ERROR"):
                if line.startswith(f"{kind}: "):
                    outcomes[kind.lower()] += 1
    return Cycle(
        "urlwatch 2.29",
        name,
        n,
        cpu,
        wall,
        peak,
        file_mb(cache, cache.with_name("cache.db-wal")),
        " ".join(f"{k}={v}" for k, v in sorted(outcomes.items())),
    )


# -- profile breakdown -------------------------------------------------------------------------

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("imports (interpreter start-up, lazy imports)", ("<frozen", "importlib", "marshal")),
    ("regex compilation (mostly at import)", ("/re/_", "sre_")),
    ("fetcher: block detection, charset", ("monitor/fetcher.py",)),
    ("HTTP client: httpx, httpcore, h11, anyio", ("httpx/", "httpcore/", "h11/", "anyio/")),
    ("asyncio event loop, sockets", ("asyncio/", "selectors.py", "socket.py", "ssl.py")),
    ("tracker: page fingerprint, decisions", ("monitor/tracker.py",)),
    ("extract: HTML -> clauses", ("monitor/extract.py", "lxml", "cssselect")),
    (
        "report: diff, classify, noise",
        ("monitor/report.py", "monitor/diff.py", "monitor/classify.py", "monitor/noise.py"),
    ),
    ("store + models (our queries)", ("monitor/store/", "monitor/models.py", "monitor/db.py")),
    ("database: SQLAlchemy, sqlite3, zlib", ("sqlalchemy/", "sqlite3", "zlib")),
    ("CLI, config, output", ("monitor/cli/", "monitor/config.py", "click/", "tomllib", "json/")),
    ("alembic (schema check)", ("alembic/",)),
)


def _stage(filename: str) -> str:
    for name, needles in STAGES:
        if any(needle in filename for needle in needles):
            return name
    return "other"


def profile_breakdown(path: Path, n: int) -> str:
    """Self time of a cProfile run grouped by stage; built-ins (re.sub, sha256, zlib...) are
    charged to the Python code that called them."""
    import pstats

    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    totals: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _nc, tt, _ct, callers) in stats.items():
        if filename == "~":  # a built-in: split its time among its callers
            sqlite = "sqlite3" in name or "zlib" in name
            edge_total = sum(edge[2] for edge in callers.values()) or 1.0
            for caller, edge in callers.items():
                share = tt * edge[2] / edge_total
                totals["database: SQLAlchemy, sqlite3, zlib" if sqlite else _stage(caller[0])] += (
                    share
                )
            if not callers:
                totals["other"] += tt
        else:
            totals[_stage(filename)] += tt
    whole = sum(totals.values())
    lines = [f"cProfile self time by stage, {whole:.2f} s in all ({n} pages):"]
    for name, seconds in totals.most_common():
        lines.append(
            f"  {name:<46} {seconds:6.2f} s  {1000 * seconds / n:6.2f} ms/page  "
            f"{100 * seconds / whole:4.1f}%"
        )
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------


def snapshot_db(workdir: Path, name: str, *, restore: bool = False, live: str = "tosmon") -> None:
    """Copy a SQLite database (``<live>.db`` and its WAL) aside as ``<name>.db``, or back."""
    for suffix in ("", "-wal", "-shm"):
        current, saved = workdir / f"{live}.db{suffix}", workdir / f"{name}.db{suffix}"
        source, target = (saved, current) if restore else (current, saved)
        target.unlink(missing_ok=True)
        if source.exists():
            shutil.copy2(source, target)


def forget_db(workdir: Path, live: str) -> None:
    """Delete a SQLite database and its WAL: the next cycle starts from nothing."""
    for suffix in ("", "-wal", "-shm"):
        (workdir / f"{live}.db{suffix}").unlink(missing_ok=True)


def bench(
    n: int,
    *,
    skip_urlwatch: bool,
    per_host: int,
    keep: bool,
    profile: bool = False,
    visible_noise: bool = False,
    urlwatch_venv: Path | None = None,
    repeat: int = 1,
) -> list[Cycle]:
    """The three cycles of both tools; with ``repeat`` > 1 each cycle runs that many times from
    the same starting state (the two tools taking turns, so that both meet the same moments of
    a shared machine), and the run with the median CPU is kept."""
    OUT.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"check-cycle-{n}-", dir=OUT))
    server = Server(n, visible_noise=visible_noise)
    cycles: list[Cycle] = []
    try:
        tos_dir = root / "tosmon"
        tos_dir.mkdir()
        config = tosmon_config(tos_dir, server, per_host=per_host)
        if not skip_urlwatch:
            binary = ensure_urlwatch(urlwatch_venv)
            uw_dir = root / "urlwatch"
            uw_dir.mkdir()
            urls, uw_config = urlwatch_files(uw_dir, server)

        def run(name: str, before: str | None) -> None:
            """``repeat`` runs of cycle ``name`` from the state saved as ``before`` (None: an
            empty database); the state after the last run is saved as ``after-<name>``."""
            ours: list[Cycle] = []
            theirs: list[Cycle] = []
            for _ in range(repeat):
                if before is None:
                    forget_db(tos_dir, "tosmon")
                else:
                    snapshot_db(tos_dir, before, restore=True)
                ours.append(tosmon_cycle(tos_dir, config, name, n))
                if not skip_urlwatch:
                    if before is None:
                        forget_db(uw_dir, "cache")
                    else:
                        snapshot_db(uw_dir, before, restore=True, live="cache")
                    theirs.append(urlwatch_cycle(binary, uw_dir, urls, uw_config, name, n))
            snapshot_db(tos_dir, f"after-{name}")
            cycles.append(median_run(ours))
            if theirs:
                snapshot_db(uw_dir, f"after-{name}", live="cache")
                cycles.append(median_run(theirs))

        server.set_generation(0)
        run("cold", None)
        server.set_generation(1)
        run("warm", "after-cold")
        # and once more with nothing changed: the cycle a monitor runs most of the time
        run("quiet", "after-warm")
        if profile:
            # the warm cycle again, from the same starting point, under cProfile (not tabled)
            snapshot_db(tos_dir, "after-cold", restore=True)
            target = OUT / f"tosmon-warm-{n}.prof"
            again = tosmon_cycle(tos_dir, config, "warm", n, profile=target)
            print(f"profile of the warm cycle ({again.outcomes}): {target}", flush=True)
            print(profile_breakdown(target, n), flush=True)
    finally:
        server.close()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return cycles


def table(cycles: list[Cycle]) -> str:
    repeated = any(len(c.runs) > 1 for c in cycles)
    header = (
        "|    N | tool          | cycle | CPU s | wall s | CPU ms/page | peak MB | db MB "
        "| outcomes |" + (" CPU ms/page of each run |" if repeated else "")
    )
    rows = [header, "|" + "|".join("---" for _ in range(10 if repeated else 9)) + "|"]
    for c in cycles:
        row = (
            f"| {c.n:>4} | {c.tool:<13} | {c.cycle:<5} | {c.cpu:5.2f} | {c.wall:6.2f} "
            f"| {c.cpu_ms_per_page:11.2f} | {c.peak_mb:7.1f} | {c.db_mb:5.1f} | {c.outcomes} |"
        )
        if repeated:
            row += " " + " ".join(f"{1000 * cpu / c.n:.2f}" for cpu in c.runs) + " |"
        rows.append(row)
    return "\n".join(rows)


def verdict(cycles: list[Cycle]) -> list[str]:
    lines = []
    for n in sorted({c.n for c in cycles}):
        by = {(c.tool, c.cycle): c for c in cycles if c.n == n}
        for name in ("warm", "quiet"):
            ours, theirs = by.get(("tos-monitor", name)), by.get(("urlwatch 2.29", name))
            if ours and theirs:
                ratio = ours.cpu_ms_per_page / theirs.cpu_ms_per_page
                ok = "met" if ratio <= 0.5 else "NOT met"
                medians = f", medians of {len(ours.runs)} runs" if len(ours.runs) > 1 else ""
                lines.append(
                    f"N={n}: {name} CPU/page {ours.cpu_ms_per_page:.2f} ms vs urlwatch "
                    f"{theirs.cpu_ms_per_page:.2f} ms = {ratio:.2f}x (target <= 0.5x: {ok}"
                    f"{medians})"
                )
        ours, theirs = by.get(("tos-monitor", "cold")), by.get(("urlwatch 2.29", "cold"))
        if ours and theirs:
            ratio = ours.cpu_ms_per_page / theirs.cpu_ms_per_page
            lines.append(
                f"N={n}: cold CPU/page {ours.cpu_ms_per_page:.2f} ms vs urlwatch "
                f"{theirs.cpu_ms_per_page:.2f} ms = {ratio:.2f}x"
            )
        peak = max((c.peak_mb for c in cycles if c.n == n and c.tool == "tos-monitor"), default=0)
        if n == 1000:
            ok = "met" if peak < 150 else "NOT met"
            lines.append(f"N={n}: tos-monitor peak {peak:.0f} MB (target < 150 MB: {ok})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time tos-monitor's check cycle (and urlwatch's).")
    parser.add_argument("--n", type=int, action="append", help="pages (repeatable; 200 and 1000)")
    parser.add_argument("--skip-urlwatch", action="store_true", help="time tos-monitor only")
    parser.add_argument(
        "--per-host",
        type=int,
        default=8,
        help="tos-monitor per_host and concurrency (all pages share one host; default 8)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="rerun the warm tos-monitor cycle under cProfile into bench/out/tosmon-warm-N.prof "
        "(changed pages analysed in the profiled thread: bench/profile_inline.py)",
    )
    parser.add_argument(
        "--visible-noise",
        action="store_true",
        help="pages whose visible text changes at every request (banner, generated-in footer)",
    )
    parser.add_argument(
        "--urlwatch-venv",
        type=Path,
        help="a venv with urlwatch 2.29 and html2text (default: installed into bench/out)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each cycle this many times from the same state; the median run is tabled",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    cycles: list[Cycle] = []
    for n in args.n or [200, 1000]:
        found = bench(
            n,
            skip_urlwatch=args.skip_urlwatch,
            per_host=args.per_host,
            keep=args.keep,
            profile=args.profile,
            visible_noise=args.visible_noise,
            urlwatch_venv=args.urlwatch_venv,
            repeat=max(1, args.repeat),
        )
        for c in found:
            print(
                f"N={n} {c.tool} {c.cycle}: cpu {c.cpu:.2f}s wall {c.wall:.2f}s "
                f"peak {c.peak_mb:.0f}MB db {c.db_mb:.1f}MB {c.outcomes}",
                flush=True,
            )
        cycles += found
    print()
    print(table(cycles))
    print()
    print("\n".join(verdict(cycles)))
    if args.json:
        args.json.write_text(
            json.dumps([{**c.__dict__, "cpu_ms_per_page": c.cpu_ms_per_page} for c in cycles])
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
