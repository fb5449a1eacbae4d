"""The clock: the one definition of "now" (timezone-aware UTC).

Code that depends on the time takes a ``now`` value or a ``clock`` callable as a parameter and
defaults to :func:`utcnow`, so tests can pass their own.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def parse_instant(text: str) -> datetime:
    """A date or datetime a person wrote (ISO 8601; ``Z`` allowed; naive means UTC), in UTC.

    A ValueError says what was wrong and gives an example."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or datetime (use e.g. 2025-01-31 or 2025-01-31T12:00Z)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
