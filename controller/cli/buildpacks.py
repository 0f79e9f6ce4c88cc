"""Buildpack commands: buildpacks (available ones, the app's pin marked), set and clear."""

from __future__ import annotations

import click

from controller.cli.client import api_path
from controller.cli.context import State, app_from_remote, app_option, pass_state, resolve_app
from controller.cli.output import action, json_option, note, print_json, print_table


@click.command("buildpacks")
@app_option
@json_option
@pass_state
def buildpacks_list(state: State, app: str | None, as_json: bool) -> None:
    """List buildpacks; '*' marks the app's pinned one."""
    client = state.client()
    buildpacks = client.get("/api/buildpacks")
    if as_json:
        print_json(buildpacks)
        return
    name = app or app_from_remote()
    pinned = client.get(api_path("apps", name)).get("buildpack") if name else None
    rows = [[b["name"], b["detects"]] for b in buildpacks]
    if pinned:
        rows = [["*" if row[0] == pinned else "", *row] for row in rows]
        print_table(["", "NAME", "DETECTS"], rows)
        return
    print_table(["NAME", "DETECTS"], rows)
    if name:
        note(f"{name} has no pinned buildpack; each build uses the first that detects the app.")


@click.command("buildpacks:set")
@click.argument("buildpack", metavar="NAME")
@app_option
@pass_state
def buildpacks_set(state: State, buildpack: str, app: str | None) -> None:
    """Pin the buildpack an app's builds use."""
    name = resolve_app(app)
    client = state.client()
    with action(f"Setting the buildpack of {name} to {buildpack}"):
        client.patch(api_path("apps", name), {"buildpack": buildpack})
    note("The next build uses it.")


@click.command("buildpacks:clear")
@app_option
@pass_state
def buildpacks_clear(state: State, app: str | None) -> None:
    """Unpin an app's buildpack; builds detect it again."""
    name = resolve_app(app)
    client = state.client()
    with action(f"Clearing the buildpack of {name}"):
        client.patch(api_path("apps", name), {"buildpack": None})


COMMANDS = [buildpacks_list, buildpacks_set, buildpacks_clear]
