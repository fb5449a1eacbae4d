"""Subscriptions: addresses, filters, signed tokens, the key file, and the mail CLI commands."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import ConfigError, SubscriptionError
from monitor.models import Subscriber
from monitor.subscriptions import (
    ChangeFacts,
    ClauseFacts,
    SubscriptionFilter,
    as_filter,
    confirm_token,
    default_topics,
    expand_topics,
    load_secret_key,
    matches,
    next_digest_at,
    sign_token,
    subscribe,
    unsubscribe,
    unsubscribe_token,
    validate_email,
    verify_token,
)
from tests.mailfactory import T0
from tests.smtp import SMTPTestServer

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Reader@Example.ORG", "Reader@example.org"),
        ("  first.last+tos@mail.example.co.uk ", "first.last+tos@mail.example.co.uk"),
    ],
)
def test_valid_addresses_are_normalised(given: str, expected: str) -> None:
    assert validate_email(given) == expected


@pytest.mark.parametrize(
    "address",
    [
        "no-at-sign",
        "a@localhost",
        "a@example.org\r\nBcc: victim@example.org",
        "a@example.org\nX: y",
        "Name <a@example.org>",
        "a..b@example.org",
        '"quoted"@example.org',
        "a@-example.org",
        "x" * 65 + "@example.org",
    ],
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(SubscriptionError):
        validate_email(address)


def test_defaults_are_ai_and_licence_topics_medium_immediate() -> None:
    flt = as_filter()
    assert "AI_TRAINING_ON_USER_DATA" in flt.topics and "LICENSE_GRANT" in flt.topics
    assert "BIOMETRIC_FACE_VOICE" not in flt.topics
    assert (flt.min_severity, flt.cadence, flt.services) == ("medium", "immediate", ())
    assert flt.topics == default_topics()


def test_topics_accept_groups_and_labels_and_refuse_unknown_ones() -> None:
    assert expand_topics(["privacy", "license_grant"]) == (
        "BIOMETRIC_FACE_VOICE",
        "CONTENT_ACCESS_REVIEW",
        "LICENSE_GRANT",
        "RETENTION_AFTER_DELETION",
    )
    with pytest.raises(SubscriptionError, match="unknown topic"):
        expand_topics(["AI_STUFF"])
    with pytest.raises(SubscriptionError, match="severity"):
        as_filter(min_severity="urgent")


def facts(*clauses: tuple[tuple[str, ...], str], service: str = "Instagram") -> ChangeFacts:
    return ChangeFacts(
        service=service,
        document_id="instagram/terms-of-use",
        clauses=tuple(ClauseFacts(labels=labels, severity=sev) for labels, sev in clauses),
    )


def test_matching_needs_one_clause_passing_both_topic_and_severity() -> None:
    flt = SubscriptionFilter()
    assert matches(flt, facts((("AI_OPT_OUT_CONTROL",), "medium")))
    assert not matches(flt, facts((("AI_OPT_OUT_CONTROL",), "low")))
    # a severe clause on another topic plus a mild one on ours is not enough
    assert not matches(flt, facts((("BIOMETRIC_FACE_VOICE",), "high"), (("LICENSE_GRANT",), "low")))
    assert matches(SubscriptionFilter(topics=()), facts((("BIOMETRIC_FACE_VOICE",), "high")))


def test_services_match_whatever_the_case_and_punctuation() -> None:
    flt = as_filter(services=["meta ai"])
    assert matches(flt, facts((("AI_INTERACTION_DATA",), "high"), service="Meta AI"))
    assert not matches(flt, facts((("AI_INTERACTION_DATA",), "high"), service="Instagram"))


def test_digests_leave_at_the_next_digest_hour() -> None:
    monday_10 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
    assert next_digest_at(monday_10, "daily") == datetime(2025, 3, 4, 8, 0, tzinfo=UTC)
    assert next_digest_at(monday_10, "weekly") == datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
    early = datetime(2025, 3, 3, 7, 0, tzinfo=UTC)
    assert next_digest_at(early, "weekly", weekday="monday") == datetime(
        2025, 3, 3, 8, 0, tzinfo=UTC
    )


def test_a_token_round_trips_and_any_alteration_is_refused() -> None:
    token = sign_token(KEY, "unsubscribe", subscriber_id=3, email="a@example.org", now=T0)
    claims = verify_token(KEY, token, "unsubscribe", now=T0)
    assert (claims.subscriber_id, claims.email) == (3, "a@example.org")
    body, signature = token.split(".")
    forged_body = sign_token(KEY, "unsubscribe", subscriber_id=4, email="b@example.org", now=T0)
    for bad in (
        f"{forged_body.split('.')[0]}.{signature}",
        f"{body}.{signature[:-2]}AA",
        token + "x",
        body,
        "",
        "..",
    ):
        with pytest.raises(SubscriptionError):
            verify_token(KEY, bad, "unsubscribe", now=T0)
    with pytest.raises(SubscriptionError):
        verify_token(b"another key 0123456789", token, "unsubscribe", now=T0)
    with pytest.raises(SubscriptionError):
        verify_token(KEY, token, "confirm", now=T0)


def test_confirmation_links_expire() -> None:
    token = sign_token(KEY, "confirm", subscriber_id=1, email="a@example.org", now=T0)
    with pytest.raises(SubscriptionError, match="expired"):
        verify_token(KEY, token, "confirm", now=T0 + timedelta(days=30), max_age=timedelta(7))


def test_the_key_file_is_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    key_file = tmp_path / "sub" / "secret.key"
    first = load_secret_key(key_file, env={})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_secret_key(key_file, env={}) == first
    assert load_secret_key(key_file, env={"TOSMON_SECRET_KEY": "x" * 20}) == b"x" * 20
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret_key(key_file, env={})


def test_subscribe_confirm_and_unsubscribe_by_token(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        result = subscribe(session, "a@example.org", as_filter(), now=T0)
    assert result.state == "pending" and result.confirmation_id is not None
    good = confirm_link_token(sessions, result.subscriber_id, now=T0)
    with sessions.begin() as session:
        assert confirm_token(session, KEY, good, now=T0) == "a@example.org"
    off = sign_token(
        KEY, "unsubscribe", subscriber_id=result.subscriber_id, email=result.email, now=T0
    )
    with sessions.begin() as session:
        unsubscribe_token(session, KEY, off, now=T0)
        unsubscribe_token(session, KEY, off, now=T0)  # twice is harmless
    with sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.state == "unsubscribed"


def confirm_link_token(
    sessions: sessionmaker[Session], subscriber_id: int, *, now: datetime
) -> str:
    """The token of the confirm link the outbox would mail now (tests.mailfactory's key)."""
    from monitor.outbox import Links

    with sessions() as session:
        subscriber = session.get_one(Subscriber, subscriber_id)
        url = Links("https://tos.example.org", KEY).confirm(subscriber, issued_at=now)
    return unquote(url.split("token=", 1)[1])


def test_a_confirm_link_sent_before_an_unsubscribe_cannot_confirm_a_resubscription(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        first = subscribe(session, "a@example.org", as_filter(), now=T0)
    old_link = confirm_link_token(sessions, first.subscriber_id, now=T0)
    with sessions.begin() as session:
        unsubscribe(session, "a@example.org", now=T0 + timedelta(minutes=1))
        again = subscribe(session, "a@example.org", as_filter(), now=T0 + timedelta(minutes=2))
    assert again.subscriber_id == first.subscriber_id and again.state == "pending"

    # someone holding the first email (a shared inbox, a forwarded message) cannot confirm
    with sessions.begin() as session, pytest.raises(SubscriptionError, match="earlier subscr"):
        confirm_token(session, KEY, old_link, now=T0 + timedelta(minutes=3))
    with sessions() as session:
        assert session.get_one(Subscriber, first.subscriber_id).state == "pending"

    # the link in the new confirmation email works
    new_link = confirm_link_token(sessions, first.subscriber_id, now=T0 + timedelta(minutes=2))
    with sessions.begin() as session:
        assert confirm_token(session, KEY, new_link, now=T0 + timedelta(minutes=3)) == (
            "a@example.org"
        )


def test_a_subscriber_from_before_nonces_keeps_working_links(
    sessions: sessionmaker[Session],
) -> None:
    """Rows written before the migration have no nonce: their links (which carry none) still
    confirm, until an unsubscribe gives the row one."""
    with sessions.begin() as session:
        result = subscribe(session, "old@example.org", as_filter(), now=T0)
        session.get_one(Subscriber, result.subscriber_id).token_nonce = None
    legacy = sign_token(
        KEY, "confirm", subscriber_id=result.subscriber_id, email=result.email, now=T0
    )
    with sessions.begin() as session:
        assert confirm_token(session, KEY, legacy, now=T0) == "old@example.org"
    with sessions.begin() as session:
        unsubscribe(session, "old@example.org", now=T0 + timedelta(minutes=1))
        subscribe(session, "old@example.org", as_filter(), now=T0 + timedelta(minutes=2))
    with sessions.begin() as session, pytest.raises(SubscriptionError):
        confirm_token(session, KEY, legacy, now=T0 + timedelta(minutes=3))


def test_token_base64_is_decoded_strictly() -> None:
    """Only the one spelling the signer wrote is accepted: no padding, no characters outside the
    URL-safe alphabet (standard base64's + and /, spaces, dots), no stray trailing bits."""
    token = sign_token(KEY, "unsubscribe", subscriber_id=3, email="a@example.org", now=T0)
    body, signature = token.split(".")
    assert verify_token(KEY, token, "unsubscribe", now=T0).subscriber_id == 3
    # 32 signature bytes end in 4 base64 bits + 2 unused ones: flip an unused bit
    stray = _flip_unused_bit(signature[-1])
    variants = [
        f"{body}.{signature}=",  # padding
        f"{body}=.{signature}",
        f"{body}.{signature[:10]}!{signature[10:]}",  # junk that urlsafe_b64decode skips
        f"{body}.{signature[:10]} {signature[10:]}",
        f"{body}.{signature.replace('-', '+').replace('_', '/')}",
        f"{body}.{signature[:-1]}{stray}",
        f"{body[:5]}\n{body[5:]}.{signature}",
    ]
    for variant in variants:
        if variant == token:
            continue
        with pytest.raises(SubscriptionError, match="not valid"):
            verify_token(KEY, variant, "unsubscribe", now=T0)


def _flip_unused_bit(char: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return alphabet[alphabet.index(char) ^ 1]


# ---------------------------------------------------------------------------------------------
# The CLI


@pytest.fixture
def cli_env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TOSMON_SECRET_KEY", "cli-secret-0123456789")
    return {}


def run(*args: str) -> tuple[int, str]:
    from monitor.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_subscribe_sends_a_confirmation_and_confirm_activates(
    cli_env: dict[str, str], data_dir: Path
) -> None:
    code, out = run("subscribe", "Reader@Example.org", "--topic", "ai", "--cadence", "daily")
    assert code == 0, out
    assert "confirmation email went to Reader@example.org" in out
    [eml] = list((data_dir / "mail").glob("*.eml"))
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = next(line for line in text.splitlines() if "/confirm?token=" in line)
    token = link.split("token=")[1].strip().replace("%3D", "=")

    code, out = run("subscribers", "--json")
    [row] = json.loads(out)
    assert row["state"] == "pending" and row["subscriptions"][0]["cadence"] == "daily"

    code, out = run("confirm", token + "x")
    assert code == 1 and "not valid" in out
    code, out = run("confirm", token)
    assert code == 0 and "Confirmed" in out

    code, out = run("subscribers")
    assert "Reader@example.org" in out and "active" in out

    code, out = run("unsubscribe", "reader@EXAMPLE.org")
    assert code == 1  # the local part is case-sensitive: no such subscriber
    code, out = run("unsubscribe", "Reader@example.org")
    assert code == 0 and "Unsubscribed" in out
    assert json.loads(run("subscribers", "--json")[1])[0]["state"] == "unsubscribed"


def test_cli_refuses_a_bad_address_and_no_confirm_activates_at_once(
    cli_env: dict[str, str], data_dir: Path
) -> None:
    code, out = run("subscribe", "not an address")
    assert code == 1 and "not a valid email address" in out
    code, out = run("subscribe", "ops@example.org", "--no-confirm")
    assert code == 0 and "active" in out
    assert not (data_dir / "mail").exists()


def test_cli_report_renders_a_change(
    cli_env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    from monitor.config import load_config
    from monitor.db import ensure_schema, make_engine, session_factory
    from tests.mailfactory import make_change, make_document

    engine = make_engine(load_config().storage.database_url)
    ensure_schema(engine)
    with session_factory(engine).begin() as session:
        change_id = make_change(session, make_document(session)).id
    engine.dispose()
    html = tmp_path / "report.html"
    code, out = run("report", str(change_id), "--html", str(html), "--text")
    assert code == 0, out
    assert "Subject: Instagram Terms of Use: AI training clause changed (high)" in out
    assert "{+ and to train our AI models.+}" in out
    assert "<ins " in html.read_text()
    assert run("report", "999")[0] == 1


def test_processes_starting_together_share_one_key_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    key_file = tmp_path / "keys" / "secret.key"
    code = (
        "import sys; from pathlib import Path; from monitor.subscriptions import load_secret_key; "
        "print(load_secret_key(Path(sys.argv[1]), env={}).decode())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(key_file)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(keys) == 1 and len(keys.pop()) >= 16
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in key_file.parent.iterdir()] == ["secret.key"]


# ---------------------------------------------------------------------------------------------
# Confirmation emails go through the outbox; subscribing again updates and resends


@pytest.fixture
def smtp_cli(
    tmp_path: Path,
    database_url: str,
    sessions: sessionmaker[Session],
    smtp_server: SMTPTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> SMTPTestServer:
    """The CLI on the test database (SQLite or PostgreSQL), mailing the test SMTP server."""
    config = tmp_path / "tosmon.toml"
    config.write_text(
        f'use_catalog = false\n[storage]\ndatabase_url = "{database_url}"\n'
        f'[mail]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "none"\n'
        'retry_after = "5m"\n[web]\nbase_url = "https://tos.example.org"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("TOSMON_CONFIG", str(config))
    monkeypatch.setenv("TOSMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TOSMON_SECRET_KEY", "cli-secret-0123456789")
    return smtp_server


def test_a_confirmation_the_server_could_not_take_is_delivered_by_send(
    smtp_cli: SMTPTestServer,
) -> None:
    smtp_cli.stop()
    code, out = run("subscribe", "new@example.org")
    assert code == 0, out
    assert "The confirmation email to new@example.org is not sent yet (cannot reach" in out
    assert "retried at 20" in out and "now by `tosmon send`" in out
    smtp_cli.start()
    code, out = run("send")  # long before the 5-minute retry delay is over
    assert code == 0 and out == "Sent 1. Nothing pending.\n", out
    [message] = smtp_cli.messages
    assert message["To"] == "new@example.org"
    assert message["Subject"] == "Confirm your tos-monitor subscription"
    assert message["From"] == "tos-monitor <tosmon@tos.example.org>"


def test_a_refused_confirmation_says_so_and_subscribing_again_sends_a_new_one(
    smtp_cli: SMTPTestServer,
) -> None:
    smtp_cli.refuse("typo@example.org")
    code, out = run("subscribe", "typo@example.org")
    assert code == 0, out
    assert "The mail server refused the confirmation email to typo@example.org" in out
    assert "550 5.1.1 no such user here" in out and "will not be retried" in out
    smtp_cli.accept("typo@example.org")
    code, out = run("subscribe", "typo@example.org")
    assert "typo@example.org already has this subscription" in out
    assert "A confirmation email went to typo@example.org" in out  # none reached them before
    assert [m["To"] for m in smtp_cli.messages] == ["typo@example.org"]


def test_subscribing_again_updates_the_one_subscription_and_resends_at_most_every_10_minutes(
    smtp_cli: SMTPTestServer,
) -> None:
    code, out = run("subscribe", "reader@example.org", "--topic", "ai")
    assert "A confirmation email went to reader@example.org" in out
    code, out = run(
        "subscribe", "reader@example.org", "--service", "Instagram", "--cadence", "daily"
    )
    assert code == 0, out
    assert out.startswith("Updated reader@example.org: Instagram · ")
    assert "· daily" in out and "(was: all services · " in out
    assert "less than 10 minutes ago; another can be sent from 20" in out
    assert len(smtp_cli.messages) == 1  # no second confirmation yet
    [row] = json.loads(run("subscribers", "--json")[1])
    [subscription] = row["subscriptions"]
    assert (subscription["services"], subscription["cadence"]) == (["Instagram"], "daily")
    assert row["state"] == "pending"


def test_a_confirmation_resent_after_10_minutes_lists_the_new_filters(
    sessions: sessionmaker[Session],
    smtp_server: SMTPTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.outbox import subscribe_now
    from tests.mailfactory import mail_config

    monkeypatch.setenv("TOSMON_SECRET_KEY", "cli-secret-0123456789")
    config = mail_config(tmp_path, smtp=smtp_server)
    first = subscribe_now(sessions, config, "r@example.org", as_filter(), now=lambda: T0)
    assert first.confirmation == "sent"
    early = subscribe_now(
        sessions,
        config,
        "r@example.org",
        as_filter(services=["Facebook"]),
        now=lambda: T0 + timedelta(minutes=9),
    )
    assert early.confirmation is None
    assert early.result.confirmation_held_until == T0 + timedelta(minutes=10)
    later = subscribe_now(
        sessions,
        config,
        "r@example.org",
        as_filter(services=["Threads"]),
        now=lambda: T0 + timedelta(minutes=10),
    )
    assert later.confirmation == "sent" and later.result.action == "updated"
    second = smtp_server.messages[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Threads" in second and "Facebook" not in second
    with sessions() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert [s.services for s in subscriber.subscriptions] == [["Threads"]]
