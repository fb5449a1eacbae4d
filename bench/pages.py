"""Realistic terms pages for benchmarks, and a local server that serves them.

Each page is about 100 KB of markup the way real legal pages are built: a head with inline styles
and scripts, a skip link, a cookie banner, a site header with navigation, a table of contents, an
article with ``h2``/``h3`` sections, 150-300 paragraphs and list items of legal text (taken from
the Open Terms Archive corpus in ../shared/corpus when present, else generated), and a footer with
a newsletter form. Every response carries fresh per-request tokens, as real pages do: a CSP
``nonce`` on every script, a CSRF hidden input, a request id on ``<body>`` and a JSON state blob in
a script. So no two responses are byte-identical, even when the text has not changed.

With ``--visible-noise`` the *visible* text changes at every request too, as on many real sites: a
rotating promotional banner in the site header and a "Page generated in 0.23 s" line in the footer.
The page fingerprint cannot skip such pages: each one is extracted, and only the extracted text
(which leaves the banner and footer out) shows that nothing changed.

Generations: at generation 0 every page is in its original form; from generation 1 on, 5% of the
pages (``changed_pages``) have one reworded clause and one added paragraph.

Serve them (prints the port on stdout, then serves until killed)::

    python bench/pages.py serve --n 1000 [--port 0] [--visible-noise]

Routes: ``GET /doc/<i>`` (0 <= i < n) the page; ``POST /generation/<g>`` switch generation.
The server only listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "versions"
CHANGED_EVERY = 20
"""Every 20th page (5%) changes at generation 1."""

_NONCE, _CSRF, _RID, _TS = "\x00N\x00", "\x00C\x00", "\x00R\x00", "\x00T\x00"
_BANNER, _GENERATED = "\x00B\x00", "\x00G\x00"
_PROMOS = (
    "Spring sale: 30% off all annual plans until Sunday.",
    "New: share albums with your family in one tap.",
    "Join our webinar on Thursday about creator tools.",
    "Download the app for faster uploads on the go.",
    "We are hiring engineers in Lisbon, Nairobi and Osaka.",
)

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_NOISE = re.compile(r"[*_`\\#>|]+")

_SERVICES = [
    "Acme Cloud", "Birch Social", "Cobalt Video", "Delta Notes", "Ember Chat", "Fjord Photos",
    "Granite AI", "Harbor Music", "Iris Maps", "Juniper Docs", "Kestrel Games", "Lumen Learn",
]  # fmt: skip
_TOPICS = [
    "Using the Service", "Your Account", "Content You Share", "Licence to Your Content",
    "Artificial Intelligence Features", "Intellectual Property", "Privacy and Data",
    "Payments and Subscriptions", "Prohibited Conduct", "Automated Access and Scraping",
    "Third-Party Services", "Termination", "Disclaimers", "Limitation of Liability",
    "Indemnification", "Dispute Resolution", "Governing Law", "Changes to These Terms",
    "Feedback", "Communications", "Age Requirements", "Export Controls", "Miscellaneous",
]  # fmt: skip
_WORDS = (  # noqa: SIM905
    "service account content licence rights user information data provider agreement terms "
    "policy access use features applications products third parties law jurisdiction liability "
    "damages warranty obligations notice termination suspension payment subscription fees "
    "intellectual property trademark copyright personal reasonable applicable including without "
    "limitation worldwide non-exclusive royalty-free transferable sublicensable perpetual "
    "irrevocable reproduce modify distribute display perform models training improve develop"
).split()
_REWORDINGS = [
    ("may", "will"),
    ("reasonable", "sole"),
    ("non-exclusive", "exclusive"),
    ("you", "you and your affiliates"),
    ("the", "any"),
]
_ADDED_PARAGRAPH = (
    "You grant us a worldwide, royalty-free licence to use the content you share, including to "
    "develop, train and improve artificial intelligence models and related technologies, for as "
    "long as that content remains on the Service and for a reasonable period afterwards."
)


def _corpus_paragraphs() -> list[str]:
    """Plain paragraphs (60-900 characters) from the latest version of each corpus document."""
    if not CORPUS.is_dir():
        return []
    found: list[str] = []
    for folder in sorted(p for p in CORPUS.glob("*/*") if p.is_dir()):
        files = sorted(folder.glob("*.md"))
        if not files:
            continue
        text = files[-1].read_text(encoding="utf-8", errors="replace")
        for block in re.split(r"\n\s*\n", text):
            line = " ".join(block.split())
            line = _MD_LINK.sub(r"\1", line)
            line = _MD_NOISE.sub("", line).strip(" -*")
            line = " ".join(line.split())
            if 60 <= len(line) <= 900 and not line.startswith(("http", "|")):
                found.append(line)
    return sorted(set(found))


def _generated_paragraph(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(2, 5)):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(10, 26))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


_POOL: list[str] | None = None


def paragraph_pool() -> list[str]:
    global _POOL
    if _POOL is None:
        _POOL = _corpus_paragraphs() or [
            _generated_paragraph(random.Random(i)) for i in range(2000)
        ]
    return _POOL


@dataclass
class Block:
    kind: str  # "p" | "ul"
    items: list[str]


@dataclass
class Section:
    title: str
    level: int  # 2 or 3
    blocks: list[Block] = field(default_factory=list)


@dataclass
class PageModel:
    index: int
    service: str
    sections: list[Section]


def page_model(index: int, generation: int = 0) -> PageModel:
    """The text of page ``index`` at ``generation`` (deterministic)."""
    rng = random.Random(index * 7919 + 17)
    pool = paragraph_pool()
    service = f"{rng.choice(_SERVICES)} {index}"
    target = rng.randint(150, 300)  # paragraphs and list items
    sections: list[Section] = []
    count = 0
    topics = rng.sample(_TOPICS, k=min(len(_TOPICS), rng.randint(14, 20)))
    owners_by_topic: list[list[Section]] = []
    for number, topic in enumerate(topics, 1):
        owners = [Section(f"{number}. {topic}", 2)]
        owners += [
            Section(f"{number}.{k} {rng.choice(_TOPICS)}", 3)
            for k in range(1, rng.randint(0, 2) + 1)
        ]
        sections.extend(owners)
        owners_by_topic.append(owners)
    while count < target:
        for owners in owners_by_topic:
            if count >= target:
                break
            owner = rng.choice(owners)
            if rng.random() < 0.12:
                items = [rng.choice(pool) for _ in range(min(rng.randint(3, 6), target - count))]
                owner.blocks.append(Block("ul", items))
                count += len(items)
            else:
                owner.blocks.append(Block("p", [rng.choice(pool)]))
                count += 1
    if generation >= 1 and index % CHANGED_EVERY == 7:
        _change(sections, random.Random(index))
    return PageModel(index, service, sections)


def _change(sections: list[Section], rng: random.Random) -> None:
    """Reword one clause and add one paragraph."""
    paragraphs = [b for s in sections for b in s.blocks if b.kind == "p"]
    block = rng.choice(paragraphs)
    text = block.items[0]
    for old, new in _REWORDINGS:
        pattern = re.compile(rf"\b{re.escape(old)}\b")
        if pattern.search(text):
            block.items[0] = pattern.sub(new, text, count=1)
            break
    else:
        block.items[0] = text + " This applies to content used to train our models."
    owner = rng.choice([s for s in sections if s.blocks])
    owner.blocks.insert(rng.randint(0, len(owner.blocks)), Block("p", [_ADDED_PARAGRAPH]))


# -- markup ------------------------------------------------------------------------------------

_CSS_RULES = [
    f".c{i}{{margin:{i % 7}px {i % 5}px;padding:{i % 3}em;color:#{i * 2654435761 % 0xFFFFFF:06x};"
    f"font:{12 + i % 6}px/1.{i % 9} system-ui,-apple-system,Segoe UI,Roboto,sans-serif}}"
    for i in range(80)
]
_CSS = "\n".join(_CSS_RULES)
_JS = (
    "(function(){var q=window.__q=window.__q||[];function t(e,d){q.push({e:e,d:d,t:Date.now()});"
    "if(q.length>20){navigator.sendBeacon&&navigator.sendBeacon('/log',JSON.stringify(q));q=[]}}"
    "document.addEventListener('click',function(ev){var a=ev.target.closest('a');"
    "if(a)t('click',{href:a.href,text:(a.textContent||'').slice(0,40)})});"
    "window.addEventListener('scroll',function(){t('scroll',{y:window.scrollY})},{passive:true});"
    "var b=document.getElementById('cookie-banner');if(b&&localStorage.getItem('consent'))"
    "b.hidden=true;})();\n"
) * 12


def _inline(text: str, rng: random.Random) -> str:
    """Escape text; sometimes bold a phrase or link one, as legal pages do."""
    escaped = html.escape(text, quote=False)
    words = escaped.split(" ")
    if len(words) > 12 and rng.random() < 0.3:
        i = rng.randrange(0, len(words) - 3)
        words[i] = f'<a href="/legal/{rng.randrange(999)}?ref=tos&amp;utm_source=terms">{words[i]}'
        words[i + 2] += "</a>"
    if len(words) > 12 and rng.random() < 0.2:
        i = rng.randrange(0, len(words) - 2)
        words[i] = f"<strong>{words[i]}"
        words[i + 1] += "</strong>"
    return " ".join(words)


def page_template(index: int, generation: int = 0) -> str:
    """The page as HTML with placeholders for the per-request tokens (see ``render``)."""
    model = page_model(index, generation)
    rng = random.Random(index)
    name = html.escape(model.service)
    out: list[str] = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>Terms of Service | {name}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="csrf-token" content="{_CSRF}">',
        '<link rel="stylesheet" href="/static/site.css?v=3">',
        f'<style nonce="{_NONCE}">{_CSS}</style>',
        f'<script nonce="{_NONCE}">{_JS}</script>',
        f'<script type="application/json" id="__state" nonce="{_NONCE}">'
        f'{{"csrf":"{_CSRF}","requestId":"{_RID}","renderedAt":{_TS},'
        f'"locale":"en_GB","experiments":["legal_v2","toc_sticky"],"page":{index}}}</script>',
        f'</head><body class="legal c{index % 80}" data-request-id="{_RID}">',
        '<a class="skip" href="#main">Skip to main content</a>',
        '<div id="cookie-banner" class="cookie-consent-banner" role="dialog">',
        "<p>We use cookies to improve your experience and for analytics. "
        '<a href="/cookies">Learn more</a></p><button>Accept all</button>'
        "<button>Reject non-essential</button></div>",
        '<header class="site-header">'
        + _BANNER
        + '<a class="logo" href="/">'
        + name
        + "</a><nav><ul>",
    ]
    for link in ("Home", "Products", "Pricing", "Developers", "Blog", "Help", "Log in", "Sign up"):
        out.append(f'<li><a href="/{link.lower().replace(" ", "-")}">{link}</a></li>')
    out.append('</ul></nav></header><div class="layout"><nav class="toc"><h2>On this page</h2><ul>')
    for section in model.sections:
        if section.level == 2:
            slug = re.sub(r"\W+", "-", section.title.lower()).strip("-")
            out.append(f'<li><a href="#{slug}">{html.escape(section.title)}</a></li>')
    out.append('</ul></nav><main id="main"><article class="terms">')
    out.append(f"<h1>{name} Terms of Service</h1>")
    out.append('<p class="updated">Last updated: 1 March 2026</p>')
    for section in model.sections:
        slug = re.sub(r"\W+", "-", section.title.lower()).strip("-")
        tag = f"h{section.level}"
        out.append(
            f'<section id="{slug}" class="c{rng.randrange(80)}">'
            f"<{tag}>{html.escape(section.title)}</{tag}>"
        )
        for block in section.blocks:
            if block.kind == "p":
                out.append(f'<p class="c{rng.randrange(80)}">{_inline(block.items[0], rng)}</p>')
            else:
                items = "".join(f"<li>{_inline(item, rng)}</li>" for item in block.items)
                out.append(f"<ul>{items}</ul>")
        out.append("</section>")
    out.append("</article></main></div>")
    out.append(
        '<footer class="site-footer"><form action="/newsletter" method="post">'
        f'<input type="hidden" name="csrf" value="{_CSRF}">'
        '<label>Newsletter <input type="email" name="email"></label><button>Subscribe</button>'
        "</form><ul>"
        + "".join(
            f'<li><a href="/{x.lower()}">{x}</a></li>'
            for x in ("Privacy", "Cookies", "Terms", "Imprint", "Accessibility", "Status")
        )
        + f"</ul><p>&copy; 2026 {name}</p>{_GENERATED}</footer>"
    )
    out.append(
        f'<script nonce="{_NONCE}" async src="/static/analytics.js?rid={_RID}"></script>'
        "</body></html>\n"
    )
    return "".join(out)


def render(template: str, *, now_ms: int, visible_noise: bool = False) -> bytes:
    """Fill the placeholders with fresh tokens: no two calls return the same bytes.

    ``visible_noise``: also a rotating banner and a "generated in" footer line (visible text).
    """
    banner = generated = ""
    if visible_noise:
        promo = _PROMOS[secrets.randbelow(len(_PROMOS))]
        banner = f'<div class="promo-banner"><p>{promo} <a href="/offers">See offers</a></p></div>'
        seconds = (secrets.randbelow(990) + 10) / 1000
        generated = f'<p class="generated">Page generated in {seconds:.3f} s at {now_ms} ms</p>'
    return (
        template.replace(_BANNER, banner)
        .replace(_GENERATED, generated)
        .replace(_NONCE, secrets.token_urlsafe(16))
        .replace(_CSRF, secrets.token_hex(32))
        .replace(_RID, str(uuid.uuid4()))
        .replace(_TS, str(now_ms))
        .encode("utf-8")
    )


def changed_pages(n: int) -> list[int]:
    """The pages that differ at generation 1 (5%)."""
    return [i for i in range(n) if i % CHANGED_EVERY == 7]


# -- server ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PageServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        match = re.fullmatch(r"/doc/(\d+)", self.path.split("?", 1)[0])
        if not match or int(match.group(1)) >= self.server.n:
            self._send(404, b"not found")
            return
        template = self.server.template(int(match.group(1)))
        body = render(
            template, now_ms=int(time.time() * 1000), visible_noise=self.server.visible_noise
        )
        self._send(200, body, "text/html; charset=utf-8")

    def do_POST(self) -> None:
        match = re.fullmatch(r"/generation/(\d+)", self.path)
        if not match:
            self._send(404, b"not found")
            return
        self.server.generation = int(match.group(1))
        self._send(200, b"ok")


class PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, n: int, port: int = 0, *, visible_noise: bool = False) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.n = n
        self.visible_noise = visible_noise
        self.generation = 0
        self._templates: dict[tuple[int, int], str] = {}

    def template(self, index: int) -> str:
        generation = min(self.generation, 1)
        if generation and index % CHANGED_EVERY != 7:
            generation = 0
        key = (index, generation)
        found = self._templates.get(key)
        if found is None:
            found = self._templates[key] = page_template(index, generation)
        return found

    def warm_up(self) -> None:
        for i in range(self.n):
            self.template(i)


def _sizes(n: int) -> Iterator[int]:
    for i in range(n):
        yield len(render(page_template(i), now_ms=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve N pages on 127.0.0.1, print the port")
    serve.add_argument("--n", type=int, required=True)
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument(
        "--visible-noise", action="store_true", help="visible text that changes at every request"
    )
    stats = sub.add_parser("stats", help="print page size statistics")
    stats.add_argument("--n", type=int, default=50)
    show = sub.add_parser("show", help="print one page")
    show.add_argument("index", type=int)
    show.add_argument("--generation", type=int, default=0)
    show.add_argument("--visible-noise", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "serve":
        server = PageServer(args.n, args.port, visible_noise=args.visible_noise)
        server.warm_up()
        print(server.server_address[1], flush=True)
        server.serve_forever()
    elif args.command == "stats":
        sizes = list(_sizes(args.n))
        paragraphs = [
            sum(len(b.items) for s in page_model(i).sections for b in s.blocks)
            for i in range(args.n)
        ]
        print(
            f"pages {args.n}: size min {min(sizes)} mean {sum(sizes) // len(sizes)} "
            f"max {max(sizes)} bytes; paragraphs+items min {min(paragraphs)} "
            f"max {max(paragraphs)}; corpus paragraphs {len(_corpus_paragraphs())}"
        )
        print(json.dumps({"changed_at_generation_1": changed_pages(args.n)[:10]}))
    else:
        page = render(
            page_template(args.index, args.generation), now_ms=0, visible_noise=args.visible_noise
        )
        sys.stdout.write(page.decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
