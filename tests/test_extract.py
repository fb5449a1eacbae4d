"""extract: data-driven cases (tests/data/extract), noise that must not change text, round trips."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from monitor.clauses import Clause
from monitor.errors import ExtractError
from monitor.extract import clauses_to_text, extract_clauses, normalise_text

DATA = Path(__file__).resolve().parent / "data" / "extract"
CASES = sorted(path.name for path in DATA.iterdir() if path.is_dir())


def run_case(name: str) -> list[Clause]:
    case = DATA / name
    source = next(case.glob("input.*"))
    options = json.loads((case / "options.json").read_text(encoding="utf-8"))
    return extract_clauses(source.read_bytes(), **options)


@pytest.mark.parametrize("name", CASES)
def test_case_extracts_expected_text(name: str) -> None:
    expected = (DATA / name / "expected.md").read_text(encoding="utf-8")
    assert clauses_to_text(run_case(name)) == expected


@pytest.mark.parametrize("name", CASES)
def test_canonical_text_parses_back_to_the_same_clauses(name: str) -> None:
    clauses = run_case(name)
    assert extract_clauses(clauses_to_text(clauses), media_type="text/markdown") == clauses


def test_real_page_and_archive_markdown_agree() -> None:
    # The raw Meta AI page and Open Terms Archive's Markdown of the same capture: same clauses.
    assert run_case("meta-ai-terms-html") == run_case("meta-ai-terms-md")


def test_real_page_sections_come_from_bold_headings() -> None:
    clauses = run_case("meta-ai-terms-html")
    sections = {clause.section for clause in clauses}
    assert ("Your Commitments",) in sections
    eligibility = next(c for c in clauses if c.text.startswith("Without limiting the Meta Terms"))
    assert eligibility.section == ("Your Commitments",)
    assert all("facebook.com" not in clause.text for clause in clauses)  # link targets dropped


# --- noise that must not change the text -----------------------------------------------------

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<script nonce="{nonce}">var token = "{token}";</script><style nonce="{nonce}">p {{}}</style></head>
<body data-session="{token}">
<div id="cookie-banner" class="{banner_class}">
<p>We use cookies. {token}</p><button>OK</button></div>
<main data-reactid="{token}">
<h1>Terms</h1>
<p>Read the <a href="https://example.com/privacy?utm_source={token}&amp;fbclid={token}">Privacy
Policy</a>{spaces}before you use the service.</p>
<form method="post"><input type="hidden" name="csrf" value="{token}"></form>
<p>{quote_open}Content{quote_close} means anything you post.</p>
</main>
<script>window.__data = {{"request": "{token}"}};</script>
</body></html>"""


def page(**overrides: str) -> str:
    values = {
        "nonce": "abc123",
        "token": "t-1",
        "banner_class": "cookie-notice",
        "spaces": " ",
        "quote_open": "“",
        "quote_close": "”",
    }
    values.update(overrides)
    return PAGE.format(**values)


@pytest.mark.parametrize(
    "variant",
    [
        {"nonce": "zz99", "token": "t-2"},
        {"banner_class": "consent-overlay gdpr"},
        {"spaces": " \n\t\u00a0 "},
        {"quote_open": '"', "quote_close": '"'},
    ],
    ids=["per-request-tokens", "another-banner", "whitespace", "straight-quotes"],
)
def test_noise_does_not_change_the_text(variant: dict[str, str]) -> None:
    assert extract_clauses(page(**variant)) == extract_clauses(page())


def test_noise_is_gone_and_text_stays() -> None:
    assert extract_clauses(page()) == [
        Clause(("Terms",), "Read the Privacy Policy before you use the service."),
        Clause(("Terms",), '"Content" means anything you post.'),
    ]


def test_a_cookie_policy_page_keeps_its_text() -> None:
    html = '<body><div id="cookie-policy" class="cookies-page"><h1>Cookies Policy</h1>'
    html += "<p>We use cookies to remember you.</p></div></body>"
    assert extract_clauses(html) == [Clause(("Cookies Policy",), "We use cookies to remember you.")]


def test_same_page_as_bytes_or_text_extracts_the_same() -> None:
    html = page()
    assert extract_clauses(html.encode("utf-8")) == extract_clauses(html)


# --- structure -----------------------------------------------------------------------------


def test_headings_nest_and_bold_paragraphs_act_as_headings() -> None:
    html = """<h1>Terms</h1><p>Intro.</p><h2>1. Content</h2><p><b>1.1 Licence</b></p>
    <p>You grant us a licence.</p><p><b>1.2 Deletion</b></p><p>You can delete it.</p>
    <h2>2. Privacy</h2><p>See the policy.</p><h3>2.1 Data</h3><p>We keep logs.</p>"""
    assert [(c.section, c.text) for c in extract_clauses(html)] == [
        (("Terms",), "Intro."),
        (("Terms", "1. Content", "1.1 Licence"), "You grant us a licence."),
        (("Terms", "1. Content", "1.2 Deletion"), "You can delete it."),
        (("Terms", "2. Privacy"), "See the policy."),
        (("Terms", "2. Privacy", "2.1 Data"), "We keep logs."),
    ]


def test_a_long_bold_paragraph_stays_a_clause() -> None:
    text = "You agree that we may use your content to train and improve our artificial "
    text += "intelligence models and services, including by sharing it with partners."
    assert extract_clauses(f"<p><strong>{text}</strong></p>") == [Clause((), text)]


def test_a_selected_region_inside_hidden_chrome_is_kept() -> None:
    # Meta's rendered pages mark the whole content aria-hidden while a cookie dialog is open.
    html = (
        '<div aria-hidden="true"><h1>Terms</h1><p>Text.</p></div><div role="dialog">Cookies?</div>'
    )
    assert extract_clauses(html, select=["h1 ~ p", "h1"]) == [Clause(("Terms",), "Text.")]
    # without a selector, nothing else is left: the hidden region is what a reader sees
    assert extract_clauses(html) == [Clause(("Terms",), "Text.")]


def test_aria_hidden_content_is_dropped_when_the_page_has_other_text() -> None:
    terms = "<h1>Terms</h1>" + "<p>You grant us a licence to use your content worldwide.</p>" * 6
    html = f'<main>{terms}</main><div aria-hidden="true"><p>Decorative duplicate.</p></div>'
    assert "Decorative duplicate." not in [c.text for c in extract_clauses(html)]


def test_bold_list_items_are_clauses_and_titled_items_stay_headings() -> None:
    html = """<h1>Terms</h1><ol><li><strong>Your commitments</strong><ul>
    <li><strong>You can't impersonate others.</strong></li>
    <li><b>Sexual solicitation</b></li></ul></li></ol><p><b>Licence</b></p><p>We may use it.</p>"""
    assert [(c.section, c.text) for c in extract_clauses(html)] == [
        (("Terms", "Your commitments"), "You can't impersonate others."),
        (("Terms", "Your commitments"), "Sexual solicitation"),
        (("Terms", "Licence"), "We may use it."),
    ]
    markdown = (
        "# Terms\n\n1.  **Your commitments**\n\n    * **You can't impersonate others.**\n"
        "    * **Sexual solicitation**\n\n**Licence**\n\nWe may use it.\n"
    )
    assert extract_clauses(markdown, media_type="text/markdown") == extract_clauses(html)


def test_several_selectors_keep_document_order() -> None:
    html = '<p class="b">Second.</p><p id="a">First?</p><p class="b">Third.</p>'
    clauses = extract_clauses(html, select=["#a", ".b"])
    assert [c.text for c in clauses] == ["Second.", "First?", "Third."]


def test_remove_applies_before_select() -> None:
    html = '<div id="t"><p>Keep.</p><p class="ad">Drop.</p></div>'
    assert extract_clauses(html, select=["#t"], remove=[".ad"]) == [Clause((), "Keep.")]


def test_range_selector_bounds() -> None:
    html = "<p id=a>A</p><p id=b>B</p><p id=c>C</p><p id=d>D</p>"
    between = {"startAfter": "#a", "endBefore": "#d"}
    assert [c.text for c in extract_clauses(html, select=[between])] == ["B", "C"]
    inclusive = {"startBefore": "#b", "endAfter": "#c"}
    assert [c.text for c in extract_clauses(html, select=[inclusive])] == ["B", "C"]
    assert [c.text for c in extract_clauses(html, remove=[inclusive])] == ["A", "D"]


@pytest.mark.parametrize(
    ("html", "select", "message"),
    [
        ("<p>Text</p>", ["#missing"], "matches nothing"),
        ("<p>Text</p>", [{"startBefore": "p", "endAfter": "#missing"}], "matches nothing"),
        ("<script>only()</script><nav>Menu</nav>", [], "no text remains"),
        ("   ", [], "empty"),
    ],
)
def test_extract_error(html: str, select: list[str], message: str) -> None:
    with pytest.raises(ExtractError, match=message):
        extract_clauses(html, select=select)


def test_invalid_css_selector_is_an_extract_error() -> None:
    with pytest.raises(ExtractError, match="invalid CSS selector"):
        extract_clauses("<p>x</p>", select=["p[[["])


@pytest.mark.parametrize(
    ("content", "charset", "expected"),
    [
        ("<p>Café – “ok”</p>".encode("cp1252"), "windows-1252", 'Café - "ok"'),
        (b'<meta charset="windows-1252"><p>Caf\xe9</p>', None, "Café"),
        (b"\xef\xbb\xbf<p>Caf\xc3\xa9</p>", None, "Café"),
        (b"<p>Caf\xe9</p>", None, "Café"),  # not UTF-8: Windows-1252 fallback
    ],
)
def test_bytes_are_decoded(content: bytes, charset: str | None, expected: str) -> None:
    assert [c.text for c in extract_clauses(content, charset=charset)] == [expected]


def test_plain_text_numbered_headings() -> None:
    text = "1. Scope\n\nThese terms apply.\n\n1.1 Users\n\nEveryone.\n\n2. You must be 13.\n"
    assert [(c.section, c.text) for c in extract_clauses(text, media_type="text/plain")] == [
        (("1. Scope",), "These terms apply."),
        (("1. Scope", "1.1 Users"), "Everyone."),
        (("1. Scope", "1.1 Users"), "2. You must be 13."),  # a sentence, not a heading
    ]


# --- normalisation and the canonical text --------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  a \n\t b  ", "a b"),
        ("it’s “quoted” ‘here’", "it's \"quoted\" 'here'"),
        ("a – b — c ‑ d ‒ e − f", "a - b - c - d - e - f"),
        (
            "zero\u200bwidth soft\u00adhyphen \ufeffbom non\u00a0breaking",
            "zerowidth softhyphen bom non breaking",
        ),
        ("ﬁnal ＡＢＣ…", "final ABC..."),
        ("x² ½", "x² ½"),  # superscripts and fractions keep their meaning
        ("Changes #", "Changes"),
        ("Section ¶", "Section"),
        ("Use C#", "Use C#"),
        ("e\u0301", "é"),
    ],
)
def test_normalise_text(raw: str, expected: str) -> None:
    assert normalise_text(raw) == expected
    assert normalise_text(expected) == expected


TRICKY = [
    Clause((), "1. Starts like a numbered list"),
    Clause((), "# not a heading"),
    Clause(("A *star* [link](x)",), "- a dash, + a plus, > a quote, | a pipe, = equals"),
    Clause(("A *star* [link](x)",), "**not bold** and _not em_ and `not code` and <b>not html</b>"),
    Clause(("A *star* [link](x)", "B"), "back\\slash \\* and ---"),
    Clause(("A *star* [link](x)", "B", "C"), "---"),
    Clause(("A *star* [link](x)",), "Back to a parent section."),
    Clause(("A *star* [link](x)",), "~~~ fence 3.1 not a list 2) but this is escaped"),
    Clause(("Other",), "Text in another top section."),
]


def test_canonical_text_round_trips_markdown_syntax_in_text() -> None:
    text = clauses_to_text(TRICKY)
    assert extract_clauses(text, media_type="text/markdown") == TRICKY


def test_canonical_text_format() -> None:
    clauses = [
        Clause(("Terms", "1. Content"), "You keep it."),
        Clause(("Terms", "2. AI"), "We train."),
    ]
    assert (
        clauses_to_text(clauses)
        == "# Terms\n\n## 1. Content\n\nYou keep it.\n\n## 2. AI\n\nWe train.\n"
    )


# --- the whole corpus, when present ----------------------------------------------------------


def _declared_rules(corpus: Path, snapshot: Path) -> tuple[list, list]:
    service, document = snapshot.parts[-3], snapshot.parts[-2]
    declaration = json.loads(
        (corpus / "declarations" / "genai-eu-declarations" / f"{service}.json").read_text()
    )
    terms = declaration["terms"][document]
    page = snapshot.stem.split("__", 1)[1] if "__" in snapshot.stem else None
    for entry in terms.get("combine", [terms]):
        merged = {**{k: v for k, v in terms.items() if k != "combine"}, **entry}
        slug = urlparse(merged["fetch"]).path.strip("/").replace("/", "-")
        if page is None or slug == page:
            select, remove = merged.get("select", []), merged.get("remove", [])
            select = [select] if isinstance(select, (str, dict)) else select
            remove = [remove] if isinstance(remove, (str, dict)) else remove
            return select, remove
    raise AssertionError(f"no declaration entry for {snapshot}")


_ERROR_PAGE = re.compile(rb"This page isn(?:'|\xe2\x80\x99)t available")


def test_every_corpus_snapshot_extracts_deterministically(corpus_dir: Path) -> None:
    snapshots = sorted((corpus_dir / "snapshots").glob("*/*/*.html"))
    assert snapshots
    extracted = 0
    for snapshot in snapshots:
        select, remove = _declared_rules(corpus_dir, snapshot)
        raw = snapshot.read_bytes()
        try:
            clauses = extract_clauses(raw, select=select, remove=remove)
        except ExtractError:
            # the archive captured Meta's "This page isn't available" error page
            assert _ERROR_PAGE.search(raw), f"{snapshot}: selectors match nothing"
            continue
        extracted += 1
        assert len(clauses) >= 5, snapshot
        assert extract_clauses(raw, select=select, remove=remove) == clauses, snapshot
        text = clauses_to_text(clauses)
        assert extract_clauses(text, media_type="text/markdown") == clauses, snapshot
    assert extracted >= len(snapshots) - 5


def test_a_whole_document_run_into_one_paragraph_is_split_into_sentences() -> None:
    sentences = [f"Clause {k} lets the company use your content in way {k}." for k in range(150)]
    text = "Terms\n=====\n\n" + "".join(sentences) + "\n"  # no spaces: as some archives hold it
    clauses = extract_clauses(text, media_type="text/markdown")
    assert len(clauses) > 50
    assert all(len(c.text) < 1000 for c in clauses)
    assert clauses[0].section == ("Terms",)
    assert "Clause 149 lets" in clauses[-1].text
    again = extract_clauses(clauses_to_text(clauses), media_type="text/markdown")
    assert again == clauses


@pytest.mark.parametrize(
    ("media_type", "page"),
    [
        (
            "text/html",
            "<main><h2>Your \x1b]0;pwned\x07content</h2>"
            "<p>We may use \x1b[2J\x1b[31myour posts\x1b[0m to train\x00 AI\x7f models.\x9b</p>"
            "</main>",
        ),
        ("text/markdown", "## Your \x1b]0;pwned\x07content\n\nWe may use \x1b[2Jyour posts\x08."),
        ("text/plain", "YOUR \x1bCONTENT\n\nWe may use\x0b your\x0c posts\x1f\x1e\x05 here."),
    ],
)
def test_control_characters_from_a_page_never_reach_the_text(media_type: str, page: str) -> None:
    """ESC, BEL and the other C0/C1 controls of a hostile page would reach emails, the web page
    and terminals: none survives extraction (tab and newline only separate words)."""
    clauses = extract_clauses(page.encode("utf-8"), media_type=media_type, charset="utf-8")
    texts = [clause.text for clause in clauses] + [
        part for clause in clauses for part in clause.section
    ]
    stored = clauses_to_text(clauses)
    controls = [ch for text in [*texts, stored] for ch in text if _is_control(ch)]
    assert controls == [], texts
    assert "posts" in stored
    assert [c.text for c in extract_clauses(stored, media_type="text/markdown")] == [
        c.text for c in clauses
    ]


def _is_control(ch: str) -> bool:
    return (ord(ch) < 32 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F


def _deep_page(depth: int) -> str:
    return (
        "<html><body><main><h1>Terms</h1><p>You keep ownership of your content.</p>"
        + "<div>" * depth
        + "<p>A clause deep inside the nesting.</p>"
        + "</div>" * depth
        + "<p>After the nesting: we may use your content to train AI models.</p>"
        + "</main></body></html>"
    )


def test_text_after_300_levels_of_nesting_is_kept() -> None:
    text = clauses_to_text(extract_clauses(_deep_page(300), media_type="text/html"))
    assert "A clause deep inside the nesting." in text
    assert "After the nesting: we may use your content to train AI models." in text


def test_nesting_too_deep_to_read_fails_clearly_instead_of_dropping_text() -> None:
    with pytest.raises(ExtractError, match=r"cannot be read past line \d+: .*depth"):
        extract_clauses(_deep_page(5000), media_type="text/html")
