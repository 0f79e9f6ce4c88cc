"""Process commands: ps, ps:scale, ps:restart, ps:stop and ps:start.

``ps`` groups an app's processes by type, Heroku-style; ``ps:scale`` takes ``TYPE=COUNT``
pairs (checked before anything is sent) and ``ps:restart`` restarts them in turn.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from controller.cli.client import api_path
from controller.cli.context import State, app_option, pass_state, resolve_app
from controller.cli.errors import CliError
from controller.cli.output import action, bold, json_option, note, print_json
from controller.names import PROCESS_TYPE_RE

SCALE_USAGE = "use TYPE=COUNT, e.g. yurt ps:scale web=2 worker=1"


def type_order(ptype: str) -> tuple[bool, str]:
    """``web`` first, then the other types by name."""
    return (ptype != "web", ptype)


def process_line(process: Mapping[str, Any]) -> str:
    """``web.1: up 2026-11-26T13:43:05Z  (v3)``; a crashed one also shows its exit status, and
    one that was restarted how often."""
    words = [f"{process['name']}: {process['state']}"]
    if process.get("exit_status") is not None and process["state"] in ("crashed", "stopped"):
        words.append(f"(exit status {process['exit_status']})")
    if process.get("started_at"):
        words.append(str(process["started_at"]))
    tail = f"  ({process['release']}"
    if process.get("restarts"):
        tail += f", {process['restarts']} restart{'s' if process['restarts'] != 1 else ''}"
    return " ".join(words) + tail + ")"


def print_processes(processes: Sequence[Mapping[str, Any]]) -> None:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for process in processes:
        groups[process["type"]].append(process)
    for index, ptype in enumerate(sorted(groups, key=type_order)):
        members = sorted(groups[ptype], key=lambda p: int(p["number"]))
        if index:
            click.echo()
        click.echo(bold(f"=== {ptype} ({len(members)})"))
        for process in members:
            click.echo(process_line(process))


@click.command("ps")
@app_option
@json_option
@pass_state
def ps_list(state: State, app: str | None, as_json: bool) -> None:
    """List an app's processes, grouped by type."""
    name = resolve_app(app)
    processes = state.client().get(api_path("apps", name, "processes"))
    if as_json:
        print_json(processes)
        return
    print_processes(processes)
    if not processes:
        note(
            f"{name} has no processes. Deploy with: git push yurt main, "
            "or scale up with: yurt ps:scale web=1"
        )


def parse_scale(pairs: Iterable[str]) -> dict[str, int]:
    """``["web=2", "worker=0"]`` -> ``{"web": 2, "worker": 0}``, or a CliError saying why not."""
    changes: dict[str, int] = {}
    for pair in pairs:
        ptype, sep, count = pair.partition("=")
        if not sep or not PROCESS_TYPE_RE.match(ptype):
            raise CliError(f"Invalid argument {pair!r}: {SCALE_USAGE}.")
        if not (count.isascii() and count.isdigit()):
            raise CliError(
                f"Invalid count {count!r} for {ptype}: a whole number from 0, e.g. {ptype}=2."
            )
        if ptype in changes:
            raise CliError(f"The process type {ptype} is given twice.")
        changes[ptype] = int(count)
    return changes


def formation_text(formation: Mapping[str, int]) -> str:
    return " ".join(f"{t}={formation[t]}" for t in sorted(formation, key=type_order))


@click.command("ps:scale")
@click.argument("pairs", metavar="[TYPE=COUNT]...", nargs=-1)
@app_option
@json_option
@pass_state
def ps_scale(state: State, pairs: tuple[str, ...], app: str | None, as_json: bool) -> None:
    """Scale process types (no arguments: show the counts)."""
    changes = parse_scale(pairs)
    name = resolve_app(app)
    client = state.client()
    path = api_path("apps", name, "formation")
    if not changes:
        formation = client.get(path)
    else:
        with action(f"Scaling {name} to {formation_text(changes)}"):
            formation = client.patch(path, changes)
    if as_json:
        print_json(formation)
    elif formation:
        click.echo(formation_text(formation))
    else:
        note(f"{name} has no process types yet. Deploy with: git push yurt main")


@click.command("ps:restart")
@click.argument("process_type", metavar="[TYPE]", required=False)
@app_option
@pass_state
def ps_restart(state: State, process_type: str | None, app: str | None) -> None:
    """Restart processes one by one (all, or one TYPE)."""
    name = resolve_app(app)
    client = state.client()
    body = {} if process_type is None else {"type": process_type}
    what = f"{process_type} processes" if process_type else "processes"
    with action(f"Restarting the {what} of {name}"):
        processes = client.post(api_path("apps", name, "processes", "restart"), body)
    print_processes(processes)


@click.command("ps:stop")
@app_option
@pass_state
def ps_stop(state: State, app: str | None) -> None:
    """Stop all of an app's processes until ps:start."""
    name = resolve_app(app)
    with action(f"Stopping {name}"):
        state.client().post(api_path("apps", name, "processes", "stop"), {})
    note(f"{name} is stopped; its URL answers 503. Start it again with: yurt ps:start")


@click.command("ps:start")
@app_option
@pass_state
def ps_start(state: State, app: str | None) -> None:
    """Start a stopped app's processes with its formation."""
    name = resolve_app(app)
    with action(f"Starting {name}"):
        processes = state.client().post(api_path("apps", name, "processes", "start"), {})
    print_processes(processes)


COMMANDS = [ps_list, ps_scale, ps_restart, ps_stop, ps_start]
