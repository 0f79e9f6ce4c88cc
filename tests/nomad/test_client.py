"""The Nomad and Consul clients against the strict fake cluster, over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from controller.runtime.nomad.client import (
    DispatchResult,
    NomadClient,
    NomadConflict,
    NomadError,
    NomadRejected,
    NomadSettings,
    NomadTimeout,
    RegisterResult,
    nomad_error,
)
from controller.runtime.nomad.consul import ConsulClient, ConsulError
from controller.runtime.nomad.jobspec import render_app_job, render_build_job
from tests.fakes import FakeCluster
from tests.nomad.samples import BUILD_ID, build_job, typical_app

APP = "shop"  # typical_app(): job "shop" in namespace "yurt", service "shop-web"
BUILD_META = {
    "app": "shop",
    "build_id": BUILD_ID,
    "commit": "1a2b3c4",
    "image": f"registry.service.consul:5000/shop:{BUILD_ID}",
    "build_token": "per-build-token",
}
TOKEN = "9a1c0f3e-acl-secret"


def settings_for(cluster: FakeCluster, **changes: Any) -> NomadSettings:
    values: dict[str, Any] = {
        "addr": cluster.nomad_addr,
        "consul_addr": cluster.consul_addr,
        "namespace": "yurt",
    }
    values.update(changes)
    return NomadSettings(**values)


def client_for(
    cluster: FakeCluster, **changes: Any
) -> tuple[NomadClient, list[requests.PreparedRequest]]:
    """A client plus the requests it sent (python-nomad's and its own share the session)."""
    sent: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda resp, *args, **kwargs: sent.append(resp.request))
    return NomadClient(settings_for(cluster, **changes), session=session), sent


def release(client: NomadClient, number: int, **update: Any) -> RegisterResult:
    job = client.parse(render_app_job(typical_app(release=number)))
    for group in job["TaskGroups"]:
        if group["Name"] == "web":
            group["Update"].update(update)
    return client.register(job)


def deployment_for(client: NomadClient, result: RegisterResult) -> dict[str, Any]:
    dep = client.deployment(APP)
    assert dep is not None and dep["JobSpecModifyIndex"] == result.job_modify_index
    return dep


def query(req: requests.PreparedRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(req.url or "").query)


def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- settings ------------------------------------------------------------------------------------------


def test_settings_from_env() -> None:
    assert NomadSettings.from_env({}) == NomadSettings()
    settings = NomadSettings.from_env(
        {
            "NOMAD_ADDR": "https://nomad.example:4646/",
            "NOMAD_TOKEN": TOKEN,
            "NOMAD_NAMESPACE": "yurt",
            "NOMAD_REGION": "eu",
            "NOMAD_CACERT": "/etc/nomad/ca.pem",
            "CONSUL_HTTP_ADDR": "10.0.0.5:8501",
            "CONSUL_HTTP_SSL": "true",
            "CONSUL_HTTP_TOKEN": "consul-secret",
        }
    )
    assert (settings.addr, settings.namespace, settings.region) == (
        "https://nomad.example:4646",
        "yurt",
        "eu",
    )
    assert settings.tls_verify == "/etc/nomad/ca.pem"
    assert settings.consul_addr == "https://10.0.0.5:8501"
    assert TOKEN not in repr(settings) and "consul-secret" not in repr(settings)
    skip = NomadSettings.from_env({"NOMAD_SKIP_VERIFY": "1", "NOMAD_CACERT": "/ca.pem"})
    assert skip.tls_verify is False
    with pytest.raises(ValueError, match="NOMAD_ADDR must look like"):
        NomadSettings.from_env({"NOMAD_ADDR": "nomad.example:4646"})


# -- jobs ------------------------------------------------------------------------------------------------


def test_register_versions_and_enforce_index(manual_cluster: FakeCluster) -> None:
    client, sent = client_for(manual_cluster)
    assert client.job(APP) is None and client.versions(APP) == []
    hcl = render_app_job(typical_app())
    job = client.parse(hcl)
    assert (job["ID"], job["Namespace"]) == (APP, "yurt")
    first = client.register(job, enforce_index=0, submission=hcl)  # create only
    assert first.eval_id and first.job_modify_index > 0
    register_body = json.loads(sent[-1].body or b"{}")
    assert set(register_body) == {"Job", "EnforceIndex", "JobModifyIndex", "Submission"}
    assert query(sent[-1])["namespace"] == ["yurt"]

    with pytest.raises(NomadConflict) as exists:
        client.register(job, enforce_index=0)
    assert exists.value.status == 409 and "job already exists" in exists.value.message

    v8 = client.parse(render_app_job(typical_app(release=8)))
    second = client.register(v8, enforce_index=first.job_modify_index)
    assert second.job_modify_index > first.job_modify_index
    v9 = client.parse(render_app_job(typical_app(release=9)))
    with pytest.raises(NomadConflict, match="conflicting job modify index"):
        client.register(v9, enforce_index=first.job_modify_index)  # someone deployed meanwhile

    versions = client.versions(APP)
    assert [(v["Version"], v["Meta"]["yurt_release"]) for v in versions] == [(1, "v8"), (0, "v7")]
    current = client.job(APP)
    assert current is not None and current["JobModifyIndex"] == second.job_modify_index
    # An unchanged spec makes no new version (reference §1.2).
    assert client.register(v8).job_modify_index == second.job_modify_index
    assert len(client.versions(APP)) == 2


def test_register_refuses_a_job_of_another_namespace(manual_cluster: FakeCluster) -> None:
    """?namespace= overrides the job's own namespace (§1.0): it would land in the wrong one."""
    client, sent = client_for(manual_cluster, namespace="default")
    job = client.parse(render_app_job(typical_app()))
    count = len(sent)
    with pytest.raises(NomadRejected, match="namespace is 'yurt' but this client uses 'default'"):
        client.register(job)
    assert len(sent) == count


def test_dispatch_is_idempotent_with_the_token_in_the_query_string(
    manual_cluster: FakeCluster,
) -> None:
    client, sent = client_for(manual_cluster, namespace="default")
    parent = client.register(client.parse(render_build_job(build_job())))
    assert parent.eval_id is None  # parameterized parents get no evaluation

    first = client.dispatch("yurt-build", BUILD_META, idempotency_token="1a2b3c4")
    request = sent[-1]
    assert first.eval_id and first.dispatched_job_id.startswith("yurt-build/dispatch-")
    assert query(request)["idempotency_token"] == ["1a2b3c4"]
    assert json.loads(request.body or b"{}") == {"Meta": BUILD_META}  # not in the body

    again = client.dispatch("yurt-build", BUILD_META, idempotency_token="1a2b3c4")
    assert again == DispatchResult(first.dispatched_job_id, None)
    other = client.dispatch("yurt-build", BUILD_META, idempotency_token="5d6e7f8")
    assert other.dispatched_job_id != first.dispatched_job_id
    assert len(manual_cluster.children("yurt-build")) == 2

    child = client.job(first.dispatched_job_id)  # an ID with "/" in it
    assert child is not None and child["ParentID"] == "yurt-build"
    assert child["DispatchIdempotencyToken"] == "1a2b3c4"
    assert child["Meta"]["commit"] == "1a2b3c4"


def test_dispatch_errors_carry_nomads_message(manual_cluster: FakeCluster) -> None:
    client, _ = client_for(manual_cluster, namespace="default")
    client.register(client.parse(render_build_job(build_job())))
    with pytest.raises(NomadRejected) as forbidden:
        client.dispatch("yurt-build", BUILD_META, payload=b"source")
    err = forbidden.value
    assert (err.status, err.id, err.nomad_status) == (422, "nomad_rejected", 500)
    assert err.message == (
        "Nomad dispatch of job 'yurt-build' failed: 500 "
        "Payload provided but forbidden by parameterized job"
    )
    with pytest.raises(NomadRejected, match=r"did not provide required meta keys: \[build_id"):
        client.dispatch("yurt-build", {"app": "shop"})


# -- deployments ----------------------------------------------------------------------------------------


def test_watch_deployment_to_success_with_blocking_queries(manual_cluster: FakeCluster) -> None:
    client, sent = client_for(manual_cluster)
    dep = deployment_for(client, release(client, 7))
    path = f"/v1/deployment/{dep['ID']}"
    with ThreadPoolExecutor(1) as pool:
        watch = pool.submit(client.watch_deployment, dep["ID"], timeout=20)
        time.sleep(0.3)  # nothing changes while the test does not advance the cluster
        assert not watch.done()
        assert len([r for r in sent if path in (r.url or "")]) == 1  # one answer, no polling
        manual_cluster.settle()
        done = watch.result(timeout=10)
    assert (done["Status"], done["StatusDescription"]) == (
        "successful",
        "Deployment completed successfully",
    )
    queries = [query(r) for r in sent if path in (r.url or "")]
    assert "index" not in queries[0]
    assert all(int(q["index"][0]) > 0 and q["wait"][0].endswith("ms") for q in queries[1:])

    running = client.watch_allocations(
        APP, lambda allocs: all(a["ClientStatus"] == "running" for a in allocs), timeout=5
    )
    assert sorted(a["TaskGroup"] for a in running) == ["web", "web", "worker"]


def test_watch_deployment_to_failure_reports_the_auto_revert(fake_cluster: FakeCluster) -> None:
    client, _ = client_for(fake_cluster)
    first = deployment_for(client, release(client, 7))
    assert client.watch_deployment(first["ID"], timeout=20)["Status"] == "successful"
    fake_cluster.set_outcome(APP, "web", "unhealthy", version=1)
    second = deployment_for(client, release(client, 8))
    failed = client.watch_deployment(second["ID"], timeout=20)
    assert (failed["Status"], failed["StatusDescription"]) == (
        "failed",
        "Failed due to progress deadline - rolling back to job version 0",
    )
    current = client.job(APP)
    assert current is not None and current["Version"] == 2
    assert current["Meta"]["yurt_release"] == "v7"


def test_watch_deployment_times_out(manual_cluster: FakeCluster) -> None:
    client, sent = client_for(manual_cluster)
    dep = deployment_for(client, release(client, 7))
    started = time.monotonic()
    with pytest.raises(NomadTimeout) as timeout:
        client.watch_deployment(dep["ID"], timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 3
    err = timeout.value
    assert (err.status, err.id) == (504, "nomad_timeout")
    assert err.last["Status"] == "running"
    assert "not done within 0.5s (status running: Deployment is running)" in err.message
    assert int(query(sent[-1])["wait"][0].removesuffix("ms")) <= 500


def test_manual_promotion_and_scale_during_a_deployment(fake_cluster: FakeCluster) -> None:
    client, _ = client_for(fake_cluster)
    client.watch_deployment(deployment_for(client, release(client, 7))["ID"], timeout=20)
    dep = deployment_for(client, release(client, 8, AutoPromote=False))
    waiting = client.watch_deployment(
        dep["ID"],
        lambda d: d["TaskGroups"]["web"]["HealthyAllocs"] >= 2,
        timeout=20,
    )
    assert waiting["StatusDescription"] == "Deployment is running but requires manual promotion"
    with pytest.raises(NomadConflict) as blocked:
        client.scale(APP, "worker", 2, "ps:scale worker=2")
    assert blocked.value.status == 409 and "blocked due to active deployment" in str(blocked.value)

    client.promote(dep["ID"])
    assert client.watch_deployment(dep["ID"], timeout=20)["Status"] == "successful"
    scaled = client.scale(APP, "worker", 2, "ps:scale worker=2")
    assert scaled.job_modify_index > 0
    job = client.job(APP)
    assert job is not None
    assert {g["Name"]: g["Count"] for g in job["TaskGroups"]} == {"web": 2, "worker": 2}


def test_revert_tag_and_stop(manual_cluster: FakeCluster) -> None:
    client, _ = client_for(manual_cluster)
    release(client, 7)
    manual_cluster.settle()
    release(client, 8)
    manual_cluster.settle()
    with pytest.raises(NomadConflict, match="Current job has version 1; enforcing version 0"):
        client.revert(APP, 0, enforce_prior_version=0)
    reverted = client.revert(APP, 0, enforce_prior_version=1)
    assert reverted.eval_id
    job = client.job(APP)
    assert job is not None and (job["Version"], job["Meta"]["yurt_release"]) == (2, "v7")

    client.tag_version(APP, 1, "v8", "Deploy 1a2b3c4")
    tags = {v["Version"]: (v["VersionTag"] or {}).get("Name") for v in client.versions(APP)}
    assert tags == {0: None, 1: "v8", 2: None}

    assert client.stop(APP, purge=True).eval_id
    assert client.job(APP) is None


# -- logs ------------------------------------------------------------------------------------------------

BIG = "".join(f"line {i:05d} {'x' * 80}\n" for i in range(1200))  # ~107 KB: two frames


def test_follow_build_logs_from_before_start_until_the_alloc_completes() -> None:
    with FakeCluster(tick=None, log_heartbeat=0.1) as cluster:
        client, _ = client_for(cluster, namespace="default")
        client.register(client.parse(render_build_job(build_job())))
        cluster.set_batch_result("yurt-build/", stdout=BIG, hold=True)
        child = client.dispatch("yurt-build", BUILD_META).dispatched_job_id
        (alloc,) = client.allocations(child)
        chunks: list[bytes] = []

        def follow() -> None:
            logs = client.alloc_logs(
                alloc["ID"], "build", follow=True, timeout=20, poll_interval=0.05
            )
            chunks.extend(logs)

        reader = threading.Thread(target=follow)
        reader.start()
        time.sleep(0.2)  # the task has not started: the reader waits for it
        assert reader.is_alive() and not chunks
        cluster.advance()  # starts the task, which prints BIG
        wait_for(lambda: sum(map(len, chunks)) == len(BIG))
        cluster.append_log(alloc["ID"], "build", "-----> Pushed\n")
        wait_for(lambda: sum(map(len, chunks)) == len(BIG) + 14)
        time.sleep(0.2)
        assert reader.is_alive()  # still following a running task
        cluster.release("yurt-build/")
        cluster.advance()
        reader.join(timeout=10)
        assert not reader.is_alive()
        assert client.allocation(alloc["ID"])["ClientStatus"] == "complete"
    assert b"".join(chunks) == BIG.encode() + b"-----> Pushed\n"
    # A 64 KiB frame is about 87 KB of JSON; the client reads 16 KiB at a time.
    assert len(chunks[0]) == 64 * 1024


def test_logs_of_a_failed_build(manual_cluster: FakeCluster) -> None:
    client, _ = client_for(manual_cluster, namespace="default")
    client.register(client.parse(render_build_job(build_job())))
    manual_cluster.set_batch_result(
        "yurt-build/", exit_code=3, stdout="-----> Building\n", stderr=" !     boom\n"
    )
    child = client.dispatch("yurt-build", BUILD_META).dispatched_job_id
    manual_cluster.settle(quiet_seconds=30)
    (alloc,) = client.allocations(child)
    assert alloc["ClientStatus"] == "failed"
    events = alloc["TaskStates"]["build"]["Events"]
    assert [e["Details"]["exit_code"] for e in events if e["Type"] == "Terminated"] == ["3"]
    assert b"".join(client.alloc_logs(alloc["ID"], "build")) == b"-----> Building\n"
    assert b"".join(client.alloc_logs(alloc["ID"], "build", offset=7)) == b"Building\n"
    started = time.monotonic()
    stderr = client.alloc_logs(alloc["ID"], "build", "stderr", follow=True, timeout=5)
    assert b"".join(stderr) == b" !     boom\n"  # following a dead task ends at once
    assert time.monotonic() - started < 2
    with pytest.raises(NomadRejected, match='unknown task name "nope"'):
        list(client.alloc_logs(alloc["ID"], "nope"))


# -- errors ------------------------------------------------------------------------------------------------


def test_bad_jobs_are_rejected_with_nomads_message(manual_cluster: FakeCluster) -> None:
    client, _ = client_for(manual_cluster)
    with pytest.raises(NomadRejected) as syntax:
        client.parse('job "x" {\n  type = \n}\n')
    assert syntax.value.nomad_status == 400
    assert syntax.value.message.startswith(
        "Nomad parse of the job spec failed: 400 Failed to parse job"
    )

    job = client.parse(render_app_job(typical_app()))
    job["TaskGroups"][0]["Count"] = -1
    with pytest.raises(NomadRejected) as invalid:
        client.register(job)
    assert invalid.value.nomad_status == 500  # Nomad's validation errors are 500s (§1.0)
    assert "Task group web validation failed: Task group count can't be negative" in str(
        invalid.value
    )
    job["TaskGroups"][0]["Count"] = 1
    job["Metas"] = {}
    with pytest.raises(NomadRejected, match="Metas: unknown field"):
        client.register(job)


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (
            500,
            "Enforcing job modify index 5: job exists with conflicting job modify index: 9",
            NomadConflict,
        ),
        (500, "Current job has version 3; enforcing version 2", NomadConflict),
        (400, "job scaling blocked due to active deployment", NomadConflict),
        (500, 'Task group "web" has 1/2 healthy allocations', NomadConflict),
        (500, "1 error occurred:\n\t* Task group web validation failed\n\n", NomadRejected),
        (500, "Dispatch did not provide required meta keys: [app]", NomadRejected),
        (404, "job not found", NomadRejected),
        (400, "Job ID does not match name", NomadRejected),
        (403, "Permission denied", NomadError),
        (500, "No path to region", NomadError),
        (503, "", NomadError),
    ],
)
def test_error_mapping(status: int, text: str, kind: type[NomadError]) -> None:
    err = nomad_error("register of job 'shop'", status, text)
    assert type(err) is kind and err.nomad_status == status
    assert err.message.startswith(f"Nomad register of job 'shop' failed: {status} ")
    assert "\n" not in err.message and err.message.endswith(
        " ".join(text.split()) or "(no message)"
    )


def test_nomad_down_is_a_502() -> None:
    client = NomadClient(NomadSettings(addr=f"http://127.0.0.1:{closed_port()}", timeout=2))
    calls: list[Callable[[], object]] = [
        lambda: client.job(APP),  # python-nomad
        lambda: client.dispatch("yurt-build", BUILD_META, idempotency_token="x"),  # requests
        lambda: client.watch_deployment("0" * 36, timeout=1),
    ]
    for call in calls:
        with pytest.raises(NomadError) as down:
            call()
        err = down.value
        assert type(err) is NomadError and (err.status, err.id) == (502, "nomad_error")
        assert err.nomad_status is None and "cannot reach Nomad at http://127.0.0.1:" in err.message


def test_acl_token_missing_or_wrong() -> None:
    with FakeCluster(nomad_token=TOKEN, tick=None) as cluster:
        anonymous, _ = client_for(cluster)
        for call in (lambda: anonymous.job(APP), lambda: anonymous.scale(APP, "web", 1)):
            with pytest.raises(NomadError) as denied:
                call()
            assert type(denied.value) is NomadError and denied.value.status == 502
            assert denied.value.nomad_status == 403
            assert "failed: 403 Permission denied" in denied.value.message
        wrong, _ = client_for(cluster, token="not-the-real-token")
        with pytest.raises(NomadError, match="403 ACL token not found") as unknown:
            wrong.versions(APP)
        assert "not-the-real-token" not in str(unknown.value)
        right, sent = client_for(cluster, token=TOKEN)
        assert right.job(APP) is None
        assert sent[-1].headers["X-Nomad-Token"] == TOKEN


# -- Consul ----------------------------------------------------------------------------------------------


def test_consul_health_after_a_healthy_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-the-environment")  # py-consul would prefer it
    with FakeCluster(consul_token="consul-secret") as cluster:
        client, _ = client_for(cluster)
        result = release(client, 7)
        assert client.watch_deployment(deployment_for(client, result)["ID"], timeout=20)[
            "Status"
        ] == ("successful")
        consul = ConsulClient(settings_for(cluster, consul_token="consul-secret"))
        healthy = consul.service_health("shop-web")
        job = client.job(APP)
        assert job is not None
        tags = tuple(job["TaskGroups"][0]["Services"][0]["Tags"])
        ports = {
            port["Value"]
            for a in client.allocations(APP)
            if a["TaskGroup"] == "web"
            for port in client.allocation(a["ID"])["AllocatedResources"]["Shared"]["Ports"]
        }
        assert len(healthy) == 2
        assert {(i.status, i.tags, i.address) for i in healthy} == {("passing", tags, "127.0.0.1")}
        assert {i.port for i in healthy} == ports
        assert healthy[0].meta["yurt_release"] == "v7"
        assert consul.service_health("nope") == []
        with pytest.raises(ConsulError, match="403") as denied:
            ConsulClient(settings_for(cluster)).service_health("shop-web")
        assert denied.value.status == 502 and "from-the-environment" not in str(denied.value)
