"""Engine, sessions and schema management (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import ConfigError, DatabaseUnavailable, SchemaError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

UPGRADE_HINT = "run `tosmon db upgrade` to bring it up to date"
SCHEMA_HEAD = "0005"
"""The Alembic head this code expects (a test keeps it equal to migrations/): every command
checks the schema with one query instead of loading Alembic."""


def make_engine(database_url: str) -> Engine:
    """An engine for the URL; SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(
            f"invalid database URL {database_url!r}", key="storage.database_url"
        ) from exc
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and "uri" not in url.query:
            _create_private_file(Path(url.database).expanduser())
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:  # an unknown dialect or a missing driver
        raise ConfigError(
            f"unsupported database {url.get_backend_name()!r}: use SQLite or PostgreSQL ({exc})",
            key="storage.database_url",
        ) from exc


def _create_private_file(path: Path) -> None:
    """Create a new SQLite file readable by its owner only (mode 0600) before SQLite opens it.

    SQLite gives its -wal, -shm and -journal files the mode of the database file, so they are
    private too. An existing file keeps the mode its owner chose.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise ConfigError(
            f"cannot create the database file {path}: {exc.strerror}{where}",
            key="storage.database_url",
        ) from exc
    os.close(fd)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> AlembicConfig:
    """An Alembic config pointing at the packaged migrations and this engine."""
    from alembic.config import Config as AlembicConfig

    script_location = str(resources.files("monitor.migrations"))
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (``tosmon db upgrade``)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def ensure_schema(engine: Engine) -> None:
    """Create the schema in an empty database; refuse an old one with a clear message.

    A database holding no tables at all is new and gets every migration. A database at an older
    revision is never upgraded behind the user's back: that is ``tosmon db upgrade``'s job.
    """
    try:
        if _stamped_revision(engine) == SCHEMA_HEAD:
            return  # the common case, without loading Alembic
        current = current_revision(engine)
        if current is None:
            tables = set(inspect(engine).get_table_names())
            if tables - {"alembic_version"}:
                raise SchemaError(
                    f"the database at {_safe_url(engine)} has tables but no tos-monitor schema "
                    f"version; {UPGRADE_HINT} or point [storage] database_url elsewhere"
                )
            upgrade(engine)
            return
    except DBAPIError as exc:
        raise database_unavailable(engine.url, exc) from exc
    head = head_revision(engine)
    if current != head:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(alembic_config(engine))
        known = {rev.revision for rev in script.walk_revisions()}
        if current not in known:
            raise SchemaError(
                f"the database schema ({current}) is newer than this tos-monitor ({head}); "
                "upgrade tos-monitor"
            )
        raise SchemaError(
            f"the database schema is out of date ({current}, code expects {head}); {UPGRADE_HINT}"
        )


def _stamped_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version`` with one plain query (None if there is none).

    A database that cannot be opened at all raises (DBAPIError); only a missing table is None.
    """
    with engine.connect() as connection:
        try:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:
            connection.rollback()
            return None


def database_unavailable(url: str | URL, exc: DBAPIError) -> DatabaseUnavailable:
    """A clear error for a database that cannot be opened or written (the CLI exits 2).

    Names the database (password hidden) and says what is wrong in the user's words: not a
    database, read-only, unreachable.
    """
    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            shown = parsed.database.removeprefix("file:")
    except ArgumentError:
        shown = "the configured database"
    reason = "; ".join(line.strip() for line in str(exc.orig).splitlines() if line.strip())
    lowered = reason.lower()
    if "file is not a database" in lowered or "file is encrypted" in lowered:
        message = f"{shown} is not a SQLite database; point database_url at another file"
    elif "readonly" in lowered or "read-only" in lowered:
        message = (
            f"the database {shown} is read-only; check the permissions of the file and of its "
            "directory (SQLite writes a -wal file beside it)"
        )
    elif "unable to open database file" in lowered:
        message = f"cannot open the database {shown}: check that the path exists and is writable"
    else:
        message = f"cannot use the database {shown}: {reason[:500]}"
    return DatabaseUnavailable(message, key="storage.database_url")


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


__all__ = [
    "SQLAlchemyError",
    "current_revision",
    "database_unavailable",
    "ensure_schema",
    "head_revision",
    "make_engine",
    "session_factory",
    "upgrade",
]
