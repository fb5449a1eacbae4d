"""[[notify]] targets: signed webhooks and Apprise channels through the outbox, over real HTTP
on 127.0.0.1 and a real database: delivered once, retried while the endpoint is down, never lost."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import Monitor
from monitor.config import Config, NotifyConfig, load_config
from monitor.errors import ConfigError
from monitor.models import Delivery
from monitor.outbox import deliver_pending
from tests.mailfactory import AI_CLAUSE, SECRET, T0, mail_config, record_change

KEY = "webhook-signing-key-0123456789"


class Receiver:
    """A local endpoint that records every POST and answers with the next queued status."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture(autouse=True)
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOSMON_SECRET_KEY", SECRET)
    monkeypatch.setenv("HOOK_KEY", KEY)


def with_targets(tmp_path: Path, *targets: NotifyConfig) -> Config:
    return dataclasses.replace(mail_config(tmp_path), notify=targets)


def hook(url: str, **filters: object) -> NotifyConfig:
    return NotifyConfig(name="hook", kind="webhook", url=url, secret_env="HOOK_KEY", **filters)  # type: ignore[arg-type]


def rows(sessions: sessionmaker[Session], kind: str = "webhook") -> list[Delivery]:
    with sessions() as session:
        return list(session.scalars(select(Delivery).where(Delivery.kind == kind)))


def test_a_change_found_after_the_target_is_configured_is_posted_once_and_signed(
    sessions: sessionmaker[Session], tmp_path: Path, receiver: Receiver
) -> None:
    config = with_targets(tmp_path, hook(receiver.url))
    deliver_pending(sessions, config, now=lambda: T0)  # the target is seen: history not replayed
    change_id, _ = record_change(sessions, now=T0 + timedelta(minutes=1))

    deliver_pending(sessions, config, now=lambda: T0 + timedelta(minutes=2))
    deliver_pending(sessions, config, now=lambda: T0 + timedelta(minutes=3))

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = hmac.new(
        KEY.encode(), headers["X-Tosmon-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Tosmon-Signature"] == f"sha256={expected}"
    assert headers["X-Tosmon-Delivery"].startswith("<tosmon.webhook.")
    payload = json.loads(body)
    assert payload["id"] == change_id
    assert payload["url"] == f"https://tos.example.org/changes/{change_id}"
    assert payload["service"] == "Instagram"
    assert payload["headline"]
    assert payload["clauses"][0]["annotation"] == AI_CLAUSE["annotation"]
    assert [r.status for r in rows(sessions)] == ["sent"]


def test_changes_from_before_the_target_existed_are_not_replayed(
    sessions: sessionmaker[Session], tmp_path: Path, receiver: Receiver
) -> None:
    record_change(sessions, now=T0)
    config = with_targets(tmp_path, hook(receiver.url))
    deliver_pending(sessions, config, now=lambda: T0 + timedelta(days=1))
    assert receiver.requests == [] and rows(sessions) == []


def test_an_endpoint_that_is_down_loses_nothing_and_gets_it_once_back_up(
    sessions: sessionmaker[Session], tmp_path: Path, receiver: Receiver
) -> None:
    config = with_targets(tmp_path, hook(receiver.url))
    deliver_pending(sessions, config, now=lambda: T0)
    record_change(sessions, now=T0 + timedelta(minutes=1))
    receiver.statuses = [503, 502]

    deliver_pending(sessions, config, now=lambda: T0 + timedelta(minutes=2))
    (row,) = rows(sessions)
    assert row.status == "pending" and "HTTP 503" in (row.last_error or "")
    deliver_pending(sessions, config, now=lambda: T0 + timedelta(minutes=2, seconds=5))
    assert len(receiver.requests) == 1  # still backing off: not retried yet

    later = T0 + timedelta(hours=1)
    deliver_pending(sessions, config, now=lambda: later)  # 502
    deliver_pending(sessions, config, now=lambda: later + timedelta(hours=7))  # 200
    deliver_pending(sessions, config, now=lambda: later + timedelta(hours=8))
    assert len(receiver.requests) == 3
    assert len({h["X-Tosmon-Delivery"] for h, _ in receiver.requests}) == 1  # one delivery id
    assert [r.status for r in rows(sessions)] == ["sent"]


def test_an_endpoint_that_refuses_the_request_fails_it_for_good(
    sessions: sessionmaker[Session], tmp_path: Path, receiver: Receiver
) -> None:
    config = with_targets(tmp_path, hook(receiver.url))
    deliver_pending(sessions, config, now=lambda: T0)
    record_change(sessions, now=T0 + timedelta(minutes=1))
    receiver.statuses = [403]
    deliver_pending(sessions, config, now=lambda: T0 + timedelta(minutes=2))
    deliver_pending(sessions, config, now=lambda: T0 + timedelta(days=1))
    assert len(receiver.requests) == 1
    (row,) = rows(sessions)
    assert row.status == "failed" and "HTTP 403" in (row.last_error or "")


def test_filters_are_those_of_a_subscription(
    sessions: sessionmaker[Session], tmp_path: Path, receiver: Receiver
) -> None:
    config = with_targets(
        tmp_path,
        hook(receiver.url, services=("Facebook",)),
        dataclasses.replace(hook(receiver.url, min_severity="high"), name="high-only"),
    )
    deliver_pending(sessions, config, now=lambda: T0)
    record_change(sessions, now=T0 + timedelta(minutes=1))  # Instagram, high
    deliver_pending(sessions, config, now=lambda: T0 + timedelta(minutes=2))
    assert [r.to_address for r in rows(sessions)] == ["high-only"]
    assert len(receiver.requests) == 1


def test_apprise_targets_post_through_apprise(
    sessions: sessionmaker[Session],
    tmp_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("apprise")
    monkeypatch.setenv("CHAT_URL", receiver.url.replace("http://", "json://"))
    target = NotifyConfig(name="chat", kind="apprise", url_env="CHAT_URL")
    config = with_targets(tmp_path, target)
    deliver_pending(sessions, config, now=lambda: T0)
    change_id, _ = record_change(sessions, now=T0 + timedelta(minutes=1))
    deliver_pending(sessions, config, now=lambda: T0 + timedelta(minutes=2))
    assert len(receiver.requests) == 1
    message = json.loads(receiver.requests[0][1])
    assert "Instagram" in message["title"]
    assert f"/changes/{change_id}" in message["message"]
    assert [r.status for r in rows(sessions, "apprise")] == ["sent"]


def test_config_names_the_broken_notify_line(tmp_path: Path) -> None:
    path = tmp_path / "tosmon.toml"
    path.write_text(
        '[[notify]]\nname = "hook"\nurl = "http://127.0.0.1:9/x"\n'
        '\n[[notify]]\nname = "chat"\nkind = "pager"\nurl = "x"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "notify[1]" in str(info.value) and "secret_env" in str(info.value)
    path.write_text('[[notify]]\nname = "chat"\nkind = "pager"\nurl = "x"\n')
    with pytest.raises(ConfigError, match="pager"):
        load_config(path)


def test_a_missing_secret_variable_stops_check_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_KEY")
    config = with_targets(tmp_path, hook("http://127.0.0.1:9/x"))
    with pytest.raises(ConfigError, match="HOOK_KEY"):
        Monitor(config).check_mail_settings()
