"""Engine, sessions and schema management (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import ConfigError, SchemaError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

UPGRADE_HINT = "run `tosmon db upgrade` to bring it up to date"
SCHEMA_HEAD = "0002"
"""The Alembic head this code expects (a test keeps it equal to migrations/): every command
checks the schema with one query instead of loading Alembic."""


def make_engine(database_url: str) -> Engine:
    """An engine for the URL; SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {database_url!r}", key="database_url") from exc
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


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
    if _stamped_revision(engine) == SCHEMA_HEAD:
        return  # the common case, without loading Alembic
    try:
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
    except OperationalError as exc:
        raise SchemaError(f"cannot open the database at {_safe_url(engine)}: {exc.orig}") from exc
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
    """The revision in ``alembic_version`` with one plain query (None if there is none)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


__all__ = [
    "SQLAlchemyError",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "make_engine",
    "session_factory",
    "upgrade",
]
