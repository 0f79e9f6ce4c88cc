"""Cluster administration commands: admin:vault-setup.

Unlike the other commands these talk to the cluster's services directly (here Vault, through
``VAULT_ADDR``/``VAULT_TOKEN``/``VAULT_CACERT``), not to a Yurt controller: they prepare the
cluster a controller will run on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import hvac

from controller.cli.errors import CliError
from controller.secrets.store import VaultSettings
from controller.secrets.vault_setup import (
    CONTRACT_KEYS,
    Step,
    VaultSetupError,
    VaultSetupSettings,
    read_contract,
    setup_vault,
)

TIMEOUT = 30.0

# (settings field, option, help); each option also reads the cluster.env key of its field.
NAME_OPTIONS = (
    ("kv_mount", "--kv-mount", "Mount path of the KV v2 secrets engine for config vars."),
    ("kv_prefix", "--kv-prefix", "Path under the KV mount that holds one secret per app."),
    (
        "jwt_mount",
        "--jwt-mount",
        "Mount path of the JWT auth method (Nomad's jwt_auth_backend_path).",
    ),
    ("audience", "--audience", "Audience of Nomad's workload identities for Vault."),
    ("role", "--role", "Name of the JWT role for app tasks."),
    ("app_policy", "--app-policy", "Name of the policy app tasks get."),
    ("controller_policy", "--controller-policy", "Name of the controller's policy."),
    ("namespace", "--namespace", "Nomad namespace of the apps' service jobs."),
    ("release_namespace", "--release-namespace", "Nomad namespace of the release-phase jobs."),
)


def name_options(func: Any) -> Any:
    for field, flag, help_text in reversed(NAME_OPTIONS):
        key = CONTRACT_KEYS[field]
        func = click.option(flag, field, envvar=key, show_envvar=True, help=help_text)(func)
    return func


def vault_client() -> hvac.Client:
    """A client for the Vault in VAULT_ADDR, logged in with VAULT_TOKEN."""
    try:
        settings = VaultSettings.from_env(os.environ)
    except ValueError as exc:
        raise CliError(f"{exc}.") from None
    if settings is None:
        raise CliError(
            "VAULT_ADDR is not set: export VAULT_ADDR and VAULT_TOKEN (a Vault admin token)."
        )
    if not settings.token:
        raise CliError("VAULT_TOKEN is not set: this command needs a Vault admin token.")
    return hvac.Client(
        settings.addr, token=settings.token, verify=settings.tls_verify, timeout=TIMEOUT
    )


def read_pubkeys(paths: tuple[Path, ...]) -> tuple[str, ...]:
    keys = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(
                f"Cannot read {path}: {getattr(exc, 'strerror', None) or exc}."
            ) from None
        if "-----BEGIN PUBLIC KEY-----" not in text:
            raise CliError(f"{path} is not a PEM public key.")
        keys.append(text.strip())
    return tuple(keys)


def print_step(step: Step) -> None:
    click.echo(f"  {step.outcome:<9}  {step.what}")


@click.command("admin:vault-setup")
@name_options
@click.option(
    "--jwks-url",
    envvar="YURT_VAULT_JWKS_URL",
    show_envvar=True,
    help="Nomad's JWKS URL as Vault reaches it [default: the one in jwt-auth-config.json].",
)
@click.option(
    "--jwt-validation-pubkey",
    "pubkey_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust this PEM public key instead of a JWKS URL (repeatable; for tests).",
)
def vault_setup(jwks_url: str | None, pubkey_files: tuple[Path, ...], **names: str | None) -> None:
    """Set up Vault for Yurt apps on a Nomad cluster.

    Idempotent: creates what is missing and updates what differs: a KV v2 secrets engine for config vars,
    a JWT auth method that trusts Nomad's workload identities, the app policy (a task reads
    only <kv mount>/data/<kv prefix>/<its job ID>, any version, nothing else), the controller
    policy, and a JWT role (role_type jwt) that admits workload identities from the app
    namespace and the release namespace only. Prints what it created, updated or found in
    place; a second run changes nothing.

    Talks to Vault directly: VAULT_ADDR, VAULT_TOKEN (an admin token), VAULT_CACERT,
    VAULT_SKIP_VERIFY. Names default to the values in vagrant/cluster.env; the objects' content
    comes from vagrant/config/vault/.
    """
    client = vault_client()
    try:
        settings = VaultSetupSettings.from_contract(
            read_contract(),
            jwks_url=jwks_url or None,
            jwt_validation_pubkeys=read_pubkeys(pubkey_files),
            **names,
        )
    except (ValueError, VaultSetupError) as exc:
        raise CliError(f"{exc}.") from None
    click.echo(f"Vault at {client.url}:")
    try:
        steps = setup_vault(client, settings, report=print_step)
    except VaultSetupError as exc:
        raise CliError(f"{exc}.") from None
    changed = [s for s in steps if s.changed]
    if changed:
        click.echo(f"Done: {len(changed)} of {len(steps)} objects created or updated.")
    else:
        click.echo("Nothing changed: everything was already in place.")
