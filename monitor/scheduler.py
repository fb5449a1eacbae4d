"""The daemon behind ``tosmon run``: checks on schedule, delivers the outbox, survives faults.

Threads and jobs (APScheduler 3.x ``BackgroundScheduler``, times in UTC)::

    tick       every few seconds: claim due documents (a lease in the database), hand them to
               the check loop; never more than [fetch] concurrency checks in flight
    deliver    every few seconds, and at once after a change or an alert: ``deliver_pending``
               (which also folds queued rows into daily / weekly digests when they are due)
    heartbeat  every lease/3 (at most 30 s): the ``workers`` row for ``tosmon status``, and the
               leases of in-flight checks renewed so a slow check keeps its claim
    check loop one asyncio event loop in its own thread with one long-lived ``Fetcher``; each
               claimed document is a task: fetch, record (the tracker's one transaction), alert,
               release the claim

When is a document due? ``documents.next_check_at``, which the tracker sets in the check's own
transaction to ``now + interval`` (the document's ``interval``, else ``[daemon] interval``,
stretched or shrunk at random by up to ``[daemon] jitter`` so checks spread out). A restart
therefore checks nothing early; documents never scheduled are spread over their first interval
(at most one every :data:`FIRST_CHECK_STEP`, all within :data:`FIRST_CHECK_WINDOW`).

Faults: every job catches and logs what it did not expect and runs again next time; one bad page
is a failed check (the tracker isolates it), a database or SMTP outage is retried on the next tick.

Stopping (SIGTERM / SIGINT): no new claims; in-flight checks get :data:`GRACE` seconds to finish,
then are cancelled. A check is recorded in one synchronous transaction after its fetch, so a
cancelled check leaves no trace: its document is still due and the next start checks it. The
daemon's remaining claims are released and its ``workers`` row marked stopped. A second signal
exits at once. A daemon killed outright (SIGKILL, power loss) leaves its claims to expire after
``[daemon] lease``.

Several daemons: on PostgreSQL any number may share the database (claims use ``FOR UPDATE SKIP
LOCKED`` and leases; the outbox claims its rows the same way). On SQLite only one daemon may run
per database file: :func:`acquire_daemon_lock` holds an exclusive ``flock`` on
``<database>.daemon-lock`` for the daemon's lifetime (the kernel drops it if the process dies).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from secrets import token_hex
from typing import IO, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monitor import __version__
from monitor.clock import utcnow
from monitor.config import Config
from monitor.errors import FetchError, LockError
from monitor.models import Document
from monitor.store import history
from monitor.store import scheduling as store

log = logging.getLogger("monitor.scheduler")

GRACE = 5.0
"""Seconds in-flight checks (and a running delivery) get to finish after a stop signal."""
TICK_MIN, TICK_MAX = 0.25, 5.0
"""Bounds of the tick period (a quarter of the shortest interval, within these)."""
FIRST_CHECK_STEP = timedelta(seconds=2)
FIRST_CHECK_WINDOW = timedelta(minutes=10)
HEARTBEAT_MAX = 30.0
DELIVERY_BATCH = 50
"""Rows one delivery run sends at most (keeps a run, and so a graceful stop, short)."""
FETCHER_LIFETIME = 3600.0
"""Seconds before the check loop swaps in a fresh Fetcher (HTTP client, Chromium): a daemon runs
for months, and a long-lived browser grows."""
WORKER_RETENTION = timedelta(days=7)
"""Rows of stopped or vanished daemons are forgotten after this long."""
RELOAD_POLL = 0.5
"""Seconds between looks at a pending reload (SIGHUP) or a dead check loop."""
RESTART_ONLY = {
    ("storage", "database_url"),
    ("web", "bind"),
    ("daemon", "lease"),
    ("daemon", "log_format"),
    ("daemon", "log_level"),
}
"""Settings a reload notes but cannot apply: they need ``tosmon run`` started again."""


def human(delta: timedelta) -> str:
    """``timedelta(hours=6)`` -> ``"6h"``; ``timedelta(seconds=90)`` -> ``"1m30s"``."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or f"{delta.total_seconds():g}s"


def new_worker_id() -> str:
    """``host:pid:random``: unique per daemon process, readable in ``tosmon status``."""
    return f"{socket.gethostname()}:{os.getpid()}:{token_hex(3)}"


def default_interval(config: Config) -> Callable[[Document], timedelta]:
    """The document's own interval, else the config's default (no jitter)."""
    from monitor.tracker import interval_or

    return interval_or(config.daemon.interval)


def tick_period(config: Config) -> float:
    """Seconds between ticks: a quarter of the shortest interval, within TICK_MIN..TICK_MAX."""
    intervals = [config.daemon.interval] + [
        doc.interval for doc in config.all_documents() if doc.interval is not None
    ]
    shortest = min(interval.total_seconds() for interval in intervals)
    return min(TICK_MAX, max(TICK_MIN, shortest / 4))


# ---------------------------------------------------------------------------------------------
# One daemon per SQLite database


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases (and in-memory SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser().resolve()


def lock_path(database_url: str) -> Path | None:
    path = sqlite_path(database_url)
    return path.with_name(path.name + ".daemon-lock") if path is not None else None


@dataclass
class DaemonLock:
    """The exclusive lock a daemon holds on a SQLite database (see the module docstring)."""

    path: Path
    handle: IO[str]

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def acquire_daemon_lock(database_url: str, *, worker: str) -> DaemonLock | None:
    """Lock a SQLite database for this daemon; None (no lock needed) for PostgreSQL.

    Raises LockError naming the running daemon when another one holds the lock.
    """
    path = lock_path(database_url)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        database = sqlite_path(database_url)
        raise LockError(
            f"another tosmon daemon ({holder}) is already running on {database}; SQLite allows "
            "one daemon per database: stop that one first, or use PostgreSQL "
            "([storage] database_url) to run several"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"worker {worker}, started {utcnow():%Y-%m-%d %H:%M:%S} UTC\n")
    handle.flush()
    return DaemonLock(path, handle)


def daemon_lock_holder(database_url: str) -> str | None:
    """Who holds the SQLite daemon lock ("worker ..., started ..."); None if nobody does."""
    path = lock_path(database_url)
    if path is None or not path.exists():
        return None
    with path.open("r", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown daemon"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


# ---------------------------------------------------------------------------------------------
# What a config reload changes


def _few(ids: Collection[str], limit: int = 5) -> str:
    shown = sorted(ids)
    more = f", +{len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def describe_config_changes(old: Config, new: Config) -> list[str]:
    """What differs between two configs, in short phrases for the log.

    ``["+2 documents (a/x, b/y)", "-1 (c/z)", "interval of a/terms 6h->1h", "mail host changed"]``;
    settings a reload cannot apply say so ("web bind changed (takes effect at restart)").
    Values are not shown for settings (a host or a user name may be private); intervals are.
    """
    changes: list[str] = []
    before = {doc.id: doc for doc in old.all_documents()}
    after = {doc.id: doc for doc in new.all_documents()}
    added = [i for i in after if i not in before]
    removed = [i for i in before if i not in after]
    if added:
        changes.append(f"+{len(added)} document{'s' if len(added) > 1 else ''} ({_few(added)})")
    if removed:
        changes.append(f"-{len(removed)} ({_few(removed)})")
    if old.daemon.interval != new.daemon.interval:
        changes.append(
            f"default interval {human(old.daemon.interval)}->{human(new.daemon.interval)}"
        )
    for doc_id, doc in after.items():
        was = before.get(doc_id)
        if was is None:
            continue
        old_interval = was.interval or old.daemon.interval
        new_interval = doc.interval or new.daemon.interval
        if was.interval != doc.interval and old_interval != new_interval:
            changes.append(f"interval of {doc_id} {human(old_interval)}->{human(new_interval)}")
        if was.url != doc.url:
            changes.append(f"url of {doc_id} changed")
        if (was.select, was.remove) != (doc.select, doc.remove):
            changes.append(f"selectors of {doc_id} changed")
        if was.render != doc.render:
            changes.append(f"render of {doc_id} {'on' if doc.render else 'off'}")
    for section in ("mail", "alerts", "fetch", "browser", "web", "daemon", "storage"):
        old_section, new_section = getattr(old, section), getattr(new, section)
        for name in old_section.__dataclass_fields__:
            if section == "daemon" and name == "interval":
                continue
            if getattr(old_section, name) != getattr(new_section, name):
                later = " (takes effect at restart)" if (section, name) in RESTART_ONLY else ""
                changes.append(f"{section} {name.replace('_', ' ')} changed{later}")
    if old.use_catalog != new.use_catalog:
        changes.append(f"catalog {'on' if new.use_catalog else 'off'}")
    return changes


# ---------------------------------------------------------------------------------------------
# The daemon


class _Guard:
    """Runs a job, logging an unexpected error once with its traceback, then one line per repeat
    until the job succeeds again (a database outage must not flood the log)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing = False

    def __call__(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as exc:
            if self.failing:
                log.warning("%s failed again: %s: %s", self.name, type(exc).__name__, exc)
            else:
                log.exception("%s failed; retrying on schedule", self.name)
            self.failing = True
            return
        if self.failing:
            log.info("%s works again", self.name)
        self.failing = False


class Daemon:
    """Schedules checks and deliveries until :meth:`stop` (``tosmon run`` calls :meth:`run`)."""

    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        *,
        worker: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        web: bool = True,
        grace: float = GRACE,
        load_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.load_config = load_config  # what a reload (SIGHUP) reads; None: reloads are refused
        self.sessions = sessions
        self.worker = worker or new_worker_id()
        self.clock = clock
        self.rng = rng or random.Random()
        self.grace = grace
        self.with_web = web
        self.lease = config.daemon.lease
        self.concurrency = config.fetch.concurrency
        self.tick_seconds = tick_period(config)
        self.heartbeat_seconds = max(1.0, min(HEARTBEAT_MAX, self.lease.total_seconds() / 3))
        self.declared: frozenset[str] = self._checked(config)
        self._base_interval = default_interval(config)
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._checks_done = 0
        self._stopping = threading.Event()
        self._stopped = False
        self._registered = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_ready = threading.Event()
        self._loop_stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetcher: Any = None
        self._scheduler: BackgroundScheduler | None = None
        self._web: Any = None
        self._delivering = threading.Lock()
        self._guards = {name: _Guard(name) for name in ("tick", "delivery", "heartbeat")}
        self._reload_requested = threading.Event()

    # -- scheduling ------------------------------------------------------------------------------

    def interval_for(self, document: Document) -> timedelta:
        """The time to the next check: the interval, jittered by up to ``[daemon] jitter``."""
        base = self._base_interval(document)
        jitter = self.config.daemon.jitter
        if not jitter:
            return base
        return base * (1 + self.rng.uniform(-jitter, jitter))

    def _first_check_at(
        self, now: datetime, base_interval: Callable[[Document], timedelta] | None = None
    ) -> Callable[[Document, int, int], datetime]:
        base_interval = base_interval or self._base_interval

        def first(document: Document, position: int, count: int) -> datetime:
            window = min(base_interval(document), FIRST_CHECK_WINDOW, FIRST_CHECK_STEP * count)
            return now + window * ((position + self.rng.random()) / count)

        return first

    def prepare(self) -> None:
        """Sync the declared documents into the database and put them on the schedule."""
        new, earlier, now = self._sync_documents(self.config, self.declared, self._base_interval)
        self._registered = True
        with self.sessions.begin() as session:
            store.prune_workers(session, before=now - WORKER_RETENTION)
            store.register_worker(
                session,
                worker=self.worker,
                host=socket.gethostname(),
                pid=os.getpid(),
                now=now,
                info=self._info(),
            )
        log.info(
            "%d documents declared (%d new, %d brought forward); checking every %s by default",
            len(self.declared),
            new,
            earlier,
            human(self.config.daemon.interval),
        )

    def _checked(self, config: Config) -> frozenset[str]:
        """The declared documents this daemon can check: those needing a browser are left out
        (and named, with the command that enables them) when no browser is usable here."""
        declarations = config.all_documents()
        rendered = [doc.id for doc in declarations if doc.render]
        if rendered:
            from monitor.browser import ENABLE_COMMAND, browser_unavailable

            reason = browser_unavailable(config.browser.executable)
            if reason is not None:
                log.warning(
                    "%d document(s) need a browser (render = true) and will not be checked: %s. "
                    "Cause: %s. To check them: %s (or `playwright install chromium`), then "
                    "restart the daemon or send it SIGHUP",
                    len(rendered),
                    ", ".join(rendered),
                    reason.split("; ")[0],
                    ENABLE_COMMAND,
                )
                skipped = set(rendered)
                return frozenset(doc.id for doc in declarations if doc.id not in skipped)
        return frozenset(doc.id for doc in declarations)

    def _sync_documents(
        self,
        config: Config,
        declared: frozenset[str],
        base_interval: Callable[[Document], timedelta],
    ) -> tuple[int, int, datetime]:
        """Declared documents into the database, on the schedule: (new, brought forward, now)."""
        declarations = config.all_documents()
        for attempt in range(5):
            now = self.clock()
            try:
                with self.sessions.begin() as session:
                    history.sync_documents(session, declarations, now=now)
                    new, earlier = store.schedule_documents(
                        session,
                        ids=declared,
                        interval_of=base_interval,
                        first_check_at=self._first_check_at(now, base_interval),
                    )
                break
            except IntegrityError:  # another daemon inserted the same new documents first
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        return new, earlier, now

    def _info(self) -> dict[str, Any]:
        with self._lock:
            in_flight, done = len(self._in_flight), self._checks_done
        return {
            "version": __version__,
            "heartbeat_seconds": self.heartbeat_seconds,
            "in_flight": in_flight,
            "checks": done,
            "web": getattr(self._web, "url", None),
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the web endpoint, prepare the database, start the check loop and the jobs.

        If anything fails (a port in use, the database unreachable), what was started is
        stopped again before the error propagates.
        """
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        if self.with_web:  # first: a port in use fails before anything is written
            from monitor.web import serve

            self._web = serve(self.config, self.sessions)
            log.info("confirm and unsubscribe endpoint at %s", self._web.url)
        self.prepare()
        self._loop_thread = threading.Thread(
            target=self._loop_main, name="tosmon-checks", daemon=True
        )
        self._loop_thread.start()
        if not self._loop_ready.wait(30):
            raise RuntimeError("the check loop did not start")
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        now = datetime.now(UTC)
        scheduler.add_job(
            self.tick, "interval", seconds=self.tick_seconds, id="tick", next_run_time=now
        )
        scheduler.add_job(
            self.deliver,
            "interval",
            seconds=max(1.0, self.tick_seconds),
            id="deliver",
            next_run_time=now,
        )
        scheduler.add_job(
            self.heartbeat, "interval", seconds=self.heartbeat_seconds, id="heartbeat"
        )
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "daemon %s started (tick %.2gs, lease %s, up to %d checks at once)",
            self.worker,
            self.tick_seconds,
            human(self.lease),
            self.concurrency,
        )

    def stop(self) -> None:
        """Stop gracefully (see the module docstring); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        deadline = time.monotonic() + self.grace
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._loop is not None and self._loop_stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._loop_stop.set)
        if self._loop_thread is not None:
            self._loop_thread.join(max(0.1, deadline - time.monotonic()) + 2)
        if self._delivering.acquire(timeout=max(0.1, deadline - time.monotonic())):
            self._delivering.release()
        else:
            log.warning("a delivery is still running; it is abandoned (the outbox retries it)")
        if self._web is not None:
            with contextlib.suppress(Exception):
                self._web.stop()
        if not self._registered:  # it never got as far as the database
            return
        try:
            with self.sessions.begin() as session:
                released = store.release_claims(session, worker=self.worker)
                store.stop_worker(session, worker=self.worker, now=self.clock())
            if released:
                log.info("released %d unfinished claim(s); those documents are due again", released)
        except Exception:
            log.exception("could not release claims (they expire after %s)", human(self.lease))
        log.info("daemon %s stopped", self.worker)

    def run(self, stop: threading.Event) -> bool:
        """Start, wait until ``stop`` is set, stop gracefully. False if the daemon broke down.

        A :meth:`request_reload` (SIGHUP) is carried out here, within a second.
        """
        self.start()
        healthy = True
        while not stop.wait(RELOAD_POLL):
            if self._loop_thread is not None and not self._loop_thread.is_alive():
                log.error("the check loop died; stopping")
                healthy = False
                break
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
        self.stop()
        return healthy

    # -- reloading the config ----------------------------------------------------------------

    def request_reload(self) -> None:
        """Ask :meth:`run` to reload the config (safe from a signal handler)."""
        self._reload_requested.set()

    def reload(self) -> list[str] | None:
        """Read the config again and apply it without a restart; what changed, or None.

        New and removed documents, intervals, mail, alerts, fetch and browser settings take
        effect at once (fetch settings with the next HTTP client, within
        :data:`FETCHER_LIFETIME`). A config that does not load (or names a password variable
        that is not set) is logged and the current one kept.
        """
        if self.load_config is None:
            log.warning("config reload requested, but this daemon has no config to reload")
            return None
        try:
            config = self.load_config()
            config.mail.password()
        except Exception as exc:
            log.error("config reload failed, keeping the current config: %s", exc)
            return None
        try:
            changes = self.apply_config(config)
        except Exception:
            log.exception("config reload failed, keeping the current config")
            return None
        log.info("config reloaded: %s", ", ".join(changes) if changes else "nothing changed")
        return changes

    def apply_config(self, config: Config) -> list[str]:
        """Switch to ``config`` (the database first: if that fails, nothing changes)."""
        changes = describe_config_changes(self.config, config)
        declared = self._checked(config)
        base_interval = default_interval(config)
        self._sync_documents(config, declared, base_interval)
        with self._lock:
            self.config = config
            self.declared = declared
            self._base_interval = base_interval
            self.concurrency = config.fetch.concurrency
        tick = tick_period(config)
        if tick != self.tick_seconds:
            self.tick_seconds = tick
            if self._scheduler is not None:
                with contextlib.suppress(Exception):  # shutting down
                    self._scheduler.reschedule_job("tick", trigger="interval", seconds=tick)
                    self._scheduler.reschedule_job(
                        "deliver", trigger="interval", seconds=max(1.0, tick)
                    )
        return changes

    # -- jobs --------------------------------------------------------------------------------

    def tick(self) -> None:
        self._guards["tick"](self._tick)

    def _tick(self) -> None:
        if self._stopping.is_set() or self._loop is None:
            return
        with self._lock:
            capacity = self.concurrency - len(self._in_flight)
        if capacity <= 0:
            return
        with self.sessions.begin() as session:
            ids = store.claim_due_documents(
                session,
                worker=self.worker,
                now=self.clock(),
                lease=self.lease,
                limit=capacity,
                only=self.declared,
            )
        if not ids:
            return
        with self._lock:
            self._in_flight.update(ids)
        try:
            self._loop.call_soon_threadsafe(self._spawn, ids)
        except RuntimeError:  # the loop closed under us (stopping): give the claims back
            self._forget(ids)
            with self.sessions.begin() as session:
                store.release_claims(session, worker=self.worker, ids=ids)

    def deliver(self) -> None:
        if self._stopping.is_set():
            return
        with self._delivering:
            self._guards["delivery"](self._deliver)

    def _deliver(self) -> None:
        from monitor.outbox import deliver_pending

        stats = deliver_pending(
            self.sessions,
            self.config,
            now=self.clock,
            worker=self.worker,
            limit=DELIVERY_BATCH,
        )
        if stats.total or stats.digests:
            log.info(
                "delivery: %d sent, %d to retry, %d failed, %d cancelled, %d digest(s) built",
                stats.sent,
                stats.retried,
                stats.failed,
                stats.cancelled,
                stats.digests,
                extra={"deliveries": stats.sent},
            )
        if stats.total >= DELIVERY_BATCH:
            self._wake_delivery()  # more to send

    def heartbeat(self) -> None:
        self._guards["heartbeat"](self._heartbeat)

    def _heartbeat(self) -> None:
        with self._lock:
            in_flight = set(self._in_flight)
        now = self.clock()
        with self.sessions.begin() as session:
            store.heartbeat(session, worker=self.worker, now=now, info=self._info())
            store.renew_claims(
                session, worker=self.worker, now=now, lease=self.lease, ids=in_flight
            )

    def _wake_delivery(self) -> None:
        if self._scheduler is None or self._stopping.is_set():
            return
        with contextlib.suppress(Exception):  # the scheduler is shutting down
            self._scheduler.modify_job("deliver", next_run_time=datetime.now(UTC))

    # -- the check loop ----------------------------------------------------------------------

    def _loop_main(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_browser_exit)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except Exception:
            log.exception("the check loop failed")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _new_fetcher(self) -> Any:
        from monitor.fetcher import Fetcher

        return Fetcher.from_config(self.config)

    async def _serve(self) -> None:
        self._loop_stop = asyncio.Event()
        self._fetcher = await self._new_fetcher().__aenter__()
        closing: set[asyncio.Task[None]] = set()
        self._loop_ready.set()
        try:
            while True:
                try:
                    await asyncio.wait_for(self._loop_stop.wait(), FETCHER_LIFETIME)
                    break
                except TimeoutError:  # time for a fresh HTTP client (and browser)
                    old, users = self._fetcher, set(self._tasks)
                    self._fetcher = await self._new_fetcher().__aenter__()
                    closer = asyncio.get_running_loop().create_task(self._close(old, users))
                    closing.add(closer)
                    closer.add_done_callback(closing.discard)
            tasks = set(self._tasks)
            if tasks:
                log.info("waiting up to %gs for %d check(s) in flight", self.grace, len(tasks))
                _, pending = await asyncio.wait(tasks, timeout=self.grace)
                if pending:
                    log.warning(
                        "abandoning %d unfinished check(s); nothing of them was recorded",
                        len(pending),
                    )
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.gather(*closing, return_exceptions=True)
        finally:
            await self._close(self._fetcher, set())

    @staticmethod
    async def _close(fetcher: Any, users: set[asyncio.Task[None]]) -> None:
        """Close a fetcher once the checks using it are done."""
        if users:
            await asyncio.wait(users)
        try:
            await fetcher.__aexit__(None, None, None)
        except Exception:
            log.exception("closing the fetcher failed")

    def _spawn(self, ids: list[str]) -> None:
        for document_id in ids:
            if self._loop_stop is not None and self._loop_stop.is_set():
                self._forget([document_id])  # released with the others when stopping
                continue
            task = asyncio.get_running_loop().create_task(self._check_one(document_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _check_one(self, document_id: str) -> None:
        from monitor.tracker import check_documents

        try:
            await check_documents(
                [document_id],
                sessions=self.sessions,
                fetcher=self._fetcher,
                interval_for=self.interval_for,
                now=self.clock,
                worker=self.worker,
                concurrency=1,
                on_result=self._after_check,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("check of %s failed unexpectedly", document_id)
            with contextlib.suppress(Exception):
                self._record_internal_failure(document_id, exc)
        finally:
            self._forget([document_id])
            with contextlib.suppress(Exception), self.sessions.begin() as session:
                store.release_claims(session, worker=self.worker, ids=[document_id])

    def _after_check(self, result: Any) -> None:
        """After a check's transaction: the operator alert (while the claim is held)."""
        with self._lock:
            self._checks_done += 1
        alerted = self._update_alert(result.document_id)
        if alerted or result.outcome == "changed":
            self._wake_delivery()

    def _update_alert(self, document_id: str) -> bool:
        """Queue the failing / recovered alert the document's state calls for; True if one was."""
        from monitor.alerts import update_alert

        try:
            with self.sessions.begin() as session:
                document = store.lock_document(session, document_id)
                if document is None:
                    return False
                alert = update_alert(session, document, alerts=self.config.alerts, now=self.clock())
        except Exception:
            log.exception("could not update the alert state of %s", document_id)
            return False
        return alert is not None

    def _record_internal_failure(self, document_id: str, exc: Exception) -> None:
        from monitor.tracker import record_fetch

        reason = FetchError(f"internal error: {type(exc).__name__}: {exc}")
        with self.sessions.begin() as session:
            document = history.get_document(session, document_id)
            if document is not None:
                record_fetch(
                    session,
                    document,
                    reason,
                    now=self.clock(),
                    duration=0.0,
                    interval=self.interval_for(document),
                    worker=self.worker,
                )
        if self._update_alert(document_id):
            self._wake_delivery()

    def _forget(self, ids: Collection[str]) -> None:
        with self._lock:
            self._in_flight.difference_update(ids)


def _quiet_browser_exit(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Ctrl-C reaches Playwright's driver process too (one process group): its pipe then closes
    under a pending call, which asyncio would log as an error at exit. That is the browser
    stopping with us, not a fault: log it at debug level; everything else as asyncio would."""
    exc = context.get("exception")
    if exc is not None and "Connection closed while reading from the driver" in str(exc):
        log.debug("the browser driver stopped with the daemon: %s", exc)
        return
    loop.default_exception_handler(context)
