"""Operating apps on the local runtime: crashes, domains, ps:stop/start, pruning, and bringing
everything back after Caddy, supervisord or the whole machine went away."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from controller.runtime.local.runtime import private_run_dir
from controller.runtime.local.supervisor import MARKER_VAR, Supervisor, _marked_pids
from tests.conftest import Server, free_port, start_server
from tests.integration.test_local_runtime import change, deploy_app, releases

pytestmark = pytest.mark.integration


def wait_until(check: Callable[[], object], timeout: float = 60.0, what: str = "it") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def processes(srv: Server, app: str = "web") -> dict[str, dict[str, object]]:
    return {p["name"]: p for p in srv.api("GET", f"/api/apps/{app}/processes").json()}


def release_dir(srv: Server, app: str, version: int) -> Path:
    """vN's unpacked dir (named vN-BUILD); a path that does not exist if there is none."""
    found = sorted((srv.data_dir / "apps" / app / "releases").glob(f"v{version}-*"))
    return found[0] if found else srv.data_dir / "apps" / app / "releases" / f"v{version}"


def test_crash_loop_backs_off_shows_crashed_and_leaves_the_routes(
    server: Server, tmp_path: Path
) -> None:
    deploy_app(server, tmp_path)
    deploy_app(server, tmp_path, "other")
    server.api("PATCH", "/api/apps/web/formation", json={"web": 2})
    # web.1 will now crash at every start, until the file goes.
    crash_file = release_dir(server, "web", 1) / "crash"
    crash_file.write_text("")
    web1_port = processes(server)["web.1"]["port"]
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{web1_port}/crash", timeout=5)

    def crash_looping() -> dict[str, object] | None:
        web1 = processes(server)["web.1"]
        looping = web1["state"] == "crashed" and web1["exit_status"] == 3
        return web1 if looping and web1["restarts"] >= 3 else None  # type: ignore[operator]

    wait_until(crash_looping, what="web.1 crashing at boot, retried by supervisord")
    assert processes(server)["web.2"]["state"] == "up"
    # Out of the routes: every request is answered by web.2, and the other app is untouched.
    for _ in range(10):
        resp = server.app_get("web")
        assert resp.status_code == 200 and " web.2 " in resp.text
    assert server.app_get("other").status_code == 200
    out = server.cli("ps", "-a", "web").stdout
    assert "web.1: crashed (exit status 3)" in out
    logs = wait_until(
        lambda: (
            (text := server.api("GET", "/api/apps/web/logs?lines=100&ps=web.1").text)
            and "yurt: web.1 crashed (exit status 3); restarting in 5 s" in text
            and text
        ),
        what="the backoff note in the log",
    )
    assert "crashing on purpose" in str(logs)
    # Fixed: the backoff restart brings it back into the routes.
    crash_file.unlink()
    wait_until(lambda: processes(server)["web.1"]["state"] == "up", what="web.1 up again")
    wait_until(
        lambda: any(" web.1 " in server.app_get("web").text for _ in range(6)),
        what="web.1 routed again",
    )


def test_domains_route_validate_and_belong_to_one_app(server: Server, tmp_path: Path) -> None:
    deploy_app(server, tmp_path)
    server.cli("apps:create", "second")
    add = server.cli("domains:add", "WWW.Example.com.", "-a", "web")
    assert add.returncode == 0, add.stderr
    resp = requests.get(
        f"http://127.0.0.1:{server.router_port}/", headers={"Host": "www.example.com"}, timeout=10
    )
    assert resp.status_code == 200 and resp.text.startswith("1 web.1")
    # The router's access line for it, with logs --source router.
    router_logs = wait_until(
        lambda: (
            "GET www.example.com/ 200"
            in (out := server.cli("logs", "--source", "router", "-a", "web").stdout)
            and out
        ),
        what="the router's access line",
    )
    assert str(router_logs).startswith("router | 20")
    listed = server.api("GET", "/api/apps/web/domains").json()
    assert [(d["hostname"], d["default"]) for d in listed] == [
        ("web.localhost", True),
        ("www.example.com", False),
    ]
    taken = server.api("POST", "/api/apps/second/domains", json={"hostname": "www.example.com"})
    assert taken.status_code == 409 and "already routed to the app web" in taken.json()["message"]
    for bad in ("not a host", "-x.example.com", "localhost", "10.0.0.1", "a" * 64 + ".com", ""):
        resp = server.api("POST", "/api/apps/second/domains", json={"hostname": bad})
        assert resp.status_code == 422, (bad, resp.text)
    reserved = server.api("POST", "/api/apps/second/domains", json={"hostname": "web.localhost"})
    assert reserved.status_code == 422 and "reserved" in reserved.json()["message"]
    cli = server.cli("domains:add", "bad_host!", "-a", "second", check=False)
    assert cli.returncode == 1 and "\nError: Invalid domain 'bad_host!'" in cli.stderr
    assert server.cli("domains:remove", "www.example.com", "-a", "web").returncode == 0
    gone = requests.get(
        f"http://127.0.0.1:{server.router_port}/", headers={"Host": "www.example.com"}, timeout=10
    )
    assert gone.status_code == 404
    missing = server.api("DELETE", "/api/apps/web/domains/www.example.com")
    assert missing.status_code == 404


def test_ps_stop_and_start(server: Server, tmp_path: Path) -> None:
    deploy_app(server, tmp_path)
    server.cli("ps:stop", "-a", "web")
    assert server.app_get("web").status_code == 503
    assert processes(server) == {}
    info = server.api("GET", "/api/apps/web").json()
    assert info["stopped"] is True and info["processes"] == {"web": 0, "worker": 0}
    # Scaling a stopped app records the formation; ps:start runs it.
    server.api("PATCH", "/api/apps/web/formation", json={"web": 2})
    assert processes(server) == {}
    out = server.cli("ps:start", "-a", "web").stdout
    assert "web.1: up" in out and "web.2: up" in out
    assert server.app_get("web").status_code == 200
    info = server.api("GET", "/api/apps/web").json()
    assert info["stopped"] is False and info["processes"] == {"web": 2, "worker": 0}
    assert info["current_release"] == "v1" and info["formation"] == {"web": 2, "worker": 0}


def test_old_slugs_and_release_dirs_are_pruned(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--keep-releases", "2")
    try:
        work = deploy_app(srv, tmp_path)
        for n in (2, 3, 4):
            change(srv, work, f"v{n}", VERSION=str(n))
            srv.git("push", "yurt", "main", cwd=work)
        rels = {r["version"]: r for r in releases(srv, "web")}
        slugs = sorted((srv.data_dir / "slugs").rglob("*.tgz"))
        assert len(slugs) == 2, slugs
        # v2's dir goes once its instances have been retired (they drain first).
        wait_until(
            lambda: (
                not release_dir(srv, "web", 1).exists() and not release_dir(srv, "web", 2).exists()
            ),
            what="v1 and v2 release dirs pruned",
        )
        assert release_dir(srv, "web", 4).exists()
        pruned = srv.api("POST", "/api/apps/web/releases", json={"release": "v1"})
        assert pruned.status_code == 422 and "pruned" in pruned.json()["message"]
        assert srv.api("POST", "/api/apps/web/releases", json={"release": "v3"}).status_code == 201
        assert srv.app_get("web").text.startswith("3 ")
        assert rels[1]["status"] == "succeeded"  # history stays; only the files go
    finally:
        srv.stop()


def test_caddy_and_supervisord_killed_are_restored(server: Server, tmp_path: Path) -> None:
    deploy_app(server, tmp_path)
    caddy_pid = int((server.data_dir / "runtime" / "caddy" / "caddy.pid").read_text())
    os.kill(caddy_pid, signal.SIGKILL)
    wait_until(lambda: server.app_get("web").status_code == 200, what="Caddy restored")
    sup_dir = private_run_dir(server.data_dir)
    sup_pid = int((sup_dir / "supervisord.pid").read_text())
    os.kill(sup_pid, signal.SIGKILL)
    wait_until(
        lambda: (sup_dir / "supervisord.pid").read_text().strip() != str(sup_pid),
        what="a new supervisord",
    )
    wait_until(lambda: server.app_get("web").status_code == 200, what="the app served again")
    assert processes(server)["web.1"]["state"] == "up"


def _kill_everything(srv: Server) -> None:
    """What a reboot does: every process gone, and /run (tmpfs) emptied."""
    srv.stop(signal.SIGKILL)
    sup_dir = private_run_dir(srv.data_dir)
    marker = Supervisor(sup_dir, srv.data_dir / "logs" / "supervisor").marker
    apps = list(_marked_pids(f"{MARKER_VAR}={marker}".encode()))
    assert apps, "the app's processes should be running"
    for pid_file in (sup_dir / "supervisord.pid", srv.data_dir / "runtime/caddy/caddy.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    for pid in apps:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(sup_dir)
    shutil.rmtree(sup_dir.with_name(sup_dir.name.replace("supervisor-", "env-")))


def test_reboot_restores_every_app_from_the_db(tmp_path: Path) -> None:
    ports = {"router_port": free_port(), "admin_port": free_port()}
    srv = start_server(tmp_path, "--keep-apps", **ports)
    srv2: Server | None = None
    try:
        deploy_app(srv, tmp_path)
        srv.api("PATCH", "/api/apps/web/formation", json={"web": 2})
        _kill_everything(srv)
        with pytest.raises(requests.RequestException):
            srv.app_get("web")
        srv2 = start_server(tmp_path, **ports)
        wait_until(lambda: srv2.app_get("web").status_code == 200, what="the app restored")
        assert sorted(processes(srv2)) == ["web.1", "web.2"]
        assert [r["version"] for r in releases(srv2, "web")] == [1]  # no new release
    finally:
        (srv2 or srv).stop()
        if srv2 is None:
            start_server(tmp_path, **ports).stop()


def test_controller_killed_mid_deploy_leaves_the_old_release_serving(tmp_path: Path) -> None:
    ports = {"router_port": free_port(), "admin_port": free_port()}
    srv = start_server(tmp_path, "--keep-apps", **ports)
    srv2: Server | None = None
    try:
        work = deploy_app(srv, tmp_path)
        change(srv, work, "slow v2", VERSION="2", **{"slow-boot": "8"})
        push = subprocess.Popen(
            ["git", "push", "yurt", "main"],
            cwd=work,
            env=srv.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # Kill the controller while v2 is starting (booting takes 8 s).
        wait_until(
            lambda: any(r["status"] == "deploying" for r in releases(srv, "web")),
            what="v2 deploying",
        )
        time.sleep(1)
        srv.stop(signal.SIGKILL)
        push.wait(60)
        assert push.returncode != 0
        assert srv.app_get("web").text.startswith("1 ")  # never nothing
        srv2 = start_server(tmp_path, **ports)
        rels = {r["version"]: r for r in releases(srv2, "web")}
        assert rels[2]["status"] == "failed" and "interrupted" in str(rels[2]["error"])
        assert rels[1]["current"] is True
        assert srv2.app_get("web").text.startswith("1 ")
        assert {p["release"] for p in processes(srv2).values()} == {"v1"}
    finally:
        (srv2 or srv).stop()
        if srv2 is None:
            start_server(tmp_path, **ports).stop()


def test_a_recreated_app_user_gets_the_release_dir_back(server: Server, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("per-app users need root; as a normal user apps share its rights")
    import pwd

    # Its own app name: other tests (and other workers) run apps as yurt-web meanwhile.
    deploy_app(server, tmp_path, "reuid")
    old_uid = pwd.getpwnam("yurt-reuid").pw_uid
    # What another Yurt on the machine (or apps:destroy + create) can do: the user comes back
    # with another uid, and the release dir still belongs to the old one.
    # An explicit uid no other user has (useradd's own choice may reuse the freed one).
    taken = {entry.pw_uid for entry in pwd.getpwall()}
    new_uid = next(u for u in range(60000, 61000) if u not in taken)
    server.cli("ps:stop", "-a", "reuid")
    subprocess.run(["userdel", "yurt-reuid"], check=True)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "-u", str(new_uid), "yurt-reuid"],
        check=True,
    )
    assert pwd.getpwnam("yurt-reuid").pw_uid == new_uid != old_uid
    server.cli("ps:start", "-a", "reuid")
    assert server.app_get("reuid").status_code == 200
    assert release_dir(server, "reuid", 1).stat().st_uid == new_uid
