"""Runs Yurt's buildpacks the way the build runner does, for the buildpack tests.

The contract (see buildpacks/README.md): the whole buildpacks/ directory is copied to a
writable place; ``bin/detect BUILD_DIR``, ``bin/compile BUILD_DIR CACHE_DIR ENV_DIR`` and
``bin/release BUILD_DIR`` run with a small, fixed environment; the built directory is later
unpacked at a different path (the release directory) and processes start with HOME and cwd
set to it, after sourcing every ``.profile.d/*.sh``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BUILDPACKS_SOURCE = REPO / "buildpacks"
APPS = REPO / "tests" / "apps"
BUILDPACKS = ("nodejs", "python", "static", "procfile")
SOURCE_VERSION = "0123456789abcdef0123456789abcdef01234567"
# What a started process gets: no pyenv, no venv, nothing from the build environment.
RUNTIME_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class Compiled:
    """One bin/compile run: its directories, exit status and combined output."""

    build_dir: Path
    cache_dir: Path
    returncode: int
    output: str

    def check(self) -> Compiled:
        assert self.returncode == 0, f"compile failed ({self.returncode}):\n{self.output}"
        return self


class Buildpacks:
    """A private, writable copy of buildpacks/ and the three entry points of each buildpack."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.home = home

    @classmethod
    def copy_to(cls, tmp: Path) -> Buildpacks:
        root = tmp / "buildpacks"
        shutil.copytree(BUILDPACKS_SOURCE, root, symlinks=True)
        home = tmp / "home"
        home.mkdir()
        return cls(root, home)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "STACK": "yurt-24",
            "SOURCE_VERSION": SOURCE_VERSION,
            "HOME": str(self.home),
        }
        env.update(extra or {})
        return env

    def script(self, buildpack: str, name: str) -> str:
        return str(self.root / buildpack / "bin" / name)

    def detect(self, buildpack: str, build_dir: Path) -> str | None:
        """The name bin/detect prints, or None if it refuses the app (and prints nothing)."""
        done = subprocess.run(
            [self.script(buildpack, "detect"), str(build_dir)],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            assert done.stdout == "", f"{buildpack} refused but printed {done.stdout!r}"
            return None
        return done.stdout.strip()

    def compile(
        self,
        buildpack: str,
        build_dir: Path,
        cache_dir: Path,
        config: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Compiled:
        env_dir = build_dir.parent / f"{build_dir.name}-env"
        env_dir.mkdir(exist_ok=True)
        for name, value in (config or {}).items():
            (env_dir / name).write_text(value)
        cache_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [self.script(buildpack, "compile"), str(build_dir), str(cache_dir), str(env_dir)],
            env=self.env(extra_env),
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            check=False,
        )
        return Compiled(build_dir, cache_dir, done.returncode, done.stdout)

    def release(self, buildpack: str, build_dir: Path) -> dict[str, object]:
        done = subprocess.run(
            [self.script(buildpack, "release"), str(build_dir)],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return yaml.safe_load(done.stdout)


def copy_app(app: str, dest: Path) -> Path:
    """A fresh BUILD_DIR holding the sample app tests/apps/<app>."""
    shutil.copytree(APPS / app, dest, symlinks=True)
    return dest


@contextlib.contextmanager
def relocated(build_dir: Path) -> Iterator[Path]:
    """The built app copied to another path, as the release directory; while inside the block
    the original build directory does not exist, so nothing can still be using it."""
    release_dir = build_dir.parent / f"{build_dir.name}-release"
    shutil.rmtree(release_dir, ignore_errors=True)
    shutil.copytree(build_dir, release_dir, symlinks=True)
    hidden = build_dir.parent / f"{build_dir.name}-hidden"
    build_dir.rename(hidden)
    try:
        yield release_dir
    finally:
        hidden.rename(build_dir)


def runtime_env(release_dir: Path, port: int | None = None) -> dict[str, str]:
    env = {"PATH": RUNTIME_PATH, "HOME": str(release_dir), "LANG": "C.UTF-8"}
    if port is not None:
        env["PORT"] = str(port)
    return env


def start_script(command: str) -> str:
    """What the runner does before a process type's command: source .profile.d, then exec it."""
    return (
        'cd "$HOME"\n'
        'for profile in "$HOME"/.profile.d/*.sh; do [ -f "$profile" ] && . "$profile"; done\n'
        f"exec {command}\n"
    )


def run_in_release(release_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    """Run a one-off command in the release directory, with the app's run-time environment."""
    return subprocess.run(
        ["bash", "-c", start_script(command)],
        env=runtime_env(release_dir),
        cwd=release_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )


def procfile_command(app_dir: Path, process_type: str = "web") -> str:
    for line in (app_dir / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process_type:
            return command.strip()
    raise AssertionError(f"no {process_type}: in {app_dir / 'Procfile'}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class RunningApp:
    """A process started like a web dyno, answering on a loopback port."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path

    def get(self, path: str) -> Response:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=10) as reply:
                return Response(reply.status, dict(reply.headers.items()), reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers.items()), error.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the app exited ({self.proc.returncode}):\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.1)
        raise AssertionError(f"the app did not listen on {self.port} in {timeout} s:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM the process group, as the runner stops a dyno; returns the exit status."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@contextlib.contextmanager
def serving(release_dir: Path, command: str) -> Iterator[RunningApp]:
    """Start a process type's command in the release directory on a free port."""
    port = free_port()
    log_path = release_dir.parent / f"{release_dir.name}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", start_script(command)],
            env=runtime_env(release_dir, port),
            cwd=release_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app = RunningApp(proc, port, log_path)
    try:
        app.wait_until_ready()
        yield app
    finally:
        app.stop()
