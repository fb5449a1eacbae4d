"""Config loading: defaults, environment, documents, and errors that name file, line and key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.catalog import catalog_documents
from monitor.config import (
    DOCUMENT_KEYS,
    SECTION_KEYS,
    TOP_KEYS,
    Config,
    DocumentConfig,
    MailConfig,
    example_config_text,
    load_config,
    parse_interval,
    slugify,
)
from monitor.errors import ConfigError, MonitorError

ROOT = Path(__file__).resolve().parents[1]
DOC = '[[documents]]\nservice = "S"\ntype = "T"\nurl = "https://s.example/"\n'  # lines 1-4


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"TOSMON_DATA_DIR": str(tmp_path / "data")}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tosmon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, env: dict[str, str]) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    return info.value


def assert_where(err: ConfigError, path: Path, line: int, key: str | None) -> None:
    """The message starts with `file:line: key:` and the attributes agree."""
    assert err.path == str(path)
    assert err.line == line
    assert err.key == key
    prefix = f"{path}:{line}: " + (f"{key}: " if key else "")
    assert str(err).startswith(prefix), str(err)
    assert isinstance(err, MonitorError)


# --- defaults and environment -------------------------------------------------------------


def test_no_file_gives_every_default_under_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = load_config(env={"TOSMON_DATA_DIR": str(data)})
    assert config.path is None
    assert config.data_dir == data
    assert config.storage.database_url == f"sqlite:///{data}/tosmon.db"
    assert config.mail.folder == data / "mail"
    assert config.secret_key_file == data / "secret.key"
    assert config.mail.host is None and config.mail.port == 587
    assert config.mail.security == "starttls"
    assert config.fetch.timeout == 30.0 and config.fetch.max_bytes == 5_000_000
    assert (config.fetch.per_host, config.fetch.retries, config.fetch.concurrency) == (2, 3, 8)
    assert config.fetch.user_agent.startswith("tos-monitor/")
    assert config.web.bind == "127.0.0.1:8080"
    assert config.alerts.email is None and config.alerts.after_failures == 3
    assert config.daemon.interval == timedelta(hours=6)
    assert config.daemon.lease == timedelta(minutes=10)
    assert config.daemon.jitter == 0.1 and config.daemon.digest_hour == 8
    assert config.daemon.weekly_digest_day == "monday"
    assert (config.daemon.log_format, config.daemon.log_level) == ("text", "INFO")
    assert config.use_catalog is True and config.documents == ()
    assert config.all_documents() == catalog_documents()


def test_tosmon_config_env_names_the_file(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, "[daemon]\ninterval = '1h30m'\n")
    config = load_config(env={**env, "TOSMON_CONFIG": str(path)})
    assert config.path == path
    assert config.daemon.interval == timedelta(hours=1, minutes=30)


def test_explicit_path_wins_over_tosmon_config(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, "[daemon]\ninterval = '2h'\n")
    config = load_config(path, env={**env, "TOSMON_CONFIG": str(tmp_path / "missing.toml")})
    assert config.daemon.interval == timedelta(hours=2)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(env={"TOSMON_CONFIG": str(missing)})
    assert str(missing) in str(info.value)


def test_data_dir_from_file_and_env_override(tmp_path: Path) -> None:
    path = write(tmp_path, '[storage]\ndata_dir = "state"\n[web]\nsecret_key_file = "k/key"\n')
    config = load_config(path, env={})
    assert config.data_dir == tmp_path / "state"  # relative to the config file
    assert config.storage.database_url == f"sqlite:///{tmp_path}/state/tosmon.db"
    assert config.secret_key_file == tmp_path / "k" / "key"
    override = load_config(path, env={"TOSMON_DATA_DIR": str(tmp_path / "env")})
    assert override.data_dir == tmp_path / "env"
    assert override.mail.folder == tmp_path / "env" / "mail"


def test_values_are_read(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(
        tmp_path,
        """
[storage]
database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
[fetch]
timeout = 5
[mail]
host = "127.0.0.1"
port = 2525
security = "none"
username = "me"
password_env = "SMTP_PW"
sender = "Watcher <watch@example.org>"
[web]
bind = "[::1]:9000"
base_url = "https://tos.example.org/"
[alerts]
email = "ops@example.org"
after_failures = 5
[daemon]
log_format = "json"
log_level = "debug"
weekly_digest_day = "Friday"
""",
    )
    config = load_config(path, env=env)
    assert config.storage.database_url.startswith("postgresql+psycopg://")
    assert config.fetch.timeout == 5.0
    assert (config.mail.host, config.mail.port, config.mail.security) == ("127.0.0.1", 2525, "none")
    assert config.mail.password({"SMTP_PW": "s3cret"}) == "s3cret"
    assert config.web.bind == "[::1]:9000"
    assert config.web.base_url == "https://tos.example.org"
    assert config.alerts == type(config.alerts)(email="ops@example.org", after_failures=5)
    assert config.daemon.log_format == "json" and config.daemon.log_level == "DEBUG"
    assert config.daemon.weekly_digest_day == "friday"


def test_password_from_a_missing_variable_names_it() -> None:
    mail = MailConfig(password_env="SMTP_PW")
    with pytest.raises(ConfigError, match="SMTP_PW"):
        mail.password({})
    assert MailConfig().password({}) is None


# --- documents ------------------------------------------------------------------------------


def test_documents_get_default_ids_and_parsed_fields(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(
        tmp_path,
        """
[[documents]]
service = "Vimeo"
type = "Terms of Service"
url = "https://vimeo.com/terms"
select = "main"
remove = ["nav", ".cookie"]
interval = "90s"
render = true
""",
    )
    (doc,) = load_config(path, env=env).documents
    assert doc == DocumentConfig(
        id="vimeo/terms-of-service",
        service="Vimeo",
        type="Terms of Service",
        url="https://vimeo.com/terms",
        select=("main",),
        remove=("nav", ".cookie"),
        interval=timedelta(seconds=90),
        render=True,
    )


def test_config_document_overrides_catalog_in_place(tmp_path: Path, env: dict[str, str]) -> None:
    catalog = catalog_documents()
    target = catalog[1]
    path = write(
        tmp_path,
        f"""
[[documents]]
id = "{target.id}"
service = "{target.service}"
type = "{target.type}"
url = "http://127.0.0.1:8000/mirror"
interval = "1d"

[[documents]]
service = "Own"
type = "Terms"
url = "https://own.example/terms"
""",
    )
    documents = load_config(path, env=env).all_documents()
    assert len(documents) == len(catalog) + 1
    assert documents[1].id == target.id
    assert documents[1].url == "http://127.0.0.1:8000/mirror"
    assert documents[1].interval == timedelta(days=1)
    assert documents[-1].id == "own/terms"
    assert [d.id for d in documents[:-1]] == [d.id for d in catalog]


def test_use_catalog_false_keeps_only_own_documents(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(
        tmp_path,
        'use_catalog = false\n[[documents]]\nservice = "A"\ntype = "T"\nurl = "https://a.example/"\n',
    )
    config = load_config(path, env=env)
    assert config.use_catalog is False
    assert [d.id for d in config.all_documents()] == ["a/t"]


# --- errors name file, line and key ----------------------------------------------------------


def test_syntax_error_names_the_line(tmp_path: Path, env: dict[str, str]) -> None:
    err = load_error(tmp_path, "[daemon]\ninterval = '6h'\nlog_level = = 'INFO'\n", env)
    assert_where(err, tmp_path / "tosmon.toml", 3, None)
    assert "TOML syntax error" in str(err)


def test_unknown_key_suggests_the_closest(tmp_path: Path, env: dict[str, str]) -> None:
    text = "[fetch]\ntimeout = 10\n\n[mail]\n# comment\nhost = 'x'\nprot = 25\n"
    err = load_error(tmp_path, text, env)
    assert_where(err, tmp_path / "tosmon.toml", 7, "mail.prot")
    assert "did you mean 'port'?" in str(err)


def test_unknown_table_and_top_level_key(tmp_path: Path, env: dict[str, str]) -> None:
    err = load_error(tmp_path, "use_catalog = true\n\n[deamon]\ninterval = '1h'\n", env)
    assert_where(err, tmp_path / "tosmon.toml", 3, "deamon")
    assert "did you mean 'daemon'?" in str(err)
    err = load_error(tmp_path, "use_catalogue = false\n", env)
    assert_where(err, tmp_path / "tosmon.toml", 1, "use_catalogue")
    assert "'use_catalog'" in str(err)


def test_unknown_key_in_the_second_document(tmp_path: Path, env: dict[str, str]) -> None:
    doc = 'service = "S{n}"\ntype = "T"\nurl = "https://s.example/{n}"\n'
    text = "[[documents]]\n" + doc.format(n=1) + "\n[[documents]]\n" + doc.format(n=2)
    text += "selector = 'main'\n"
    err = load_error(tmp_path, text, env)
    assert_where(err, tmp_path / "tosmon.toml", 10, "documents[2].selector")
    assert "did you mean 'select'?" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("[mail]\nport = '587'\n", 2, "mail.port", 'expected an integer, got "587"'),
        ("[fetch]\n\ntimeout = true\n", 3, "fetch.timeout", "expected a number, got true"),
        ("use_catalog = 'yes'\n", 1, "use_catalog", "expected true or false"),
        ("[daemon]\ninterval = 6\n", 2, "daemon.interval", "duration"),
        ("mail = 3\n", 1, "mail", "expected a table"),
        ("[mail]\nport = 70000\n", 2, "mail.port", "between 1 and 65535"),
        ("[daemon]\ndigest_hour = 24\n", 2, "daemon.digest_hour", "between 0 and 23"),
        ("[daemon]\nweekly_digest_day = 'someday'\n", 2, "daemon.weekly_digest_day", "monday"),
        ("[daemon]\nlog_format = 'xml'\n", 2, "daemon.log_format", "text, json"),
    ],
)
def test_wrong_type_or_value(
    tmp_path: Path, env: dict[str, str], text: str, line: int, key: str, words: str
) -> None:
    err = load_error(tmp_path, text, env)
    assert_where(err, tmp_path / "tosmon.toml", line, key)
    assert words in str(err)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.org/terms", "scheme must be http or https"),
        ("https:///terms", "host is required"),
        ("example.org/terms", "scheme must be http or https"),
        ("https://example.org:99999/", "bad URL"),
    ],
)
def test_bad_document_url(tmp_path: Path, env: dict[str, str], url: str, words: str) -> None:
    text = f'[[documents]]\nservice = "S"\ntype = "T"\nurl = "{url}"\n'
    err = load_error(tmp_path, text, env)
    assert_where(err, tmp_path / "tosmon.toml", 4, "documents[1].url")
    assert words in str(err)


def test_bad_base_url(tmp_path: Path, env: dict[str, str]) -> None:
    err = load_error(tmp_path, "[web]\nbase_url = 'localhost:8080'\n", env)
    assert_where(err, tmp_path / "tosmon.toml", 2, "web.base_url")


def test_bad_interval(tmp_path: Path, env: dict[str, str]) -> None:
    text = DOC + 'interval = "6 hours"\n'
    err = load_error(tmp_path, text, env)
    assert_where(err, tmp_path / "tosmon.toml", 5, "documents[1].interval")
    assert "bad duration '6 hours'" in str(err)


def test_bad_selector(tmp_path: Path, env: dict[str, str]) -> None:
    text = DOC + 'select = ["div[role="]\n'
    err = load_error(tmp_path, text, env)
    assert_where(err, tmp_path / "tosmon.toml", 5, "documents[1].select")


def test_duplicate_document_id(tmp_path: Path, env: dict[str, str]) -> None:
    text = (
        '[[documents]]\nservice = "Vimeo"\ntype = "Terms"\nurl = "https://vimeo.com/terms"\n\n'
        '[[documents]]\nid = "vimeo/terms"\nservice = "Vimeo"\ntype = "Terms (US)"\n'
        'url = "https://vimeo.com/us/terms"\n'
    )
    err = load_error(tmp_path, text, env)
    assert_where(err, tmp_path / "tosmon.toml", 7, "documents[2].id")
    assert "duplicate document id 'vimeo/terms'" in str(err)
    assert "documents[1]" in str(err)


def test_missing_document_key_names_the_table(tmp_path: Path, env: dict[str, str]) -> None:
    err = load_error(tmp_path, '\n[[documents]]\nservice = "S"\ntype = "T"\n', env)
    assert_where(err, tmp_path / "tosmon.toml", 2, "documents[1]")
    assert "missing required key 'url'" in str(err)


def test_password_in_config_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    err = load_error(tmp_path, "[mail]\nhost = 'smtp.example.org'\npassword = 'hunter2'\n", env)
    assert_where(err, tmp_path / "tosmon.toml", 3, "mail.password")
    assert "password_env" in str(err)
    assert "hunter2" not in str(err)


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("[alerts]\nemail = 'ops at example.org'\n", 2, "alerts.email"),
        ("[alerts]\nemail = 'ops@'\n", 2, "alerts.email"),
        ("[web]\nbind = '8080'\n", 2, "web.bind"),
        ("[web]\nbind = 'localhost:http'\n", 2, "web.bind"),
        ("[mail]\nsecurity = 'ssl'\n", 2, "mail.security"),
        ("[mail]\npassword_env = 'MY PASSWORD'\n", 2, "mail.password_env"),
        ("[mail]\nsender = 'nobody'\n", 2, "mail.sender"),
        ("[storage]\ndatabase_url = 'tosmon.db'\n", 2, "storage.database_url"),
    ],
)
def test_bad_values(tmp_path: Path, env: dict[str, str], text: str, line: int, key: str) -> None:
    assert_where(load_error(tmp_path, text, env), tmp_path / "tosmon.toml", line, key)


def test_inline_table_errors_still_find_a_line(tmp_path: Path, env: dict[str, str]) -> None:
    err = load_error(tmp_path, "use_catalog = true\nmail = { port = 'x' }\n", env)
    assert_where(err, tmp_path / "tosmon.toml", 2, "mail.port")


# --- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
        ("6H", timedelta(hours=6)),
    ],
)
def test_parse_interval(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("interval", "99999999999d"),
        ("lease", "9" * 5000 + "s"),
        ("interval", "367d"),
        ("interval", "52w 3d"),
    ],
)
def test_huge_durations_are_config_errors(
    tmp_path: Path, env: dict[str, str], key: str, value: str
) -> None:
    err = load_error(tmp_path, f'[daemon]\njitter = 0.1\n{key} = "{value}"\n', env)
    assert_where(err, tmp_path / "tosmon.toml", 3, f"daemon.{key}")
    assert "longer than the longest allowed (366d)" in str(err)
    assert len(str(err)) < 300  # a 5000-digit value is not echoed in full


def test_a_year_is_the_longest_duration(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_config(write(tmp_path, '[daemon]\ninterval = "366d"\n'), env=env)
    assert config.daemon.interval == timedelta(days=366)


def test_relative_sqlite_path_is_relative_to_the_config_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "tosmon.toml"
    path.write_text('[storage]\ndatabase_url = "sqlite:///state/tos.db"\n', encoding="utf-8")
    config = load_config(path, env=env)
    assert config.storage.database_url == f"sqlite:///{tmp_path}/conf/state/tos.db"
    absolute = write(tmp_path, f'[storage]\ndatabase_url = "sqlite:///{tmp_path}/abs.db"\n')
    assert load_config(absolute, env=env).storage.database_url == f"sqlite:///{tmp_path}/abs.db"


def test_tosmon_in_another_directory_uses_the_database_beside_its_config(
    tmp_path: Path, data_dir: Path
) -> None:
    """A relative SQLite path never lands in the directory `tosmon` happens to run in."""
    conf_dir, elsewhere = tmp_path / "conf", tmp_path / "elsewhere"
    conf_dir.mkdir()
    elsewhere.mkdir()
    config = conf_dir / "tosmon.toml"
    config.write_text(
        'use_catalog = false\n[storage]\ndatabase_url = "sqlite:///tos.db"\n', encoding="utf-8"
    )
    env = {**os.environ, "TOSMON_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("TOSMON_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "documents"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (conf_dir / "tos.db").is_file()
    assert not (elsewhere / "tos.db").exists()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u@localhost/db", "unsupported database 'mysql'"),
        ("foo://x", "unsupported database 'foo'"),
        ("tosmon.db", "expected a database URL"),
    ],
)
def test_unknown_database_type_is_a_config_error(
    tmp_path: Path, env: dict[str, str], url: str, words: str
) -> None:
    err = load_error(tmp_path, f'use_catalog = false\n[storage]\ndatabase_url = "{url}"\n', env)
    assert_where(err, tmp_path / "tosmon.toml", 3, "storage.database_url")
    assert words in str(err)


@pytest.mark.parametrize("text", ["", "6", "h", "6x", "-1h", "1.5h", "0s", "6 hours", "1h30"])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="bad duration"):
        parse_interval(text)


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Terms of Service", "terms-of-service"),
        ("Stack Overflow", "stack-overflow"),
        ("Claude.ai", "claude-ai"),
        ("Politique de confidentialité", "politique-de-confidentialite"),
        ("  X  ", "x"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


# --- the example config ----------------------------------------------------------------------


def test_example_config_loads_with_its_documents(env: dict[str, str]) -> None:
    config = load_config(ROOT / "config.example.toml", env=env)
    assert isinstance(config, Config)
    assert len(config.documents) == 2
    assert any(d.select and d.remove and d.interval and d.id for d in config.documents)
    assert any(d.render for d in config.documents)
    assert config.use_catalog


def test_example_config_documents_every_key() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section, keys in SECTION_KEYS.items():
        assert f"[{section}]" in text
        for key in keys:
            assert re.search(rf"^#? ?{key} = ", text, re.M), f"[{section}] {key} undocumented"
    for key in (*DOCUMENT_KEYS, *(k for k in TOP_KEYS if k not in SECTION_KEYS)):
        assert key in text, key
    assert "postgresql+psycopg://" in text
    assert "TOSMON_SECRET_KEY" in text


def test_packaged_example_matches_the_repository_copy() -> None:
    repo_copy = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert example_config_text() == repo_copy


# --- mail settings are checked before any work ----------------------------------------------


def _check_config(tmp_path: Path, database_url: str, url: str, mail: str, web: str = "") -> Path:
    path = tmp_path / "check.toml"
    path.write_text(
        f'use_catalog = false\n[storage]\ndatabase_url = "{database_url}"\n'
        f"[fetch]\nretries = 0\ntimeout = 5\n[mail]\n{mail}\n[web]\n{web}\n"
        f'[[documents]]\nid = "s/t"\nservice = "S"\ntype = "T"\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


def _run(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "TOSMON_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), **extra}
    for name in ("TOSMON_CONFIG", "TOSMON_SECRET_KEY", "TOSMON_TEST_SMTP_PW"):
        env.pop(name, None)
    return env


def _recorded_checks(database_url: str) -> int:
    from sqlalchemy import func, select

    from monitor.db import make_engine
    from monitor.models import Check

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Check)).scalar() or 0)
    finally:
        engine.dispose()


def test_check_refuses_a_missing_smtp_password_before_fetching(
    tmp_path: Path, engine, page_server, smtp_server, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    page_server.set("/tos", "<main><h1>Terms</h1><p>We may use your posts.</p></main>")
    mail = (
        f'host = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "none"\n'
        'username = "tosmon"\npassword_env = "TOSMON_TEST_SMTP_PW"\n'
        'sender = "tos-monitor <tosmon@example.org>"'
    )
    database_url = engine.url.render_as_string(hide_password=False)
    config = _check_config(tmp_path, database_url, page_server.url("/tos"), mail)
    env = _env(data_dir, TOSMON_SECRET_KEY="a-test-key-0123456789abcdef")

    done = _run(config, env, "check")
    assert done.returncode == 2, done.stderr
    assert "environment variable TOSMON_TEST_SMTP_PW is not set" in done.stderr
    assert "Traceback" not in done.stderr
    assert page_server.hits("/tos") == 0 and _recorded_checks(database_url) == 0

    # --no-send sends nothing, so it does not need the password
    done = _run(config, env, "check", "--no-send")
    assert done.returncode == 0, done.stderr
    assert "s/t" in done.stdout and "first" in done.stdout

    done = _run(config, {**env, "TOSMON_TEST_SMTP_PW": "pw"}, "check")
    assert done.returncode == 0, done.stderr
    assert "unchanged" in done.stdout


def test_check_refuses_a_key_file_others_can_read_before_fetching(
    tmp_path: Path, engine, page_server, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    page_server.set("/tos", "<main><h1>Terms</h1><p>We may use your posts.</p></main>")
    key = tmp_path / "keys" / "signing.key"
    key.parent.mkdir()
    key.write_text("k" * 40 + "\n", encoding="ascii")
    key.chmod(0o644)
    database_url = engine.url.render_as_string(hide_password=False)
    config = _check_config(
        tmp_path, database_url, page_server.url("/tos"), "", f'secret_key_file = "{key}"'
    )
    done = _run(config, _env(data_dir), "check")
    assert done.returncode == 2, done.stderr
    assert f"the key file {key} is readable by others (mode 644)" in done.stderr
    assert f"chmod 600 {key}" in done.stderr
    assert page_server.hits("/tos") == 0 and _recorded_checks(database_url) == 0

    key.chmod(0o600)
    done = _run(config, _env(data_dir), "check")
    assert done.returncode == 0, done.stderr
    assert "first" in done.stdout
