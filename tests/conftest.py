"""Shared fixtures: a real database (SQLite and PostgreSQL), the page server, the SMTP server.

Every test using ``database_url`` / ``engine`` / ``sessions`` runs twice: on a fresh SQLite file and
on a fresh schema of the PostgreSQL database ``test`` on 127.0.0.1:5432. Without a reachable
PostgreSQL the second run is skipped, unless ``TOSMON_REQUIRE_POSTGRES=1`` (CI) makes it an error.
``TOSMON_TEST_DATABASES=sqlite`` (or ``postgresql``) restricts the runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

pytest_plugins = [
    name
    for name in ("tests.pageserver", "tests.smtp")
    if importlib.util.find_spec(name) is not None
]

POSTGRES_ADMIN_URL = os.environ.get(
    "TOSMON_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DATA_DIR = Path(__file__).resolve().parent / "data"


def _databases() -> list[str]:
    wanted = os.environ.get("TOSMON_TEST_DATABASES", "sqlite,postgresql")
    return [name.strip() for name in wanted.split(",") if name.strip()]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:
        engine.dispose()
        if os.environ.get("TOSMON_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (TOSMON_REQUIRE_POSTGRES=1), unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    yield engine
    engine.dispose()


@contextlib.contextmanager
def empty_database(kind: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty database of ``kind`` (no schema yet), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'tosmon.db'}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=_databases())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of each kind (no schema yet)."""
    with empty_database(request.param, tmp_path, request) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head with Alembic (never create_all)."""
    from monitor.db import make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    from monitor.db import session_factory

    return session_factory(engine)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data dir for the code under test (keeps tests out of the user's real one)."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("TOSMON_DATA_DIR", str(path))
    monkeypatch.delenv("TOSMON_CONFIG", raising=False)
    monkeypatch.delenv("TOSMON_SECRET_KEY", raising=False)
    return path


@pytest.fixture
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS_DIR
