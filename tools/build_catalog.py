"""One-off generator of monitor/catalog/*.toml from Open Terms Archive declarations.

    .venv/bin/python tools/build_catalog.py [../shared/corpus/declarations]

Each catalog entry below names either an OTA declaration (collection, service file, document type)
or a hand-written URL for platforms the archive does not cover here. Declaration features we cannot
express are approximated, and the approximation is written as a comment above the entry:
- ``select``/``remove`` range objects (``startBefore``/``endBefore``): the range's start if
  it is a container (``[role=main]``), else no selector (the extractor falls back to main/article);
- ``combine`` (one document made of several pages): the first page only;
- ``filter`` (OTA JavaScript filters): dropped;
- ``executeClientScripts: true`` becomes ``render = true``.
The generated files are committed; rerun only to refresh from newer declarations.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DECLARATIONS = ROOT.parent / "shared" / "corpus" / "declarations"
COLLECTIONS = {
    "contrib": "contrib-declarations",
    "pga": "pga-declarations",
    "genai": "genai-eu-declarations",
}
CONTAINERS = ('[role="main"]', "[role=main]", "main", "#root")

TOS = "Terms of Service"
PRIVACY = "Privacy Policy"


@dataclass
class Entry:
    group: str  # catalog file name without .toml
    service: str
    type: str
    source: tuple[str, str, str] | None = None  # (collection, declaration name, document type)
    url: str | None = None  # hand-written entries
    select: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    render: bool = False
    notes: list[str] = field(default_factory=list)
    drop_remove: tuple[str, ...] = ()  # declared remove selectors we deliberately leave out
    page: int = 0  # which page of a `combine` declaration to track


def ota(group: str, service: str, type_: str, collection: str, name: str, **kw: Any) -> Entry:
    return Entry(group, service, type_, source=(collection, name, type_), **kw)


def manual(group: str, service: str, type_: str, url: str, **kw: Any) -> Entry:
    notes = kw.pop("notes", ["no OTA declaration here: well-known public URL, default extraction"])
    return Entry(group, service, type_, url=url, notes=notes, **kw)


ENTRIES: list[Entry] = [
    # Meta first: the product's reason to exist.
    ota("meta", "Instagram", TOS, "pga", "Instagram"),
    ota("meta", "Instagram", PRIVACY, "pga", "Instagram"),
    ota(
        "meta",
        "Facebook",
        TOS,
        "pga",
        "Facebook",
        drop_remove=("[href*='static.xx.fbcdn.net']", "[href*='facebook.com']"),
    ),
    ota("meta", "Facebook", PRIVACY, "pga", "Facebook"),
    manual(
        "meta",
        "Meta",
        PRIVACY,
        "https://www.facebook.com/privacy/policy/",
        select=['[role="main"]'],
        render=True,
        notes=[
            "Meta's umbrella privacy policy (Facebook, Instagram, Messenger, Threads...);",
            "same text as facebook/privacy-policy (printable page), published on its own page",
        ],
    ),
    ota("meta", "Meta AI", TOS, "genai", "Meta AI"),
    ota("meta", "Threads", TOS, "pga", "Threads"),
    ota("meta", "Threads", PRIVACY, "pga", "Threads"),
    ota("meta", "WhatsApp", TOS, "pga", "WhatsApp"),
    ota("meta", "WhatsApp", PRIVACY, "pga", "WhatsApp"),
    ota("meta", "Llama API", TOS, "genai", "Llama API"),
    ota("meta", "Llama API", PRIVACY, "genai", "Llama API"),
    # Social networks and communities.
    ota("social", "X", TOS, "pga", "X"),
    ota("social", "X", PRIVACY, "pga", "X"),
    ota("social", "YouTube", TOS, "contrib", "YouTube"),
    ota("social", "TikTok", TOS, "pga", "TikTok"),
    ota("social", "TikTok", PRIVACY, "pga", "TikTok"),
    ota("social", "LinkedIn", TOS, "pga", "LinkedIn"),
    ota("social", "LinkedIn", PRIVACY, "pga", "LinkedIn"),
    ota("social", "Reddit", TOS, "pga", "Reddit"),
    ota("social", "Reddit", PRIVACY, "pga", "Reddit"),
    ota("social", "Pinterest", TOS, "pga", "Pinterest"),
    ota("social", "Pinterest", PRIVACY, "pga", "Pinterest"),
    ota("social", "Snapchat", TOS, "pga", "Snapchat"),
    ota("social", "Snapchat", PRIVACY, "pga", "Snapchat"),
    ota("social", "Tumblr", TOS, "contrib", "Tumblr"),
    ota("social", "Tumblr", PRIVACY, "contrib", "Tumblr"),
    ota("social", "Quora", TOS, "contrib", "Quora"),
    ota("social", "Quora", PRIVACY, "contrib", "Quora"),
    ota("social", "Bluesky", TOS, "contrib", "Bluesky"),
    ota("social", "Bluesky", PRIVACY, "contrib", "Bluesky"),
    ota("social", "Telegram", TOS, "pga", "Telegram"),
    ota("social", "Telegram", PRIVACY, "pga", "Telegram"),
    ota("social", "Twitch", TOS, "contrib", "Twitch"),
    ota("social", "Twitch", PRIVACY, "contrib", "Twitch"),
    manual("social", "Discord", TOS, "https://discord.com/terms"),
    manual("social", "Discord", PRIVACY, "https://discord.com/privacy"),
    manual(
        "social", "Medium", TOS, "https://policy.medium.com/medium-terms-of-service-9db0094a1e0f"
    ),
    manual(
        "social", "Medium", PRIVACY, "https://policy.medium.com/medium-privacy-policy-f03bf92035c9"
    ),
    ota("social", "Stack Overflow", TOS, "contrib", "Stack Overflow"),
    ota("social", "Stack Overflow", PRIVACY, "contrib", "Stack Overflow"),
    ota("social", "Spotify", TOS, "contrib", "Spotify"),
    ota("social", "Spotify", PRIVACY, "contrib", "Spotify"),
    ota("social", "SoundCloud", TOS, "contrib", "SoundCloud"),
    manual("social", "SoundCloud", PRIVACY, "https://soundcloud.com/pages/privacy"),
    # Generative AI services.
    ota("ai", "OpenAI", TOS, "genai", "ChatGPT"),
    ota("ai", "OpenAI", PRIVACY, "genai", "ChatGPT"),
    ota("ai", "Claude", TOS, "genai", "Claude.ai"),
    ota("ai", "Claude", PRIVACY, "genai", "Claude.ai"),
    # The first page of these combined declarations is Google's own policy (google/*): track the
    # Gemini-specific page instead.
    ota("ai", "Google Gemini", TOS, "genai", "Google Generative AI Services", page=1),
    ota("ai", "Google Gemini", PRIVACY, "genai", "Google Generative AI Services", page=1),
    ota("ai", "Mistral AI", TOS, "genai", "Vibe"),
    ota("ai", "Mistral AI", PRIVACY, "genai", "Vibe"),
    ota("ai", "Microsoft Copilot", TOS, "genai", "Microsoft Copilot"),
    ota("ai", "Grok", TOS, "genai", "Grok"),
    ota("ai", "Grok", PRIVACY, "genai", "Grok"),
    ota("ai", "Perplexity", TOS, "genai", "Perplexity"),
    ota("ai", "Perplexity", PRIVACY, "genai", "Perplexity"),
    ota("ai", "DeepSeek", TOS, "genai", "DeepSeek"),
    ota("ai", "DeepSeek", PRIVACY, "genai", "DeepSeek"),
    # Platforms, tools and stores.
    ota("platforms", "Google", TOS, "contrib", "Google"),
    ota("platforms", "Google", PRIVACY, "contrib", "Google"),
    manual("platforms", "Microsoft", TOS, "https://www.microsoft.com/en-us/servicesagreement"),
    ota("platforms", "Microsoft", PRIVACY, "genai", "Microsoft Copilot"),
    manual(
        "platforms",
        "Amazon",
        "Conditions of Use",
        "https://www.amazon.com/gp/help/customer/display.html?nodeId=508088",
    ),
    manual(
        "platforms",
        "Amazon",
        "Privacy Notice",
        "https://www.amazon.com/gp/help/customer/display.html?nodeId=468496",
    ),
    manual("platforms", "Adobe", TOS, "https://www.adobe.com/legal/terms.html"),
    manual("platforms", "Adobe", PRIVACY, "https://www.adobe.com/privacy/policy.html"),
    ota("platforms", "Zoom", TOS, "contrib", "Zoom"),
    ota("platforms", "Zoom", PRIVACY, "contrib", "Zoom"),
    ota("platforms", "WeTransfer", TOS, "contrib", "WeTransfer"),
    ota("platforms", "WeTransfer", PRIVACY, "contrib", "WeTransfer"),
    ota(
        "platforms",
        "GitHub",
        TOS,
        "contrib",
        "GitHub",
        url="https://docs.github.com/en/site-policy/github-terms/github-terms-of-service",
    ),
    ota(
        "platforms",
        "GitHub",
        PRIVACY,
        "contrib",
        "GitHub",
        url="https://docs.github.com/en/site-policy/privacy-policies/github-general-privacy-statement",
    ),
]

SKIPPED_NOTES = {
    "social": [
        "YouTube's privacy policy is Google's (google/privacy-policy): not tracked twice.",
    ],
    "ai": [
        "Microsoft Copilot's privacy statement is Microsoft's (microsoft/privacy-policy).",
    ],
}

HEADERS = {
    "meta": "Meta's services: Instagram, Facebook, Meta, Meta AI, Threads, WhatsApp, Llama API.",
    "social": "Social networks, communities and media platforms.",
    "ai": "Generative AI assistants and model providers.",
    "platforms": "Platforms, tools and stores.",
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def resolve(entry: Entry, declarations: Path) -> Entry:
    """Fill an OTA-backed entry from its declaration, noting every approximation."""
    if entry.source is None:
        return entry
    collection, name, type_ = entry.source
    path = declarations / COLLECTIONS[collection] / f"{name}.json"
    decl = json.loads(path.read_text("utf-8"))["terms"][type_]
    notes = [f"OTA declaration: {COLLECTIONS[collection]}/{name}.json, {type_!r}"]
    render = bool(decl.get("executeClientScripts"))
    outer_select, outer_remove = _as_list(decl.get("select")), _as_list(decl.get("remove"))
    page = decl
    if "combine" in decl:
        pages = decl["combine"]
        page = pages[entry.page]
        others = ", ".join(p["fetch"] for i, p in enumerate(pages) if i != entry.page)
        notes.append(f"combines {len(pages)} pages; this one only (not tracked: {others})")
        render = render or bool(page.get("executeClientScripts"))
    select_in = _as_list(page.get("select")) or outer_select
    remove_in = _as_list(page.get("remove")) or outer_remove
    select: list[str] = []
    for item in select_in:
        if isinstance(item, str):
            select.append(item)
        elif item.get("startBefore") in CONTAINERS:
            select.append(item["startBefore"])
            notes.append(f"range select {json.dumps(item)} approximated by its start container")
        else:
            notes.append(f"range select {json.dumps(item)} not expressible: default extraction")
    remove: list[str] = []
    for item in remove_in:
        if isinstance(item, str):
            remove.append(item.strip())
        else:
            notes.append(f"range remove {json.dumps(item)} not expressible: dropped")
    for item in entry.drop_remove:
        remove.remove(item)
        notes.append(f"remove {item!r} left out: it would cut link text out of sentences")
    if select == ["div"]:
        select = []
        notes.append('select "div" would match nested blocks twice: default extraction')
    url = entry.url or page["fetch"].split("#")[0]  # a fragment is never sent to the server
    if entry.url:
        notes.append(f"declared URL {page['fetch']} moved; current URL used")
    entry.url, entry.select, entry.remove, entry.render = url, select, remove, render
    entry.notes = notes + entry.notes
    return entry


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def render_group(group: str, entries: list[Entry]) -> str:
    out = [
        f"# tos-monitor built-in catalog: {HEADERS[group]}",
        "# Generated by tools/build_catalog.py from Open Terms Archive declarations",
        "# (Source: Open Terms Archive, ODbL / ODC-By 1.0); hand edits are fine, keep them valid.",
        "# Keys: service, type, url, select, remove, render (see config.example.toml).",
    ]
    out += [f"# Not tracked: {note}" for note in SKIPPED_NOTES.get(group, [])]
    for entry in entries:
        out.append("")
        out += [f"# {note}" for note in entry.notes]
        out.append("[[documents]]")
        out.append(f"service = {_toml_str(entry.service)}")
        out.append(f"type = {_toml_str(entry.type)}")
        out.append(f"url = {_toml_str(entry.url or '')}")
        if entry.select:
            out.append(f"select = [{', '.join(_toml_str(s) for s in entry.select)}]")
        if entry.remove:
            out.append(f"remove = [{', '.join(_toml_str(s) for s in entry.remove)}]")
        if entry.render:
            out.append("render = true")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    declarations = Path(argv[1]) if len(argv) > 1 else DEFAULT_DECLARATIONS
    groups: dict[str, list[Entry]] = {}
    for entry in ENTRIES:
        groups.setdefault(entry.group, []).append(resolve(entry, declarations))
    target = ROOT / "monitor" / "catalog"
    for group, entries in groups.items():
        (target / f"{group}.toml").write_text(render_group(group, entries), "utf-8")
        print(f"{group}.toml: {len(entries)} documents")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
