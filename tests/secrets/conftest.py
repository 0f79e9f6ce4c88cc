"""Real OpenBao servers for the config-store tests: dev mode (in memory, ~0.2 s to start) where
persistence is not under test. Every process started here is killed at teardown."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import pytest
import requests

from controller.secrets.openbao import bao_binary
from controller.secrets.store import ConfigStore

ROOT_TOKEN = "test-root-token"
PLANTED = "planted-s3cr3t-value-7c1e"  # a value that must never show up in messages or logs

_started: list[subprocess.Popen[bytes]] = []


def free_port_pair() -> int:
    """A loopback port P with P+1 free too (OpenBao's cluster listener takes the next port)."""
    for _ in range(100):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free pair of loopback ports")


def wait_http(url: str, timeout: float = 15.0, verify: bool | str = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1, verify=verify)
            return
        except OSError:  # requests' errors, and a CA file that is not written yet
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def wait_unseal_key(log: Path, timeout: float = 10.0) -> str:
    """Dev mode prints its unseal key in a banner, just after it starts answering."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"Unseal Key: (\S+)", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.02)
    raise RuntimeError(f"no unseal key in {log}")


def kill_proc(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@dataclass
class DevBao:
    """``bao server -dev`` on a free loopback port, restartable on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port_pair)
    tls: bool = False
    proc: subprocess.Popen[bytes] | None = None
    unseal_key: str = ""

    @property
    def addr(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> str:
        return str(self.workdir / "vault-ca.pem")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"dev-{time.monotonic_ns()}.log"
        argv = [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        if self.tls:
            argv += ["-dev-tls", f"-dev-tls-cert-dir={self.workdir}"]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir)},
            )
        _started.append(self.proc)
        wait_http(self.addr + "/v1/sys/health", verify=self.ca_cert if self.tls else True)
        self.unseal_key = wait_unseal_key(log)

    def stop(self) -> None:
        if self.proc is not None:
            kill_proc(self.proc)

    def root(self) -> hvac.Client:
        return hvac.Client(self.addr, token=ROOT_TOKEN, verify=self.ca_cert if self.tls else True)

    def seal(self) -> None:
        self.root().sys.seal()

    def unseal(self) -> None:
        self.root().sys.submit_unseal_key(self.unseal_key)

    def store(self, **kwargs: object) -> ConfigStore:
        return ConfigStore(self.addr, token=kwargs.pop("token", ROOT_TOKEN), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def shared_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBao]:
    """One dev server for tests that do not change its state (each uses its own app names)."""
    bao = DevBao(tmp_path_factory.mktemp("shared-bao"))
    bao.start()
    try:
        yield bao
    finally:
        bao.stop()


@pytest.fixture
def own_bao(tmp_path: Path) -> Iterator[DevBao]:
    """A dev server a test may seal, stop and restart."""
    bao = DevBao(tmp_path / "bao")
    bao.start()
    try:
        yield bao
    finally:
        bao.stop()


@pytest.fixture
def store(shared_bao: DevBao) -> ConfigStore:
    return shared_bao.store()


_app_counter = iter(range(1, 1_000_000))


@pytest.fixture
def app() -> str:
    """A fresh app name per test, so tests can share one server."""
    return f"app-{os.getpid()}-{next(_app_counter)}"


@pytest.fixture(scope="session", autouse=True)
def _kill_every_bao() -> Iterator[None]:
    """Whatever a test did, no dev server outlives the session."""
    yield
    for proc in _started:
        kill_proc(proc)
