"""A real container registry for tests: Debian's ``docker-registry`` (CNCF distribution 2.8).

``start_registry(tmp_dir)`` serves one on a free 127.0.0.1 port (plain HTTP, storage in
``tmp_dir``); ``push_stack_image(registry)`` pushes a tiny stack image made with umoci (a few
files, not runnable) so builds have something to layer onto. Tools talk to it with
``--tls-verify=false``. ``missing_tools()`` names the Debian packages that are absent
(``scripts/system-deps.sh`` installs them).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

TOOLS = {"docker-registry": "docker-registry", "skopeo": "skopeo", "umoci": "umoci"}

STACK_OS_RELEASE = 'PRETTY_NAME="Yurt test stack"\nID=yurt-test\n'


def missing_tools(*extra: str) -> list[str]:
    """Debian packages whose commands are not on PATH."""
    tools = {**TOOLS, **{t: t for t in extra}}
    return [pkg for cmd, pkg in tools.items() if shutil.which(cmd) is None]


def require_tools(*extra: str) -> None:
    """Skip, naming them, when the Debian packages are absent (scripts/system-deps.sh
    installs them, so CI never skips)."""
    missing = missing_tools(*extra)
    if missing:
        pytest.skip(
            "needs the Debian packages "
            + ", ".join(missing)
            + " (scripts/system-deps.sh installs them)"
        )


@dataclass
class Registry:
    addr: str  # 127.0.0.1:PORT
    root: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def manifest_digest(self, repo: str, tag: str) -> str:
        """The registry's own digest for ``repo:tag`` (Docker-Content-Digest of a HEAD)."""
        accept = ", ".join(
            [
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ]
        )
        resp = requests.head(
            f"{self.url}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}, timeout=10
        )
        resp.raise_for_status()
        return resp.headers["Docker-Content-Digest"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_registry(tmp_dir: Path, *, timeout: float = 15) -> Registry:
    """Start ``docker-registry serve`` on a free loopback port; returns once /v2/ answers."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    storage = tmp_dir / "storage"
    storage.mkdir(exist_ok=True)
    last_error = ""
    for _ in range(3):  # another process may grab the port between probe and bind
        port = free_port()
        config = tmp_dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: yurt-test-registry\n"
        )
        log_path = tmp_dir / "registry.log"
        log = log_path.open("ab")
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        registry = Registry(f"127.0.0.1:{port}", tmp_dir, proc, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"{registry.url}/v2/", timeout=1).status_code == 200:
                    return registry
            except requests.RequestException:
                pass
            time.sleep(0.05)
        registry.stop()
        last_error = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"docker-registry did not start:\n{last_error}")


def push_stack_image(
    registry: Registry,
    name: str = "yurt/stack",
    tag: str = "test",
    *,
    files: dict[str, str] | None = None,
) -> str:
    """Build a tiny stack image with umoci (no debootstrap, not runnable) and push it.

    The rootfs holds ``/etc/os-release``, ``/usr/local/bin/yurt-launch`` and ``/app`` (plus
    ``files``: path -> text). Returns the pushed ref, ``<addr>/<name>:<tag>``.
    """
    from controller.builder.launcher import LAUNCHER, LAUNCHER_PATH

    with tempfile.TemporaryDirectory(prefix="stack-") as tmp:
        root = Path(tmp) / "rootfs"
        content = {
            "/etc/os-release": STACK_OS_RELEASE,
            LAUNCHER_PATH: LAUNCHER,
            **(files or {}),
        }
        for path, text in content.items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(0o755 if "/bin/" in path else 0o644)
        (root / "app").mkdir()
        layout = f"{tmp}/oci:{tag}"
        ref = f"{registry.addr}/{name}:{tag}"
        for argv in (
            ["umoci", "init", "--layout", f"{tmp}/oci"],
            ["umoci", "new", "--image", layout],
            ["umoci", "insert", "--image", layout, str(root), "/"],
            [
                "umoci",
                "config",
                "--image",
                layout,
                "--config.env=PATH=/usr/local/bin:/usr/bin:/bin",
                "--config.env=LANG=C.UTF-8",
                "--config.cmd=/bin/sh",
            ],
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci:{layout}",
                f"docker://{ref}",
            ],
        ):
            subprocess.run(argv, check=True, capture_output=True)
    return ref
