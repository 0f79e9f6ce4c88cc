"""NomadRuntime against the strict fake cluster (simulated time: 5 s per 20 ms tick)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.runtime.base import DeployFailed, DeploySpec
from controller.runtime.nomad.client import NomadClient, NomadSettings
from controller.runtime.nomad.runtime import (
    DeploymentInProgress,
    NomadRuntime,
    NomadRuntimeSettings,
    ReleaseImage,
)
from tests.fakes import FakeCluster
from tests.nomad.samples import BUILD_ID

APP = "hello"
NS = "yurt"
RELEASE_NS = "yurt-release"


IMAGES = {
    (APP, v): ReleaseImage(
        f"registry.service.consul:5000/{APP}@sha256:{v:02x}{'ab' * 31}", BUILD_ID
    )
    for v in range(1, 6)
}


def spec(
    version: int, formation: dict[str, int] | None = None, release: str | None = None
) -> DeploySpec:
    types = {"web": "python app.py", "worker": "python worker.py"}
    if release:
        types["release"] = release
    return DeploySpec(
        app=APP,
        app_id="app-1",
        version=version,
        slug_path=Path("/nonexistent"),
        process_types=types,
        formation=formation or {"web": 2, "worker": 1},
        env={"SECRET": "never-in-the-job"},
    )


@pytest.fixture
def runtime(fake_cluster: FakeCluster) -> NomadRuntime:
    fake_cluster.create_namespace(RELEASE_NS)  # as the cluster's provisioning does
    client = NomadClient(
        NomadSettings(
            addr=fake_cluster.nomad_addr, consul_addr=fake_cluster.consul_addr, namespace=NS
        )
    )
    settings = NomadRuntimeSettings(
        base_domain="apps.example.com", deploy_timeout=20, release_timeout=20
    )
    return NomadRuntime(client, settings, images=IMAGES, config_version_for=lambda s: 2)


def deploy(runtime: NomadRuntime, s: DeploySpec) -> str:
    out: list[bytes] = []
    runtime.deploy(s, out.append)
    return b"".join(out).decode()


def test_deploy_v1_then_v2(fake_cluster: FakeCluster, runtime: NomadRuntime) -> None:
    out = deploy(runtime, spec(1))
    assert "-----> Registered job hello version 0 (v1)\n" in out
    assert "-----> Waiting for the deployment: " in out and "v1 is serving" in out
    job = fake_cluster.job(APP, NS)
    assert (job["Version"], job["Meta"]["yurt_release"], job["Stable"]) == (0, "v1", True)
    assert "never-in-the-job" not in str(job)
    assert runtime.is_serving("app-1", 1)

    out = deploy(runtime, spec(2))
    assert "Registered job hello version 1 (v2)" in out
    assert "Canaries of web healthy: promoted" in out
    job = fake_cluster.job(APP, NS)
    assert (job["Version"], job["Meta"]["yurt_release"], job["Stable"]) == (1, "v2", True)
    assert runtime.is_serving("app-1", 2) and not runtime.is_serving("app-1", 1)
    tagged = {
        v["Version"]: (v.get("VersionTag") or {}).get("Name") for v in runtime.client.versions(APP)
    }
    assert tagged[0] == "v1" and tagged[1] == "v2"


def test_failed_deploy_explains_and_reports_auto_revert(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    deploy(runtime, spec(1))
    fake_cluster.set_outcome(
        APP,
        "web",
        "fail_start",
        version=1,
        task_events=[
            {"Type": "Terminated", "DisplayMessage": "Exit Code: 3", "Details": {"exit_code": 3}}
        ],
    )
    with pytest.raises(DeployFailed) as failed:
        deploy(runtime, spec(2))
    message = str(failed.value)
    assert message.startswith(
        "web: 0 of 2 canaries became healthy: Task 'web' failed: exit status 3"
    )
    assert "auto-revert rolled back to v1 (job version 0)" in message
    job = fake_cluster.job(APP, NS)
    assert (job["Version"], job["Meta"]["yurt_release"]) == (2, "v1")
    # the old release kept serving through the failed canaries
    views = runtime.processes("app-1")
    assert [(v.type, v.state, v.release) for v in views if v.type == "web"] == [
        ("web", "up", 1),
        ("web", "up", 1),
    ]
    assert not runtime.is_serving("app-1", 2)


def test_unhealthy_first_deploy_has_nothing_to_revert_to(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    fake_cluster.set_outcome(APP, "web", "unhealthy")
    with pytest.raises(DeployFailed) as failed:
        deploy(runtime, spec(1))
    message = str(failed.value)
    assert "web: 0 of 2 allocations became healthy" in message
    assert "health checks did not pass" in message
    assert "no earlier healthy release to roll back to" in message


def test_release_phase_success(fake_cluster: FakeCluster, runtime: NomadRuntime) -> None:
    fake_cluster.set_batch_result(APP, 0, stdout="migrated\n", group="release")
    out = deploy(runtime, spec(1, release="python migrate.py"))
    assert out.index("Release command succeeded") < out.index("Registered job hello")
    # the app's job ID, in the release namespace (Vault's policy is keyed on nomad_job_id)
    release_job = fake_cluster.job(APP, RELEASE_NS)
    assert release_job["Meta"]["yurt_release"] == "v1" and release_job["Type"] == "batch"
    assert fake_cluster.job(APP, NS)["Type"] == "service"


def test_release_phase_failure_stops_the_deploy(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    fake_cluster.set_batch_result(
        APP, 4, stdout="step 1\n", stderr="boom: no table\n", group="release"
    )
    with pytest.raises(DeployFailed) as failed:
        deploy(runtime, spec(1, release="python migrate.py"))
    message = str(failed.value)
    assert message.startswith("the release command failed: exit status 4")
    assert "boom: no table" in message and "step 1" in message
    assert runtime.client.job(APP) is None  # the app job was never registered


def test_processes_and_scale(fake_cluster: FakeCluster, runtime: NomadRuntime) -> None:
    deploy(runtime, spec(1))
    views = runtime.processes("app-1")
    assert sorted((v.type, v.number, v.state, v.release) for v in views) == [
        ("web", 1, "up", 1),
        ("web", 2, "up", 1),
        ("worker", 1, "up", 1),
    ]
    assert all(v.started_at is not None and v.restarts == 0 for v in views)

    runtime.scale(spec(1, {"web": 3, "worker": 0}))
    job = fake_cluster.job(APP, NS)
    assert {g["Name"]: g["Count"] for g in job["TaskGroups"]} == {"web": 3, "worker": 0}

    def settled() -> bool:
        live = [v for v in runtime.processes("app-1") if v.state != "retiring"]
        return sorted((v.type, v.number, v.state) for v in live) == [
            ("web", 1, "up"),
            ("web", 2, "up"),
            ("web", 3, "up"),
        ]

    _eventually(settled)
    assert runtime.is_serving("app-1", 1)


def test_unknown_image_and_unknown_app(runtime: NomadRuntime) -> None:
    with pytest.raises(DeployFailed, match="no image is known for hello v9"):
        deploy(runtime, spec(9))
    with pytest.raises(LookupError):
        runtime.processes("app-unknown")


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_placement_failure_is_reported_at_once(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    fake_cluster.set_outcome(APP, "web", "placement_failure")
    with pytest.raises(DeployFailed, match=r"^v1 could not be placed: web: "):
        deploy(runtime, spec(1))


def test_vault_template_failure_and_own_deadline(fake_cluster: FakeCluster) -> None:
    client = NomadClient(
        NomadSettings(
            addr=fake_cluster.nomad_addr, consul_addr=fake_cluster.consul_addr, namespace=NS
        )
    )
    runtime = NomadRuntime(client, NomadRuntimeSettings(deploy_timeout=0.5), images=IMAGES)
    event = {
        "Type": "Template",
        "DisplayMessage": "Missing: vault.read(secret/data/yurt/apps/hello)",
    }
    fake_cluster.set_outcome(APP, "web", "pending", task_events=[event])
    out: list[bytes] = []
    with pytest.raises(DeployFailed) as failed:
        runtime.deploy(spec(1), out.append)
    assert "Deployment not done in 0.5s: failing it" in b"".join(out).decode()
    message = str(failed.value)
    assert "Task 'web' template: Missing: vault.read(secret/data/yurt/apps/hello)" in message
    assert "Nomad: Deployment marked as failed" in message


def test_discard_a_first_release_that_never_served(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    fake_cluster.set_outcome(APP, "web", "fail_start")
    with pytest.raises(DeployFailed):
        deploy(runtime, spec(1))
    assert not runtime.is_serving("app-1", 1)
    runtime.discard("app-1", 1)
    assert fake_cluster.job(APP, NS)["Stop"] is True


def deploy_that_hangs(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> tuple[threading.Thread, list[BaseException]]:
    """v1 deployed, then v2 deploying in a thread with canaries that never start (its
    deployment runs until the healthy deadline fails it); returns once it runs."""
    deploy(runtime, spec(1))
    fake_cluster.set_outcome(APP, "web", "pending", version=1)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            deploy(runtime, spec(2))
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=second)
    worker.start()
    _eventually(
        lambda: any(
            d["JobVersion"] == 1 and d["Status"] == "running"
            for d in fake_cluster.deployments(APP, NS)
        )
    )
    return worker, errors


def test_scale_during_a_deployment_is_refused(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    worker, errors = deploy_that_hangs(fake_cluster, runtime)
    with pytest.raises(DeploymentInProgress) as refused:
        runtime.scale(spec(2, {"web": 3, "worker": 1}))
    assert refused.value.status == 409
    assert refused.value.message == (
        "a deployment of hello is in progress; try again when it finishes"
    )
    worker.join(timeout=20)
    assert len(errors) == 1 and isinstance(errors[0], DeployFailed)
    assert "auto-revert rolled back to v1" in str(errors[0])
