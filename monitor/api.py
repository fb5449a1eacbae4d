"""The library's front door: :class:`Monitor`, everything ``tosmon`` does, callable from Python.

::

    from monitor import Monitor

    with Monitor.open("tosmon.toml") as monitor:      # or a Config, or None for the defaults
        for result in monitor.check():
            print(result.document_id, result.outcome)
        for change in monitor.changes(min_severity="high"):
            print(change.detected_at, change.document, change.summary)

A ``Monitor`` owns the config, the database engine and its sessions, and the one way to build a
:class:`~monitor.fetcher.Fetcher` from the config (the ``check`` command and the daemon both use
it). Every method opens and closes its own session and returns plain frozen dataclasses (or the
pipeline's own report types), never ORM rows tied to a closed session. Errors are the
:mod:`monitor.errors` tree; :class:`~monitor.errors.ArgumentError` names the argument at fault.

The ``tosmon`` command is a thin layer over this class: parse, one call, print.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from monitor.clauses import SEVERITIES, ChangeReport, Clause
from monitor.clock import utcnow
from monitor.config import Config, load_config
from monitor.errors import ArgumentError, MonitorError
from monitor.store.scheduling import OutboxBacklog
from monitor.tracker import CheckOutcome, CheckResult
from monitor.urls import mask_credentials

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from monitor.fetcher import Fetcher
    from monitor.importer import ImportSummary
    from monitor.models import Change, Document
    from monitor.outbox import DeliveryStats
    from monitor.render import RenderedEmail
    from monitor.scheduler import Daemon
    from monitor.web import WebServer

__all__ = [
    "ChangeRecord",
    "ClauseRecord",
    "Comparison",
    "DaemonInfo",
    "DigestInfo",
    "DocumentInfo",
    "DueDocument",
    "FailingDocument",
    "History",
    "Monitor",
    "Status",
    "SubscribeOutcome",
    "SubscriberInfo",
    "SubscriptionInfo",
    "VersionInfo",
    "compare_files",
]

STATUS_DUE_LIMIT = 5
"""How many of the next due documents :meth:`Monitor.status` lists."""


# ---------------------------------------------------------------------------------------------
# What the methods return


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A declared document and its state in the database."""

    id: str
    service: str
    type: str
    url: str
    """As shown: a password in it is masked (``https://***@host/``)."""
    render: bool
    last_check_at: datetime | None
    last_change_at: datetime | None
    next_check_at: datetime | None
    versions: int
    consecutive_failures: int
    failing_since: datetime | None
    last_error: str | None
    """The last error while failing; None when the last check succeeded."""

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "type": self.type,
            "url": self.url,
            "render": self.render,
            "last_check_at": self.last_check_at,
            "last_change_at": self.last_change_at,
            "next_check_at": self.next_check_at,
            "versions": self.versions,
            "failing": self.failing,
            "consecutive_failures": self.consecutive_failures,
            "failing_since": self.failing_since,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One stored version of a document (its text: :meth:`Monitor.text_at`)."""

    id: int
    seen_at: datetime
    last_seen_at: datetime | None
    clauses: int
    text_hash: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seen_at": self.seen_at,
            "last_seen_at": self.last_seen_at,
            "clauses": self.clauses,
            "text_hash": self.text_hash,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class ClauseRecord:
    """One changed clause of a stored change record."""

    kind: str
    section: tuple[str, ...]
    before: str | None
    after: str | None
    labels: tuple[str, ...]
    direction: str
    severity: str
    annotation: str

    def as_dict(self) -> dict[str, Any]:
        from monitor.report import clause_to_json

        return clause_to_json(self)


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """A stored change between two consecutive versions of a document."""

    id: int
    document: str
    service: str
    type: str
    detected_at: datetime
    old_version: int
    new_version: int
    severity: str
    labels: tuple[str, ...]
    summary: str
    headline: str
    """One line for people: what changed and why it matters (empty for older records)."""
    dates: tuple[str, ...]
    """Effective dates the new version announces."""
    opt_outs: tuple[str, ...]
    """How to say no, where the new version says."""
    notes: tuple[str, ...]
    source: str
    archive_url: str | None
    """The archived version this change was imported from, if any."""
    clauses: tuple[ClauseRecord, ...]

    def as_dict(self, *, clauses: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "document": self.document,
            "service": self.service,
            "type": self.type,
            "detected_at": self.detected_at,
            "severity": self.severity,
            "labels": list(self.labels),
            "summary": self.summary,
            "headline": self.headline,
            "dates": list(self.dates),
            "opt_outs": list(self.opt_outs),
            "notes": list(self.notes),
            "source": self.source,
            "archive_url": self.archive_url,
        }
        if clauses:
            data["clauses"] = [c.as_dict() for c in self.clauses]
        return data


@dataclass(frozen=True, slots=True)
class History:
    """Every version of one document, oldest first, and the changes between them."""

    document: str
    min_severity: str
    versions: tuple[VersionInfo, ...]
    changes: tuple[ChangeRecord, ...]
    """The changes at or above ``min_severity``."""
    hidden_changes: int
    """How many changes below ``min_severity`` were left out."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "document": self.document,
            "min_severity": self.min_severity,
            "versions": [v.as_dict() for v in self.versions],
            "changes": [
                {
                    "id": c.id,
                    "detected_at": c.detected_at,
                    "old_version": c.old_version,
                    "new_version": c.new_version,
                    "severity": c.severity,
                    "labels": list(c.labels),
                    "summary": c.summary,
                    "source": c.source,
                }
                for c in self.changes
            ],
            "hidden_changes": self.hidden_changes,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two stored versions of one document and the annotated report between them."""

    document: str
    from_at: datetime
    to_at: datetime
    report: ChangeReport


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    worker: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    alive: bool
    """Heartbeat recent enough; a daemon killed outright stays listed until its row is pruned."""
    checks_in_flight: int
    checks_done: int
    web: str | None
    version: str | None


@dataclass(frozen=True, slots=True)
class DueDocument:
    document: str
    next_check_at: datetime | None
    """None: never scheduled yet (checked first)."""
    url: str


@dataclass(frozen=True, slots=True)
class FailingDocument:
    document: str
    failing_since: datetime | None
    consecutive_failures: int
    last_error: str | None
    alerted_at: datetime | None


@dataclass(frozen=True, slots=True)
class DigestInfo:
    sent_at: datetime | None
    to: str
    cadence: str


@dataclass(frozen=True, slots=True)
class Status:
    """Whether a daemon runs, what is due, what fails, what waits in the outbox."""

    running: bool
    lock_holder: str | None
    daemons: tuple[DaemonInfo, ...]
    documents: int
    next_due: tuple[DueDocument, ...]
    failing: tuple[FailingDocument, ...]
    outbox: OutboxBacklog
    last_digest: DigestInfo | None
    checked_at: datetime

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "running": self.running,
            "lock_holder": self.lock_holder,
            "daemons": [asdict(d) for d in self.daemons],
            "documents": self.documents,
            "next_due": [asdict(d) for d in self.next_due],
            "failing": [asdict(f) for f in self.failing],
            "outbox": self.outbox.as_dict(),
            "last_digest": asdict(self.last_digest) if self.last_digest else None,
            "checked_at": self.checked_at,
        }


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    id: int
    services: tuple[str, ...]
    documents: tuple[str, ...]
    topics: tuple[str, ...]
    min_severity: str
    cadence: str
    summary: str
    """One line for people: ``all services · 12 topics · medium+ · immediate``."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "services": list(self.services),
            "documents": list(self.documents),
            "topics": list(self.topics),
            "min_severity": self.min_severity,
            "cadence": self.cadence,
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class SubscriberInfo:
    email: str
    state: str
    created_at: datetime
    confirmed_at: datetime | None
    last_delivery_at: datetime | None
    subscriptions: tuple[SubscriptionInfo, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "state": self.state,
            "created_at": self.created_at,
            "confirmed_at": self.confirmed_at,
            "last_delivery_at": self.last_delivery_at,
            "subscriptions": [s.as_dict() for s in self.subscriptions],
        }


@dataclass(frozen=True, slots=True)
class SubscribeOutcome:
    email: str
    state: str
    """pending (waiting for confirmation) or active"""
    description: str
    """What the new subscription asks for, in one line."""
    confirmation_queued: bool
    confirmation_sent: bool
    """The mail server took the confirmation email (else it waits in the outbox)."""
    action: str = "added"
    """added | updated (the address had other filters: ``previous``) | unchanged"""
    previous: str = ""
    confirmation: str | None = None
    """sent | pending (retried later) | failed (refused for good) | sending; None: none due"""
    error: str | None = None
    next_attempt_at: datetime | None = None
    held_until: datetime | None = None
    """A confirmation went out less than 10 minutes ago: no other before this time."""


# ---------------------------------------------------------------------------------------------
# The facade


def to_json(data: Any) -> str:
    """The JSON the CLI prints with ``--json`` and the web serves under ``/api/`` (datetimes
    as ISO 8601)."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class Monitor:
    """Config, database and fetcher, and every operation of tos-monitor on top of them.

    Build one with :meth:`open`; close it (or use it as a context manager) to release the
    database engine. Safe to call from one thread at a time.
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utcnow,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        """``sessions``: share a session factory already open on the database (the web server's,
        the daemon's); closing this Monitor then leaves its engine alone."""
        self.config = config
        self.clock = clock
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = sessions

    @classmethod
    def open(cls, config: Config | str | os.PathLike[str] | None = None, **options: Any) -> Monitor:
        """A Monitor for a Config, a TOML config file, or (None) the built-in defaults.

        A bad config file raises ConfigError naming file, line and key. The database is
        opened on first use.
        """
        if not isinstance(config, Config):
            config = load_config(Path(config) if config is not None else None)
        return cls(config, **options)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the database engine (a later call opens it again)."""
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._sessions = None

    def upgrade_schema(self) -> tuple[str | None, str | None, str | None]:
        """Apply the Alembic migrations up to head: (revision before, after, head)."""
        from monitor.db import current_revision, head_revision, make_engine, upgrade

        self.close()
        engine = make_engine(self.config.storage.database_url)
        try:
            before = current_revision(engine)
            upgrade(engine)
            return before, current_revision(engine), head_revision(engine)
        finally:
            engine.dispose()

    def check_mail_settings(self, env: Mapping[str, str] = os.environ) -> None:
        """Fail before any work if mail could not go out: the variable named by ``[mail]
        password_env`` must be set (and each ``[[notify]]`` target's), and the link-signing key
        (``TOSMON_SECRET_KEY`` or the key file) usable, the file not readable by group or
        others. A ConfigError names the variable or the file. Without it, a check would record a
        change, then stop at its first email."""
        from monitor.subscriptions import check_secret_key

        self.config.mail.password(env)
        check_secret_key(self.config.secret_key_file, env=env)
        for target in self.config.notify:
            target.target_url(env)
            target.secret(env)

    # -- resources -------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The database engine, schema checked (created on first use of an empty database)."""
        if self._engine is None:
            from monitor.db import ensure_schema, make_engine

            engine = make_engine(self.config.storage.database_url)
            try:
                ensure_schema(engine)
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            from monitor.db import session_factory

            self._sessions = session_factory(self.engine)
        return self._sessions

    def fetcher(self) -> Fetcher:
        """A new Fetcher set up from ``[fetch]``: ``async with monitor.fetcher() as fetcher``."""
        from monitor.fetcher import Fetcher

        return Fetcher.from_config(self.config)

    def daemon(
        self,
        *,
        worker: str | None = None,
        web: bool = True,
        load_config: Callable[[], Config] | None = None,
    ) -> Daemon:
        """The daemon over this Monitor's config and database (``tosmon run``); ``load_config``
        reads the config again when the daemon is asked to reload (SIGHUP)."""
        from monitor.scheduler import Daemon

        return Daemon(
            self.config,
            self.sessions,
            worker=worker,
            web=web,
            clock=self.clock,
            load_config=load_config,
        )

    def serve(self, *, bind: str | None = None) -> WebServer:
        """Start the web endpoint (history, feeds, confirm / unsubscribe links) in a thread on
        ``bind`` (default: ``[web] bind``); ``.stop()`` the result to shut it down."""
        import dataclasses

        from monitor.web import serve

        config = self.config
        if bind:
            config = dataclasses.replace(config, web=dataclasses.replace(config.web, bind=bind))
        return serve(config, self.sessions)

    # -- checking --------------------------------------------------------------------------------

    def _sync(self) -> list[str]:
        """Declared documents written to the database; their ids."""
        from monitor.store import history as store

        declarations = self.config.all_documents()
        with self.sessions.begin() as session:
            store.sync_documents(session, declarations, now=self.clock())
        return [d.id for d in declarations]

    def check(self, ids: Sequence[str] = ()) -> list[CheckResult]:
        """Check documents now, once (every declared document when ``ids`` is empty).

        One result per document, in order: ``first``, ``unchanged``, ``changed`` (with the
        change id and severity), ``failed`` (with the reason), or ``skipped`` when a running
        daemon holds the document at this moment. Reports are queued, not sent: call
        :meth:`deliver`.
        """
        from monitor.store import scheduling
        from monitor.tracker import check_documents, interval_or

        declared = self._sync()
        known = set(declared)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ArgumentError(
                f"unknown document id(s): {', '.join(unknown)} (see `tosmon documents`)",
                argument="ID",
            )
        selected = list(dict.fromkeys(ids)) if ids else declared
        worker = f"check:{socket.gethostname()}:{os.getpid()}"
        with self.sessions.begin() as session:
            claimed = set(
                scheduling.claim_due_documents(
                    session,
                    worker=worker,
                    now=self.clock(),
                    lease=self.config.daemon.lease,
                    limit=len(selected),
                    only=selected,
                    due_only=False,
                )
            )
        ours = [d for d in selected if d in claimed]

        async def run() -> list[CheckResult]:
            async with self.fetcher() as fetcher:
                return await check_documents(
                    ours,
                    sessions=self.sessions,
                    fetcher=fetcher,
                    interval_for=interval_or(self.config.daemon.interval),
                    now=self.clock,
                    concurrency=self.config.fetch.concurrency,
                    worker=worker,
                )

        try:
            results = {r.document_id: r for r in asyncio.run(run())}
        finally:
            with self.sessions.begin() as session:
                scheduling.release_claims(session, worker=worker)
        busy = "being checked by a running daemon right now"
        skipped: CheckOutcome = "skipped"
        return [results.get(d) or CheckResult(d, skipped, busy) for d in selected]

    def deliver(self, *, limit: int | None = None, hold: bool = True) -> DeliveryStats:
        """Send what is due in the outbox now: reports, digests that are due, confirmations.

        ``hold=False`` sends reports at once rather than waiting ``[mail] group_window`` for
        others to group with (``tosmon check`` does, after recording the whole cycle)."""
        from monitor.outbox import deliver_pending

        return deliver_pending(self.sessions, self.config, now=self.clock, limit=limit, hold=hold)

    # -- the record ------------------------------------------------------------------------------

    def documents(self, *, sync: bool = True) -> list[DocumentInfo]:
        """Every document in the database (declared ones written first unless ``sync=False``,
        which only reads), by id."""
        from monitor.store import history as store

        if sync:
            self._sync()
        with self.sessions() as session:
            return [
                DocumentInfo(
                    id=doc.id,
                    service=doc.service,
                    type=doc.type,
                    url=mask_credentials(doc.url),
                    render=doc.render,
                    last_check_at=doc.last_check_at,
                    last_change_at=doc.last_change_at,
                    next_check_at=doc.next_check_at,
                    versions=store.count_versions(session, doc.id),
                    consecutive_failures=doc.consecutive_failures,
                    failing_since=doc.failing_since,
                    last_error=(
                        mask_credentials(doc.last_error or "") if doc.consecutive_failures else None
                    ),
                )
                for doc in store.list_documents(session)
            ]

    def history(self, document_id: str, *, min_severity: str = "low") -> History:
        """The versions of one document over time, and the changes between them at or above
        ``min_severity`` (default ``low``: changes that are no real change are counted, not
        listed; ``cosmetic`` lists them all)."""
        from monitor.listing import severities_from
        from monitor.store import history as store

        wanted = set(_severities_from(min_severity, severities_from))

        with self.sessions() as session:
            doc = _document(session, document_id)
            versions = tuple(
                VersionInfo(
                    id=v.id,
                    seen_at=v.seen_at,
                    last_seen_at=v.last_seen_at,
                    clauses=v.clause_count,
                    text_hash=v.text_hash,
                    source=v.source,
                )
                for v in store.versions_of(session, doc.id)
            )
            every = store.changes_of(session, doc.id)
            changes = tuple(_change_record(c, doc) for c in every if c.severity in wanted)
        return History(
            document=document_id,
            min_severity=min_severity,
            versions=versions,
            changes=changes,
            hidden_changes=len(every) - len(changes),
        )

    def text_at(self, document_id: str, at: datetime | None = None) -> str:
        """The text (canonical Markdown) of the version in force at ``at`` (default: latest)."""
        from monitor.store import history as store

        with self.sessions() as session:
            doc = _document(session, document_id)
            version = store.version_at(session, doc.id, at)
            if version is None:
                when = (
                    f" at or before {at:%Y-%m-%d %H:%M} UTC" if at else " yet: run `tosmon check`"
                )
                raise MonitorError(f"{document_id} has no version{when}")
            return store.version_text(session, version)

    def diff(
        self, document_id: str, *, from_at: datetime | None = None, to_at: datetime | None = None
    ) -> Comparison:
        """The report between the versions in force at two moments.

        Default: the latest version against the one before it.
        """
        from monitor.report import build_report
        from monitor.store import history as store
        from monitor.tracker import parse_version

        with self.sessions() as session:
            doc = _document(session, document_id)
            new = store.version_at(session, doc.id, to_at)
            if new is None:
                raise MonitorError(f"{document_id} has no version to compare")
            if from_at is not None:
                old = store.version_at(session, doc.id, from_at)
            else:
                earlier = store.recent_versions(session, doc.id, limit=1, before_id=new.id)
                old = earlier[0] if earlier else None
            if old is None:
                raise MonitorError(f"{document_id} has no earlier version to compare with")
            old_text, new_text = store.version_text(session, old), store.version_text(session, new)
            old_seen, new_seen = old.seen_at, new.seen_at
        report = build_report(
            parse_version(old_text), parse_version(new_text), document_name=document_id
        )
        return Comparison(document=document_id, from_at=old_seen, to_at=new_seen, report=report)

    def stored_change(self, change_id: int, *, document_id: str | None = None) -> Comparison:
        """Change record ``change_id`` as it was reported (stored, not recomputed); with
        ``document_id``, an error if the change is of another document."""
        from monitor.listing import stored_change

        with self.sessions() as session:
            stored = stored_change(session, change_id)
        if document_id and document_id != stored.document_id:
            raise MonitorError(f"change #{change_id} is of {stored.document_id}, not {document_id}")
        return Comparison(
            document=stored.document_id,
            from_at=stored.old_at,
            to_at=stored.new_at,
            report=stored.report,
        )

    def compare(
        self, old: str | os.PathLike[str], new: str | os.PathLike[str], *, service: str = ""
    ) -> ChangeReport:
        """The report between two local files (HTML, Markdown or text); no database involved."""
        return compare_files(old, new, service=service)

    def changes(
        self,
        *,
        since: datetime | None = None,
        services: Sequence[str] = (),
        topics: Sequence[str] = (),
        min_severity: str = "low",
        limit: int | None = 200,
    ) -> list[ChangeRecord]:
        """Change records across all documents, newest first.

        ``topics``: labels (``AI_TRAINING``, ...); a change matches when one of its clauses has
        one. ``min_severity``: the least severity listed (``cosmetic`` lists everything).
        """
        from monitor.listing import severities_from
        from monitor.store import history as store

        _check_topics(topics)
        levels = _severities_from(min_severity, severities_from)
        wanted = set(topics)
        records: list[ChangeRecord] = []
        with self.sessions() as session:
            rows = store.find_changes(
                session, since=since, services=services, min_severity_levels=levels
            )
            for change, document in rows:
                if wanted and not wanted.intersection(change.labels):
                    continue
                records.append(_change_record(change, document))
                if limit is not None and len(records) >= limit:
                    break
        return records

    def change(self, change_id: int) -> ChangeRecord:
        """One change record, with its clauses (ArgumentError when there is none)."""
        from monitor.store import mail as store

        with self.sessions() as session:
            found = store.get_change(session, change_id)
            if found is None:
                raise ArgumentError(f"no change {change_id} in the database", argument="ID")
            return _change_record(*found)

    def render_report(self, change_id: int) -> RenderedEmail:
        """The email change ``change_id`` produces (subject, text, HTML), without sending it."""
        from monitor.render import render_change
        from monitor.store import mail as store

        with self.sessions() as session:
            view = store.load_change_view(session, change_id)
        if view is None:
            raise MonitorError(f"no change {change_id} (see `tosmon changes`)")
        return render_change(view, base_url=self.config.web.base_url, unsubscribe_url=None)

    def import_history(
        self,
        path: str | os.PathLike[str],
        *,
        services: Sequence[str] = (),
        on_document: Callable[[ImportSummary], None] | None = None,
        collection: str = "",
        archive_url: str | None = None,
    ) -> list[ImportSummary]:
        """Backfill history from an Open Terms Archive dataset (no email is sent).

        Only regular files up to ``[fetch] max_bytes`` are read; others are skipped and named.
        ``collection`` and ``archive_url`` (a template with ``{collection}`` and ``{commit}``)
        make the links to archived versions (default: read from each manifest.tsv; the Open
        Terms Archive versions repository).
        """
        from monitor.importer import import_dataset
        from monitor.manifest import ARCHIVE_COMMIT_URL

        return import_dataset(
            self.sessions,
            Path(path),
            services={s.lower() for s in services},
            on_document=on_document,
            max_bytes=self.config.fetch.max_bytes,
            collection=collection,
            archive_url=archive_url or ARCHIVE_COMMIT_URL,
        )

    # -- the daemon, seen from outside -----------------------------------------------------------

    def status(self) -> Status:
        """Whether a daemon runs (and where), what is due next, failing documents, the outbox."""
        from monitor.scheduler import daemon_lock_holder
        from monitor.store import scheduling as store

        now = self.clock()
        declared = [doc.id for doc in self.config.all_documents()]
        lock_holder = daemon_lock_holder(self.config.storage.database_url)
        with self.sessions() as session:
            daemons = tuple(
                DaemonInfo(
                    worker=w.id,
                    host=w.host,
                    pid=w.pid,
                    started_at=w.started_at,
                    heartbeat_at=w.heartbeat_at,
                    alive=_alive(w.heartbeat_at, w.info, now),
                    checks_in_flight=int(w.info.get("in_flight", 0)),
                    checks_done=int(w.info.get("checks", 0)),
                    web=w.info.get("web"),
                    version=w.info.get("version"),
                )
                for w in store.running_workers(session)
            )
            due = tuple(
                DueDocument(
                    document=doc.id, next_check_at=doc.next_check_at, url=mask_credentials(doc.url)
                )
                for doc in store.next_due(session, limit=STATUS_DUE_LIMIT, only=declared)
            )
            failing = tuple(
                FailingDocument(
                    document=doc.id,
                    failing_since=doc.failing_since,
                    consecutive_failures=doc.consecutive_failures,
                    last_error=mask_credentials(doc.last_error or "") or None,
                    alerted_at=doc.failure_alerted_at,
                )
                for doc in store.failing_documents(session, only=declared)
            )
            backlog = store.outbox_backlog(session)
            digest = store.last_digest(session)
            last_digest = (
                DigestInfo(sent_at=digest.sent_at, to=digest.to_address, cadence=digest.cadence)
                if digest is not None
                else None
            )
        return Status(
            running=any(d.alive for d in daemons) or lock_holder is not None,
            lock_holder=lock_holder,
            daemons=daemons,
            documents=len(declared),
            next_due=due,
            failing=failing,
            outbox=backlog,
            last_digest=last_digest,
            checked_at=now,
        )

    # -- subscriptions ---------------------------------------------------------------------------

    def subscribe(
        self,
        email: str,
        *,
        services: Sequence[str] = (),
        documents: Sequence[str] = (),
        topics: Sequence[str] = (),
        min_severity: str = "medium",
        cadence: str = "immediate",
        confirm: bool = True,
    ) -> SubscribeOutcome:
        """Subscribe ``email`` to change reports.

        A new address gets a confirmation email first (sent at once if the mail server takes
        it, else left in the outbox); ``confirm=False`` skips it (an address you own).
        ``topics``: labels or groups (``ai``, ``content_license``, ...); none means the ``ai``
        and ``content_license`` groups.
        """
        from monitor.outbox import subscribe_now
        from monitor.subscriptions import as_filter

        flt = as_filter(
            services=services,
            documents=documents,
            topics=topics,
            min_severity=min_severity,
            cadence=cadence,
        )
        done = subscribe_now(
            self.sessions, self.config, email, flt, confirm=confirm, now=self.clock
        )
        result = done.result
        return SubscribeOutcome(
            email=result.email,
            state=result.state,
            description=flt.describe(),
            confirmation_queued=result.confirmation_id is not None,
            confirmation_sent=done.confirmation == "sent",
            action=result.action,
            previous=result.previous,
            confirmation=done.confirmation,
            error=done.error,
            next_attempt_at=done.next_attempt_at,
            held_until=result.confirmation_held_until,
        )

    def confirm(self, token: str) -> str:
        """Confirm a subscription with the token of its confirmation link; the address."""
        from monitor.subscriptions import confirm_token, load_secret_key

        key = load_secret_key(self.config.secret_key_file)
        with self.sessions.begin() as session:
            return confirm_token(session, key, token.strip(), now=self.clock())

    def unsubscribe(self, email: str) -> str:
        """Stop all reports to ``email`` (reports not yet sent are cancelled); the address."""
        from monitor.subscriptions import unsubscribe as remove

        with self.sessions.begin() as session:
            return remove(session, email, now=self.clock())

    def subscribers(self) -> list[SubscriberInfo]:
        """Every subscriber, by address, with their subscriptions."""
        from monitor.store import mail as store
        from monitor.subscriptions import subscription_filter

        with self.sessions() as session:
            return [
                SubscriberInfo(
                    email=subscriber.email,
                    state=subscriber.state,
                    created_at=subscriber.created_at,
                    confirmed_at=subscriber.confirmed_at,
                    last_delivery_at=subscriber.last_delivery_at,
                    subscriptions=tuple(
                        SubscriptionInfo(
                            id=s.id,
                            services=tuple(s.services),
                            documents=tuple(s.documents),
                            topics=tuple(s.topics),
                            min_severity=s.min_severity,
                            cadence=s.cadence,
                            summary=subscription_filter(s).describe(),
                        )
                        for s in subscriber.subscriptions
                    ),
                )
                for subscriber in store.list_subscribers(session)
            ]


# ---------------------------------------------------------------------------------------------
# Helpers


def _document(session: Session, document_id: str) -> Document:
    from monitor.store import history as store

    doc = store.get_document(session, document_id)
    if doc is None:
        raise ArgumentError(
            f"no document {document_id!r} in the database (see `tosmon documents`)",
            argument="ID",
        )
    return doc


def _change_record(change: Change, document: Document) -> ChangeRecord:
    from monitor.importer import archived_url

    return ChangeRecord(
        id=change.id,
        document=document.id,
        service=document.service,
        type=document.type,
        detected_at=change.detected_at,
        old_version=change.old_version_id,
        new_version=change.new_version_id,
        severity=change.severity,
        labels=tuple(change.labels or ()),
        summary=change.summary,
        headline=change.headline or "",
        dates=tuple(change.dates or ()),
        opt_outs=tuple(change.opt_outs or ()),
        notes=tuple(change.notes or ()),
        source=change.source,
        archive_url=archived_url(change),
        clauses=tuple(
            ClauseRecord(
                kind=c.kind,
                section=tuple(c.section or ()),
                before=c.before,
                after=c.after,
                labels=tuple(c.labels or ()),
                direction=c.direction,
                severity=c.severity,
                annotation=c.annotation,
            )
            for c in change.clauses
        ),
    )


def _severities_from(min_severity: str, severities_from: Callable[[str], list[str]]) -> list[str]:
    try:
        return severities_from(min_severity)
    except ValueError:
        raise ArgumentError(
            f"unknown severity {min_severity!r}; use one of {', '.join(SEVERITIES)}",
            argument="--min-severity",
        ) from None


def _alive(heartbeat_at: datetime, info: dict[str, Any], now: datetime) -> bool:
    period = float(info.get("heartbeat_seconds") or 30.0)
    return now - heartbeat_at <= timedelta(seconds=3 * period + 5)


def _check_topics(topics: Sequence[str]) -> None:
    if not topics:
        return
    from monitor.classify import load_taxonomy

    known = load_taxonomy().topics
    unknown = [t for t in topics if t not in known]
    if unknown:
        raise ArgumentError(
            f"unknown topic(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            argument="--topic",
        )


def compare_files(
    old: str | os.PathLike[str], new: str | os.PathLike[str], *, service: str = ""
) -> ChangeReport:
    """The report between two local files (HTML, Markdown or text), with no config or database
    (``tosmon compare``; :meth:`Monitor.compare` is the same)."""
    from monitor.report import build_report

    return build_report(read_clauses(Path(old)), read_clauses(Path(new)), document_name=service)


def media_type_of(path: Path, content: bytes) -> str:
    """By file ending; otherwise HTML if it looks like markup, else plain text."""
    from monitor.extract import MEDIA_TYPES_BY_SUFFIX

    if path.suffix.lower() in MEDIA_TYPES_BY_SUFFIX:
        return MEDIA_TYPES_BY_SUFFIX[path.suffix.lower()]
    head = content[:512].lstrip().lower()
    return "text/html" if head.startswith((b"<!doctype", b"<html", b"<")) else "text/plain"


def read_clauses(path: Path) -> list[Clause]:
    """The clauses of a local file; MonitorError naming the file when it cannot be used."""
    from monitor.extract import extract_clauses

    try:
        content = path.read_bytes()
    except OSError as exc:
        raise MonitorError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return extract_clauses(content, media_type=media_type_of(path, content))
    except MonitorError as exc:
        raise MonitorError(f"{path}: {exc}") from exc
