"""NomadRuntime operations against the strict fake cluster: the release phase's namespace and
re-runs, restart, stop/missing/restore, destroy, logs (tail, filters, merged follow), and the
no-ops (prune, shutdown)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from controller.errors import Conflict
from controller.runtime.base import DeployFailed
from controller.runtime.nomad.client import NomadClient, NomadError, NomadSettings
from controller.runtime.nomad.consul import ConsulClient
from controller.runtime.nomad.runtime import (
    DeploymentInProgress,
    NomadRuntime,
    RouterLogsUnavailable,
)
from tests.conftest import wait_for
from tests.fakes import FakeCluster
from tests.nomad.test_runtime import (
    APP,
    IMAGES,
    NS,
    RELEASE_NS,
    deploy,
    deploy_that_hangs,
    runtime,
    spec,
)

__all__ = ["runtime"]  # the fixture, shared with test_runtime


def _live(cluster: FakeCluster, group: str) -> list[dict[str, Any]]:
    return [
        a
        for a in cluster.allocations(APP, NS)
        if a["TaskGroup"] == group
        and a["DesiredStatus"] == "run"
        and a["ClientStatus"] == "running"
    ]


# -- release phase ----------------------------------------------------------------------------------


def test_release_phase_needs_the_release_namespace(fake_cluster: FakeCluster) -> None:
    """Real Nomad refuses a job in a namespace that does not exist; so does the fake."""
    client = NomadClient(
        NomadSettings(addr=fake_cluster.nomad_addr, consul_addr=fake_cluster.consul_addr)
    )
    runtime = NomadRuntime(client, images=IMAGES)
    with pytest.raises(NomadError, match='nonexistent namespace "yurt-release"'):
        deploy(runtime, spec(1, release="python migrate.py"))
    assert runtime.client.job(APP) is None  # nothing was switched


def test_release_phase_runs_again_for_the_same_release(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    fake_cluster.set_batch_result(APP, 0, stdout="migrated\n", group="release")
    deploy(runtime, spec(1, release="python migrate.py"))
    out = deploy(runtime, spec(1, release="python migrate.py"))
    assert "Release command succeeded" in out
    assert "Job hello unchanged" in out  # the app job: nothing to roll out
    runs = fake_cluster.allocations(APP, RELEASE_NS)
    assert [(a["JobVersion"], a["ClientStatus"]) for a in runs] == [
        (0, "complete"),
        (1, "complete"),
    ]
    versions = runtime.release_client.versions(APP)
    nonces = {v["Meta"]["yurt_run"] for v in versions}
    assert len(nonces) == 2 and all(v["Meta"]["yurt_release"] == "v1" for v in versions)


# -- restart ----------------------------------------------------------------------------------------


def test_restart_one_type_rolls_only_that_group(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    deploy(runtime, spec(1))
    web_before = {a["ID"] for a in _live(fake_cluster, "web")}
    worker_before = {a["ID"] for a in _live(fake_cluster, "worker")}

    runtime.restart(spec(1), "web")
    job = fake_cluster.job(APP, NS)
    assert job["Version"] == 1 and job["Stable"] is True
    meta = {g["Name"]: g["Meta"] for g in job["TaskGroups"]}
    assert set((meta["web"] or {}).keys()) == {"yurt_restart"} and meta["worker"] is None
    (dep, *_) = fake_cluster.deployments(APP, NS)
    assert (dep["JobVersion"], dep["Status"]) == (1, "successful")
    assert dep["TaskGroups"]["web"]["DesiredCanaries"] == 2  # web rolls through canaries
    wait_for(lambda: len(_live(fake_cluster, "web")) == 2, 10)
    assert not web_before & {a["ID"] for a in _live(fake_cluster, "web")}
    assert {a["ID"] for a in _live(fake_cluster, "worker")} == worker_before
    assert runtime.is_serving("app-1", 1)

    web_nonce = meta["web"]["yurt_restart"]
    runtime.restart(spec(1), None)  # all types: new nonces everywhere
    job = fake_cluster.job(APP, NS)
    meta = {g["Name"]: g["Meta"] for g in job["TaskGroups"]}
    assert job["Version"] == 2
    assert meta["web"]["yurt_restart"] == meta["worker"]["yurt_restart"] != web_nonce
    wait_for(lambda: {a["ID"] for a in _live(fake_cluster, "worker")} != worker_before, 10)


def test_restart_keeps_other_groups_nonces_and_redeploy_keeps_them_too(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    deploy(runtime, spec(1))
    runtime.restart(spec(1), "worker")
    worker_nonce = fake_cluster.job(APP, NS)["TaskGroups"][1]["Meta"]["yurt_restart"]
    runtime.restart(spec(1), "web")
    groups = {g["Name"]: g["Meta"] for g in fake_cluster.job(APP, NS)["TaskGroups"]}
    assert groups["worker"] == {"yurt_restart": worker_nonce}  # not rolled again
    version = fake_cluster.job(APP, NS)["Version"]
    assert "unchanged" in deploy(runtime, spec(1))  # the same release: no needless rollout
    assert fake_cluster.job(APP, NS)["Version"] == version


def test_restart_refusals(fake_cluster: FakeCluster, runtime: NomadRuntime) -> None:
    with pytest.raises(Conflict, match="hello is not running on the cluster"):
        runtime.restart(spec(1), None)
    worker, errors = deploy_that_hangs(fake_cluster, runtime)
    with pytest.raises(DeploymentInProgress, match="a deployment of hello is in progress"):
        runtime.restart(spec(1), "web")
    worker.join(timeout=20)
    assert len(errors) == 1 and isinstance(errors[0], DeployFailed)


# -- stop, missing, restore, scale of a stopped app ------------------------------------------------------


def test_stop_missing_restore(fake_cluster: FakeCluster, runtime: NomadRuntime) -> None:
    deploy(runtime, spec(1))
    assert not runtime.missing("app-1")

    runtime.stop_app("app-1")
    job = fake_cluster.job(APP, NS)
    assert job["Stop"] is True and job["Version"] == 1  # deregistered, not purged
    assert runtime.processes("app-1") == []
    assert runtime.missing("app-1")
    assert not runtime.is_serving("app-1", 1)
    runtime.stop_app("app-1")  # again: nothing to do
    assert fake_cluster.job(APP, NS)["Version"] == 1

    runtime.restore(spec(1))
    job = fake_cluster.job(APP, NS)
    assert (job["Stop"], job["Version"], job["Meta"]["yurt_release"]) == (False, 2, "v1")
    assert not runtime.missing("app-1")
    assert runtime.is_serving("app-1", 1)
    runtime.restore(spec(1))  # already running this release: a no-op
    assert fake_cluster.job(APP, NS)["Version"] == 2


def test_restore_of_a_missing_job_skips_the_release_phase(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    """A restore brings back a release whose release command already ran when it deployed."""
    fake_cluster.set_batch_result(APP, 0, group="release")
    runtime.restore(spec(1, release="python migrate.py"))
    assert runtime.is_serving("app-1", 1)
    assert runtime.release_client.job(APP) is None  # the release command did not run again
    assert not runtime.missing("app-1")


def test_scale_of_a_stopped_app_starts_it(fake_cluster: FakeCluster, runtime: NomadRuntime) -> None:
    """ps:start reaches the runtime as a scale with the app's formation."""
    deploy(runtime, spec(1))
    runtime.stop_app("app-1")
    runtime.scale(spec(1, {"web": 1, "worker": 1}))
    job = fake_cluster.job(APP, NS)
    assert job["Stop"] is False
    assert {g["Name"]: g["Count"] for g in job["TaskGroups"]} == {"web": 1, "worker": 1}
    assert runtime.is_serving("app-1", 1)


# -- destroy, prune, shutdown -------------------------------------------------------------------


def test_destroy_purges_both_jobs(fake_cluster: FakeCluster, runtime: NomadRuntime) -> None:
    fake_cluster.set_batch_result(APP, 0, group="release")
    deploy(runtime, spec(1, release="python migrate.py"))
    assert fake_cluster.catalog(f"{APP}-web")
    runtime.destroy(APP, "app-1")
    assert runtime.client.job(APP) is None and runtime.release_client.job(APP) is None
    assert runtime.client.versions(APP) == []  # purged: no history left
    wait_for(lambda: not fake_cluster.catalog(f"{APP}-web"), 10)
    runtime.destroy(APP, "app-1")  # absent: fine


def test_prune_and_shutdown_leave_the_apps_alone(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    deploy(runtime, spec(1))
    deploy(runtime, spec(2))
    before = fake_cluster.job(APP, NS)
    runtime.prune(APP, {2})
    runtime.shutdown(keep_apps=False)
    runtime.shutdown(keep_apps=True)
    assert fake_cluster.job(APP, NS) == before
    assert len(runtime.client.versions(APP)) == 2
    assert runtime.is_serving("app-1", 2)


# -- logs -------------------------------------------------------------------------------------------


def _take(lines: Iterator[str], n: int, timeout: float = 10.0) -> list[str]:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: [next(lines) for _ in range(n)]).result(timeout=timeout)


def _log_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("yurt-logs-")]


def test_logs_tail_and_filters(fake_cluster: FakeCluster, runtime: NomadRuntime) -> None:
    fake_cluster.set_outcome(APP, "web", stdout="web up\n", stderr="GET / 200\n")
    fake_cluster.set_outcome(APP, "worker", stdout="worker up\nworking\n")
    deploy(runtime, spec(1))
    assert list(runtime.logs(APP, "app-1", 10, False, None)) == [
        "web.1 | web up\n",
        "web.1 | GET / 200\n",
        "web.2 | web up\n",
        "web.2 | GET / 200\n",
        "worker.1 | worker up\n",
        "worker.1 | working\n",
    ]
    assert list(runtime.logs(APP, "app-1", 10, False, "web.2")) == [
        "web.2 | web up\n",
        "web.2 | GET / 200\n",
    ]
    assert list(runtime.logs(APP, "app-1", 1, False, "worker")) == ["worker.1 | working\n"]
    assert list(runtime.logs(APP, "app-1", 0, False, None)) == []
    (web1, *_) = _live(fake_cluster, "web")
    fake_cluster.append_log(web1["ID"], "web", "".join(f"err {i}\n" for i in range(5)), "stderr")
    # both streams share the lines: stdout keeps its share when stderr is noisy
    tail = list(runtime.logs(APP, "app-1", 4, False, _label_of(web1)))
    assert tail[0].endswith("| web up\n") and tail[-1].endswith("| err 4\n") and len(tail) == 4


def _label_of(alloc: dict[str, Any]) -> str:
    index = int(alloc["Name"].rsplit("[", 1)[1].rstrip("]"))
    return f"{alloc['TaskGroup']}.{index + 1}"


def test_logs_of_a_stopped_app_show_the_last_instances(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    fake_cluster.set_outcome(APP, "worker", stdout="bye\n")
    deploy(runtime, spec(1))
    runtime.stop_app("app-1")
    assert list(runtime.logs(APP, "app-1", 5, False, "worker")) == ["worker.1 | bye\n"]


def test_router_logs_are_refused_before_streaming(runtime: NomadRuntime) -> None:
    with pytest.raises(RouterLogsUnavailable) as refused:
        runtime.logs(APP, "app-1", 10, False, None, source="router")  # not even iterated
    assert refused.value.status == 422
    assert refused.value.message == (
        "router logs are not available on the nomad runtime: read Traefik's (or Fabio's)"
        " logs on the cluster"
    )


def test_logs_follow_merges_allocations_and_picks_up_new_ones(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    runtime.settings = replace(runtime.settings, log_poll=0.1)
    fake_cluster.set_outcome(APP, "web", stdout="booted\n")
    deploy(runtime, spec(1))
    web = sorted(_live(fake_cluster, "web"), key=_label_of)
    lines = runtime.logs(APP, "app-1", 5, True, "web")
    assert _take(lines, 2) == ["web.1 | booted\n", "web.2 | booted\n"]

    fake_cluster.append_log(web[1]["ID"], "web", "second says hi\n")
    fake_cluster.append_log(web[0]["ID"], "web", "first ", "stderr")
    fake_cluster.append_log(web[0]["ID"], "web", "says hi\n", "stderr")  # a line in two writes
    assert sorted(_take(lines, 2)) == ["web.1 | first says hi\n", "web.2 | second says hi\n"]

    runtime.scale(spec(1, {"web": 3, "worker": 1}))  # a new allocation appears
    wait_for(lambda: len(_live(fake_cluster, "web")) == 3, 10)
    (new,) = [a for a in _live(fake_cluster, "web") if a["ID"] not in {w["ID"] for w in web}]
    fake_cluster.append_log(new["ID"], "web", "third\n")
    got = _take(lines, 2)  # its tail from the start: the outcome's output, then the new line
    assert got == [f"{_label_of(new)} | booted\n", f"{_label_of(new)} | third\n"]

    assert _log_threads()
    lines.close()  # type: ignore[attr-defined]
    wait_for(lambda: not _log_threads(), 10)


def test_deploy_keeps_counts_changed_on_the_cluster_until_the_formation_changes(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    """PreserveCounts (levant): a count set outside Yurt (an autoscaler, `nomad job scale`)
    survives deploys with the same formation; a new formation (ps:scale) replaces it."""
    deploy(runtime, spec(1, {"web": 2, "worker": 1}))
    runtime.client.scale(APP, "web", 4, "autoscaler")
    wait_for(lambda: _count(runtime, "web") == 4 and _stable(runtime), 10)
    deploy(runtime, spec(2, {"web": 2, "worker": 1}))
    assert _count(runtime, "web") == 4
    deploy(runtime, spec(3, {"web": 1, "worker": 1}))
    assert _count(runtime, "web") == 1


def _count(runtime: NomadRuntime, group: str) -> int:
    job = runtime.client.job(APP) or {}
    return next(int(g["Count"]) for g in job["TaskGroups"] if g["Name"] == group)


def _stable(runtime: NomadRuntime) -> bool:
    dep = runtime.client.deployment(APP)
    return dep is None or dep["Status"] in ("successful", "failed", "cancelled")


def test_preview_is_the_job_spec_diff_and_registers_nothing(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    first = runtime.preview(spec(1))
    assert first.startswith("--- hello: no job on the cluster\n+++ hello for v1")
    assert '+job "hello" {' in first
    assert runtime.client.job(APP) is None  # nothing was registered
    deploy(runtime, spec(1))
    assert runtime.preview(spec(1)) == ""  # what runs is what Yurt would register
    diff = runtime.preview(spec(2, {"web": 3, "worker": 1}))
    assert "--- hello version 0 (v1), as registered" in diff
    assert '-    "yurt_release"' in diff and '+    "yurt_release"' in diff
    assert "-    count = 2\n" in diff and "+    count = 3\n" in diff
    assert fake_cluster.job(APP, NS)["Version"] == 0


def test_ps_shows_a_web_instance_whose_consul_check_fails_as_unhealthy(
    fake_cluster: FakeCluster, runtime: NomadRuntime
) -> None:
    runtime.consul = ConsulClient(runtime.client.settings)
    deploy(runtime, spec(1, {"web": 2, "worker": 1}))
    assert [v.state for v in runtime.processes("app-1")] == ["up", "up", "up"]
    [first, _] = fake_cluster.catalog(f"{APP}-web")
    with fake_cluster.cond:
        fake_cluster.consul.set_check_status(first["ServiceID"], "critical", "connection refused")
    states = {(v.type, v.state) for v in runtime.processes("app-1")}
    assert states == {("web", "unhealthy"), ("web", "up"), ("worker", "up")}
