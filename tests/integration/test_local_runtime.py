"""The local runtime end to end: push -> release -> supervisord + Caddy, zero downtime,
failed health checks, release phase, rollback, scale, restart of the controller."""

from __future__ import annotations

import http.client
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from controller import tmpfs
from tests.conftest import ROOT, Server, make_repo, start_server

pytestmark = pytest.mark.integration
WEB = ROOT / "tests" / "fixtures" / "apps" / "web"


def deploy_app(srv: Server, tmp_path: Path, name: str = "web") -> Path:
    srv.cli("apps:create", name)
    work = make_repo(tmp_path / name, WEB, srv.env)
    srv.git("remote", "add", "yurt", f"{srv.url}/{name}.git", cwd=work)
    srv.git("push", "yurt", "main", cwd=work)
    return work


def change(srv: Server, work: Path, message: str, **files: str | None) -> None:
    for rel, text in files.items():
        path = work / rel.replace("__", ".")
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    srv.git("add", "-A", cwd=work)
    srv.git("commit", "-qm", message, cwd=work)


def releases(srv: Server, app: str) -> list[dict[str, object]]:
    return srv.api("GET", f"/api/apps/{app}/releases").json()  # type: ignore[no-any-return]


def test_push_runs_the_release_behind_the_router(server: Server, tmp_path: Path) -> None:
    deploy_app(server, tmp_path)
    resp = server.app_get("web")
    assert resp.status_code == 200
    assert resp.text.startswith("1 web.1 v1")
    [rel] = releases(server, "web")
    assert rel["status"] == "succeeded" and rel["current"] is True
    assert rel["description"].startswith("Deploy ")
    info = server.api("GET", "/api/apps/web").json()
    assert info["web_url"] == f"http://web.localhost:{server.router_port}"
    unknown = server.app_get("nobody")
    assert unknown.status_code == 404 and "nobody.localhost" in unknown.text
    preview = server.api("GET", "/api/apps/web/releases/current/preview")
    assert preview.status_code == 422 and "--runtime local" in preview.json()["message"]


def test_processes_run_as_an_unprivileged_user_who_cannot_read_secrets(
    server: Server, tmp_path: Path
) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("per-app users need root; as a normal user apps share its rights")
    deploy_app(server, tmp_path)
    assert "uid=0" not in server.app_get("web").text
    import pwd

    uid = pwd.getpwnam("yurt-web").pw_uid
    [release] = (Path(server.data_dir) / "apps" / "web" / "releases").glob("v1-*")
    owners = {p.lstat().st_uid for p in [release, *release.rglob("*")]}
    assert owners == {uid}  # built as the app's user, unpacked as its files
    deploy_app(server, tmp_path, "other")
    [other_release] = (Path(server.data_dir) / "apps" / "other" / "releases").glob("v1-*")
    env_dir = tmpfs.private_dir(Path(server.data_dir), "env", 0o711)
    [other_env] = env_dir.glob("other-*.env")
    data = Path(server.data_dir).resolve()
    private = [
        data / "admin-token",
        data / "run/hook-token",
        data / "yurt.db",
        data / "openbao/init.json",  # OpenBao's unseal key and root token
        data / "openbao/controller-token",
        other_release / "server.py",  # another app's source
        data / "logs/other",  # its logs
        other_env,  # its config
    ]
    for path in private:
        resp = server.app_get("web", f"/read{path}")
        assert resp.status_code == 403 and "Permission" in resp.text, path


def test_zero_failed_requests_across_deploys_and_rollback(server: Server, tmp_path: Path) -> None:
    work = deploy_app(server, tmp_path)
    results: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def load(keep_alive: bool) -> None:
        # One client keeps its connection alive, two open one per request. Like browsers and
        # curl, each sends an idempotent request once more when the connection broke before
        # any response came: a Caddy config change closes connections its old server holds
        # without a request in progress (see docs/local-runtime.md). An HTTP error status is
        # never retried, so a 502 or 503 always counts.
        session = requests.Session()
        retry = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=0)
        session.mount("http://", HTTPAdapter(max_retries=retry))
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                headers = {} if keep_alive else {"Connection": "close"}
                results.append(server_get(session, server, headers).status_code)
            except requests.RequestException as exc:
                results.append(-1)
                errors.append(f"{'keep-alive' if keep_alive else 'close'}: {exc!r}")
            time.sleep(0.01)

    def naive() -> None:
        # Reuses one kept-alive connection without checking it and never retries (raw
        # http.client, as some SDKs do): any connection closed under it counts as a failure.
        conn = http.client.HTTPConnection("127.0.0.1", server.router_port, timeout=10)
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn.request("GET", "/", headers={"Host": "web.localhost"})
                resp = conn.getresponse()
                resp.read()
                results.append(resp.status)
            except (OSError, http.client.HTTPException) as exc:
                results.append(-1)
                errors.append(f"naive: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.router_port, timeout=10)
            time.sleep(0.01)
        conn.close()

    threads = [threading.Thread(target=load, args=(k,)) for k in (True, False, False)]
    threads += [threading.Thread(target=naive) for _ in range(2)]
    loads_before = caddy_loads(server)
    for t in threads:
        t.start()
    try:
        for n in (2, 3):
            change(server, work, f"v{n}", VERSION=str(n))
            server.git("push", "yurt", "main", cwd=work)
        server.cli("rollback", "-a", "web")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(results) > 50
    assert [code for code in results if code != 200] == [], errors
    # A deploy only rewrites the router's DNS table: Caddy's config is not loaded again.
    assert caddy_loads(server) == loads_before
    assert server.app_get("web").text.startswith("2 ")
    rels = releases(server, "web")
    assert rels[0]["description"] == "Rollback to v2" and rels[0]["current"] is True


def caddy_loads(srv: Server) -> int:
    """How many config loads Caddy completed (its log)."""
    text = (Path(srv.data_dir) / "logs" / "router" / "caddy.log").read_text(errors="replace")
    return sum(1 for line in text.splitlines() if '"msg":"load complete"' in line)


def server_get(
    session: requests.Session, srv: Server, headers: dict[str, str] | None = None
) -> requests.Response:
    return session.get(
        f"http://127.0.0.1:{srv.router_port}/",
        headers={"Host": "web.localhost", **(headers or {})},
        timeout=10,
    )


def test_unhealthy_release_keeps_the_old_one_and_rejects_the_push(
    server: Server, tmp_path: Path
) -> None:
    work = deploy_app(server, tmp_path)
    change(server, work, "broken health", VERSION="2", unhealthy="")
    res = server.git("push", "yurt", "main", cwd=work, check=False)
    assert res.returncode != 0
    assert "Health check GET /health on web.1 answered 500" in res.stderr
    assert "the previous release keeps serving" in res.stderr
    assert server.app_get("web").text.startswith("1 ")
    rels = releases(server, "web")
    assert rels[0]["status"] == "failed" and rels[1]["current"] is True
    # A crash at boot is reported with its exit status and last output.
    change(server, work, "crash", unhealthy=None, crash="")
    res = server.git("push", "yurt", "main", cwd=work, check=False)
    assert res.returncode != 0
    assert "exited with status 3" in res.stderr or "did not accept connections" in res.stderr
    assert "crashing on purpose" in res.stderr
    assert server.app_get("web").text.startswith("1 ")


def test_release_phase_failure_switches_nothing(server: Server, tmp_path: Path) -> None:
    work = deploy_app(server, tmp_path)
    procfile = (work / "Procfile").read_text() + "release: echo migrating; exit 7\n"
    change(server, work, "bad release phase", VERSION="2", Procfile=procfile)
    res = server.git("push", "yurt", "main", cwd=work, check=False)
    assert res.returncode != 0
    assert "migrating" in res.stderr and "release command exited with status 7" in res.stderr
    assert server.app_get("web").text.startswith("1 ")


def test_scale_ps_and_logs(server: Server, tmp_path: Path) -> None:
    deploy_app(server, tmp_path)
    resp = server.api("PATCH", "/api/apps/web/formation", json={"web": 2, "worker": 1})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"web": 2, "worker": 1}
    procs = server.api("GET", "/api/apps/web/processes").json()
    names = sorted(p["name"] for p in procs if p["state"] == "up")
    assert names == ["web.1", "web.2", "worker.1"]
    dynos = {server.app_get("web").text.split()[1] for _ in range(10)}
    assert dynos == {"web.1", "web.2"}
    for bad in ({"web": -1}, {"web": "2"}, {"nope": 1}, {"web": 1000}):
        assert server.api("PATCH", "/api/apps/web/formation", json=bad).status_code == 422
    time.sleep(1.5)
    logs = server.api("GET", "/api/apps/web/logs?lines=50").text
    assert "worker.1 | working" in logs and "web.1 | listening on" in logs
    server.api("PATCH", "/api/apps/web/formation", json={"worker": 0})
    procs = server.api("GET", "/api/apps/web/processes").json()
    assert not [p for p in procs if p["type"] == "worker" and p["state"] == "up"]


def test_apps_keep_serving_while_the_controller_restarts(tmp_path: Path) -> None:
    from tests.conftest import free_port

    ports = {"router_port": free_port(), "admin_port": free_port(), "dns_port": free_port()}
    srv = start_server(tmp_path, "--keep-apps", **ports)
    srv2: Server | None = None
    try:
        deploy_app(srv, tmp_path)
        srv.stop(signal.SIGKILL)
        assert srv.app_get("web").status_code == 200  # supervisord and Caddy live on
        srv2 = start_server(tmp_path, **ports)
        assert srv2.app_get("web").text.startswith("1 ")
        assert releases(srv2, "web")[0]["status"] == "succeeded"
    finally:
        if srv2 is None:  # clean up with a server that stops the apps
            srv.stop()
            srv2 = start_server(tmp_path, **ports)
        srv2.stop()
