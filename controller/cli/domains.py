"""Domain commands: domains, domains:add and domains:remove (Heroku's names)."""

from __future__ import annotations

import click

from controller.cli.client import api_path
from controller.cli.context import State, app_option, pass_state, resolve_app
from controller.cli.output import action, json_option, note, print_json, print_table, shown


@click.command("domains")
@app_option
@json_option
@pass_state
def domains_list(state: State, app: str | None, as_json: bool) -> None:
    """List an app's hostnames (its default one first)."""
    name = resolve_app(app)
    domains = state.client().get(api_path("apps", name, "domains"))
    if as_json:
        print_json(domains)
        return
    rows = [
        [d["hostname"], "default" if d["default"] else "custom", shown(d.get("created_at"))]
        for d in domains
    ]
    print_table(["HOSTNAME", "KIND", "ADDED"], rows)


@click.command("domains:add")
@click.argument("hostname")
@app_option
@pass_state
def domains_add(state: State, hostname: str, app: str | None) -> None:
    """Route HOSTNAME to an app."""
    name = resolve_app(app)
    with action(f"Adding {hostname} to {name}"):
        domain = state.client().post(api_path("apps", name, "domains"), {"hostname": hostname})
    note(f"Point {domain['hostname']}'s DNS (A or CNAME record) at this server.")


@click.command("domains:remove")
@click.argument("hostname")
@app_option
@pass_state
def domains_remove(state: State, hostname: str, app: str | None) -> None:
    """Stop routing HOSTNAME to an app."""
    name = resolve_app(app)
    with action(f"Removing {hostname} from {name}"):
        state.client().delete(api_path("apps", name, "domains", hostname))


COMMANDS = [domains_list, domains_add, domains_remove]
