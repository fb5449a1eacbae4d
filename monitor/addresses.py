"""Email addresses: the one validator, used by the config (``[alerts] email``, ``[mail] sender``),
the subscriptions and the outbox, so an address the config accepts is one the outbox can send to.
"""

from __future__ import annotations

import re

from monitor.errors import SubscriptionError

__all__ = ["email_problem", "validate_email"]

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?$")


def email_problem(address: str, *, dotless_domain: bool = False) -> str | None:
    """Why ``address`` (already stripped) is not a plain ``local@domain`` address, or None.

    ``dotless_domain`` accepts a one-label domain such as ``localhost`` (fine for our own sender
    address; a recipient's address needs a real domain).
    """
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in address):
        return "control characters"
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        return "expected local@domain"
    if len(address) > 254 or len(local) > 64:
        return "too long"
    if not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return "bad characters before the @"
    labels = domain.split(".")
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        return "bad domain"
    if len(labels) < 2 and not dotless_domain:
        return f"the domain needs a dot, as in example.org; mail cannot be sent to @{domain}"
    return None


def validate_email(text: str, *, dotless_domain: bool = False) -> str:
    """A plain address (``local@domain``), stripped, with a lower-case domain; else an error.

    Display names, comments, quoted local parts, control characters and anything that could
    smuggle a header (CR, LF) are refused.
    """
    if not isinstance(text, str):
        raise SubscriptionError("an email address must be text")
    address = text.strip()
    problem = email_problem(address, dotless_domain=dotless_domain)
    if problem == "control characters":
        raise SubscriptionError("an email address must not contain control characters")
    if problem:
        raise SubscriptionError(f"not a valid email address: {address[:80]!r} ({problem})")
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"
