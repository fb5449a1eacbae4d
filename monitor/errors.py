"""The one exception tree of tos-monitor.

    MonitorError                 anything tos-monitor reports as a clean error
    ├── ConfigError              a bad config file, key or value (names file, line and key)
    │     └── DatabaseUnavailable  the configured database cannot be opened or written
    ├── SchemaError              the database schema is missing or older than the code
    ├── FetchError               a page could not be fetched usefully
    │     .transient: worth retrying later (timeouts, resets, 5xx, 429)
    │     .blocked:   the site refused us (403, 429, captcha or login wall)
    ├── ExtractError             a fetched page held no usable text (selectors matched nothing)
    ├── DeliveryError            an email could not be delivered (.transient: retry later)
    ├── SubscriptionError        a bad address, filter or token
    ├── ArgumentError            an argument names nothing known (a document id, a topic...)
    └── LockError                another daemon already holds what we need

Third-party errors (httpx, smtplib, SQLAlchemy) are translated once, at the module that touches
them, with ``raise ... from exc``.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error tos-monitor reports to a user."""


class ConfigError(MonitorError):
    """A config file, key or value is wrong. The message names file, line and key."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.key = key
        where = ""
        if path:
            where = path + (f":{line}" if line else "") + ": "
        if key:
            where += f"{key}: "
        super().__init__(where + message)


class DatabaseUnavailable(ConfigError):
    """``[storage] database_url`` names a database that cannot be used: unreachable, not a
    database, read-only. Reported like a config error (exit status 2)."""


class SchemaError(MonitorError):
    """The database schema is missing or out of date."""


class FetchError(MonitorError):
    """A page could not be fetched, or what came back is not the document."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        blocked: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.blocked = blocked
        self.status = status


class ExtractError(MonitorError):
    """The fetched page holds no usable legal text."""


class DeliveryError(MonitorError):
    """An email could not be delivered."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class SubscriptionError(MonitorError):
    """A bad email address, filter or token."""


class ArgumentError(MonitorError):
    """An argument names nothing known: a document id, a topic, a change id.

    ``argument`` is how the caller spelt it (``ID``, ``--topic``), for the CLI's usage error.
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class LockError(MonitorError):
    """Another process holds the lock or claim we need."""
