"""Log set-up for the daemon: one line per event, as text or as JSON.

Text (the default) is for people reading a terminal or journald::

    2026-01-05T10:00:00Z INFO monitor.tracker: check example/terms unchanged 0.12s

JSON (``[daemon] log_format = "json"``) is one object per line for log shippers; the fields the
tracker attaches to a check (``document``, ``outcome``, ``duration``) become keys, and so does the
``worker`` of the daemon::

    {"time": "2026-01-05T10:00:00.123Z", "level": "INFO", "logger": "monitor.tracker",
     "message": "check example/terms unchanged 0.12s", "document": "example/terms",
     "outcome": "unchanged", "duration": 0.118, "worker": "host:1234:ab12"}

Messages can carry text from the pages (error reasons, summaries): control characters are escaped,
so a page cannot forge a log line or drive the terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from monitor.urls import mask_credentials

EXTRA_FIELDS = ("document", "outcome", "duration", "worker", "change_id", "deliveries")
"""Record attributes copied into JSON lines when present."""

QUIET_LOGGERS = ("alembic", "apscheduler", "httpx", "httpcore", "aiosmtpd", "mail.log", "asyncio")
"""Third-party loggers that chatter at INFO on every tick or request; kept at WARNING."""


def escape_controls(text: str) -> str:
    """``text`` with control characters (newlines, escape sequences) shown as ``\\xNN``."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def _timestamp(record: logging.LogRecord, *, precise: bool) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    if precise:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>``; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_timestamp(record, precise=False)} {record.levelname} {record.name}: "
            f"{escape_controls(mask_credentials(record.getMessage()))}"
        )
        if record.exc_info:
            line += "\n" + mask_credentials(self.formatException(record.exc_info))
        return line


class JSONFormatter(logging.Formatter):
    """One JSON object per line (a traceback goes into the ``exception`` key)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _timestamp(record, precise=True),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_credentials(record.getMessage()),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = round(value, 3) if isinstance(value, float) else value
        if record.exc_info:
            data["exception"] = mask_credentials(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False, default=str)


class WorkerFilter(logging.Filter):
    """Stamps every record with the daemon's worker id (for JSON lines)."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "worker", None) is None:
            record.worker = self.worker
        return True


def configure_logging(
    *,
    log_format: str = "text",
    level: str = "INFO",
    worker: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in ``log_format``; returns the handler.

    Replaces the handlers of the root logger, so calling it twice does not duplicate lines.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    if worker is not None:
        handler.addFilter(WorkerFilter(worker))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet = max(logging.WARNING, logging.getLevelName(level.upper()))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    return handler
