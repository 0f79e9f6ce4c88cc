"""Fixtures for the cluster builder: a real registry, a tiny stack image, a fake controller
speaking the builder's contract, and ``run_builder`` (``python -m controller.builder`` as a
subprocess, with the environment the yurt-build job gives it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from ulid import ULID

from controller.errors import InvalidParams
from controller.runtime.nomad.views import _check_result
from tests.registry import Registry, push_stack_image, require_tools, start_registry

ROOT = Path(__file__).resolve().parents[2]
HELLO_APP = ROOT / "examples" / "hello-python"
TOKEN = "build-token-0123456789-do-not-print"
SECRET_VALUE = "config-value-s3cr3t-9f8e7d"
COMMIT = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require_tools()
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def stack_image(registry: Registry) -> str:
    return push_stack_image(registry)


# -- the fake controller -----------------------------------------------------------------


@dataclass
class FakeController:
    """The controller's internal build endpoints, recording what the builder sent."""

    build_id: str
    env: dict[str, str] = field(default_factory=dict)
    cache: bytes | None = None
    token: str = TOKEN
    results: list[dict[str, Any]] = field(default_factory=list)
    cache_puts: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    fail: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, name) -> status
    expect: tuple[str, str] | None = None  # (registry, app) the result must name
    url: str = ""
    server: _Server | None = None

    def start(self) -> FakeController:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.ctl = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def saw(self, method: str, name: str) -> list[int]:
        path = f"/internal/builds/{self.build_id}/{name}"
        return [status for m, p, status in self.requests if m == method and p == path]


class _Server(ThreadingHTTPServer):
    ctl: FakeController


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
        self.server.ctl.requests.append((self.command, self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> str | None:
        ctl = self.server.ctl
        prefix = f"/internal/builds/{ctl.build_id}/"
        if not self.path.startswith(prefix):
            self._reply(404, b'{"id": "not_found", "message": "no such build"}')
            return None
        if self.headers.get("Authorization") != f"Bearer {ctl.token}":
            self._reply(401, b'{"id": "unauthorized", "message": "bad build token"}')
            return None
        name = self.path[len(prefix) :]
        if (self.command, name) in ctl.fail:
            self._reply(ctl.fail[self.command, name], b'{"id": "x", "message": "injected"}')
            return None
        return name

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self) -> None:
        ctl = self.server.ctl
        name = self._route()
        if name == "env":
            self._reply(200, json.dumps({"env": ctl.env}).encode())
        elif name == "cache.tar.gz" and ctl.cache is None:
            self._reply(404, b'{"id": "not_found", "message": "no cache"}')
        elif name == "cache.tar.gz" and ctl.cache is not None:
            self._reply(200, ctl.cache, "application/gzip")
        elif name is not None:
            self._reply(404)

    def do_PUT(self) -> None:
        ctl = self.server.ctl
        name = self._route()
        if name == "cache.tar.gz":
            body = self._body()
            ctl.cache_puts.append(body)
            ctl.cache = body
            self._reply(204)
        elif name is not None:
            self._reply(404)

    def do_POST(self) -> None:
        ctl = self.server.ctl
        name = self._route()
        if name != "result":
            if name is not None:
                self._reply(404)
            return
        body = json.loads(self._body())
        if ctl.expect is not None:
            # The real controller's checks of the result (the contract).
            try:
                _check_result(body, *ctl.expect)
            except InvalidParams as exc:
                self._reply(400, json.dumps({"id": "invalid", "message": exc.message}).encode())
                return
        ctl.results.append(body)
        self._reply(204)


@dataclass
class BuilderRun:
    returncode: int
    output: str
    stderr: str
    seconds: float
    image: str  # the target ref


@pytest.fixture(scope="session")
def work_root() -> Iterator[Path]:
    """YURT_WORK_DIR: under /tmp, so the build user (uid 1000) can traverse to it (pytest's
    own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="yurt-builder-tests-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def builder_env(
    ctl: FakeController,
    registry: Registry,
    stack: str,
    source: Path,
    work: Path,
    app: str,
    **extra: str,
) -> dict[str, str]:
    ctl.expect = (registry.addr, app)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "YURT_"))}
    env.update(
        NOMAD_META_app=app,
        NOMAD_META_build_id=ctl.build_id,
        NOMAD_META_commit=COMMIT,
        NOMAD_META_image=f"{registry.addr}/{app}:{ctl.build_id}",
        NOMAD_META_build_token=ctl.token,
        YURT_CONTROLLER_URL=ctl.url,
        YURT_REGISTRY=registry.addr,
        YURT_REGISTRY_TLS_VERIFY="false",
        YURT_SOURCE_DIR=str(source),
        YURT_STACK_IMAGE=stack,
        YURT_WORK_DIR=str(work),
    )
    env.update(extra)
    return env


def run_builder(env: dict[str, str], timeout: float = 600) -> BuilderRun:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "controller.builder"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return BuilderRun(
        returncode=done.returncode,
        output=done.stdout.decode(errors="replace"),
        stderr=done.stderr.decode(errors="replace"),
        seconds=time.monotonic() - started,
        image=env["NOMAD_META_image"],
    )


@pytest.fixture
def controller() -> Iterator[FakeController]:
    ctl = FakeController(build_id=str(ULID())).start()
    yield ctl
    ctl.stop()


def copy_app(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@dataclass
class HelloBuilds:
    """Two builds of examples/hello-python for one app, the second with the first's cache."""

    first: BuilderRun
    second: BuilderRun
    first_ctl: FakeController
    second_ctl: FakeController


@pytest.fixture(scope="session")
def hello_builds(
    registry: Registry, stack_image: str, work_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> HelloBuilds:
    source = copy_app(HELLO_APP, tmp_path_factory.mktemp("hello") / "src")
    env = {"SECRET_KEY": SECRET_VALUE, "DATABASE_URL": f"postgres://u:{SECRET_VALUE}@db/x"}
    first_ctl = FakeController(build_id=str(ULID()), env=env).start()
    try:
        first = run_builder(
            builder_env(first_ctl, registry, stack_image, source, work_root, "hello")
        )
    finally:
        first_ctl.stop()
    second_ctl = FakeController(build_id=str(ULID()), env=env, cache=first_ctl.cache).start()
    try:
        second = run_builder(
            builder_env(second_ctl, registry, stack_image, source, work_root, "hello")
        )
    finally:
        second_ctl.stop()
    return HelloBuilds(first, second, first_ctl, second_ctl)


# -- reading images back -------------------------------------------------------------------


@dataclass
class PulledImage:
    manifest: dict[str, Any]
    config: dict[str, Any]
    layout: Path

    def blob(self, digest: str) -> Path:
        return self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def pull_image(ref: str, dest: Path) -> PulledImage:
    """``skopeo copy`` a ref from the test registry to an OCI layout and read it."""
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{ref}",
            f"oci:{dest}:img",
        ],
        check=True,
        capture_output=True,
    )
    index = json.loads((dest / "index.json").read_text())
    (entry,) = index["manifests"]
    manifest = json.loads((dest / "blobs" / "sha256" / entry["digest"][7:]).read_text())
    config = json.loads((dest / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())
    return PulledImage(manifest, config, dest)


def inspect_raw(ref: str) -> dict[str, Any]:
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        check=True,
        capture_output=True,
    )
    return dict(json.loads(done.stdout))
