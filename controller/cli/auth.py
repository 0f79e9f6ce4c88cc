"""Commands that log in and hand the token to git: login, auth:token, auth:git-credential."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import click

from controller import proc
from controller.cli.client import ApiClient
from controller.cli.config import (
    LOGIN_HINT,
    install_git_credential_helper,
    load_config,
    write_cli_config,
)
from controller.cli.context import State, pass_state
from controller.cli.errors import CliError
from controller.cli.output import action, note

DEFAULT_PORTS = {"http": 80, "https": 443}


@click.command("login")
@click.option(
    "--url", envvar="YURT_URL", required=True, help="The server, e.g. http://127.0.0.1:7100"
)
@click.option(
    "--token", envvar="YURT_TOKEN", prompt=True, hide_input=True, help="An API token (prompted)."
)
@pass_state
def login(state: State, url: str, token: str) -> None:
    """Log in to a Yurt server; sets up git push auth too."""
    url = url.rstrip("/")
    if urlsplit(url).scheme not in DEFAULT_PORTS:
        raise CliError(f"The URL must start with http:// or https://, not {url!r}.")
    with action(f"Logging in to {url}"):
        ApiClient(url, token, state.session).get("/api/apps")
    note(f"Saved the URL and token to {write_cli_config(url, token)}")
    try:
        install_git_credential_helper(url)
    except (proc.CommandFailed, OSError) as exc:
        note(f"Warning: could not set up the git credential helper for {url}: {exc}")
    else:
        note(f"git push to {url} now uses this token (credential helper in ~/.gitconfig).")


@click.command("auth:token")
def auth_token() -> None:
    """Print the API token in use."""
    token = load_config().token
    if not token:
        raise CliError(f"No token configured. {LOGIN_HINT}")
    click.echo(token)


def read_credential_request(lines: Iterable[str]) -> dict[str, str]:
    """git's ``key=value`` lines, up to a blank line or end of input."""
    request: dict[str, str] = {}
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            break
        key, sep, value = line.partition("=")
        if sep:
            request[key] = value
    return request


def host_and_port(scheme: str, netloc: str) -> tuple[str, int] | None:
    """Lower-cased host and effective port (default for the scheme), or None if malformed."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


def credential_matches(request: Mapping[str, str], url: str) -> bool:
    """Whether git is asking about the protocol, host and port of the configured server."""
    server = urlsplit(url)
    protocol = request.get("protocol", "")
    if protocol != server.scheme:
        return False
    wanted = host_and_port(protocol, request.get("host", ""))
    return wanted is not None and wanted == host_and_port(server.scheme, server.netloc)


@click.command("auth:git-credential")
@click.argument("operation", type=click.Choice(["get", "store", "erase"]))
def git_credential(operation: str) -> None:
    """Give git push the token (git runs this, not you)."""
    request = read_credential_request(sys.stdin)
    if operation != "get":
        return
    config = load_config()
    if config.url and config.token and credential_matches(request, config.url):
        click.echo("username=yurt")
        click.echo(f"password={config.token}")


COMMANDS = [login, auth_token, git_credential]
