"""``tosmon doctor``: each check against the real thing (aiosmtpd, sockets, SQLite/PostgreSQL,
Alembic, Chromium), and the command's output and exit status."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from monitor.cli import main
from monitor.config import load_config
from monitor.db import SCHEMA_HEAD, make_engine
from monitor.doctor import Finding, check_browser, check_database, check_mail, check_web, diagnose
from tests.smtp import SMTPTestServer, self_signed_cert, server_context

CHROMIUM = Path("/usr/bin/chromium")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def config_text(
    *,
    database_url: str,
    bind: str = "127.0.0.1:0",
    mail: str = "",
    browser: str = "",
    render: bool = False,
) -> str:
    document = (
        '[[documents]]\nid = "meta/terms"\nservice = "Meta"\ntype = "Terms"\n'
        f'url = "https://meta.example/terms"\nrender = {"true" if render else "false"}\n'
    )
    return (
        f'use_catalog = false\n[storage]\ndatabase_url = "{database_url}"\n'
        f'[web]\nbind = "{bind}"\n[mail]\nsender = "tos-monitor <tosmon@example.org>"\n{mail}\n'
        f"[browser]\n{browser}\n{document}"
    )


@pytest.fixture
def smtp_up() -> Iterator[SMTPTestServer]:
    server = SMTPTestServer()
    server.start()
    yield server
    server.stop()


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {finding.check: finding for finding in findings}


# -- the whole command -------------------------------------------------------------------------


def test_doctor_passes_on_a_working_setup_and_sends_nothing(
    tmp_path: Path, data_dir: Path, database_url: str, engine: Engine, smtp_up: SMTPTestServer
) -> None:
    config = write(
        tmp_path / "tosmon.toml",
        config_text(
            database_url=database_url,
            mail=f'host = "127.0.0.1"\nport = {smtp_up.port}\nsecurity = "none"',
        ),
    )
    result = CliRunner().invoke(main, ["--config", str(config), "doctor"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[1] for line in lines if not line.startswith(" ")] == [
        "config:",
        "database:",
        "mail:",
        "browser:",
        "web:",
    ]
    assert lines[0].startswith("OK   config:")
    assert "schema at head" in result.output
    assert "EHLO accepted; nothing sent" in result.output
    assert smtp_up.messages == []


def test_doctor_fails_with_the_fix_for_each_broken_part(
    tmp_path: Path, data_dir: Path, database_url: str, engine: Engine
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        with socket.socket() as closed:  # a port nobody listens on
            closed.bind(("127.0.0.1", 0))
            dead = closed.getsockname()[1]
        config = write(
            tmp_path / "tosmon.toml",
            config_text(
                database_url=database_url,
                bind=bind,
                mail=f'host = "127.0.0.1"\nport = {dead}\nsecurity = "none"',
                browser=f'executable = "{tmp_path / "missing-chrome"}"',
                render=True,
            ),
        )
        result = CliRunner().invoke(main, ["--config", str(config), "doctor", "--json"])
    assert result.exit_code == 1
    findings = {f["check"]: f for f in json.loads(result.output)}
    assert findings["database"]["status"] == "ok"
    assert findings["mail"]["status"] == "fail"
    assert f"127.0.0.1:{dead}" in findings["mail"]["detail"]
    assert "[mail] host" in findings["mail"]["fix"]
    assert findings["web"]["status"] == "fail"
    assert f"cannot listen on {bind}" in findings["web"]["detail"]
    assert "[web] bind" in findings["web"]["fix"]
    assert findings["browser"]["status"] == "fail"
    assert "missing-chrome does not exist" in findings["browser"]["detail"]
    assert "1 documents need it" in findings["browser"]["detail"]
    assert "apt install chromium" in findings["browser"]["fix"]


def test_a_broken_config_is_the_only_finding(tmp_path: Path, data_dir: Path) -> None:
    config = write(tmp_path / "tosmon.toml", "[mail]\nport = 'x'\n")
    result = CliRunner().invoke(main, ["--config", str(config), "doctor"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"FAIL config: {config}:2: mail.port: expected an integer")
    assert lines[1].strip().startswith("fix:")
    assert len(lines) == 2


def test_a_missing_password_variable_fails_the_config_check(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOSMON_TEST_SMTP_PASSWORD", raising=False)
    config = write(
        tmp_path / "tosmon.toml",
        config_text(
            database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
            mail='host = "127.0.0.1"\nusername = "u"\npassword_env = "TOSMON_TEST_SMTP_PASSWORD"',
        ),
    )
    finding = by_check(diagnose(config))["config"]
    assert finding.failed
    assert "TOSMON_TEST_SMTP_PASSWORD" in finding.detail
    assert finding.fix == "export TOSMON_TEST_SMTP_PASSWORD=... in the daemon's environment"


# -- database ----------------------------------------------------------------------------------


def test_a_database_behind_head_names_tosmon_db_upgrade(
    tmp_path: Path, data_dir: Path, database_url: str, engine: Engine
) -> None:
    """The database is at the packaged head; a newer code's migrations add a revision."""
    migrations = tmp_path / "migrations"
    shutil.copytree(
        str(resources.files("monitor.migrations")),
        migrations,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (migrations / "versions" / "9999_doctor_probe.py").write_text(
        '"""a later revision"""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "9999"\ndown_revision = "{SCHEMA_HEAD}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        '    op.create_table("doctor_probe", sa.Column("id", sa.Integer, primary_key=True))\n\n\n'
        "def downgrade() -> None:\n"
        '    op.drop_table("doctor_probe")\n',
        encoding="utf-8",
    )
    config = load_config(write(tmp_path / "tosmon.toml", config_text(database_url=database_url)))
    assert check_database(config).status == "ok"  # at the packaged head
    behind = check_database(config, migrations=migrations)
    assert behind.failed
    assert f"schema {SCHEMA_HEAD} is behind the code's 9999" in behind.detail
    assert behind.fix == "run `tosmon db upgrade`"
    from alembic import command

    from monitor.db import alembic_config

    upgraded = make_engine(database_url)
    alembic = alembic_config(upgraded)
    alembic.set_main_option("script_location", str(migrations))
    command.upgrade(alembic, "head")
    upgraded.dispose()
    assert check_database(config, migrations=migrations).status == "ok"
    ahead = check_database(config)  # the packaged code is now older than the database
    assert ahead.failed and ahead.fix == "upgrade tos-monitor"


def test_an_unreachable_database_fails_and_a_new_sqlite_file_is_fine(
    tmp_path: Path, data_dir: Path
) -> None:
    port = _free_port()
    down = load_config(
        write(
            tmp_path / "pg.toml",
            config_text(database_url=f"postgresql+psycopg://tosmon@127.0.0.1:{port}/nothing"),
        )
    )
    finding = check_database(down)
    assert finding.failed
    assert "cannot open" in finding.detail and str(port) in finding.detail
    assert "[storage] database_url" in (finding.fix or "")
    fresh = load_config(
        write(tmp_path / "new.toml", config_text(database_url=f"sqlite:///{tmp_path / 'n.db'}"))
    )
    assert check_database(fresh).status == "ok"
    assert not (tmp_path / "n.db").exists()  # the doctor changes nothing


def test_tables_without_a_schema_version_fail(tmp_path: Path, data_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    other = make_engine(url)
    with other.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE someone_elses (id INTEGER)")
    other.dispose()
    config = load_config(write(tmp_path / "t.toml", config_text(database_url=url)))
    finding = check_database(config)
    assert finding.failed and "no tos-monitor schema version" in finding.detail


# -- mail --------------------------------------------------------------------------------------


def test_mail_up_then_down(tmp_path: Path, data_dir: Path, smtp_up: SMTPTestServer) -> None:
    config = load_config(
        write(
            tmp_path / "tosmon.toml",
            config_text(
                database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                mail=f'host = "127.0.0.1"\nport = {smtp_up.port}\nsecurity = "none"',
            ),
        )
    )
    assert check_mail(config, timeout=5).status == "ok"
    smtp_up.stop()
    down = check_mail(config, timeout=5)
    assert down.failed
    assert f"cannot reach 127.0.0.1:{smtp_up.port}" in down.detail
    assert smtp_up.messages == []


def test_mail_starttls_and_login_are_tried_without_sending(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test server, as an operator would
    server = SMTPTestServer(starttls=server_context(cert, key), auth=("monitor", "s3cret"))
    server.start()
    try:
        config = load_config(
            write(
                tmp_path / "tosmon.toml",
                config_text(
                    database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                    mail=(
                        f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "starttls"\n'
                        'username = "monitor"\npassword_env = "TOSMON_TEST_SMTP_PASSWORD"'
                    ),
                ),
            )
        )
        monkeypatch.setenv("TOSMON_TEST_SMTP_PASSWORD", "s3cret")
        good = check_mail(config, timeout=5)
        assert good.status == "ok", good
        assert "EHLO, STARTTLS, login as monitor accepted" in good.detail
        monkeypatch.setenv("TOSMON_TEST_SMTP_PASSWORD", "wrong")
        bad = check_mail(config, timeout=5)
        assert bad.failed
        assert "rejected the login for monitor" in bad.detail
        assert server.messages == []
    finally:
        server.stop()


def test_no_mail_host_is_a_warning_not_a_failure(tmp_path: Path, data_dir: Path) -> None:
    config = load_config(
        write(tmp_path / "t.toml", config_text(database_url=f"sqlite:///{tmp_path / 'd.db'}"))
    )
    finding = check_mail(config)
    assert finding.status == "warn"
    assert str(config.mail.folder) in finding.detail


# -- web and browser ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_web_bind_free_then_in_use(tmp_path: Path, data_dir: Path) -> None:
    port = _free_port()
    config = load_config(
        write(
            tmp_path / "t.toml",
            config_text(database_url=f"sqlite:///{tmp_path / 'd.db'}", bind=f"127.0.0.1:{port}"),
        )
    )
    assert check_web(config).status == "ok"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        finding = check_web(config)
    assert finding.failed
    assert f"cannot listen on 127.0.0.1:{port}" in finding.detail


def test_a_missing_browser_only_fails_when_a_document_needs_it(
    tmp_path: Path, data_dir: Path
) -> None:
    missing = f'executable = "{tmp_path / "chrome"}"'
    url = f"sqlite:///{tmp_path / 'd.db'}"
    needed = load_config(
        write(tmp_path / "a.toml", config_text(database_url=url, browser=missing, render=True))
    )
    unneeded = load_config(
        write(tmp_path / "b.toml", config_text(database_url=url, browser=missing))
    )
    assert check_browser(needed).status == "fail"
    assert check_browser(unneeded).status == "warn"
    assert "no document needs it" in check_browser(unneeded).detail


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_browser_check_launches_and_closes_chromium(tmp_path: Path, data_dir: Path) -> None:
    config = load_config(
        write(
            tmp_path / "t.toml",
            config_text(database_url=f"sqlite:///{tmp_path / 'd.db'}", render=True),
        )
    )
    finding = check_browser(config)
    assert finding.status == "ok", finding
    assert f"Chromium at {CHROMIUM} starts and closes" in finding.detail


def test_a_database_url_of_an_unknown_kind_fails_with_the_fix(
    tmp_path: Path, data_dir: Path
) -> None:
    path = write(tmp_path / "t.toml", config_text(database_url="nosuchdb://x/y"))
    (finding,) = diagnose(path)  # the config itself is refused: nothing else can be checked
    assert finding.failed
    assert "nosuchdb" in finding.detail and "sqlite:///" in finding.detail
