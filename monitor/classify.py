"""Clause intelligence: topic labels, direction, severity and a plain-words annotation per change.

The knowledge lives in ``taxonomy.toml`` (topics, their phrasings, the cue words that widen or
narrow a platform's rights, annotation templates); this module only applies it. Pure: no I/O beyond
reading the taxonomy file once.

    label_text(text)          -> ("LICENSE_GRANT", "LICENSE_SUBLICENSE_TRANSFER")
    classify_change(change)   -> the same ClauseChange with labels, direction, severity, annotation
    summarise_change(change)  -> "licence now sublicensable": the change in a few words
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from monitor import noise
from monitor.clauses import ClauseChange, Direction, Severity
from monitor.errors import ConfigError
from monitor.scrub import one_line

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.toml")
CORE_GROUPS = frozenset({"ai", "content_license"})
"""The groups tos-monitor exists for; privacy and contract rank one severity step lower."""

GROUP_ORDER = ("ai", "content_license", "privacy", "contract")

_DIRECTIONS = ("expands", "narrows", "neutral")
_STRONG_WORDS = noise.wordset(
    """not no never none nor only solely exclusively may might must will shall can cannot can't
    won't don't doesn't all any every without except unless until perpetual irrevocable
    sublicensable transferable exclusive"""
)


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    weight: float


@dataclass(frozen=True)
class Topic:
    """One label of TAXONOMY.md, with what the classifier needs to recognise and explain it."""

    id: str
    group: str
    description: str
    why: str
    short: str = ""
    threshold: float = 1.0
    patterns: tuple[Pattern, ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    protective: bool = False
    """A promise or control that protects the user: its removal widens the platform's rights."""
    priority: int = 1
    """Which label decides the direction of a whole added/removed clause (highest wins)."""
    on_added: Direction = "expands"
    on_removed: Direction = "narrows"
    added: str = ""
    removed: str = ""
    reworded: str = ""


@dataclass(frozen=True)
class Cue:
    """Words whose arrival widens (``expands``) or narrows the platform's rights."""

    regex: re.Pattern[str]
    effect: Direction
    short: str
    added: str
    removed: str
    topics: tuple[str, ...] = ()
    decisive: bool = False
    """A negation: when it appears or disappears it decides the direction on its own."""


@dataclass(frozen=True, eq=False)
class Taxonomy:
    topics: dict[str, Topic]
    groups: dict[str, tuple[str, ...]]
    cues: tuple[Cue, ...] = ()
    default_service: str = "the platform"
    max_annotation_chars: int = 300


# --- loading --------------------------------------------------------------------------------------


def _compile(pattern: Any, *, path: Path, key: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError("expected a non-empty regex string", path=str(path), key=key)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"bad regex: {exc}", path=str(path), key=key) from None


def _direction(value: Any, *, path: Path, key: str) -> Direction:
    if value not in _DIRECTIONS:
        raise ConfigError(
            f"expected one of {', '.join(_DIRECTIONS)}, got {value!r}", path=str(path), key=key
        )
    return value  # type: ignore[no-any-return]


def _parse(data: dict[str, Any], path: Path) -> Taxonomy:
    topics: dict[str, Topic] = {}
    for i, raw in enumerate(data.get("topic", [])):
        where = f"topic[{i}]"
        for required in ("id", "group", "description", "why"):
            if not isinstance(raw.get(required), str) or not raw[required]:
                raise ConfigError("missing or empty", path=str(path), key=f"{where}.{required}")
        tid = raw["id"]
        if tid in topics:
            raise ConfigError(f"duplicate topic id {tid!r}", path=str(path), key=f"{where}.id")
        patterns = tuple(
            Pattern(
                _compile(p.get("re"), path=path, key=f"{tid}.patterns[{j}]"),
                float(p.get("weight", 1.0)),
            )
            for j, p in enumerate(raw.get("patterns", []))
        )
        topics[tid] = Topic(
            id=tid,
            group=raw["group"],
            description=raw["description"],
            why=raw["why"],
            short=raw.get("short", tid.lower().replace("_", " ")),
            threshold=float(raw.get("threshold", 1.0)),
            patterns=patterns,
            exclude=tuple(
                _compile(p, path=path, key=f"{tid}.exclude[{j}]")
                for j, p in enumerate(raw.get("exclude", []))
            ),
            protective=bool(raw.get("protective", False)),
            priority=int(raw.get("priority", 1)),
            on_added=_direction(raw.get("on_added", "expands"), path=path, key=f"{tid}.on_added"),
            on_removed=_direction(
                raw.get("on_removed", "narrows"), path=path, key=f"{tid}.on_removed"
            ),
            added=raw.get("added", ""),
            removed=raw.get("removed", ""),
            reworded=raw.get("reworded", ""),
        )
    cues = []
    for i, raw in enumerate(data.get("cue", [])):
        unknown = [t for t in raw.get("topics", []) if t not in topics]
        if unknown:
            raise ConfigError(
                f"unknown topic {unknown[0]!r}", path=str(path), key=f"cue[{i}].topics"
            )
        cues.append(
            Cue(
                regex=_compile(raw.get("re"), path=path, key=f"cue[{i}].re"),
                effect=_direction(raw.get("effect"), path=path, key=f"cue[{i}].effect"),
                short=raw.get("short", ""),
                added=raw.get("added", ""),
                removed=raw.get("removed", ""),
                topics=tuple(raw.get("topics", ())),
                decisive=bool(raw.get("decisive", False)),
            )
        )
    groups: dict[str, list[str]] = {}
    for topic in topics.values():
        groups.setdefault(topic.group, []).append(topic.id)
    settings = data.get("settings", {})
    return Taxonomy(
        topics=topics,
        groups={g: tuple(ids) for g, ids in groups.items()},
        cues=tuple(cues),
        default_service=settings.get("default_service", "the platform"),
        max_annotation_chars=int(settings.get("max_annotation_chars", 300)),
    )


@lru_cache(maxsize=8)
def _load(path: Path) -> Taxonomy:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read taxonomy: {exc.strerror}", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=str(path)) from None
    return _parse(data, path)


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """The taxonomy from ``path`` (default: the built-in taxonomy.toml); cached per path."""
    return _load(path or DEFAULT_TAXONOMY)


# --- labelling ------------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _scores(matched: str, taxonomy: Taxonomy) -> dict[str, float]:
    """Per topic: the summed weight of its matching patterns, 0 when an exclude pattern vetoes."""
    scores = {}
    for topic in taxonomy.topics.values():
        score = 0.0
        for pattern in topic.patterns:
            if pattern.regex.search(matched):
                score += pattern.weight
        if score and any(x.search(matched) for x in topic.exclude):
            score = 0.0
        scores[topic.id] = score
    return scores


def _label_matched(matched: str, taxonomy: Taxonomy) -> tuple[str, ...]:
    scores = _scores(matched, taxonomy)
    return tuple(t.id for t in taxonomy.topics.values() if scores[t.id] >= t.threshold)


def label_text(text: str, taxonomy: Taxonomy | None = None) -> tuple[str, ...]:
    """Topic ids for one clause text, in taxonomy order."""
    return _label_matched(noise.match_text(text), taxonomy or load_taxonomy())


# --- analysing a change ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    """A cue that appeared or disappeared in a reworded clause."""

    cue: Cue
    appeared: bool
    word: str

    @property
    def effect(self) -> Direction:
        if self.appeared:
            return self.cue.effect
        return "narrows" if self.cue.effect == "expands" else "expands"


@dataclass(frozen=True)
class _Analysis:
    labels: tuple[str, ...]
    direction: Direction
    severity: Severity
    events: tuple[_Event, ...] = ()
    gained: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()
    added_words: tuple[str, ...] = ()
    removed_words: tuple[str, ...] = ()
    cosmetic_reason: str = ""
    minor: bool = False


def _ordered(labels: set[str] | tuple[str, ...], taxonomy: Taxonomy) -> tuple[str, ...]:
    return tuple(t for t in taxonomy.topics if t in labels)


def _primary(labels: tuple[str, ...], taxonomy: Taxonomy) -> Topic | None:
    """The label that leads the annotation: core groups first, then taxonomy order."""
    if not labels:
        return None
    ranked = sorted(labels, key=lambda t: GROUP_ORDER.index(taxonomy.topics[t].group))
    return taxonomy.topics[ranked[0]]


def _cue_applies(cue: Cue, labels: tuple[str, ...], taxonomy: Taxonomy) -> bool:
    if cue.topics:
        return any(t in cue.topics for t in labels)
    return any(taxonomy.topics[t].group in CORE_GROUPS for t in labels)


def _cue_events(
    before: str, after: str, labels: tuple[str, ...], taxonomy: Taxonomy
) -> tuple[_Event, ...]:
    events = []
    for cue in taxonomy.cues:
        if not _cue_applies(cue, labels, taxonomy):
            continue
        found_before = [m.group(0) for m in cue.regex.finditer(before)]
        found_after = [m.group(0) for m in cue.regex.finditer(after)]
        if len(found_after) > len(found_before):
            extra = [w for w in found_after if w not in found_before] or found_after
            events.append(_Event(cue, True, extra[0]))
        elif len(found_before) > len(found_after):
            extra = [w for w in found_before if w not in found_after] or found_before
            events.append(_Event(cue, False, extra[0]))
    return tuple(events)


def _span_words(change: ClauseChange) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Inserted and deleted runs of words, from the differ's spans (or a bag-of-words fallback)."""
    if change.words:
        ins = tuple(
            noise.plain_text(s.text) for s in change.words if s.op == "insert" and s.text.strip()
        )
        dels = tuple(
            noise.plain_text(s.text) for s in change.words if s.op == "delete" and s.text.strip()
        )
        return tuple(w for w in ins if w), tuple(w for w in dels if w)
    added, removed = noise.content_word_changes(change.before or "", change.after or "")
    return tuple(added), tuple(removed)


def _severity(
    labels: tuple[str, ...], direction: Direction, expanding: int, taxonomy: Taxonomy
) -> Severity:
    groups = {taxonomy.topics[t].group for t in labels}
    if groups & CORE_GROUPS:
        return "high" if direction == "expands" else "medium"
    if groups:
        if direction == "expands":
            return "high" if expanding >= 2 else "medium"
        return "low"
    return "low"


@lru_cache(maxsize=4096)
def _analyse(change: ClauseChange, taxonomy: Taxonomy) -> _Analysis:
    before = change.before or ""
    after = change.after or ""
    mb = noise.match_text(before)
    ma = noise.match_text(after)
    if change.kind == "added":
        labels = _label_matched(ma, taxonomy)
        return _analyse_whole(labels, taxonomy, added=True, text=after)
    if change.kind == "removed":
        labels = _label_matched(mb, taxonomy)
        return _analyse_whole(labels, taxonomy, added=False, text=before)

    lb = _label_matched(mb, taxonomy)
    la = _label_matched(ma, taxonomy)
    labels = _ordered(set(lb) | set(la), taxonomy)
    if noise.is_cosmetic_edit(before, after):
        reason = "moved" if change.kind == "moved" else "format"
        return _Analysis(labels, "neutral", "cosmetic", cosmetic_reason=reason)

    # A label counts as gained (or lost) only when the other side was clearly not about the topic:
    # rewording around the threshold must not make a clause flicker in and out of a topic.
    sb, sa = _scores(mb, taxonomy), _scores(ma, taxonomy)
    half = {t: taxonomy.topics[t].threshold / 2 for t in labels}
    gained = tuple(t for t in la if t not in lb and sb[t] < half[t])
    lost = tuple(t for t in lb if t not in la and sa[t] < half[t])
    events = _cue_events(mb, ma, labels, taxonomy)
    decisive = [e for e in events if e.cue.decisive]
    counted = decisive or events  # a promise made or dropped outweighs the words around it
    expanding = sum(e.effect == "expands" for e in counted)
    narrowing = sum(e.effect == "narrows" for e in counted)
    if not events:  # cue words are the precise signal; a topic appearing is the coarse one
        for tid in gained:
            expanding += taxonomy.topics[tid].on_added == "expands"
            narrowing += taxonomy.topics[tid].on_added == "narrows"
        for tid in lost:
            expanding += taxonomy.topics[tid].on_removed == "expands"
            narrowing += taxonomy.topics[tid].on_removed == "narrows"
    direction: Direction = (
        "expands" if expanding > narrowing else "narrows" if narrowing > expanding else "neutral"
    )
    added_words, removed_words = _span_words(change)
    content_added, content_removed = noise.content_word_changes(before, after)
    changed = content_added + content_removed
    if not changed and not events and not gained and not lost:
        return _Analysis(labels, "neutral", "cosmetic", cosmetic_reason="wording")
    minor = (
        not events
        and not gained
        and not lost
        and len(changed) <= 3
        and not any(w in _STRONG_WORDS for w in changed)
    )
    if minor:
        severity: Severity = "low"
    else:
        severity = _severity(labels, direction, expanding, taxonomy)
    return _Analysis(
        labels,
        direction,
        severity,
        events=events,
        gained=gained,
        lost=lost,
        added_words=added_words,
        removed_words=removed_words,
        minor=minor,
    )


_PLATFORM_PROMISE = re.compile(
    r"\bwe (?:do not|don't|will not|won't|shall not|never|are not going to|will never)\b"
)


def _analyse_whole(
    labels: tuple[str, ...], taxonomy: Taxonomy, *, added: bool, text: str
) -> _Analysis:
    if not labels:
        trivial = len(noise.words(text)) == 0
        return _Analysis(labels, "neutral", "cosmetic" if trivial else "low")
    top = max(taxonomy.topics[t].priority for t in labels)
    chosen = [t for t in labels if taxonomy.topics[t].priority == top]
    directions = [
        taxonomy.topics[t].on_added if added else taxonomy.topics[t].on_removed for t in chosen
    ]
    direction: Direction = (
        "expands"
        if "expands" in directions
        else "narrows"
        if "narrows" in directions
        else "neutral"
    )
    if _PLATFORM_PROMISE.search(noise.match_text(text)):
        # "we do not / will not ...": a new promise binds the platform; a dropped one frees it
        direction = "narrows" if added else "expands"
    severity = _severity(labels, direction, 1, taxonomy)
    return _Analysis(labels, direction, severity)


# --- annotation -----------------------------------------------------------------------------------


def _quote(text: str, limit: int = 60) -> str:
    text = one_line(noise.plain_text(text)).strip(" ,;:.")
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _fill(template: str, **values: str) -> str:
    class _Safe(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return ""

    return template.format_map(_Safe(values))


def _clip(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    stop = cut.rfind(". ")
    if stop > limit // 2:
        return cut[: stop + 1]
    return cut.rstrip() + "…"


def _change_phrase(analysis: _Analysis) -> str:
    removed = [w for w in analysis.removed_words if w][:2]
    added = [w for w in analysis.added_words if w][:2]
    if removed and added:
        return f" ('{_quote(' … '.join(removed), 50)}' → '{_quote(' … '.join(added), 50)}')"
    if added:
        return f" (adds '{_quote(' … '.join(added), 70)}')"
    if removed:
        return f" (drops '{_quote(' … '.join(removed), 70)}')"
    return ""


def _annotate(change: ClauseChange, analysis: _Analysis, taxonomy: Taxonomy, service: str) -> str:
    limit = taxonomy.max_annotation_chars
    if analysis.severity == "cosmetic":
        if analysis.cosmetic_reason == "moved" or change.kind == "moved":
            return "Moved to another place in the document; the wording is unchanged."
        if change.kind in ("added", "removed"):
            return "Only formatting or navigation text changed."
        return "Only formatting, punctuation, spelling (UK/US) or links changed; same meaning."
    topic = _primary(analysis.labels, taxonomy)
    if change.kind in ("added", "removed"):
        quoted = _quote((change.after if change.kind == "added" else change.before) or "", 80)
        if topic is None:
            verb = "New clause" if change.kind == "added" else "Removed clause"
            return _clip(f"{verb}: '{quoted}'.", limit)
        template = topic.added if change.kind == "added" else topic.removed
        text = _fill(template or "{why}", service=service, why=topic.why, short=topic.short)
        return _clip(text, limit)

    if analysis.events:
        ordered = sorted(analysis.events, key=lambda e: e.effect != "expands")
        parts = []
        for event in ordered[:2]:
            template = event.cue.added if event.appeared else event.cue.removed
            parts.append(_fill(template, word=_quote(event.word, 40), service=service))
        text = " ".join(parts)
        if len(text) < limit // 2 and topic is not None:
            text += " " + topic.why
        return _clip(text, limit)
    if analysis.gained and topic is not None:
        gained = taxonomy.topics[analysis.gained[0]]
        text = f"Now covers {gained.short}{_change_phrase(analysis)}. {gained.why}"
        return _clip(text, limit)
    if analysis.lost:
        lost = taxonomy.topics[analysis.lost[0]]
        text = f"No longer covers {lost.short}{_change_phrase(analysis)}. {lost.why}"
        return _clip(text, limit)
    if analysis.minor:
        return _clip(
            f"Minor rewording{_change_phrase(analysis)}; the meaning looks unchanged.", limit
        )
    if topic is not None:
        text = _fill(
            topic.reworded or "Rewords a clause about {short}{change}. {why}",
            service=service,
            why=topic.why,
            short=topic.short,
            change=_change_phrase(analysis),
        )
        return _clip(text, limit)
    return _clip(f"Rewords a clause{_change_phrase(analysis)}.", limit)


# --- public API -----------------------------------------------------------------------------------


def classify_change(
    change: ClauseChange, taxonomy: Taxonomy | None = None, *, service: str = ""
) -> ClauseChange:
    """The change with labels, direction, severity and annotation filled in.

    ``service`` names the platform in annotations ("Instagram may now ..."); default from the
    taxonomy ("the platform").
    """
    taxonomy = taxonomy or load_taxonomy()
    analysis = _analyse(change, taxonomy)
    annotation = _annotate(change, analysis, taxonomy, service or taxonomy.default_service)
    return dataclasses.replace(
        change,
        labels=analysis.labels,
        direction=analysis.direction,
        severity=analysis.severity,
        annotation=annotation,
    )


def summarise_change(change: ClauseChange, taxonomy: Taxonomy | None = None) -> str:
    """The change in a few words for a summary line: 'new AI training clause', 'licence now
    sublicensable', 'content licence reworded', 'minor edit'."""
    taxonomy = taxonomy or load_taxonomy()
    analysis = _analyse(change, taxonomy)
    if analysis.severity == "cosmetic":
        return "cosmetic edit"
    topic = _primary(analysis.labels, taxonomy)
    if change.kind == "added":
        return f"new {topic.short} clause" if topic else "new clause"
    if change.kind == "removed":
        return f"{topic.short} clause removed" if topic else "clause removed"
    if analysis.events:
        first = sorted(analysis.events, key=lambda e: e.effect != analysis.direction)[0]
        if first.appeared:
            return first.cue.short
        return f"'{_quote(first.word, 30)}' removed"
    if analysis.gained:
        return f"now about {taxonomy.topics[analysis.gained[0]].short}"
    if analysis.lost:
        return f"no longer about {taxonomy.topics[analysis.lost[0]].short}"
    if analysis.minor or topic is None:
        return "minor edit" if analysis.minor else "clause reworded"
    return f"{topic.short} reworded"
