"""One check of one document, end to end: analysis first, then one short write transaction.

The slow part of a check (extracting the page, diffing it with the last version, classifying and
building the report) runs on a read-only session *before* the write transaction opens
(:func:`analyse_fetch`); the transaction then only writes what the analysis found. On SQLite,
where a write transaction locks the whole database, other writers (subscribe, the daemon's
heartbeat, web unsubscribes) are never held up by a long diff. Claims keep two checks of one
document apart; the transaction still checks that the last version is the one the analysis
compared with, and redoes the comparison if it is not.

Decides, in one place, what a fetch means: ``first`` (a baseline version), ``unchanged`` (the
same page but for its per-request tokens, a 304, or the same extracted text), ``changed`` (a new
version and its change record) or ``failed`` (nothing usable came back: the reason is recorded,
never a version). Each document's failure is isolated: one bad page never stops the others.

A text far shorter than the last version, or one holding a site's error message where a page of
the document should be ("An unexpected error has occurred"), is refused like a failed fetch until
it stays: a part that failed to load is not a removal, and its return is not an addition.

Variant flips: a page that returns to a text already seen is recorded as a version, but its change
is reported at the severity the history allows (usually cosmetic). If it then *stays* for
``SETTLE_AFTER``, the tracker reports it in full against the last reported version: a revert that
sticks is news, a page alternating between variants is not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from monitor import noise
from monitor.clauses import ChangeReport, Clause, severity_rank
from monitor.clock import utcnow
from monitor.errors import ExtractError, FetchError
from monitor.extract import Extraction, Selector, clauses_to_text, extract_clauses
from monitor.fetcher import Fetcher, FetchResult
from monitor.markup import strip_hidden_blocks
from monitor.models import Change, Check, Document, Version
from monitor.store import history as store
from monitor.urls import mask_credentials

log = logging.getLogger("monitor.tracker")

HISTORY_DEPTH = 40
"""How many earlier distinct texts the report builder sees to recognise variant flips."""
RECURRING_DEPTH = 60
"""How many recent versions (repeats included) show whether a settled text's wording comes and
goes (a recurring variant, not reported) or was changed once (reported)."""
SETTLE_AFTER = timedelta(days=3)
"""How long a page must stay at a returned-to text before the return is reported in full."""
SHRINK_RATIO = 0.3
"""A new text shorter than this share of the last version is treated as an error page."""
SHRINK_MIN_CHARS = 1000
SHRINK_CONFIRMATIONS = 3
"""A much shorter text is accepted once the same text came back this many checks in a row: a
page that really got shorter is not refused for ever."""
ERROR_SCAN = 200
"""How many recent checks are read to see how long a text with an error message has stayed."""


_TOKEN_NAMES = (
    b"nonce",
    b"value",
    b"content",
    b"href",
    b"src",
    b"srcset",
    b"action",
    b"style",
    b"integrity",
)
_TOKEN_VALUE = rb"""(?:"[^"]*"|'[^']*'|[^\s>]+)"""
# Both expressions start with a literal ("=", "data-"), which the engine looks for at C speed;
# written as "\s(?:nonce|...)\s*=" the match began at every white space of the page, 0.5 ms
# a 100 KB page. A value written with spaces around its "=" stays in: a page written so only
# looks changed to the fingerprint, and its text decides.
# The first look-behind (the names' last letters) turns most "=" away with one test instead of
# nine: half the cost of the scan.
_TOKEN_ATTRIBUTES = re.compile(
    b"=(?<=["
    + bytes(sorted({name[-1] for name in _TOKEN_NAMES}))
    + b"]=)(?:"
    + b"|".join(b"(?<=\\s" + name + b"=)" for name in _TOKEN_NAMES)
    + b")"
    + _TOKEN_VALUE
)
_DATA_ATTRIBUTES = re.compile(rb"data-[\w.:-]+=" + _TOKEN_VALUE)
TAG_REACH = 4096
"""How far back from an attribute-like match its tag's "<" is looked for."""


def _unless_text(match: re.Match[bytes]) -> bytes:
    """Nothing for an attribute inside a tag; the match itself when it is text a reader sees (a
    policy quoting ``<meta name="robots" content="noai">``: its example must count)."""
    raw, at = match.string, match.start()
    reach = max(0, at - TAG_REACH)
    return b"" if raw.rfind(b"<", reach, at) > raw.rfind(b">", reach, at) else match.group(0)


def page_fingerprint(raw: bytes, media_type: str) -> str:
    """A hash of what can change the extracted text, computed without parsing.

    Real pages carry per-request tokens (nonces, csrf values, tracking links, inline JSON), so
    their raw bytes differ on every fetch. Scripts, styles, comments and the values of the
    attributes that carry such tokens (inside tags, not the same words in the text) cannot
    change the extracted text, so they are left out; when this fingerprint matches the last
    one, the check is over without extracting anything. Attributes that can change what is
    selected (id, class, hidden, role) stay in.
    """
    if "html" in media_type:
        raw = _DATA_ATTRIBUTES.sub(
            _unless_text, _TOKEN_ATTRIBUTES.sub(_unless_text, strip_hidden_blocks(raw))
        )
    return hashlib.sha256(raw).hexdigest()


NOISY_MARK = "noisy:"
"""A document's ``page_fingerprint`` is ``noisy:<n>`` once its fingerprint differed at a check
whose extracted text did not: its visible text changes at every request (a "generated in 0.2 s"
footer, a rotating banner), so the fingerprint would only differ again. Its next checks extract
the page straight away without computing it (``n`` counts them); the text decides, as before."""
NOISY_PROBE_AFTER = 8
"""After this many such checks one computes the fingerprint again and keeps it, so that a page
that calmed down goes back to the fingerprint shortcut at the check after."""


def noisy_checks(stored: str | None) -> int | None:
    """How many checks in a row skipped the fingerprint of a noisy page (see ``NOISY_MARK``);
    None when ``stored`` is a fingerprint (or nothing)."""
    if stored is None or not stored.startswith(NOISY_MARK):
        return None
    count = stored[len(NOISY_MARK) :]
    return int(count) if count.isdigit() else 0


def content_key(digest: str, text_hash: str) -> str:
    """What a document keeps as its ``content_digest``: the digest of a parsed page
    (``Extraction.digest``) bound to the hash of the text it was extracted to, so that it can
    only vouch for that text, whatever changed the current version since."""
    return hashlib.sha256(f"{digest} {text_hash}".encode()).hexdigest()


CheckOutcome = Literal["first", "unchanged", "changed", "failed", "skipped"]
"""What one check found: a baseline, nothing, a change, a failure; skipped when a running daemon
held the document at that moment."""
CHECK_OUTCOMES: tuple[CheckOutcome, ...] = ("first", "unchanged", "changed", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check of one document found, for the CLI, the logs and the daemon."""

    document_id: str
    outcome: CheckOutcome
    detail: str = ""
    change_id: int | None = None
    severity: str | None = None
    http_status: int | None = None
    duration: float = 0.0
    blocked: bool = False

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "document": self.document_id,
            "outcome": self.outcome,
            "detail": self.detail,
            "duration": round(self.duration, 3),
        }
        if self.http_status is not None:
            data["http_status"] = self.http_status
        if self.change_id is not None:
            data["change_id"] = self.change_id
            data["severity"] = self.severity
        if self.outcome == "failed":
            data["blocked"] = self.blocked
        return data


def interval_or(default: timedelta) -> Callable[[Document], timedelta]:
    """A document's own check interval, else ``default`` (no jitter)."""

    def pick(document: Document) -> timedelta:
        seconds = document.interval_seconds
        return timedelta(seconds=seconds) if seconds else default

    return pick


def build_report(*args: Any, **kwargs: Any) -> ChangeReport:
    """``monitor.report.build_report``, imported at the first change: a cycle in which nothing
    changed never loads the report stack (differ, classifier, taxonomy)."""
    from monitor.report import build_report as build

    return build(*args, **kwargs)


def parse_version(text: str) -> list[Clause]:
    """The clauses of a stored version (stored as canonical Markdown)."""
    return extract_clauses(text, media_type="text/markdown")


_PARSED: OrderedDict[str, list[Clause]] = OrderedDict()
_PARSED_MAX = 2 * HISTORY_DEPTH
_PARSED_LOCK = threading.Lock()


def version_clauses(session: Session, version: Version) -> list[Clause]:
    """The clauses of a stored version, parsed once per text (a small LRU keyed by text hash)."""
    with _PARSED_LOCK:
        clauses = _PARSED.get(version.text_hash)
        if clauses is not None:
            _PARSED.move_to_end(version.text_hash)
            return clauses
    clauses = parse_version(store.version_text(session, version))
    with _PARSED_LOCK:
        _PARSED[version.text_hash] = clauses
        if len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return clauses


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a fetched page means, worked out before the write transaction opens."""

    based_on: int | None
    """The document's current version when analysed (the report compares with it)."""
    clauses: tuple[Clause, ...] = ()
    error: str | None = None
    """Why extraction failed (then nothing else is set)."""
    report: ChangeReport | None = None
    suppressed: bool = False
    """The report only flips back to a variant seen before: hold it until it settles."""
    fingerprint: str | None = None
    """The fetched page's fingerprint (the write transaction does not compute it again)."""
    text: str | None = None
    """The canonical text of ``clauses`` (nor this)."""
    digest: str | None = None
    """The digest of the parsed page (``Extraction.digest``), kept with the text it gave."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the quiet path of a cycle worked out about a page it could not settle (its text
    differs, or extraction failed): the full path starts from it instead of doing it again."""

    select: list[Any]
    remove: list[Any]
    """The document's rules it was extracted with (used only while they are the same)."""
    fingerprint: str | None = None
    clauses: tuple[Clause, ...] | None = None
    text: str | None = None
    digest: str | None = None
    error: str | None = None
    """Why extraction failed."""


def analyse_fetch(
    session: Session,
    document: Document,
    fetched: FetchResult,
    *,
    prepared: Prepared | None = None,
) -> Analysis | None:
    """Extract, diff and classify a fetched page without writing; None if nothing needs it.

    Reads only (the last versions); safe to run outside the write transaction. ``prepared``:
    what the cycle's quiet path already found about this fetch.
    """
    if fetched.not_modified:
        return None
    if prepared is not None and (
        prepared.select != document.select or prepared.remove != document.remove
    ):
        prepared = dataclasses.replace(prepared, clauses=None, text=None, digest=None, error=None)
    fingerprint = (
        prepared.fingerprint
        if prepared is not None and prepared.fingerprint is not None
        else page_fingerprint(fetched.content, fetched.media_type)
    )
    if fingerprint == document.page_fingerprint and document.current_version_id is not None:
        return None
    failed = prepared.error if prepared is not None else None
    clauses = prepared.clauses if prepared is not None else None
    digest = prepared.digest if prepared is not None else None
    if failed is None and clauses is None:
        try:
            page = _read(fetched, select=document.select, remove=document.remove)
            digest = page.digest()
            clauses = tuple(page.clauses())
        except ExtractError as exc:
            failed = str(exc)
    if failed is not None or clauses is None:
        error = f"{failed} ({document.url})"
        return Analysis(document.current_version_id, error=error, fingerprint=fingerprint)
    text = prepared.text if prepared is not None and prepared.clauses is clauses else None
    analysis = analyse_text(session, document, clauses, text=text)
    return dataclasses.replace(analysis, fingerprint=fingerprint, digest=digest)


def analyse_text(
    session: Session, document: Document, clauses: Sequence[Clause], *, text: str | None = None
) -> Analysis:
    """Compare extracted clauses with the document's current version (reads only); ``text``:
    their canonical text, when already made."""
    clauses = tuple(clauses)
    if text is None:
        text = clauses_to_text(clauses)
    current = store.current_version(session, document)
    if current is None:
        return Analysis(None, clauses, text=text)
    if store.content_hash(text.encode("utf-8")) == current.text_hash:
        return Analysis(current.id, clauses, text=text)
    report, suppressed = _compare(session, document, current, clauses)
    return Analysis(current.id, clauses, report=report, suppressed=suppressed, text=text)


def _compare(
    session: Session,
    document: Document,
    old: Version,
    clauses: Sequence[Clause],
    *,
    folded: Version | None = None,
    new: Version | None = None,
) -> tuple[ChangeReport, bool]:
    """The report from ``old`` to ``clauses``, and whether it only flips back to a variant.

    ``folded``: ``old`` is the last reported version and the returned-to text that settled since
    is included in this change (its recent history tells recurring wordings apart)."""
    old_clauses = version_clauses(session, old)
    earlier = [
        version_clauses(session, v)
        for v in store.distinct_earlier_versions(
            session, document.id, before_id=old.id, limit=HISTORY_DEPTH
        )
        if v.text_hash != old.text_hash
    ]
    name = f"{document.service} {document.type}"
    run = []
    if folded is not None:
        recent = store.recent_versions(session, document.id, limit=RECURRING_DEPTH)
        run = [
            version_clauses(session, v) for v in reversed(recent) if new is None or v.id != new.id
        ]
    report = build_report(old_clauses, clauses, document_name=name, history=earlier, recurring=run)
    if folded is not None:
        report = dataclasses.replace(
            report,
            notes=(
                f"Compared with the last version we reported ({folded.seen_at:%Y-%m-%d}); the "
                "page showed another text in between, which this change includes.",
                *report.notes,
            ),
        )
    if earlier and severity_rank(report.severity) < severity_rank("medium"):
        plain = build_report(old_clauses, clauses, document_name=name)
        return report, severity_rank(plain.severity) >= severity_rank("medium")
    return report, False


def record_fetch(
    session: Session,
    document: Document,
    fetched: FetchResult | FetchError,
    *,
    now: datetime,
    duration: float,
    interval: timedelta,
    worker: str | None = None,
    notify: bool = True,
    analysis: Analysis | None = None,
) -> CheckResult:
    """Record what a fetch of ``document`` returned (a FetchResult or a FetchError).

    The caller commits. Nothing is written for a failed fetch but the check row and the failure
    counters; a new version is written only for a successful, plausible extraction. ``analysis``
    (from :func:`analyse_fetch`, made before the transaction) saves extracting and comparing
    here; without it, or when the document moved on since, the work is done here.
    """
    store.schedule_next(document, now=now, interval=interval)
    if isinstance(fetched, FetchError):
        return _record_failure(
            session,
            document,
            str(fetched),
            now=now,
            duration=duration,
            worker=worker,
            status=fetched.status,
            blocked=fetched.blocked,
        )
    status = fetched.status
    if fetched.not_modified:
        return _record_unchanged(
            session,
            document,
            "not modified (304)",
            now=now,
            duration=duration,
            worker=worker,
            status=status,
        )
    raw = fetched.content
    fingerprint = (
        analysis.fingerprint
        if analysis is not None and analysis.fingerprint is not None
        else page_fingerprint(raw, fetched.media_type)
    )
    document.etag = fetched.etag
    document.last_modified = fetched.last_modified
    if fingerprint == document.page_fingerprint and document.current_version_id is not None:
        return _record_unchanged(
            session,
            document,
            "same page",
            now=now,
            duration=duration,
            worker=worker,
            status=status,
            fingerprint=fingerprint,
        )
    if analysis is None or analysis.based_on != document.current_version_id:
        analysis = analyse_fetch(session, document, fetched)
    if analysis is None:  # cannot happen: the fingerprint differs (checked above)
        analysis = Analysis(document.current_version_id, error="nothing to analyse")
    if analysis.error is not None:
        return _record_failure(
            session,
            document,
            mask_credentials(analysis.error),
            now=now,
            duration=duration,
            worker=worker,
            status=status,
            blocked=True,
        )
    result = record_text(
        session,
        document,
        analysis.clauses,
        raw=raw,
        now=now,
        duration=duration,
        worker=worker,
        status=status,
        notify=notify,
        analysis=analysis,
    )
    if result.outcome != "failed":
        document.page_fingerprint = fingerprint
        if analysis.digest is not None and analysis.text is not None:
            text_hash = store.content_hash(analysis.text.encode("utf-8"))
            document.content_digest = content_key(analysis.digest, text_hash)
    return result


def record_text(
    session: Session,
    document: Document,
    clauses: Sequence[Clause],
    *,
    raw: bytes | None,
    now: datetime,
    duration: float = 0.0,
    worker: str | None = None,
    status: int | None = None,
    notify: bool = True,
    source: str = "check",
    analysis: Analysis | None = None,
) -> CheckResult:
    """Record an extracted text seen at ``now``: unchanged, a baseline, or a change.

    A text far shorter than the last version is taken for an error page (archives hold those
    too) and recorded as a failed check, never a version. ``analysis``: the comparison made
    before the transaction, used when it was made against the current version.
    """
    if analysis is not None and analysis.clauses is clauses and analysis.text is not None:
        text = analysis.text
    else:
        text = clauses_to_text(clauses)
    current = store.current_version(session, document)
    folded: Version | None = None
    if current is not None and store.content_hash(text.encode("utf-8")) == current.text_hash:
        return _record_unchanged(
            session,
            document,
            "same text",
            now=now,
            duration=duration,
            worker=worker,
            status=status,
            version_id=current.id,
            notify=notify,
        )

    def refuse(reason: str) -> CheckResult:
        return _record_failure(
            session,
            document,
            reason,
            now=now,
            duration=duration,
            worker=worker,
            status=status,
            blocked=True,
            fingerprint=_refused_text_mark(text),
        )

    if current is not None:
        old_text = store.version_text(session, current)
        if far_shorter(text, old_text) and not _shrink_confirmed(session, document, text):
            return refuse(
                f"extracted text is {len(text)} characters, {100 * len(text) // len(old_text)}% "
                f"of the last version's {len(old_text)}: probably an error or block page "
                f"(accepted if it stays for {SHRINK_CONFIRMATIONS} checks in a row)"
            )
    failed_part = _error_notice(clauses)
    if (
        failed_part is not None
        and (current is None or _error_notice(version_clauses(session, current)) is None)
        and not _error_confirmed(session, document, text, now=now)
    ):
        return refuse(
            f"part of the page is an error message ({failed_part!r}): a page of the document "
            f"probably failed to load (accepted if it stays {SETTLE_AFTER.days} days and "
            f"{SHRINK_CONFIRMATIONS} checks in a row)"
        )
    if current is not None:
        # a returned-to text that stuck is folded into this change: one change, not two at once
        folded = _matured_baseline(session, document, now=now)
    version = store.add_version(
        session,
        document,
        text=text,
        raw=raw,
        clause_count=len(clauses),
        seen_at=now,
        source=source,
    )
    store.record_success(document, now=now)
    if current is None:
        document.reported_version_id = version.id
        _add_check(session, document, "first", now, duration, worker, status, version.id)
        return CheckResult(
            document.id,
            "first",
            f"baseline recorded ({len(clauses)} clauses)",
            http_status=status,
            duration=duration,
        )
    if (
        folded is None
        and analysis is not None
        and analysis.based_on == current.id
        and analysis.report is not None
    ):
        report, suppressed = analysis.report, analysis.suppressed
    else:  # no analysis, the document moved on since, or a settled return is folded in
        report, suppressed = _compare(
            session, document, folded or current, clauses, folded=folded, new=version
        )
    if suppressed:
        document.settling_version_id = version.id
    else:
        document.reported_version_id = version.id
        document.settling_version_id = None
    change = _record_change(
        session,
        document,
        old=folded or current,
        new=version,
        report=report,
        now=now,
        source=source,
        notify=notify,
    )
    _add_check(session, document, "changed", now, duration, worker, status, version.id)
    return CheckResult(
        document.id,
        "changed",
        report.summary,
        change_id=change.id,
        severity=report.severity,
        http_status=status,
        duration=duration,
    )


def settle(
    session: Session, document: Document, *, now: datetime, notify: bool = True
) -> int | None:
    """Report a returned-to text in full once it has stayed ``SETTLE_AFTER``; the change id."""
    pair = _settled_pair(session, document, now=now)
    if pair is None:
        return None
    baseline, settled = pair
    document.settling_version_id = None
    document.reported_version_id = settled.id
    if settled.text_hash == baseline.text_hash:
        return None
    report = _settle_report(session, document, baseline, settled)
    if severity_rank(report.severity) < severity_rank("medium"):
        return None
    since = settled.seen_at.strftime("%Y-%m-%d")
    report = dataclasses.replace(
        report,
        notes=(
            f"The page returned to an earlier text on {since} and has kept it since; "
            "this compares it with the last version we reported.",
            *report.notes,
        ),
    )
    change = _record_change(
        session,
        document,
        old=baseline,
        new=settled,
        report=report,
        now=now,
        source="settled",
        notify=notify,
    )
    return change.id


_SETTLE_REPORTS: OrderedDict[tuple[str, str, str], ChangeReport] = OrderedDict()
_SETTLE_LOCK = threading.Lock()


def _settle_report(
    session: Session, document: Document, baseline: Version, settled: Version
) -> ChangeReport:
    """The report from ``baseline`` to ``settled``, kept a while: :func:`prepare_settle` builds
    it before the write transaction, :func:`settle` then finds it ready."""
    name = f"{document.service} {document.type}"
    key = (baseline.text_hash, settled.text_hash, name)
    with _SETTLE_LOCK:
        report = _SETTLE_REPORTS.get(key)
    if report is None:
        run = store.recent_versions(
            session, document.id, limit=RECURRING_DEPTH, before_id=settled.id
        )
        shown = store.distinct_earlier_versions(
            session, document.id, before_id=baseline.id, limit=HISTORY_DEPTH
        )
        report = build_report(
            version_clauses(session, baseline),
            version_clauses(session, settled),
            document_name=name,
            recurring=[version_clauses(session, v) for v in reversed(run)],
            shown_before=[
                version_clauses(session, v) for v in shown if v.text_hash != baseline.text_hash
            ],
        )
        with _SETTLE_LOCK:
            _SETTLE_REPORTS[key] = report
            while len(_SETTLE_REPORTS) > 16:
                _SETTLE_REPORTS.popitem(last=False)
    return report


def prepare_settle(session: Session, document: Document, *, now: datetime) -> None:
    """Build, without writing, the report :func:`settle` will need at ``now`` (if any)."""
    pair = _settled_pair(session, document, now=now, tidy=False)
    if pair is None:
        return
    baseline, settled = pair
    if settled.text_hash != baseline.text_hash:
        _settle_report(session, document, baseline, settled)


def _matured_baseline(session: Session, document: Document, *, now: datetime) -> Version | None:
    """When a returned-to text has stayed ``SETTLE_AFTER`` and a new text arrives: the last
    reported version, to compare the new text with in one change (``settle`` would report the
    return, then the new text, as two changes at the same moment). None otherwise."""
    pair = _settled_pair(session, document, now=now)
    if pair is None:
        return None
    document.settling_version_id = None
    return pair[0]


def _settled_pair(
    session: Session, document: Document, *, now: datetime, tidy: bool = True
) -> tuple[Version, Version] | None:
    """(last reported version, returned-to version) once the page has shown the returned-to
    text for ``SETTLE_AFTER``; None otherwise. ``tidy`` forgets a returned-to text the page
    has moved on from (the write transaction does; the read-only analysis does not)."""
    if document.settling_version_id is None or document.reported_version_id is None:
        return None
    if document.current_version_id != document.settling_version_id:
        if tidy:
            document.settling_version_id = None
        return None
    settled = session.get(Version, document.settling_version_id)
    baseline = session.get(Version, document.reported_version_id)
    if settled is None or baseline is None or now - settled.seen_at < SETTLE_AFTER:
        return None
    return baseline, settled


def _error_notice(clauses: Sequence[Clause]) -> str | None:
    """The first clause that is a site's error message, if any (see ``noise.is_error_notice``)."""
    return next((c.text for c in clauses if noise.is_error_notice(c.text)), None)


def _read(
    fetched: FetchResult, *, select: Sequence[Selector], remove: Sequence[Selector]
) -> Extraction:
    """A fetched page read under the document's selectors (ExtractError if it cannot be)."""
    return Extraction(
        fetched.content,
        media_type=fetched.media_type,
        select=select,
        remove=remove,
        charset=fetched.charset,
    )


def far_shorter(text: str, old_text: str) -> bool:
    """Is ``text`` so much shorter than the version before that it is probably an error, block
    or redirect page rather than the document?"""
    return len(old_text) >= SHRINK_MIN_CHARS and len(text) < SHRINK_RATIO * len(old_text)


def _refused_text_mark(text: str) -> str:
    return "shrunk:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:56]


def _shrink_confirmed(session: Session, document: Document, text: str) -> bool:
    """True when the previous checks all refused this same shorter text (this is the last one)."""
    mark = _refused_text_mark(text)
    earlier = store.last_checks(session, document.id, limit=SHRINK_CONFIRMATIONS - 1)
    return len(earlier) == SHRINK_CONFIRMATIONS - 1 and all(
        check.page_fingerprint == mark for check in earlier
    )


def _error_confirmed(session: Session, document: Document, text: str, *, now: datetime) -> bool:
    """True when the checks of the last ``SETTLE_AFTER`` (at least ``SHRINK_CONFIRMATIONS - 1``
    of them) all refused this same text with an error message: the page has stayed that way."""
    mark = _refused_text_mark(text)
    refused = []
    for check in store.last_checks(session, document.id, limit=ERROR_SCAN):
        if check.page_fingerprint != mark:
            break
        refused.append(check)
    return len(refused) >= SHRINK_CONFIRMATIONS - 1 and now - refused[-1].checked_at >= SETTLE_AFTER


def _record_change(
    session: Session,
    document: Document,
    *,
    old: Version,
    new: Version,
    report: ChangeReport,
    now: datetime,
    source: str,
    notify: bool,
) -> Change:
    """Store a change record and, unless importing, its outbox rows in the same transaction."""
    change = store.add_change(
        session, document, old=old, new=new, report=report, detected_at=now, source=source
    )
    document.last_change_at = now
    if notify:
        from monitor.outbox import enqueue_change

        enqueue_change(session, change, document, now=now)
    return change


def _add_check(
    session: Session,
    document: Document,
    outcome: str,
    now: datetime,
    duration: float,
    worker: str | None,
    status: int | None,
    version_id: int | None = None,
    *,
    error: str | None = None,
    fingerprint: str | None = None,
) -> None:
    store.add_check(
        session,
        Check(
            document_id=document.id,
            checked_at=now,
            duration=duration,
            outcome=outcome,
            http_status=status,
            error=error,
            page_fingerprint=fingerprint,
            version_id=version_id,
            worker=worker,
        ),
    )


def _record_unchanged(
    session: Session,
    document: Document,
    detail: str,
    *,
    now: datetime,
    duration: float,
    worker: str | None,
    status: int | None,
    fingerprint: str | None = None,
    version_id: int | None = None,
    notify: bool = True,
) -> CheckResult:
    store.record_success(document, now=now)
    current = store.current_version(session, document)
    if current is not None:
        current.last_seen_at = now
        settle(session, document, now=now, notify=notify)
    _add_check(
        session,
        document,
        "unchanged",
        now,
        duration,
        worker,
        status,
        version_id or document.current_version_id,
        fingerprint=fingerprint,
    )
    return CheckResult(document.id, "unchanged", detail, http_status=status, duration=duration)


def _record_failure(
    session: Session,
    document: Document,
    error: str,
    *,
    now: datetime,
    duration: float,
    worker: str | None,
    status: int | None,
    blocked: bool,
    fingerprint: str | None = None,
) -> CheckResult:
    store.record_failure(document, error=error, now=now)
    _add_check(
        session,
        document,
        "blocked" if blocked else "failed",
        now,
        duration,
        worker,
        status,
        error=error,
        fingerprint=fingerprint,
    )
    return CheckResult(
        document.id, "failed", error, http_status=status, duration=duration, blocked=blocked
    )


async def check_documents(
    document_ids: Sequence[str],
    *,
    sessions: sessionmaker[Session],
    fetcher: Fetcher,
    interval_for: Callable[[Document], timedelta],
    now: Callable[[], datetime] = utcnow,
    worker: str | None = None,
    concurrency: int = 8,
    notify: bool = True,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Check documents concurrently (the fetcher keeps it polite per host); one transaction each.

    Results come back in the order of ``document_ids``. An unexpected error in one document is
    recorded as a failed check and logged; it never stops the others.
    """
    gate = asyncio.Semaphore(concurrency)
    with sessions() as session:
        targets = {doc.id: doc for doc in store.get_documents(session, document_ids)}
        text_hashes = store.current_text_hashes(session, document_ids)

    async def one(document_id: str) -> CheckResult:
        target = targets.get(document_id)
        if target is None:
            return CheckResult(document_id, "failed", "unknown document")
        has_version = target.current_version_id is not None
        async with gate:
            started = time.perf_counter()
            try:
                fetched: FetchResult | FetchError = await fetcher.fetch(
                    target.url,
                    etag=target.etag if has_version else None,
                    last_modified=target.last_modified if has_version else None,
                    render=target.render,
                )
            except FetchError as exc:
                fetched = exc
            duration = time.perf_counter() - started
            result = quiet.offer(
                target,
                fetched,
                now=now(),
                duration=duration,
                interval_for=interval_for,
                worker=worker,
            ) or await _analyse_then_record(
                sessions,
                document_id,
                fetched,
                now=now,
                duration=duration,
                interval_for=interval_for,
                worker=worker,
                notify=notify,
                prepared=quiet.prepared.pop(document_id, None),
            )
            log.info(
                "check %s %s %.2fs%s",
                document_id,
                result.outcome,
                result.duration,
                f" {result.detail}" if result.outcome != "unchanged" else "",
                extra={"document": document_id, "outcome": result.outcome, "duration": duration},
            )
            if on_result is not None:
                on_result(result)
            return result

    quiet = QuietChecks(sessions, [], text_hashes)
    try:
        return list(await asyncio.gather(*(one(d) for d in document_ids)))
    finally:
        quiet.flush()


@dataclass
class QuietChecks:
    """Healthy unchanged checks waiting to be written together (the common case of a cycle).

    A document whose page differs from the last one only by its per-request tokens (or that
    answered 304) needs no extraction and no decision. One whose visible text changes at every
    request (a "generated in 0.2 s" footer, a rotating banner) is extracted (without computing
    its fingerprint once it is known to be such a page: ``NOISY_MARK``), and when the hash of
    its text is its current version's (``text_hashes``, read for the whole cycle in one query)
    nothing else is needed either. Their check rows and timestamps are written in batches
    of ``BATCH`` with three statements, instead of a transaction per document. A crash before a
    flush loses only those check rows; the documents are then simply due again.
    """

    sessions: sessionmaker[Session]
    pending: list[store.UnchangedCheck]
    text_hashes: dict[str, str] = dataclasses.field(default_factory=dict)
    """Document id -> text hash of its current version (as the cycle began)."""
    prepared: dict[str, Prepared] = dataclasses.field(default_factory=dict)
    """Document id -> what ``offer`` found about a page it handed to the full path."""

    BATCH = 200

    def offer(
        self,
        target: Document,
        fetched: FetchResult | FetchError,
        *,
        now: datetime,
        duration: float,
        interval_for: Callable[[Document], timedelta],
        worker: str | None,
    ) -> CheckResult | None:
        """Queue the check if it is quietly unchanged; None when it needs the full path."""
        if (
            isinstance(fetched, FetchError)
            or target.current_version_id is None
            or target.consecutive_failures
            or target.settling_version_id is not None
        ):
            return None
        not_modified = fetched.not_modified
        fingerprint = None  # computed for this check (on its row)
        keep = None  # what the document keeps (None: its own)
        digest = None  # the content digest it keeps (None: its own)
        detail = "not modified (304)" if not_modified else "same page"
        if not not_modified:
            stored = target.page_fingerprint
            skipped = noisy_checks(stored)
            if skipped is not None and skipped < NOISY_PROBE_AFTER:
                # a noisy page: its fingerprint would differ again; only the text can tell
                same, digest = self._same_text(target, fetched, None)
                if not same:
                    return None
                detail = "same text"
                keep = f"{NOISY_MARK}{skipped + 1}"
            else:
                fingerprint = keep = page_fingerprint(fetched.content, fetched.media_type)
                if fingerprint != stored:
                    same, digest = self._same_text(target, fetched, fingerprint)
                    if not same:
                        return None
                    detail = "same text"
                    if stored is not None and skipped is None:
                        keep = f"{NOISY_MARK}0"  # the same text behind another page: noisy
        status = fetched.status
        self.pending.append(
            store.UnchangedCheck(
                document_id=target.id,
                version_id=target.current_version_id,
                checked_at=now,
                next_check_at=now + interval_for(target),
                duration=duration,
                http_status=status,
                fingerprint=fingerprint,
                page_fingerprint=keep,
                content_digest=digest,
                etag=target.etag if not_modified else fetched.etag,
                last_modified=(target.last_modified if not_modified else fetched.last_modified),
                worker=worker,
            )
        )
        if len(self.pending) >= self.BATCH:
            self.flush()
        return CheckResult(target.id, "unchanged", detail, http_status=status, duration=duration)

    def _same_text(
        self, target: Document, fetched: FetchResult, fingerprint: str | None
    ) -> tuple[bool, str | None]:
        """Whether the page's extracted text is its current version's (False when unsure: the
        full path then decides, and records an extraction failure as such), and the content
        digest the document keeps then (None: the one it has). A page whose parsed content is
        what the current text was last extracted from (the document's ``content_digest``) is
        not walked again. What it found otherwise waits in ``prepared`` for the full path."""
        prepared = Prepared(list(target.select), list(target.remove), fingerprint)
        self.prepared[target.id] = prepared
        expected = self.text_hashes.get(target.id)
        if expected is None:
            return False, None
        try:
            page = _read(fetched, select=target.select, remove=target.remove)
            digest = page.digest()
            if digest is not None and target.content_digest == content_key(digest, expected):
                del self.prepared[target.id]
                return True, None
            clauses = tuple(page.clauses())
        except ExtractError as exc:
            self.prepared[target.id] = dataclasses.replace(prepared, error=str(exc))
            return False, None
        text = clauses_to_text(clauses)
        if store.content_hash(text.encode("utf-8")) == expected:
            del self.prepared[target.id]
            return True, None if digest is None else content_key(digest, expected)
        self.prepared[target.id] = dataclasses.replace(
            prepared, clauses=clauses, text=text, digest=digest
        )
        return False, None

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        with self.sessions.begin() as session:
            store.record_unchanged_checks(session, batch)


async def _analyse_then_record(
    sessions: sessionmaker[Session],
    document_id: str,
    fetched: FetchResult | FetchError,
    *,
    now: Callable[[], datetime],
    duration: float,
    interval_for: Callable[[Document], timedelta],
    worker: str | None,
    notify: bool,
    prepared: Prepared | None = None,
) -> CheckResult:
    """Analyse in a worker thread (the event loop and the database stay free), then record."""
    analysis: Analysis | None = None
    if isinstance(fetched, FetchResult):
        try:
            analysis = await asyncio.to_thread(
                _analyse, sessions, document_id, fetched, now(), prepared
            )
        except Exception:  # recorded below, where the analysis is redone and fails again
            log.exception("analysis of %s failed unexpectedly", document_id)
    return _record_in_transaction(
        sessions,
        document_id,
        fetched,
        now=now(),
        duration=duration,
        interval_for=interval_for,
        worker=worker,
        notify=notify,
        analysis=analysis,
    )


def _analyse(
    sessions: sessionmaker[Session],
    document_id: str,
    fetched: FetchResult,
    now: datetime,
    prepared: Prepared | None = None,
) -> Analysis | None:
    """The analysis of a fetched page on a read-only session (no write lock is taken)."""
    with sessions() as session:
        document = store.get_document(session, document_id)
        if document is None:
            return None
        prepare_settle(session, document, now=now)
        analysis = analyse_fetch(session, document, fetched, prepared=prepared)
        session.rollback()
        return analysis


def _record_in_transaction(
    sessions: sessionmaker[Session],
    document_id: str,
    fetched: FetchResult | FetchError,
    *,
    now: datetime,
    duration: float,
    interval_for: Callable[[Document], timedelta],
    worker: str | None,
    notify: bool,
    analysis: Analysis | None = None,
) -> CheckResult:
    try:
        with sessions.begin() as session:
            document = store.get_document(session, document_id)
            if document is None:
                return CheckResult(document_id, "failed", "unknown document")
            return record_fetch(
                session,
                document,
                fetched,
                now=now,
                duration=duration,
                interval=interval_for(document),
                worker=worker,
                notify=notify,
                analysis=analysis,
            )
    except Exception as exc:  # isolate the unexpected; the daemon must live on
        log.exception("check of %s failed unexpectedly", document_id)
        reason = f"internal error while recording the check: {type(exc).__name__}: {exc}"
        with sessions.begin() as session:
            document = store.get_document(session, document_id)
            if document is not None:
                store.schedule_next(document, now=now, interval=interval_for(document))
                _record_failure(
                    session,
                    document,
                    reason,
                    now=now,
                    duration=duration,
                    worker=worker,
                    status=None,
                    blocked=False,
                )
        return CheckResult(document_id, "failed", reason, duration=duration)
