"""What every command shares: the API client built from config, and which app it acts on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import requests

from controller.cli.client import ApiClient
from controller.cli.config import LOGIN_HINT, load_config
from controller.cli.errors import CliError
from controller.cli.gitremote import app_name_from_git_url, remote_url

F = TypeVar("F", bound=Callable[..., Any])

NO_APP = "No app specified. Use -a APP, or run this inside a git repo with a 'yurt' remote."


@dataclass
class State:
    """The click context object; tests pass one with a fake ``session``."""

    session: requests.Session | None = None

    def client(self) -> ApiClient:
        config = load_config()
        if not config.url:
            raise CliError(f"No Yurt server configured. {LOGIN_HINT}")
        if not config.token:
            raise CliError(f"No token for {config.url}. {LOGIN_HINT}")
        return ApiClient(config.url, config.token, self.session)


pass_state = click.make_pass_decorator(State, ensure=True)


def app_option(func: F) -> F:
    """``-a/--app``, falling back to ``YURT_APP``; the git remote is tried by resolve_app."""
    return click.option(
        "-a",
        "--app",
        "app",
        envvar="YURT_APP",
        metavar="APP",
        help="The app (default: $YURT_APP, then the 'yurt' git remote).",
    )(func)


def app_from_remote() -> str | None:
    url = remote_url()
    return app_name_from_git_url(url) if url else None


def resolve_app(app: str | None) -> str:
    """The app a command is for: ``-a``/``YURT_APP``, else the ``yurt`` remote, else an error."""
    resolved = app or app_from_remote()
    if not resolved:
        raise CliError(NO_APP)
    return resolved
