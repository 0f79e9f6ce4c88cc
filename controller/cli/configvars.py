"""Config var commands (Heroku's names): config, config:get, config:set, config:unset.

``config:set KEY=VALUE`` takes the value literally; ``KEY=@path`` reads it from a file and
``KEY=@-`` from stdin (multi-line values such as PEM keys). Every change is one new config
version and, unless ``--no-restart``, one new release deployed without downtime.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from controller.cli.client import api_path
from controller.cli.context import State, app_option, pass_state, resolve_app
from controller.cli.errors import CliError
from controller.cli.output import action, bold, json_option, note, print_json
from controller.names import CONFIG_KEY_RE

SET_USAGE = "use KEY=VALUE, KEY=@FILE or KEY=@- (stdin), e.g. yurt config:set DEBUG=1"

no_restart_option = click.option(
    "--no-restart",
    is_flag=True,
    help="Record the change without a new release; the next release or ps:restart applies it.",
)


def parse_assignments(pairs: Iterable[str], stdin: Any = None) -> dict[str, str]:
    """``["A=1", "B=@f"]`` -> values, reading ``@file``/``@-``; CliError on bad input."""
    values: dict[str, str] = {}
    used_stdin = False
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not CONFIG_KEY_RE.match(key):
            raise CliError(f"Invalid argument {key[:64]!r}: {SET_USAGE}.")
        if key in values:
            raise CliError(f"The config var {key} is given twice.")
        if value == "@-":
            if used_stdin:
                raise CliError("Only one value can come from stdin (@-).")
            used_stdin = True
            value = (stdin or sys.stdin).read()
        elif value.startswith("@") and len(value) > 1:
            try:
                value = Path(value[1:]).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CliError(f"Cannot read the value of {key} from {value[1:]}: {exc}") from None
        values[key] = value
    return values


def shell_line(key: str, value: str) -> str:
    return f"{key}={shlex.quote(value)}"


def print_vars(app: str, values: Mapping[str, str]) -> None:
    click.echo(bold(f"=== {app} Config Vars"))
    width = max((len(k) for k in values), default=0) + 1
    for key in sorted(values):
        click.echo(f"{(key + ':').ljust(width)}  {values[key]}")


@click.command("config")
@app_option
@json_option
@click.option("--shell", is_flag=True, help="Print KEY='value' lines for a shell or .env file.")
@pass_state
def config_list(state: State, app: str | None, as_json: bool, shell: bool) -> None:
    """Show an app's config vars."""
    name = resolve_app(app)
    data = state.client().get(api_path("apps", name, "config"))
    values = data["vars"]
    if as_json:
        print_json(values)
    elif shell:
        for key in sorted(values):
            click.echo(shell_line(key, values[key]))
    elif values:
        print_vars(name, values)
    else:
        note(f"{name} has no config vars. Set one with: yurt config:set KEY=VALUE")


@click.command("config:get")
@click.argument("key")
@app_option
@click.option("--shell", is_flag=True, help="Print KEY='value'.")
@pass_state
def config_get(state: State, key: str, app: str | None, shell: bool) -> None:
    """Print one config var's value."""
    name = resolve_app(app)
    values = state.client().get(api_path("apps", name, "config"))["vars"]
    if key not in values:
        raise CliError(f"{name} has no config var {key[:64]}.")
    click.echo(
        shell_line(key, values[key]) if shell else values[key], nl=not values[key].endswith("\n")
    )


def _change(
    state: State, name: str, changes: Mapping[str, str | None], restart: bool, verb: str
) -> None:
    keys = ", ".join(changes)
    what = f"{verb} {keys} and restarting {name}" if restart else f"{verb} {keys} on {name}"
    with action(what):
        result = state.client().patch(
            api_path("apps", name, "config"), {"vars": dict(changes), "restart": restart}
        )
    if not result["changed"]:
        note("Nothing changed: the config already had these values.")
    elif result["release"]:
        note(f"Released {result['release']} (config version {result['version']})")
    elif restart:
        note(f"Config version {result['version']}; the first git push will use it")
    else:
        note(
            f"Config version {result['version']} is recorded but not running; "
            "yurt ps:restart or the next release applies it"
        )


@click.command("config:set")
@click.argument("pairs", metavar="KEY=VALUE...", nargs=-1, required=True)
@app_option
@no_restart_option
@pass_state
def config_set(state: State, pairs: tuple[str, ...], app: str | None, no_restart: bool) -> None:
    """Set config vars and release them (all or none)."""
    values = parse_assignments(pairs)
    name = resolve_app(app)
    _change(state, name, values, not no_restart, "Setting")


@click.command("config:unset")
@click.argument("keys", metavar="KEY...", nargs=-1, required=True)
@app_option
@no_restart_option
@pass_state
def config_unset(state: State, keys: tuple[str, ...], app: str | None, no_restart: bool) -> None:
    """Remove config vars and release that."""
    for key in keys:
        if not CONFIG_KEY_RE.match(key):
            raise CliError(f"Invalid config var name {key[:64]!r}.")
    name = resolve_app(app)
    _change(state, name, dict.fromkeys(keys), not no_restart, "Unsetting")


COMMANDS = [config_list, config_get, config_set, config_unset]
