"""The daemon in-process: claims, scheduling, the SQLite lock, graceful stop, fault isolation."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config, DocumentConfig, load_config
from monitor.errors import LockError
from monitor.models import Check, Document, Version, Worker
from monitor.scheduler import (
    Daemon,
    acquire_daemon_lock,
    daemon_lock_holder,
    human,
    tick_period,
)
from monitor.store import history
from monitor.store import scheduling as store
from tests.daemonkit import (
    ROOT,
    checks_of,
    document,
    environment,
    tosmon,
    wait_until,
    write_config,
)
from tests.pages import terms_page
from tests.pageserver import PageServer

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)


def add_documents(
    sessions: sessionmaker[Session], count: int, *, next_check_at: datetime | None = NOW
) -> list[str]:
    ids = [f"service{i:02d}/terms" for i in range(count)]
    declarations = [
        DocumentConfig(id=i, service=i.split("/")[0], type="terms", url=f"http://127.0.0.1/{i}")
        for i in ids
    ]
    with sessions.begin() as session:
        history.sync_documents(session, declarations, now=NOW)
        session.flush()
        for doc in session.scalars(select(Document)):
            doc.next_check_at = next_check_at
    return ids


def claim(
    sessions: sessionmaker[Session],
    worker: str,
    *,
    now: datetime = NOW,
    limit: int = 100,
    only: list[str] | None = None,
) -> list[str]:
    with sessions.begin() as session:
        return store.claim_due_documents(
            session, worker=worker, now=now, lease=LEASE, limit=limit, only=only
        )


# -- claims ---------------------------------------------------------------------------------


def test_due_documents_are_claimed_most_overdue_first(sessions: sessionmaker[Session]) -> None:
    ids = add_documents(sessions, 4)
    with sessions.begin() as session:
        for offset, doc_id in enumerate(ids):
            session.get(Document, doc_id).next_check_at = NOW - timedelta(minutes=offset)
        session.get(Document, ids[0]).next_check_at = None  # never scheduled: first of all
        session.get(Document, ids[1]).next_check_at = NOW + timedelta(seconds=1)  # not yet due
    assert claim(sessions, "a") == [ids[0], ids[3], ids[2]]


def test_a_claimed_document_is_not_claimed_again_until_its_lease_expires(
    sessions: sessionmaker[Session],
) -> None:
    ids = add_documents(sessions, 3)
    assert claim(sessions, "a", limit=2) == ids[:2]
    assert claim(sessions, "b") == ids[2:]
    assert claim(sessions, "b", now=NOW + LEASE - timedelta(seconds=1)) == []
    assert sorted(claim(sessions, "b", now=NOW + LEASE + timedelta(seconds=1))) == ids


def test_claims_are_restricted_to_the_declared_documents(sessions: sessionmaker[Session]) -> None:
    ids = add_documents(sessions, 3)
    assert claim(sessions, "a", only=[ids[1]]) == [ids[1]]
    assert claim(sessions, "a", only=[]) == []


def test_released_claims_are_free_and_renewed_claims_last(
    sessions: sessionmaker[Session],
) -> None:
    ids = add_documents(sessions, 2)
    claim(sessions, "a")
    with sessions.begin() as session:
        assert store.release_claims(session, worker="b") == 0  # not b's to release
        assert store.release_claims(session, worker="a", ids=[ids[0]]) == 1
        later = NOW + LEASE / 2
        assert store.renew_claims(session, worker="a", now=later, lease=LEASE, ids=[ids[1]]) == 1
    assert claim(sessions, "b", now=NOW + LEASE + timedelta(seconds=1)) == [ids[0]]


def test_concurrent_claims_never_hand_out_a_document_twice(
    sessions: sessionmaker[Session],
) -> None:
    ids = add_documents(sessions, 40)
    results: dict[str, list[str]] = {}
    start = threading.Barrier(8)

    def worker(name: str) -> None:
        start.wait()
        got: list[str] = []
        for _ in range(10):
            got.extend(claim(sessions, name, limit=3))
        results[name] = got

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed_out = [doc_id for got in results.values() for doc_id in got]
    assert sorted(handed_out) == ids


# -- scheduling -----------------------------------------------------------------------------


def unit_config(tmp_path: Path, *, interval: str = "6h", jitter: float = 0.1) -> Config:
    path = tmp_path / "unit.toml"
    write_config(
        path,
        database_url="sqlite:///unused.db",
        documents=[],
        smtp_port=None,
        interval=interval,
        jitter=jitter,
    )
    return load_config(path)


def test_new_documents_are_spread_over_their_first_window(
    tmp_path: Path, data_dir: Path, sessions: sessionmaker[Session]
) -> None:
    ids = add_documents(sessions, 20, next_check_at=None)
    config = unit_config(tmp_path)
    daemon = Daemon(config, sessions, clock=lambda: NOW, rng=random.Random(1), web=False)
    with sessions.begin() as session:
        new, earlier = store.schedule_documents(
            session,
            ids=ids,
            interval_of=lambda _doc: timedelta(hours=6),
            first_check_at=daemon._first_check_at(NOW),
        )
        times = sorted(session.get(Document, i).next_check_at for i in ids)
    assert (new, earlier) == (20, 0)
    assert times[0] >= NOW
    assert times[-1] <= NOW + timedelta(seconds=40)  # 2 s per new document
    assert len(set(times)) == 20


def test_a_shortened_interval_brings_the_next_check_forward(
    sessions: sessionmaker[Session],
) -> None:
    ids = add_documents(sessions, 2)
    with sessions.begin() as session:
        for doc_id in ids:
            doc = session.get(Document, doc_id)
            doc.last_check_at = NOW
            doc.next_check_at = NOW + timedelta(hours=6)
        new, earlier = store.schedule_documents(
            session,
            ids=ids[:1],
            interval_of=lambda _doc: timedelta(hours=1),
            first_check_at=lambda *_: NOW,
        )
    assert (new, earlier) == (0, 1)
    with sessions() as session:
        assert session.get(Document, ids[0]).next_check_at == NOW + timedelta(hours=1)
        assert session.get(Document, ids[1]).next_check_at == NOW + timedelta(hours=6)


def test_intervals_are_jittered_within_the_configured_fraction(
    tmp_path: Path, data_dir: Path, sessions: sessionmaker[Session]
) -> None:
    daemon = Daemon(unit_config(tmp_path), sessions, rng=random.Random(7), web=False)
    own = Document(id="a/b", interval_seconds=600)
    default = Document(id="c/d", interval_seconds=None)
    spans = [daemon.interval_for(default) for _ in range(200)]
    assert all(timedelta(hours=5.4) <= span <= timedelta(hours=6.6) for span in spans)
    assert len(set(spans)) > 100  # spread out, not one value
    assert all(
        timedelta(seconds=540) <= daemon.interval_for(own) <= timedelta(seconds=660)
        for _ in range(50)
    )


def test_the_tick_follows_the_shortest_interval(tmp_path: Path, data_dir: Path) -> None:
    def config(interval: str) -> object:
        return load_config(
            write_config(
                tmp_path / "c.toml",
                database_url="sqlite:///x.db",
                documents=[("a/terms", "http://127.0.0.1/")],
                smtp_port=None,
                interval=interval,
            )
        )

    assert tick_period(config("6h")) == 5.0  # type: ignore[arg-type]
    assert tick_period(config("2s")) == 0.5  # type: ignore[arg-type]
    assert tick_period(config("1s")) == 0.25  # type: ignore[arg-type]


def test_human_durations() -> None:
    assert human(timedelta(hours=6)) == "6h"
    assert human(timedelta(seconds=90)) == "1m30s"
    assert human(timedelta(days=1, minutes=5)) == "1d5m"


# -- one daemon per SQLite database ---------------------------------------------------------


def test_the_sqlite_lock_admits_one_daemon_and_names_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tosmon.db'}"
    lock = acquire_daemon_lock(url, worker="host:1:abc")
    assert lock is not None
    try:
        assert "host:1:abc" in (daemon_lock_holder(url) or "")
        with pytest.raises(LockError, match=r"another tosmon daemon \(worker host:1:abc"):
            acquire_daemon_lock(url, worker="host:2:def")
    finally:
        lock.release()
    assert daemon_lock_holder(url) is None
    again = acquire_daemon_lock(url, worker="host:2:def")
    assert again is not None
    again.release()


def test_postgresql_needs_no_daemon_lock() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert acquire_daemon_lock(url, worker="w") is None
    assert daemon_lock_holder(url) is None


# -- the daemon, in-process -----------------------------------------------------------------


def start_daemon(
    tmp_path: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    documents: list[tuple[str, str]],
    *,
    timeout: float = 2.0,
    grace: float = 5.0,
) -> Daemon:
    config = load_config(
        write_config(
            tmp_path / "tosmon.toml",
            database_url=database_url,
            documents=documents,
            smtp_port=None,
            alerts_email=None,
            timeout=timeout,
        )
    )
    daemon = Daemon(config, sessions, web=False, grace=grace)
    daemon.start()
    return daemon


def test_stop_abandons_a_hanging_check_without_a_trace(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
) -> None:
    page_server.set("/tos", terms_page())
    page_server.delay("/tos", 20)
    daemon = start_daemon(
        tmp_path,
        database_url,
        sessions,
        [("example/terms", page_server.url("/tos"))],
        timeout=30,
        grace=0.5,
    )
    try:
        wait_until(lambda: page_server.hits("/tos"), what="the fetch to start")
        with sessions() as session:
            before = session.get(Document, "example/terms").next_check_at
    finally:
        started = time.monotonic()
        daemon.stop()
    assert time.monotonic() - started < 10
    assert checks_of(sessions, "example/terms") == []
    with sessions() as session:
        doc = session.get(Document, "example/terms")
        assert doc.claimed_by is None  # given back: due again at the next start
        assert doc.next_check_at == before
        assert doc.current_version_id is None
        worker = session.get(Worker, daemon.worker)
        assert worker is not None and worker.stopped_at is not None


def test_an_unexpected_error_in_one_check_is_recorded_and_the_daemon_goes_on(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.fetcher import Fetcher

    real_fetch = Fetcher.fetch

    async def fetch(self: Fetcher, url: str, **kwargs: object):  # type: ignore[no-untyped-def]
        if url.endswith("/bug"):
            raise RuntimeError("a bug in the fetcher")
        return await real_fetch(self, url, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Fetcher, "fetch", fetch)
    page_server.set("/tos", terms_page())
    daemon = start_daemon(
        tmp_path,
        database_url,
        sessions,
        [("bug/terms", page_server.url("/bug")), ("fine/terms", page_server.url("/tos"))],
    )
    try:
        wait_until(lambda: len(checks_of(sessions, "bug/terms")) >= 2, what="two failures")
        wait_until(lambda: len(checks_of(sessions, "fine/terms")) >= 2, what="two checks")
    finally:
        daemon.stop()
    failed = checks_of(sessions, "bug/terms")
    assert all(c.outcome == "failed" for c in failed)
    assert "internal error: RuntimeError: a bug in the fetcher" in (failed[0].error or "")
    assert checks_of(sessions, "fine/terms")[0].outcome == "first"


def test_a_body_of_invalid_utf8_is_a_failure_not_a_version(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
) -> None:
    page_server.set("/tos", terms_page())
    daemon = start_daemon(
        tmp_path, database_url, sessions, [("example/terms", page_server.url("/tos"))]
    )
    try:
        wait_until(lambda: checks_of(sessions, "example/terms"), what="the baseline")
        page_server.set("/tos", bytes(range(128, 256)) * 20 + b"<p>\xff\xfe</p>")
        wait_until(lambda: len(checks_of(sessions, "example/terms")) >= 2, what="a second check")
    finally:
        daemon.stop()
    with sessions() as session:
        versions = session.scalars(select(Version)).all()
        second = session.scalars(select(Check).order_by(Check.id)).all()[1]
    assert len(versions) == 1
    assert second.outcome in ("failed", "blocked")


def test_the_fetcher_is_renewed_without_breaking_a_check_in_flight(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor import scheduler
    from monitor.fetcher import Fetcher

    opened: list[Fetcher] = []
    closed: list[Fetcher] = []
    real_enter, real_exit = Fetcher.__aenter__, Fetcher.__aexit__

    async def enter(self: Fetcher) -> Fetcher:
        opened.append(self)
        return await real_enter(self)

    async def exit_(self: Fetcher, *exc: object) -> None:
        closed.append(self)
        await real_exit(self, *exc)  # type: ignore[arg-type]

    monkeypatch.setattr(Fetcher, "__aenter__", enter)
    monkeypatch.setattr(Fetcher, "__aexit__", exit_)
    monkeypatch.setattr(scheduler, "FETCHER_LIFETIME", 0.3)
    page_server.set("/tos", terms_page())
    page_server.delay("/tos", 1.0)  # every check spans at least one renewal
    daemon = start_daemon(
        tmp_path, database_url, sessions, [("example/terms", page_server.url("/tos"))]
    )
    try:
        wait_until(lambda: len(checks_of(sessions, "example/terms")) >= 2, what="two checks")
    finally:
        daemon.stop()
    assert [c.outcome for c in checks_of(sessions, "example/terms")][:2] == ["first", "unchanged"]
    assert len(opened) >= 3
    assert sorted(map(id, closed)) == sorted(map(id, opened))  # every one closed, once


# --- claims of a killed process ------------------------------------------------------------


def test_a_killed_check_does_not_hold_its_claim_for_the_whole_lease(
    tmp_path: Path,
    engine,  # type: ignore[no-untyped-def]
    sessions: sessionmaker[Session],
    page_server: PageServer,
    data_dir: Path,
) -> None:
    """`tosmon check` killed with SIGKILL while fetching: the next `tosmon check` on the same
    host sees that the claiming process is gone and checks the document at once, instead of
    skipping it as "being checked by a running daemon" for the 10-minute lease."""
    page_server.set("/stall", terms_page())
    page_server.delay("/stall", 60)
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=engine.url.render_as_string(hide_password=False),
        documents=[("slow/terms", page_server.url("/stall"))],
        smtp_port=None,
        lease="10m",
        timeout=120,
    )
    env = environment(data_dir)
    stalled = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "check", "--no-send"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: page_server.hits("/stall") >= 1, what="the stalled fetch", timeout=60)
        held = document(sessions, "slow/terms")
        assert held is not None and held.claim_pid == stalled.pid
        stalled.send_signal(signal.SIGKILL)
        stalled.wait(timeout=10)
    finally:
        if stalled.poll() is None:
            stalled.kill()
            stalled.wait()
    held = document(sessions, "slow/terms")
    assert held is not None and held.claimed_by is not None  # the killed process let nothing go
    assert held.claim_expires_at is not None
    assert held.claim_expires_at > datetime.now(UTC) + timedelta(minutes=5)

    page_server.delay("/stall", 0)
    done = tosmon(config, "check", "--json", "--no-send", env=env)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert (result["document"], result["outcome"]) == ("slow/terms", "first"), result
    after = document(sessions, "slow/terms")
    assert after is not None and (after.claimed_by, after.claim_pid) == (None, None)


def test_claims_of_live_or_remote_processes_are_kept(sessions: sessionmaker[Session]) -> None:
    """Only a process of this host that no longer runs loses its claim early."""
    add_documents(sessions, 3)
    here = store.this_process()
    dead_pid = _a_dead_pid()
    holders = {
        "service00/terms": store.ClaimingProcess(here.host, dead_pid),  # dead, here: released
        "service01/terms": store.ClaimingProcess(here.host, os.getppid()),  # alive, here: kept
        "service02/terms": store.ClaimingProcess("elsewhere boot pid:[1]", dead_pid),  # kept
    }
    for doc_id, process in holders.items():
        with sessions.begin() as session:
            assert store.claim_due_documents(
                session,
                worker=f"w-{doc_id}",
                now=NOW,
                lease=LEASE,
                limit=1,
                only=[doc_id],
                process=process,
            ) == [doc_id]
    assert claim(sessions, "me", now=NOW + timedelta(seconds=1)) == ["service00/terms"]
    with sessions() as session:
        owners = dict(session.execute(select(Document.id, Document.claimed_by)).all())
    assert owners == {
        "service00/terms": "me",
        "service01/terms": "w-service01/terms",
        "service02/terms": "w-service02/terms",
    }


def _a_dead_pid() -> int:
    """The pid of a process that ran and was reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- reloading the config ----------------------------------------------------------------------


def reload_config(tmp_path: Path, text: str, name: str = "reload.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


RELOAD_BASE = """use_catalog = false
[storage]
database_url = "{url}"
[daemon]
interval = "6h"
[web]
bind = "127.0.0.1:0"
[[documents]]
id = "a/terms"
service = "A"
type = "Terms"
url = "https://a.example/terms"
[[documents]]
id = "b/terms"
service = "B"
type = "Terms"
url = "https://b.example/terms"
"""


def test_describe_config_changes_names_documents_intervals_and_settings(tmp_path: Path) -> None:
    from monitor.scheduler import describe_config_changes

    old = load_config(reload_config(tmp_path, RELOAD_BASE.format(url="sqlite:///x.db"), "a.toml"))
    changed = (
        RELOAD_BASE.format(url="sqlite:///y.db").replace('id = "b/terms"', 'id = "c/terms"')
        + '[[documents]]\nid = "d/terms"\nservice = "D"\ntype = "T"\nurl = "https://d.example/"\n'
        + '[mail]\nhost = "smtp.example.org"\nsender = "tos-monitor <tosmon@example.org>"\n'
    ).replace('url = "https://a.example/terms"', 'url = "https://a.example/terms"\ninterval = "1h"')
    new = load_config(reload_config(tmp_path, changed, "b.toml"))
    assert describe_config_changes(old, new) == [
        "+2 documents (c/terms, d/terms)",
        "-1 (b/terms)",
        "interval of a/terms 6h->1h",
        "mail host changed",
        "mail sender changed",
        "storage database url changed (takes effect at restart)",
    ]
    assert describe_config_changes(old, old) == []


def test_a_reload_applies_new_documents_and_intervals_and_keeps_a_broken_config_out(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = reload_config(tmp_path, RELOAD_BASE.format(url=database_url))
    config = load_config(path)
    daemon = Daemon(
        config, sessions, clock=lambda: NOW, web=False, load_config=lambda: load_config(path)
    )
    daemon.prepare()
    with sessions.begin() as session:  # a/terms was checked just now; due again in 6h
        doc = session.get(Document, "a/terms")
        doc.last_check_at, doc.next_check_at = NOW, NOW + timedelta(hours=6)
    text = RELOAD_BASE.format(url=database_url).replace(
        'url = "https://a.example/terms"', 'url = "https://a.example/terms"\ninterval = "1h"'
    )
    path.write_text(
        text
        + '[[documents]]\nid = "c/terms"\nservice = "C"\ntype = "T"\nurl = "https://c.example/"\n',
        encoding="utf-8",
    )
    caplog.set_level("INFO", logger="monitor.scheduler")
    assert daemon.reload() == ["+1 document (c/terms)", "interval of a/terms 6h->1h"]
    assert daemon.declared == frozenset({"a/terms", "b/terms", "c/terms"})
    with sessions() as session:
        assert session.get(Document, "c/terms") is not None  # in the database, scheduled
        assert session.get(Document, "c/terms").next_check_at is not None
        assert session.get(Document, "a/terms").next_check_at == NOW + timedelta(hours=1)
    assert "config reloaded: +1 document (c/terms), interval of a/terms 6h->1h" in caplog.text

    path.write_text("use_catalog = false\n[daemon]\ninterval = 6h\n", encoding="utf-8")
    assert daemon.reload() is None
    assert f"config reload failed, keeping the current config: {path}:3" in caplog.text
    assert daemon.declared == frozenset({"a/terms", "b/terms", "c/terms"})
    assert daemon.config.documents[0].interval == timedelta(hours=1)
