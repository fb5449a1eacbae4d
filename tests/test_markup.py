"""Blocks and tags cut out of raw markup: what the regular expressions cut, in linear time."""

from __future__ import annotations

import random
import re

import pytest

from monitor.markup import strip_hidden_blocks, strip_tags, whole_blocks
from tests.conftest import DATA_DIR

# what the fetcher's block detection and the page fingerprint used to run, as written
TAGS = re.compile(r"<(script|style|noscript)\b.*?</\1\s*>|<[^>]*>", re.I | re.S)
HIDDEN = re.compile(
    rb"<(script|style|noscript|template)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.I | re.S
)

PIECES = (
    "<script>", "</script>", "</SCRIPT >", "<style a='>'>", "</style>", "<!--", "-->", "--", ">",
    "<", "<b>", "terms ", "<noscript", "</noscript\n>", "<template x>", "</template>",
    "<scriptx>", "\n", "é", "<!-->", "-", "İ", "<SCRIPT a>", "<Style>", "</TEMPLATE>", "<script_",
)  # fmt: skip


def _pages() -> list[str]:
    pages = [path.read_text(errors="replace") for path in sorted(DATA_DIR.rglob("*.html"))]
    rng = random.Random(7)
    pages += ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14))) for _ in range(20_000)]
    return pages


@pytest.mark.parametrize("which", ["tags", "hidden blocks"])
def test_the_same_cut_as_the_expressions_on_real_pages_and_unclosed_markup(which: str) -> None:
    pages = _pages()
    assert len(pages) >= 20_008  # the real snapshots are there too
    for page in pages:
        if which == "tags":
            assert strip_tags(page) == TAGS.sub(" ", page), page[:200]
        else:
            raw = page.encode()
            assert strip_hidden_blocks(raw) == HIDDEN.sub(b"", raw), page[:200]


def test_unclosed_blocks_are_kept_and_what_follows_them_is_still_cut() -> None:
    # an unclosed <script> is only a tag: the text after it stays, as the expression left it
    assert strip_tags("<p>Terms<script>var a") == " Terms var a"
    assert strip_hidden_blocks(b"<!-- a --><p>Terms<!-- no end") == b"<p>Terms<!-- no end"
    page = "<script>" * 50_000 + "<p>Terms</p>"
    assert strip_tags(page).split() == ["Terms"]
    for opening in (b"<script>", b"<!--", b"<style"):  # each kind given up once, not per opening
        assert strip_hidden_blocks(opening * 50_000 + b"<p>Terms") == opening * 50_000 + b"<p>Terms"


WORDS = re.compile(r"\w+")


def test_a_part_of_a_page_shows_only_the_words_the_whole_page_shows() -> None:
    """Block detection counts the words of the start of a long page: the part it reads is cut
    before a block or tag it would cut in two, so its words are the page's first words (the last
    one may be cut short), never the code of a script."""
    rng = random.Random(11)
    for page in _pages()[:3000]:
        whole = WORDS.findall(strip_tags(page))
        for size in {rng.randint(0, len(page) + 1) for _ in range(4)}:
            part = whole_blocks(page, 0, size)
            assert page.startswith(part)
            words = WORDS.findall(strip_tags(part))
            if words:
                assert words[:-1] == whole[: len(words) - 1], (page[:200], size)
                assert whole[len(words) - 1].startswith(words[-1])
