"""``yurt server --runtime nomad`` end to end: git push -> a dispatched ``yurt-build`` job ->
the app's service job, against the strict fake Nomad + Consul, a real OpenBao for config vars
and (for full builds) a real registry and the real builder run by ``BuildExecutor``."""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Server, make_repo, start_server, wait_for
from tests.fakes.cluster import FakeCluster
from tests.integration.cluster_builds import REPO, BuildExecutor
from tests.integration.test_local_runtime import WEB, change, releases
from tests.secrets.conftest import own_bao

__all__ = ["own_bao"]  # the fixture: a real OpenBao dev server as the cluster's Vault

NS = "yurt"


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(namespaces=(NS, f"{NS}-release")) as fake:
        yield fake


def nomad_server(
    tmp_path: Path, cluster: FakeCluster, bao: Any, data_dir: Path | None = None, **env: str
) -> Server:
    from tests.secrets.conftest import ROOT_TOKEN

    return start_server(
        tmp_path,
        "--runtime",
        "nomad",
        data_dir=data_dir,
        extra_env={
            "NOMAD_ADDR": cluster.nomad_addr,
            "NOMAD_NAMESPACE": NS,
            "CONSUL_HTTP_ADDR": cluster.consul_addr,
            "VAULT_ADDR": bao.addr,
            "VAULT_TOKEN": ROOT_TOKEN,
            "YURT_BASE_DOMAIN": "apps.test",
            "YURT_BUILDER_IMAGE": "registry.test:5000/yurt/builder:1",
            **env,
        },
    )


def create_app(srv: Server, tmp_path: Path, name: str = "web") -> Path:
    srv.cli("apps:create", name)
    work = make_repo(tmp_path / name, WEB, srv.env)
    srv.git("remote", "add", "yurt", f"{srv.url}/{name}.git", cwd=work)
    return work


def test_failed_cluster_build_rejects_the_push_with_its_output_and_exit_code(
    tmp_path: Path, cluster: FakeCluster, own_bao: Any
) -> None:
    cluster.set_batch_result(
        "yurt-build/", exit_code=3, stdout="-----> compiling\n", stderr="boom\n"
    )
    srv = nomad_server(tmp_path, cluster, own_bao)
    try:
        work = create_app(srv, tmp_path)
        push = srv.git("push", "yurt", "main", cwd=work, check=False)
        assert push.returncode != 0
        assert "Build job yurt-build/dispatch-" in push.stderr
        assert "compiling" in push.stderr and "boom" in push.stderr  # the task's own output
        assert "The build failed on the cluster: exit status 3" in push.stderr
        assert releases(srv, "web") == []
        [build] = srv.api("GET", "/api/apps/web/builds").json()
        assert build["status"] == "failed" and "exit status 3" in build["error"]
        job = cluster.job("yurt-build", NS)
        assert job["ParameterizedJob"]["MetaRequired"] == [
            "app",
            "build_id",
            "commit",
            "image",
            "build_token",
        ]
    finally:
        srv.stop()


def test_unplaceable_build_fails_at_once(
    tmp_path: Path, cluster: FakeCluster, own_bao: Any
) -> None:
    cluster.set_outcome("yurt-build", None, "placement_failure")
    srv = nomad_server(tmp_path, cluster, own_bao)
    try:
        work = create_app(srv, tmp_path)
        started = time.monotonic()
        push = srv.git("push", "yurt", "main", cwd=work, check=False)
        assert push.returncode != 0
        assert "The build could not be placed on the cluster" in push.stderr
        assert time.monotonic() - started < 60  # not the 15 min build timeout
    finally:
        srv.stop()


def test_build_token_opens_only_its_own_running_build(
    tmp_path: Path, cluster: FakeCluster, own_bao: Any
) -> None:
    cluster.set_batch_result("yurt-build/", hold=True)
    srv = nomad_server(tmp_path, cluster, own_bao)
    try:
        work = create_app(srv, tmp_path)
        srv.cli("config:set", "SECRET_KEY=s3cret-value", "-a", "web")
        push: dict[str, Any] = {}
        pusher = threading.Thread(
            target=lambda: push.update(r=srv.git("push", "yurt", "main", cwd=work, check=False))
        )
        pusher.start()
        child = wait_for(lambda: cluster.children("yurt-build"), 30)[0]
        meta = child["Meta"]
        base = f"{srv.url}/internal/builds/{meta['build_id']}"
        auth = {"Authorization": f"Bearer {meta['build_token']}"}
        wrong = {"Authorization": "Bearer not-the-token"}
        assert requests.get(f"{base}/env", timeout=10).status_code == 401
        assert requests.get(f"{base}/env", headers=wrong, timeout=10).status_code == 401
        other = f"{srv.url}/internal/builds/01ARZ3NDEKTSV4RRFFQ69G5FAV/env"
        assert requests.get(other, headers=auth, timeout=10).status_code == 401
        got = requests.get(f"{base}/env", headers=auth, timeout=10)
        assert got.status_code == 200 and got.json() == {"env": {"SECRET_KEY": "s3cret-value"}}
        source = requests.get(f"{base}/source.tar.gz", headers=auth, timeout=10)
        assert source.status_code == 200 and source.content[:2] == b"\x1f\x8b"
        assert requests.get(f"{base}/cache.tar.gz", headers=auth, timeout=10).status_code == 404
        put = requests.put(f"{base}/cache.tar.gz", headers=auth, data=b"cache-bytes", timeout=10)
        assert put.status_code == 204
        assert (
            requests.get(f"{base}/cache.tar.gz", headers=auth, timeout=10).content == b"cache-bytes"
        )
        digest = "sha256:" + "a" * 64
        bad = {
            "image": f"elsewhere/web@{digest}",
            "digest": digest,
            "buildpack": "python",
            "process_types": {"web": "python3 server.py"},
        }
        resp = requests.post(f"{base}/result", headers=auth, json=bad, timeout=10)
        assert resp.status_code == 422 and "image must be" in resp.json()["message"]
        [alloc] = cluster.allocations(child["ID"], NS)
        cluster.finish(alloc["ID"], 0)  # exit 0 without a result: still a failed build
        pusher.join(timeout=60)
        assert push["r"].returncode != 0
        assert "The build task ended without reporting an image" in push["r"].stderr
        assert requests.get(f"{base}/env", headers=auth, timeout=10).status_code == 401
        assert "s3cret-value" not in push["r"].stderr and "s3cret-value" not in srv.log()
        assert meta["build_token"] not in srv.log()
    finally:
        srv.stop()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Any]:
    from tests.registry import require_tools, start_registry

    require_tools()
    reg = start_registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.stop()


def test_push_builds_an_image_on_the_cluster_and_releases_it_by_digest(
    tmp_path: Path, cluster: FakeCluster, own_bao: Any, registry: Any
) -> None:
    from tests.registry import push_stack_image

    stack = push_stack_image(registry)
    work_root = Path(tempfile.mkdtemp(prefix="yurt-cluster-builds-", dir="/tmp"))
    work_root.chmod(0o711)  # the builder runs buildpacks as an unprivileged user
    srv = nomad_server(
        tmp_path, cluster, own_bao, YURT_REGISTRY=registry.addr, YURT_STACK_IMAGE=stack
    )
    executor = BuildExecutor(
        cluster,
        work_root,
        extra_env={
            "YURT_REGISTRY_TLS_VERIFY": "false",
            "YURT_BUILDPACKS_DIR": str(REPO / "buildpacks"),
            "YURT_WORK_DIR": str(work_root),
        },
    )
    try:
        with executor:
            work = create_app(srv, tmp_path)
            push = srv.git("push", "yurt", "main", cwd=work)
            out = push.stderr
            assert "Build job yurt-build/dispatch-" in out
            assert "-----> v1 is live" in out
            [v1] = releases(srv, "web")
            [build] = srv.api("GET", "/api/apps/web/builds").json()
            digest = registry.manifest_digest("web", build["id"].lower())
            assert v1["image"] == build["image"] == f"{registry.addr}/web@{digest}"
            assert v1["process_types"]["web"] == "python3 server.py"
            job = cluster.job("web", NS)
            assert job["Meta"]["yurt_release"] == "v1"
            assert _task(job, "web")["Config"]["image"] == v1["image"]
            assert executor.runs[-1]["exit"] == 0
            service = _group(job, "web")["Services"][0]
            assert service["Checks"][0]["Type"] == "http"
            assert service["Checks"][0]["Path"] == "/health"  # app.json's healthchecks.web
            assert "traefik.http.routers.web-web.rule=Host(`web.apps.test`)" in service["Tags"]
            assert (
                executor.runs[-1]["meta"]["image"] == f"{registry.addr}/web:{build['id'].lower()}"
            )

            srv.cli("config:set", "GREETING=hello there", "-a", "web")
            job = cluster.job("web", NS)
            assert job["Meta"]["yurt_release"] == "v2" and job["Meta"]["yurt_config_version"] == "1"
            template = _task(job, "web")["Templates"][0]["EmbeddedTmpl"]
            assert "secret/data/yurt/apps/web?version=1" in template
            assert "hello there" not in str(job)  # values stay in Vault

            change(srv, work, "v2", VERSION="2")
            second = srv.git("push", "yurt", "main", cwd=work).stderr
            assert "-----> v3 is live" in second
            builds = srv.api("GET", "/api/apps/web/builds").json()
            assert len({b["image"] for b in builds}) == 2
            [cache] = (srv.data_dir / "cache").glob("*/cluster-build-cache.tar.gz")
            srv.cli("builds:purge-cache", "-a", "web")
            assert not cache.exists()

            srv.cli("domains:add", "www.example.com", "-a", "web")
            tags = _group(cluster.job("web", NS), "web")["Services"][0]["Tags"]
            rule = "Host(`web.apps.test`) || Host(`www.example.com`)"
            assert f"traefik.http.routers.web-web.rule={rule}" in tags

            srv.cli("rollback", "v1", "-a", "web")
            newest = releases(srv, "web")[0]
            assert newest["description"] == "Rollback to v1" and newest["image"] == v1["image"]
            assert _task(cluster.job("web", NS), "web")["Config"]["image"] == v1["image"]
            ps = srv.cli("ps", "-a", "web", "--json")
            assert '"web.1"' in ps.stdout
            same = srv.cli("releases:preview", "-a", "web")
            assert same.stdout == "" and "would change nothing" in same.stderr
            diff = srv.cli("releases:preview", "v3", "-a", "web").stdout
            assert f'-        image = "{v1["image"]}"' in diff
            assert diff.count("-        image = ") == diff.count("+        image = ") == 2
            assert "+++ web for v3, as Yurt would register it" in diff
        srv.stop()
        # The cluster lost the app's job while the controller was down: the controller
        # registers the current release again when it starts.
        cluster.nomad_client().job.deregister_job("web", purge=True, namespace=NS)
        srv = nomad_server(
            tmp_path,
            cluster,
            own_bao,
            data_dir=srv.data_dir,
            YURT_REGISTRY=registry.addr,
            YURT_STACK_IMAGE=stack,
        )
        wait_for(lambda: _current_release(cluster) == newest["name"], timeout=60)
        wait_for(lambda: "restored 1 app(s) from the DB: web" in srv.log(), 30)
    finally:
        srv.stop()
        shutil.rmtree(work_root, ignore_errors=True)
    assert "hello there" not in srv.log()


def _current_release(cluster: FakeCluster) -> str | None:
    try:
        job = cluster.job("web", NS)
    except Exception:  # not registered (yet)
        return None
    return None if job.get("Stop") else str(job["Meta"]["yurt_release"])


def _group(job: dict[str, Any], group: str) -> dict[str, Any]:
    return next(g for g in job["TaskGroups"] if g["Name"] == group)  # type: ignore[no-any-return]


def _task(job: dict[str, Any], group: str) -> dict[str, Any]:
    return _group(job, group)["Tasks"][0]  # type: ignore[no-any-return]


def test_nomad_runtime_needs_an_external_vault(tmp_path: Path, cluster: FakeCluster) -> None:
    with pytest.raises(RuntimeError, match="set VAULT_ADDR"):
        start_server(
            tmp_path,
            "--runtime",
            "nomad",
            extra_env={"NOMAD_ADDR": cluster.nomad_addr, "NOMAD_NAMESPACE": NS},
        )


def test_build_jobs_of_an_interrupted_controller_are_stopped(
    tmp_path: Path, cluster: FakeCluster, own_bao: Any
) -> None:
    cluster.set_batch_result("yurt-build/", hold=True)
    srv = nomad_server(tmp_path, cluster, own_bao)
    work = create_app(srv, tmp_path)
    pusher = threading.Thread(
        target=srv.git, args=("push", "yurt", "main"), kwargs={"cwd": work, "check": False}
    )
    pusher.start()
    child = wait_for(lambda: cluster.children("yurt-build"), 30)[0]
    srv.stop(signal.SIGKILL)
    pusher.join(timeout=60)
    assert not cluster.job(child["ID"], NS)["Stop"]  # still running on the cluster
    srv = nomad_server(tmp_path, cluster, own_bao, data_dir=srv.data_dir)
    try:
        assert cluster.job(child["ID"], NS)["Stop"]
        [build] = srv.api("GET", "/api/apps/web/builds").json()
        assert build["status"] == "failed" and build["error"].startswith("interrupted")
        assert "stopped 1 build job(s) of interrupted builds" in srv.log()
    finally:
        srv.stop()
