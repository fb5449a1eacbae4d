"""deploy/: the systemd unit and the Dockerfile start the command that pip installs, with the
config and data locations the documentation gives. No container engine is used: the unit is
checked with ``systemd-analyze verify`` (when present) and both command lines are run for real
with their paths moved under a temporary root."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from monitor.config import CONFIG_ENV, DATA_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "tos-monitor.service"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DEPLOY_README = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
VENV_BIN = Path(sys.executable).parent


def console_script() -> str:
    """The command name pyproject.toml installs (and the function behind it)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert scripts == {"tosmon": "monitor.cli:main"}
    return "tosmon"


def unit_service() -> dict[str, list[str]]:
    """The [Service] section of the unit: key -> values (keys may repeat)."""
    section: dict[str, list[str]] = {}
    current = None
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line
            continue
        if current == "[Service]":
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return section


def unit_environment(service: dict[str, list[str]]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in service.get("Environment", []))


def dockerfile() -> dict[str, list[str]]:
    instructions: dict[str, list[str]] = {}
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.setdefault(word.upper(), []).append(rest.strip())
    return instructions


def docker_env(instructions: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in instructions["ENV"]:
        for pair in shlex.split(value):
            key, _, val = pair.partition("=")
            env[key] = val
    return env


# -- the installed command --------------------------------------------------------------------


def test_the_console_script_is_installed_and_is_the_cli() -> None:
    name = console_script()
    (point,) = entry_points(group="console_scripts", name=name)
    assert point.value == "monitor.cli:main"
    assert (VENV_BIN / name).is_file()
    result = subprocess.run(
        [str(VENV_BIN / name), "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "SIGHUP" in result.stdout


# -- systemd -----------------------------------------------------------------------------------


def test_the_unit_runs_the_installed_command_with_the_documented_paths() -> None:
    service = unit_service()
    (exec_start,) = service["ExecStart"]
    binary, *args = shlex.split(exec_start)
    assert Path(binary).name == console_script()
    assert args == ["run"]
    venv = Path(binary).parent.parent
    # the venv the unit expects is the one the docs create and install into
    assert f"python3 -m venv {venv}" in DEPLOY_README
    assert f"{venv}/bin/pip install" in DEPLOY_README
    env = unit_environment(service)
    assert set(env) >= {CONFIG_ENV, DATA_DIR_ENV}
    config = Path(env[CONFIG_ENV])
    assert f"sudo cp tosmon.toml {config.parent}/" in DEPLOY_README
    assert config.name == "tosmon.toml"
    data = Path(env[DATA_DIR_ENV])
    assert service["StateDirectory"] == [data.name] and data.parent == Path("/var/lib")
    assert str(data) in service["ReadWritePaths"][0].split()
    assert f"--home-dir {data}" in DEPLOY_README
    assert service["User"] == ["tosmon"]
    # the status command the docs give uses the same places and the same binary
    assert f"TOSMON_CONFIG={config} TOSMON_DATA_DIR={data}" in DEPLOY_README
    assert f"{binary} status" in DEPLOY_README
    # a broken config exits 2 (see test_daemon): systemd must not restart it in a loop
    assert service["RestartPreventExitStatus"] == ["2"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    (exec_start,) = unit_service()["ExecStart"]
    venv = Path(shlex.split(exec_start)[0]).parent.parent
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(f"{venv}/bin/", f"{VENV_BIN}/"),
        encoding="utf-8",
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr, result.stderr


# -- Docker ------------------------------------------------------------------------------------


def test_the_image_runs_the_installed_command_with_the_documented_paths() -> None:
    instructions = dockerfile()
    (entrypoint,) = instructions["ENTRYPOINT"]
    (cmd,) = instructions["CMD"]
    assert json.loads(entrypoint) == ["/usr/bin/tini", "--", console_script()]
    assert json.loads(cmd) == ["run"]
    env = docker_env(instructions)
    config, data = env[CONFIG_ENV], env[DATA_DIR_ENV]
    assert f":{config}:ro" in DEPLOY_README  # docker run mounts the config there
    assert f"tosmon-data:{data}" in DEPLOY_README
    assert json.loads(instructions["VOLUME"][0]) == [data]
    assert instructions["STOPSIGNAL"] == ["SIGTERM"]
    # everything the package is built from is copied in (pyproject's package-dir too)
    copied = {src for line in instructions["COPY"] for src in line.split()[:-1]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml", "README.md", "monitor"}
    needed |= set(project["tool"]["setuptools"]["package-dir"].values())
    assert needed <= copied
    assert all((ROOT / src).exists() for src in copied)


# -- both command lines, run for real --------------------------------------------------------


def _run_as_deployed(tmp_path: Path, argv: list[str], env: dict[str, str]) -> str:
    """Start the command with env's config and data dir (moved under tmp_path), wait for the
    daemon to start, stop it with SIGTERM as systemd and Docker do; its log."""
    config = tmp_path / env[CONFIG_ENV].lstrip("/")
    data = tmp_path / env[DATA_DIR_ENV].lstrip("/")
    config.parent.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    config.write_text('use_catalog = false\n[web]\nbind = "127.0.0.1:0"\n', encoding="utf-8")
    process_env = {
        **os.environ,
        CONFIG_ENV: str(config),
        DATA_DIR_ENV: str(data),
        "TOSMON_SECRET_KEY": "deploy-test-secret-0123456789",
    }
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=process_env, stdout=out, stderr=out, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while "started" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (data / "tosmon.db").exists()  # the database went to the data directory
    return log.read_text(errors="replace")


def test_the_unit_command_line_starts_and_stops_the_daemon(tmp_path: Path) -> None:
    service = unit_service()
    binary, *args = shlex.split(service["ExecStart"][0])
    log = _run_as_deployed(
        tmp_path, [str(VENV_BIN / Path(binary).name), *args], unit_environment(service)
    )
    assert "stopped" in log


def test_the_image_command_line_starts_and_stops_the_daemon(tmp_path: Path) -> None:
    instructions = dockerfile()
    entrypoint = json.loads(instructions["ENTRYPOINT"][0])
    command = entrypoint[entrypoint.index("--") + 1 :] + json.loads(instructions["CMD"][0])
    log = _run_as_deployed(
        tmp_path, [str(VENV_BIN / command[0]), *command[1:]], docker_env(instructions)
    )
    assert "stopped" in log
