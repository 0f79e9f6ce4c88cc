"""Build commands: builds, builds:info, builds:output, builds:cancel, builds:purge-cache.

A build id may be given as ``current``, meaning the app's newest build.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from controller.cli.client import ApiClient, api_path
from controller.cli.context import State, app_option, pass_state, resolve_app
from controller.cli.errors import CliError
from controller.cli.output import (
    action,
    json_option,
    note,
    print_info,
    print_json,
    print_table,
    shown,
)

RUNNING = ("pending", "building")


def list_builds(client: ApiClient, app: str) -> list[dict[str, Any]]:
    builds: list[dict[str, Any]] = client.get(api_path("apps", app, "builds"))
    return builds


def resolve_build_id(client: ApiClient, app: str, build_id: str) -> str:
    """``build_id`` itself, or for ``current`` the id of the newest build."""
    if build_id != "current":
        return build_id
    builds = list_builds(client, app)
    if not builds:
        raise CliError(f"{app} has no builds yet. Deploy with: git push yurt main")
    return str(builds[0]["id"])


def short_commit(commit: str | None) -> str:
    return commit[:7] if commit else "-"


@click.command("builds")
@app_option
@json_option
@pass_state
def builds_list(state: State, app: str | None, as_json: bool) -> None:
    """List an app's builds, newest first."""
    name = resolve_app(app)
    builds = list_builds(state.client(), name)
    if as_json:
        print_json(builds)
        return
    rows = [
        [
            b["id"],
            b["status"],
            short_commit(b.get("commit")),
            shown(b.get("buildpack")),
            b["created_at"],
        ]
        for b in builds
    ]
    print_table(["ID", "STATUS", "COMMIT", "BUILDPACK", "CREATED"], rows)
    if not builds:
        note(f"{name} has no builds yet. Deploy with: git push yurt main")


def slug_text(slug: dict[str, Any] | None) -> str:
    if not slug:
        return "-"
    return f"{slug['size'] / 1_000_000:.1f} MB ({slug['checksum']})"


def build_fields(build: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("App", build["app"]),
        ("Status", build["status"]),
        ("Commit", shown(build.get("commit"))),
        ("Ref", shown(build.get("ref"))),
        ("Buildpack", shown(build.get("buildpack"))),
        ("Process types", shown(", ".join(sorted(build.get("process_types") or {})))),
        ("Slug", slug_text(build.get("slug"))),
        ("Error", shown(build.get("error"))),
        ("Created", build["created_at"]),
        ("Started", shown(build.get("started_at"))),
        ("Finished", shown(build.get("finished_at"))),
    ]


@click.command("builds:info")
@click.argument("build_id", metavar="ID")
@app_option
@json_option
@pass_state
def builds_info(state: State, build_id: str, app: str | None, as_json: bool) -> None:
    """Show one build (ID may be 'current')."""
    name = resolve_app(app)
    client = state.client()
    build = client.get(api_path("apps", name, "builds", resolve_build_id(client, name, build_id)))
    if as_json:
        print_json(build)
    else:
        print_info(f"Build {build['id']}", build_fields(build))


@click.command("builds:output")
@click.argument("build_id", metavar="ID", default="current")
@app_option
@click.option("--no-follow", is_flag=True, help="Print the log so far instead of following it.")
@pass_state
def builds_output(state: State, build_id: str, app: str | None, no_follow: bool) -> None:
    """Stream a build's log, following it while it runs."""
    name = resolve_app(app)
    client = state.client()
    build_id = resolve_build_id(client, name, build_id)
    params = {"follow": "false"} if no_follow else None
    out = sys.stdout.buffer
    for chunk in client.stream(api_path("apps", name, "builds", build_id, "output"), params):
        out.write(chunk)
        out.flush()


def running_build_id(client: ApiClient, app: str) -> str:
    for build in list_builds(client, app):
        if build["status"] in RUNNING:
            return str(build["id"])
    raise CliError(f"{app} has no pending or running build to cancel.")


@click.command("builds:cancel")
@click.argument("build_id", metavar="[ID]", required=False)
@app_option
@pass_state
def builds_cancel(state: State, build_id: str | None, app: str | None) -> None:
    """Cancel a build (default: the newest running one)."""
    name = resolve_app(app)
    client = state.client()
    if build_id is None:
        build_id = running_build_id(client, name)
    else:
        build_id = resolve_build_id(client, name, build_id)
    with action(f"Cancelling build {build_id} of {name}"):
        client.post(api_path("apps", name, "builds", build_id, "cancel"))


@click.command("builds:purge-cache")
@app_option
@pass_state
def builds_purge_cache(state: State, app: str | None) -> None:
    """Delete an app's build cache."""
    name = resolve_app(app)
    client = state.client()
    with action(f"Purging the build cache of {name}"):
        result = client.delete(api_path("apps", name, "build-cache"))
    if isinstance(result, dict) and result.get("message"):
        note(str(result["message"]))


COMMANDS = [builds_list, builds_info, builds_output, builds_cancel, builds_purge_cache]
