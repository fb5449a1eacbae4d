"""Subscriptions: addresses, filters, matching a change against them, and signed link tokens.

Everything here is plain logic on plain data, except :func:`load_secret_key`, which reads the
signing key from ``TOSMON_SECRET_KEY`` or from the key file (created on first use, mode 0600).

Tokens are ``<payload>.<signature>``: the payload is URL-safe base64 (unpadded, decoded strictly:
one spelling per token) of a small JSON object (purpose, subscriber id, address, issue time and,
for confirm links, the subscriber's current nonce), the signature HMAC-SHA256 of the payload under
the installation's key. A token is only ever accepted for the purpose it was issued for, so an
unsubscribe link cannot confirm an address and vice versa; unsubscribing replaces the nonce, so a
confirm link sent before cannot confirm a later subscription of the same address.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from monitor.addresses import validate_email
from monitor.clauses import SEVERITIES, severity_rank
from monitor.config import SECRET_KEY_ENV, WEEKDAYS
from monitor.errors import ConfigError, SubscriptionError
from monitor.messageids import new_message_id
from monitor.topics import default_topics, expand_topics

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from monitor.models import Change, Delivery, Document, Subscriber

Cadence = Literal["immediate", "daily", "weekly"]
CADENCES: tuple[Cadence, ...] = ("immediate", "daily", "weekly")
STATES: tuple[str, ...] = ("pending", "active", "unsubscribed", "bouncing")

DEFAULT_MIN_SEVERITY = "medium"

CONFIRM_TOKEN_LIFETIME = timedelta(days=14)


# ---------------------------------------------------------------------------------------------
# Addresses


# ---------------------------------------------------------------------------------------------
# Filters and matching


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    """What a subscription wants: empty services/documents mean all of them."""

    services: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    topics: tuple[str, ...] = field(default_factory=default_topics)
    min_severity: str = DEFAULT_MIN_SEVERITY
    cadence: Cadence = "immediate"

    def __post_init__(self) -> None:
        if self.min_severity not in SEVERITIES:
            raise SubscriptionError(
                f"unknown severity {self.min_severity!r}; use one of {', '.join(SEVERITIES)}"
            )
        if self.cadence not in CADENCES:
            raise SubscriptionError(
                f"unknown cadence {self.cadence!r}; use one of {', '.join(CADENCES)}"
            )

    def describe(self) -> str:
        """One line for people: ``all services · 12 topics · medium+ · immediate``."""
        services = ", ".join(self.services) if self.services else "all services"
        documents = f" · documents {', '.join(self.documents)}" if self.documents else ""
        topics = f"{len(self.topics)} topics" if self.topics else "all topics"
        return f"{services}{documents} · {topics} · {self.min_severity}+ · {self.cadence}"


@dataclass(frozen=True, slots=True)
class ClauseFacts:
    labels: tuple[str, ...]
    severity: str


@dataclass(frozen=True, slots=True)
class ChangeFacts:
    """What matching needs to know about a change."""

    service: str
    document_id: str
    clauses: tuple[ClauseFacts, ...]

    @classmethod
    def of(cls, change: Change, document: Document) -> ChangeFacts:
        """The facts of a stored change (its clause rows' labels and severities)."""
        return cls(
            service=document.service,
            document_id=document.id,
            clauses=tuple(
                ClauseFacts(labels=tuple(row.labels or ()), severity=row.severity)
                for row in change.clauses
            ),
        )


def _norm_service(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def matches(flt: SubscriptionFilter, facts: ChangeFacts) -> bool:
    """True when at least one changed clause passes the topic and severity filters, and the
    change's document and service are among those wanted."""
    if flt.services and _norm_service(facts.service) not in {
        _norm_service(s) for s in flt.services
    }:
        return False
    if flt.documents and facts.document_id not in flt.documents:
        return False
    floor = severity_rank(flt.min_severity)
    wanted = set(flt.topics)
    for clause in facts.clauses:
        if severity_rank(clause.severity) < floor:
            continue
        if not wanted or wanted.intersection(clause.labels):
            return True
    return False


def subscription_filter(subscription: object) -> SubscriptionFilter:
    """The filter a stored subscription row holds."""
    return SubscriptionFilter(
        services=tuple(getattr(subscription, "services", None) or ()),
        documents=tuple(getattr(subscription, "documents", None) or ()),
        topics=tuple(getattr(subscription, "topics", None) or ()),
        min_severity=getattr(subscription, "min_severity", "medium"),
        cadence=getattr(subscription, "cadence", "immediate"),
    )


def fastest_cadence(cadences: Iterable[str]) -> Cadence:
    """Of several matching subscriptions, the one that reports soonest wins."""
    ordered = sorted(cadences, key=CADENCES.index)
    return ordered[0] if ordered else "immediate"  # type: ignore[return-value]


def next_digest_at(
    now: datetime, cadence: Cadence, *, hour: int = 8, weekday: str = "monday"
) -> datetime:
    """When the next daily or weekly digest leaves, strictly after ``now`` (UTC)."""
    now = now.astimezone(UTC)
    candidate = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate <= now:
        candidate += timedelta(days=1)
    if cadence == "weekly":
        target = WEEKDAYS.index(weekday)
        candidate += timedelta(days=(target - candidate.weekday()) % 7)
    elif cadence != "daily":
        return now
    return candidate


# ---------------------------------------------------------------------------------------------
# Signed tokens

TokenPurpose = Literal["confirm", "unsubscribe"]


@dataclass(frozen=True, slots=True)
class TokenClaims:
    purpose: str
    subscriber_id: int
    email: str
    issued_at: datetime
    nonce: str | None = None
    """The subscriber's token nonce when the link was issued (confirm links)."""


_B64_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict unpadded URL-safe base64: only the 64 letters, a possible length, and the one
    canonical spelling (no stray bits), so no two strings decode to the same bytes.
    ``urlsafe_b64decode`` has no ``validate`` flag and skips what it does not know."""
    if not _B64_ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded URL-safe base64")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical base64 spelling")
    return data


def sign_token(
    key: bytes,
    purpose: TokenPurpose,
    *,
    subscriber_id: int,
    email: str,
    now: datetime,
    nonce: str | None = None,
) -> str:
    """A signed link token; ``nonce`` (the subscriber's :attr:`token_nonce`) binds a confirm
    link to the subscription it was sent for."""
    claims: dict[str, object] = {
        "p": purpose,
        "s": subscriber_id,
        "e": email,
        "t": int(now.timestamp()),
    }
    if nonce is not None:
        claims["n"] = nonce
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8")
    body = _b64(payload)
    signature = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


def verify_token(
    key: bytes,
    token: str,
    purpose: TokenPurpose,
    *,
    now: datetime,
    max_age: timedelta | None = None,
) -> TokenClaims:
    """The claims of a genuine token for ``purpose``; SubscriptionError for anything else."""
    invalid = SubscriptionError("this link is not valid (it may have been altered or truncated)")
    if not isinstance(token, str) or len(token) > 2048:
        raise invalid
    body, sep, signature = token.strip().partition(".")
    if not sep or not body or not signature:
        raise invalid
    try:
        given = _unb64(signature)
        expected = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise invalid from None
    if not hmac.compare_digest(given, expected):
        raise invalid
    try:
        data = json.loads(_unb64(body))
        claims = TokenClaims(
            purpose=str(data["p"]),
            subscriber_id=int(data["s"]),
            email=str(data["e"]),
            issued_at=datetime.fromtimestamp(int(data["t"]), UTC),
            nonce=str(data["n"]) if data.get("n") is not None else None,
        )
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        raise invalid from None
    if claims.purpose != purpose:
        raise invalid
    if max_age is not None and now - claims.issued_at > max_age:
        raise SubscriptionError("this link has expired; subscribe again to get a new one")
    return claims


def load_secret_key(key_file: Path, *, env: Mapping[str, str] = os.environ) -> bytes:
    """The signing key: ``$TOSMON_SECRET_KEY``, else the key file (created with mode 0600).

    A key file readable by group or others is refused: anyone who can read it can forge links.
    """
    from_env = env.get(SECRET_KEY_ENV)
    if from_env:
        if len(from_env) < 16:
            raise ConfigError(f"{SECRET_KEY_ENV} is too short: use at least 16 characters")
        return from_env.encode("utf-8")
    key_file = Path(key_file)
    if not key_file.exists():
        _create_key_file(key_file)
    try:
        mode = key_file.stat().st_mode
        text = key_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the key file {key_file}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the key file {key_file} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {key_file}`"
        )
    if len(text) < 16:
        raise ConfigError(f"the key file {key_file} holds no usable key (too short)")
    return text.encode("ascii")


def check_secret_key(key_file: Path, *, env: Mapping[str, str] = os.environ) -> None:
    """Refuse now a signing key that :func:`load_secret_key` would refuse later (too short,
    unreadable, readable by others); a key file not created yet is fine (it is made on first
    use)."""
    if env.get(SECRET_KEY_ENV) or os.path.lexists(key_file):
        load_secret_key(key_file, env=env)


def _create_key_file(key_file: Path) -> None:
    """Write a new key to a private temporary file, then link it into place: a second process
    starting at the same moment either wins the link or reads the complete winner, never a
    half-written file."""
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".key-", dir=key_file.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use theirs
                os.link(tmp, key_file)
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(f"cannot create the key file {key_file}: {exc.strerror}") from exc


def severity_at_least(severity: str, floor: str) -> bool:
    return severity_rank(severity) >= severity_rank(floor)


def as_filter(
    *,
    services: Sequence[str] = (),
    documents: Sequence[str] = (),
    topics: Sequence[str] = (),
    min_severity: str = DEFAULT_MIN_SEVERITY,
    cadence: str = "immediate",
) -> SubscriptionFilter:
    """A validated filter from user input (CLI options); no topics means the default groups."""
    return SubscriptionFilter(
        services=tuple(dict.fromkeys(s.strip() for s in services if s.strip())),
        documents=tuple(dict.fromkeys(d.strip() for d in documents if d.strip())),
        topics=expand_topics(topics) if topics else default_topics(),
        min_severity=min_severity.strip().lower(),
        cadence=cadence.strip().lower(),  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------
# The subscription lifecycle (runs in the caller's transaction; queries go through store.mail)


CONFIRM_RESEND_INTERVAL = timedelta(minutes=10)
"""At most one confirmation email per address in this time (subscribing again resends one)."""


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    subscriber_id: int
    subscription_id: int
    email: str
    state: str
    confirmation_id: int | None
    """The outbox row of the confirmation email to send now (new, or one still waiting)."""
    action: Literal["added", "updated", "unchanged"] = "added"
    previous: str = ""
    """The filters this subscription had before (``describe()``), when it was updated."""
    confirmation_held_until: datetime | None = None
    """A confirmation went out less than CONFIRM_RESEND_INTERVAL ago: none before this time."""


def subscribe(
    session: Session,
    email: str,
    flt: SubscriptionFilter,
    *,
    now: datetime,
    confirm: bool = True,
) -> SubscribeResult:
    """Subscribe an address, or update its subscription: one subscription per address, so
    subscribing again with other filters replaces them.

    A new (or unsubscribed) address waits for confirmation unless ``confirm`` is False (an
    operator adding an address they own); an active one stays active. An address still waiting
    for confirmation gets its confirmation email again, at most once per
    :data:`CONFIRM_RESEND_INTERVAL` (a confirmation not sent yet is reused, not doubled).
    """
    from monitor.store import mail as store

    address = validate_email(email)
    fields: dict[str, Any] = {
        "services": flt.services,
        "documents": flt.documents,
        "topics": flt.topics,
        "min_severity": flt.min_severity,
        "cadence": flt.cadence,
    }
    subscriber = store.find_subscriber(session, address)
    if subscriber is None:
        subscriber = store.create_subscriber(
            session, email=address, state="pending" if confirm else "active", now=now
        )
    elif subscriber.state != "active":
        store.set_subscriber_state(session, subscriber, "pending" if confirm else "active", now=now)
    action: Literal["added", "updated", "unchanged"] = "added"
    previous = ""
    existing = [subscription_filter(s) for s in subscriber.subscriptions]
    if not existing:
        subscription = store.add_subscription(session, subscriber, **fields, now=now)
    else:
        action = "unchanged" if existing == [flt] else "updated"
        previous = "; ".join(f.describe() for f in existing)
        subscription = store.replace_subscriptions(session, subscriber, **fields, now=now)
    confirmation_id = None
    held_until = None
    if subscriber.state == "pending":
        waiting = store.open_confirmation(session, subscriber.id)
        last_sent = store.last_confirmation_sent_at(session, subscriber.id)
        if waiting is not None:
            confirmation_id = waiting.id
        elif last_sent is not None and now - last_sent < CONFIRM_RESEND_INTERVAL:
            held_until = last_sent + CONFIRM_RESEND_INTERVAL
        else:
            confirmation_id = enqueue_confirmation(session, subscriber, now=now).id
    return SubscribeResult(
        subscriber_id=subscriber.id,
        subscription_id=subscription.id,
        email=subscriber.email,
        state=subscriber.state,
        confirmation_id=confirmation_id,
        action=action,
        previous=previous,
        confirmation_held_until=held_until,
    )


def enqueue_confirmation(session: Session, subscriber: Subscriber, *, now: datetime) -> Delivery:
    """Queue the double opt-in email for a pending subscriber (the outbox sends it)."""
    from monitor.store import mail as store

    return store.add_delivery(
        session,
        kind="confirm",
        status="pending",
        subscriber_id=subscriber.id,
        change_id=None,
        cadence="immediate",
        to_address=subscriber.email,
        subject="Confirm your tos-monitor subscription",
        message_id=new_message_id("confirm", subscriber.id),
        created_at=now,
        due_at=now,
    )


def confirm_token(session: Session, key: bytes, token: str, *, now: datetime) -> str:
    """Activate the subscriber a confirmation token names; returns the address."""
    from monitor.store import mail as store

    claims = verify_token(key, token, "confirm", now=now, max_age=CONFIRM_TOKEN_LIFETIME)
    subscriber = store.get_subscriber(session, claims.subscriber_id)
    if subscriber is None or subscriber.email != claims.email:
        raise SubscriptionError("this link is not valid any more (no such subscriber)")
    if subscriber.token_nonce is not None and claims.nonce != subscriber.token_nonce:
        raise SubscriptionError(
            "this link was sent for an earlier subscription of this address, which was "
            "cancelled; use the link in the latest confirmation email"
        )
    if subscriber.state == "unsubscribed" and (
        subscriber.unsubscribed_at is not None and subscriber.unsubscribed_at > claims.issued_at
    ):
        raise SubscriptionError("this address unsubscribed after the link was sent")
    if subscriber.state != "active":
        store.set_subscriber_state(session, subscriber, "active", now=now)
    return subscriber.email


def unsubscribe_token(session: Session, key: bytes, token: str, *, now: datetime) -> str:
    """Unsubscribe the subscriber an unsubscribe token names; returns the address."""
    claims = verify_token(key, token, "unsubscribe", now=now)
    return unsubscribe(session, claims.email, now=now, subscriber_id=claims.subscriber_id)


def peek_token(key: bytes, token: str, purpose: TokenPurpose, *, now: datetime) -> TokenClaims:
    """Check a token without acting on it (the web endpoint's GET pages)."""
    max_age = CONFIRM_TOKEN_LIFETIME if purpose == "confirm" else None
    return verify_token(key, token, purpose, now=now, max_age=max_age)


def unsubscribe(
    session: Session, email: str, *, now: datetime, subscriber_id: int | None = None
) -> str:
    """Stop all mail to ``email`` (its pending reports are cancelled). Idempotent."""
    from monitor.store import mail as store

    address = validate_email(email)
    subscriber = store.find_subscriber(session, address)
    if subscriber is None or (subscriber_id is not None and subscriber.id != subscriber_id):
        raise SubscriptionError(f"no subscriber {address}")
    if subscriber.state != "unsubscribed":
        store.set_subscriber_state(session, subscriber, "unsubscribed", now=now)
        from monitor.models import new_token_nonce

        subscriber.token_nonce = new_token_nonce()  # confirm links sent so far die here
    return subscriber.email
