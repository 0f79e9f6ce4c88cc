"""Private directories on tmpfs for what must never be written to the data dir's disk:
supervisord's state and env files (config vars), and builds' ENV_DIR.

As root they live under /run/yurt (0711, so app users can reach files meant for them); as a
normal user under $XDG_RUNTIME_DIR or /tmp/yurt-UID. Each data dir gets its own names, so
several Yurt servers (tests) can share a machine.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def run_base() -> Path:
    if os.geteuid() == 0:
        base = Path("/run/yurt")
    else:
        fallback = f"/tmp/yurt-{os.geteuid()}"  # noqa: S108 - owner and mode checked below
        base = Path(os.environ.get("XDG_RUNTIME_DIR") or fallback)
    base.mkdir(mode=0o711, parents=True, exist_ok=True)
    info = base.lstat()
    if info.st_uid != os.geteuid() or stat.S_ISLNK(info.st_mode):
        raise RuntimeError(f"{base} is not a private directory of this user; refusing to use it")
    if base == Path("/run/yurt"):
        base.chmod(0o711)
    return base


def private_dir(data_dir: Path, kind: str, mode: int = 0o700) -> Path:
    """``<run base>/<kind>-<hash of data dir>``, created with ``mode``."""
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    path = run_base() / f"{kind}-{key}"
    path.mkdir(mode=mode, exist_ok=True)
    path.chmod(mode)
    return path
