"""Release commands: releases, releases:info and rollback.

Every successful build makes a release; a rollback makes a new release from an earlier one.
A VERSION is ``v3`` or ``3``; ``releases:info`` also takes ``current``.
"""

from __future__ import annotations

from typing import Any

import click

from controller.cli.builds import short_commit
from controller.cli.client import ApiClient, api_path
from controller.cli.context import State, app_option, pass_state, resolve_app
from controller.cli.errors import CliError
from controller.cli.output import json_option, note, print_info, print_json, print_table, shown


def list_releases(client: ApiClient, app: str) -> list[dict[str, Any]]:
    releases: list[dict[str, Any]] = client.get(api_path("apps", app, "releases"))
    return releases


def version_name(version: str) -> str:
    """``3`` -> ``v3``; anything else as given (the server judges it)."""
    return f"v{version}" if version.isdigit() else version


@click.command("releases")
@app_option
@json_option
@pass_state
def releases_list(state: State, app: str | None, as_json: bool) -> None:
    """List an app's releases; '*' marks the current one."""
    name = resolve_app(app)
    releases = list_releases(state.client(), name)
    if as_json:
        print_json(releases)
        return
    rows = [
        [
            f"{'*' if r.get('current') else ' '} {r['name']}",
            r["status"],
            r["description"],
            short_commit(r.get("commit")),
            r["created_at"],
        ]
        for r in releases
    ]
    print_table(["VERSION", "STATUS", "DESCRIPTION", "COMMIT", "CREATED"], rows)
    if not releases:
        note(f"{name} has no releases yet. Deploy with: git push yurt main")


def current_version(client: ApiClient, app: str) -> str:
    for release in list_releases(client, app):
        if release.get("current"):
            return str(release["name"])
    raise CliError(f"{app} has no current release yet. Deploy with: git push yurt main")


def release_fields(release: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("App", release["app"]),
        ("Status", release["status"] + (" (current)" if release.get("current") else "")),
        ("Description", release["description"]),
        ("Build", shown(release.get("build_id"))),
        ("Commit", shown(release.get("commit"))),
        ("Slug", shown(release.get("slug_checksum"))),
        ("Process types", shown(", ".join(sorted(release.get("process_types") or {})))),
        ("Config version", shown(release.get("config_version"))),
        ("Error", shown(release.get("error"))),
        ("Created", release["created_at"]),
        ("Finished", shown(release.get("finished_at"))),
    ]


@click.command("releases:info")
@click.argument("version", metavar="[VERSION]", default="current")
@app_option
@json_option
@pass_state
def releases_info(state: State, version: str, app: str | None, as_json: bool) -> None:
    """Show one release (default: the current one)."""
    name = resolve_app(app)
    client = state.client()
    if version == "current":
        version = current_version(client, name)
    release = client.get(api_path("apps", name, "releases", version))
    if as_json:
        print_json(release)
    else:
        print_info(f"Release {release['name']}", release_fields(release))


@click.command("releases:preview")
@click.argument("version", metavar="[VERSION]", default="current")
@app_option
@pass_state
def releases_preview(state: State, version: str, app: str | None) -> None:
    """Diff the app's Nomad job against a release's."""
    name = resolve_app(app)
    chunks = state.client().stream(api_path("apps", name, "releases", version, "preview"))
    diff = b"".join(chunks).decode("utf-8", "replace")
    if diff:
        click.echo(diff, nl=False)
    else:
        note(f"Deploying {version_name(version)} now would change nothing on the cluster.")


@click.command("rollback")
@click.argument("version", metavar="[VERSION]", required=False)
@app_option
@pass_state
def rollback(state: State, version: str | None, app: str | None) -> None:
    """Roll back to an earlier release (default: previous)."""
    name = resolve_app(app)
    client = state.client()
    body = {} if version is None else {"release": version}
    target = f" to {version_name(version)}" if version is not None else ""
    click.echo(f"Rolling back {name}{target}...", err=True, nl=False)
    try:
        release = client.post(api_path("apps", name, "releases"), body)
    except BaseException:
        click.echo(" !", err=True)
        raise
    done = f" done, {release['name']}"
    if version is None:
        done += f" ({release['description']})"
    click.echo(done, err=True)


COMMANDS = [releases_list, releases_info, releases_preview, rollback]
