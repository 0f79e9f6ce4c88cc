"""Control-loop flows that run unchanged against the strict fake (tests/nomad/test_flows.py)
and against a real cluster (tests/live, ``pytest -m live``).

A ``Target`` is where a flow runs: it hands out a NomadRuntime for a fresh app and makes the
one thing a fake cannot do by itself happen — a task that really exits 3. On a real cluster
the failing command does it; on the fake, an outcome rule says so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pytest

from controller.runtime.base import DeployFailed, DeploySpec
from controller.runtime.nomad.client import NomadClient
from controller.runtime.nomad.runtime import NomadRuntime

FAILING_COMMAND = "echo 'failing on purpose' >&2; exit 3"


class Target(Protocol):
    client: NomadClient
    image: str  # pinned by digest
    command: str | None  # web's command (None: the image's CMD)
    timeout: float  # real seconds any wait may take

    def runtime(self, app: str) -> NomadRuntime: ...

    def will_fail(self, app: str, version: int) -> None:
        """Job version ``version`` of ``app``'s web runs FAILING_COMMAND (exit 3)."""
        ...


@dataclass
class App:
    name: str
    runtime: NomadRuntime
    target: Target

    @property
    def app_id(self) -> str:
        return f"id-{self.name}"

    def spec(self, version: int, web: int = 1, command: str | None = None) -> DeploySpec:
        return DeploySpec(
            app=self.name,
            app_id=self.app_id,
            version=version,
            slug_path=None,
            process_types={"web": command or self.target.command or ""},
            formation={"web": web},
            image=self.target.image,
            build_id="01J00000000000000000000000",
        )

    def deploy(self, spec: DeploySpec) -> str:
        out: list[bytes] = []
        self.runtime.deploy(spec, out.append)
        return b"".join(out).decode()

    def wait(self, what: str, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.target.timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not reached in {self.target.timeout:g}s")
            time.sleep(0.5)

    def web_up(self) -> int:
        return sum(
            1 for p in self.runtime.processes(self.app_id) if p.type == "web" and p.state == "up"
        )


def new_app(target: Target) -> App:
    name = f"yurt-flow-{uuid.uuid4().hex[:8]}"
    return App(name, target.runtime(name), target)


def flow_deploy_scale_restart_destroy(target: Target) -> None:
    app = new_app(target)
    try:
        out = app.deploy(app.spec(1))
        assert "v1 is serving" in out
        assert app.runtime.is_serving(app.app_id, 1)
        app.runtime.scale(app.spec(1, web=2))
        app.wait("2 web instances up", lambda: app.web_up() == 2)
        version = app.runtime.client.job(app.name)["Version"]  # type: ignore[index]
        app.runtime.restart(app.spec(1, web=2), "web")
        assert app.runtime.client.job(app.name)["Version"] > version  # type: ignore[index]
        app.wait("2 web instances up after the restart", lambda: app.web_up() == 2)
        assert "v2 is serving" in app.deploy(app.spec(2, web=2))
        assert app.runtime.is_serving(app.app_id, 2)
    finally:
        app.runtime.destroy(app.name, app.app_id)
    assert app.runtime.client.job(app.name) is None


def flow_failed_release_reverts_to_the_last_good_one(target: Target) -> None:
    app = new_app(target)
    try:
        app.deploy(app.spec(1))
        target.will_fail(app.name, 1)
        with pytest.raises(DeployFailed) as failed:
            app.deploy(app.spec(2, command=FAILING_COMMAND))
        message = str(failed.value)
        assert "exit status 3" in message
        assert "auto-revert rolled back to v1" in message
        # the revert is a new job version of v1's spec, stable once its deployment passes
        app.wait("v1 serving again", lambda: app.runtime.is_serving(app.app_id, 1))
        assert not app.runtime.is_serving(app.app_id, 2)
    finally:
        app.runtime.destroy(app.name, app.app_id)
