"""CLI test fixtures: an isolated HOME/config/cwd for every test, a CliRunner, a fake API."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cli import cli
from controller.cli.context import State
from tests.cli.fakes import FakeApi

FAKE_URL = "http://127.0.0.1:7100"

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, XDG_CONFIG_HOME and the cwd in tmp dirs, so the user's files are never touched."""
    home = tmp_path / "cli-home"
    cwd = tmp_path / "cli-cwd"
    for path in (home, cwd):
        path.mkdir()
    for name in ("YURT_URL", "YURT_TOKEN", "YURT_APP", "NO_COLOR", "GIT_DIR", "GIT_CONFIG_GLOBAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cli-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    """A fake server the CLI is logged in to (via YURT_URL/YURT_TOKEN)."""
    monkeypatch.setenv("YURT_URL", FAKE_URL)
    monkeypatch.setenv("YURT_TOKEN", "tok")
    return FakeApi()


@pytest.fixture
def invoke(fake_api: FakeApi) -> Invoke:
    """Run ``yurt ARGS`` in-process against ``fake_api``; exceptions propagate."""

    def run(*args: str, input: str | None = None) -> Result:
        state = State(session=fake_api.session())
        return CliRunner().invoke(cli, list(args), input=input, obj=state, catch_exceptions=False)

    return run


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_git_repo(path: Path, remote: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", cwd=path)
    if remote:
        git("remote", "add", "yurt", remote, cwd=path)
    return path
