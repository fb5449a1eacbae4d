"""The read-only web history: a path and query in, a complete response out.

Routes (all GET; nothing here writes)::

    /                                   platforms and their latest important changes
    /services/<slug>                    one platform: its documents and their changes
    /documents/<id>?min_severity=...    one document: timeline of changes, failures as incidents
    /documents/<id>/at/<YYYY-MM-DD>     the text in force on that day
    /changes/<id>                       one change: headline, annotations, side-by-side diff
    /versions/<id>/raw                  the raw snapshot a version was extracted from (as text)
    /stance                             where platforms stand on each AI / licence topic
    /feeds/all.atom                     Atom feeds (also /feeds/services/<slug>.atom,
                                        /feeds/documents/<id>.atom, /feeds/topics/<LABEL>.atom),
                                        each with ?min_severity=...
    /static/site.css                    the one stylesheet (the CSP allows no inline style)
    /api/documents                      JSON, as `tosmon documents --json`
    /api/documents/<id>/history         as `tosmon history ID --json` (?min_severity=)
    /api/changes                        as `tosmon changes --json` (?since= &service= &topic=
                                        &min_severity= &limit=, repeatable service and topic)
    /api/changes/<id>                   one change record with its clauses
    /api/stance                         where platforms stand, as data

Everything shown comes from hostile pages: templates autoescape, the raw snapshot is served as
``text/plain`` with ``nosniff``, and the Content-Security-Policy allows no script at all.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from sqlalchemy.orm import Session, sessionmaker

from monitor import feeds, render
from monitor.api import Monitor, to_json
from monitor.clauses import SEVERITIES, severity_rank
from monitor.clock import parse_instant, utcnow
from monitor.config import Config, slugify
from monitor.errors import ArgumentError, MonitorError
from monitor.store import browse
from monitor.store import history as history_store
from monitor.store import mail as mail_store
from monitor.tracker import version_clauses

DEFAULT_MIN_SEVERITY = "medium"
TIMELINE_LIMIT = 300
CACHE_SIZE = 256
API_LIMIT = 500
SITE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NotFound(Exception):
    message: str


def _levels(minimum: str) -> list[str]:
    return [s for s in SEVERITIES if severity_rank(s) >= severity_rank(minimum)]


def _min_severity(query: dict[str, list[str]]) -> str:
    value = query.get("min_severity", [DEFAULT_MIN_SEVERITY])[0]
    if value not in SEVERITIES:
        raise NotFound(f"unknown severity {value!r}; use one of {', '.join(SEVERITIES)}")
    return value


def _html(template: str, **context: Any) -> Response:
    body = render.render_site_page(template, **context)
    return Response(200, body.encode("utf-8"), headers={"Content-Security-Policy": SITE_CSP})


def _stylesheet() -> Response:
    css = files("monitor").joinpath("templates/site/site.css").read_bytes()
    return Response(
        200, css, "text/css; charset=utf-8", headers={"Cache-Control": "public, max-age=3600"}
    )


class Site:
    """The pages of one database; ``base_url`` is where the site is reachable from outside."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        base_url: str,
        now: Callable[[], datetime] = utcnow,
        config: Config | None = None,
    ) -> None:
        """``config``: needed by the JSON API (it answers through :class:`monitor.api.Monitor`);
        without it ``/api/`` is not served."""
        self.sessions = sessions
        self.monitor = Monitor(config, sessions=sessions) if config is not None else None
        self.base_url = base_url.rstrip("/")
        self.now = now
        self._cache: OrderedDict[tuple[str, tuple[int, int]], Response] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, target: str) -> Response | None:
        """The response for a GET of ``target`` (path and query), ``None`` if not a site route.

        Responses are cached until the database gets a new check or change (the pages show
        nothing else that moves), so a page costs its queries and rendering once.
        """
        with self.sessions() as session:
            key = (target, browse.generation(session))
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        response = self._handle(target)
        if response is not None:
            with self._cache_lock:
                self._cache[key] = response
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return response

    def _handle(self, target: str) -> Response | None:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        try:
            return self._route(path, query)
        except NotFound as exc:
            body = render.render_site_page(
                "site/error.html.j2", title="Not found", message=exc.message
            )
            return Response(
                404, body.encode("utf-8"), headers={"Content-Security-Policy": SITE_CSP}
            )

    def _route(self, path: str, query: dict[str, list[str]]) -> Response | None:
        if path == "/":
            return self.home()
        if path == "/stance":
            return self.stance()
        if path == "/static/site.css":
            return _stylesheet()
        if path == "/favicon.ico":
            return Response(204, b"", "image/x-icon")
        if match := re.fullmatch(r"/services/([a-z0-9-]{1,100})", path):
            return self.service(match[1])
        if match := re.fullmatch(r"/changes/([0-9]{1,9})", path):
            return self.change(int(match[1]))
        if match := re.fullmatch(r"/versions/([0-9]{1,9})/raw", path):
            return self.raw(int(match[1]))
        if match := re.fullmatch(r"/documents/(.{1,200})/at/(\d{4}-\d{2}-\d{2})", path):
            return self.version(match[1], match[2])
        if match := re.fullmatch(r"/documents/(.{1,200})", path):
            return self.document(match[1], _min_severity(query))
        if path.startswith("/api/") and self.monitor is not None:
            return self.api(path[len("/api") :], query)
        if path.startswith("/feeds/") and path.endswith(".atom"):
            return self.feed(path[len("/feeds/") : -len(".atom")], _min_severity(query))
        return None

    # -- pages ---------------------------------------------------------------------------------

    def home(self) -> Response:
        with self.sessions() as session:
            docs = browse.documents(session)
            latest = browse.recent_changes(session, severities=_levels("medium"), limit=20)
            services: dict[str, list[Any]] = {}
            for doc in docs:
                services.setdefault(doc.service, []).append(doc)
            views = [mail_store.change_view(c, d, texts=False) for c, d in latest]
        rows = [
            {
                "name": name,
                "slug": slugify(name),
                "documents": len(items),
                "failing": sum(1 for d in items if d.consecutive_failures),
            }
            for name, items in sorted(services.items(), key=lambda kv: kv[0].lower())
        ]
        return _html("site/home.html.j2", title="Platforms", services=rows, changes=views)

    def service(self, slug: str) -> Response:
        with self.sessions() as session:
            docs = [d for d in browse.documents(session) if slugify(d.service) == slug]
            if not docs:
                raise NotFound(f"There is no platform {slug!r}.")
            latest = browse.recent_changes(
                session, document_ids=[d.id for d in docs], severities=_levels("low"), limit=50
            )
            views = [mail_store.change_view(c, d, texts=False) for c, d in latest]
            documents = [_document_row(session, d) for d in docs]
        return _html(
            "site/service.html.j2",
            title=docs[0].service,
            slug=slug,
            documents=documents,
            changes=views,
        )

    def document(self, document_id: str, min_severity: str) -> Response:
        with self.sessions() as session:
            doc = history_store.get_document(session, document_id)
            if doc is None:
                raise NotFound(f"There is no document {document_id!r}.")
            rows = browse.recent_changes(
                session,
                document_ids=[doc.id],
                severities=_levels(min_severity),
                limit=TIMELINE_LIMIT,
            )
            views = [mail_store.change_view(c, d, texts=False) for c, d in rows]
            failures = browse.incidents(session, doc.id)
            row = _document_row(session, doc)
        timeline = sorted(
            [("change", v.detected_at, v) for v in views]
            + [("incident", f.checked_at, f) for f in failures],
            key=lambda item: item[1],
            reverse=True,
        )
        return _html(
            "site/document.html.j2",
            title=f"{row['service']} {row['type']}",
            document=row,
            timeline=timeline,
            min_severity=min_severity,
            severities=SEVERITIES,
        )

    def change(self, change_id: int) -> Response:
        with self.sessions() as session:
            found = mail_store.get_change(session, change_id)
            if found is None:
                raise NotFound(f"There is no change {change_id}.")
            change, document = found
            view = mail_store.change_view(change, document)
            previous, following = browse.neighbours(session, change)
            new_version = browse.get_version(session, change.new_version_id)
            raw_id = new_version.id if new_version is not None and new_version.raw_hash else None
        context = {
            "title": f"{view.title}: {render.headline(view)}",
            "previous": previous,
            "following": following,
            "raw_id": raw_id,
            "document_path": _document_path(view.document_id),
        }
        _, body = render.fit(
            view,
            lambda v: render.render_site_page("site/change.html.j2", view=v, **context),
            full_at=render.full_change_hint(view),
        )
        return Response(200, body.encode("utf-8"), headers={"Content-Security-Policy": SITE_CSP})

    def version(self, document_id: str, day: str) -> Response:
        try:
            when = datetime.combine(date.fromisoformat(day), time.max, tzinfo=UTC)
        except ValueError as exc:
            raise NotFound(f"{day!r} is not a date.") from exc
        with self.sessions() as session:
            doc = history_store.get_document(session, document_id)
            if doc is None:
                raise NotFound(f"There is no document {document_id!r}.")
            version = history_store.version_at(session, doc.id, when)
            if version is None:
                raise NotFound(f"No version of {document_id} was known on {day}.")
            clauses = version_clauses(session, version)
            title = f"{doc.service} {doc.type}"
            seen_at, version_id, has_raw = version.seen_at, version.id, bool(version.raw_hash)
        return _html(
            "site/version.html.j2",
            title=f"{title} in force on {day}",
            day=day,
            clauses=clauses,
            seen_at=seen_at,
            version_id=version_id,
            has_raw=has_raw,
            document_path=_document_path(document_id),
            document_title=title,
        )

    def raw(self, version_id: int) -> Response:
        with self.sessions() as session:
            version = browse.get_version(session, version_id)
            if version is None or not version.raw_hash:
                raise NotFound(f"There is no raw snapshot for version {version_id}.")
            data = history_store.get_blob(session, version.raw_hash)
        return Response(
            200,
            data,
            "text/plain; charset=utf-8",
            headers={"Content-Security-Policy": "default-src 'none'; sandbox"},
        )

    def stance(self) -> Response:
        from monitor.stance import current_stance

        with self.sessions() as session:
            table = current_stance(session)
        return _html("site/stance.html.j2", title="Where platforms stand", table=table)

    def api(self, path: str, query: dict[str, list[str]]) -> Response | None:
        """The JSON API: the CLI's ``--json`` output, from the same :class:`Monitor` calls."""
        assert self.monitor is not None
        monitor = self.monitor

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        data: Any
        try:
            if path == "/documents":
                data = [d.as_dict() for d in monitor.documents(sync=False)]
            elif match := re.fullmatch(r"/documents/(.{1,200})/history", path):
                wanted = one("min_severity") or "low"
                data = monitor.history(match[1], min_severity=wanted).as_dict()
            elif path == "/changes":
                since = one("since")
                data = [
                    record.as_dict()
                    for record in monitor.changes(
                        since=_parse_since(since) if since else None,
                        services=query.get("service", []),
                        topics=query.get("topic", []),
                        min_severity=one("min_severity") or "low",
                        limit=_limit(one("limit")),
                    )
                ]
            elif match := re.fullmatch(r"/changes/([0-9]{1,9})", path):
                data = monitor.change(int(match[1])).as_dict()
            elif path == "/stance":
                from monitor.stance import current_stance

                with self.sessions() as session:
                    data = current_stance(session).as_dict()
            else:
                return _json_error(404, "There is nothing at this address.")
        except ArgumentError as exc:
            return _json_error(404, str(exc))
        except MonitorError as exc:  # a bad filter value
            return _json_error(400, str(exc))
        return Response(200, to_json(data).encode("utf-8"), "application/json; charset=utf-8")

    def feed(self, name: str, min_severity: str) -> Response:
        levels = _levels(min_severity)
        with self.sessions() as session:
            docs = browse.documents(session)
            if name == "all":
                title, wanted, alternate = "all platforms", None, "/"
            elif name.startswith("services/"):
                slug = name[len("services/") :]
                wanted = [d.id for d in docs if slugify(d.service) == slug]
                if not wanted:
                    raise NotFound(f"There is no platform {slug!r}.")
                title = next(d.service for d in docs if slugify(d.service) == slug)
                alternate = f"/services/{slug}"
            elif name.startswith("documents/"):
                document_id = name[len("documents/") :]
                match = [d for d in docs if d.id == document_id]
                if not match:
                    raise NotFound(f"There is no document {document_id!r}.")
                wanted, title = [document_id], f"{match[0].service} {match[0].type}"
                alternate = _document_path(document_id)
            elif name.startswith("topics/"):
                label = name[len("topics/") :]
                if label not in render.known_topics():
                    raise NotFound(f"There is no topic {label!r}.")
                title, wanted, alternate = render.topic_name(label), None, "/stance"
            else:
                raise NotFound("There is no such feed.")
            rows = browse.recent_changes(
                session,
                document_ids=wanted,
                severities=levels,
                limit=4 * feeds.MAX_ENTRIES,
                light=False,
            )
            if name.startswith("topics/"):
                label = name[len("topics/") :]
                rows = [(c, d) for c, d in rows if label in (c.labels or [])]
            views = [mail_store.change_view(c, d) for c, d in rows]
        suffix = "" if min_severity == DEFAULT_MIN_SEVERITY else f"?min_severity={min_severity}"
        spec = feeds.FeedSpec(
            title=f"tos-monitor: {title} ({min_severity} and above)",
            self_url=f"{self.base_url}/feeds/{quote(name)}.atom{suffix}",
            alternate_url=f"{self.base_url}{alternate}",
        )
        body = feeds.render_atom(spec, views, base_url=self.base_url)
        return Response(200, body, "application/atom+xml; charset=utf-8")


def _json_error(status: int, message: str) -> Response:
    return Response(status, to_json({"error": message}).encode(), "application/json; charset=utf-8")


def _parse_since(text: str) -> datetime:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise MonitorError(f"since: {exc}") from None


def _limit(text: str | None) -> int:
    if text is None:
        return API_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= API_LIMIT:
        raise MonitorError(f"limit: use a number from 1 to {API_LIMIT}")
    return int(text)


def _document_path(document_id: str) -> str:
    return "/documents/" + quote(document_id)


def _document_row(session: Session, doc: Any) -> dict[str, Any]:
    current = history_store.version_at(session, doc.id, None)
    return {
        "id": doc.id,
        "path": _document_path(doc.id),
        "service": doc.service,
        "type": doc.type,
        "url": doc.url,
        "last_check_at": doc.last_check_at,
        "last_change_at": doc.last_change_at,
        "versions": history_store.count_versions(session, doc.id),
        "current_day": current.seen_at.date().isoformat() if current else None,
        "failing_since": doc.failing_since if doc.consecutive_failures else None,
        "last_error": doc.last_error if doc.consecutive_failures else None,
    }
