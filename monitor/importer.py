"""Backfill history from an Open Terms Archive dataset (``tosmon import``).

The dataset is laid out as ``<service>/<document type>/<YYYY-MM-DDTHH-MM-SSZ>.md``. Each capture
becomes a version at its capture date and the change records are computed as a live check would
compute them (variant flips included), but nothing is queued for email.

Where a document folder holds the archive's ``manifest.tsv`` (see ``monitor.manifest``), a capture
marked ``upgrade`` (a re-extraction after the archive changed its selectors) is recorded as a
version with no change record, and each change record notes the address of the archived version.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from monitor.clauses import SEVERITIES, Clause
from monitor.config import document_id as make_document_id
from monitor.errors import ExtractError, MonitorError
from monitor.extract import MEDIA_TYPES_BY_SUFFIX, clauses_to_text, extract_clauses
from monitor.manifest import ARCHIVE_COMMIT_URL, Manifest, read_manifest
from monitor.models import Change, Document
from monitor.store import history as store
from monitor.tracker import far_shorter, record_text

COMMIT_EVERY = 50
IMPORT_MAX_BYTES = 5_000_000  # the default [fetch] max_bytes: no capture is larger than a page


class CaptureRefused(MonitorError):
    """A capture file that is not read: a link, a device, a FIFO, or too large."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_capture(path: Path, *, max_bytes: int = IMPORT_MAX_BYTES) -> bytes:
    """The bytes of one capture file: a regular file, not a symbolic link, at most ``max_bytes``.

    Raises CaptureRefused naming the path: a dataset is someone else's folder, and a link to
    /etc/passwd must not become a version, nor /dev/zero or a FIFO hang or exhaust memory. The file
    is opened without following a link and without blocking, then judged by what was opened.
    """
    if path.is_symlink():
        raise CaptureRefused(f"{path}: a symbolic link, not followed")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CaptureRefused(f"{path}: a symbolic link, not followed") from None
        raise CaptureRefused(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise CaptureRefused(f"{path}: {kind}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise CaptureRefused(f"{path}: larger than {max_bytes} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise CaptureRefused(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)


@dataclass
class ImportSummary:
    document_id: str
    captures: int = 0
    imported: int = 0
    skipped: int = 0
    upgrades: int = 0
    unreadable: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # files not read: links, devices, too large
    severities: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        by_severity = ", ".join(f"{self.severities[s]} {s}" for s in reversed(SEVERITIES))
        extra = f", {self.skipped} already imported" if self.skipped else ""
        if self.upgrades:
            extra += f", {self.upgrades} technical upgrade{'s' if self.upgrades != 1 else ''}"
        bad = f", {len(self.unreadable)} refused (error pages)" if self.unreadable else ""
        files = "".join(f"\n  skipped {reason}" for reason in self.refused)
        return (
            f"{self.document_id}: {self.captures} captures, {self.imported} imported{extra}{bad}; "
            f"changes: {by_severity}{files}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "document": self.document_id,
            "captures": self.captures,
            "imported": self.imported,
            "skipped": self.skipped,
            "upgrades": self.upgrades,
            "unreadable": self.unreadable,
            "refused": self.refused,
            "changes": {s: self.severities[s] for s in SEVERITIES},
        }


def capture_time(path: Path) -> datetime | None:
    """``2024-11-21T06-08-26Z.md`` -> 2024-11-21 06:08:26 UTC; None for other names."""
    stem = path.name.rsplit(".", 1)[0].split("__", 1)[0]
    try:
        return datetime.strptime(stem, "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def dataset_documents(root: Path) -> Iterator[tuple[str, str, list[tuple[datetime, Path]]]]:
    """(service, document type, captures sorted by date) for each document folder in the dataset."""
    found = False
    for service_dir in sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        for type_dir in sorted(p for p in service_dir.iterdir() if p.is_dir()):
            captures = sorted(
                (when, path)
                for path in type_dir.iterdir()
                if path.suffix.lower() in MEDIA_TYPES_BY_SUFFIX
                and (when := capture_time(path)) is not None
            )
            if captures:
                found = True
                yield service_dir.name, type_dir.name, captures
    if not found:
        raise MonitorError(
            f"{root} holds no Open Terms Archive captures "
            "(expected <service>/<document type>/<YYYY-MM-DDTHH-MM-SSZ>.md)"
        )


def import_dataset(
    sessions: sessionmaker[Session],
    root: Path,
    *,
    services: set[str] | None = None,
    on_document: Callable[[ImportSummary], None] | None = None,
    max_bytes: int = IMPORT_MAX_BYTES,
    collection: str = "",
    archive_url: str = ARCHIVE_COMMIT_URL,
) -> list[ImportSummary]:
    """Import every document of the dataset (or of the given lower-cased service names).

    ``collection`` names the archive collection the dataset comes from (``contrib``, ``pga``...)
    when the manifests do not tell; ``archive_url`` is the address template of an archived
    version (``{collection}`` and ``{commit}`` are filled in).
    """
    summaries = []
    for service, type_, captures in dataset_documents(root):
        if services and service.lower() not in services:
            continue
        manifest = read_manifest(captures[0][1].parent)
        summary = import_document(
            sessions,
            service,
            type_,
            captures,
            max_bytes=max_bytes,
            manifest=manifest,
            collection=collection,
            archive_url=archive_url,
        )
        summaries.append(summary)
        if on_document is not None:
            on_document(summary)
    return summaries


def import_document(
    sessions: sessionmaker[Session],
    service: str,
    type_: str,
    captures: list[tuple[datetime, Path]],
    *,
    max_bytes: int = IMPORT_MAX_BYTES,
    manifest: Manifest | None = None,
    collection: str = "",
    archive_url: str = ARCHIVE_COMMIT_URL,
) -> ImportSummary:
    document_id = make_document_id(service, type_)
    summary = ImportSummary(document_id, captures=len(captures))
    manifest = _with_collection(manifest or Manifest(), collection)
    session = sessions()
    try:
        document = _document(
            session,
            document_id,
            service,
            type_,
            first_seen=captures[0][0],
            url=_document_url(manifest, service, type_, archive_url),
        )
        # history is appended, never inserted: skip what is not newer than the last capture
        # recorded (imported or checked)
        latest = store.version_at(session, document_id, None)
        marks = [t for t in (document.last_check_at, latest.seen_at if latest else None) if t]
        start_after = max(marks) if marks else None
        pending = 0
        for when, path in captures:
            if start_after is not None and when <= start_after:
                summary.skipped += 1
                continue
            try:
                raw = read_capture(path, max_bytes=max_bytes)
            except CaptureRefused as exc:
                summary.refused.append(str(exc))
                continue
            try:
                clauses = extract_clauses(
                    raw, media_type=MEDIA_TYPES_BY_SUFFIX[path.suffix.lower()]
                )
            except ExtractError as exc:
                summary.unreadable.append(f"{path.name}: {exc}")
                continue
            if manifest.kind(path.name) == "upgrade":
                refusal = record_upgrade(session, document, clauses, now=when)
                if refusal is not None:
                    summary.unreadable.append(f"{path.name}: {refusal}")
                    continue
                document.last_check_at = when
                summary.imported += 1
                summary.upgrades += 1
                pending += 1
                continue
            result = record_text(
                session, document, clauses, raw=None, now=when, notify=False, source="import"
            )
            document.last_check_at = when
            if result.outcome == "failed":
                summary.unreadable.append(f"{path.name}: {result.detail}")
                continue
            if result.change_id is not None:
                _note_archived(session, result.change_id, manifest, path.name, archive_url)
            summary.imported += 1
            pending += 1
            if pending >= COMMIT_EVERY:
                session.commit()
                pending = 0
        session.commit()
        summary.severities.update(
            change.severity for change in store.changes_of(session, document_id)
        )
    finally:
        session.close()
    return summary


def _document(
    session: Session,
    document_id: str,
    service: str,
    type_: str,
    *,
    first_seen: datetime,
    url: str,
) -> Document:
    document = store.get_document(session, document_id)
    if document is None:
        document = Document(
            id=document_id,
            service=service,
            type=type_,
            url=url,
            select=[],
            remove=[],
            render=False,
            created_at=first_seen,
            consecutive_failures=0,
        )
        session.add(document)
        session.flush()
    return document


# --- the archive's manifest: technical upgrades and links to archived versions --------------------

STUB_CHARS = 500
"""A technical upgrade this short (and far shorter than the version before) is no document."""

ARCHIVED_NOTE = "Archived version: "
"""Prefix of the change note that holds the address of the archived version."""


def record_upgrade(
    session: Session, document: Document, clauses: list[Clause], *, now: datetime
) -> str | None:
    """Record a technical upgrade (the archive re-extracted the same page with new selectors): a
    version, and the baseline later changes are reported against; no change record, no email.

    A re-extraction too short to be a document (a "Redirecting to ..." stub) and far shorter than
    the current version would make the next capture look wholly new: it is refused, and the
    reason returned. A long one is kept, even far shorter: new selectors may rightly drop most of
    what the old ones took in (Instagram's privacy policy, pga collection, July 2025).
    """
    text = clauses_to_text(clauses)
    current = store.current_version(session, document)
    if current is not None and store.content_hash(text.encode("utf-8")) == current.text_hash:
        current.last_seen_at = now
        return None
    if current is not None:
        old_text = store.version_text(session, current)
        if len(text) < STUB_CHARS and far_shorter(text, old_text):
            return (
                f"technical upgrade of {len(text)} characters, "
                f"{100 * len(text) // len(old_text)}% of the version before: probably an error "
                f"or redirect page, not recorded"
            )
    version = store.add_version(
        session,
        document,
        text=text,
        raw=None,
        clause_count=len(clauses),
        seen_at=now,
        source="upgrade",
    )
    document.reported_version_id = version.id
    document.settling_version_id = None
    store.record_success(document, now=now)
    return None


def archived_url(change: Change) -> str | None:
    """The address of the archived version an imported change leads to, if it was noted."""
    for note in change.notes or ():
        if isinstance(note, str) and note.startswith(ARCHIVED_NOTE):
            return note[len(ARCHIVED_NOTE) :]
    return None


def _note_archived(
    session: Session, change_id: int, manifest: Manifest, file_name: str, template: str
) -> None:
    url = manifest.archive_url(file_name, template=template)
    change = session.get(Change, change_id)
    if url and change is not None:
        change.notes = [*change.notes, f"{ARCHIVED_NOTE}{url}"]


def _with_collection(manifest: Manifest, collection: str) -> Manifest:
    if not collection or collection == manifest.collection:
        return manifest
    return Manifest(entries=manifest.entries, collection=collection)


def _document_url(manifest: Manifest, service: str, type_: str, template: str) -> str:
    """The archive's page of the document when the collection is known, else ``ota:...``."""
    if manifest.collection and "/commit/" in template and "{collection}" in template:
        base = template.split("/commit/", 1)[0].format(collection=manifest.collection)
        return f"{base}/blob/main/{quote(service)}/{quote(type_)}.md"
    return f"ota:{service}/{type_}"
