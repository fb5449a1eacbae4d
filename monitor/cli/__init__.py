"""The ``tosmon`` command: a thin click layer over the library; the only code that prints.

Each area's commands live in their own module and register on ``main``. Domain errors
(``MonitorError``) become ``Error: ...`` with exit status 1 (2 for config and usage errors); a
traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from monitor.cli.app import AppContext

COMMAND_MODULES = ("history", "intelligence", "mail", "daemon")


class MonitorGroup(click.Group):
    """Turns MonitorError into a one-line error; exit 2 for config errors, 1 otherwise."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import DBAPIError

        from monitor.errors import ConfigError, MonitorError

        try:
            return super().invoke(ctx)
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


for _name in COMMAND_MODULES:
    importlib.import_module(f"monitor.cli.{_name}")
