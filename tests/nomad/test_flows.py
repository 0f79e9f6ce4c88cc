"""The control-loop flows of tests/nomad/flows.py against the strict fake; ``pytest -m live``
runs the same flows against a real cluster (tests/live)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from controller.runtime.nomad.client import NomadClient, NomadSettings
from controller.runtime.nomad.runtime import NomadRuntime, NomadRuntimeSettings, ReleaseImage
from tests.fakes import FakeCluster
from tests.nomad import flows

IMAGE = "registry.service.consul:5000/flow@sha256:" + "cd" * 32


@dataclass
class FakeTarget:
    cluster: FakeCluster
    client: NomadClient
    image: str = IMAGE
    command: str | None = "python3 -m http.server $PORT"
    timeout: float = 30.0

    def runtime(self, app: str) -> NomadRuntime:
        settings = NomadRuntimeSettings(base_domain="apps.test", deploy_timeout=60)
        return NomadRuntime(
            self.client,
            settings,
            image_for=lambda spec: ReleaseImage(spec.image or "", spec.build_id or ""),
        )

    def will_fail(self, app: str, version: int) -> None:
        exit3 = {
            "Type": "Terminated",
            "DisplayMessage": "Exit Code: 3",
            "Details": {"exit_code": 3},
        }
        self.cluster.set_outcome(app, "web", "fail_start", version=version, task_events=[exit3])


@pytest.fixture
def target(fake_cluster: FakeCluster) -> FakeTarget:
    fake_cluster.create_namespace("yurt-release")
    settings = NomadSettings(
        addr=fake_cluster.nomad_addr, consul_addr=fake_cluster.consul_addr, namespace="yurt"
    )
    return FakeTarget(fake_cluster, NomadClient(settings))


def test_deploy_scale_restart_destroy(target: FakeTarget) -> None:
    flows.flow_deploy_scale_restart_destroy(target)


def test_failed_release_reverts_to_the_last_good_one(target: FakeTarget) -> None:
    flows.flow_failed_release_reverts_to_the_last_good_one(target)


def test_the_live_tiers_target_runs_against_the_fake(
    fake_cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/live builds its client from the environment, as it would for a real cluster."""
    from tests.live.test_live_cluster import LiveTarget

    fake_cluster.create_namespace("yurt-release")
    monkeypatch.setenv("NOMAD_ADDR", fake_cluster.nomad_addr)
    monkeypatch.setenv("NOMAD_NAMESPACE", "yurt")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", fake_cluster.consul_addr)
    live = LiveTarget(NomadClient(NomadSettings.from_env()), IMAGE, None, timeout=30)
    flows.flow_deploy_scale_restart_destroy(live)


def test_no_command_runs_the_images_cmd(fake_cluster: FakeCluster, target: FakeTarget) -> None:
    target.command = None
    app = flows.new_app(target)
    app.deploy(app.spec(1))
    task = fake_cluster.job(app.name, "yurt")["TaskGroups"][0]["Tasks"][0]
    assert "args" not in task["Config"]
