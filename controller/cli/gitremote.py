"""The ``yurt`` git remote of the current work tree: the app it names, adding and removing it."""

from __future__ import annotations

import re

from controller import proc
from controller.cli.errors import CliError

REMOTE = "yurt"


def _git(*args: str) -> proc.Result | None:
    """Run git in the current directory; None when git is not installed."""
    try:
        return proc.run(["git", *args], check=False)
    except FileNotFoundError:
        return None


def in_work_tree() -> bool:
    result = _git("rev-parse", "--is-inside-work-tree")
    return result is not None and result.returncode == 0 and result.stdout.strip() == "true"


def remote_url() -> str | None:
    """The URL of the ``yurt`` remote, or None outside a repo or without that remote."""
    result = _git("remote", "get-url", REMOTE)
    if result is None or result.returncode != 0:
        return None
    return result.stdout.strip() or None


def app_name_from_git_url(url: str) -> str | None:
    """``hello`` from ``http://host:7100/hello.git``, ``ssh://git@host/hello.git`` or
    ``git@host:hello.git``: the last path component without ``.git``."""
    tail = re.split(r"[/:]", url.strip().rstrip("/"))[-1]
    return tail.removesuffix(".git") or None


def set_remote(url: str) -> str:
    """Point the ``yurt`` remote at ``url``; returns ``"added"`` or ``"updated"``."""
    verb, args = ("updated", ["set-url"]) if remote_url() else ("added", ["add"])
    try:
        proc.run(["git", "remote", *args, REMOTE, url])
    except (proc.CommandFailed, FileNotFoundError) as exc:
        raise CliError(f"Could not set the git remote {REMOTE!r}: {exc}") from exc
    return verb


def remove_remote() -> None:
    try:
        proc.run(["git", "remote", "remove", REMOTE])
    except (proc.CommandFailed, FileNotFoundError) as exc:
        raise CliError(f"Could not remove the git remote {REMOTE!r}: {exc}") from exc
