"""Where the CLI keeps its server URL and token, and the git credential helper that uses them.

The file is ``$XDG_CONFIG_HOME/yurt/config.json`` (default ``~/.config/yurt/config.json``),
mode 0600, holding ``{"url": ..., "token": ...}``. ``YURT_URL`` and ``YURT_TOKEN`` override
it. The server calls :func:`write_cli_config` and :func:`install_git_credential_helper` on
its first start so that ``yurt`` and ``git push`` work without a ``yurt login``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from controller import proc
from controller.cli.errors import CliError

LOGIN_HINT = "Run yurt login --url URL --token TOKEN, or set YURT_URL and YURT_TOKEN."


@dataclass(frozen=True)
class CliConfig:
    url: str | None = None
    token: str | None = None


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "yurt" / "config.json"


def read_config_file(path: Path) -> dict[str, str]:
    """The string fields of the config file; empty when the file does not exist."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"Cannot read {path}: {exc.strerror}.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{path} is not valid JSON. {LOGIN_HINT}") from exc
    if not isinstance(data, dict):
        raise CliError(f"{path} should hold a JSON object. {LOGIN_HINT}")
    return {k: v for k, v in data.items() if k in ("url", "token") and isinstance(v, str)}


def load_config() -> CliConfig:
    """The URL and token in use: ``YURT_URL``/``YURT_TOKEN`` first, then the config file."""
    data = read_config_file(config_path())
    url = os.environ.get("YURT_URL") or data.get("url")
    token = os.environ.get("YURT_TOKEN") or data.get("token")
    return CliConfig(url=url.rstrip("/") if url else None, token=token or None)


def write_cli_config(url: str, token: str) -> Path:
    """Write the config file (mode 0600, replaced atomically) and return its path."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"url": url.rstrip("/"), "token": token}, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def yurt_command() -> str:
    """How git should run this CLI: the absolute path of the ``yurt`` executable."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "yurt" and argv0.is_file():
        return shlex.quote(str(argv0.resolve()))
    found = shutil.which("yurt")
    if found:
        return shlex.quote(str(Path(found).resolve()))
    # Not installed as a script (e.g. imported by tests): run the package with this Python.
    return f"{shlex.quote(sys.executable)} -m controller.cli"


def credential_helper_key(url: str) -> str:
    return f"credential.{url.rstrip('/')}.helper"


def install_git_credential_helper(url: str) -> None:
    """Make ``git push`` to ``url`` ask ``yurt auth:git-credential`` for the token.

    Sets ``credential.<url>.helper`` in the user's global git config; ``--replace-all``
    keeps a single entry however often this runs. Raises ``CommandFailed`` if git fails.
    """
    helper = f"!{yurt_command()} auth:git-credential"
    proc.run(["git", "config", "--global", "--replace-all", credential_helper_key(url), helper])
