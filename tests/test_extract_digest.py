"""Extraction.digest: what lets a check skip the walk of a page whose chrome changed at every
request. Equal digests must mean equal clauses, or a change would be missed."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from lxml import etree

from monitor.errors import ExtractError
from monitor.extract import Extraction, clauses_to_text

DATA = Path(__file__).resolve().parent / "data"

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Terms</title>
<script nonce="{nonce}">var rid = "{token}";</script></head>
<body data-request-id="{token}">
<a class="skip" href="#main">Skip to main content</a>
<div id="cookie-banner" class="cookie-consent-banner"><p>We use cookies ({token}).</p></div>
<header class="site-header"><div class="promo"><p>{promo}</p></div><nav><a href="/">Home</a></nav>
</header>
<main id="main"><h1>Terms of Service</h1>
<section><h2>Your content</h2>
<p class="c{token_class}">You grant us a <a href="/licence?ref={token}">licence</a> to use
content you share.</p>
<ul><li><strong>We do not train AI models on your private messages.</strong></li>
<li>You can opt out in Settings.</li></ul>
{extra}
</section></main>
<footer><p>Page generated in {seconds} s</p>
<form><input type="hidden" name="csrf" value="{token}"><button>Subscribe</button></form></footer>
</body></html>"""


def page(**changes: str) -> str:
    values = {
        "nonce": "n1",
        "token": "t1",
        "token_class": "1",
        "promo": "Spring sale!",
        "seconds": "0.231",
        "extra": "",
    }
    return PAGE.format(**{**values, **changes})


def read(html: str, **options: object) -> tuple[str | None, str]:
    extraction = Extraction(html, **options)  # type: ignore[arg-type]
    digest = extraction.digest()
    return digest, clauses_to_text(extraction.clauses())


@pytest.mark.parametrize("case", sorted(p.name for p in (DATA / "extract").iterdir() if p.is_dir()))
def test_taking_the_digest_first_leaves_the_clauses_as_they_are(case: str) -> None:
    """The digest cuts skipped content out of the parsed page; the walk after it must find the
    same clauses (the check path takes the digest first and walks only when it differs)."""
    folder = DATA / "extract" / case
    source = next(folder.glob("input.*"))
    options = json.loads((folder / "options.json").read_text(encoding="utf-8"))
    plain = Extraction(source.read_bytes(), **options).clauses()
    first = Extraction(source.read_bytes(), **options)
    first.digest()
    assert first.clauses() == plain


def test_chrome_tokens_and_attributes_leave_the_digest_unchanged() -> None:
    first = read(page())
    again = read(
        page(nonce="n2", token="t2", token_class="7", promo="Free shipping today", seconds="0.9")
    )
    assert first[0] is not None
    assert again == first


@pytest.mark.parametrize(
    "extra",
    [
        "<p>We may use your content to train AI.</p>",  # a new clause
        "<p><b>New heading</b></p><p>Text.</p>",  # a pseudo-heading
        "<h3>Sub</h3>",  # a heading without text after it
        "<p hidden>Hidden text.</p>",  # hidden: no text, but the page differs where it is read
        "<br>",
        "<p> </p>",  # whitespace only
    ],
)
def test_content_changes_change_the_digest(extra: str) -> None:
    assert read(page(extra=extra))[0] != read(page())[0]


def test_a_list_item_whose_hidden_part_changes_is_read_again() -> None:
    # whether an item is one bold clause reads all its text, hidden parts included
    one = page(extra="<ul><li><b>All bold.</b><span hidden>x</span></li></ul>")
    other = page(extra="<ul><li><b>All bold.</b><span hidden>not bold</span></li></ul>")
    assert read(one)[0] != read(other)[0]


def test_selectors_are_part_of_the_digest() -> None:
    html = page()
    whole = read(html)
    selected = read(html, select=["main section"])
    removed = read(html, remove=["ul"])
    assert len({whole[0], selected[0], removed[0]}) == 3
    assert "Terms of Service" in whole[1] and "Terms of Service" not in selected[1]


def test_non_html_pages_have_no_digest() -> None:
    assert Extraction("# Terms\n\nText.\n", media_type="text/markdown").digest() is None
    assert Extraction("Terms. Text.", media_type="text/plain").digest() is None


def test_unreadable_pages_fail_before_any_digest() -> None:
    with pytest.raises(ExtractError, match="matches nothing"):
        Extraction(page(), select=["#absent"])


_TAGS = ["p", "li", "div", "span", "strong", "b", "h2", "h3", "br", "a", "td", "script", "nav"]
_ATTRIBUTES = [
    ("class", "cookie-banner"),
    ("class", "x"),
    ("hidden", ""),
    ("aria-hidden", "true"),
    ("role", "navigation"),
    ("role", "main"),
    ("style", "display:none"),
    ("href", "#top"),
    ("data-x", "1"),
]


def _mutate(root: etree._Element, rng: random.Random) -> None:
    """One random edit anywhere: text, tail, attribute, tag, removal, insertion, reordering."""
    element = rng.choice([e for e in root.iter() if isinstance(e.tag, str)])
    kind = rng.randrange(8)
    if kind == 0:
        element.text = (element.text or "") + rng.choice([" x", "y", "  ", "Skip to content"])
    elif kind == 1:
        element.tail = (element.tail or "") + rng.choice([" z", " "])
    elif kind == 2:
        name, value = rng.choice(_ATTRIBUTES)
        element.set(name, value)
    elif kind == 3 and element.attrib:
        del element.attrib[rng.choice(sorted(element.attrib))]
    elif kind == 4 and element.getparent() is not None:
        element.getparent().remove(element)
    elif kind == 5:
        element.tag = rng.choice(_TAGS)
    elif kind == 6:
        child = etree.SubElement(element, rng.choice(_TAGS))
        child.text = rng.choice(["New text.", "", " "])
    elif kind == 7 and len(element) > 1:
        child = element[0]
        element.remove(child)
        element.append(child)


@pytest.mark.parametrize(
    "source",
    [
        DATA / "extract" / "noise" / "input.html",
        DATA / "extract" / "sections" / "input.html",
        DATA / "extract" / "span-paragraphs" / "input.html",
        None,  # the page above
    ],
)
def test_equal_digests_mean_equal_clauses_under_random_edits(source: Path | None) -> None:
    html = page() if source is None else source.read_text(encoding="utf-8")
    rng = random.Random(20261202)
    texts_by_digest: dict[str, set[str]] = {}
    for _ in range(150):
        root = etree.fromstring(html, etree.HTMLParser(remove_comments=True))
        for _ in range(rng.randint(1, 2)):
            _mutate(root, rng)
        try:
            digest, text = read(etree.tostring(root, method="html", encoding="unicode"))
        except ExtractError:
            continue
        assert digest is not None
        texts_by_digest.setdefault(digest, set()).add(text)
    shared = [texts for texts in texts_by_digest.values() if len(texts) > 1]
    assert shared == []
    # the edits did reach both kinds of places: some left the digest alone, most did not
    assert 3 <= len(texts_by_digest) < 150
