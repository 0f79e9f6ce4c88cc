"""The ``yurt`` command-line client: Heroku-style ``topic:verb`` commands over the HTTP API.

Commands live in one module per topic (auth, apps, builds, releases, ps, domains, logs,
buildpacks, keys); this module builds the group, lists the commands by topic in ``yurt --help`` and wraps
it all in :func:`main`, which guarantees ``Error: ...`` and exit 1 instead of a traceback.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict

import click

from controller import __version__
from controller.cli import (
    admin,
    apps,
    auth,
    buildpacks,
    builds,
    configvars,
    domains,
    jobspec,
    keys,
    logs,
    ps,
    releases,
)
from controller.cli.errors import print_error

# (topic, section title) in the order ``yurt --help`` shows them.
TOPICS = (
    ("auth", "Log in"),
    ("apps", "Apps"),
    ("builds", "Builds"),
    ("releases", "Releases"),
    ("config", "Config vars"),
    ("ps", "Processes"),
    ("domains", "Domains"),
    ("logs", "Logs"),
    ("buildpacks", "Buildpacks"),
    ("keys", "SSH keys"),
    ("jobspec", "Nomad job specs"),
    ("admin", "Cluster setup"),
    ("server", "Server"),
)


def topic_of(command_name: str) -> str:
    topic = command_name.split(":", 1)[0]
    return {"login": "auth", "rollback": "releases"}.get(topic, topic)


class TopicGroup(click.Group):
    """A group whose help lists commands under one heading per topic."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands, key=lambda name: (":" in name, name))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = [n for n in self.list_commands(ctx) if not self.commands[n].hidden]
        if not names:
            return
        width = max(len(n) for n in names)  # one column width for all sections
        limit = formatter.width - 6 - width
        sections: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for name in names:
            help_text = self.commands[name].get_short_help_str(limit)
            sections[topic_of(name)].append((name.ljust(width), help_text))
        titles = dict(TOPICS)
        for topic in [t for t, _ in TOPICS] + sorted(set(sections) - set(titles)):
            if sections.get(topic):
                with formatter.section(titles.get(topic, topic.capitalize())):
                    formatter.write_dl(sections[topic])


@click.group(
    cls=TopicGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Run 'yurt COMMAND --help' for a command's options.",
)
@click.version_option(__version__, "--version", prog_name="yurt")
def cli() -> None:
    """Yurt: deploy apps with git push."""


for _module in (auth, apps, builds, releases, configvars, ps, domains, logs, buildpacks, keys):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
cli.add_command(admin.vault_setup)  # talks to Vault, not to a controller
cli.add_command(jobspec.render_command)  # needs no controller or cluster


def main() -> None:
    """The ``yurt`` entry point: click handles usage errors (exit 2) and ``CliError`` (exit 1);
    anything unexpected is printed as one ``Error:`` line unless ``YURT_DEBUG`` is set."""
    try:
        cli.main(prog_name="yurt")
    except Exception as exc:
        if os.environ.get("YURT_DEBUG"):
            raise
        print_error(
            f"Unexpected {type(exc).__name__}: {exc}. Set YURT_DEBUG=1 to see the traceback."
        )
        sys.exit(1)


def _add_server_command() -> None:
    """Add ``yurt server`` when ``controller.server`` exists (it may not yet, in development)."""
    try:
        from controller.server import server_command
    except ModuleNotFoundError as exc:
        if exc.name != "controller.server":
            raise
        return
    cli.add_command(server_command)


_add_server_command()
