"""``yurt auth:git-credential``: the git credential helper protocol, and git really using it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.cli.config import install_git_credential_helper, write_cli_config

URL = "http://127.0.0.1:7100"


def credential(operation: str, request: str) -> str:
    result = CliRunner().invoke(
        cli, ["auth:git-credential", operation], input=request, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def test_get_for_the_configured_server_answers_the_token() -> None:
    write_cli_config(URL, "tok")
    answer = credential("get", "protocol=http\nhost=127.0.0.1:7100\npath=hello.git\n\n")
    assert answer == "username=yurt\npassword=tok\n"


@pytest.mark.parametrize(
    "request_lines",
    [
        "protocol=http\nhost=127.0.0.1:7101\n",
        "protocol=http\nhost=127.0.0.1\n",
        "protocol=https\nhost=127.0.0.1:7100\n",
        "protocol=http\nhost=github.com\n",
        "protocol=http\nhost=127.0.0.1:notaport\n",
        "",
    ],
)
def test_get_for_another_server_answers_nothing(request_lines: str) -> None:
    write_cli_config(URL, "tok")
    assert credential("get", request_lines + "\n") == ""


def test_default_ports_match() -> None:
    write_cli_config("https://yurt.example.com", "tok")
    for host in ("yurt.example.com", "YURT.example.com:443"):
        answer = credential("get", f"protocol=https\nhost={host}\n\n")
        assert answer == "username=yurt\npassword=tok\n"


@pytest.mark.parametrize("operation", ["store", "erase"])
def test_store_and_erase_do_nothing(operation: str) -> None:
    write_cli_config(URL, "tok")
    request = "protocol=http\nhost=127.0.0.1:7100\nusername=yurt\npassword=tok\n\n"
    assert credential(operation, request) == ""


def test_get_without_config_answers_nothing() -> None:
    assert credential("get", "protocol=http\nhost=127.0.0.1:7100\n\n") == ""


def test_env_token_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YURT_URL", URL + "/")
    monkeypatch.setenv("YURT_TOKEN", "from-env")
    answer = credential("get", "protocol=http\nhost=127.0.0.1:7100\n\n")
    assert answer == "username=yurt\npassword=from-env\n"


def git_fill(host: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
    }
    return subprocess.run(
        ["git", "credential", "fill"],
        input=f"protocol=http\nhost={host}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_git_uses_the_installed_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    write_cli_config(URL, "tok")
    install_git_credential_helper(URL)
    filled = git_fill("127.0.0.1:7100")
    assert filled.returncode == 0, filled.stderr
    assert "username=yurt\n" in filled.stdout
    assert "password=tok\n" in filled.stdout
    # Another host gets no answer from the helper, so git (unable to prompt) fails.
    assert git_fill("127.0.0.1:9").returncode != 0
