"""Small terms pages that tests write and change, shaped like real ones (headings, clauses,
per-request tokens, a cookie banner)."""

from __future__ import annotations

import uuid

LICENCE = (
    "When you share, post, or upload content that is covered by intellectual property rights on "
    "or in connection with our Service, you hereby grant to us a non-exclusive, royalty-free, "
    "transferable, worldwide license to host, use, distribute, modify, run, copy, publicly "
    "perform or display, translate, and create derivative works of your content."
)
LICENCE_SUBLICENSABLE = LICENCE.replace(
    "royalty-free, transferable", "royalty-free, transferable, sub-licensable"
)
AI_TRAINING = (
    "We use information you share on our Products, including your public posts, photos and "
    "captions, to develop and improve artificial intelligence models, including generative AI."
)
FILLER = [
    "We agree to provide you with the Service. The Service includes all of the products, "
    "features, applications, services, technologies, and software that we provide.",
    "You must be at least 13 years old to use the Service. You cannot impersonate others or "
    "provide inaccurate information.",
    "You may not use the Service to do anything unlawful, misleading, or fraudulent or for an "
    "illegal or unauthorized purpose.",
    "We may change the Service and these Terms from time to time. Unless otherwise required by "
    "law, we will notify you before we make changes to these Terms.",
    "If you want to delete your account, you can do so at any time from your settings page.",
    "These Terms are governed by the laws of the State of California, without regard to its "
    "conflict of law provisions.",
]


def terms_page(
    *, licence: str = LICENCE, extra: str | None = None, token: str | None = None
) -> str:
    """A terms page; ``token`` varies per request as real pages' nonces and csrf tokens do."""
    token = token or uuid.uuid4().hex
    paragraphs = "\n".join(f"<p>{text}</p>" for text in FILLER)
    extra_html = f"<p>{extra}</p>" if extra else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Terms of Use</title>
<script nonce="{token}">window.__token = "{token}";</script>
<style>p {{ margin: 0 }}</style></head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies. <button>Accept all</button></div>
<nav><a href="/">Home</a> <a href="/help?ref={token}">Help</a></nav>
<main>
<h1>Terms of Use</h1>
<h2>1. The Service</h2>
{paragraphs}
<h2>2. Permissions You Give to Us</h2>
<p>{licence}</p>
{extra_html}
<input type="hidden" name="csrf" value="{token}">
</main>
<footer>&copy; 2025 Example Inc.</footer>
</body></html>"""
