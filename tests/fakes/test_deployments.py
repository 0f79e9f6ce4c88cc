"""Deployments, canaries, health, auto-revert and the Consul catalog, driven by test outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakes import FakeCluster

GOLDEN = Path(__file__).parent / "golden"
JOB = "yurt-myapp"


def release(cluster: FakeCluster, name: str, **update: Any) -> dict[str, Any]:
    n = cluster.nomad_client()
    job = n.jobs.parse((GOLDEN / "web.nomad.hcl").read_text())
    job["Meta"]["yurt_release"] = name
    job["Update"].update(update)
    return n.jobs.register_job({"Job": job})


def deployment(cluster: FakeCluster, version: int) -> dict[str, Any]:
    return next(
        d for d in cluster.nomad_client().job.get_deployments(JOB) if d["JobVersion"] == version
    )


def live(cluster: FakeCluster) -> list[dict[str, Any]]:
    return [
        a for a in cluster.nomad_client().job.get_allocations(JOB) if a["DesiredStatus"] == "run"
    ]


def test_first_version_has_no_canaries_and_becomes_stable(manual_cluster: FakeCluster) -> None:
    reply = release(manual_cluster, "v1")
    dep = manual_cluster.nomad_client().job.get_deployment(JOB)
    assert dep["JobSpecModifyIndex"] == reply["JobModifyIndex"]
    assert (
        dep["TaskGroups"]["web"]["DesiredCanaries"] == 0
        and dep["TaskGroups"]["web"]["DesiredTotal"] == 2
    )
    assert (
        manual_cluster.nomad_client().evaluation.get_evaluation(reply["EvalID"])["DeploymentID"]
        == dep["ID"]
    )
    manual_cluster.advance()
    assert {a["ClientStatus"] for a in live(manual_cluster)} == {"running"}
    assert {
        c["Checks"][1]["Status"]
        for c in manual_cluster.consul_client().health.service("myapp-web")[1]
    } == {"passing"}
    manual_cluster.settle()
    dep = deployment(manual_cluster, 0)
    assert (dep["Status"], dep["StatusDescription"]) == (
        "successful",
        "Deployment completed successfully",
    )
    assert dep["TaskGroups"]["web"]["HealthyAllocs"] == 2
    assert manual_cluster.job(JOB)["Stable"] is True


def test_canary_auto_promote_and_catalog_tags(manual_cluster: FakeCluster) -> None:
    release(manual_cluster, "v1")
    manual_cluster.settle()
    release(manual_cluster, "v2")
    dep = deployment(manual_cluster, 1)
    assert dep["StatusDescription"] == "Deployment is running pending automatic promotion"
    manual_cluster.advance()
    tags = sorted(tuple(s["ServiceTags"]) for s in manual_cluster.catalog("myapp-web"))
    assert tags.count(("canary",)) == 1 and len(tags) == 3  # the canary joins with its canary_tags
    versions = sorted(a["JobVersion"] for a in live(manual_cluster))
    assert versions == [0, 0, 1]  # old version keeps serving while the canary is checked
    manual_cluster.settle()
    dep = deployment(manual_cluster, 1)
    assert dep["Status"] == "successful" and dep["TaskGroups"]["web"]["Promoted"] is True
    assert sorted(a["JobVersion"] for a in live(manual_cluster)) == [1, 1]
    assert all("canary" not in s["ServiceTags"] for s in manual_cluster.catalog("myapp-web"))
    assert len(manual_cluster.catalog("myapp-web")) == 2


def test_manual_promotion(manual_cluster: FakeCluster) -> None:
    release(manual_cluster, "v1")
    manual_cluster.settle()
    release(manual_cluster, "v2", AutoPromote=False)
    manual_cluster.settle()
    dep = deployment(manual_cluster, 1)
    assert (dep["Status"], dep["StatusDescription"]) == (
        "running",
        "Deployment is running but requires manual promotion",
    )
    n = manual_cluster.nomad_client()
    r = requests.post(
        f"{manual_cluster.nomad_addr}/v1/deployment/promote/{dep['ID']}",
        json={"All": True},
        timeout=10,
    )
    assert (r.status_code, r.text) == (400, "Deployment ID must be specified")
    n.deployment.promote_deployment_all(dep["ID"])
    manual_cluster.settle()
    assert deployment(manual_cluster, 1)["Status"] == "successful"


def test_unhealthy_release_fails_at_progress_deadline_and_reverts_to_stable(
    manual_cluster: FakeCluster,
) -> None:
    release(manual_cluster, "v1")
    manual_cluster.settle()
    manual_cluster.set_outcome(JOB, "web", "unhealthy", version=1)
    release(manual_cluster, "v2")
    manual_cluster.advance_time(300)
    assert deployment(manual_cluster, 1)["Status"] == "running"  # replaced, not failed yet
    manual_cluster.settle()
    dep = deployment(manual_cluster, 1)
    assert (dep["Status"], dep["StatusDescription"]) == (
        "failed",
        "Failed due to progress deadline - rolling back to job version 0",
    )
    job = manual_cluster.job(JOB)
    assert (job["Version"], job["Meta"]["yurt_release"], job["Stable"]) == (2, "v1", True)
    assert deployment(manual_cluster, 2)["Status"] == "successful"
    assert sorted(a["JobVersion"] for a in live(manual_cluster)) == [2, 2]


def test_failure_without_progress_deadline_is_immediate_and_needs_a_stable_version(
    manual_cluster: FakeCluster,
) -> None:
    manual_cluster.set_outcome(
        JOB,
        "web",
        "fail_start",
        task_events=[{"Type": "Driver Failure", "DisplayMessage": "image not found"}],
    )
    release(manual_cluster, "v1", ProgressDeadline=0)
    manual_cluster.advance(2)
    dep = deployment(manual_cluster, 0)
    assert (dep["Status"], dep["StatusDescription"]) == (
        "failed",
        "Failed due to unhealthy allocations - no stable job version to auto revert to",
    )
    failed = manual_cluster.nomad_client().allocation.get_allocation(live(manual_cluster)[0]["ID"])
    assert failed["ClientStatus"] == "failed" and failed["DeploymentStatus"]["Healthy"] is False
    events = [e["Type"] for e in failed["TaskStates"]["web"]["Events"]]
    assert (
        events[:3] == ["Received", "Task Setup", "Driver Failure"]
        and events[-1] == "Not Restarting"
    )
    assert events.count("Driver Failure") == 3  # restart attempts = 2


def test_pending_template_never_gets_healthy(manual_cluster: FakeCluster) -> None:
    manual_cluster.set_outcome(
        JOB,
        "web",
        "pending",
        task_events=[
            {
                "Type": "Template",
                "DisplayMessage": "Missing: vault.read(secret/data/yurt/apps/myapp)",
            }
        ],
    )
    release(manual_cluster, "v1")
    manual_cluster.advance(2)
    alloc = live(manual_cluster)[0]
    assert alloc["ClientStatus"] == "pending"
    assert alloc["TaskStates"]["web"]["Events"][-1]["DisplayMessage"].startswith(
        "Missing: vault.read"
    )
    assert manual_cluster.catalog("myapp-web") == []
    manual_cluster.advance_time(180)  # healthy_deadline of the golden job
    assert all(a["DeploymentStatus"]["Healthy"] is False for a in live(manual_cluster))
    r = requests.get(
        f"{manual_cluster.nomad_addr}/v1/client/fs/logs/{alloc['ID']}",
        params={"task": "web", "type": "stdout"},
        timeout=10,
    )
    assert (r.status_code, r.text) == (404, 'task "web" not started yet. No logs available')


def test_placement_failure_blocks_without_deadline(manual_cluster: FakeCluster) -> None:
    manual_cluster.set_outcome(JOB, "web", "placement_failure")
    reply = release(manual_cluster, "v1")
    n = manual_cluster.nomad_client()
    ev = n.evaluation.get_evaluation(reply["EvalID"])
    assert ev["FailedTGAllocs"]["web"]["DimensionExhausted"] == {"memory": 1} and ev["BlockedEval"]
    assert n.evaluation.get_evaluation(ev["BlockedEval"])["Status"] == "blocked"
    manual_cluster.advance_time(3600)
    assert n.job.get_deployment(JOB)["Status"] == "running"  # no placement, no progress deadline
    assert n.job.get_job(JOB)["Status"] == "pending"
    assert n.job.get_allocations(JOB) == []


def test_fail_endpoint_rolls_back(manual_cluster: FakeCluster) -> None:
    release(manual_cluster, "v1")
    manual_cluster.settle()
    release(manual_cluster, "v2", AutoPromote=False)
    manual_cluster.advance(3)
    dep = deployment(manual_cluster, 1)
    reply = manual_cluster.nomad_client().deployment.fail_deployment(dep["ID"])
    assert reply["RevertedJobVersion"] == 0
    dep = deployment(manual_cluster, 1)
    assert dep["StatusDescription"] == "Deployment marked as failed - rolling back to job version 0"
    manual_cluster.settle()
    assert manual_cluster.job(JOB)["Version"] == 2
    assert sorted(a["JobVersion"] for a in live(manual_cluster)) == [2, 2]
    r = requests.post(f"{manual_cluster.nomad_addr}/v1/deployment/fail/{dep['ID']}", timeout=10)
    assert (r.status_code, r.text) == (500, "can't fail terminal deployment")


def test_rolling_update_without_canaries(manual_cluster: FakeCluster) -> None:
    release(manual_cluster, "v1", Canary=0, AutoPromote=False)
    manual_cluster.settle()
    release(manual_cluster, "v2", Canary=0, AutoPromote=False)
    assert sorted(a["JobVersion"] for a in live(manual_cluster)) == [0, 1]  # max_parallel = 1
    manual_cluster.settle()
    assert sorted(a["JobVersion"] for a in live(manual_cluster)) == [1, 1]
    assert deployment(manual_cluster, 1)["Status"] == "successful"


@pytest.mark.parametrize("kind", ["healthy"])
def test_in_place_update_for_tag_only_change(manual_cluster: FakeCluster, kind: str) -> None:
    n = manual_cluster.nomad_client()
    job = n.jobs.parse((GOLDEN / "web.nomad.hcl").read_text())
    n.jobs.register_job({"Job": job})
    manual_cluster.settle()
    ids = {a["ID"] for a in live(manual_cluster)}
    job["TaskGroups"][0]["Services"][0]["Tags"].append("extra")
    n.jobs.register_job({"Job": job})
    manual_cluster.settle()
    assert {a["ID"] for a in live(manual_cluster)} == ids  # same allocations, new version
    assert {a["JobVersion"] for a in live(manual_cluster)} == {1}
    assert all("extra" in s["ServiceTags"] for s in manual_cluster.catalog("myapp-web"))
    assert kind == "healthy"


def test_newer_version_cancels_running_deployment_and_its_canaries(
    manual_cluster: FakeCluster,
) -> None:
    release(manual_cluster, "v1")
    manual_cluster.settle()
    release(manual_cluster, "v2", AutoPromote=False)
    manual_cluster.advance(3)
    canary = next(a for a in live(manual_cluster) if a["JobVersion"] == 1)
    release(manual_cluster, "v3", AutoPromote=False)
    dep = deployment(manual_cluster, 1)
    assert (dep["Status"], dep["StatusDescription"]) == (
        "cancelled",
        "Cancelled due to newer version of job",
    )
    stopped = manual_cluster.nomad_client().allocation.get_allocation(canary["ID"])
    assert stopped["DesiredStatus"] == "stop"
    assert deployment(manual_cluster, 2)["TaskGroups"]["web"]["DesiredCanaries"] == 1
