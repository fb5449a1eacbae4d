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
import difflib
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
    sublicensable transferable exclusive commercial sponsored public private affiliates partners
    third"""
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
    kept_by: re.Pattern[str] | None = None
    """Its disappearance is no event while this still matches the new text ('generative' dropped
    from 'generative AI models' while 'AI models' remain)."""
    only_with: re.Pattern[str] | None = None
    """It counts only in a sentence that also matches this ('AI' in a sentence that uses data,
    not in 'due to the nature of AI, outputs may not be unique')."""


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
                kept_by=(
                    _compile(raw["kept_by"], path=path, key=f"cue[{i}].kept_by")
                    if "kept_by" in raw
                    else None
                ),
                only_with=(
                    _compile(raw["only_with"], path=path, key=f"cue[{i}].only_with")
                    if "only_with" in raw
                    else None
                ),
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
    override: Direction | None = None
    """The effect when the words around the cue decide it (a qualifier dropped from a promise)."""
    text: str = ""
    """The annotation when the cue's own templates do not fit."""

    @property
    def effect(self) -> Direction:
        if self.override is not None:
            return self.override
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
    stance: str = ""
    """For a whole clause about AI: 'pause', 'use', 'control' or 'promise' when its words say so."""
    renamed: tuple[tuple[str, str], ...] = ()
    """Names or numbers swapped like for like ('Subscriber' -> 'User', 'D.7' -> 'D.1') when
    nothing else changed."""


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
    """Cues present on one side only. A cue whose words still appear in the new clause has not
    been removed (and one already in the old clause has not been added), however often it
    occurs: an annotation must never contradict the text it sits on."""
    events = []
    for cue in taxonomy.cues:
        if not _cue_applies(cue, labels, taxonomy):
            continue
        # an occurrence anywhere keeps the cue present; only one in a sentence that counts
        # (see _cue_match) makes it appear or disappear
        found_before, found_after = _cue_match(cue, before), _cue_match(cue, after)
        if found_before and cue.regex.search(after):
            found_after = found_after or cue.regex.search(after)
        if found_after and cue.regex.search(before):
            found_before = found_before or cue.regex.search(before)
        if found_after and not found_before:
            word, appeared, other = found_after.group(0), True, before
        elif found_before and not found_after:
            if cue.kept_by is not None and cue.kept_by.search(after):
                event = _qualifier_dropped(cue, found_before.group(0), before)
                if event is not None:
                    events.append(event)
                continue
            word, appeared, other = found_before.group(0), False, after
        else:
            continue
        if not _phrase_in(word, _word_line(other)):
            events.append(_Event(cue, appeared, word))
    return tuple(events)


def _cue_match(cue: Cue, text: str) -> re.Match[str] | None:
    """The cue's first occurrence that counts: not in a sentence that only points elsewhere
    ('more details about the affiliates ... in our Trust Center'), and in a sentence matching
    ``only_with`` when the cue has one."""
    found = cue.regex.search(text)
    if found is None:
        return None
    for sentence in _SENTENCE_IN_MATCHED.split(text):
        if not sentence:
            continue
        found = cue.regex.search(sentence)
        if found is None or _is_pointer(sentence):
            continue
        if cue.only_with is not None and not cue.only_with.search(sentence):
            continue
        return found
    return None


_SENTENCE_IN_MATCHED = re.compile(r"(?<=[a-z0-9)\"'][.!?;])\s+")
"""Between sentences of a clause's matching text (lower case, one line)."""


def _qualifier_dropped(cue: Cue, word: str, before: str) -> _Event | None:
    """'generative' dropped from 'we do not train generative AI models' while AI is still named:
    the promise now covers more, which narrows the platform. Outside a promise: no event (the
    clause may cover more, or say the same in fewer words)."""
    for sentence in re.split(r"(?<=[.;])\s+", before):
        if word in sentence and _PLATFORM_PROMISE.search(sentence):
            text = (
                f"Drops '{word}' from a promise while AI is still named: the promise now covers "
                f"AI in general, not only {word} AI."
            )
            return _Event(cue, False, word, override="narrows", text=text)
    return None


def _phrase_in(phrase: str, text_words: str) -> bool:
    """Whether the words of ``phrase`` occur, in order and adjacent, among ``text_words``
    (a space-joined, normalised word list with a leading and trailing space)."""
    needle = " ".join(noise.words(phrase))
    return bool(needle) and f" {needle} " in text_words


@lru_cache(maxsize=4096)
def _word_line(text: str) -> str:
    return " " + " ".join(noise.words(text)) + " "


def _span_words(change: ClauseChange) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Inserted and deleted runs of words, from the differ's spans (or a bag-of-words fallback).

    A deleted run whose words still appear elsewhere in the new clause was moved, not dropped
    (and an inserted run already in the old clause is not new): neither is quoted as a change."""
    before, after = change.before or "", change.after or ""
    if change.words:
        ins = [
            noise.plain_text(s.text) for s in change.words if s.op == "insert" and s.text.strip()
        ]
        dels = [
            noise.plain_text(s.text) for s in change.words if s.op == "delete" and s.text.strip()
        ]
    else:
        ins, dels = noise.content_word_changes(before, after)
    old_line, new_line = _word_line(before), _word_line(after)
    added = tuple(w for w in ins if w and noise.words(w) and not _phrase_in(w, old_line))
    removed = tuple(w for w in dels if w and noise.words(w) and not _phrase_in(w, new_line))
    return added, removed


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
        return _analyse_whole(labels, taxonomy, added=True, text=after, section=change.section)
    if change.kind == "removed":
        labels = _label_matched(mb, taxonomy)
        return _analyse_whole(labels, taxonomy, added=False, text=before, section=change.section)

    lb = _label_matched(mb, taxonomy)
    la = _label_matched(ma, taxonomy)
    labels = _ordered(set(lb) | set(la), taxonomy)
    if noise.is_cosmetic_edit(before, after):
        reason = "moved" if change.kind == "moved" else "format"
        return _Analysis(labels, "neutral", "cosmetic", cosmetic_reason=reason)
    if _only_pointers_changed(before, after):
        return _Analysis(labels, "neutral", "low", cosmetic_reason="pointer")
    if (
        labels
        and all(taxonomy.topics[t].group == "ai" for t in labels)
        and _only_description_changed(before, after)
    ):
        return _Analysis(labels, "neutral", "low", cosmetic_reason="description")

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
        # ... and coarser still when the clause stays in the topic's group: a ban on reusing AI
        # outputs that stops saying 'related AI services' is still a ban, not a narrower one
        groups_before = {taxonomy.topics[t].group for t in lb}
        groups_after = {taxonomy.topics[t].group for t in la}
        for tid in gained:
            if taxonomy.topics[tid].group in groups_before:
                continue
            expanding += taxonomy.topics[tid].on_added == "expands"
            narrowing += taxonomy.topics[tid].on_added == "narrows"
        for tid in lost:
            if taxonomy.topics[tid].group in groups_after:
                continue
            expanding += taxonomy.topics[tid].on_removed == "expands"
            narrowing += taxonomy.topics[tid].on_removed == "narrows"
    direction: Direction = (
        "expands" if expanding > narrowing else "narrows" if narrowing > expanding else "neutral"
    )
    added_words, removed_words = _span_words(change)
    content_added, content_removed = noise.content_word_changes(before, after)
    renames: tuple[tuple[str, str], ...] = ()
    only_renames = False
    if len(content_added) + len(content_removed) <= _RENAME_WORDS:
        renames, only_renames = _renames(before, after, taxonomy)
    if only_renames:
        # a product, company or defined term renamed, a section renumbered: same terms
        return _Analysis(
            labels,
            "neutral",
            "low",
            added_words=added_words,
            removed_words=removed_words,
            minor=True,
            renamed=renames,
        )
    changed = _without(content_added, [w for _, new in renames for w in noise.words(new)])
    changed += _without(content_removed, [w for old, _ in renames for w in noise.words(old)])
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


_NUMBERING = re.compile(r"^\(?(?:\d+(?:\.\d+)*|[ivxlc]{1,5}|[a-z]|[A-Z]\.?\d+(?:\.\d+)*)[.)]?$")
"""A section number or cross-reference: '2.', '(c)', '(iii)', 'D.7.'."""
_NOT_A_NAME = noise.wordset(
    """we you our your us they their them it its i he she his her this these that those the a an
    if when where while for and or but not no all any each every some such other"""
)


def _name_token(token: str) -> str:
    """The token without surrounding punctuation when it is a number or looks like a name
    (capitalised), else ''."""
    bare = token.strip("\"'“”‘’,;:!?*[]")
    if _NUMBERING.match(bare):
        return bare
    bare = bare.rstrip(".)").lstrip("(")
    if len(bare) < 2 or not bare[0].isupper() or bare.lower() in _NOT_A_NAME:
        return ""
    if bare.lower() in _STRONG_WORDS:
        return ""
    return bare


def _is_rename(old: list[str], new: list[str], taxonomy: Taxonomy) -> bool:
    """A short run of names or numbers replaced by another: 'Subscriber' -> 'User', '2.' -> '4.',
    'La Plateforme' -> 'Mistral AI Studio'. A word that carries a topic (a cue such as 'AI' or
    'Affiliates') counts only inside a longer name that starts and ends with plain name words."""
    if not old or not new or len(old) > 3 or len(new) > 3:
        return False
    a, b = (" ".join(noise.words(" ".join(run))) for run in (old, new))
    if a.rstrip("s") == b.rstrip("s"):
        return False  # 'Product' -> 'Products' is no new name
    if {w for w in a.split() if len(w) > 1 and not w.isdigit()} & set(b.split()):
        return False  # 'Terms' -> 'Terms 3': a word added next to the same name
    for run in (old, new):
        names = [_name_token(t) for t in run]
        if not all(names):
            return False
        cued = [any(c.regex.search(n.lower()) for c in taxonomy.cues) for n in names]
        if any(cued) and (len(run) < 2 or cued[0] or cued[-1]):
            return False
    return True


_RENAME_WORDS = 16
"""Renames are looked for only when at most this many content words changed (a rename touches a
few words; a long rewording is read as a rewording, and the word alignment stays cheap)."""
_RENAME_TOKENS = 1500
"""...and only in clauses of at most this many words a side."""


def _renames(
    before: str, after: str, taxonomy: Taxonomy
) -> tuple[tuple[tuple[str, str], ...], bool]:
    """Names and numbers swapped like for like between the two wordings, and whether nothing
    else changed."""
    old, new = noise.plain_text(before).split(), noise.plain_text(after).split()
    if max(len(old), len(new)) > _RENAME_TOKENS:
        return (), False
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    renames: list[tuple[str, str]] = []
    only = True
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal" or noise.words(" ".join(old[i1:i2])) == noise.words(" ".join(new[j1:j2])):
            continue  # the same words, other punctuation
        if op == "replace" and _is_rename(old[i1:i2], new[j1:j2], taxonomy):
            renames.append((" ".join(old[i1:i2]), " ".join(new[j1:j2])))
        else:
            only = False
    return tuple(renames), only and bool(renames)


def _without(words: list[str], drop: list[str]) -> list[str]:
    """``words`` less one occurrence of each word of ``drop``."""
    left = list(words)
    for word in drop:
        if word in left:
            left.remove(word)
    return left


_PLATFORM_PROMISE = re.compile(
    r"(?<!\byou )(?<!\busers )\b(?:do not|don't|will not|won't|shall not|never|are not going to|"
    r"does not|doesn't|is not|are not|isn't|aren't)(?: \w+ly)?(?: be)? (?:use|used|using|share|"
    r"shared|sharing|sell|sold|train|trained|training|disclose|disclosed|provide|provided|licen[cs]e|"
    r"licen[cs]ed|transfer|transferred|collect|collected|access|accessed|read|review|reviewed|upload|"
    r"uploaded|send|sent|claim|own|store|stored|retain|retained|extract|extracted|mine|mined|scan|"
    r"scanned|analy[sz]e|analy[sz]ed)\b"
    r"|\bwe claim no (?:rights|ownership)\b"
    r"|\bwithout (?:relying on|sharing (?:it |them |your data )?with|sending (?:it |them )?to) "
    r"third parties\b|\b(?:data|information|content) (?:remains?|stays?|is kept) (?:private|"
    r"inaccessible|confidential|on your device)\b"
)
"""A promise by the platform not to do something with your data (not the user's own duties)."""
_SAY_NO_CONTROL = re.compile(
    r"\byou (?:can|may|have the right to|are able to|will be able to)"
    r"(?: easily| always| at any time)? (?:choose|opt[- ]?out|object|turn off|switch off|disable|"
    r"withdraw|decide|control|change)\b"
    r"|\bthe right to (?:opt[- ]?out|object)\b"
)
"""A user's way to say no: its arrival narrows what the platform may do, its removal widens it."""
_PAUSE = re.compile(
    r"\b(?:delay(?:s|ed|ing)?|paus(?:e|es|ed|ing)|postpon\w*|halt\w*|suspend\w*)\b[^.]{0,120}"
    r"\b(?:use|using|train\w*|develop\w*)\b[^.]{0,120}"
    r"\b(?:ai|artificial intelligence|models?|generative|machine learning)\b"
)
"""A platform saying it puts off AI use of your data: its arrival narrows, its removal widens."""
_AFFIRMED_USE = re.compile(
    r"\bwe(?:'ll|'re| will| may| can| also| now| might| could| are| to)*\s+"
    r"(?:use|using|process|processing|collect|share|train|rely on)\b[^.]{0,240}"
    r"\b(?:to|for|in)\b[^.]{0,60}\b(?:train\w*|develop\w*|improv\w*|build\w*|creat\w*|"
    r"power\w*)\b[^.]{0,80}\b(?:ai|artificial intelligence|generative|models?|llms?|"
    r"machine learning)\b"
)
"""A platform stating it uses data to train or build AI: outweighs a carve-out in the same
clause ("we'll use public posts ... we don't use private messages")."""


_NAVIGATION = re.compile(
    r"^(?:learn more|see more|read more|find out more|more info\w*|help (?:center|centre)|"
    r"privacy (?:center|centre)|go to|visit|back to|return to|related (?:articles|topics|links)|"
    r"was this (?:article |page )?helpful|table of contents|contents|share this|print|"
    r"cookie settings|skip to|jump to|view (?:our )?previous|see (?:our )?previous)\b"
)
"""Help-page furniture: a sidebar link or a navigation line is not a term of service."""
_HELP_SECTION = re.compile(
    r"\b(?:get help|ways to get help|need help|help (?:center|centre)|related (?:articles|topics|"
    r"links)|was this helpful|more resources|useful links|contact us|support)\b",
    re.IGNORECASE,
)
"""A section of help-page links: its short lines are navigation, whatever they mention."""
_ENDS_ON_DELETION = re.compile(
    r"\b(?:until|when|once|after)\b[^.]{0,60}\b(?:is|are|has been|have been|you)?\s*"
    r"(?:fully |permanently )?(?:delet|remov)\w*"
)
_SURVIVES = re.compile(
    r"\bperpetual|\birrevocabl|\bsurviv|\beven (?:after|if) you delet"
    r"|\b(?:continu\w*|keep|keeps|go on|goes on) (?:to )?us(?:e|ing)\b"
)


_ENUMERATOR = re.compile(r"^\s*(?:\(?[0-9ivx]+(?:\.[0-9]+)*[.)]?|\(?[a-z][.)])\s+")
_POINTER = re.compile(
    r"^(?:see|for (?:more |further )?(?:details|information)|to learn more|learn more|read more|"
    r"please (?:also )?(?:carefully )?(?:see|refer|read|review|visit)|"
    r"if you (?:would like|want) to (?:learn|know|find out) more|"
    r"we(?:'ve| have) (?:described|published|explained|outlined)|"
    r"you can (?:find|read|learn) (?:out )?more|more information (?:about|on|is available))\b"
    r"|\b(?:described|explained) in (?:more )?detail (?:in|below|above)\b"
)
"""A sentence that only points to another page or section."""
_VERBS = noise.wordset(
    """is are was were be been may will can must shall should could would use uses used collect
    collects share shares train trains grant grants sell sells do does don't doesn't not never
    allow allows apply applies process processes keep keeps store stores give gives provide
    provides we you"""
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|(?<=[a-z][.!?])(?=[A-Z][a-z])")
"""Between sentences; also where a page glued two together ('your account.For more details')."""


def _sentences(text: str) -> list[str]:
    return [x.strip() for x in _SENTENCE.split(noise.plain_text(text)) if x.strip()]


def _is_pointer(sentence: str) -> bool:
    return bool(_POINTER.search(_ENUMERATOR.sub("", sentence.lower()).strip(" *-")))


def _filler(text: str) -> str:
    """'pointer', 'heading' or '' for a whole clause that states no term by itself."""
    sentences = _sentences(text)
    if sentences and all(_is_pointer(x) for x in sentences):
        return "pointer"
    plain = noise.plain_text(text).strip()
    words = noise.words(plain)
    if plain.endswith("?") and len(words) <= 15:
        return "heading"
    short = 0 < len(words) <= 10 and not plain.endswith((".", ";", ":", ","))
    if short and not any(w in _VERBS for w in words):
        return "heading"
    return ""


def _only_pointers_changed(before: str, after: str) -> bool:
    """A reworded clause whose only new or dropped sentences point elsewhere."""
    old = {noise.equivalence_key(x) for x in _sentences(before)}
    new = {noise.equivalence_key(x) for x in _sentences(after)}
    changed = [x for x in _sentences(after) if noise.equivalence_key(x) not in old]
    changed += [x for x in _sentences(before) if noise.equivalence_key(x) not in new]
    return bool(changed) and all(_is_pointer(x) for x in changed)


def _only_description_changed(before: str, after: str) -> bool:
    """A reworded clause whose new or dropped sentences only describe the platform's AI or
    point elsewhere (see ``_describes_only``)."""
    old = {noise.equivalence_key(x) for x in _sentences(before)}
    new = {noise.equivalence_key(x) for x in _sentences(after)}
    changed = [x for x in _sentences(after) if noise.equivalence_key(x) not in old]
    changed += [x for x in _sentences(before) if noise.equivalence_key(x) not in new]
    return bool(changed) and all(
        _is_pointer(x) or _describes_only(noise.match_text(x)) for x in changed
    )


def _is_navigation(text: str, section: tuple[str, ...] = ()) -> bool:
    """A short line that only points elsewhere ('Learn more', 'Help Center', a bare link, a line
    under 'Other ways to get help')."""
    plain = noise.match_text(text).strip(" .:;-*>#")
    if not plain:
        return True
    if len(plain.split()) > 12:
        return False
    if section and _HELP_SECTION.search(section[-1]) and not plain.endswith("."):
        return True
    bare_link = re.fullmatch(r"\s*[*-]?\s*\[[^\]]*\]\([^)]*\)\s*\.?\s*", text) is not None
    return bare_link or bool(_NAVIGATION.match(plain))


_STAKE = re.compile(
    r"\b(?:you|your|yours|user|users|user's|users'|personal|people|people's|individuals?|"
    r"customers?|members?|accounts?)\b"
)
"""Words that put the reader (or their data) in a sentence."""
_RULE_WORDS = re.compile(
    r"\b(?:may|might|must|shall|will|won't|should|would|can't|cannot|never|not|no|don't|"
    r"doesn't|only|solely|unless|except|required|requires?|prohibit\w*|allow\w*|permit\w*|"
    r"agree\w*|consent\w*|opt\w*|choose|rights?|licen[cs]e\w*|terms|conditions|"
    r"polic(?:y|ies)|govern\w*|appl(?:y|ies)|us(?:e|es|ed|ing))\b"
)
"""Words of a rule, a promise, a permission, a choice, of which terms apply, or of a use."""
_CONFORMS = re.compile(
    r"\b(?:is|are) (?:subject to|consistent with|in line with|guided by)\b.{0,80}\b"
    r"(?:principles|commitments|standards?|values)\b"
)
"""'Our use of AI is subject to our AI Principles': a statement of conformity, not a term."""
_PURPOSE_VERB = noise.wordset(
    """develop improve provide use train share build create conduct disclose remove operate
    personalize personalise offer support enable protect comply analyze analyse show research
    clearly do don't never to for"""
)


def _describes_only(matched: str) -> bool:
    """A whole clause that only describes the platform's technology ('Microsoft leverages AI in
    many of our products', 'Data is prepared for pre-training'): it names neither the reader nor
    their data and states no rule, promise or choice, or only says the platform conforms to its
    own principles. A list item or a purpose ('develop and improve AI ...') is not description."""
    if _ENUMERATOR.match(matched) or matched.lstrip().startswith(("*", "-", "(")):
        return False
    first = noise.words(matched[:40])
    if not first or first[0] in _PURPOSE_VERB:
        return False
    if _CONFORMS.search(matched):
        return True
    return not _STAKE.search(matched) and not _RULE_WORDS.search(matched)


def _stance(text: str) -> str:
    """'pause', 'use', 'control', 'promise' or '' for a whole clause's (matched) text."""
    if _PAUSE.search(text):
        return "pause"
    if _AFFIRMED_USE.search(text):
        return "use"
    if _SAY_NO_CONTROL.search(text):
        return "control"
    if _platform_promise(text):
        return "promise"
    return ""


# --- whole content-licence clauses: who binds whom ------------------------------------------------

_OPENING = re.compile(
    r"(?:^|(?<=[\s.;:!?]))(?:\(?(?:[0-9]+(?:\.[0-9]+)*|[ivxlc]+|[a-z])[.)])?[\s*\-•>\"'(]*$"
)
"""What may precede a sentence's first word: an enumerator, a list bullet, quotes, spaces."""


def _platform_promise(text: str) -> bool:
    """A promise by the platform ("we will not sell your content"), not a rule for the reader put
    as an imperative ("Don't use any software to crawl the site", "(v) do not access ... by
    automated means"): a negation that opens a sentence or a list item tells the user what not
    to do."""
    for match in _PLATFORM_PROMISE.finditer(text):
        head = _OPENING.sub("", text[: match.start()])
        if head and not head.endswith((".", ";", ":", "!", "?")):
            return True
    return False


_CONTENT_LICENCE = frozenset(
    {
        "LICENSE_GRANT",
        "LICENSE_SUBLICENSE_TRANSFER",
        "LICENSE_DURATION_SURVIVAL",
        "LICENSE_PURPOSE_COMMERCIAL",
        "NAME_LIKENESS_USE",
    }
)
_USER_GRANT = re.compile(
    r"\b(?:you|customers?|users?|members?|publishers?)(?: hereby| also| further| expressly| "
    r"irrevocably| specifically| are)*(?: agree to| agree that you)? (?:grant(?:s|ing)?|give|"
    r"provide|license|licence|assign|authori[sz]e|let|allow)\b(?! (?:us )?(?:no|any)\b)"
    r"|\bwe have your permission to\b|\bis (?:perpetually |irrevocably |hereby )*licensed to\b"
)
"""The user handing rights over: "you grant us", "you give us permission", "you let us use it"."""
_LIKENESS_CONTROL = re.compile(
    r"\byou (?:can|may|are able to|will be able to)(?: always| also| easily| at any time)? "
    r"(?:choose|decide|control|limit|prevent|stop|opt[- ]?out|turn off|switch off|disable|change|"
    r"adjust|manage|hide|remove|keep)\b"
    r"|\b(?:settings?|preferences?|controls?)\b[^.]{0,80}\b(?:not|never|won't|don't|doesn't)\b"
    r"[^.]{0,40}\b(?:appear|show|shown|use|used|display|displayed|include|included)\b"
    r"|\bif you (?:do not|don't) want\b|\bopt[- ]?out\b|\bthe right to object\b"
)
"""A setting or choice that keeps the user's name, photo or voice out of ads or promotions."""


def _licence_stance(stance: str, labels: tuple[str, ...], matched: str, *, ai: bool) -> str:
    """The stance of a whole clause about content licences (and no AI label), when its words
    decide it better than :func:`_stance`:

    - ``"grant"`` when the user grants rights: "We don't claim ownership of your content, but you
      grant us a licence" widens the platform's rights whatever the promise around it says;
    - ``"promise"`` for a setting that keeps your name and photo out of ads: it binds the
      platform like a promise (and its removal frees it).
    """
    if ai or not set(labels) & _CONTENT_LICENCE:
        return stance
    grant = _USER_GRANT.search(matched) is not None
    if stance == "promise" and grant:
        return "grant"
    if "NAME_LIKENESS_USE" in labels and not grant and _LIKENESS_CONTROL.search(matched):
        return "promise"
    return stance


def _analyse_whole(
    labels: tuple[str, ...],
    taxonomy: Taxonomy,
    *,
    added: bool,
    text: str,
    section: tuple[str, ...] = (),
) -> _Analysis:
    if _is_navigation(text, section):
        return _Analysis(labels, "neutral", "cosmetic", cosmetic_reason="navigation")
    filler = _filler(text)
    if filler:
        return _Analysis(labels, "neutral", "low", cosmetic_reason=filler)
    if not labels:
        return _Analysis(labels, "neutral", "low")
    if all(taxonomy.topics[t].group == "ai" for t in labels) and _describes_only(
        noise.match_text(text)
    ):
        return _Analysis(labels, "neutral", "low", cosmetic_reason="description")
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
    ai = any(taxonomy.topics[t].group == "ai" for t in labels)
    matched = noise.match_text(text)
    stance = _licence_stance(_stance(matched), labels, matched, ai=ai)
    if stance == "pause" and ai:
        # "we're delaying our use of your information for AI": the platform holds back
        direction = "narrows" if added else "expands"
    elif stance == "use" and "AI_TRAINING_ON_USER_DATA" in labels:
        direction = "expands" if added else "narrows"
    elif stance in ("promise", "control") and (
        stance == "promise" or "AI_OPT_OUT_CONTROL" in labels
    ):
        # "we do not / will not ...", "you can opt out": a new promise or control binds the
        # platform; a dropped one frees it
        direction = "narrows" if added else "expands"
    else:
        stance = ""
        matched = noise.match_text(text)
        if (
            set(labels) <= {"LICENSE_DURATION_SURVIVAL", "LICENSE_GRANT"}
            and "LICENSE_DURATION_SURVIVAL" in labels
            and _ENDS_ON_DELETION.search(matched)
            and not _SURVIVES.search(matched)
        ):
            # "this license will continue until the content has been fully deleted"
            direction = "narrows" if added else "expands"
    severity = _severity(labels, direction, 1, taxonomy)
    return _Analysis(labels, direction, severity, stance=stance if ai else "")


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


def _quotes(spans: tuple[str, ...], limit: int, other: str) -> str:
    """Up to two spans quoted within ``limit`` characters, joined by ' … '. A span cut short is
    kept only if what is left of it is still absent from ``other`` (the opposite side of the
    clause): a quote must never claim words that are in fact on both sides."""
    other_line = _word_line(other)
    shown: list[str] = []
    room = limit
    for span in spans[:2]:
        if room < 12:
            break
        quoted = _quote(span, room)
        if _phrase_in(quoted.rstrip("…"), other_line):
            continue
        shown.append(quoted)
        room -= len(quoted) + 3
    return " … ".join(shown)


def _change_phrase(change: ClauseChange, analysis: _Analysis) -> str:
    before, after = change.before or "", change.after or ""
    removed = _quotes(tuple(w for w in analysis.removed_words if w), 50, after)
    added = _quotes(tuple(w for w in analysis.added_words if w), 50, before)
    if removed and added:
        return f" ('{removed}' → '{added}')"
    if added:
        return f" (adds '{_quotes(tuple(w for w in analysis.added_words if w), 70, before)}')"
    if removed:
        return f" (drops '{_quotes(tuple(w for w in analysis.removed_words if w), 70, after)}')"
    return ""


def _agreeing(analysis: _Analysis, taxonomy: Taxonomy, *, added: bool) -> Topic | None:
    """For a whole clause: the first label (core groups first) whose own direction is the one
    found, so a new promise reads 'New promise not to train AI', not 'New AI training clause'."""
    ranked = sorted(analysis.labels, key=lambda t: GROUP_ORDER.index(taxonomy.topics[t].group))
    for tid in ranked:
        topic = taxonomy.topics[tid]
        if (topic.on_added if added else topic.on_removed) == analysis.direction:
            return topic
    return None


def _annotate(change: ClauseChange, analysis: _Analysis, taxonomy: Taxonomy, service: str) -> str:
    limit = taxonomy.max_annotation_chars
    if analysis.severity == "cosmetic":
        if analysis.cosmetic_reason == "moved" or change.kind == "moved":
            return "Moved to another place in the document; the wording is unchanged."
        if analysis.cosmetic_reason == "navigation":
            return "Navigation or help-page link, not part of the terms."
        if change.kind in ("added", "removed"):
            return "Only formatting or navigation text changed."
        return "Only formatting, punctuation, spelling (UK/US) or links changed; same meaning."
    if analysis.cosmetic_reason == "pointer":
        return (
            "Only a pointer to another page or section changed; nothing here changes what applies."
        )
    if analysis.cosmetic_reason == "heading":
        what = (
            "New"
            if change.kind == "added"
            else "Removed"
            if change.kind == "removed"
            else "Changed"
        )
        return f"{what} heading or question; the clauses under it are reported on their own."
    topic = _primary(analysis.labels, taxonomy)
    if analysis.cosmetic_reason == "description":
        if change.kind in ("added", "removed"):
            what = "New" if change.kind == "added" else "Removed"
            return (
                f"{what} general description of {service}'s AI; it states no rule, promise or "
                "choice about your data."
            )
        return (
            f"Only sentences describing {service}'s AI in general, or pointing elsewhere, were "
            "reworded; no rule, promise or choice about your data changed."
        )
    if change.kind in ("added", "removed"):
        topic = _agreeing(analysis, taxonomy, added=change.kind == "added") or topic
        quoted = _quote((change.after if change.kind == "added" else change.before) or "", 80)
        if topic is None:
            verb = "New clause" if change.kind == "added" else "Removed clause"
            return _clip(f"{verb}: '{quoted}'.", limit)
        if analysis.stance == "pause":
            text = (
                f"{service} says it is holding back its use of your information for AI. "
                if change.kind == "added"
                else f"Removes {service}'s statement that it was holding back its use of your "
                "information for AI: that use may now go ahead. "
            )
            return _clip(text + topic.why, limit)
        template = topic.added if change.kind == "added" else topic.removed
        text = _fill(template or "{why}", service=service, why=topic.why, short=topic.short)
        return _clip(text, limit)

    if analysis.renamed:
        swaps = "; ".join(
            f"'{_quote(a, 40)}' now reads '{_quote(b, 40)}'" for a, b in analysis.renamed[:2]
        )
        more = " and more" if len(analysis.renamed) > 2 else ""
        return _clip(
            f"Only a name or a number changed: {swaps}{more}. The terms read the same.", limit
        )
    if analysis.events:
        ordered = sorted(analysis.events, key=lambda e: e.effect != "expands")
        parts = []
        for event in ordered[:2]:
            if event.text:
                parts.append(event.text)
                continue
            template = event.cue.added if event.appeared else event.cue.removed
            parts.append(_fill(template, word=_quote(event.word, 40), service=service))
        text = " ".join(parts)
        if len(text) < limit // 2 and topic is not None:
            text += " " + topic.why
        return _clip(text, limit)
    if analysis.gained and topic is not None:
        gained = taxonomy.topics[analysis.gained[0]]
        text = f"Now covers {gained.short}{_change_phrase(change, analysis)}. {gained.why}"
        return _clip(text, limit)
    if analysis.lost:
        lost = taxonomy.topics[analysis.lost[0]]
        text = f"No longer covers {lost.short}{_change_phrase(change, analysis)}. {lost.why}"
        return _clip(text, limit)
    if analysis.minor:
        return _clip(
            f"Minor rewording{_change_phrase(change, analysis)}; the meaning looks unchanged.",
            limit,
        )
    if topic is not None:
        text = _fill(
            topic.reworded or "Rewords a clause about {short}{change}. {why}",
            service=service,
            why=topic.why,
            short=topic.short,
            change=_change_phrase(change, analysis),
        )
        return _clip(text, limit)
    return _clip(f"Rewords a clause{_change_phrase(change, analysis)}.", limit)


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
    if analysis.stance == "pause":
        return "AI use of your data paused" if change.kind == "added" else "AI pause lifted"
    if analysis.cosmetic_reason in ("pointer", "heading"):
        return analysis.cosmetic_reason
    if analysis.cosmetic_reason == "description":
        return "description of AI"
    if change.kind == "added":
        return f"new {topic.short} clause" if topic else "new clause"
    if change.kind == "removed":
        return f"{topic.short} clause removed" if topic else "clause removed"
    if analysis.events:
        first = sorted(analysis.events, key=lambda e: e.effect != analysis.direction)[0]
        if first.appeared:
            return first.cue.short
        if first.text:
            return "promise widened"
        return f"'{_quote(first.word, 30)}' removed"
    if analysis.gained:
        return f"now about {taxonomy.topics[analysis.gained[0]].short}"
    if analysis.lost:
        return f"no longer about {taxonomy.topics[analysis.lost[0]].short}"
    if analysis.minor or topic is None:
        return "minor edit" if analysis.minor else "clause reworded"
    return f"{topic.short} reworded"


# --- facts a reader can act on: dates and ways to say no ------------------------------------------

_DAY_MONTH = (
    r"\d{1,2}(?:st|nd|rd|th)? (?:of )?(?:january|february|march|april|may|june|july|august|"
    r"september|october|november|december)\b|(?:january|february|march|april|may|june|july|"
    r"august|september|october|november|december) \d{1,2}(?:st|nd|rd|th)?\b"
)
_EFFECTIVE = re.compile(
    r"\b(?P<cue>effective|take effect|takes effect|taking effect|come into effect|"
    r"comes into effect|in effect|apply|applies|starting|beginning|from|as of|until|by|before|"
    r"no later than)"
    r"(?: on| from| as of)?\s+(?P<date>" + noise.DATE_RE.pattern + "|" + _DAY_MONTH + ")",
    re.IGNORECASE,
)
_DEADLINE_CUES = frozenset({"until", "by", "before", "no later than"})
_LOOSE_CUES = frozenset({"from", "apply", "applies", "starting", "beginning"})
_ABOUT_TERMS = re.compile(r"\b(?:terms|policy|change|update|effect)", re.IGNORECASE)
_SAY_NO = re.compile(
    r"\b(?:opt(?:ing)?[- ]?out|object(?:ing|ion)?|right to object|withdraw (?:your )?consent|"
    r"turn(?:ing)? off|switch(?:ing)? off|disable|unsubscribe|do not sell)\b",
    re.IGNORECASE,
)
_LINK = re.compile(r"\[([^\]]{1,200})\]\((https?://[^)\s]{1,500})\)|(https?://[^\s)\]]{1,500})")
_SETTINGS_PATH = re.compile(
    r"\b(?:Settings|Preferences|Account Center|Accounts Centre|Accounts Center|Privacy Center)"
    r"(?:\s*(?:>|›|→|»)\s*[A-Z][\w'&,-]*(?: [\w'&-]+){0,4}){1,5}"
)


@dataclass(frozen=True)
class Facts:
    """What a reader can act on, found in the words of the changed clauses."""

    dates: tuple[str, ...] = ()
    """'effective June 26, 2024', 'until 26 June 2024': dates in force or deadlines."""
    opt_outs: tuple[str, ...] = ()
    """Ways to say no: links near 'object' / 'opt out' and 'Settings > ...' paths."""
    deadline: str = ""
    """The first 'until' / 'by' / 'before' date among ``dates`` ('' when none)."""


def _unique(items: list[str], limit: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        if item and item.lower() not in {k.lower() for k in seen}:
            seen[item] = None
    return tuple(seen)[:limit]


def find_facts(texts: list[str] | tuple[str, ...], *, old_texts: tuple[str, ...] = ()) -> Facts:
    """Effective dates, deadlines and opt-out routes stated in ``texts`` (raw clause texts).

    A date or route already present in ``old_texts`` is not new and is left out."""
    old_plain = " ".join(noise.plain_text(t) for t in old_texts).lower()
    old_raw = " ".join(old_texts)
    dates: list[str] = []
    deadline = ""
    routes: list[str] = []
    for text in texts:
        plain = noise.plain_text(text)
        for m in _EFFECTIVE.finditer(plain):
            cue = m.group("cue").lower()
            phrase = f"{cue if cue in _DEADLINE_CUES else 'effective'} {m.group('date')}"
            if m.group("date").lower() in old_plain:
                continue  # the old version already gave this date
            if cue in _DEADLINE_CUES:
                if not _SAY_NO.search(plain[max(0, m.start() - 200) : m.end() + 40]):
                    continue  # "by 2025" in a sentence about something else
                deadline = deadline or m.group("date")
            elif cue in _LOOSE_CUES and not _ABOUT_TERMS.search(plain):
                continue  # "from March 2020" in a sentence that is not about the terms
            dates.append(phrase)
        if not _SAY_NO.search(text):
            continue
        for m in _LINK.finditer(text):
            label, url = (m.group(1) or "").strip(), m.group(2) or m.group(3)
            window = text[max(0, m.start() - 160) : m.end() + 80]
            if (_SAY_NO.search(label) or _SAY_NO.search(window)) and url not in old_raw:
                routes.append(url.rstrip(".,;"))
        for m in _SETTINGS_PATH.finditer(noise.plain_text(text)):
            if m.group(0) not in old_raw:
                routes.append(m.group(0).strip())
    return Facts(dates=_unique(dates, 4), opt_outs=_unique(routes, 4), deadline=deadline)


# --- the headline: one sentence a journalist can quote --------------------------------------------


def _headline_rank(change: ClauseChange, taxonomy: Taxonomy) -> tuple[int, int, int, int]:
    core = any(
        taxonomy.topics[t].group in CORE_GROUPS for t in change.labels if t in taxonomy.topics
    )
    return (
        {"high": 3, "medium": 2, "low": 1}.get(change.severity, 0),
        1 if core else 0,
        1 if change.direction != "neutral" else 0,
        1 if change.kind != "removed" else 0,
    )


def _sentence_of(annotation_part: str) -> str:
    """'Adds 'x': Instagram may now pass ...' -> 'Instagram may now pass ...'."""
    text = annotation_part.split(": ", 1)[1] if ": " in annotation_part else annotation_part
    return text.strip().rstrip(".")


def headline_for(
    changes: list[ClauseChange] | tuple[ClauseChange, ...],
    *,
    service: str = "",
    facts: Facts | None = None,
    taxonomy: Taxonomy | None = None,
) -> str:
    """One sentence stating what changed, from already classified clause changes:
    'Instagram may now use your public posts to train AI; you can object until June 26, 2024'.

    It states a direction only when the analysis found one, and says plainly when nothing but
    wording changed."""
    taxonomy = taxonomy or load_taxonomy()
    name = service or taxonomy.default_service
    name = name[:1].upper() + name[1:]
    shown = [c for c in changes if c.severity != "cosmetic"]
    if not shown:
        return f"{name}: wording or layout changes only; nothing that changes your rights"
    top = max(shown, key=lambda c: _headline_rank(c, taxonomy))
    sentence = _headline_sentence(top, taxonomy, name)
    facts = facts or Facts()
    tail = []
    if facts.opt_outs or facts.deadline:
        verb = (
            "you can object" if _SAY_NO.search(top.after or top.before or "") else "you can opt out"
        )
        tail.append(f"{verb} until {facts.deadline}" if facts.deadline else verb)
    effective = next((d for d in facts.dates if not d.startswith(tuple(_DEADLINE_CUES))), "")
    if effective:
        tail.append(effective)
    text = sentence + ("; " + "; ".join(tail) if tail else "")
    return _clip(one_line(text), 200)


def _headline_sentence(change: ClauseChange, taxonomy: Taxonomy, service: str) -> str:
    topic = _primary(change.labels, taxonomy)
    analysis = _analyse(change, taxonomy)
    if topic is None:
        what = {"added": "adds a clause", "removed": "removes a clause"}.get(
            change.kind, "rewords a clause"
        )
        section = _quote(change.section[-1], 60) if change.section else ""
        return f"{service} {what}" + (f" under '{section}'" if section else "")
    if change.kind == "modified" and analysis.events:
        first = sorted(analysis.events, key=lambda e: e.effect != change.direction)[0]
        if first.text:
            return f"{service} widens a promise about AI: it no longer says only '{first.word}' AI"
        template = first.cue.added if first.appeared else first.cue.removed
        sentence = _sentence_of(_fill(template, word=_quote(first.word, 40), service=service))
        if not sentence.startswith(service):
            sentence = f"{service}: {sentence[:1].upper()}{sentence[1:]}"
        return sentence
    if change.kind in ("added", "removed") and analysis.stance == "pause":
        if change.kind == "added":
            return f"{service} holds back its use of your information for AI"
        return f"{service} drops its statement that it was holding back AI use of your information"
    scope = _scope(change.after if change.kind != "removed" else change.before)
    key = (topic.id, change.kind if change.kind in ("added", "removed") else "modified")
    if topic.id == "AI_TRAINING_ON_USER_DATA" and change.direction == "expands":
        return f"{service} may now use {scope or 'your information'} to train or improve AI"
    if topic.id == "AI_NO_TRAINING_COMMITMENT":
        if change.direction == "expands":
            return f"{service} drops or weakens its promise not to train AI on your content"
        if change.direction == "narrows":
            return f"{service} promises not to train AI on your content"
    if key == ("AI_INTERACTION_DATA", "added"):
        return f"{service} adds terms on what happens to your chats and interactions with its AI"
    if change.direction == "expands":
        return f"{service} widens its terms on {topic.short}"
    if change.direction == "narrows":
        return f"{service} narrows its terms on {topic.short}"
    verb = {"added": "adds a clause on", "removed": "removes a clause on"}.get(
        change.kind, "rewords its clause on"
    )
    return f"{service} {verb} {topic.short}"


_SCOPES = tuple(
    re.compile(pattern)
    for pattern in (
        r"\bpublic (?:posts|photos|comments|content)(?: (?:and|or) (?:comments|photos|captions|"
        r"posts))?\b",
        r"\bprivate (?:messages|content|chats|posts|photos)\b",
        r"\b(?:chats|conversations|interactions) with [a-z' ]{2,30}\b(?:ai|assistant)"
        r"(?: at meta)?\b",
        r"\byour (?:posts|photos|videos|content|chats|prompts|conversations|messages|inputs)\b",
        r"\bpublic information\b",
    )
)
"""What data a clause is about, most specific first ('public posts' before 'public information')."""


def _scope(text: str | None) -> str:
    matched = noise.match_text(text or "")
    for pattern in _SCOPES:
        m = pattern.search(matched)
        if m:
            found = m.group(0)
            return f"your {found}" if found.startswith(("public", "private")) else found
    return ""
