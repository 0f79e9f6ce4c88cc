"""One unprivileged system user per app, so apps and builds never run as root.

When ``yurt server`` runs as root (the usual single-server install), each app's processes
and builds run as ``yurt-<app>``: they cannot read the data dir's secrets or another app's
files. When it runs as a normal user there is nobody to switch to, and apps share that
user's rights; callers say so at start-up.
"""

from __future__ import annotations

import hashlib
import os
import pwd
from collections.abc import Callable

from controller import proc

PREFIX = "yurt-"
MAX_USER_NAME = 32  # useradd's limit on Linux
# useradd exit status when the name is taken (e.g. created concurrently) / userdel's when absent.
USERADD_NAME_IN_USE = 9
USERDEL_NO_USER = 6


def running_as_root() -> bool:
    return os.geteuid() == 0


def user_for_app(app: str) -> str:
    """``yurt-<app>``, or, if that is longer than 32 characters, a prefix of the app name and
    a hash of the whole of it (stable, and distinct for apps sharing the prefix)."""
    name = PREFIX + app
    if len(name) <= MAX_USER_NAME:
        return name
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    keep = MAX_USER_NAME - len(PREFIX) - len(digest) - 1
    return f"{PREFIX}{app[:keep].rstrip('-')}-{digest}"


def _lookup(name: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def ensure_user(app: str) -> tuple[int, int]:
    """The (uid, gid) ``app`` runs as, creating its system user first if needed.

    Not root: the current uid/gid (no isolation between apps is possible).
    """
    if not running_as_root():
        return os.getuid(), os.getgid()
    name = user_for_app(app)
    found = _lookup(name)
    if found is not None:
        return found
    argv = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent"]
    argv += ["--shell", "/usr/sbin/nologin", "--user-group", name]
    result = proc.run(argv, check=False)
    found = _lookup(name)
    if found is None or result.returncode not in (0, USERADD_NAME_IN_USE):
        raise proc.CommandFailed(argv, result.returncode, result.stdout + result.stderr)
    return found


def remove_user(app: str) -> None:
    """Delete ``app``'s user and its group; nothing happens if it does not exist or we are
    not root. Its processes must have been stopped first (userdel refuses otherwise)."""
    if not running_as_root():
        return
    argv = ["userdel", user_for_app(app)]
    result = proc.run(argv, check=False)
    if result.returncode not in (0, USERDEL_NO_USER):
        raise proc.CommandFailed(argv, result.returncode, result.stdout + result.stderr)


def drop_privileges(uid: int, gid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child run as uid/gid with no supplementary groups.

    Not root: a no-op when uid/gid are our own (nothing to drop), else ValueError.
    """
    if not running_as_root():
        if (uid, gid) != (os.getuid(), os.getgid()):
            raise ValueError("only root can run commands as another user")
        return _nothing

    def drop() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return drop


def _nothing() -> None:
    return None
