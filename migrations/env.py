"""Alembic environment: the engine comes from tos-monitor (``monitor.db.alembic_config``)
or, for the ``alembic`` command line, from ``TOSMON_DATABASE_URL`` / the tos-monitor config."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Engine

from monitor.models import Base

target_metadata = Base.metadata


def _engine() -> Engine:
    engine = context.config.attributes.get("engine")
    if engine is not None:
        return engine
    from monitor.db import make_engine

    url = os.environ.get("TOSMON_DATABASE_URL")
    if not url:
        from monitor.config import load_config

        url = load_config().storage.database_url
    return make_engine(url)


def run_migrations_offline() -> None:
    url = os.environ.get("TOSMON_DATABASE_URL", "sqlite://")
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
