"""Queries for the daemon: claims on due documents, worker heartbeats, status.

Claims are leases. A daemon claims due documents by writing ``claimed_by`` and
``claim_expires_at`` in one statement::

    UPDATE documents SET claimed_by = :worker, claim_expires_at = :now + :lease
    WHERE id IN (SELECT id FROM documents WHERE <due and unclaimed>
                 ORDER BY next_check_at NULLS FIRST LIMIT :n FOR UPDATE SKIP LOCKED)
    RETURNING id

Each claim also records the claiming process (``claim_host``: hostname, boot id and PID
namespace; ``claim_pid``). Before claiming, a process releases the claims of processes of its own
host that no longer run (killed with SIGKILL, crashed), so a ``tosmon check`` after a killed one
checks at once instead of waiting for the lease; claims of other hosts wait for their lease.

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several daemons claim at the same moment without
waiting on (or taking) each other's rows; on SQLite the clause is dropped and the single UPDATE is
atomic under SQLite's one-writer lock (and only one daemon runs per SQLite database anyway). The
lease, not the row lock, protects the check that follows: the claim transaction commits at once.
A live daemon renews the claims of its in-flight checks with its heartbeat; a daemon that dies
stops renewing, and its claims expire after ``lease``. The tracker moves ``next_check_at`` on in
the check's own transaction, so a released document is no longer due.

Like every ``store`` module, nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, true, update
from sqlalchemy.orm import Session

from monitor.models import Check, Delivery, Document, Worker

FAILED_OUTCOMES = ("failed", "blocked")


@dataclass(frozen=True, slots=True)
class ClaimingProcess:
    """The process a claim belongs to: its host identity and PID."""

    host: str
    pid: int


def this_process() -> ClaimingProcess:
    return ClaimingProcess(host=_host_identity(), pid=os.getpid())


def _host_identity() -> str:
    """``hostname boot-id pid:[namespace]``: PIDs are comparable only between processes with the
    same identity (two machines may share a hostname; containers have their own PID spaces)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text("ascii").strip()[:36])
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return " ".join(parts)[:200]


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs on this host (a zombie does not); True when that cannot be told."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    fields = stat.rpartition(b")")[2].split()
    return not fields or fields[0] not in (b"Z", b"X")


def release_dead_claims(
    session: Session,
    *,
    now: datetime,
    process: ClaimingProcess | None = None,
    alive: Callable[[int], bool] = process_alive,
) -> list[str]:
    """Release the unexpired claims of processes of this host that no longer run; their ids."""
    process = process or this_process()
    rows = session.execute(
        select(Document.claim_pid).where(
            Document.claim_host == process.host,
            Document.claim_pid.is_not(None),
            Document.claimed_by.is_not(None),
            Document.claim_expires_at > now,
        )
    ).all()
    dead = {pid for (pid,) in rows if pid is not None and pid != process.pid and not alive(pid)}
    if not dead:
        return []
    released = session.scalars(
        update(Document)
        .where(Document.claim_host == process.host, Document.claim_pid.in_(sorted(dead)))
        .values(claimed_by=None, claim_expires_at=None, claim_host=None, claim_pid=None)
        .returning(Document.id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(released)


def _unclaimed(now: datetime) -> Any:
    return or_(Document.claimed_by.is_(None), Document.claim_expires_at <= now)


def _due(now: datetime) -> Any:
    return or_(Document.next_check_at.is_(None), Document.next_check_at <= now)


def claim_due_documents(
    session: Session,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    only: Collection[str] | None = None,
    due_only: bool = True,
    process: ClaimingProcess | None = None,
) -> list[str]:
    """Claim up to ``limit`` due, unclaimed documents for ``worker``; their ids, most overdue first.

    ``only`` restricts the claim to these ids (the documents the daemon's config declares;
    documents no longer declared keep their history but are not checked). ``due_only=False``
    claims them whether due or not (``tosmon check`` checks now, but never alongside a daemon).
    ``process`` (default: this one) is recorded on the claims; claims of dead processes of the
    same host are released first.
    """
    if limit <= 0 or (only is not None and not only):
        return []
    process = process or this_process()
    release_dead_claims(session, now=now, process=process)
    due = _due(now) if due_only else true()
    candidates = (
        select(Document.id)
        .where(due, _unclaimed(now))
        .order_by(Document.next_check_at.asc().nulls_first(), Document.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if only is not None:
        candidates = candidates.where(Document.id.in_(list(only)))
    statement = (
        update(Document)
        .where(Document.id.in_(candidates.scalar_subquery()), due, _unclaimed(now))
        .values(
            claimed_by=worker,
            claim_expires_at=now + lease,
            claim_host=process.host,
            claim_pid=process.pid,
        )
        .returning(Document.id, Document.next_check_at)
        .execution_options(synchronize_session=False)
    )
    rows = list(session.execute(statement).all())
    rows.sort(key=lambda row: (row[1] is not None, row[1] or now, row[0]))
    return [row[0] for row in rows]


def release_claims(session: Session, *, worker: str, ids: Collection[str] | None = None) -> int:
    """Give up ``worker``'s claims (on ``ids``, or all of them); how many were released."""
    statement = update(Document).where(Document.claimed_by == worker)
    if ids is not None:
        if not ids:
            return 0
        statement = statement.where(Document.id.in_(list(ids)))
    result = session.execute(
        statement.values(
            claimed_by=None, claim_expires_at=None, claim_host=None, claim_pid=None
        ).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def renew_claims(
    session: Session, *, worker: str, now: datetime, lease: timedelta, ids: Collection[str]
) -> int:
    """Extend the lease of ``worker``'s claims on ``ids`` (its in-flight checks)."""
    if not ids:
        return 0
    result = session.execute(
        update(Document)
        .where(Document.claimed_by == worker, Document.id.in_(list(ids)))
        .values(claim_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def schedule_documents(
    session: Session,
    *,
    ids: Collection[str],
    interval_of: Callable[[Document], timedelta],
    first_check_at: Callable[[Document, int, int], datetime],
) -> tuple[int, int]:
    """Put every declared document on the schedule when a daemon starts.

    A document never scheduled (``next_check_at`` NULL) gets
    ``first_check_at(document, position, count)``, so new documents are spread out rather than all
    fetched at once. A document whose next check
    lies further than its interval after its last check (the interval was shortened in the
    config) is brought forward to ``last_check_at + interval``. Returns (new, brought forward).
    """
    if not ids:
        return 0, 0
    documents = list(
        session.scalars(select(Document).where(Document.id.in_(list(ids))).order_by(Document.id))
    )
    new = [doc for doc in documents if doc.next_check_at is None]
    for position, doc in enumerate(new):
        doc.next_check_at = first_check_at(doc, position, len(new))
    earlier = 0
    for doc in documents:
        if doc.next_check_at is None or doc.last_check_at is None or doc in new:
            continue
        latest = doc.last_check_at + interval_of(doc)
        if doc.next_check_at > latest:
            doc.next_check_at = latest
            earlier += 1
    return len(new), earlier


def lock_document(session: Session, document_id: str) -> Document | None:
    """The document, freshly read and (on PostgreSQL) row-locked until the transaction ends."""
    return session.get(Document, document_id, with_for_update=True, populate_existing=True)


# ---------------------------------------------------------------------------------------------
# Workers (running daemons)


def register_worker(
    session: Session,
    *,
    worker: str,
    host: str,
    pid: int,
    now: datetime,
    info: dict[str, Any] | None = None,
) -> Worker:
    row = session.get(Worker, worker)
    if row is None:
        row = Worker(id=worker, host=host, pid=pid, started_at=now, heartbeat_at=now)
        session.add(row)
    row.host, row.pid, row.started_at, row.heartbeat_at = host, pid, now, now
    row.stopped_at = None
    row.info = dict(info or {})
    return row


def heartbeat(
    session: Session, *, worker: str, now: datetime, info: dict[str, Any] | None = None
) -> None:
    row = session.get(Worker, worker)
    if row is None:
        return
    row.heartbeat_at = now
    if info is not None:
        row.info = {**row.info, **info}


def stop_worker(session: Session, *, worker: str, now: datetime) -> None:
    row = session.get(Worker, worker)
    if row is not None:
        row.stopped_at = now
        row.heartbeat_at = now


def prune_workers(session: Session, *, before: datetime) -> int:
    """Forget daemons that stopped (or last beat) before ``before``."""
    result = session.execute(
        delete(Worker)
        .where(or_(Worker.stopped_at < before, Worker.heartbeat_at < before))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def running_workers(session: Session) -> list[Worker]:
    """Daemons that have not stopped cleanly, latest heartbeat first (some may be dead)."""
    query = select(Worker).where(Worker.stopped_at.is_(None))
    return list(session.scalars(query.order_by(Worker.heartbeat_at.desc())))


def last_worker(session: Session) -> Worker | None:
    return session.scalars(
        select(Worker).order_by(Worker.heartbeat_at.desc(), Worker.id).limit(1)
    ).first()


# ---------------------------------------------------------------------------------------------
# Status


def next_due(
    session: Session, *, limit: int, only: Collection[str] | None = None
) -> list[Document]:
    """The documents checked next (never-scheduled ones first)."""
    query = select(Document)
    if only is not None:
        query = query.where(Document.id.in_(list(only)))
    query = query.order_by(Document.next_check_at.asc().nulls_first(), Document.id).limit(limit)
    return list(session.scalars(query))


def failing_documents(session: Session, *, only: Collection[str] | None = None) -> list[Document]:
    """Documents whose latest check failed, failing longest first."""
    query = select(Document).where(Document.consecutive_failures > 0)
    if only is not None:
        query = query.where(Document.id.in_(list(only)))
    return list(session.scalars(query.order_by(Document.failing_since, Document.id)))


def claimed_documents(session: Session, *, now: datetime) -> list[Document]:
    """Documents some daemon is checking right now (claims not yet expired)."""
    query = select(Document).where(
        Document.claimed_by.is_not(None), Document.claim_expires_at > now
    )
    return list(session.scalars(query.order_by(Document.id)))


def failure_streak_start(
    session: Session, document_id: str, *, before: datetime
) -> datetime | None:
    """When the run of failed checks that ended at ``before`` began (None if there was none)."""
    last_success = session.scalar(
        select(func.max(Check.checked_at)).where(
            Check.document_id == document_id,
            Check.outcome.not_in(FAILED_OUTCOMES),
            Check.checked_at < before,
        )
    )
    query = select(func.min(Check.checked_at)).where(
        Check.document_id == document_id,
        Check.outcome.in_(FAILED_OUTCOMES),
        Check.checked_at < before,
    )
    if last_success is not None:
        query = query.where(Check.checked_at > last_success)
    return session.scalar(query)


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    pending: int
    """due now or later, not sent yet (including retries)"""
    queued: int
    """waiting for a digest"""
    sending: int
    failed: int
    """given up"""
    oldest_pending_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "pending": self.pending,
            "queued": self.queued,
            "sending": self.sending,
            "failed": self.failed,
            "oldest_pending_at": self.oldest_pending_at,
        }


def outbox_backlog(session: Session) -> OutboxBacklog:
    counts = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.status.in_(("pending", "queued", "sending", "failed")))
            .group_by(Delivery.status)
        ).all()
    )
    oldest = session.scalar(
        select(func.min(Delivery.created_at)).where(Delivery.status.in_(("pending", "sending")))
    )
    return OutboxBacklog(
        pending=int(counts.get("pending", 0)),
        queued=int(counts.get("queued", 0)),
        sending=int(counts.get("sending", 0)),
        failed=int(counts.get("failed", 0)),
        oldest_pending_at=oldest,
    )


def last_digest(session: Session) -> Delivery | None:
    """The latest digest sent, if any."""
    query = select(Delivery).where(Delivery.kind == "digest", Delivery.status == "sent")
    return session.scalars(query.order_by(Delivery.sent_at.desc(), Delivery.id.desc())).first()


def check_counts(session: Session, *, since: datetime) -> dict[str, int]:
    """How many checks of each outcome were recorded since ``since``."""
    rows = session.execute(
        select(Check.outcome, func.count()).where(Check.checked_at >= since).group_by(Check.outcome)
    ).all()
    return {str(outcome): int(count) for outcome, count in rows}


__all__ = [
    "ClaimingProcess",
    "OutboxBacklog",
    "check_counts",
    "claim_due_documents",
    "claimed_documents",
    "failing_documents",
    "failure_streak_start",
    "heartbeat",
    "last_digest",
    "last_worker",
    "lock_document",
    "next_due",
    "outbox_backlog",
    "process_alive",
    "prune_workers",
    "register_worker",
    "release_claims",
    "release_dead_claims",
    "renew_claims",
    "running_workers",
    "schedule_documents",
    "stop_worker",
    "this_process",
]
