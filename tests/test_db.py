"""The schema: one Alembic chain for SQLite and PostgreSQL, matching the models."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from monitor.db import (
    SCHEMA_HEAD,
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
    make_engine,
)
from monitor.errors import DatabaseUnavailable
from monitor.models import Document
from tests.daemonkit import environment, tosmon


def test_migrations_match_the_models(engine: Engine) -> None:
    assert current_revision(engine) == head_revision(engine) == SCHEMA_HEAD
    command.check(alembic_config(engine))  # raises if the models drifted from the migrations


def test_migrations_go_down_and_up_again(engine: Engine) -> None:
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(alembic_config(engine), "head")
    command.check(alembic_config(engine))


def test_an_empty_database_gets_the_schema_on_first_use(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        ensure_schema(engine)
        assert current_revision(engine) == head_revision(engine)
    finally:
        engine.dispose()


def test_times_come_back_timezone_aware_utc(sessions) -> None:  # type: ignore[no-untyped-def]
    when = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    with sessions.begin() as session:
        session.add(
            Document(id="a/b", service="A", type="B", url="https://a.example/", created_at=when)
        )
    with sessions() as session:
        document = session.get(Document, "a/b")
        assert document is not None
        assert document.created_at == when and document.created_at.tzinfo is not None


def test_naive_datetimes_are_refused(sessions) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception, match="naive datetime"), sessions.begin() as session:
        session.add(
            Document(
                id="a/c",
                service="A",
                type="C",
                url="https://a.example/",
                created_at=datetime(2025, 1, 1),
            )
        )


def test_an_unreachable_database_is_a_clear_error() -> None:
    engine = make_engine("postgresql+psycopg://nobody:hunter2@127.0.0.1:9/none")
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot use the database") as info:
            ensure_schema(engine)
    finally:
        engine.dispose()
    assert "hunter2" not in str(info.value)
    assert str(info.value).startswith("storage.database_url: ")


# --- databases that cannot be used: `tosmon` says so in one line, exit status 2 ----------------


def run_tosmon(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "tosmon.toml"
    config.write_text(
        f'use_catalog = false\n[storage]\ndatabase_url = "{database_url}"\n'
        '[[documents]]\nservice = "S"\ntype = "T"\nurl = "http://127.0.0.1:9/terms"\n',
        encoding="utf-8",
    )
    return tosmon(config, *args, env=environment(tmp_path / "data"), timeout=60)


def assert_clean_failure(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("Error: storage.database_url: "), done.stderr
    for word in words:
        assert word in done.stderr


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my shopping list, not a database\n" * 100, encoding="utf-8")
    done = run_tosmon(tmp_path, f"sqlite:///{path}", "documents")
    assert_clean_failure(done, f"{path} is not a SQLite database")
    assert path.read_text(encoding="utf-8").startswith("my shopping list")  # left untouched


def test_a_database_path_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where a directory should be\n", encoding="utf-8")
    done = run_tosmon(tmp_path, f"sqlite:///{blocker}/tosmon.db", "documents")
    assert_clean_failure(done, f"cannot create the database file {blocker}/tosmon.db")


@pytest.mark.parametrize("wal", [True, False])
def test_a_read_only_database(tmp_path: Path, wal: bool) -> None:
    """Opened read-only (as a file without write permission is): reads may work, the first
    write is refused with a message, not a traceback."""
    path = tmp_path / "tosmon.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        ensure_schema(engine)
        if not wal:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=DELETE")
    finally:
        engine.dispose()
    done = run_tosmon(tmp_path, f"sqlite:///file:{path}?mode=ro&uri=true", "documents")
    assert_clean_failure(done, "is read-only", str(path))


def test_an_unreachable_postgresql(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_tosmon(
        tmp_path, f"postgresql+psycopg://tosmon:s3cret@127.0.0.1:{port}/tos", "status"
    )
    assert_clean_failure(done, f"127.0.0.1:{port}")
    assert "s3cret" not in done.stderr


@pytest.mark.parametrize("url", ["mysql://u@127.0.0.1/tos", "foo://bar"])
def test_an_unknown_kind_of_database(tmp_path: Path, url: str) -> None:
    done = run_tosmon(tmp_path, url, "documents")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "storage.database_url: unsupported database" in done.stderr


def test_a_new_sqlite_database_is_private_to_its_owner(tmp_path: Path) -> None:
    """Subscribers' addresses live in it: mode 0600, and its -wal/-shm files too."""
    old_umask = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'tosmon.db'}")
        try:
            ensure_schema(engine)
            with engine.connect() as connection:  # an open connection keeps -wal and -shm
                connection.execute(text("SELECT count(*) FROM documents"))
                files = sorted(p.name for p in (tmp_path / "sub").iterdir())
                modes = {
                    p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "sub").iterdir()
                }
        finally:
            engine.dispose()
    finally:
        os.umask(old_umask)
    assert files == ["tosmon.db", "tosmon.db-shm", "tosmon.db-wal"]
    assert modes == {name: 0o600 for name in files}
