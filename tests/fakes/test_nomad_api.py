"""The fake Nomad's HTTP API through python-nomad and requests: parse, register strictness,
versions, revert, tags, scale, deregister, ACLs and blocking queries."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import nomad
import pytest
import requests

from tests.fakes import FakeCluster

GOLDEN = Path(__file__).parent / "golden"
SIMPLE = """
job "app" {
  datacenters = ["dc1"]
  meta {
    release = "v1"
  }
  group "web" {
    count = 2
    network {
      port "http" {}
    }
    service {
      name = "app-web"
      port = "http"
      tags = ["urlprefix-app.test/"]
      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "web" {
      driver = "docker"
      config {
        image = "app:1"
      }
    }
  }
}
"""


def parsed(client: Any, hcl: str = SIMPLE) -> dict[str, Any]:
    return client.jobs.parse(hcl)


def post(cluster: FakeCluster, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(cluster.nomad_addr + path, json=body, timeout=10, **kw)


def test_parse_errors_are_400_plain_text(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    with pytest.raises(nomad.api.exceptions.BadRequestNomadException) as err:
        n.jobs.parse('job "x" {\n  bogus = 1\n}\n')
    assert err.value.nomad_resp.text.startswith(
        'Failed to parse job: input.hcl:2,3: Unsupported argument; An argument named "bogus"'
    )
    r = post(manual_cluster, "/v1/jobs/parse", {"JobHCL": ""})
    assert (r.status_code, r.text) == (400, "Job spec is empty")
    r = post(manual_cluster, "/v1/jobs/parse", {"JobHCL": SIMPLE, "HCLv1": True})
    assert r.status_code == 400 and "HCLv1: unknown field" in r.text
    canonical = post(
        manual_cluster, "/v1/jobs/parse", {"JobHCL": SIMPLE, "Canonicalize": True}
    ).json()
    assert (
        canonical["Region"] == "global" and canonical["TaskGroups"][0]["Update"]["MaxParallel"] == 1
    )


def test_register_and_read_back(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    job = parsed(n)
    reply = n.jobs.register_job({"Job": job})
    assert set(reply) >= {"EvalID", "EvalCreateIndex", "JobModifyIndex", "Warnings"}
    got = n.job.get_job("app")
    assert (got["Version"], got["Stable"], got["Namespace"], got["Priority"]) == (
        0,
        False,
        "default",
        50,
    )
    assert got["TaskGroups"][0]["RestartPolicy"]["Attempts"] == 2  # service defaults filled
    assert n.evaluation.get_evaluation(reply["EvalID"])["TriggeredBy"] == "job-register"
    assert [j["ID"] for j in n.jobs.get_jobs(prefix="ap")] == ["app"]
    assert n.jobs.get_jobs(prefix="zz") == []
    # a GET job can be posted back unchanged (no new version)
    again = n.job.register_job("app", {"Job": got})
    assert again["JobModifyIndex"] == reply["JobModifyIndex"] and again["EvalID"]
    assert n.job.get_job("app")["Version"] == 0


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (
            lambda j: j.update({"Datacenter": ["dc1"]}),
            400,
            "Job.Datacenter: unknown field (real Nomad silently ignores it)",
        ),
        (lambda j: j.update({"datacenters": ["dc1"]}), 400, "did you mean 'Datacenters'?"),
        (
            lambda j: j["TaskGroups"][0]["Tasks"][0].update({"KillTimeout": "5s"}),
            400,
            "expected an integer (durations are integer nanoseconds)",
        ),
        (lambda j: j.update({"Meta": {"release": 3}}), 400, "meta/env values must be strings"),
        (
            lambda j: j["TaskGroups"][0].update({"Count": "2"}),
            400,
            "Job.TaskGroups[0].Count: expected an integer",
        ),
        (
            lambda j: j["TaskGroups"][0]["Services"][0].update({"Port": "http"}),
            400,
            "Services[0].Port: unknown field",
        ),
        (
            lambda j: j["TaskGroups"][0]["Tasks"][0].update({"Vault": {"Policies": ["app"]}}),
            400,
            "silently dropped by Nomad >= 1.10",
        ),
        (
            lambda j: j["TaskGroups"][0]["Tasks"][0].update({"Driver": ""}),
            500,
            "Missing task driver",
        ),
        (
            lambda j: j.update({"TaskGroups": []}),
            500,
            "1 error occurred:\n\t* Missing job task groups\n",
        ),
        (
            lambda j: j["TaskGroups"][0]["Services"][0].update({"PortLabel": "nope"}),
            500,
            "port label 'nope' referenced by services",
        ),
    ],
)
def test_register_strictness(
    manual_cluster: FakeCluster, mutate: Any, status: int, message: str
) -> None:
    job = parsed(manual_cluster.nomad_client())
    mutate(job)
    r = post(manual_cluster, "/v1/jobs", {"Job": job})
    assert r.status_code == status, r.text
    assert message in r.text
    assert r.headers["Content-Type"].startswith("text/plain")


def test_register_body_shape_quirks(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    job = parsed(n)
    # python-nomad's register_job(id, job) posts `job` as the whole body: it must be wrapped.
    with pytest.raises(nomad.api.exceptions.BadRequestNomadException) as err:
        n.job.register_job("app", job)
    assert "Job must be specified" in err.value.nomad_resp.text
    r = post(manual_cluster, "/v1/job/other", {"Job": job})
    assert (r.status_code, r.text) == (400, "Job ID does not match name")
    r = requests.post(manual_cluster.nomad_addr + "/v1/jobs", timeout=10)
    assert (r.status_code, r.text) == (400, "Request body is empty")


def test_enforce_index_and_versions(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    job = parsed(n)
    first = n.jobs.register_job({"Job": job, "EnforceIndex": True, "JobModifyIndex": 0})
    r = post(manual_cluster, "/v1/jobs", {"Job": job, "EnforceIndex": True, "JobModifyIndex": 0})
    assert (r.status_code, r.text) == (500, "Enforcing job modify index 0: job already exists")
    job["Meta"]["release"] = "v2"
    r = post(
        manual_cluster,
        "/v1/jobs",
        {"Job": job, "EnforceIndex": True, "JobModifyIndex": first["JobModifyIndex"] + 100},
    )
    assert r.status_code == 500 and "conflicting job modify index" in r.text
    second = n.jobs.register_job(
        {"Job": job, "EnforceIndex": True, "JobModifyIndex": first["JobModifyIndex"]}
    )
    assert second["JobModifyIndex"] > first["JobModifyIndex"]
    versions = n.job.get_versions("app")  # python-nomad returns the response object, not a list
    assert [v["Version"] for v in versions["Versions"]] == [1, 0]
    assert versions["Versions"][0]["Meta"]["release"] == "v2"


def test_version_retention(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    job = parsed(n)
    for i in range(9):
        job["Meta"]["release"] = f"v{i}"
        n.jobs.register_job({"Job": job})
    assert [v["Version"] for v in n.job.get_versions("app")["Versions"]] == [8, 7, 6, 5, 4, 3]


def test_revert_stable_and_tags(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    job = parsed(n)
    n.jobs.register_job({"Job": job})
    job["Meta"]["release"] = "v2"
    n.jobs.register_job({"Job": job})
    with pytest.raises(nomad.api.exceptions.BaseNomadException) as err:
        n.job.revert_job("app", 1)
    assert err.value.nomad_resp.text == "can't revert to current version"
    with pytest.raises(nomad.api.exceptions.BaseNomadException) as err:
        n.job.revert_job("app", 0, enforce_prior_version=5)
    assert err.value.nomad_resp.text == "Current job has version 1; enforcing version 5"
    reply = n.job.revert_job("app", 0, enforce_prior_version=1)
    got = n.job.get_job("app")
    assert (got["Version"], got["Meta"]["release"], got["Stable"], reply["JobModifyIndex"]) == (
        2,
        "v1",
        False,
        got["JobModifyIndex"],
    )
    # The documented TaggedVersion field does not exist: Nomad would revert to version 0.
    r = post(manual_cluster, "/v1/job/app/revert", {"JobID": "app", "TaggedVersion": "release-1"})
    assert r.status_code == 400 and "would revert to version 0" in r.text
    n.job.stable_job("app", 1, True)
    assert (
        next(v for v in n.job.get_versions("app")["Versions"] if v["Version"] == 1)["Stable"]
        is True
    )
    # Tagging without a Version tags version 0 (real Nomad behaviour, modelled).
    assert (
        post(manual_cluster, "/v1/job/app/versions/r2/tag", {"Description": "oops"}).status_code
        == 200
    )
    assert post(manual_cluster, "/v1/job/app/versions/r3/tag", {"Version": 2}).status_code == 200
    tags = {
        v["Version"]: (v["VersionTag"] or {}).get("Name")
        for v in n.job.get_versions("app")["Versions"]
    }
    assert tags == {0: "r2", 1: None, 2: "r3"}
    assert (
        requests.delete(
            manual_cluster.nomad_addr + "/v1/job/app/versions/r2/tag", timeout=10
        ).status_code
        == 200
    )


def test_scale(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    n.jobs.register_job({"Job": parsed(n)})
    r = post(manual_cluster, "/v1/job/app/scale", {"Count": 3, "Target": {"Group": "web"}})
    assert (r.status_code, r.text) == (400, "job scaling blocked due to active deployment")
    manual_cluster.settle()
    r = post(manual_cluster, "/v1/job/app/scale", {"Count": 3, "Target": {"Group": "nope"}})
    assert r.status_code == 400 and "does not exist" in r.text
    r = post(
        manual_cluster,
        "/v1/job/app/scale",
        {"Count": 3, "Target": {"Group": "web", "Job": "other"}},
    )
    assert (r.status_code, r.text) == (400, "job ID in payload did not match URL")
    r = post(
        manual_cluster,
        "/v1/job/app/scale",
        {"Count": 3, "Target": {"Group": "web"}, "Message": "more"},
    )
    assert r.status_code == 200 and r.json()["EvalID"]
    manual_cluster.settle()
    status = requests.get(manual_cluster.nomad_addr + "/v1/job/app/scale", timeout=10).json()
    assert status["TaskGroups"]["web"] | {"Events": None} == {
        "Desired": 3,
        "Placed": 3,
        "Running": 3,
        "Healthy": 3,
        "Unhealthy": 0,
        "Events": None,
    }
    assert n.job.get_job("app")["Version"] == 1


def test_deregister_and_purge(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    n.jobs.register_job({"Job": parsed(n)})
    manual_cluster.settle()
    assert len(manual_cluster.catalog("app-web")) == 2
    reply = n.job.deregister_job("app")
    assert set(reply) >= {"EvalID", "JobModifyIndex"}
    manual_cluster.advance()
    got = n.job.get_job("app")
    assert (got["Stop"], got["Version"], got["Status"]) == (True, 1, "dead")
    assert manual_cluster.catalog("app-web") == []
    assert all(a["DesiredStatus"] == "stop" for a in n.job.get_allocations("app"))
    n.job.deregister_job("app", purge=True)
    with pytest.raises(nomad.api.exceptions.URLNotFoundNomadException) as err:
        n.job.get_job("app")
    assert err.value.nomad_resp.text == "job not found"
    n.jobs.register_job({"Job": parsed(n)})
    assert n.job.get_job("app")["Version"] == 0  # history is gone after a purge
    assert (
        len(n.job.get_allocations("app")) == 2
    )  # allocations of the purged incarnation are hidden
    assert (
        len(
            requests.get(
                manual_cluster.nomad_addr + "/v1/job/app/allocations?all=true", timeout=10
            ).json()
        )
        == 4
    )


def test_unknown_query_parameter_and_methods(manual_cluster: FakeCluster) -> None:
    r = requests.delete(manual_cluster.nomad_addr + "/v1/job/app?purged=true", timeout=10)
    assert r.status_code == 400 and "purged" in r.text
    r = requests.delete(manual_cluster.nomad_addr + "/v1/job/app?purge=yes", timeout=10)
    assert r.status_code == 400 and "as a bool" in r.text
    r = requests.get(manual_cluster.nomad_addr + "/v1/job/app/deployment", timeout=10)
    assert (r.status_code, r.text) == (200, "null")


def test_acl_tokens() -> None:
    with FakeCluster(tick=None, nomad_token="s3cret") as cluster:
        r = requests.get(cluster.nomad_addr + "/v1/jobs", timeout=10)
        assert (r.status_code, r.text) == (403, "Permission denied")
        r = requests.get(
            cluster.nomad_addr + "/v1/jobs", headers={"X-Nomad-Token": "wrong"}, timeout=10
        )
        assert (r.status_code, r.text) == (403, "ACL token not found")
        r = requests.get(
            cluster.nomad_addr + "/v1/jobs", headers={"Authorization": "Bearer s3cret"}, timeout=10
        )
        assert r.status_code == 200
        assert cluster.nomad_client().jobs.get_jobs() == []
        with pytest.raises(nomad.api.exceptions.URLNotAuthorizedNomadException):
            nomad.Nomad(address=cluster.nomad_addr, token="nope").jobs.get_jobs()


def test_blocking_query_on_job(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    n.jobs.register_job({"Job": parsed(n)})
    url = manual_cluster.nomad_addr + "/v1/job/app"
    first = requests.get(url, timeout=10)
    index = int(first.headers["X-Nomad-Index"])
    assert first.headers["X-Nomad-KnownLeader"] == "true"
    start = time.monotonic()
    r = requests.get(url, params={"index": index, "wait": "300ms"}, timeout=10)
    assert (
        time.monotonic() - start >= 0.25 and int(r.headers["X-Nomad-Index"]) == index
    )  # timed out, unchanged
    result: dict[str, Any] = {}

    def watch() -> None:
        result["resp"] = requests.get(url, params={"index": index, "wait": "5s"}, timeout=10)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.2)
    job = copy.deepcopy(first.json())
    job["Meta"]["release"] = "v9"
    n.jobs.register_job({"Job": job})
    watcher.join(timeout=10)
    assert int(result["resp"].headers["X-Nomad-Index"]) > index
    assert result["resp"].json()["Meta"]["release"] == "v9"


def test_blocking_query_on_allocations_follows_health(fake_cluster: FakeCluster) -> None:
    cluster = fake_cluster  # advances simulated time on its own
    cluster.paused = True
    n = cluster.nomad_client()
    n.jobs.register_job({"Job": parsed(n)})
    url = cluster.nomad_addr + "/v1/job/app/allocations"
    index = int(requests.get(url, timeout=10).headers["X-Nomad-Index"])
    cluster.paused = False
    healthy = 0
    deadline = time.monotonic() + 10
    while healthy < 2 and time.monotonic() < deadline:
        r = requests.get(url, params={"index": index, "wait": "2s"}, timeout=10)
        index = int(r.headers["X-Nomad-Index"])
        healthy = sum(1 for a in r.json() if (a["DeploymentStatus"] or {}).get("Healthy"))
    assert healthy == 2
