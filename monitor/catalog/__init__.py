"""The built-in catalog: declarations of well-known services' terms and privacy pages (data only).

One TOML file per group (``meta.toml`` first, then the others by name), each a list of
``[[documents]]`` tables with the same keys and validation as a config file's documents; they are
read by :func:`monitor.config.catalog_documents` (re-exported here). The files were generated from
Open Terms Archive declarations by ``tools/build_catalog.py`` (Source: Open Terms Archive, ODbL /
ODC-By 1.0).
"""

from __future__ import annotations

from monitor.config import catalog_documents

__all__ = ["catalog_documents"]
