"""Pure: change records -> email (subject, plain text, HTML), and the web endpoint's pages.

Page text is untrusted: the HTML templates autoescape everything, subjects are stripped of control
characters and squeezed onto one line. Styles are inline only (clients strip ``<style>``), and
changed words are marked with ``<del>``/``<ins>`` plus strike-through and underline, never by
colour alone, with explicit text and background colours so dark mode cannot invert them away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor import scrub
from monitor.clauses import max_severity, severity_rank

if TYPE_CHECKING:
    from jinja2 import Environment

SUBJECT_LIMIT = 160
REPORT_LIMIT = 100_000
"""Bytes of HTML a report (or a page showing a change) stays under: mail clients clip longer
messages (Gmail at 102 KB) and a page of megabytes costs seconds to render and to read."""
_FITS = ((10**9, 10**9), (2_000, 40), (600, 12), (250, 4), (0, 0))
"""(characters quoted a side per clause, clauses shown) tried in turn until a report fits: the
whole report first, when its estimated size leaves a chance."""
_CONTEXT = 120
"""Unchanged characters kept around a changed passage in a shortened quote."""


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
    headline: str = ""
    """One sentence stating the change (classify.headline_for); '' for changes stored before it."""
    dates: tuple[str, ...] = ()
    opt_outs: tuple[str, ...] = ()
    min_severity: str = "low"
    """The reader's floor: clauses below it are counted, not shown (cosmetic ones never are)."""

    @property
    def title(self) -> str:
        return f"{self.service} {self.document_type}"

    def _shown(self, clause: ClauseView) -> bool:
        floor = max(severity_rank(self.min_severity), severity_rank("low"))
        return severity_rank(clause.severity) >= floor

    @property
    def shown_clauses(self) -> tuple[ClauseView, ...]:
        """The clauses a reader is shown: most severe first, then in document order."""
        shown = [c for c in self.clauses if self._shown(c)]
        return tuple(sorted(shown, key=lambda c: -severity_rank(c.severity)))

    @property
    def hidden_note(self) -> str:
        """``3 lower-severity clauses not shown (2 low, 1 cosmetic)``; empty when none is."""
        hidden = [c.severity for c in self.clauses if not self._shown(c)]
        if not hidden:
            return ""
        counts = ", ".join(
            f"{hidden.count(severity)} {severity}"
            for severity in sorted(set(hidden), key=severity_rank, reverse=True)
        )
        noun = "clause" if len(hidden) == 1 else "clauses"
        return f"{len(hidden)} lower-severity {noun} not shown ({counts})"

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
    """The change's stored headline ("Instagram may now use your public posts to train or improve
    AI"); for changes stored without one: ``new AI training clause``, ``AI opt-out changed``."""
    if view.headline:
        return view.headline
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
    """The one subject of a change's report: the change's headline (the fact, in one sentence,
    from classification) when it has one, else the most severe clause's topic and kind.

    ``Instagram may now use your public posts to train AI (Terms of Use, high)``;
    ``Instagram Terms of Use: new AI training clause (high)`` for changes stored without one.
    """
    fact = " ".join(headline(view).split()).rstrip(".")
    if fact.lower().startswith(view.title.lower()):
        return one_line(f"{fact} ({view.top_severity})")
    if view.headline and fact.lower().startswith(view.service.lower()):
        return one_line(f"{fact} ({view.document_type}, {view.top_severity})")
    return one_line(f"{view.title}: {fact} ({view.top_severity})")


def group_subject(views: Sequence[ChangeView], *, limit: int = SUBJECT_LIMIT) -> str:
    """Several changes in one subject: each one's fact (:func:`subject_for`) while they fit in
    ``limit``, else the most severe one's and how many more (and where)."""
    ordered = sorted(
        views, key=lambda v: (-severity_rank(v.top_severity), v.service.lower(), v.change_id)
    )
    full = "; ".join(subject_for(view) for view in ordered)
    if len(full) <= limit or len(ordered) < 2:
        return one_line(full, limit=limit)
    rest = ordered[1:]
    noun = "change" if len(rest) == 1 else "changes"
    services = ", ".join(dict.fromkeys(view.service for view in rest))
    more = f", and {len(rest)} more {noun} ({services})"
    first = one_line(subject_for(ordered[0]), limit=max(limit - len(more), 40))
    return one_line(first + more, limit=limit)


def digest_subject(digest: DigestView) -> str:
    """The facts, as for one report: ``Daily digest: Facebook Terms of Service: new AI training
    clause (high); Instagram ...``, or the most severe one and how many more when they don't fit.
    Changes found together (cadence ``immediate``) carry no digest label."""
    if digest.cadence == "immediate":
        return group_subject(digest.changes)
    label = "Daily digest" if digest.cadence == "daily" else "Weekly digest"
    limit = SUBJECT_LIMIT - len(label) - 2
    return one_line(f"{label}: {group_subject(digest.changes, limit=limit)}")


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
    # Jinja loads with the first email rendered: a check that only queues reports never needs it
    from jinja2 import Environment, PackageLoader, StrictUndefined

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


# ---------------------------------------------------------------------------------------------
# Size: a report carries at most REPORT_LIMIT bytes of HTML


def _clip_words(words: tuple[WordView, ...], limit: int) -> tuple[WordView, ...]:
    """The changed passages with a little context, until ``limit`` characters a side."""
    kept: list[WordView] = []
    sides = [0, 0]  # before, after
    for k, word in enumerate(words):
        text = word.text
        if word.op == "equal":
            head = text[:_CONTEXT] if k else ""
            tail = text[-_CONTEXT:] if k + 1 < len(words) else ""
            if len(text) > len(head) + len(tail) + 3:
                text = f"{head} … {tail}"
        room = limit - max(sides)
        if room <= 0:
            kept.append(WordView("equal", " …"))
            break
        if len(text) > room:
            text = text[:room].rstrip() + " …"
        kept.append(WordView(word.op, text))
        if word.op != "insert":
            sides[0] += len(text)
        if word.op != "delete":
            sides[1] += len(text)
    return tuple(kept)


def _clip_text(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit].rstrip() + " …"


def _clip_clause(clause: ClauseView, limit: int) -> ClauseView:
    longest = max(len(clause.before or ""), len(clause.after or ""))
    if longest <= limit:
        return clause
    return dataclasses.replace(
        clause,
        before=_clip_text(clause.before, limit),
        after=_clip_text(clause.after, limit),
        words=_clip_words(clause.words, limit) if clause.words else (),
    )


def shorten(view: ChangeView, *, quote_chars: int, clauses: int, full_at: str | None) -> ChangeView:
    """The view with at most ``clauses`` clauses shown (most severe first), each quoted in at
    most ``quote_chars`` characters a side, and a note saying what was left out and where the
    whole change is; the view itself when nothing had to go."""
    shown = view.shown_clauses
    kept = tuple(_clip_clause(c, quote_chars) for c in shown[:clauses])
    left_out = len(shown) - len(kept)
    clipped = any(a is not b for a, b in zip(kept, shown, strict=False))
    if not left_out and not clipped:
        return view
    where = f" The whole change: {full_at}" if full_at else ""
    parts = []
    if left_out:
        parts.append(
            f"{left_out} more changed clause{'s are' if left_out != 1 else ' is'} not shown"
        )
    if clipped:
        parts.append("long quotes are shortened (…)")
    note = f"This report is shortened to stay readable: {'; '.join(parts)}.{where}"
    # shown_clauses sorts by severity (stable), so the kept ones come out in the same order;
    # the clauses below the reader's floor stay, to be counted
    hidden = tuple(c for c in view.clauses if not view._shown(c))
    return dataclasses.replace(view, clauses=kept + hidden, notes=(note, *view.notes))


def fit(
    view: ChangeView, render: Callable[[ChangeView], str], *, full_at: str | None
) -> tuple[ChangeView, str]:
    """The view shortened until ``render(view)`` is under REPORT_LIMIT bytes, and that HTML.

    A report of ordinary size is rendered once, unchanged; a huge one is never rendered whole.
    """
    html = ""
    fitted = view
    for quote_chars, clauses in _FITS:
        last = (quote_chars, clauses) == _FITS[-1]
        if not last and _estimate(view, quote_chars, clauses) > 2 * REPORT_LIMIT:
            continue  # hopeless: do not spend the time rendering it
        fitted = shorten(view, quote_chars=quote_chars, clauses=clauses, full_at=full_at)
        html = render(fitted)
        if len(html.encode("utf-8")) <= REPORT_LIMIT:
            break
    return fitted, html


def _links(view: ChangeView, base_url: str | None) -> dict[str, str | None]:
    diff_url = f"{base_url.rstrip('/')}/changes/{view.change_id}" if base_url else None
    return {"source_url": view.url, "diff_url": diff_url}


def render_change(
    change_view: ChangeView,
    *,
    base_url: str | None,
    unsubscribe_url: str | None,
    min_severity: str | None = None,
) -> RenderedEmail:
    """The report one change produces: subject, plain text and HTML (under REPORT_LIMIT: a long
    change is shortened, most severe clauses first, with a link to the whole change).

    ``min_severity`` is the reader's floor: clauses below it are counted and linked, not shown.
    """
    if min_severity is not None:
        change_view = dataclasses.replace(change_view, min_severity=min_severity)
    links = _links(change_view, base_url)
    context = {"unsubscribe_url": unsubscribe_url, **links}
    view, html = fit(
        change_view,
        lambda v: _render("report.html.j2", view=v, **context),
        full_at=links["diff_url"] or full_change_hint(change_view),
    )
    return RenderedEmail(
        subject=subject_for(change_view),
        text=_render("report.txt.j2", view=view, **context),
        html=html,
    )


def full_change_hint(view: ChangeView) -> str:
    """Where the whole change can be read when there is no web link: the CLI."""
    until = (view.detected_at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"tosmon diff {view.document_id} --to {until}"


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
    min_severity: str | None = None,
) -> RenderedEmail:
    """One email for many changes, grouped by service; each change gets an equal share of
    REPORT_LIMIT (shortened like a single report when it needs more). Each change shows the
    clauses at or above ``min_severity`` (or its own floor) and counts the rest."""
    if min_severity is not None:
        views = [dataclasses.replace(view, min_severity=min_severity) for view in views]
    share = max(REPORT_LIMIT // max(len(views), 1), 4_000)
    root = base_url.rstrip("/") if base_url else None

    def fitted(view: ChangeView, share: int) -> ChangeView:
        quote_chars, clauses = _FITS[-1]
        for quote_chars, clauses in _FITS:
            if _estimate(view, quote_chars, clauses) <= share:
                break
        full_at = f"{root}/changes/{view.change_id}" if root else full_change_hint(view)
        return shorten(view, quote_chars=quote_chars, clauses=clauses, full_at=full_at)

    context: dict[str, Any] = {"base_url": root, "unsubscribe_url": unsubscribe_url}
    digest: DigestView | None = None
    html = ""
    for attempt_share in (share, 0):  # then every change at its shortest (none is ever left out)
        shown = [fitted(view, attempt_share) for view in views]
        digest = DigestView(
            cadence=cadence,
            period_end=period_end,
            changes=tuple(shown),
            groups=group_by_service(shown),
        )
        html = _render("digest.html.j2", digest=digest, **context)
        if len(html.encode("utf-8")) <= REPORT_LIMIT:
            break
    assert digest is not None
    return RenderedEmail(
        subject=digest_subject(digest),
        text=_render("digest.txt.j2", digest=digest, **context),
        html=html,
    )


def _estimate(view: ChangeView, quote_chars: int, clauses: int) -> int:
    """Roughly the HTML bytes the view's clauses take at these limits (markup included)."""
    total = 0
    for clause in view.shown_clauses[:clauses]:
        quoted = min(len(clause.before or ""), quote_chars) + min(
            len(clause.after or ""), quote_chars
        )
        total += 2_500 + int(1.2 * quoted) + 250 * min(len(clause.words), 40)
    return total


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
