"""tos-monitor: watches terms of service and privacy policies for content-licence and AI changes.

Use it from Python through :class:`monitor.Monitor` (see ``monitor/api.py``)::

    from monitor import Monitor

    with Monitor.open("tosmon.toml") as monitor:
        results = monitor.check()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Monitor", "__version__"]

if TYPE_CHECKING:
    from monitor.api import Monitor


def __getattr__(name: str) -> Any:
    # Lazy: ``import monitor.extract`` (the pure core) does not pull in the database and HTTP.
    if name == "Monitor":
        from monitor.api import Monitor

        return Monitor
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
