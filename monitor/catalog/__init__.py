"""The built-in catalog: declarations of well-known services' terms and privacy pages.

One TOML file per group (``meta.toml`` first, then the others by name), each a list of
``[[documents]]`` tables with the same keys and validation as a config file's documents.
The files were generated from Open Terms Archive declarations by ``tools/build_catalog.py``
(Source: Open Terms Archive, ODbL / ODC-By 1.0).
"""

from __future__ import annotations

import functools
import importlib.resources

from monitor.config import DocumentConfig, _Lines, parse_documents, parse_toml
from monitor.errors import ConfigError

FIRST = "meta.toml"


@functools.cache
def catalog_documents() -> tuple[DocumentConfig, ...]:
    """Every built-in document, Meta's first; ids are unique across files."""
    files = [f for f in importlib.resources.files(__name__).iterdir() if f.name.endswith(".toml")]
    files.sort(key=lambda f: (f.name != FIRST, f.name))
    documents: list[DocumentConfig] = []
    seen: dict[str, str] = {}
    for file in files:
        text = file.read_text("utf-8")
        shown = f"monitor/catalog/{file.name}"
        data = parse_toml(text, shown)
        extra = sorted(set(data) - {"documents"})
        if extra:
            raise ConfigError("only [[documents]] tables belong here", path=shown, key=extra[0])
        for doc in parse_documents(data.get("documents", []), path=shown, lines=_Lines(text)):
            if doc.id in seen:
                raise ConfigError(
                    f"duplicate document id {doc.id!r} (also in {seen[doc.id]})", path=shown
                )
            seen[doc.id] = shown
            documents.append(doc)
    return tuple(documents)


__all__ = ["catalog_documents"]
