"""Log lines: text for people, JSON for log shippers; page text cannot forge a line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from monitor.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def check_line(log_format: str) -> str:
    stream = io.StringIO()
    configure_logging(log_format=log_format, level="INFO", worker="box:1:abc", stream=stream)
    logging.getLogger("monitor.tracker").info(
        "check %s %s %.2fs %s",
        "example/terms",
        "failed",
        0.25,
        "captcha\n2026-01-01T00:00:00Z INFO forged line \x1b[2J",
        extra={"document": "example/terms", "outcome": "failed", "duration": 0.2512},
    )
    logging.getLogger("apscheduler.scheduler").info("Running job tick")  # kept quiet
    return stream.getvalue()


def test_text_lines_are_one_line_per_event_with_controls_escaped(restore_logging: None) -> None:
    (line,) = check_line("text").splitlines()
    assert line.endswith(
        "INFO monitor.tracker: check example/terms failed 0.25s "
        "captcha\\n2026-01-01T00:00:00Z INFO forged line \\x1b[2J"
    )
    assert "\x1b" not in line


def test_json_lines_carry_the_check_fields_and_the_worker(restore_logging: None) -> None:
    (line,) = check_line("json").splitlines()
    data = json.loads(line)
    assert data["level"] == "INFO"
    assert data["logger"] == "monitor.tracker"
    assert data["document"] == "example/terms"
    assert data["outcome"] == "failed"
    assert data["duration"] == 0.251
    assert data["worker"] == "box:1:abc"
    assert data["message"].startswith("check example/terms failed 0.25s captcha\n")


def test_configuring_twice_does_not_duplicate_lines(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    configure_logging(stream=stream)
    logging.getLogger("monitor.scheduler").warning("once")
    assert stream.getvalue().count("once") == 1
