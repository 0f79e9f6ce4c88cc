"""The config file (0600, XDG path, env overrides) and the git credential helper entry."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.cli.config import (
    config_path,
    credential_helper_key,
    install_git_credential_helper,
    load_config,
    write_cli_config,
    yurt_command,
)

URL = "http://127.0.0.1:7100"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_with_mode_0600_under_xdg_config_home(tmp_path: Path) -> None:
    path = write_cli_config(URL + "/", "tok")
    assert path == tmp_path / "cli-config" / "yurt" / "config.json"
    assert mode(path) == 0o600
    assert json.loads(path.read_text()) == {"url": URL, "token": "tok"}


def test_rewrite_keeps_mode_0600() -> None:
    path = write_cli_config(URL, "old")
    path.chmod(0o644)
    write_cli_config(URL, "new")
    assert mode(path) == 0o600
    assert load_config().token == "new"


def test_default_path_is_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert config_path() == tmp_path / "cli-home" / ".config" / "yurt" / "config.json"


def test_env_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    write_cli_config(URL, "file-token")
    assert load_config().url == URL
    monkeypatch.setenv("YURT_URL", "http://other:8000/")
    config = load_config()
    assert (config.url, config.token) == ("http://other:8000", "file-token")
    monkeypatch.setenv("YURT_TOKEN", "env-token")
    assert load_config().token == "env-token"


def test_auth_token_prints_the_token_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    write_cli_config(URL, "file-token")
    assert CliRunner().invoke(cli, ["auth:token"]).stdout == "file-token\n"
    monkeypatch.setenv("YURT_TOKEN", "env-token")
    assert CliRunner().invoke(cli, ["auth:token"]).stdout == "env-token\n"


def test_auth_token_without_config_is_an_error() -> None:
    result = CliRunner().invoke(cli, ["auth:token"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: No token configured. Run yurt login")


def test_broken_config_file_is_an_error_not_a_traceback() -> None:
    config_path().parent.mkdir(parents=True)
    config_path().write_text("{not json")
    result = CliRunner().invoke(cli, ["apps"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "is not valid JSON" in result.stderr


def helper_entries(url: str) -> list[str]:
    done = subprocess.run(
        ["git", "config", "--global", "--get-all", credential_helper_key(url)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_credential_helper_installed_once(tmp_path: Path) -> None:
    install_git_credential_helper(URL)
    install_git_credential_helper(URL + "/")
    [entry] = helper_entries(URL)
    assert entry.startswith("!/") and entry.endswith(" auth:git-credential")
    assert (tmp_path / "cli-home" / ".gitconfig").is_file()


def test_helper_command_is_the_yurt_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "bin" / "yurt"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["bin/yurt", "server"])
    assert yurt_command() == str(script)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    monkeypatch.setenv("PATH", str(script.parent))
    script.chmod(0o755)
    assert yurt_command() == str(script)
    monkeypatch.setenv("PATH", os.devnull)
    assert yurt_command().endswith(" -m controller.cli")
