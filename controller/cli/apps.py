"""App commands: apps, apps:create, apps:info, apps:destroy (and the ``yurt`` git remote)."""

from __future__ import annotations

from typing import Any

import click

from controller.cli.client import api_path
from controller.cli.context import State, app_option, pass_state, resolve_app
from controller.cli.errors import CliError
from controller.cli.gitremote import (
    REMOTE,
    app_name_from_git_url,
    in_work_tree,
    remote_url,
    remove_remote,
    set_remote,
)
from controller.cli.output import (
    action,
    json_option,
    note,
    print_info,
    print_json,
    print_table,
    shown,
)


@click.command("apps")
@json_option
@pass_state
def apps_list(state: State, as_json: bool) -> None:
    """List apps."""
    apps = state.client().get("/api/apps")
    if as_json:
        print_json(apps)
        return
    rows = [[a["name"], shown(a.get("buildpack")), a["git_url"], a["created_at"]] for a in apps]
    print_table(["NAME", "BUILDPACK", "GIT URL", "CREATED"], rows)
    if not apps:
        note("No apps yet. Create one with: yurt apps:create NAME")


@click.command("apps:create")
@click.argument("name")
@pass_state
def apps_create(state: State, name: str) -> None:
    """Create an app and its 'yurt' git remote."""
    client = state.client()
    with action(f"Creating {name}"):
        app = client.post("/api/apps", {"name": name})
    click.echo(" | ".join(u for u in (app.get("web_url"), app["git_url"]) if u))
    if in_work_tree():
        verb = set_remote(app["git_url"])
        note(f"Git remote {REMOTE} {verb}: {app['git_url']}")
        note(f"Deploy with: git push {REMOTE} main")


def app_fields(app: dict[str, Any]) -> list[tuple[str, str]]:
    formation = app.get("formation") or {}
    running = app.get("processes") or {}
    dynos = ", ".join(f"{t}: {running.get(t, 0)}/{n}" for t, n in sorted(formation.items()))
    if app.get("stopped"):
        dynos = "stopped (yurt ps:start runs them again)"
    return [
        ("Name", app["name"]),
        ("Git URL", app["git_url"]),
        ("SSH Git URL", shown(app.get("ssh_git_url"))),
        ("Web URL", shown(app.get("web_url"))),
        ("Release", shown(app.get("current_release"), "(none yet: git push yurt main)")),
        ("Processes", dynos or "(none)"),
        ("Buildpack", shown(app.get("buildpack"), "(detected on each build)")),
        ("Created", app["created_at"]),
    ]


@click.command("apps:info")
@app_option
@json_option
@pass_state
def apps_info(state: State, app: str | None, as_json: bool) -> None:
    """Show an app's URLs, release and processes."""
    data = state.client().get(api_path("apps", resolve_app(app)))
    if as_json:
        print_json(data)
    else:
        print_info(data["name"], app_fields(data))


def destroy_refusal(name: str, confirm: str | None) -> str:
    retry = f"To proceed, type yurt apps:destroy {name} --confirm {name}"
    if confirm is None:
        return (
            f"This permanently destroys {name}: its git repository, builds, build cache "
            f"and slugs. {retry}"
        )
    return f"Confirmation {confirm!r} does not match the app name {name!r}. {retry}"


@click.command("apps:destroy")
@click.argument("name")
@click.option("--confirm", metavar="NAME", help="The app's name again, to confirm.")
@pass_state
def apps_destroy(state: State, name: str, confirm: str | None) -> None:
    """Permanently destroy an app (needs --confirm NAME)."""
    if confirm != name:
        raise CliError(destroy_refusal(name, confirm))
    client = state.client()
    with action(f"Destroying {name}"):
        client.delete(api_path("apps", name))
    url = remote_url()
    if url and app_name_from_git_url(url) == name:
        remove_remote()
        note(f"Git remote {REMOTE} removed")


COMMANDS = [apps_list, apps_create, apps_info, apps_destroy]
