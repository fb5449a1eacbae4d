"""The ``tosmon`` command: a thin click layer over :class:`monitor.Monitor`; the only code that
prints.

Each command parses its arguments, makes one ``Monitor`` call and prints the result. The root
group lives in :mod:`monitor.cli.app`; each area's commands live in their own module and register
on it when imported here. Domain errors (``MonitorError``) become ``Error: ...`` with exit status
1 (2 for config and usage errors); a traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

from monitor.cli import daemon, history, intelligence, mail
from monitor.cli.app import main

COMMAND_MODULES = (history, intelligence, mail, daemon)
"""The modules whose commands are registered on ``main`` (imported for that effect)."""

__all__ = ["main"]
