"""git push over HTTP to a real ``yurt server``: builds, streaming, rejection, queueing, limits.

These tests use the fixture buildpacks in tests/fixtures/buildpacks (slow, fail, hang, noisy,
echo) so they can control how a build behaves; the real buildpacks have their own tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, Server, make_repo, shared_dir, start_server

FIXTURE_PACKS = ROOT / "tests" / "fixtures" / "buildpacks"
pytestmark = pytest.mark.integration


@pytest.fixture
def srv(tmp_path: Path) -> Server:
    server = start_server(tmp_path, "--buildpacks-dir", str(FIXTURE_PACKS))
    yield server
    server.stop()


def new_app(srv: Server, tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    srv.cli("apps:create", name)
    work = tmp_path / f"work-{name}"
    work.mkdir()
    for rel, text in files.items():
        (work / rel).write_text(text)
    make_repo(work, None, srv.env)
    srv.git("remote", "add", "yurt", f"{srv.url}/{name}.git", cwd=work)
    return work


def repo_ref(srv: Server, app: str, ref: str = "refs/heads/main") -> str | None:
    res = subprocess.run(
        [
            "git",
            "--git-dir",
            str(srv.data_dir / "repos" / f"{app}.git"),
            "rev-parse",
            "--verify",
            "-q",
            ref,
        ],
        capture_output=True,
        text=True,
    )
    return res.stdout.strip() or None


def head(srv: Server, work: Path) -> str:
    return srv.git("rev-parse", "HEAD", cwd=work).stdout.strip()


def start_push(srv: Server, work: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["git", "push", "--progress", "yurt", *args],
        cwd=work,
        env=srv.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(p: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    """Read the push's output line by line until ``needle`` shows up (the push still running)."""
    assert p.stdout is not None
    seen: list[str] = []
    result: dict[str, bool] = {}

    def reader() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            seen.append(line)
            if needle in line:
                result["found"] = True
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    assert result.get("found"), f"{needle!r} not seen in:\n{''.join(seen)}"
    return "".join(seen)


def finish(p: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out or ""


def builds(srv: Server, app: str) -> list[dict[str, object]]:
    resp = srv.api("GET", f"/api/apps/{app}/builds")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_push_streams_output_live_and_lands(srv: Server, tmp_path: Path) -> None:
    gate = shared_dir(tmp_path) / "gate"
    work = new_app(srv, tmp_path, "live", {"slow.marker": str(gate)})
    push = start_push(srv, work, "main")
    early = read_until(push, "Slow buildpack started")
    assert push.poll() is None, "the output should arrive while the build still runs"
    assert repo_ref(srv, "live") is None, "the ref must not move before the build succeeds"
    # The same output is followable through the API while the build runs.
    build_id = builds(srv, "live")[0]["id"]
    assert builds(srv, "live")[0]["status"] == "building"
    gate.write_text("go")
    code, rest = finish(push)
    out = early + rest
    assert code == 0, out
    assert "remote: -----> Slow app detected" in out or "remote: -----> slow app detected" in out
    assert "gate opened" in out
    assert repo_ref(srv, "live") == head(srv, work)
    build = srv.api("GET", f"/api/apps/live/builds/{build_id}").json()
    assert build["status"] == "succeeded"
    assert build["commit"] == head(srv, work)
    assert build["buildpack"] == "slow"
    assert build["slug"]["size"] > 0 and build["slug"]["checksum"].startswith("sha256:")
    log = srv.api("GET", f"/api/apps/live/builds/{build_id}/output").text
    assert "Slow buildpack started" in log and "gate opened" in log


def test_failed_build_rejects_push_and_repo_does_not_advance(srv: Server, tmp_path: Path) -> None:
    work = new_app(srv, tmp_path, "broken", {"fail.marker": ""})
    res = srv.git("push", "yurt", "main", cwd=work, check=False)
    assert res.returncode != 0
    assert "[remote rejected] main -> main" in res.stderr
    assert "Something the app did is wrong" in res.stderr
    assert " !     Push rejected, failed to compile fail app." in res.stderr
    assert repo_ref(srv, "broken") is None
    [build] = builds(srv, "broken")
    assert build["status"] == "failed"
    assert "failed to compile" in str(build["error"])
    assert build["slug"] is None


def test_unknown_app_is_rejected_with_a_hint(srv: Server, tmp_path: Path) -> None:
    work = make_repo(tmp_path / "w", None, srv.env)
    res = srv.git("push", f"{srv.url}/nope.git", "main", cwd=work, check=False)
    assert res.returncode != 0
    assert "App 'nope' does not exist. Create it with: yurt apps:create nope" in res.stderr


def test_wrong_token_is_refused(srv: Server, tmp_path: Path) -> None:
    work = new_app(srv, tmp_path, "authy", {"echo.marker": ""})
    url = srv.url.replace("http://", "http://x:wrong@") + "/authy.git"
    env = {**srv.env, "HOME": str(tmp_path)}  # no credential helper here
    res = subprocess.run(
        ["git", "push", url, "main"], cwd=work, env=env, capture_output=True, text=True
    )
    assert res.returncode != 0
    assert "Authentication failed" in res.stderr
    assert builds(srv, "authy") == []


def test_other_branches_land_without_a_build_and_no_new_commit_no_build(
    srv: Server, tmp_path: Path
) -> None:
    work = new_app(srv, tmp_path, "branchy", {"echo.marker": ""})
    res = srv.git("push", "yurt", "main:feature", cwd=work)
    assert (
        "Pushed feature: only main (or master, in repos without main) deploys; no build."
        in res.stderr
    )
    assert builds(srv, "branchy") == []
    srv.git("push", "yurt", "main", cwd=work)
    assert len(builds(srv, "branchy")) == 1
    again = srv.git("push", "yurt", "main", cwd=work)
    assert "Everything up-to-date" in again.stderr
    assert len(builds(srv, "branchy")) == 1


def test_master_deploys_in_repos_without_main(srv: Server, tmp_path: Path) -> None:
    srv.cli("apps:create", "legacy")
    work = tmp_path / "legacy"
    work.mkdir()
    (work / "echo.marker").write_text("")
    make_repo(work, None, srv.env, branch="master")
    res = srv.git("push", f"{srv.url}/legacy.git", "master", cwd=work)
    assert "Echo buildpack" in res.stderr
    assert builds(srv, "legacy")[0]["ref"] == "refs/heads/master"


def test_cache_survives_between_builds_and_build_env(srv: Server, tmp_path: Path) -> None:
    work = new_app(srv, tmp_path, "cachey", {"echo.marker": ""})
    first = srv.git("push", "yurt", "main", cwd=work).stderr
    assert "cache had: " in first and "stamp-" not in first
    assert f"source version: {head(srv, work)}" in first
    assert "env dir: 0 vars" in first
    assert "stack: yurt-24" in first
    srv.git("commit", "--allow-empty", "-qm", "second", cwd=work)
    second = srv.git("push", "yurt", "main", cwd=work).stderr
    assert "stamp-" in second, "the cache dir of the first build must be there for the second"
    # Purging the cache starts the next build cold.
    srv.cli("builds:purge-cache", "-a", "cachey")
    srv.git("commit", "--allow-empty", "-qm", "third", cwd=work)
    third = srv.git("push", "yurt", "main", cwd=work).stderr
    assert "stamp-" not in third


def test_concurrent_pushes_to_one_app_run_one_at_a_time(srv: Server, tmp_path: Path) -> None:
    gate = shared_dir(tmp_path) / "gate"
    work = new_app(srv, tmp_path, "queue", {"slow.marker": str(gate)})
    other = tmp_path / "other"
    srv.git("clone", "-q", str(work), str(other), cwd=tmp_path)
    srv.git("remote", "add", "yurt", f"{srv.url}/queue.git", cwd=other)
    gate2 = shared_dir(tmp_path) / "gate2"
    (other / "slow.marker").write_text(str(gate2))
    srv.git("add", "-A", cwd=other)
    srv.git("commit", "-qm", "second", cwd=other)

    first = start_push(srv, work, "main")
    read_until(first, "Slow buildpack started")
    second = start_push(srv, other, "main")
    read_until(second, "Another build of queue is running; waiting for it to finish")
    assert [b["status"] for b in builds(srv, "queue")] == ["pending", "building"]
    gate.write_text("fail")  # the first build fails, so the second one's base is still valid
    code1, out1 = finish(first)
    assert code1 != 0, out1
    gate2.write_text("go")
    code2, out2 = finish(second)
    assert code2 == 0, out2
    b2, b1 = builds(srv, "queue")
    assert b1["status"] == "failed" and b2["status"] == "succeeded"
    assert str(b2["started_at"]) >= str(b1["finished_at"])
    assert repo_ref(srv, "queue") == head(srv, other)


def test_a_waiting_push_whose_base_moved_fails_fast(srv: Server, tmp_path: Path) -> None:
    gate = shared_dir(tmp_path) / "gate"
    work = new_app(srv, tmp_path, "racy", {"slow.marker": str(gate)})
    other = tmp_path / "other"
    srv.git("clone", "-q", str(work), str(other), cwd=tmp_path)
    srv.git("remote", "add", "yurt", f"{srv.url}/racy.git", cwd=other)
    srv.git("commit", "--allow-empty", "-qm", "second", cwd=other)
    first = start_push(srv, work, "main")
    read_until(first, "Slow buildpack started")
    second = start_push(srv, other, "main")
    read_until(second, "waiting for it to finish")
    gate.write_text("go")
    assert finish(first)[0] == 0
    code, out = finish(second)
    assert code != 0
    assert "main moved to" in out and "Fetch, merge and push again." in out
    assert repo_ref(srv, "racy") == head(srv, work)


def test_cancel_stops_the_build_and_its_children(srv: Server, tmp_path: Path) -> None:
    pidfile = shared_dir(tmp_path) / "child.pid"
    work = new_app(srv, tmp_path, "hangs", {"hang.marker": str(pidfile)})
    push = start_push(srv, work, "main")
    read_until(push, "Hanging")
    for _ in range(50):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    child = int(pidfile.read_text())
    build_id = builds(srv, "hangs")[0]["id"]
    resp = srv.api("POST", f"/api/apps/hangs/builds/{build_id}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"
    code, out = finish(push)
    assert code != 0 and "Build cancelled" in out
    assert repo_ref(srv, "hangs") is None
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the buildpack's child process survived the cancel")
    again = srv.api("POST", f"/api/apps/hangs/builds/{build_id}/cancel")
    assert again.status_code == 409 and again.json()["id"] == "conflict"


def test_build_timeout_and_log_cap_fail_the_build(tmp_path: Path) -> None:
    srv = start_server(
        tmp_path,
        "--buildpacks-dir",
        str(FIXTURE_PACKS),
        "--build-timeout",
        "2",
        "--build-log-cap",
        "200000",
    )
    try:
        work = new_app(
            srv, tmp_path, "slowpoke", {"hang.marker": str(shared_dir(tmp_path) / "pid")}
        )
        res = srv.git("push", "yurt", "main", cwd=work, check=False)
        assert res.returncode != 0 and "Build timed out after 2 s." in res.stderr
        loud = new_app(srv, tmp_path, "loud", {"noisy.marker": ""})
        res = srv.git("push", "yurt", "main", cwd=loud, check=False)
        assert res.returncode != 0
        assert "its log passed the cap of 200000 bytes" in res.stderr
        [build] = builds(srv, "loud")
        assert build["status"] == "failed"
        # The server keeps serving other requests.
        assert srv.api("GET", "/api/apps").status_code == 200
    finally:
        srv.stop()


def test_large_push_works_with_default_client_settings(srv: Server, tmp_path: Path) -> None:
    work = new_app(srv, tmp_path, "big", {"echo.marker": ""})
    (work / "blob.bin").write_bytes(os.urandom(55 * 1024 * 1024))
    srv.git("add", "blob.bin", cwd=work)
    srv.git("commit", "-qm", "big", cwd=work)
    res = srv.git("push", "yurt", "main", cwd=work)
    assert "Echo buildpack" in res.stderr
    assert repo_ref(srv, "big") == head(srv, work)
    assert builds(srv, "big")[0]["slug"]["size"] > 50 * 1024 * 1024


def test_server_killed_mid_build_marks_it_interrupted(tmp_path: Path) -> None:
    gate = shared_dir(tmp_path) / "gate"
    srv = start_server(tmp_path, "--buildpacks-dir", str(FIXTURE_PACKS))
    work = new_app(srv, tmp_path, "crashy", {"slow.marker": str(gate)})
    push = start_push(srv, work, "main")
    read_until(push, "Slow buildpack started")
    srv.stop(signal.SIGKILL)
    code, out = finish(push)
    assert code != 0, out
    srv2 = start_server(tmp_path, "--buildpacks-dir", str(FIXTURE_PACKS))
    try:
        [build] = builds(srv2, "crashy")
        assert build["status"] == "failed"
        assert "interrupted" in str(build["error"])
        assert repo_ref(srv2, "crashy") is None
        gate.write_text("go")
        url = srv2.url.replace("http://", f"http://x:{srv2.token}@") + "/crashy.git"
        res = srv2.git("push", url, "main", cwd=work)
        assert "gate opened" in res.stderr
        assert repo_ref(srv2, "crashy") == head(srv2, work)
    finally:
        srv2.stop()


def test_destroy_cancels_a_running_build(srv: Server, tmp_path: Path) -> None:
    gate = shared_dir(tmp_path) / "gate"
    work = new_app(srv, tmp_path, "doomed", {"slow.marker": str(gate)})
    push = start_push(srv, work, "main")
    read_until(push, "Slow buildpack started")
    app_id = srv.api("GET", "/api/apps/doomed").json()["id"]
    srv.cli("apps:destroy", "doomed", "--confirm", "doomed")
    code, _ = finish(push)
    assert code != 0
    assert srv.api("GET", "/api/apps/doomed").status_code == 404
    assert not (srv.data_dir / "repos" / "doomed.git").exists()
    assert not (srv.data_dir / "cache" / app_id).exists()
    assert not (srv.data_dir / "slugs" / app_id).exists()


def test_dockerfile_and_undetectable_apps_get_clear_messages(tmp_path: Path) -> None:
    srv = start_server(tmp_path)  # the bundled buildpacks
    try:
        work = new_app(srv, tmp_path, "docker", {"Dockerfile": "FROM scratch\n"})
        res = srv.git("push", "yurt", "main", cwd=work, check=False)
        assert res.returncode != 0
        assert "Dockerfile builds run on the nomad runtime" in res.stderr
        work = new_app(srv, tmp_path, "mystery", {"README": "what am I\n"})
        res = srv.git("push", "yurt", "main", cwd=work, check=False)
        assert res.returncode != 0
        assert "no buildpack detected this app" in res.stderr
        for name in ("nodejs", "python", "static", "procfile"):
            assert f"remote:  !       {name}: " in res.stderr
    finally:
        srv.stop()


def test_pusher_disconnect_does_not_stop_the_build(srv: Server, tmp_path: Path) -> None:
    gate = shared_dir(tmp_path) / "gate"
    work = new_app(srv, tmp_path, "quitter", {"slow.marker": str(gate)})
    push = subprocess.Popen(
        ["git", "push", "yurt", "main"],
        cwd=work,
        env=srv.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    read_until(push, "Slow buildpack started")
    os.killpg(push.pid, signal.SIGKILL)  # the pusher and its git helpers vanish
    push.wait()
    gate.write_text("go")
    for _ in range(100):
        [build] = builds(srv, "quitter")
        if build["status"] != "building":
            break
        time.sleep(0.2)
    assert build["status"] == "succeeded"
    for _ in range(50):
        if repo_ref(srv, "quitter") == head(srv, work):
            break
        time.sleep(0.1)
    assert repo_ref(srv, "quitter") == head(srv, work), "the landed ref must match the build"


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    assert srv.stop(signal.SIGTERM) == 0
    assert "Yurt is stopping" in srv.log()
    assert not (srv.data_dir / "run" / "controller.json").exists()
