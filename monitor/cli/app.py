"""What every command shares: the root group, the ``Monitor`` it opens, output helpers."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from monitor.clock import parse_instant
from monitor.clock import utcnow as utcnow  # commands stamp with the one clock
from monitor.scrub import neutralise

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from monitor.api import Monitor
    from monitor.config import Config


@dataclass
class AppContext:
    """What the command line gave (config path, verbosity) and the ``Monitor`` it opens."""

    config_path: str | None
    verbose: bool = False
    _monitor: Monitor | None = field(default=None, repr=False)

    @property
    def monitor(self) -> Monitor:
        """The library facade every command calls (opened on first use: a bad config stops
        here with one line naming file, line and key)."""
        if self._monitor is None:
            with _collector_paused():
                from monitor.api import Monitor

                self._monitor = Monitor.open(self.config_path)
        return self._monitor

    @property
    def config(self) -> Config:
        return self.monitor.config

    def load_config(self) -> Config:
        """Read the config file again (``config`` keeps the first reading): SIGHUP reloads."""
        from monitor.config import load_config

        return load_config(Path(self.config_path) if self.config_path else None)

    @property
    def engine(self) -> Engine:
        return self.monitor.engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.monitor.sessions

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the libraries load and the monitor opens: the
    imports (SQLAlchemy above all) create some hundred thousand objects that live as long as the
    process and hold no garbage, which the collector would otherwise walk over and over (about
    250 passes, 0.04 s of CPU, before a check starts). On again afterwards, as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def emit_json(data: Any) -> None:
    """Print JSON (datetimes as ISO 8601) to stdout."""
    from monitor.api import to_json

    click.echo(to_json(data))


def parse_when(text: str, *, option: str) -> datetime:
    """A user-given date or datetime (ISO 8601; naive means UTC)."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def safe_terminal_text(text: str) -> str:
    """Page text is untrusted: replace what could drive or disguise the terminal with U+FFFD
    (escape sequences, bidi overrides: ``monitor.scrub``)."""
    return neutralise(text)


def is_tty() -> bool:
    return sys.stdout.isatty()


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


# ---------------------------------------------------------------------------------------------
# The root group (each area's commands live in their own module and register on ``main``)


_PROGRAM = False
"""Whether the ``tosmon`` program itself runs (not ``main([...])`` called from Python)."""


def freeze_start_up() -> None:
    """In the ``tosmon`` program, whose process ends with its command: move what start-up
    created (modules, the ORM's tables, the config) out of the cyclic garbage collector's way,
    so that its passes during a long command do not walk them again (0.1 s of CPU in a check of
    300 pages). Called from Python, it does nothing: there those objects may not live for
    ever."""
    if _PROGRAM:
        gc.freeze()


class MonitorGroup(click.Group):
    """Turns MonitorError into a one-line error; exit 2 for config and argument errors, else 1."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **options: Any) -> Any:
        """Run a command; called without ``args`` (the ``tosmon`` program itself, reading
        ``sys.argv``) the process ends with the command: the objects the libraries created are
        then frozen out of the cyclic garbage collector's last pass at exit, which would free
        nothing that matters and costs 0.05-0.1 s of CPU after a 300-page check. Files,
        connections and atexit handlers close as usual."""
        global _PROGRAM
        _PROGRAM = args is None
        try:
            return super().main(args, *rest, **options)
        finally:
            if args is None:
                gc.freeze()

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import DBAPIError

        from monitor.errors import ArgumentError, ConfigError, MonitorError

        try:
            return super().invoke(ctx)
        except ArgumentError as exc:
            raise click.BadParameter(str(exc), param_hint=exc.argument) from exc
        except ConfigError as exc:
            _fail(ctx, exc, status=2)
        except MonitorError as exc:
            _fail(ctx, exc, status=1)
        except DBAPIError as exc:  # the database failed mid-command (read-only, went away)
            from monitor.db import database_unavailable

            app = ctx.find_object(AppContext)
            url = app.config.storage.database_url if app is not None else ""
            _fail(ctx, database_unavailable(url, exc), status=2)


def _fail(ctx: click.Context, exc: Exception, *, status: int) -> None:
    app = ctx.find_object(AppContext)
    if app is not None and app.verbose:
        import traceback

        traceback.print_exc()
    click.echo(f"Error: {exc}", err=True)
    sys.exit(status)


@click.group(cls=MonitorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="TOSMON_CONFIG",
    help="TOML config file (default: $TOSMON_CONFIG, else built-in defaults).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="tos-monitor")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """tos-monitor: watch terms of service and privacy policies for licence and AI changes."""
    ctx.obj = AppContext(config_path=config_path, verbose=verbose)
    ctx.call_on_close(ctx.obj.close)
