"""Read and validate the TOML config into frozen dataclasses.

Every mistake is a :class:`~monitor.errors.ConfigError` whose message names the file, the line and
the key (``config.toml:12: mail.port: expected an integer, got "587"``). ``tomllib`` does not report
lines for keys, so :class:`_Lines` finds them by scanning the raw text for the key inside its table.

Precedence: defaults < config file < environment (``TOSMON_CONFIG`` picks the file,
``TOSMON_DATA_DIR`` overrides the data directory). Secrets never live in the file: the SMTP password
is read from the environment variable named by ``[mail] password_env``.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import ipaddress
import os
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import platformdirs

from monitor import __version__
from monitor.addresses import email_problem
from monitor.errors import ConfigError, MonitorError
from monitor.urls import mask_credentials

APP_NAME = "tos-monitor"
CONFIG_ENV = "TOSMON_CONFIG"
DATA_DIR_ENV = "TOSMON_DATA_DIR"
SECRET_KEY_ENV = "TOSMON_SECRET_KEY"

DEFAULT_USER_AGENT = f"tos-monitor/{__version__} (+https://github.com/tos-monitor/tos-monitor)"
"""Sent with every request unless ``[fetch] user_agent`` says otherwise (the Fetcher's too)."""

Security = Literal["starttls", "tls", "none"]
LogFormat = Literal["text", "json"]

SECURITY_VALUES: tuple[str, ...] = ("starttls", "tls", "none")
LOG_FORMATS: tuple[str, ...] = ("text", "json")
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


def default_data_dir() -> Path:
    """The per-user data directory (``~/.local/share/tos-monitor`` on Linux)."""
    return Path(platformdirs.user_data_dir(APP_NAME))


def _sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'tosmon.db'}"


# ---------------------------------------------------------------------------------------------
# The dataclasses


@dataclass(frozen=True, slots=True)
class DocumentConfig:
    """One document to watch: a terms page of one service (an OTA *declaration*)."""

    id: str
    service: str
    type: str
    url: str
    select: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    interval: timedelta | None = None  # None: the daemon's default interval
    render: bool = False  # needs a browser (Playwright + system Chromium)


@dataclass(frozen=True)
class StorageConfig:
    database_url: str = field(default_factory=lambda: _sqlite_url(default_data_dir()))


@dataclass(frozen=True)
class FetchConfig:
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 30.0
    max_bytes: int = 5_000_000
    per_host: int = 2
    retries: int = 3
    concurrency: int = 8
    allow_private: bool = False  # follow redirects of public documents to private addresses


@dataclass(frozen=True)
class BrowserConfig:
    executable: Path | None = None  # None: /usr/bin/chromium, else Playwright's own Chromium


@dataclass(frozen=True)
class MailConfig:
    host: str | None = None  # None: write .eml files to `folder` instead of sending
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str = "tos-monitor <tosmon@localhost>"
    folder: Path = field(default_factory=lambda: default_data_dir() / "mail")
    retry_after: timedelta = timedelta(minutes=1)  # first retry when SMTP is down; then doubles
    retry_max: timedelta = timedelta(hours=6)  # the longest wait between two attempts
    group_window: timedelta = timedelta(minutes=10)  # immediate reports wait this long to group

    def password(self, env: Mapping[str, str] = os.environ) -> str | None:
        """The SMTP password from ``env[password_env]``; None when no variable is configured."""
        if self.password_env is None:
            return None
        try:
            return env[self.password_env]
        except KeyError:
            raise ConfigError(
                f"environment variable {self.password_env} is not set "
                "(named by [mail] password_env)",
                key="mail.password_env",
            ) from None


@dataclass(frozen=True)
class WebConfig:
    bind: str = "127.0.0.1:8080"
    base_url: str = "http://127.0.0.1:8080"


NotifyKind = Literal["webhook", "apprise"]
NOTIFY_KINDS: tuple[NotifyKind, ...] = ("webhook", "apprise")


@dataclass(frozen=True)
class NotifyConfig:
    """A ``[[notify]]`` target: a webhook (a signed JSON POST) or an Apprise URL (Slack, Discord,
    Matrix, Telegram, ntfy...), with the filters of an email subscription."""

    name: str
    kind: NotifyKind
    url: str | None = None
    url_env: str | None = None  # Apprise URLs carry tokens: read from the environment
    secret_env: str | None = None  # webhooks: the HMAC-SHA256 key, from the environment
    services: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    topics: tuple[str, ...] | None = None  # None: the subscription default (ai, content_license)
    min_severity: str = "medium"

    def target_url(self, env: Mapping[str, str] = os.environ) -> str:
        if self.url is not None:
            return self.url
        return _from_env(cast(str, self.url_env), f"notify {self.name!r} url_env", env)

    def secret(self, env: Mapping[str, str] = os.environ) -> bytes | None:
        if self.secret_env is None:
            return None
        return _from_env(self.secret_env, f"notify {self.name!r} secret_env", env).encode()


def _from_env(name: str, named_by: str, env: Mapping[str, str] = os.environ) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(
            f"environment variable {name} is not set (named by {named_by})", key="notify"
        )
    return value


@dataclass(frozen=True)
class AlertsConfig:
    email: str | None = None
    after_failures: int = 3


@dataclass(frozen=True)
class DaemonConfig:
    interval: timedelta = timedelta(hours=6)
    jitter: float = 0.1  # fraction of the interval
    lease: timedelta = timedelta(minutes=10)
    log_format: LogFormat = "text"
    log_level: str = "INFO"
    digest_hour: int = 8  # UTC hour at which daily and weekly digests go out
    weekly_digest_day: str = "monday"


@dataclass(frozen=True)
class Config:
    path: Path | None
    storage: StorageConfig
    fetch: FetchConfig
    mail: MailConfig
    web: WebConfig
    alerts: AlertsConfig
    daemon: DaemonConfig
    use_catalog: bool
    documents: tuple[DocumentConfig, ...]  # the config file's own documents
    data_dir: Path
    secret_key_file: Path
    browser: BrowserConfig = field(default_factory=BrowserConfig)
    notify: tuple[NotifyConfig, ...] = ()

    def all_documents(self) -> tuple[DocumentConfig, ...]:
        """Catalog documents (if ``use_catalog``) then the config's; a config document with the
        same id replaces the catalog's in place."""
        if not self.use_catalog:
            return self.documents
        own = {doc.id: doc for doc in self.documents}
        merged = [own.pop(doc.id, doc) for doc in catalog_documents()]
        merged.extend(doc for doc in self.documents if doc.id in own)
        return tuple(merged)


# ---------------------------------------------------------------------------------------------
# Small public helpers

_INTERVAL_PART = re.compile(r"(\d+)\s*([smhdw])")
_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=366)
"""The longest duration a config accepts (no check interval, lease or retry wait is longer)."""


def parse_interval(text: str) -> timedelta:
    """Parse ``"90s"``, ``"30m"``, ``"6h"``, ``"1d"``, ``"2w"``, ``"1h30m"`` into a timedelta."""
    if not isinstance(text, str):
        raise ConfigError(f'expected a duration such as "6h", got {text!r}')
    compact = text.strip().lower()
    pos, seconds = 0, 0
    too_long = ConfigError(
        f"bad duration {text[:40]!r}: longer than the longest allowed "
        f'({MAX_DURATION.days}d); use e.g. "1d" or "2w"'
    )
    while pos < len(compact):
        match = _INTERVAL_PART.match(compact, pos)
        if match is None:
            break
        if len(match.group(1)) > 12:  # beyond any useful duration; also keeps int() cheap
            raise too_long
        seconds += int(match.group(1)) * _INTERVAL_UNITS[match.group(2)]
        pos = match.end()
        while pos < len(compact) and compact[pos] == " ":
            pos += 1
    if not compact or pos != len(compact):
        raise ConfigError(
            f'bad duration {text!r}: use a number and a unit (s, m, h, d, w), e.g. "6h" or "1h30m"'
        )
    if seconds <= 0:
        raise ConfigError(f"bad duration {text!r}: must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise too_long
    return timedelta(seconds=seconds)


def slugify(text: str) -> str:
    """``"Terms of Service"`` -> ``"terms-of-service"``; ``"Claude.ai"`` -> ``"claude-ai"``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def document_id(service: str, type_: str) -> str:
    """The default id of a document: ``<service-slug>/<type-slug>``."""
    return f"{slugify(service)}/{slugify(type_)}"


def example_config_text() -> str:
    """The annotated example config (what ``tosmon init`` writes)."""
    return importlib.resources.files("monitor").joinpath("config_example.toml").read_text("utf-8")


# ---------------------------------------------------------------------------------------------
# Finding lines in the raw text

_HEADER = re.compile(
    r"^\s*(?P<open>\[\[|\[)\s*(?P<name>[A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*\]\]?"
    r"\s*(?:#.*)?$"
)


class _Lines:
    """Locates tables and keys in TOML text, since tomllib reports no positions for keys."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        # (table name, index among [[arrays]] of that name, 1-based header line); root first
        self._sections: list[tuple[str, int, int]] = [("", 0, 0)]
        counts: dict[str, int] = {}
        for number, line in enumerate(self._lines, start=1):
            match = _HEADER.match(line)
            if match is None:
                continue
            name = re.sub(r"\s+", "", match.group("name"))
            index = 0
            if match.group("open") == "[[":
                index = counts.get(name, 0)
                counts[name] = index + 1
            self._sections.append((name, index, number))

    def find(self, table: str, key: str | None = None, index: int = 0) -> int | None:
        """Line of ``key`` inside ``[table]`` (the ``index``-th ``[[table]]``), else the table's
        header line, else the first line mentioning ``table.key``; None if nothing fits."""
        ends = [start for _, _, start in self._sections[1:]] + [len(self._lines) + 1]
        for (name, idx, start), end in zip(self._sections, ends, strict=True):
            if name != table or idx != index:
                continue
            if key is None:
                return start or None
            pattern = re.compile(
                rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*[=.]"
            )
            for number in range(start + 1, end):
                if pattern.match(self._lines[number - 1]):
                    return number
            nested = f"{table}.{key}" if table else key  # the key is itself a [table]
            for other, _, header in self._sections:
                if other == nested:
                    return header
            return start or None
        # inline tables and dotted keys: `mail = {port = 1}` or `mail.port = 1`
        if table:
            root_key = table.split(".")[0]
            pattern = re.compile(rf"^\s*{re.escape(root_key)}\s*[=.]")
            for number, line in enumerate(self._lines, start=1):
                if pattern.match(line):
                    return number
        return None


# ---------------------------------------------------------------------------------------------
# Validating one table


class _Table:
    """A parsed TOML table plus what is needed to report an error in it."""

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        name: str,
        label: str,
        path: str,
        lines: _Lines | None,
        index: int = 0,
    ) -> None:
        self.data = data
        self.name = name  # as it appears in a header: "mail", "documents"
        self.label = label  # as it appears in messages: "mail", "documents[2]"
        self.path = path
        self.lines = lines
        self.index = index

    def error(self, key: str | None, message: str) -> ConfigError:
        line = self.lines.find(self.name, key, self.index) if self.lines else None
        dotted = (f"{self.label}.{key}" if self.label else key) if key else self.label or None
        return ConfigError(message, path=self.path, line=line, key=dotted)

    def check_keys(self, known: Iterable[str]) -> None:
        known = list(known)
        for key in self.data:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
            where = f"[{self.label}]" if self.label else "the top level"
            raise self.error(key, f"unknown key in {where}{hint}")

    def _get(self, key: str, kinds: tuple[type, ...], expected: str) -> Any:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"expected {expected}, got {_show(value)}")
        if not isinstance(value, kinds):
            raise self.error(key, f"expected {expected}, got {_show(value)}")
        return value

    def get_str(self, key: str) -> str | None:
        value = self._get(key, (str,), "a string")
        if value is not None and not value.strip():
            raise self.error(key, "must not be empty")
        return cast("str | None", value)

    def get_bool(self, key: str, default: bool) -> bool:
        value = self._get(key, (bool,), "true or false")
        return default if value is None else bool(value)

    def get_int(self, key: str, default: int, *, low: int, high: int | None = None) -> int:
        value = self._get(key, (int,), "an integer")
        if value is None:
            return default
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.error(key, f"must be {bounds}, got {value}")
        return int(value)

    def get_float(
        self, key: str, default: float, *, low: float, high: float | None = None
    ) -> float:
        value = self._get(key, (int, float), "a number")
        if value is None:
            return default
        if value < low or (high is not None and value > high) or value != value:
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.error(key, f"must be {bounds}, got {value}")
        return float(value)

    def choice(
        self, key: str, default: str, choices: tuple[str, ...], *, upper: bool = False
    ) -> str:
        value = self.get_str(key)
        if value is None:
            return default
        normal = value.strip().upper() if upper else value.strip().lower()
        if normal not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return normal

    def interval(self, key: str) -> timedelta | None:
        value = self._get(key, (str,), 'a duration string such as "6h"')
        if value is None:
            return None
        try:
            return parse_interval(value)
        except ConfigError as exc:
            raise self.error(key, str(exc)) from None

    def url(self, key: str) -> str | None:
        value = self.get_str(key)
        if value is None:
            return None
        problem = url_problem(value)
        if problem:
            raise self.error(key, problem)
        return value.strip()

    def path_value(self, key: str, base: Path | None) -> Path | None:
        value = self.get_str(key)
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        return path

    def selectors(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise self.error(key, f"expected a CSS selector or a list of them, got {_show(value)}")
        from monitor.extract import selector_problem

        for item in items:
            if problem := selector_problem(item):
                raise self.error(key, problem)
        return tuple(item.strip() for item in items)

    def subtable(self, key: str) -> _Table:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table [{key}], got {_show(value)}")
        return _Table(value, name=key, label=key, path=self.path, lines=self.lines)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) URL, or None if it is."""
    shown = mask_credentials(url)  # the message must not show a password held in the URL
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        return f"bad URL {shown!r}: {mask_credentials(str(exc))}"
    if parts.scheme not in ("http", "https"):
        return f"bad URL {shown!r}: the scheme must be http or https"
    if not parts.hostname:
        return f"bad URL {shown!r}: a host is required"
    if any(ch.isspace() for ch in url.strip()):
        return f"bad URL {shown!r}: spaces must be percent-encoded"
    return None


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOC_ID = re.compile(r"^[a-z0-9][a-z0-9._\-]*(?:/[a-z0-9][a-z0-9._\-]*)*$")


def _bind_problem(bind: str) -> str | None:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f'expected "host:port" such as "127.0.0.1:8080", got "{bind}"'
    if host.startswith("[") != host.endswith("]"):
        return f'bad IPv6 host in "{bind}": write it as "[::1]:8080"'
    return None


# ---------------------------------------------------------------------------------------------
# Sections

DOCUMENT_KEYS = ("id", "service", "type", "url", "select", "remove", "interval", "render")
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "storage": ("database_url", "data_dir"),
    "fetch": (
        "user_agent",
        "timeout",
        "max_bytes",
        "per_host",
        "retries",
        "concurrency",
        "allow_private",
    ),
    "browser": ("executable",),
    "mail": (
        "host",
        "port",
        "security",
        "username",
        "password_env",
        "sender",
        "folder",
        "retry_after",
        "retry_max",
        "group_window",
    ),
    "web": ("bind", "base_url", "secret_key_file"),
    "alerts": ("email", "after_failures"),
    "daemon": (
        "interval",
        "jitter",
        "lease",
        "log_format",
        "log_level",
        "digest_hour",
        "weekly_digest_day",
    ),
}
TOP_KEYS: tuple[str, ...] = ("use_catalog", *SECTION_KEYS, "documents", "notify")
NOTIFY_KEYS = (
    "name",
    "kind",
    "url",
    "url_env",
    "secret_env",
    "services",
    "documents",
    "topics",
    "min_severity",
)


def _fetch(t: _Table) -> FetchConfig:
    t.check_keys(SECTION_KEYS["fetch"])
    default = FetchConfig()  # the one home of the fetch defaults (the Fetcher's too)
    return FetchConfig(
        user_agent=t.get_str("user_agent") or default.user_agent,
        timeout=t.get_float("timeout", default.timeout, low=0.1, high=3600),
        max_bytes=t.get_int("max_bytes", default.max_bytes, low=1024),
        per_host=t.get_int("per_host", default.per_host, low=1),
        retries=t.get_int("retries", default.retries, low=0, high=20),
        concurrency=t.get_int("concurrency", default.concurrency, low=1),
        allow_private=t.get_bool("allow_private", default.allow_private),
    )


def _browser(t: _Table, base: Path | None) -> BrowserConfig:
    t.check_keys(SECTION_KEYS["browser"])
    return BrowserConfig(executable=t.path_value("executable", base))


def default_sender(base_url: str) -> str | None:
    """``tos-monitor <tosmon@HOST>`` for the host of ``[web] base_url``; None when that host
    is no public domain name (an IP address, ``localhost``, a name without a dot)."""
    host = (urlsplit(base_url).hostname or "").lower().rstrip(".")
    if "." not in host or host.endswith((".localhost", ".local", ".internal")):
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    address = f"tosmon@{host}"
    return f"tos-monitor <{address}>" if email_problem(address) is None else None


def _mail(t: _Table, data_dir: Path, base: Path | None, base_url: str) -> MailConfig:
    if "password" in t.data:
        raise t.error(
            "password",
            "passwords do not belong in the config file: set password_env to the name of an "
            "environment variable holding it",
        )
    t.check_keys(SECTION_KEYS["mail"])
    password_env = t.get_str("password_env")
    if password_env is not None and not _ENV_NAME.match(password_env):
        raise t.error("password_env", f"not an environment variable name: {password_env!r}")
    host = t.get_str("host")
    sender = t.get_str("sender") or default_sender(base_url)
    if sender is None and host is not None:
        raise t.error(
            "sender",
            f'set sender (e.g. "tos-monitor <tosmon@example.org>"): with an SMTP host, mail '
            f"needs a real From address, and the host of [web] base_url ({base_url}) is no "
            "domain name to derive one from",
        )
    sender = sender or MailConfig.sender
    if email_problem(parseaddr(sender)[1], dotless_domain=True):
        raise t.error(
            "sender", f'expected an address such as "Name <me@example.org>", got "{sender}"'
        )
    return MailConfig(
        host=host,
        port=t.get_int("port", 587, low=1, high=65535),
        security=cast(Security, t.choice("security", "starttls", SECURITY_VALUES)),
        username=t.get_str("username"),
        password_env=password_env,
        sender=sender,
        folder=t.path_value("folder", base) or data_dir / "mail",
        retry_after=t.interval("retry_after") or MailConfig.retry_after,
        retry_max=t.interval("retry_max") or MailConfig.retry_max,
        group_window=_group_window(t),
    )


def _group_window(t: _Table) -> timedelta:
    """``[mail] group_window``: a duration, or ``"0"`` / ``"0s"`` (no grouping)."""
    raw = t.data.get("group_window")
    if isinstance(raw, str) and raw.strip().lower() in ("0", "0s", "0m"):
        return timedelta(0)
    return t.interval("group_window") or MailConfig.group_window


def _web(t: _Table) -> WebConfig:
    t.check_keys(SECTION_KEYS["web"])
    bind = t.get_str("bind") or WebConfig.bind
    problem = _bind_problem(bind)
    if problem:
        raise t.error("bind", problem)
    return WebConfig(bind=bind, base_url=(t.url("base_url") or WebConfig.base_url).rstrip("/"))


def _alerts(t: _Table) -> AlertsConfig:
    t.check_keys(SECTION_KEYS["alerts"])
    email = t.get_str("email")
    problem = email_problem(email.strip()) if email is not None else None
    if problem:
        raise t.error("email", f'not an email address: "{email}" ({problem})')
    return AlertsConfig(
        email=email.strip() if email else None,
        after_failures=t.get_int("after_failures", 3, low=1),
    )


def _daemon(t: _Table) -> DaemonConfig:
    t.check_keys(SECTION_KEYS["daemon"])
    return DaemonConfig(
        interval=t.interval("interval") or DaemonConfig.interval,
        jitter=t.get_float("jitter", 0.1, low=0.0, high=0.5),
        lease=t.interval("lease") or DaemonConfig.lease,
        log_format=cast(LogFormat, t.choice("log_format", "text", LOG_FORMATS)),
        log_level=t.choice("log_level", "INFO", LOG_LEVELS, upper=True),
        digest_hour=t.get_int("digest_hour", 8, low=0, high=23),
        weekly_digest_day=t.choice("weekly_digest_day", "monday", WEEKDAYS),
    )


def parse_documents(
    value: object, *, path: str, lines: _Lines | None, key: str = "documents"
) -> tuple[DocumentConfig, ...]:
    """Validate a ``[[documents]]`` array (from a config file or a catalog file)."""
    root = _Table({key: value}, name="", label="", path=path, lines=lines)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise root.error(key, f"expected [[{key}]] tables, got {_show(value)}")
    documents: list[DocumentConfig] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        t = _Table(item, name=key, label=f"{key}[{index + 1}]", path=path, lines=lines, index=index)
        t.check_keys(DOCUMENT_KEYS)
        required: dict[str, str] = {}
        for name in ("service", "type", "url"):
            if name not in item:
                raise t.error(None, f"missing required key {name!r}")
        required["service"] = cast(str, t.get_str("service")).strip()
        required["type"] = cast(str, t.get_str("type")).strip()
        url = cast(str, t.url("url"))
        doc_id = t.get_str("id")
        if doc_id is None:
            doc_id = document_id(required["service"], required["type"])
            id_key: str | None = None
        else:
            doc_id = doc_id.strip()
            id_key = "id"
        if not _DOC_ID.match(doc_id):
            raise t.error(
                id_key,
                f"bad document id {doc_id!r}: use lowercase letters, digits, '-', '.', '_' and '/'",
            )
        if doc_id in seen:
            raise t.error(
                id_key or "service",
                f"duplicate document id {doc_id!r} (also documents[{seen[doc_id]}]); "
                "give one of them a distinct id",
            )
        seen[doc_id] = index + 1
        documents.append(
            DocumentConfig(
                id=doc_id,
                service=required["service"],
                type=required["type"],
                url=url,
                select=t.selectors("select"),
                remove=t.selectors("remove"),
                interval=t.interval("interval"),
                render=t.get_bool("render", False),
            )
        )
    return tuple(documents)


def _string_list(t: _Table, key: str) -> tuple[str, ...]:
    value = t.data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise t.error(key, f"expected a list of strings, got {_show(value)}")
    return tuple(v.strip() for v in value)


def parse_notify(value: object, *, path: str, lines: _Lines | None) -> tuple[NotifyConfig, ...]:
    """Validate the ``[[notify]]`` targets: names unique, a URL or the variable holding it,
    webhooks signed (``secret_env`` required), filters as in ``tosmon subscribe``."""
    from monitor.clauses import SEVERITIES
    from monitor.topics import expand_topics

    root = _Table({"notify": value}, name="", label="", path=path, lines=lines)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise root.error("notify", f"expected [[notify]] tables, got {_show(value)}")
    targets: list[NotifyConfig] = []
    for index, item in enumerate(value):
        t = _Table(
            item, name="notify", label=f"notify[{index + 1}]", path=path, lines=lines, index=index
        )
        t.check_keys(NOTIFY_KEYS)
        name = (t.get_str("name") or "").strip()
        if not name:
            raise t.error("name" if "name" in item else None, "missing required key 'name'")
        if any(other.name == name for other in targets):
            raise t.error("name", f"duplicate notify name {name!r}")
        kind = cast(NotifyKind, t.choice("kind", "webhook", NOTIFY_KINDS))
        url = t.url("url") if kind == "webhook" else t.get_str("url")
        url_env = t.get_str("url_env")
        if (url is None) == (url_env is None):
            raise t.error(None, "give exactly one of 'url' and 'url_env'")
        secret_env = t.get_str("secret_env")
        if kind == "webhook" and secret_env is None:
            raise t.error(
                None, "a webhook needs 'secret_env': the variable holding its HMAC-SHA256 key"
            )
        topics = None
        if "topics" in item:
            try:
                topics = expand_topics(_string_list(t, "topics"))
            except MonitorError as exc:
                raise t.error("topics", str(exc)) from None
        targets.append(
            NotifyConfig(
                name=name,
                kind=kind,
                url=url,
                url_env=url_env,
                secret_env=secret_env,
                services=_string_list(t, "services"),
                documents=_string_list(t, "documents"),
                topics=topics,
                min_severity=t.choice("min_severity", "medium", SEVERITIES),
            )
        )
    return tuple(targets)


# ---------------------------------------------------------------------------------------------
# Loading


CATALOG_FIRST = "meta.toml"


@functools.cache
def catalog_documents() -> tuple[DocumentConfig, ...]:
    """Every document of the built-in catalog (``monitor/catalog/*.toml``), Meta's first; ids are
    unique across files. Read here, with the config's own validation; the catalog package holds
    only data, so the two do not import each other."""
    folder = importlib.resources.files("monitor").joinpath("catalog")
    files = [f for f in folder.iterdir() if f.name.endswith(".toml")]
    files.sort(key=lambda f: (f.name != CATALOG_FIRST, f.name))
    documents: list[DocumentConfig] = []
    seen: dict[str, str] = {}
    for file in files:
        text = file.read_text("utf-8")
        shown = f"monitor/catalog/{file.name}"
        data = parse_toml(text, shown)
        extra = sorted(set(data) - {"documents"})
        if extra:
            raise ConfigError("only [[documents]] tables belong here", path=shown, key=extra[0])
        for doc in parse_documents(data.get("documents", []), path=shown, lines=_Lines(text)):
            if doc.id in seen:
                raise ConfigError(
                    f"duplicate document id {doc.id!r} (also in {seen[doc.id]})", path=shown
                )
            seen[doc.id] = shown
            documents.append(doc)
    return tuple(documents)


def parse_toml(text: str, path: str) -> dict[str, Any]:
    """``tomllib.loads`` with its syntax errors turned into a ConfigError naming the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)$", message)
        line = int(match.group(1)) if match else None
        if match:
            message = message[: match.start()].rstrip() + f" (column {match.group(2)})"
        raise ConfigError(f"TOML syntax error: {message}", path=path, line=line) from None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None


def load_config(path: Path | None = None, *, env: Mapping[str, str] = os.environ) -> Config:
    """Load and validate the config.

    ``path`` None -> ``$TOSMON_CONFIG`` -> no file (every default). ``$TOSMON_DATA_DIR`` overrides
    the data directory. Relative paths in the file are relative to the file's directory.
    """
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    if path is not None:
        path = Path(path).expanduser()
        text = read_text(path)
        data = parse_toml(text, str(path))
        lines: _Lines | None = _Lines(text)
        base: Path | None = path.resolve().parent
    else:
        data, lines, base = {}, None, None
    return _build(data, path=path, lines=lines, base=base, env=env)


DATABASE_BACKENDS: tuple[str, ...] = ("sqlite", "postgresql")


def _database_url(t: _Table, base: Path | None) -> str | None:
    """``[storage] database_url``, checked; a relative SQLite path is made relative to the
    config file's directory (like every path in the file), not to the working directory."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    value = t.get_str("database_url")
    if value is None:
        return None
    value = value.strip()
    example = '"sqlite:///path/tosmon.db" or "postgresql+psycopg://user@host/tosmon"'
    if "://" not in value:
        raise t.error("database_url", f'expected a database URL such as {example}, got "{value}"')
    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise t.error("database_url", f"not a database URL: {exc}") from None
    backend = url.get_backend_name()
    if backend not in DATABASE_BACKENDS:
        raise t.error(
            "database_url",
            f"unsupported database {backend!r}: tos-monitor works with SQLite or PostgreSQL "
            f"(e.g. {example})",
        )
    database = url.database
    if backend != "sqlite" or not database or database == ":memory:" or "uri" in url.query:
        return value
    path = Path(database).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if str(path) == database:
        return value
    return url.set(database=str(path)).render_as_string(hide_password=False)


def _build(
    data: dict[str, Any],
    *,
    path: Path | None,
    lines: _Lines | None,
    base: Path | None,
    env: Mapping[str, str],
) -> Config:
    shown = str(path) if path is not None else "<defaults>"
    root = _Table(data, name="", label="", path=shown, lines=lines)
    root.check_keys(TOP_KEYS)
    tables = {name: root.subtable(name) for name in SECTION_KEYS}

    storage = tables["storage"]
    storage.check_keys(SECTION_KEYS["storage"])
    if env.get(DATA_DIR_ENV):
        data_dir = Path(env[DATA_DIR_ENV]).expanduser()
    else:
        data_dir = storage.path_value("data_dir", base) or default_data_dir()
    database_url = _database_url(storage, base) or _sqlite_url(data_dir)

    secret_key_file = tables["web"].path_value("secret_key_file", base) or data_dir / "secret.key"
    documents: tuple[DocumentConfig, ...] = ()
    if "documents" in data:
        documents = parse_documents(data["documents"], path=shown, lines=lines)

    notify: tuple[NotifyConfig, ...] = ()
    if "notify" in data:
        notify = parse_notify(data["notify"], path=shown, lines=lines)

    builders: dict[str, Callable[[_Table], Any]] = {
        "fetch": _fetch,
        "web": _web,
        "alerts": _alerts,
        "daemon": _daemon,
    }
    built = {name: build(tables[name]) for name, build in builders.items()}
    return Config(
        path=path,
        storage=StorageConfig(database_url=database_url),
        fetch=built["fetch"],
        mail=_mail(tables["mail"], data_dir, base, built["web"].base_url),
        web=built["web"],
        alerts=built["alerts"],
        daemon=built["daemon"],
        use_catalog=root.get_bool("use_catalog", True),
        documents=documents,
        data_dir=data_dir,
        secret_key_file=secret_key_file,
        browser=_browser(tables["browser"], base),
        notify=notify,
    )
