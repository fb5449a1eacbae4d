"""Helpers for tests that run ``tosmon run`` as a real subprocess.

``write_config`` writes a config for short intervals against the page server and the SMTP server;
``Daemon`` starts ``python -m monitor --config ... run`` with its log in a file, and stops it with
SIGTERM (or SIGKILL); ``wait_until`` polls a condition with a bound, failing with a message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.models import Check, Delivery, Document, Version

ROOT = Path(__file__).resolve().parents[1]
SECRET = "test-secret-key-0123456789abcdef"

T = TypeVar("T")


def write_config(
    path: Path,
    *,
    database_url: str,
    documents: Sequence[tuple[str, str]],
    smtp_port: int | None,
    interval: str = "1s",
    lease: str = "2s",
    jitter: float = 0.0,
    alerts_email: str | None = "ops@example.org",
    after_failures: int = 2,
    timeout: float = 2.0,
    concurrency: int = 8,
    per_host: int = 4,
    bind: str = "127.0.0.1:0",
    extra: str = "",
) -> Path:
    """A config: ``documents`` are (id, url) pairs; no catalog; mail to 127.0.0.1:smtp_port."""
    mail = (
        f'host = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
        if smtp_port is not None
        else ""
    )
    alerts = f'email = "{alerts_email}"\n' if alerts_email else ""
    docs = "".join(
        f'\n[[documents]]\nid = "{doc_id}"\nservice = "{doc_id.split("/")[0]}"\n'
        f'type = "{doc_id.split("/")[-1]}"\nurl = "{url}"\n'
        for doc_id, url in documents
    )
    path.write_text(
        f"""use_catalog = false

[storage]
database_url = "{database_url}"

[fetch]
timeout = {timeout}
retries = 0
concurrency = {concurrency}
per_host = {per_host}

[mail]
{mail}sender = "tos-monitor <tosmon@example.org>"
retry_after = "1s"
retry_max = "2s"
group_window = "0s"

[web]
bind = "{bind}"

[alerts]
{alerts}after_failures = {after_failures}

[daemon]
interval = "{interval}"
jitter = {jitter}
lease = "{lease}"
{extra}
{docs}""",
        encoding="utf-8",
    )
    return path


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "TOSMON_DATA_DIR": str(data_dir),
        "TOSMON_SECRET_KEY": SECRET,
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    env.pop("TOSMON_CONFIG", None)
    return env


def tosmon(
    config: Path, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one ``tosmon`` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


class Daemon:
    """``tosmon run`` in a subprocess; its stderr (the log) goes to a file."""

    def __init__(
        self,
        config: Path,
        *,
        env: dict[str, str],
        log: Path,
        args: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.env = env
        self.log_path = log
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        command = [sys.executable, "-m", "monitor"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--config", str(self.config), "run", *self.args],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM; the exit status (the test fails if it takes longer than ``timeout``)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"the daemon did not stop within {timeout}s of SIGTERM:\n{self.log()[-3000:]}"
            ) from None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def cleanup(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 20.0,
    what: str = "condition",
    daemon: Daemon | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            log = f"\n--- daemon log ---\n{daemon.log()[-4000:]}" if daemon else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{log}")
        time.sleep(0.1)


# -- reading the database -------------------------------------------------------------------


def checks_of(sessions: sessionmaker[Session], document_id: str) -> list[Check]:
    with sessions() as session:
        query = select(Check).where(Check.document_id == document_id)
        return list(session.scalars(query.order_by(Check.checked_at, Check.id)))


def count_checks(sessions: sessionmaker[Session], outcome: str | None = None) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(Check)
        if outcome is not None:
            query = query.where(Check.outcome == outcome)
        return int(session.scalar(query) or 0)


def document(sessions: sessionmaker[Session], document_id: str) -> Document | None:
    with sessions() as session:
        return session.get(Document, document_id)


def deliveries(sessions: sessionmaker[Session], kind: str | None = None) -> list[Delivery]:
    with sessions() as session:
        query = select(Delivery)
        if kind is not None:
            query = query.where(Delivery.kind == kind)
        return list(session.scalars(query.order_by(Delivery.id)))


def count_versions_of(sessions: sessionmaker[Session], document_id: str) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(Version).where(Version.document_id == document_id)
        return int(session.scalar(query) or 0)
