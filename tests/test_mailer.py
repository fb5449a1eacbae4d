"""The mailer against a real aiosmtpd: STARTTLS, TLS, authentication, outages, the mail folder;
and the message a subscriber actually receives, parsed with the email package."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import MailConfig
from monitor.errors import DeliveryError
from monitor.mailer import Mailer, SMTPUnavailable, eml_name
from monitor.outbox import compose, deliver_pending
from monitor.render import RenderedEmail
from monitor.subscriptions import verify_token
from tests.mailfactory import AI_CLAUSE, SECRET, T0, add_subscriber, mail_config, record_change
from tests.smtp import (
    SMTPTestServer,
    client_context,
    self_signed_cert,
    server_context,
)

SENDER = "tos-monitor <monitor@example.org>"


def message(to: str = "reader@example.org", message_id: str = "<m1@tos-monitor>") -> EmailMessage:
    return compose(
        RenderedEmail(subject="Hello", text="plain body\n", html="<p>html body</p>"),
        sender=SENDER,
        to=to,
        message_id=message_id,
        date=T0,
        unsubscribe_url="https://tos.example.org/unsubscribe?token=abc",
    )


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(cert: tuple[Path, Path], request: pytest.FixtureRequest) -> Iterator[SMTPTestServer]:
    mode = request.param
    context = server_context(*cert)
    server = SMTPTestServer(
        tls=context if mode == "tls" else None,
        starttls=context if mode == "starttls" else None,
        auth=("monitor", "s3cret"),
    )
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("tls_server", ["starttls", "tls"], indirect=True)
def test_delivers_over_tls_with_authentication(
    tls_server: SMTPTestServer, cert: tuple[Path, Path], request: pytest.FixtureRequest
) -> None:
    security = request.node.callspec.params["tls_server"]
    mail = MailConfig(
        host="127.0.0.1",
        port=tls_server.port,
        security=security,
        username="monitor",
        password_env="SMTP_PASSWORD",
        sender=SENDER,
    )
    with Mailer(mail, env={"SMTP_PASSWORD": "s3cret"}, ssl_context=client_context(cert[0])) as m:
        m.send(message())
        m.send(message(message_id="<m2@tos-monitor>"))
    assert [msg["Message-ID"] for msg in tls_server.messages] == [
        "<m1@tos-monitor>",
        "<m2@tos-monitor>",
    ]
    assert tls_server.logins == ["monitor"]  # one connection kept open for both

    wrong = Mailer(mail, env={"SMTP_PASSWORD": "nope"}, ssl_context=client_context(cert[0]))
    with pytest.raises(SMTPUnavailable, match="rejected the login"), wrong:
        wrong.send(message())


@pytest.mark.parametrize("tls_server", ["starttls"], indirect=True)
def test_an_untrusted_certificate_is_refused(tls_server: SMTPTestServer) -> None:
    mail = MailConfig(host="127.0.0.1", port=tls_server.port, security="starttls", sender=SENDER)
    with pytest.raises(SMTPUnavailable), Mailer(mail) as m:
        m.send(message())
    assert tls_server.messages == []


def test_a_server_that_is_down_is_reported_as_unavailable(smtp_server: SMTPTestServer) -> None:
    mail = MailConfig(host="127.0.0.1", port=smtp_server.port, security="none", sender=SENDER)
    smtp_server.stop()
    with pytest.raises(SMTPUnavailable, match="cannot reach"), Mailer(mail) as m:
        m.send(message())


def test_a_refused_recipient_is_a_permanent_error_for_that_message_only(
    smtp_server: SMTPTestServer,
) -> None:
    mail = MailConfig(host="127.0.0.1", port=smtp_server.port, security="none", sender=SENDER)
    smtp_server.refuse("gone@example.org")
    with Mailer(mail) as m:
        with pytest.raises(DeliveryError) as info:
            m.send(message(to="gone@example.org"))
        assert not info.value.transient and not isinstance(info.value, SMTPUnavailable)
        m.send(message())
    assert [msg["To"] for msg in smtp_server.messages] == ["reader@example.org"]


def test_the_mail_folder_gets_one_file_per_message_id(tmp_path: Path) -> None:
    mail = MailConfig(host=None, sender=SENDER, folder=tmp_path / "mail")
    with Mailer(mail) as m:
        m.send(message())
        m.send(message())  # a re-send overwrites
        m.send(message(message_id="<../../etc/passwd@x>"))
    names = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert names == sorted([eml_name("<m1@tos-monitor>"), eml_name("<../../etc/passwd@x>")])
    assert all("/" not in n and not n.startswith(".") for n in names)
    parsed = message_from_bytes((tmp_path / "mail" / names[-1]).read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Hello"


@pytest.mark.parametrize(
    "field", ["to", "message_id", "sender"], ids=["to", "message-id", "sender"]
)
def test_cr_or_lf_in_any_header_is_refused(field: str) -> None:
    values = {"to": "reader@example.org", "message_id": "<m1@tos-monitor>", "sender": SENDER}
    values[field] = values[field] + "\r\nBcc: victim@example.org"
    with pytest.raises(DeliveryError):
        compose(
            RenderedEmail(subject="s", text="t", html="h"),
            date=T0,
            unsubscribe_url=None,
            **values,
        )


# ---------------------------------------------------------------------------------------------
# What a subscriber receives


def test_the_received_report_is_complete_multipart_with_working_links(
    sessions: sessionmaker[Session],
    smtp_server: SMTPTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOSMON_SECRET_KEY", SECRET)
    config = mail_config(tmp_path, smtp=smtp_server)
    subscriber_id = add_subscriber(sessions)
    hostile = {
        **AI_CLAUSE,
        "after": "We may use <script>alert('x')</script> your content to train AI.",
        "words": [["insert", "We may use <script>alert('x')</script> your content to train AI."]],
        "kind": "added",
        "before": None,
    }
    change_id, _ = record_change(sessions, [hostile])
    deliver_pending(sessions, config, now=lambda: T0)
    [received] = smtp_server.messages

    assert received.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in received.iter_parts()] == ["text/plain", "text/html"]
    assert received["From"] == SENDER
    assert received["Subject"] == "Instagram Terms of Use: new AI training clause (high)"
    assert received["Date"] and received["Message-ID"].endswith("@tos-monitor>")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    unsubscribe = received["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("https://tos.example.org/unsubscribe?token=")
    token = parse_qs(urlsplit(unsubscribe).query)["token"][0]
    claims = verify_token(SECRET.encode(), token, "unsubscribe", now=datetime.now(UTC))
    assert claims.subscriber_id == subscriber_id

    text = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    assert "<script>alert('x')</script>" in text
    assert "<script>" not in html and "&lt;script&gt;" in html
    for body in (text, html):
        assert "Your posts may become training material for AI systems." in body
        assert "https://help.instagram.com/terms" in body
        assert f"https://tos.example.org/changes/{change_id}" in body
        assert "tos.example.org/unsubscribe?token=" in body


def test_the_sender_name_in_from_comes_from_the_config(
    sessions: sessionmaker[Session], smtp_server: SMTPTestServer, tmp_path: Path
) -> None:
    config = mail_config(tmp_path, smtp=smtp_server)
    config = dataclasses.replace(
        config, mail=dataclasses.replace(config.mail, sender="Terms Watch <tw@example.org>")
    )
    with sessions.begin() as session:
        from monitor.outbox import enqueue_alert

        enqueue_alert(session, to="ops@example.org", subject="s", body="b", now=T0, key="k")
    deliver_pending(sessions, config, now=lambda: T0)
    [received] = smtp_server.messages
    assert received["From"] == "Terms Watch <tw@example.org>"
    assert smtp_server.envelopes[0].mail_from == "tw@example.org"


def _load(tmp_path: Path, text: str) -> object:
    from monitor.config import load_config

    path = tmp_path / "tosmon.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={"TOSMON_DATA_DIR": str(tmp_path / "data")})


def test_the_default_sender_uses_the_host_of_base_url(
    sessions: sessionmaker[Session], smtp_server: SMTPTestServer, tmp_path: Path
) -> None:
    config = _load(
        tmp_path,
        f'[mail]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "none"\n'
        '[web]\nbase_url = "https://Tos.Example.org:8443/monitor"\n',
    )
    with sessions.begin() as session:
        from monitor.outbox import enqueue_alert

        enqueue_alert(session, to="ops@example.org", subject="s", body="b", now=T0, key="k")
    deliver_pending(sessions, config, now=lambda: T0)  # type: ignore[arg-type]
    [received] = smtp_server.messages
    assert received["From"] == "tos-monitor <tosmon@tos.example.org>"
    assert smtp_server.envelopes[0].mail_from == "tosmon@tos.example.org"


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8080", "http://localhost:8080"])
def test_smtp_without_a_sender_or_a_usable_base_url_host_is_a_config_error(
    tmp_path: Path, base_url: str
) -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f'[mail]\nhost = "smtp.example.org"\n[web]\nbase_url = "{base_url}"\n')
    assert info.value.key == "mail.sender"
    assert "set sender" in str(info.value) and base_url in str(info.value)
    # writing to the mail folder needs no real address
    folder = _load(tmp_path, f'[web]\nbase_url = "{base_url}"\n')
    assert "@localhost" in folder.mail.sender  # type: ignore[attr-defined]
