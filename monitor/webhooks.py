"""The ``[[notify]]`` channels: a signed JSON POST (webhook) or an Apprise URL.

The only code, besides the fetcher, that makes HTTP requests. What it sends is the change as
``tosmon changes --json`` shows it, plus its headline and its web link. A webhook request carries:

    Content-Type: application/json
    X-Tosmon-Delivery: <the outbox row's Message-ID: the same on every retry, for deduplication>
    X-Tosmon-Timestamp: <Unix seconds>
    X-Tosmon-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the target's key>

A 2xx answer delivers it. Connection errors, timeouts, 408, 429 and 5xx are retried with the
outbox's backoff; any other answer (a 4xx: the receiver refuses this request) fails it for good.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from monitor.errors import DeliveryError
from monitor.render import ChangeView, headline
from monitor.report import clause_to_json
from monitor.urls import mask_credentials

TIMEOUT = 15.0
USER_AGENT = "tos-monitor webhook"
_RETRYABLE = {408, 425, 429}


def change_payload(view: ChangeView, *, base_url: str, target: str) -> dict[str, Any]:
    """The JSON a webhook receives for one change."""
    return {
        "event": "change",
        "target": target,
        "id": view.change_id,
        "url": f"{base_url.rstrip('/')}/changes/{view.change_id}",
        "service": view.service,
        "document": view.document_id,
        "type": view.document_type,
        "source_url": mask_credentials(view.url),
        "detected_at": view.detected_at.isoformat(),
        "headline": headline(view),
        "severity": view.top_severity,
        "summary": view.summary,
        "labels": sorted({label for c in view.clauses for label in c.labels}),
        "notes": list(view.notes),
        "clauses": [clause_to_json(c) for c in view.shown_clauses],
    }


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: what a receiver recomputes to trust a request."""
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def post_webhook(
    url: str, payload: dict[str, Any], *, key: bytes, delivery_id: str, timeout: float = TIMEOUT
) -> None:
    """POST ``payload`` signed with ``key``; a DeliveryError (transient or not) when refused."""
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Tosmon-Delivery": delivery_id,
        "X-Tosmon-Timestamp": timestamp,
        "X-Tosmon-Signature": signature(key, timestamp, body),
    }
    shown = mask_credentials(url)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {shown} unreachable: {exc or type(exc).__name__}") from exc
    if 200 <= response.status_code < 300:
        return
    transient = response.status_code >= 500 or response.status_code in _RETRYABLE
    raise DeliveryError(
        f"webhook {shown} answered HTTP {response.status_code}", transient=transient
    )


def notify_apprise(url: str, *, title: str, body: str) -> None:
    """Send through Apprise (the optional ``notify`` extra); failures are retried."""
    try:
        import apprise  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise DeliveryError(
            "Apprise is not installed: pip install 'tos-monitor[notify]'", transient=False
        ) from exc
    sender = apprise.Apprise()
    if not sender.add(url):
        raise DeliveryError("Apprise does not understand this notify URL", transient=False)
    if not sender.notify(title=title, body=body):
        raise DeliveryError("Apprise could not deliver the notification")
