"""The pre-receive hook's client: run by ``hooks/pre-receive`` inside ``git receive-pack``.

It decides which ref update deploys, snapshots that commit with ``git archive`` while the
pushed objects are still in quarantine, hands it to the controller, and relays the build
output. Its exit status accepts (0) or rejects (non-zero) the whole push. Stdlib only: it
starts on every push and must start fast.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

ZERO = "0" * 40
MAIN, MASTER = "refs/heads/main", "refs/heads/master"


def say(text: str) -> None:
    """Write to the pusher; keep going if they hung up (the build still gets recorded)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, check=True)
    return done.stdout.decode().strip()


def repo_has(ref: str) -> bool:
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", ref], capture_output=True)
    return done.returncode == 0


def deploy_ref(updates: list[tuple[str, str, str]]) -> str:
    """main deploys; master deploys only in repos that have (and get) no main."""
    refs = {ref for _, _, ref in updates}
    if MAIN in refs or repo_has(MAIN):
        return MAIN
    return MASTER


def main() -> int:
    updates = [tuple(line.split()) for line in sys.stdin.read().splitlines() if line.strip()]
    updates = [u for u in updates if len(u) == 3]
    target = deploy_ref(updates)
    build: tuple[str, str, str] | None = None
    for old, new, ref in updates:
        if ref != target:
            if ref.startswith("refs/heads/"):
                branch = ref[len("refs/heads/") :]
                deploys = "main" if target == MAIN else "main (or master, in repos without main)"
                say(f"-----> Pushed {branch}: only {deploys} deploys; no build.\n")
            continue
        if new.strip("0") == "":
            say(f" !     Refusing to delete the deploy branch {target[11:]}.\n")
            return 1
        build = (old, new, ref)
    if build is None:
        return 0
    return run_build(*build)


def run_build(old: str, commit: str, ref: str) -> int:
    app = git("config", "yurt.app")
    data_dir = Path(git("config", "yurt.datadir"))
    try:
        controller = json.loads((data_dir / "run" / "controller.json").read_text())
        token = (data_dir / "run" / "hook-token").read_text().strip()
    except (OSError, ValueError):
        say(" !     The Yurt controller is not running; the push is rejected.\n")
        return 1
    tmp_dir = data_dir / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryFile(dir=tmp_dir) as tar:
        subprocess.run(["git", "archive", "--format=tar", commit], stdout=tar, check=True)
        size = tar.tell()
        tar.seek(0)
        headers = {
            "X-Yurt-Hook-Token": token,
            "X-Yurt-Commit": commit,
            "X-Yurt-Old-Commit": old,
            "X-Yurt-Ref": ref,
            "Content-Type": "application/x-tar",
            "Content-Length": str(size),
        }
        return relay(controller["url"], f"/internal/apps/{app}/push", headers, tar)


def relay(url: str, path: str, headers: dict[str, str], tar: IO[bytes]) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80)
    try:
        conn.request("POST", path, body=tar, headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            message = json.loads(resp.read() or b"{}").get("message", resp.reason)
            say(f" !     {message}\n")
            return 1
        return follow(resp)
    except (OSError, http.client.HTTPException, ValueError):
        say(" !     Lost contact with the Yurt controller; the push is rejected.\n")
        return 1


def follow(resp: http.client.HTTPResponse) -> int:
    for raw in resp:
        event = json.loads(raw)
        if "out" in event:
            say(event["out"])
        elif "status" in event:
            return 0 if event["status"] == "succeeded" else 1
    say(" !     Lost contact with the Yurt controller; the push is rejected.\n")
    return 1


if __name__ == "__main__":
    os.environ.setdefault("LANG", "C.UTF-8")
    sys.exit(main())
