"""One error printer: ``Error: <message>`` on stderr, exit 1, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import controller.cli
from controller.cli import cli
from controller.cli.context import State
from tests.cli.conftest import Invoke
from tests.cli.fakes import FakeApi

YURT = str(Path(sys.executable).parent / "yurt")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("confirm", [[], ["--confirm", "other"]])
def test_destroy_without_matching_confirm_is_refused(confirm: list[str]) -> None:
    result = CliRunner().invoke(cli, ["apps:destroy", "hello", *confirm], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert result.stderr.endswith("To proceed, type yurt apps:destroy hello --confirm hello\n")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["apps"],
        ["apps:info", "-a", "hello"],
        ["builds", "-a", "hello"],
        ["keys"],
        ["builds:output", "current", "-a", "hello"],
        ["login", "--url", "URL", "--token", "t"],
    ],
)
def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("YURT_URL", url)
    monkeypatch.setenv("YURT_TOKEN", "tok")
    args = [a.replace("URL", url) for a in args]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 1
    assert f"Error: Cannot reach the Yurt server at {url}. Is 'yurt server' running?\n" in (
        result.stderr
    )
    assert "Traceback" not in result.output


def test_unreachable_server_through_the_real_executable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    env = {**os.environ, "YURT_URL": url, "YURT_TOKEN": "tok"}
    done = subprocess.run([YURT, "apps"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert (
        done.stderr == f"Error: Cannot reach the Yurt server at {url}. Is 'yurt server' running?\n"
    )
    assert done.stdout == ""


def test_not_logged_in() -> None:
    result = CliRunner().invoke(cli, ["apps"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: No Yurt server configured. Run yurt login")


def test_api_error_prints_the_api_message(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("POST", "/api/apps")] = (
        422,
        {"id": "invalid_params", "message": "Invalid app name 'X': use lowercase."},
    )
    result = invoke("apps:create", "X")
    assert result.exit_code == 1
    assert result.stderr.endswith("\nError: Invalid app name 'X': use lowercase.\n")


def test_401_suggests_login(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps")] = (401, {"id": "unauthorized", "message": "Bad token."})
    result = invoke("apps")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Bad token. Run yurt login --url http://127.0.0.1:7100 --token TOKEN.\n"
    )


def test_non_json_error(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/keys")] = (502, b"<html>bad gateway</html>")
    result = invoke("keys")
    assert result.exit_code == 1
    assert result.stderr == "Error: The server answered 502 Fake.\n"


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(cli, ["apps:create"])
    assert result.exit_code == 2
    assert "Error: Missing argument 'NAME'." in result.stderr


def test_unexpected_exception_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(self: State) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(State, "client", boom)
    monkeypatch.setattr(sys, "argv", ["yurt", "apps"])
    with pytest.raises(SystemExit) as exit_info:
        controller.cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == "Error: Unexpected RuntimeError: boom. Set YURT_DEBUG=1 to see the traceback.\n"


def test_401_hint_is_not_repeated(invoke: Invoke, fake_api: FakeApi) -> None:
    message = "Invalid API token. Run: yurt login --url URL --token TOKEN"
    fake_api.routes[("GET", "/api/apps")] = (401, {"id": "unauthorized", "message": message})
    assert invoke("apps").stderr == f"Error: {message}\n"
