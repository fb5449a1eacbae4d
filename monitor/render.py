"""Pure: change records -> email (subject, plain text, HTML), and the web endpoint's pages.

Page text is untrusted: the HTML templates autoescape everything, subjects are stripped of control
characters and squeezed onto one line. Styles are inline only (clients strip ``<style>``), and
changed words are marked with ``<del>``/``<ins>`` plus strike-through and underline, never by
colour alone, with explicit text and background colours so dark mode cannot invert them away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from monitor import scrub
from monitor.clauses import max_severity, severity_rank

SUBJECT_LIMIT = 160


def topic_name(label: str) -> str:
    """The topic's short name from the taxonomy ("AI training"), or the label made readable."""
    from monitor.classify import load_taxonomy

    topic = load_taxonomy().topics.get(label)
    return topic.short if topic else label.replace("_", " ").lower()


@dataclass(frozen=True, slots=True)
class WordView:
    op: str  # equal | insert | delete
    text: str


@dataclass(frozen=True, slots=True)
class ClauseView:
    kind: str  # added | removed | modified | moved
    section: tuple[str, ...]
    before: str | None
    after: str | None
    words: tuple[WordView, ...] = ()
    labels: tuple[str, ...] = ()
    direction: str = "neutral"
    severity: str = "cosmetic"
    annotation: str = ""

    @property
    def section_label(self) -> str:
        return " › ".join(self.section)

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(topic_name(label) for label in self.labels)


@dataclass(frozen=True, slots=True)
class ChangeView:
    """Everything one change report shows, as plain data."""

    change_id: int
    service: str
    document_id: str
    document_type: str
    url: str
    detected_at: datetime
    summary: str
    severity: str
    clauses: tuple[ClauseView, ...]
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"{self.service} {self.document_type}"

    @property
    def shown_clauses(self) -> tuple[ClauseView, ...]:
        """The clauses a reader is shown: most severe first, then in document order."""
        shown = [c for c in self.clauses if c.severity != "cosmetic"]
        return tuple(sorted(shown, key=lambda c: -severity_rank(c.severity)))

    @property
    def cosmetic_count(self) -> int:
        return sum(1 for c in self.clauses if c.severity == "cosmetic")

    @property
    def top_clause(self) -> ClauseView | None:
        """The most severe clause, topic-labelled ones first, earliest on ties."""
        best: ClauseView | None = None
        for clause in self.shown_clauses:
            if best is None or _clause_rank(clause) > _clause_rank(best):
                best = clause
        return best

    @property
    def top_severity(self) -> str:
        return max_severity([c.severity for c in self.clauses] or [self.severity])


def _clause_rank(clause: ClauseView) -> tuple[int, int]:
    return (severity_rank(clause.severity), 1 if clause.labels else 0)


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class DigestView:
    cadence: str  # daily | weekly
    period_end: datetime
    changes: tuple[ChangeView, ...]
    groups: tuple[tuple[str, tuple[ChangeView, ...]], ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# Text helpers


def one_line(text: str, *, limit: int = SUBJECT_LIMIT) -> str:
    """Untrusted text made safe for a header: no control characters, one line, bounded."""
    return scrub.one_line(text, limit=limit)


def headline(view: ChangeView) -> str:
    """``new AI training clause``, ``content licence clause removed``, ``AI opt-out changed``."""
    clause = view.top_clause
    if clause is None:
        return "wording changes" if view.cosmetic_count else "changes"
    topic = topic_name(clause.labels[0]) if clause.labels else None
    if clause.kind == "added":
        return f"new {topic} clause" if topic else "new clause"
    if clause.kind == "removed":
        return f"{topic} clause removed" if topic else "clause removed"
    if clause.kind == "moved":
        return f"{topic} clause moved" if topic else "clause moved"
    return f"{topic} clause changed" if topic else "clause changed"


def subject_for(view: ChangeView) -> str:
    """``Instagram Terms of Use: new AI training clause (high)``."""
    return one_line(f"{view.title}: {headline(view)} ({view.top_severity})")


def digest_subject(digest: DigestView) -> str:
    services = sorted({v.service for v in digest.changes})
    count = len(digest.changes)
    noun = "change" if count == 1 else "changes"
    shown = ", ".join(services[:3]) + (
        f" and {len(services) - 3} more" if len(services) > 3 else ""
    )
    label = "Daily" if digest.cadence == "daily" else "Weekly"
    return one_line(f"{label} digest: {count} {noun} ({shown})")


def marked_text(clause: ClauseView, side: str) -> str:
    """Plain-text before/after with the changed words marked ``[-deleted-]`` / ``{+added+}``."""
    if not clause.words:
        return (clause.before if side == "before" else clause.after) or ""
    parts: list[str] = []
    for word in clause.words:
        if word.op == "equal":
            parts.append(word.text)
        elif word.op == "delete" and side == "before":
            parts.append(f"[-{word.text}-]")
        elif word.op == "insert" and side == "after":
            parts.append(f"{{+{word.text}+}}")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Jinja


def _autoescape(name: str | None) -> bool:
    """Escape everything except the plain-text templates (``*.txt.j2``)."""
    return not (name or "").endswith(".txt.j2")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("monitor", "templates"),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["marked"] = marked_text
    env.filters["topic"] = topic_name
    env.filters["when"] = lambda value: value.strftime("%d %b %Y, %H:%M UTC")
    env.filters["day"] = lambda value: value.strftime("%d %b %Y")
    env.filters["headline"] = headline
    env.globals["severity_style"] = severity_style
    return env


_ENV: Environment | None = None


def _env() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


def _render(name: str, **context: Any) -> str:
    return _env().get_template(name).render(**context)


_SEVERITY_STYLES = {
    "high": "background:#8b0000;color:#ffffff;",
    "medium": "background:#8a4b00;color:#ffffff;",
    "low": "background:#3b4a5a;color:#ffffff;",
    "cosmetic": "background:#555555;color:#ffffff;",
}


def severity_style(severity: str) -> str:
    return _SEVERITY_STYLES.get(severity, _SEVERITY_STYLES["low"])


def _links(view: ChangeView, base_url: str | None) -> dict[str, str | None]:
    diff_url = f"{base_url.rstrip('/')}/changes/{view.change_id}" if base_url else None
    return {"source_url": view.url, "diff_url": diff_url}


def render_change(
    change_view: ChangeView, *, base_url: str | None, unsubscribe_url: str | None
) -> RenderedEmail:
    """The report one change produces: subject, complete plain text and complete HTML."""
    context = {
        "view": change_view,
        "unsubscribe_url": unsubscribe_url,
        **_links(change_view, base_url),
    }
    return RenderedEmail(
        subject=subject_for(change_view),
        text=_render("report.txt.j2", **context),
        html=_render("report.html.j2", **context),
    )


def group_by_service(views: Sequence[ChangeView]) -> tuple[tuple[str, tuple[ChangeView, ...]], ...]:
    groups: dict[str, list[ChangeView]] = {}
    for view in sorted(views, key=lambda v: (v.service.lower(), v.detected_at, v.change_id)):
        groups.setdefault(view.service, []).append(view)
    return tuple((service, tuple(items)) for service, items in groups.items())


def render_digest(
    views: Sequence[ChangeView],
    *,
    cadence: str,
    period_end: datetime,
    base_url: str | None,
    unsubscribe_url: str | None,
) -> RenderedEmail:
    """One email for many changes, grouped by service."""
    digest = DigestView(
        cadence=cadence,
        period_end=period_end,
        changes=tuple(views),
        groups=group_by_service(views),
    )
    context = {
        "digest": digest,
        "base_url": base_url.rstrip("/") if base_url else None,
        "unsubscribe_url": unsubscribe_url,
    }
    return RenderedEmail(
        subject=digest_subject(digest),
        text=_render("digest.txt.j2", **context),
        html=_render("digest.html.j2", **context),
    )


def render_confirm(*, email: str, confirm_url: str, filters: Sequence[str]) -> RenderedEmail:
    """The double opt-in email: nothing else is sent until its link is followed."""
    context = {"email": email, "confirm_url": confirm_url, "filters": list(filters)}
    return RenderedEmail(
        subject="Confirm your tos-monitor subscription",
        text=_render("confirm.txt.j2", **context),
        html=_render("confirm.html.j2", **context),
    )


def render_alert(*, subject: str, body: str) -> RenderedEmail:
    """An operator alert ("document failing since ...")."""
    context = {"subject": one_line(subject), "body": body}
    return RenderedEmail(
        subject=one_line(subject),
        text=_render("alert.txt.j2", **context),
        html=_render("alert.html.j2", **context),
    )


def render_page(
    *, title: str, message: str, form_action: str | None = None, button: str = ""
) -> str:
    """A small HTML page for the confirm / unsubscribe endpoint (a form when ``form_action``)."""
    return _render(
        "page.html.j2", title=title, message=message, form_action=form_action, button=button
    )


# ---------------------------------------------------------------------------------------------
# The read-only web history (monitor.site)


def known_topics() -> tuple[str, ...]:
    from monitor.classify import load_taxonomy

    return tuple(load_taxonomy().topics)


def render_site_page(template: str, **context: Any) -> str:
    """One page of the web history (``templates/site/``), autoescaped like every HTML template."""
    return _render(template, **context)
