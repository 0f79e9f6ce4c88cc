"""Dispatching parameterized batch jobs, batch results and the log stream framing."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import nomad
import pytest
import requests

from tests.fakes import FakeCluster

GOLDEN = Path(__file__).parent / "golden"
META = {
    "app": "myapp",
    "build_id": "01J0",
    "commit": "1a2b3c4",
    "image": "registry.local:5000/myapp:01J0",
}


def register_build(cluster: FakeCluster) -> Any:
    n = cluster.nomad_client()
    reply = n.jobs.register_job({"Job": n.jobs.parse((GOLDEN / "build.nomad.hcl").read_text())})
    assert reply["EvalID"] == ""  # parameterized parents get no evaluation
    return n


def dispatch(
    cluster: FakeCluster, body: dict[str, Any], token: str | None = None
) -> requests.Response:
    params = {"idempotency_token": token} if token else {}
    return requests.post(
        f"{cluster.nomad_addr}/v1/job/yurt-build/dispatch", json=body, params=params, timeout=10
    )


def frames(body: bytes) -> list[dict[str, Any]]:
    """Decode a concatenated JSON frame stream the way clients must (no delimiter)."""
    decoder, text, pos, out = json.JSONDecoder(), body.decode(), 0, []
    while pos < len(text):
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)
    return out


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({**META, "extra": "x"}, "Dispatch request included unpermitted metadata keys: [extra]"),
        ({"app": "myapp"}, "Dispatch did not provide required meta keys: [build_id commit image]"),
    ],
)
def test_dispatch_meta_validation_is_500(
    manual_cluster: FakeCluster, meta: dict[str, str], message: str
) -> None:
    register_build(manual_cluster)
    r = dispatch(manual_cluster, {"Meta": meta})
    assert (r.status_code, r.text) == (500, message)


def test_dispatch_payload_rules_and_errors(manual_cluster: FakeCluster) -> None:
    register_build(manual_cluster)
    r = dispatch(manual_cluster, {"Meta": META, "Payload": base64.b64encode(b"x").decode()})
    assert (r.status_code, r.text) == (500, "Payload provided but forbidden by parameterized job")
    r = dispatch(manual_cluster, {"Meta": META, "Payload": "not base64!"})
    assert r.status_code == 400 and "base64" in r.text
    r = dispatch(manual_cluster, {"Meta": {"app": 1}})
    assert r.status_code == 400 and "must be strings" in r.text
    r = requests.post(
        f"{manual_cluster.nomad_addr}/v1/job/nope/dispatch", json={"Meta": META}, timeout=10
    )
    assert (r.status_code, r.text) == (500, "parameterized job not found")


def test_dispatch_child_and_idempotency(manual_cluster: FakeCluster) -> None:
    n = register_build(manual_cluster)
    first = dispatch(manual_cluster, {"Meta": META}, token="1a2b3c4").json()
    child_id = first["DispatchedJobID"]
    assert child_id.startswith("yurt-build/dispatch-") and first["EvalID"]
    child = n.job.get_job(child_id)
    assert (child["ParentID"], child["Dispatched"], child["Name"], child["Type"]) == (
        "yurt-build",
        True,
        child_id,
        "batch",
    )
    assert child["Meta"] == {"yurt_app": "_build", **META}  # dispatch meta merged into job meta
    again = dispatch(manual_cluster, {"Meta": META}, token="1a2b3c4").json()
    assert (
        again["DispatchedJobID"] == child_id
        and again["EvalID"] == ""
        and again["JobCreateIndex"] == first["JobCreateIndex"]
    )
    other = dispatch(manual_cluster, {"Meta": META, "IdPrefixTemplate": "myapp"}).json()
    assert other["DispatchedJobID"].startswith("yurt-build/dispatch-myapp-")
    assert len(manual_cluster.children("yurt-build")) == 2
    parent = n.jobs.get_jobs(prefix="yurt-build")[0]
    assert parent["ParameterizedJob"] is True and parent["Status"] == "running"


def test_python_nomad_dispatch_sends_the_token_in_the_body(manual_cluster: FakeCluster) -> None:
    """python-nomad's dispatch_job puts idempotency_token in the JSON body; Nomad reads it only
    from the query string and would silently ignore it, so the fake refuses the body."""
    n = register_build(manual_cluster)
    with pytest.raises(nomad.api.exceptions.BadRequestNomadException) as err:
        n.job.dispatch_job("yurt-build", meta=META, idempotency_token="abc")
    assert "idempotency_token: unknown field" in err.value.nomad_resp.text
    reply = n.job.request(
        "yurt-build",
        "dispatch",
        json={"Meta": META},
        params={"idempotency_token": "abc"},
        method="post",
    ).json()
    assert reply["DispatchedJobID"].startswith("yurt-build/dispatch-")


def test_batch_result_exit_code_and_logs(manual_cluster: FakeCluster) -> None:
    register_build(manual_cluster)
    manual_cluster.set_batch_result(
        "yurt-build/", exit_code=3, stdout="-----> Building\n       ok\n", stderr=" !     boom\n"
    )
    child_id = dispatch(manual_cluster, {"Meta": META}).json()["DispatchedJobID"]
    manual_cluster.settle(quiet_seconds=30)
    n = manual_cluster.nomad_client()
    allocs = n.job.get_allocations(child_id)
    assert [a["ClientStatus"] for a in allocs] == [
        "failed"
    ]  # the golden job sets restart/reschedule attempts = 0
    state = allocs[0]["TaskStates"]["build"]
    assert state["Failed"] is True and state["State"] == "dead"
    terminated = [e for e in state["Events"] if e["Type"] == "Terminated"]
    assert terminated[0]["Details"]["exit_code"] == "3"
    assert n.job.get_job(child_id)["Status"] == "dead"
    base = f"{manual_cluster.nomad_addr}/v1/client/fs/logs/{allocs[0]['ID']}"
    r = requests.get(base, params={"task": "build", "type": "stdout"}, timeout=10)
    assert r.headers["Content-Type"] == "application/json"
    decoded = frames(r.content)
    assert decoded == [
        {
            "Offset": 26,
            "Data": base64.b64encode(b"-----> Building\n       ok\n").decode(),
            "File": "alloc/logs/build.stdout.0",
        }
    ]
    plain = requests.get(
        base, params={"task": "build", "type": "stderr", "plain": "true"}, timeout=10
    )
    assert plain.text == " !     boom\n"
    tail = requests.get(
        base,
        params={"task": "build", "type": "stdout", "plain": "true", "origin": "end", "offset": 3},
        timeout=10,
    )
    assert tail.text == "ok\n"
    via_client = n.client.stream_logs.stream(allocs[0]["ID"], "build", "stdout", plain=True)
    assert via_client.startswith("-----> Building")


def test_batch_restarts_and_reschedules_by_default(manual_cluster: FakeCluster) -> None:
    n = manual_cluster.nomad_client()
    job = n.jobs.parse(
        'job "release" {\ntype = "batch"\ngroup "r" {\ntask "r" {\ndriver = "docker"\n}\n}\n}\n'
    )
    manual_cluster.set_batch_result("release", exit_code=1, stdout="migrate\n")
    n.jobs.register_job({"Job": job})
    manual_cluster.settle(quiet_seconds=60)
    allocs = n.job.get_allocations("release")
    assert [a["ClientStatus"] for a in allocs] == [
        "failed",
        "failed",
    ]  # batch default: 1 reschedule
    assert allocs[0]["TaskStates"]["r"]["Restarts"] == 3  # batch default: 3 restarts
    log = requests.get(
        f"{manual_cluster.nomad_addr}/v1/client/fs/logs/{allocs[0]['ID']}",
        params={"task": "r", "type": "stdout", "plain": "1"},
        timeout=10,
    )
    assert log.text == "migrate\n" * 4


def test_log_errors(manual_cluster: FakeCluster) -> None:
    register_build(manual_cluster)
    child_id = dispatch(manual_cluster, {"Meta": META}).json()["DispatchedJobID"]
    manual_cluster.advance()
    alloc_id = manual_cluster.allocations(child_id)[0]["ID"]
    base = f"{manual_cluster.nomad_addr}/v1/client/fs/logs/"
    cases = [
        (alloc_id, {"type": "stdout"}, 400, "must provide task name"),
        (alloc_id, {"task": "build", "type": "both"}, 400, "must provide log type (stdout/stderr)"),
        (
            alloc_id,
            {"task": "build", "type": "stdout", "origin": "middle"},
            400,
            "origin must be start or end",
        ),
        (alloc_id, {"task": "nope", "type": "stdout"}, 400, 'unknown task name "nope"'),
        ("0000", {"task": "build", "type": "stdout"}, 404, 'Unknown allocation "0000"'),
    ]
    for alloc, params, status, text in cases:
        r = requests.get(base + alloc, params=params, timeout=10)
        assert (r.status_code, r.text) == (status, text)


def test_follow_streams_live_output_with_heartbeats() -> None:
    with FakeCluster(tick=None, log_heartbeat=0.1) as cluster:
        register_build(cluster)
        cluster.set_batch_result("yurt-build/", stdout="step 1\n", hold=True)
        child_id = dispatch(cluster, {"Meta": META}).json()["DispatchedJobID"]
        cluster.advance()
        alloc_id = cluster.allocations(child_id)[0]["ID"]
        url = f"{cluster.nomad_addr}/v1/client/fs/logs/{alloc_id}"
        received = bytearray()

        def follow() -> None:
            with requests.get(
                url,
                params={"task": "build", "type": "stdout", "follow": "true"},
                stream=True,
                timeout=10,
            ) as r:
                for chunk in r.iter_content(chunk_size=None):
                    received.extend(chunk)
                    if b"step 2" in b"".join(
                        base64.b64decode(f.get("Data", "")) for f in _safe_frames(received)
                    ):
                        return

        reader = threading.Thread(target=follow)
        reader.start()
        time.sleep(0.4)
        cluster.append_log(alloc_id, "build", "step 2\n")
        reader.join(timeout=10)
        assert not reader.is_alive()
        decoded = _safe_frames(received)
        assert {} in decoded  # heartbeats while idle
        data = b"".join(base64.b64decode(f["Data"]) for f in decoded if "Data" in f)
        assert data == b"step 1\nstep 2\n"
        assert [f["Offset"] for f in decoded if "Data" in f] == [7, 14]
        cluster.release("yurt-build/")
        cluster.advance()
        assert cluster.allocations(child_id)[0]["ClientStatus"] == "complete"


def _safe_frames(buf: bytearray) -> list[dict[str, Any]]:
    decoder, text, pos, out = json.JSONDecoder(), bytes(buf).decode(), 0, []
    while pos < len(text):
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        out.append(obj)
    return out
