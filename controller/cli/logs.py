"""The logs command: an app's process output, ``web.1 | ...`` lines, optionally followed."""

from __future__ import annotations

import sys

import click

from controller.cli.client import api_path
from controller.cli.context import State, app_option, pass_state, resolve_app


@click.command("logs")
@app_option
@click.option(
    "-n",
    "--num",
    "lines",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    metavar="N",
    help="How many recent lines to print (of all processes merged).",
)
@click.option("-t", "--tail", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option(
    "-p", "--ps", "ps", metavar="TYPE", help="Only this process type (web) or process (web.1)."
)
@click.option(
    "-s",
    "--source",
    type=click.Choice(["app", "router"]),
    default="app",
    show_default=True,
    help="The processes' output, or the router's access lines for the app.",
)
@pass_state
def logs(
    state: State, app: str | None, lines: int, tail: bool, ps: str | None, source: str
) -> None:
    """Show an app's logs (-t to follow them)."""
    name = resolve_app(app)
    client = state.client()
    params = {"lines": str(lines), "tail": "true" if tail else "false", "source": source}
    if ps:
        params["ps"] = ps
    out = sys.stdout.buffer
    try:
        for chunk in client.stream(api_path("apps", name, "logs"), params):
            out.write(chunk)
            out.flush()
    except KeyboardInterrupt:
        if not tail:
            raise
        # Ctrl-C is how a tail ends: exit 0 without "Aborted!".


COMMANDS = [logs]
