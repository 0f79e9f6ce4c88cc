"""Which app a command is for: -a, then YURT_APP, then the 'yurt' git remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli.context import NO_APP, resolve_app
from controller.cli.errors import CliError
from controller.cli.gitremote import app_name_from_git_url
from tests.cli.conftest import Invoke, make_git_repo
from tests.cli.fakes import FakeApi, app_json


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://127.0.0.1:7100/hello.git", "hello"),
        ("https://yurt.example.com/hello.git/", "hello"),
        ("https://yurt.example.com/hello", "hello"),
        ("ssh://git@127.0.0.1:2222/hello.git", "hello"),
        ("git@yurt.example.com:hello.git", "hello"),
        ("git@yurt.example.com:team/hello", "hello"),
    ],
)
def test_app_name_from_git_url(url: str, name: str) -> None:
    assert app_name_from_git_url(url) == name


@pytest.mark.parametrize(
    ("remote", "name"),
    [
        ("http://127.0.0.1:7100/hello.git", "hello"),
        ("ssh://git@127.0.0.1:2222/hello-ssh.git", "hello-ssh"),
        ("git@127.0.0.1:scp-style.git", "scp-style"),
    ],
)
def test_app_from_yurt_remote(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, remote: str, name: str
) -> None:
    repo = make_git_repo(isolated / "repo", remote)
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    assert resolve_app(None) == name


def test_option_beats_remote(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(make_git_repo(isolated / "repo", "http://127.0.0.1:7100/hello.git"))
    assert resolve_app("other") == "other"


def test_no_app_outside_a_repo() -> None:
    with pytest.raises(CliError) as err:
        resolve_app(None)
    assert err.value.message == NO_APP


def test_no_app_in_a_repo_without_the_remote(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(make_git_repo(isolated / "repo"))
    with pytest.raises(CliError):
        resolve_app(None)


def test_command_uses_remote_then_env_then_option(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, invoke: Invoke, fake_api: FakeApi
) -> None:
    for name in ("hello", "from-env", "from-opt"):
        fake_api.routes[("GET", f"/api/apps/{name}")] = (200, app_json(name))
    monkeypatch.chdir(make_git_repo(isolated / "repo", "http://127.0.0.1:7100/hello.git"))
    assert invoke("apps:info").stdout.startswith("=== hello\n")
    monkeypatch.setenv("YURT_APP", "from-env")
    assert invoke("apps:info").stdout.startswith("=== from-env\n")
    assert invoke("apps:info", "-a", "from-opt").stdout.startswith("=== from-opt\n")


def test_command_without_app_prints_the_rule(invoke: Invoke, fake_api: FakeApi) -> None:
    result = invoke("builds")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {NO_APP}\n"
    assert result.stdout == ""
    assert fake_api.calls == []
