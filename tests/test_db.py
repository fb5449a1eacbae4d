"""The schema: one Alembic chain for SQLite and PostgreSQL, matching the models."""

from __future__ import annotations

import os
import stat
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
from monitor.errors import SchemaError
from monitor.models import Document


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
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
    try:
        with pytest.raises(SchemaError, match="cannot open the database"):
            ensure_schema(engine)
    finally:
        engine.dispose()


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
