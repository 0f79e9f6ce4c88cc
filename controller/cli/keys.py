"""SSH key commands: keys, keys:add, keys:remove (keys let git push over SSH)."""

from __future__ import annotations

from pathlib import Path

import click

from controller.cli.client import api_path
from controller.cli.context import State, pass_state
from controller.cli.errors import CliError
from controller.cli.output import action, json_option, note, print_json, print_table

DEFAULT_KEY_FILES = ("id_ed25519.pub", "id_rsa.pub")


@click.command("keys")
@json_option
@pass_state
def keys_list(state: State, as_json: bool) -> None:
    """List the SSH keys allowed to git push."""
    keys = state.client().get("/api/keys")
    if as_json:
        print_json(keys)
        return
    rows = [[k["id"], k["name"], k["fingerprint"], k["created_at"]] for k in keys]
    print_table(["ID", "NAME", "FINGERPRINT", "CREATED"], rows)
    if not keys:
        note("No SSH keys yet. Add yours with: yurt keys:add")


def default_key_file() -> Path:
    ssh_dir = Path.home() / ".ssh"
    for name in DEFAULT_KEY_FILES:
        if (ssh_dir / name).is_file():
            return ssh_dir / name
    tried = " or ".join(str(ssh_dir / n) for n in DEFAULT_KEY_FILES)
    raise CliError(f"No public key at {tried}. Pass one: yurt keys:add FILE")


def read_public_key(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"{path} is not an SSH public key.") from exc
    if "PRIVATE KEY" in text:
        raise CliError(f"{path} is a private key; pass the matching .pub file.")
    return text


@click.command("keys:add")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="A name for the key (default: chosen by the server).")
@pass_state
def keys_add(state: State, file: Path | None, name: str | None) -> None:
    """Add an SSH public key, allowing git push over SSH.

    Without FILE, reads ~/.ssh/id_ed25519.pub, or else ~/.ssh/id_rsa.pub.
    """
    path = file or default_key_file()
    body = {"public_key": read_public_key(path)}
    if name:
        body["name"] = name
    client = state.client()
    with action(f"Adding {path}"):
        key = client.post("/api/keys", body)
    click.echo(f"{key['name']}  {key['fingerprint']}")


@click.command("keys:remove")
@click.argument("key", metavar="ID_OR_FINGERPRINT_OR_NAME")
@pass_state
def keys_remove(state: State, key: str) -> None:
    """Remove an SSH key by id, fingerprint or name."""
    client = state.client()
    with action(f"Removing key {key}"):
        client.delete(api_path("keys", key))


COMMANDS = [keys_list, keys_add, keys_remove]
