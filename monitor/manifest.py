"""An Open Terms Archive dataset's ``manifest.tsv``: what each capture was and where it is archived.

A document folder of a dataset may hold a tab-separated ``manifest.tsv`` beside its captures, one
row per capture with (at least) the columns ``file``, ``date``, ``kind`` and ``commit``:

- ``kind`` is ``start`` (first record), ``change`` (the page changed) or ``upgrade`` (a *technical
  upgrade*: the archive re-extracted the same page after changing its selectors; not news);
- ``commit`` is the archive's commit of that version, so a change can link to it;
- ``snapshot``, when present, names the snapshot the version was extracted from; an address like
  ``https://github.com/OpenTermsArchive/<collection>-snapshots/commit/...`` (or
  ``mongo://<collection>/...``) tells which collection the dataset comes from.

Pure: reading a small file and plain data out; nothing here touches the database.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from monitor.errors import MonitorError

MANIFEST_NAME = "manifest.tsv"
KINDS = frozenset({"start", "change", "upgrade"})
ARCHIVE_COMMIT_URL = "https://github.com/OpenTermsArchive/{collection}-versions/commit/{commit}"
"""Where a collection's versions are published; ``{collection}`` and ``{commit}`` are filled in."""

_MAX_BYTES = 8 * 1024 * 1024
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_COLLECTION_IN_SNAPSHOT = re.compile(
    r"github\.com/OpenTermsArchive/([A-Za-z0-9._-]+?)-snapshots/|^mongo://([A-Za-z0-9._-]+)/"
)


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One capture as the archive describes it."""

    kind: str
    """start | change | upgrade"""
    commit: str = ""


@dataclass(frozen=True)
class Manifest:
    """The manifest of one document folder: entries by capture file name, and the collection."""

    entries: dict[str, ManifestEntry] = field(default_factory=dict)
    collection: str = ""
    """The archive collection (``contrib``, ``pga``, ``genai-eu``...), '' when unknown."""

    def kind(self, file_name: str) -> str:
        """The capture's kind; ``change`` for a capture the manifest does not list."""
        entry = self.entries.get(file_name)
        return entry.kind if entry else "change"

    def archive_url(self, file_name: str, *, template: str = ARCHIVE_COMMIT_URL) -> str | None:
        """The address of the archived version of this capture; None when it cannot be known."""
        entry = self.entries.get(file_name)
        if entry is None or not entry.commit:
            return None
        if "{collection}" in template and not self.collection:
            return None
        return template.format(collection=self.collection, commit=entry.commit)


def read_manifest(folder: Path) -> Manifest:
    """The folder's ``manifest.tsv``; an empty Manifest when there is none.

    A manifest that exists but cannot be read is an error naming the file and the row: guessing
    would turn the archive's technical upgrades into change reports.
    """
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return Manifest()
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise MonitorError(f"{path}: larger than {_MAX_BYTES // (1024 * 1024)} MiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MonitorError(f"cannot read {path}: {exc}") from exc
    return parse_manifest(text, where=str(path))


def parse_manifest(text: str, *, where: str = MANIFEST_NAME) -> Manifest:
    """Parse manifest text (tab-separated, header row first); errors name ``where`` and the line."""
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    missing = {"file", "kind"} - set(rows.fieldnames or ())
    if missing:
        raise MonitorError(f"{where}: missing column(s) {', '.join(sorted(missing))}")
    entries: dict[str, ManifestEntry] = {}
    collections: Counter[str] = Counter()
    for line, row in enumerate(rows, start=2):
        name = (row.get("file") or "").strip()
        kind = (row.get("kind") or "").strip().lower()
        if not name:
            raise MonitorError(f"{where}, line {line}: empty 'file'")
        if kind not in KINDS:
            raise MonitorError(
                f"{where}, line {line}: kind {kind!r} is not one of {', '.join(sorted(KINDS))}"
            )
        commit = (row.get("commit") or "").strip().lower()
        if commit and not _COMMIT.match(commit):
            raise MonitorError(f"{where}, line {line}: commit {commit!r} is not a commit id")
        entries[name] = ManifestEntry(kind=kind, commit=commit)
        found = _COLLECTION_IN_SNAPSHOT.search((row.get("snapshot") or "").strip())
        if found:
            collections[found.group(1) or found.group(2)] += 1
    collection = collections.most_common(1)[0][0] if collections else ""
    return Manifest(entries=entries, collection=collection)
