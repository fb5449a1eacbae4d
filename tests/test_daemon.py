"""``tosmon run`` as a real process: a real page server, a real SMTP server, a real database.

Intervals are one or two seconds, so each test watches a few check cycles. Every test runs on
SQLite and on PostgreSQL (the two-daemon test on PostgreSQL only).
"""

from __future__ import annotations

import json
import signal
import socket
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from alembic import command as alembic_command
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.db import alembic_config, current_revision, head_revision
from monitor.models import Blob, Change, Check, Document, Version, Worker
from monitor.outbox import CRASH_ENV
from monitor.subscriptions import as_filter
from monitor.subscriptions import subscribe as add_subscriber
from tests.daemonkit import (
    Daemon,
    checks_of,
    count_checks,
    count_versions_of,
    deliveries,
    document,
    environment,
    tosmon,
    wait_until,
    write_config,
)
from tests.pages import AI_TRAINING, terms_page
from tests.pageserver import CAPTCHA_HTML, PageServer
from tests.smtp import SMTPTestServer

READER = "reader@example.org"


def subscribe(sessions: sessionmaker[Session], address: str = READER) -> None:
    """An active subscriber to the default topics (AI and content licences), severity medium+."""
    with sessions.begin() as session:
        add_subscriber(session, address, as_filter(), now=datetime.now(UTC), confirm=False)


def test_a_change_reaches_the_reader_once_and_sigterm_stops_the_daemon(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    smtp_server: SMTPTestServer,
) -> None:
    page_server.set("/tos", terms_page())
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=database_url,
        documents=[("example/terms", page_server.url("/tos"))],
        smtp_port=smtp_server.port,
    )
    env = environment(data_dir)
    subscribe(sessions)
    with Daemon(config, env=env, log=tmp_path / "daemon.log") as daemon:
        wait_until(
            lambda: [c for c in checks_of(sessions, "example/terms") if c.outcome == "first"],
            what="the baseline check",
            daemon=daemon,
        )
        page_server.set("/tos", terms_page(extra=AI_TRAINING))
        messages = smtp_server.wait_for(1, timeout=20)
        assert len(messages) == 1, daemon.log()
        seen = len(checks_of(sessions, "example/terms"))
        wait_until(lambda: len(checks_of(sessions, "example/terms")) > seen, what="one more check")
        assert daemon.terminate(timeout=10) == 0
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["To"] == READER
    outcomes = [c.outcome for c in checks_of(sessions, "example/terms")]
    assert outcomes[0] == "first"
    assert outcomes.count("changed") == 1
    log = daemon.log()
    assert "check example/terms changed" in log
    assert "daemon" in log and "stopped" in log


def test_a_restart_checks_nothing_early_but_checks_a_new_document_soon(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
) -> None:
    page_server.set("/old", terms_page())
    page_server.set("/new", terms_page())
    old = [("example/old", page_server.url("/old"))]
    config = tmp_path / "tosmon.toml"
    write_config(config, database_url=database_url, documents=old, smtp_port=None, interval="1h")
    env = environment(data_dir)
    assert tosmon(config, "check", "--no-send", env=env).returncode == 0
    assert page_server.hits("/old") == 1
    write_config(
        config,
        database_url=database_url,
        documents=[*old, ("example/new", page_server.url("/new"))],
        smtp_port=None,
        interval="1h",
    )
    with Daemon(config, env=env, log=tmp_path / "daemon.log", args=["--log-format", "json"]) as d:
        wait_until(lambda: checks_of(sessions, "example/new"), what="the new document", daemon=d)
        assert d.terminate() == 0
    assert page_server.hits("/old") == 1  # checked an hour ago by `tosmon check`: not due
    assert page_server.hits("/new") == 1
    lines = [json.loads(line) for line in d.log().splitlines() if line.strip()]
    checks = [line for line in lines if line.get("outcome") == "first"]
    assert len(checks) == 1
    assert checks[0]["document"] == "example/new"
    assert checks[0]["level"] == "INFO"
    assert isinstance(checks[0]["duration"], float)
    assert checks[0]["worker"]


def test_a_daemon_killed_during_a_check_leaves_no_trace_and_the_next_one_reports_once(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    smtp_server: SMTPTestServer,
) -> None:
    page_server.set("/tos", terms_page())
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=database_url,
        documents=[("example/terms", page_server.url("/tos"))],
        smtp_port=smtp_server.port,
        timeout=10.0,
    )
    env = environment(data_dir)
    subscribe(sessions)
    with Daemon(config, env=env, log=tmp_path / "first.log") as first:
        wait_until(lambda: checks_of(sessions, "example/terms"), what="the baseline", daemon=first)
        page_server.set("/tos", terms_page(extra=AI_TRAINING))
        page_server.delay("/tos", 30)
        hits = page_server.hits("/tos")
        wait_until(lambda: page_server.hits("/tos") > hits, what="the next fetch", daemon=first)
        first.kill()  # in the middle of the fetch
    checks = checks_of(sessions, "example/terms")
    assert [c.outcome for c in checks] == ["first"]
    assert_consistent(engine, sessions)
    page_server.delay("/tos", 0)
    with Daemon(config, env=env, log=tmp_path / "second.log") as second:
        # the dead daemon's claim expires after its lease (2 s), then the check is redone
        wait_until(lambda: smtp_server.envelopes, what="the report", daemon=second)
        seen = len(checks_of(sessions, "example/terms"))
        wait_until(lambda: len(checks_of(sessions, "example/terms")) > seen, what="a check")
        assert second.terminate() == 0
    assert len(smtp_server.envelopes) == 1
    assert [c.outcome for c in checks_of(sessions, "example/terms")].count("changed") == 1
    assert_consistent(engine, sessions)


@pytest.mark.parametrize("point", ["before_send", "after_send"])
def test_a_daemon_killed_during_delivery_loses_no_report(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    smtp_server: SMTPTestServer,
    point: str,
) -> None:
    """Killed after the SMTP server took the message but before it was marked sent, the report
    is sent again with the same Message-ID (the documented window); otherwise exactly once."""
    page_server.set("/tos", terms_page())
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=database_url,
        documents=[("example/terms", page_server.url("/tos"))],
        smtp_port=smtp_server.port,
        alerts_email=None,
    )
    env = environment(data_dir)
    subscribe(sessions)
    crashing = Daemon(config, env={**env, CRASH_ENV: point}, log=tmp_path / "first.log")
    with crashing:
        wait_until(lambda: checks_of(sessions, "example/terms"), what="baseline", daemon=crashing)
        page_server.set("/tos", terms_page(extra=AI_TRAINING))
        wait_until(lambda: not crashing.alive(), what="the crash", daemon=crashing)
    assert_consistent(engine, sessions)
    with Daemon(config, env=env, log=tmp_path / "second.log") as second:
        wait_until(
            lambda: [d for d in deliveries(sessions, "report") if d.status == "sent"],
            what="the report marked sent",
            daemon=second,
        )
        assert second.terminate() == 0
    ids = {message["Message-ID"] for message in smtp_server.messages}
    assert len(ids) == 1
    assert len(smtp_server.envelopes) == (2 if point == "after_send" else 1)
    assert [c.outcome for c in checks_of(sessions, "example/terms")].count("changed") == 1
    assert_consistent(engine, sessions)


def test_reports_queued_during_an_smtp_outage_are_each_delivered_once(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    smtp_server: SMTPTestServer,
) -> None:
    page_server.set("/a", terms_page())
    page_server.set("/b", terms_page())
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=database_url,
        documents=[("alpha/terms", page_server.url("/a")), ("beta/terms", page_server.url("/b"))],
        smtp_port=smtp_server.port,
        alerts_email=None,
    )
    env = environment(data_dir)
    subscribe(sessions)
    smtp_server.stop()
    with Daemon(config, env=env, log=tmp_path / "daemon.log") as daemon:
        wait_until(lambda: count_checks(sessions) >= 2, what="baselines", daemon=daemon)
        page_server.set("/a", terms_page(extra=AI_TRAINING))
        page_server.set("/b", terms_page(extra=AI_TRAINING))
        wait_until(
            lambda: sum(d.attempts for d in deliveries(sessions, "report")) >= 3,
            what="several failed delivery attempts",
            daemon=daemon,
        )
        assert daemon.alive()
        smtp_server.start()
        smtp_server.wait_for(2, timeout=20)
        wait_until(
            lambda: all(d.status == "sent" for d in deliveries(sessions, "report")),
            what="both reports marked sent",
            daemon=daemon,
        )
        assert daemon.terminate() == 0
    assert len(smtp_server.envelopes) == 2
    # subjects now lead with the change's headline: long enough to be folded on the wire
    subjects = sorted(" ".join(str(message["Subject"]).split()) for message in smtp_server.messages)
    assert "alpha" in subjects[0].lower() and "beta" in subjects[1].lower()


def assert_consistent(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """The schema is at head and matches the models; nothing half-written is in the database."""
    assert current_revision(engine) == head_revision(engine)
    alembic_command.check(alembic_config(engine))
    with sessions() as session:
        for version in session.scalars(select(Version)):
            assert session.get(Blob, version.text_hash) is not None
        for doc in session.scalars(select(Document)):
            if doc.current_version_id is not None:
                assert session.get(Version, doc.current_version_id) is not None
        for change in session.scalars(select(Change)):
            assert session.get(Version, change.new_version_id) is not None
        for check in session.scalars(select(Check).where(Check.outcome == "changed")):
            assert check.version_id is not None


MISBEHAVIOURS = (
    "timeout",
    "reset",
    "error",
    "truncated",
    "captcha",
    "empty",
    "huge",
    "loop",
    "garbled",
)


def misbehave(server: PageServer, name: str) -> None:
    path = f"/{name}"
    if name == "timeout":
        server.delay(path, 3.0)  # the fetch timeout is 1 s
    elif name == "reset":
        server.reset(path)
    elif name == "error":
        server.fail(path, times=10_000, status=500)
    elif name == "truncated":
        server.truncate(path, terms_page()[:300])
    elif name == "captcha":
        server.set(path, CAPTCHA_HTML)
    elif name == "empty":
        server.set(path, b"")
    elif name == "huge":
        server.stream(path, 20_000_000)
    elif name == "loop":
        server.redirect(path, "/loop-back")
        server.redirect("/loop-back", path)
    elif name == "garbled":  # declared UTF-8, mostly invalid bytes
        server.set(path, bytes(range(128, 256)) * 20 + terms_page().encode()[:200])


def behave(server: PageServer, name: str) -> None:
    path = f"/{name}"
    server.remove(path)
    server.set(path, terms_page())


@pytest.mark.slow
def test_a_misbehaving_server_gives_failures_with_reasons_and_one_alert_each_way(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    smtp_server: SMTPTestServer,
) -> None:
    for name in MISBEHAVIOURS:
        behave(page_server, name)
    ids = {name: f"bad-{name}/terms" for name in MISBEHAVIOURS}
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=database_url,
        documents=[(ids[name], page_server.url(f"/{name}")) for name in MISBEHAVIOURS],
        smtp_port=smtp_server.port,
        timeout=1.0,
        after_failures=2,
    )
    env = environment(data_dir)
    subscribe(sessions)

    def failures() -> list[int]:
        return [document(sessions, doc_id).consecutive_failures for doc_id in ids.values()]

    with Daemon(config, env=env, log=tmp_path / "daemon.log") as daemon:
        wait_until(lambda: count_checks(sessions, "first") == len(ids), what="baselines")
        for name in MISBEHAVIOURS:
            misbehave(page_server, name)
        wait_until(lambda: min(failures()) >= 3, what="three failures each", daemon=daemon)
        assert daemon.alive()
        for name in MISBEHAVIOURS:
            behave(page_server, name)
        wait_until(lambda: max(failures()) == 0, what="recovery", daemon=daemon)
        smtp_server.wait_for(2 * len(ids), timeout=20)
        wait_until(
            lambda: all(d.status == "sent" for d in deliveries(sessions)), what="alerts sent"
        )
        assert daemon.terminate() == 0
    for name, doc_id in ids.items():
        checks = checks_of(sessions, doc_id)
        failed = [c for c in checks if c.outcome in ("failed", "blocked")]
        assert len(failed) >= 3, name
        assert all(c.error for c in failed), name
        assert {c.outcome for c in checks} - {"failed", "blocked"} == {"first", "unchanged"}, name
        assert count_versions_of(sessions, doc_id) == 1, name
    assert count_checks(sessions, "changed") == 0
    messages = smtp_server.messages
    assert {message["To"] for message in messages} == {"ops@example.org"}  # no change report
    bodies = [message.get_body(("plain",)).get_content() for message in messages]
    for doc_id in ids.values():
        about = [b for b in bodies if f"The document {doc_id} " in b]
        assert len(about) == 2, doc_id
        assert sum("Last error:" in b for b in about) == 1  # failing, with the reason
        assert sum("checked successfully again" in b for b in about) == 1  # recovered
    reasons = " ".join(bodies)
    for phrase in (
        "timed out",
        "reset",
        "500",
        "larger than",
        "redirect loop",
        "empty",
        "not valid utf-8",
        "bot challenge",
    ):
        assert phrase in reasons


@pytest.mark.slow
@pytest.mark.postgres
def test_two_daemons_on_postgresql_share_the_work_without_overlap(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    smtp_server: SMTPTestServer,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several daemons share one database on PostgreSQL only")
    count, interval = 50, 2.0
    ids = [f"service{i:02d}/terms" for i in range(count)]
    for i in range(count):
        page_server.set(f"/doc/{i}", terms_page())
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=database_url,
        documents=[(doc_id, page_server.url(f"/doc/{i}")) for i, doc_id in enumerate(ids)],
        smtp_port=smtp_server.port,
        interval="2s",
        jitter=0.1,
        per_host=8,
    )
    env = environment(data_dir)
    subscribe(sessions)
    with (
        Daemon(config, env=env, log=tmp_path / "a.log") as a,
        Daemon(config, env=env, log=tmp_path / "b.log") as b,
    ):

        def fewest_checks() -> int:
            return min(len(checks_of(sessions, doc_id)) for doc_id in ids)

        wait_until(lambda: fewest_checks() >= 3, timeout=40, what="three cycles", daemon=a)
        changed = [f"/doc/{i}" for i in range(0, count, 10)]
        for path in changed:
            page_server.set(path, terms_page(extra=AI_TRAINING))
        smtp_server.wait_for(len(changed), timeout=20)
        reached = fewest_checks()
        wait_until(lambda: fewest_checks() > reached, timeout=20, what="one more cycle", daemon=b)
        assert a.terminate() == 0
        assert b.terminate() == 0
    assert len(smtp_server.envelopes) == len(changed)
    assert count_checks(sessions, "changed") == len(changed)
    workers = set()
    shortest = interval * (1 - 0.1) - 0.05
    for doc_id in ids:
        checks = checks_of(sessions, doc_id)
        workers.update(c.worker for c in checks)
        gaps = [(b.checked_at - a.checked_at).total_seconds() for a, b in pairwise(checks)]
        assert min(gaps) >= shortest, (doc_id, gaps)
    assert len(workers) == 2  # both daemons did part of the work
    for i in range(count):
        arrivals = [r.at for r in page_server.requests_to(f"/doc/{i}")]
        assert min(b - a for a, b in pairwise(arrivals)) >= 1.0  # never two fetches at once


BAD_CONFIGS = {
    "syntax": ('[daemon]\ninterval = "1s\n', 2, None),
    "unknown key": ('[daemon]\nintervall = "1s"\n', 2, "daemon.intervall"),
    "wrong type": ("[fetch]\ntimeout = true\n", 2, "fetch.timeout"),
    "bad url": (
        '[[documents]]\nservice = "a"\ntype = "terms"\nurl = "ftp://example.org/tos"\n',
        4,
        "documents[1].url",
    ),
    "bad interval": ('[daemon]\ninterval = "soon"\n', 2, "daemon.interval"),
    "bad alert address": ('[alerts]\nemail = "ops at example"\n', 2, "alerts.email"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_broken_config_stops_run_with_one_line_and_status_2(
    tmp_path: Path, data_dir: Path, case: str
) -> None:
    text, line, key = BAD_CONFIGS[case]
    config = tmp_path / "broken.toml"
    config.write_text(text, encoding="utf-8")
    result = tosmon(config, "run", env=environment(data_dir))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {config}:{line}: ")
    if key is not None:
        assert f": {key}: " in lines[0]


def test_an_invalid_subscriber_address_is_refused(tmp_path: Path, data_dir: Path) -> None:
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=f"sqlite:///{tmp_path / 'tosmon.db'}",
        documents=[],
        smtp_port=None,
    )
    result = tosmon(
        config, "subscribe", "reader@@example", "--no-confirm", env=environment(data_dir)
    )
    assert result.returncode == 1
    assert "not a valid email address" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_daemon_on_the_same_sqlite_database_refuses_to_start(
    tmp_path: Path, data_dir: Path, page_server: PageServer
) -> None:
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=f"sqlite:///{tmp_path / 'tosmon.db'}",
        documents=[("example/terms", page_server.url("/terms"))],
        smtp_port=None,
    )
    env = environment(data_dir)
    with Daemon(config, env=env, log=tmp_path / "daemon.log") as first:
        wait_until(lambda: "started" in first.log(), what="the first daemon", daemon=first)
        second = tosmon(config, "run", env=env)
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "another tosmon daemon" in lines[0] and "already running" in lines[0]
        status = json.loads(tosmon(config, "status", "--json", env=env).stdout)
        assert status["running"] is True
        assert [d["pid"] for d in status["daemons"] if d["alive"]] == [first.pid]
        assert first.terminate() == 0
    status = json.loads(tosmon(config, "status", "--json", env=env).stdout)
    assert status["running"] is False


def test_a_web_port_in_use_stops_run_with_one_line(
    tmp_path: Path, data_dir: Path, database_url: str, sessions: sessionmaker[Session]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        config = write_config(
            tmp_path / "tosmon.toml",
            database_url=database_url,
            documents=[],
            smtp_port=None,
            bind=bind,
        )
        result = tosmon(config, "run", env=environment(data_dir))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"web.bind: cannot listen on {bind}" in lines[0]
    with sessions() as session:  # nothing was left behind as a "running" daemon
        assert session.scalars(select(Worker)).all() == []


# -- SIGHUP: reloading the config --------------------------------------------------------------


def test_sighup_reloads_documents_intervals_and_mail_and_keeps_a_broken_config_out(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
    smtp_server: SMTPTestServer,
) -> None:
    page_server.set("/a", terms_page())
    page_server.set("/b", terms_page())
    config = tmp_path / "tosmon.toml"
    first = [("example/a", page_server.url("/a"))]
    write_config(config, database_url=database_url, documents=first, smtp_port=None, interval="1h")
    env = environment(data_dir)
    with Daemon(config, env=env, log=tmp_path / "daemon.log") as d:
        wait_until(lambda: checks_of(sessions, "example/a"), what="the first check", daemon=d)
        write_config(
            config,
            database_url=database_url,
            documents=[*first, ("example/b", page_server.url("/b"))],
            smtp_port=smtp_server.port,
            interval="1s",
        )
        d.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        wait_until(lambda: "config reloaded" in d.log(), what="the reload", daemon=d)
        reloaded = next(line for line in d.log().splitlines() if "config reloaded" in line)
        assert "+1 document (example/b)" in reloaded
        assert "default interval 1h->1s" in reloaded
        assert "mail host changed" in reloaded
        # no restart: the new document is checked, and the old one again at its new interval
        wait_until(lambda: checks_of(sessions, "example/b"), what="the new document", daemon=d)
        wait_until(
            lambda: len(checks_of(sessions, "example/a")) >= 2,
            what="a second check at the shorter interval",
            daemon=d,
        )
        config.write_text("use_catalog = false\n[daemon]\ninterval = 6h\n", encoding="utf-8")
        d.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        wait_until(lambda: "config reload failed" in d.log(), what="the refusal", daemon=d)
        refused = next(line for line in d.log().splitlines() if "config reload failed" in line)
        assert "keeping the current config" in refused
        assert f"{config}:3" in refused  # names the file and the line
        before = len(checks_of(sessions, "example/b"))
        wait_until(  # still running on the old config: 1s interval, both documents
            lambda: len(checks_of(sessions, "example/b")) > before,
            what="checks after the refused reload",
            daemon=d,
        )
        assert d.alive()
        assert d.terminate() == 0
    assert page_server.hits("/b") >= 2


def test_run_names_the_documents_it_cannot_render_and_the_command_that_enables_them(
    tmp_path: Path,
    data_dir: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    page_server: PageServer,
) -> None:
    page_server.set("/plain", terms_page())
    config = write_config(
        tmp_path / "tosmon.toml",
        database_url=database_url,
        documents=[("example/plain", page_server.url("/plain"))],
        smtp_port=None,
        interval="1s",
        extra=(
            f'\n[browser]\nexecutable = "{tmp_path / "no-chromium"}"\n\n'
            f'[[documents]]\nid = "meta/terms"\nservice = "Meta"\ntype = "Terms"\n'
            f'url = "{page_server.url("/js")}"\nrender = true\n'
        ),
    )
    with Daemon(config, env=environment(data_dir), log=tmp_path / "daemon.log") as d:
        wait_until(lambda: len(checks_of(sessions, "example/plain")) >= 2, what="checks", daemon=d)
        assert d.terminate() == 0
    notices = [line for line in d.log().splitlines() if "will not be checked" in line]
    assert len(notices) == 1, d.log()
    assert "meta/terms" in notices[0]
    assert "pip install 'tos-monitor[browser]' && apt install chromium" in notices[0]
    assert "no-chromium does not exist" in notices[0]
    assert checks_of(sessions, "meta/terms") == []
    assert page_server.hits("/js") == 0
