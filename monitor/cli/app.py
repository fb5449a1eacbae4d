"""What every command shares: the loaded config, the database, output helpers."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from monitor.config import Config


@dataclass
class AppContext:
    config_path: str | None
    verbose: bool = False
    _engine: Engine | None = field(default=None, repr=False)

    @cached_property
    def config(self) -> Config:

        return self.load_config()

    def load_config(self) -> Config:
        """Read the config file again (``config`` keeps the first reading)."""
        from monitor.config import load_config

        return load_config(Path(self.config_path) if self.config_path else None)

    @property
    def engine(self) -> Engine:
        """The database engine, schema checked (created on first use of an empty database)."""
        if self._engine is None:
            from monitor.db import ensure_schema, make_engine

            engine = make_engine(self.config.storage.database_url)
            ensure_schema(engine)
            self._engine = engine
        return self._engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        from monitor.db import session_factory

        return session_factory(self.engine)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def utcnow() -> datetime:
    return datetime.now(UTC)


def emit_json(data: Any) -> None:
    """Print JSON (datetimes as ISO 8601) to stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def parse_when(text: str, *, option: str) -> datetime:
    """A user-given date or datetime (ISO 8601; naive means UTC)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date or datetime (use e.g. 2025-01-31 or 2025-01-31T12:00Z)",
            param_hint=option,
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_UNSAFE_FOR_TERMINALS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls (ESC, CSI: escape sequences) and bidi overrides (text that displays
reordered), everything but newline and tab."""


def safe_terminal_text(text: str) -> str:
    """Page text is untrusted: replace what could drive or disguise the terminal with U+FFFD."""
    return _UNSAFE_FOR_TERMINALS.sub("\ufffd", text)


def is_tty() -> bool:
    return sys.stdout.isatty()


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"
