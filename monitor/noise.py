"""Pure helpers that tell a real wording change from noise.

Noise is what a terms page does without its meaning changing: whitespace, punctuation and case;
UK and US spellings of the same page ("licence"/"license", "organise"/"organize"); link targets and
tracking parameters; a "Last updated" date alone; renumbered headings; the page served in another
language; variants the page alternates between (a help-centre sidebar, a UK and a US edition);
and page furniture (help-centre links, a company-rename banner). Whole-history rules (a block that
comes and goes, a doubled block) live with the report builder in ``monitor.report``.

Everything here works on plain strings and is deterministic; no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache


def wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- text normalisation ---------------------------------------------------------------------------

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)")
_MD_REF = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
        "\u200b": "",
        "\u200e": "",
        "\u200f": "",
        "\ufeff": "",
        "\u00ad": "",
    }
)
_NOTE_REFERENCE = re.compile(r"(?<=[^\s\[])\\?\[\d{1,3}\\?\]")
"""A numbered note reference stuck to a word ('deleted[50].', 'Learn more[8]'): pages renumber
their notes whenever one is added, so the number says nothing about the terms."""
_QUOTE_PAIRS = tuple((chr(code), value) for code, value in _QUOTES.items())
_MD_MARKS = re.compile(r"(?<!\w)[*_`]+|[*_`]+(?!\w)|^\s*(?:[#>]+|[-*+]\s)\s*", re.MULTILINE)


@lru_cache(maxsize=32768)
def plain_text(text: str) -> str:
    """Text as a reader sees it: link text kept, link targets, bare URLs and numbered note
    references ('[50]') dropped, plain quotes and dashes, Markdown emphasis removed, one space
    between words."""
    return " ".join(_reader_text(text, marks=True).split())  # as re.sub(r"\s+", " ", ...).strip()


def _reader_text(text: str, *, marks: bool) -> str:
    """``plain_text`` before its white space is made single; ``marks=False`` keeps Markdown's
    emphasis, heading, quote and list marks, which only the letters of a text do not need:
    removing them turns no letter into another and joins no two letters (a removed note
    reference or backslash joins what is on either side of it, but where a mark is next to one
    it keeps that side a non-letter either way)."""
    # each step runs only where what it looks for can be (most clauses hold no link, URL or
    # Markdown mark): a substring test costs far less than a regex scan of the whole text
    if not text.isascii():  # every character _QUOTES maps is outside ASCII
        # replacing the few present beats translate's per-character lookup; no replacement is
        # itself replaced, so the result is translate's
        for char, replacement in _QUOTE_PAIRS:
            if char in text:
                text = text.replace(char, replacement)
    if "[" in text:
        text = _MD_LINK.sub(r"\1", text)
        text = _MD_REF.sub(r"\1", text)
    if "://" in text or "www." in text.lower():  # only "w" and "W" match w when ignoring case
        text = _URL.sub(" ", text)
    if marks and _may_hold_marks(text):
        text = _MD_MARKS.sub(" ", text)
    if "[" in text:
        text = _NOTE_REFERENCE.sub("", text)
    if "\\" in text:
        text = text.replace("\\", "")
    return text


def _may_hold_marks(text: str) -> bool:
    """Whether ``_MD_MARKS`` can match: an emphasis or code mark, or a heading, quote or list
    marker at the start of a line."""
    if "*" in text or "_" in text or "`" in text or "\n" in text:
        return True
    return text.lstrip()[:1] in ("#", ">", "-", "+")


@lru_cache(maxsize=32768)
def match_text(text: str) -> str:
    """Lower-case plain text: what taxonomy patterns are searched in."""
    return plain_text(text).lower()


# --- UK / US spelling -----------------------------------------------------------------------------

_UK_US_WORDS: dict[str, str] = {
    "licence": "license",
    "licences": "licenses",
    "licenced": "licensed",
    "licencing": "licensing",
    "sublicence": "sublicense",
    "sub-licence": "sub-license",
    "defence": "defense",
    "offence": "offense",
    "offences": "offenses",
    "pretence": "pretense",
    "judgement": "judgment",
    "judgements": "judgments",
    "ageing": "aging",
    "enrol": "enroll",
    "enrolment": "enrollment",
    "fulfil": "fulfill",
    "fulfilment": "fulfillment",
    "instil": "instill",
    "whilst": "while",
    "amongst": "among",
    "learnt": "learned",
    "programme": "program",
    "programmes": "programs",
    "catalogue": "catalog",
    "dialogue": "dialog",
    "analogue": "analog",
    "cheque": "check",
    "grey": "gray",
    "tyre": "tire",
    "jewellery": "jewelry",
    "aluminium": "aluminum",
    "mould": "mold",
    "plough": "plow",
    "storey": "story",
    "towards": "toward",
    "afterwards": "afterward",
    "practise": "practice",
    "practised": "practiced",
    "per cent": "percent",
    "e-mail": "email",
    "e-mails": "emails",
    # lexical pairs of UK and US editions of the same legal page
    "breach": "violation",
    "breaches": "violations",
    "postcode": "zip",
    "mobile": "cell",
}
_DOUBLE_L = (
    "cancel",
    "label",
    "model",
    "travel",
    "signal",
    "total",
    "fuel",
    "level",
    "channel",
    "counsel",
    "dial",
    "tunnel",
    "marshal",
    "jewel",
    "equal",
    "report",  # never doubled; harmless
)
_OUR_KEEP = wordset(
    "your yours hour hours four pour tour tours flour sour detour devour contour glamour"
)
_IS_RULE = re.compile(r"^([a-z]{2,})is(e|ed|es|ing|ation|ations|er|ers|able)$")
_YS_RULE = re.compile(r"^([a-z]{2,})ys(e|ed|es|ing)$")
_OUR_RULE = re.compile(r"^([a-z]{2,})our(s|ed|ing|ite|ites|able|ably|er|ers)?$")
_TRE_RULE = re.compile(r"^([a-z]{3,})tre(s|d)?$")
_LL_RULE = re.compile(r"^([a-z]+?)ll(ed|ing|er|ers|or|ors)$")


@lru_cache(maxsize=65536)
def us_spelling(word: str) -> str:
    """One lower-case word in a canonical (US-leaning) spelling: UK and US variants compare equal.

    Applied to both sides of a comparison, so an over-eager rule ("advertise" -> "advertize") is
    harmless; only distinct words must never collide.
    """
    if word in _UK_US_WORDS:
        return _UK_US_WORDS[word]
    m = _IS_RULE.match(word)
    if m:
        return f"{m.group(1)}iz{m.group(2)}"
    m = _YS_RULE.match(word)
    if m:
        return f"{m.group(1)}yz{m.group(2)}"
    if word not in _OUR_KEEP:
        m = _OUR_RULE.match(word)
        if m and len(word) > 4:
            return f"{m.group(1)}or{m.group(2) or ''}"
    m = _TRE_RULE.match(word)
    if m:
        return f"{m.group(1)}ter{m.group(2) or ''}"
    m = _LL_RULE.match(word)
    if m and m.group(1) + "l" in _DOUBLE_L:
        return f"{m.group(1)}l{m.group(2)}"
    return word


# --- equivalence ----------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
DATE_RE = re.compile(
    rf"\b(?:(?:{_MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTHS})\.?,? \d{{4}}"
    rf"|(?:{_MONTHS}) \d{{4}}"
    r"|\d{4}-\d{2}-\d{2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4})\b",
    re.IGNORECASE,
)
_DATE_LINE = re.compile(
    r"\b(last (updated|modified|revised|changed|reviewed)|effective( date| as of| from| on)?|"
    r"(date of )?(last )?revision|updated( on| as of)?|revised( on)?|version date|valid from|"
    r"in (force|effect) (from|since|as of))\b",
    re.IGNORECASE,
)
_ENUMERATOR = re.compile(
    r"^\s*(?:(?:section|article|clause|part|§)\s*)?(?:\(?[0-9]+(?:\.[0-9]+)*[.)]?|\(?[a-z]\)|"
    r"\(?[ivxlc]+\)|[ivxlc]+\.)\s+",
    re.IGNORECASE,
)


def is_date_line(text: str) -> bool:
    """A short line whose point is a date: 'Last updated: 3 May 2024', 'Effective June 16, 2025'."""
    plain = plain_text(text)
    return len(plain) <= 160 and bool(_DATE_LINE.search(plain)) and bool(DATE_RE.search(plain))


_PREFIX_HYPHEN = re.compile(r"\b(sub|non|co|re|pre|e|multi|cross|anti|self|opt)[- ](?=[^\W\d_])")


def _fold_compounds(lowered: str) -> str:
    """'sub-licensable' -> 'sublicensable', 'non exclusive' -> 'nonexclusive'; other hyphens
    separate words ('open-source' and 'open source' both become two words)."""
    return _PREFIX_HYPHEN.sub(r"\1", lowered)


def words(text: str) -> list[str]:
    """Lower-case words of the plain text, UK/US spelling and hyphenation folded."""
    return [us_spelling(w) for w in _WORD.findall(_fold_compounds(match_text(text)))]


@lru_cache(maxsize=32768)
def equivalence_key(text: str) -> str:
    """A key two texts share when they differ only cosmetically: whitespace, punctuation, case,
    UK/US spelling, link targets, Markdown marks, a leading clause number, and the date of a
    'Last updated' / 'Effective' line."""
    plain = plain_text(text)
    if is_date_line(plain):
        plain = DATE_RE.sub(" <date> ", plain)
    plain = _ENUMERATOR.sub("", plain)
    return " ".join(map(us_spelling, _WORD.findall(_fold_compounds(plain.lower()))))


def is_cosmetic_edit(before: str | None, after: str | None) -> bool:
    """True when both texts exist and mean the same (see ``equivalence_key``)."""
    if before is None or after is None:
        return False
    return equivalence_key(before) == equivalence_key(after)


# Words whose presence or absence does not change what a clause lets the platform do. Negations,
# modals, quantifiers and limiters ("not", "may", "only", "all", "any", "without") are NOT here.
_FILLER = wordset(
    """
    a an the this that these those it its it's is are was were be been being am of to in on at by
    for from with as into onto upon about such like including include includes e g eg i e ie etc
    and or also which who whom whose where when there here so then thus therefore however
    has have had having do does did
    please learn read see find click tap here more information details below above following
    help center centre section page
    """
)


def content_word_changes(before: str, after: str) -> tuple[list[str], list[str]]:
    """(added, removed): content words (spelling folded, filler dropped) gained and lost, order
    ignored. Both empty when the edit only reshuffled filler words, punctuation or spelling."""
    b = Counter(w for w in words(before) if w not in _FILLER)
    a = Counter(w for w in words(after) if w not in _FILLER)
    added = sorted((a - b).elements())
    removed = sorted((b - a).elements())
    return added, removed


# --- language -------------------------------------------------------------------------------------

_ENGLISH_STOPWORDS = wordset(
    """
    the a an and or of to in on for with by from at as is are be been this that these those you your
    we our us it its they their not no may will can any all if which who when where than such other
    more about into under over after before what how
    """
)
_LETTERS = re.compile(r"[^\W\d_]+")
ENGLISH_SAMPLE_CHARS = 20_000
"""The language test reads this much of a text: enough words, at a fraction of the cost."""


def english_ratio(text: str) -> float:
    """Share of words that are common English function words: about 0.35-0.5 for English legal text,
    near 0 for other languages (and for scripts without spaces)."""
    return _english_ratio(text[:ENGLISH_SAMPLE_CHARS])


@lru_cache(maxsize=512)  # keyed by a sample of bounded size: a report's whole history fits
def _english_ratio(sample: str) -> float:
    # the letters of match_text(sample), without the work on its marks and white space (and
    # without caching a text of this size with the clauses')
    toks = _LETTERS.findall(_reader_text(sample, marks=False).lower())
    if not toks:
        return 0.0
    return sum(map(_ENGLISH_STOPWORDS.__contains__, toks)) / len(toks)


def is_other_language(reference: str, candidate: str) -> bool:
    """True when ``candidate`` is mostly not in the language of an English ``reference``."""
    ref = english_ratio(reference)
    cand = english_ratio(candidate)
    return ref >= 0.2 and cand < 0.15 and cand < ref * 0.5


# --- variants already seen ------------------------------------------------------------------------


def seen_keys(texts: Iterable[str]) -> set[str]:
    """Equivalence keys of every text, for 'has this wording been seen before?' checks."""
    return {equivalence_key(t) for t in texts}


# --- page furniture -------------------------------------------------------------------------------

_HELP_SECTION = re.compile(
    r"\b(?:other ways to get help|get help|need (?:more )?help|help cent(?:er|re)s?|"
    r"related (?:articles|links|topics|pages|help)|more resources|useful links|popular topics|"
    r"was this (?:page|article|information|answer) helpful)\b",
    re.IGNORECASE,
)
_RENAME_BANNER = re.compile(
    r"\bha(?:s|ve) changed (?:its|our|their) (?:company |corporate )?name\b|"
    r"\bcompany is now (?:called )?\w+\b|\bto reflect (?:the|our) new (?:company )?name\b",
    re.IGNORECASE,
)
_TITLE_QUESTION = re.compile(r"^(?:[IVXLC]+\.|\d+(?:\.\d+)*\.?)?\s*[^.!?]+\?$")
TITLE_MAX_CHARS = 120
"""A lone question this short is a section title (a table-of-contents entry), not a term."""
HELP_LINK_MAX_CHARS = 200
"""A clause under a help-navigation heading longer than this is read as text, not a link."""


def is_page_furniture(section: Iterable[str], text: str) -> bool:
    """Text that is on the page but not part of the terms: a help-centre sidebar entry ("Chat
    with Meta AI support assistant" under "Other ways to get help"), a company-rename banner
    ("Facebook Ireland Limited has changed its name to Meta Platforms Ireland Limited") or a lone
    question that titles a section in a table of contents."""
    plain = plain_text(text)
    if _RENAME_BANNER.search(plain):
        return True
    if len(plain) <= TITLE_MAX_CHARS and _TITLE_QUESTION.match(plain):
        return True  # "X. How will we notify you of changes to this Policy?": a contents entry
    heading = next(iter(reversed(tuple(section))), "")
    return len(plain) <= HELP_LINK_MAX_CHARS and bool(_HELP_SECTION.search(heading))


# --- notices about the page's own updates ---------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_DOCUMENT = (
    r"(?:(?:our|the|this|these)\s+)?(?:updated\s+|new\s+|previous\s+|earlier\s+|prior\s+)?"
    r"(?:privacy\s+)?(?:policy|policies|terms(?:\s+of\s+(?:service|use))?|notice|version)"
)
_DATE_START = (
    r"(?:\d|january|february|march|april|may|june|july|august|september|october|november|december)"
)
_NOTICE_LEAD = r"(?:(?:policy|other|key|recent|important)\s+updates?:?\s+)?"
_UPDATE_NOTICE = re.compile(
    rf"^{_NOTICE_LEAD}(?:"
    # "We updated our Privacy Policy on April 7, 2025." / "We're updating our Privacy Policy."
    rf"(?:we|we've|we have|we're|we are)\s+(?:recently\s+)?"
    rf"(?:updated|updating|changed|changing|revised|revising|made\s+(?:some\s+)?changes\s+to|"
    rf"reflected\s+(?:this|these)\s+changes?\s+in)\s+{_DOCUMENT}\b"
    rf"(?:\s+update)?\s*(?:[.!]?$|,?\s+(?:on|effective|as\s+of|from|starting|in)\s+{_DATE_START}"
    rf"|\s+with\s+(?:more\s+|new\s+)?(?:details|information)\s+(?:about|on)\b"
    rf"|\s+to\s+(?:reflect|clarify|explain|describe|include|add|give|provide)\b)"
    # "We've added information about how WhatsApp provides an option ..."
    rf"|(?:we've|we have)\s+(?:added|included)\s+(?:more\s+)?(?:information|details)"
    rf"\s+(?:about|on)\b"
    # "The updates go into effect on April 7, 2025."
    rf"|(?:the|these)\s+(?:updates?|changes)\s+(?:will\s+)?(?:go|goes|went|come|comes|take|takes|"
    rf"took|are|is|will\s+be|become|becomes)\s+(?:into\s+|in\s+)?(?:effect|effective)\b"
    # "View our previous policy." / "Read the new policy."
    rf"|(?:view|read|see|review|check\s+out|learn\s+more\s+about)\s+{_DOCUMENT}\s*[.!]?$"
    r")",
    re.IGNORECASE,
)
NOTICE_MAX_CHARS = 300
"""A sentence longer than this states more than an update of the page."""


def sentences(text: str) -> list[str]:
    """The sentences of a clause's plain text."""
    return [x.strip() for x in _SENTENCE.split(plain_text(text)) if x.strip()]


def is_update_notice(sentence: str) -> bool:
    """A sentence about the page's own revision, not a term: 'We updated our Privacy Policy on
    April 7, 2025.', 'The updates go into effect on ...', 'View our previous policy.', 'We've
    added information about how WhatsApp provides ...'."""
    plain = plain_text(sentence).strip(" *-")
    return len(plain) <= NOTICE_MAX_CHARS and bool(_UPDATE_NOTICE.match(plain))


def only_update_notices_changed(before: str | None, after: str | None) -> bool:
    """True when every sentence gained or lost between the two texts (either may be None: an
    added or removed clause) is a notice about the page's own update: the edit says *that* the
    page changed, or when; what changed is in the other clauses."""
    old = Counter(equivalence_key(x) for x in sentences(before or ""))
    new = Counter(equivalence_key(x) for x in sentences(after or ""))
    changed = [x for x in sentences(after or "") if old[equivalence_key(x)] < 1]
    changed += [x for x in sentences(before or "") if new[equivalence_key(x)] < 1]
    return bool(changed) and all(is_update_notice(x) for x in changed)


# --- error messages in place of the text ----------------------------------------------------------

_ERROR_NOTICE = re.compile(
    r"^(?:sorry[,.!]?\s+)?(?:an\s+unexpected\s+error\s+(?:has\s+)?occurred|something\s+went\s+wrong"
    r"|(?:this|the)\s+page\s+(?:isn't|is\s+not|is\s+no\s+longer)\s+available"
    r"|the\s+link\s+you\s+followed\s+may\s+be\s+broken|page\s+not\s+found)\b",
    re.IGNORECASE,
)
ERROR_NOTICE_MAX_CHARS = 200
"""An error message is short: a longer clause that starts like one is text about errors."""


def is_error_notice(text: str) -> bool:
    """A clause that is a site's error message ('An unexpected error has occurred. Try reloading
    the page or come back later.'), shown where a page of the document failed to load."""
    plain = plain_text(text)
    return len(plain) <= ERROR_NOTICE_MAX_CHARS and bool(_ERROR_NOTICE.match(plain))
