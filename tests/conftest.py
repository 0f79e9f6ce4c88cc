"""Shared fixtures: a real ``yurt server`` on a free loopback port, with its own data dir and HOME."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
YURT = str(BIN / "yurt")


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something true (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    token: str
    data_dir: Path
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    router_port: int = 0

    def app_get(self, app: str, path: str = "/", **kw: object) -> requests.Response:
        """A request to an app through the router (Caddy), by its Host name."""
        headers = {"Host": f"{app}.localhost"}
        url = f"http://127.0.0.1:{self.router_port}{path}"
        return requests.get(url, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]

    def api(self, method: str, path: str, **kw: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]

    def cli(
        self,
        *args: str,
        cwd: Path | str | None = None,
        input: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [YURT, *args],
            cwd=cwd,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"yurt {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
            )
        return done

    def git(
        self, *args: str, cwd: Path | str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=900
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if sig != signal.SIGKILL and "--keep-apps" not in self.extra_args:
            self._kill_leftovers()
        return self.proc.returncode

    def _kill_leftovers(self) -> None:
        """A server that failed to stop its Caddy must not leave it running after the test."""
        pidfile = self.data_dir / "runtime" / "caddy" / "caddy.pid"
        if pidfile.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YURT_", "GIT_", "XDG_"))}
    env.update(
        HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.com",
        GIT_TERMINAL_PROMPT="0",
        LANG="C.UTF-8",
    )
    return env


# App users must pass through every parent of the data dir. pytest's tmp dirs are 0700 and
# every pytest session that starts re-tightens /tmp/pytest-of-USER to 0700, so a data dir in
# them would break under any concurrent pytest run. Data dirs live here instead, with
# ``tmp/data`` a symlink to them so a test can find (and restart on) the same one.
DATA_ROOT = Path("/tmp/yurt-test-data")
_created_data_dirs: list[Path] = []


def free_port_pair() -> int:
    """A port P with P+1 free too (OpenBao's API and raft cluster ports)."""
    for _ in range(50):
        port = free_port()
        with contextlib.suppress(OSError), socket.socket() as s:
            s.bind(("127.0.0.1", port + 1))
            return port
    raise RuntimeError("no two free consecutive ports")


def traversable_data_dir(tmp: Path) -> Path:
    link = tmp / "data"
    if link.is_symlink():
        return link
    DATA_ROOT.mkdir(mode=0o711, exist_ok=True)
    DATA_ROOT.chmod(0o711)
    real = Path(tempfile.mkdtemp(prefix="d-", dir=DATA_ROOT))
    real.chmod(0o711)
    _created_data_dirs.append(real)
    link.symlink_to(real)
    return link


def shared_dir(tmp: Path) -> Path:
    """A directory that builds and apps, which run as other users, can read and write too
    (for gate and pid files a test hands to a fixture buildpack). Its real path, since the
    ``tmp/shared`` link to it is in pytest's 0700 tmp dir."""
    link = tmp / "shared"
    if link.is_symlink():
        return link.resolve()
    DATA_ROOT.mkdir(mode=0o711, exist_ok=True)
    real = Path(tempfile.mkdtemp(prefix="x-", dir=DATA_ROOT))
    real.chmod(0o1777)
    _created_data_dirs.append(real)
    link.symlink_to(real)
    return real


def pytest_sessionfinish(session: pytest.Session) -> None:
    for path in _created_data_dirs:
        shutil.rmtree(path, ignore_errors=True)


def start_server(
    tmp: Path,
    *args: str,
    data_dir: Path | None = None,
    home: Path | None = None,
    router_port: int | None = None,
    admin_port: int | None = None,
    dns_port: int | None = None,
    openbao_port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    home = home or tmp / "home"
    data_dir = data_dir or traversable_data_dir(tmp)
    home.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**base_env(home), **(extra_env or {})}
    log_path = tmp / f"server-{port}.log"
    router_port = router_port or free_port()
    router = ["--router-listen", f"127.0.0.1:{router_port}"]
    router += ["--router-admin-listen", f"127.0.0.1:{admin_port or free_port()}"]
    router += ["--router-dns-listen", f"127.0.0.1:{dns_port or free_port()}"]
    if "--openbao-listen" not in args:
        router += ["--openbao-listen", f"127.0.0.1:{openbao_port or free_port_pair()}"]
    if "--keep-apps" not in args:
        router.append("--stop-apps")  # tests leave no supervisord or Caddy behind
    proc = subprocess.Popen(
        [
            YURT,
            "server",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            *router,
            *args,
        ],
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"yurt server exited early:\n{log_path.read_text()}")
        try:
            if requests.get(url + "/api/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"yurt server did not answer in 30 s:\n{log_path.read_text()}")
    token = (data_dir / "admin-token").read_text().strip()
    env = {**env, "YURT_URL": url, "YURT_TOKEN": token}
    srv = Server(url, token, data_dir, home, env, proc, log_path, list(args))
    srv.router_port = router_port
    return srv


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


def make_repo(path: Path, source: Path | None, env: dict[str, str], branch: str = "main") -> Path:
    """A git work tree holding ``source`` (a sample app dir), committed on ``branch``."""
    if source is not None:
        shutil.copytree(source, path, dirs_exist_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    for argv in (
        ["git", "init", "-q", f"--initial-branch={branch}"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "--allow-empty", "-m", "initial"],
    ):
        subprocess.run(argv, cwd=path, env=env, check=True, capture_output=True)
    return path


def read_json(path: Path) -> object:
    return json.loads(path.read_text())
