"""The forced command sshd runs for every Yurt key: allow git push and fetch, nothing else.

sshd runs ``python -m controller.git.ssh_command --data-dir D --key-id K`` (see
:mod:`controller.git.ssh`) with the client's request in ``SSH_ORIGINAL_COMMAND``. Only
``git-receive-pack 'app.git'`` and ``git-upload-pack 'app.git'`` for an existing app are
handed to git; everything else gets a short message on stderr and exit status 1.

This runs on every push, so it stays small and stdlib-only (plus the naming rules), and it
never opens the database: a key counts as present while it is in ``authorized_keys``, which
the controller rewrites on every key change.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

from controller.errors import InvalidParams
from controller.names import check_app_name
from controller.settings import Settings

PREFIX = " !     "
SERVICES = {"git-receive-pack": "receive-pack", "git-upload-pack": "upload-pack"}
# git sends `git-receive-pack 'app.git'` (scp-style URLs) or `'/app.git'` (ssh:// URLs).
COMMAND_RE = re.compile(
    r"^(?P<verb>git-receive-pack|git-upload-pack) +(?P<q>'?)/?(?P<app>[^'/\s]*?)(?:\.git)?/?(?P=q)$"
)
KEY_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
SHOWN_MAX = 80


def parse_command(cmd: str) -> tuple[str, str]:
    """Return ``(git service, app)`` for an allowed command, e.g. ``("receive-pack", "hello")``.

    Raises ValueError with a message for the user for anything else.
    """
    cmd = cmd.strip()
    if not cmd:
        raise ValueError(
            "Interactive shells are not available: only git push and fetch are allowed over SSH."
        )
    match = COMMAND_RE.match(cmd)
    if not match:
        raise ValueError(f"Only git push and fetch are allowed over SSH (got: {_shown(cmd)})")
    try:
        app = check_app_name(match["app"])
    except InvalidParams as exc:
        raise ValueError(exc.message) from exc
    return SERVICES[match["verb"]], app


def key_present(authorized_keys: Path, key_id: str) -> bool:
    """True if a line of ``authorized_keys`` carries ``key_id`` as its comment."""
    try:
        text = authorized_keys.read_text()
    except OSError:
        return False
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return any(line.split()[-1:] == [key_id] for line in lines)


def _shown(text: str) -> str:
    """The user's command, cut short and with control characters escaped, for a message."""
    short = text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX] + "..."
    return repr(short)


def _fail(message: str) -> NoReturn:
    sys.stderr.write(PREFIX + message + "\n")
    sys.stderr.flush()
    raise SystemExit(1)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="controller.git.ssh_command")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--key-id", required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> NoReturn:
    """Check the request, then replace this process with ``git receive-pack``/``upload-pack``."""
    args = _args(argv)
    settings = Settings(data_dir=args.data_dir)
    key_id: str = args.key_id
    if not KEY_ID_RE.match(key_id) or not key_present(settings.ssh_dir / "authorized_keys", key_id):
        _fail("This SSH key is no longer allowed. Add it again with: yurt keys:add")
    try:
        service, app = parse_command(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    except ValueError as exc:
        _fail(str(exc))
    repo = settings.repos_dir / f"{app}.git"
    if not repo.is_dir():
        _fail(f"Unknown app '{app}'. Create it with: yurt apps:create {app}")
    env = {**os.environ, "YURT_DATA_DIR": str(settings.data_dir), "YURT_PUSH_KEY_ID": key_id}
    os.execvpe("git", ["git", service, str(repo)], env)  # noqa: S606 - fixed argv, no shell


if __name__ == "__main__":
    main()
