"""``yurt --help`` groups commands by topic; every command has ``--help`` and a one-line help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from controller.cli import cli

COMMANDS = sorted(cli.commands)


def test_help_lists_commands_by_topic() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    out = result.stdout
    sections = ["Log in:", "Apps:", "Builds:", "Buildpacks:", "SSH keys:"]
    assert [out.index(s) for s in sections] == sorted(out.index(s) for s in sections)
    for name in COMMANDS:
        assert f"  {name} " in out
    assert "..." not in out.split("Log in:")[1].split("Server:")[0]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: cli {name}") or result.stdout.startswith(
        f"Usage: yurt {name}"
    )
    assert cli.commands[name].get_short_help_str()


def test_version() -> None:
    assert CliRunner().invoke(cli, ["--version"]).stdout.startswith("yurt, version ")
