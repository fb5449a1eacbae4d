"""The library API: ``Monitor`` as a Python user calls it, over real HTTP and a real database."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor import Monitor
from monitor.api import ChangeRecord, DocumentInfo, History
from monitor.config import load_config
from monitor.errors import ArgumentError, ConfigError, MonitorError, SubscriptionError
from monitor.subscriptions import validate_email
from tests.pages import AI_TRAINING, terms_page
from tests.smtp import SMTPTestServer

README = Path(__file__).resolve().parents[1] / "README.md"


def write_config(path: Path, database_url: str, *urls: str, extra: str = "") -> Path:
    documents = "".join(
        f'\n[[documents]]\nservice = "Example"\ntype = "Doc {i}"\nurl = "{url}"\n'
        for i, url in enumerate(urls)
    )
    path.write_text(
        f"""use_catalog = false
{extra}
[storage]
database_url = "{database_url}"

[fetch]
retries = 0
timeout = 5
{documents}""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config_path(tmp_path: Path, page_server, database_url: str, data_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    page_server.set("/tos", terms_page())
    return write_config(tmp_path / "tosmon.toml", database_url, page_server.url("/tos"))


def test_open_accepts_a_path_a_config_or_nothing(config_path: Path, data_dir: Path) -> None:
    with Monitor.open(config_path) as by_path:
        assert [d.id for d in by_path.config.all_documents()] == ["example/doc-0"]
    config = load_config(config_path)
    with Monitor.open(config) as given:
        assert given.config is config
    with Monitor.open(None) as defaults:
        assert defaults.config.use_catalog  # the built-in catalog, Meta first
        assert defaults.config.all_documents()[0].service.lower().startswith(("instagram", "meta"))


def test_open_reports_a_bad_config_file_by_name(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[fetch]\ntimeout = 'soon'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml:2.*timeout"):
        Monitor.open(path)


def test_check_then_change_then_history_diff_and_changes(config_path: Path, page_server) -> None:  # type: ignore[no-untyped-def]
    with Monitor.open(config_path) as monitor:
        [first] = monitor.check()
        assert (first.document_id, first.outcome) == ("example/doc-0", "first")
        [same] = monitor.check(["example/doc-0"])
        assert same.outcome == "unchanged"

        page_server.set("/tos", terms_page(extra=AI_TRAINING))
        [changed] = monitor.check()
        assert changed.outcome == "changed" and changed.change_id is not None

        history = monitor.history("example/doc-0")
        assert isinstance(history, History)
        assert len(history.versions) == 2 and [c.id for c in history.changes] == [changed.change_id]

        latest = monitor.text_at("example/doc-0")
        assert "artificial intelligence" in latest
        first_text = monitor.text_at("example/doc-0", history.versions[0].seen_at)
        assert "artificial intelligence" not in first_text

        comparison = monitor.diff("example/doc-0")
        assert comparison.from_at == history.versions[0].seen_at
        added = [c for c in comparison.report.clauses if c.kind == "added"]
        assert any("AI_TRAINING_ON_USER_DATA" in c.labels for c in added)

        [record] = monitor.changes(min_severity="cosmetic")
        assert isinstance(record, ChangeRecord)
        assert record.document == "example/doc-0" and record.id == changed.change_id
        assert any("AI_TRAINING_ON_USER_DATA" in c.labels for c in record.clauses)
        assert monitor.changes(topics=["BIOMETRIC_FACE_VOICE"], min_severity="cosmetic") == []

        [doc] = monitor.documents()
        assert isinstance(doc, DocumentInfo)
        assert doc.versions == 2 and not doc.failing and doc.last_change_at is not None


def test_results_outlive_the_monitor(config_path: Path) -> None:
    """Returned values are plain data: usable after close, and immutable."""
    with Monitor.open(config_path) as monitor:
        monitor.check()
        history = monitor.history("example/doc-0")
        [doc] = monitor.documents()
    assert history.versions[0].clauses > 0 and doc.url.endswith("/tos")
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.url = "elsewhere"  # type: ignore[misc]


def test_a_failed_fetch_is_a_failed_result_and_shows_in_status(
    tmp_path: Path,
    page_server,  # type: ignore[no-untyped-def]
    database_url: str,
    data_dir: Path,
) -> None:
    path = write_config(tmp_path / "t.toml", database_url, page_server.url("/missing"))
    with Monitor.open(path) as monitor:
        [result] = monitor.check()
        assert result.outcome == "failed" and "404" in result.detail
        status = monitor.status()
        assert not status.running and status.documents == 1
        [failing] = status.failing
        assert failing.document == "example/doc-0" and failing.consecutive_failures == 1
        assert monitor.history("example/doc-0").versions == ()


def test_unknown_names_are_argument_errors(config_path: Path) -> None:
    with Monitor.open(config_path) as monitor:
        with pytest.raises(ArgumentError, match="unknown document id") as raised:
            monitor.check(["nope/terms"])
        assert raised.value.argument == "ID"
        with pytest.raises(ArgumentError, match="no document 'nope'"):
            monitor.history("nope")
        with pytest.raises(ArgumentError, match="unknown topic"):
            monitor.changes(topics=["NOT_A_TOPIC"])
        monitor.check()
        with pytest.raises(MonitorError, match="no earlier version"):
            monitor.diff("example/doc-0")
        with pytest.raises(MonitorError, match="has no version at or before"):
            monitor.text_at("example/doc-0", monitor.clock() - timedelta(days=1))


def test_compare_two_local_files(tmp_path: Path) -> None:
    old, new = tmp_path / "old.html", tmp_path / "new.html"
    old.write_text(terms_page(), encoding="utf-8")
    new.write_text(terms_page(extra=AI_TRAINING), encoding="utf-8")
    with Monitor.open(load_config(env={"TOSMON_DATA_DIR": str(tmp_path)})) as monitor:
        report = monitor.compare(old, new, service="Example")
        with pytest.raises(MonitorError, match="cannot read"):
            monitor.compare(tmp_path / "missing.html", new)
    assert report.severity in ("high", "medium")
    assert any("AI_TRAINING_ON_USER_DATA" in c.labels for c in report.clauses)


def with_mail(config_path: Path, smtp_server: SMTPTestServer) -> None:
    """Point the config's [mail] at the local SMTP server."""
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(
        text.replace(
            "[fetch]",
            f'[mail]\nhost = "{smtp_server.host}"\nport = {smtp_server.port}\n'
            'security = "none"\nsender = "tos-monitor <monitor@example.org>"\n\n[fetch]',
        ),
        encoding="utf-8",
    )


def test_subscribe_confirm_unsubscribe(
    tmp_path: Path,
    config_path: Path,
    smtp_server: SMTPTestServer,
) -> None:
    with_mail(config_path, smtp_server)
    with Monitor.open(config_path) as monitor:
        outcome = monitor.subscribe("Reader@Example.ORG", topics=["ai"], cadence="daily")
        assert outcome.email == "Reader@example.org" and outcome.state == "pending"
        assert outcome.confirmation_sent
        [message] = smtp_server.messages
        body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        token = re.search(r"confirm\?token=([\w.\-]+)", body)
        assert token is not None, body
        assert monitor.confirm(token.group(1)) == "Reader@example.org"
        [subscriber] = monitor.subscribers()
        assert subscriber.state == "active"
        [subscription] = subscriber.subscriptions
        assert subscription.cadence == "daily" and "daily" in subscription.summary
        assert monitor.unsubscribe("Reader@example.org") == "Reader@example.org"
        assert monitor.subscribers()[0].state == "unsubscribed"
        with pytest.raises(SubscriptionError, match="not a valid email"):
            monitor.subscribe("not an address")


def test_a_change_found_by_check_is_mailed_by_deliver(
    config_path: Path,
    page_server,
    smtp_server: SMTPTestServer,  # type: ignore[no-untyped-def]
) -> None:
    with_mail(config_path, smtp_server)
    with Monitor.open(config_path) as monitor:
        monitor.subscribe("reader@example.org", topics=["ai"], confirm=False)
        monitor.check()
        page_server.set("/tos", terms_page(extra=AI_TRAINING))
        [changed] = monitor.check()
        assert changed.outcome == "changed"
        assert smtp_server.messages == []  # check queues, deliver sends
        stats = monitor.deliver(hold=False)  # as `tosmon check` does after a whole cycle
        assert stats.sent == 1
        assert monitor.deliver(hold=False).sent == 0  # never twice
    [message] = smtp_server.messages
    assert message["To"] == "reader@example.org"
    assert "AI" in message["Subject"]


# -- one decoder: the fetcher and the extractor read a page's bytes the same way -------------

WINDOWS_1252_PAGE = (
    b"<html><head><title>Terms</title></head><body><main><h1>Terms of Use</h1>"
    b"<p>You grant us a \x93licence\x94 to use your content \x96 worldwide, royalty-free "
    b"and for as long as your account exists.</p>"
    b"<p>We may change these terms from time to time, and we will tell you when we do.</p>"
    b"</main></body></html>"
)


def test_a_latin1_labelled_page_keeps_its_quotes_and_dashes(
    tmp_path: Path,
    page_server,  # type: ignore[no-untyped-def]
    database_url: str,
    data_dir: Path,
) -> None:
    """Servers label windows-1252 pages ISO-8859-1; browsers (and we) decode them as 1252."""
    page_server.set("/latin1", WINDOWS_1252_PAGE, content_type="text/html; charset=ISO-8859-1")
    path = write_config(tmp_path / "t.toml", database_url, page_server.url("/latin1"))
    with Monitor.open(path) as monitor:
        [result] = monitor.check()
        assert result.outcome == "first", result.detail
        text = monitor.text_at("example/doc-0")
    assert 'a "licence" to use your content - worldwide' in text
    assert "\ufffd" not in text


# -- one email validator: what the config accepts, the outbox accepts -----------------------

ADDRESSES = [
    "ops@localhost",
    "ops@example.org",
    "tos-monitor <ops@example.org>",
    "a..b@example.org",
    "ops@exa_mple.org",
    "ops@example.org\nBcc: x@example.org",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_config_and_outbox_agree_on_email_addresses(
    tmp_path: Path, data_dir: Path, address: str
) -> None:
    path = tmp_path / "t.toml"
    path.write_text(f"[alerts]\nemail = {address!r}\n".replace("'", '"'), encoding="utf-8")
    try:
        validate_email(address)
        valid = True
    except SubscriptionError:
        valid = False
    if valid:
        assert load_config(path).alerts.email == address.strip()
    else:
        with pytest.raises(ConfigError, match=r"t\.toml:2: alerts\.email: not an email address"):
            load_config(path)


# -- the README's example runs as written ------------------------------------------------------


def readme_python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "README: no python block under 'Use it from Python'"
    return match.group(1)


def test_the_readme_python_example_runs(
    tmp_path: Path,
    page_server,  # type: ignore[no-untyped-def]
    data_dir: Path,
) -> None:
    page_server.set("/instagram", terms_page())
    database = tmp_path / "example.db"
    (tmp_path / "tosmon.toml").write_text(
        f"""use_catalog = false

[storage]
database_url = "sqlite:///{database}"

[[documents]]
service = "Instagram"
type = "Terms of Service"
url = "{page_server.url("/instagram")}"
""",
        encoding="utf-8",
    )
    code = readme_python_example()

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = run()
    assert "instagram/terms-of-service first baseline recorded" in first
    assert "1 versions" in first

    page_server.set("/instagram", terms_page(extra=AI_TRAINING))
    second = run()
    assert "instagram/terms-of-service changed" in second
    assert "AI_TRAINING_ON_USER_DATA" in second
    assert "2 versions" in second
