"""Message-IDs of outgoing email, fixed in the outbox row when it is written (a re-send after a
crash keeps it, so mail clients fold the two copies into one)."""

from __future__ import annotations

import hashlib
import secrets

MESSAGE_ID_DOMAIN = "tos-monitor"


def new_message_id(kind: str, *parts: object) -> str:
    """A Message-ID unique across installations (fixed in the row, so a re-send keeps it)."""
    local = ".".join(["tosmon", kind, *(str(p) for p in parts), secrets.token_hex(8)])
    return f"<{local}@{MESSAGE_ID_DOMAIN}>"


def keyed_message_id(kind: str, key: str) -> str:
    """The same Message-ID for the same ``kind`` and ``key`` (an alert is queued once)."""
    digest = hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()[:32]
    return f"<tosmon.{kind}.{digest}@{MESSAGE_ID_DOMAIN}>"
