"""The clock: the one definition of "now" (timezone-aware UTC).

Code that depends on the time takes a ``now`` value or a ``clock`` callable as a parameter and
defaults to :func:`utcnow`, so tests can pass their own.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)
