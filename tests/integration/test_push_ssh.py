"""git push over SSH through the real sshd that ``yurt server --ssh-listen`` starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, Server, free_port, make_repo, start_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path("/usr/sbin/sshd").exists(),
        reason="needs sshd: install openssh-server (apt-get install -y openssh-server)",
    ),
]
FIXTURE_PACKS = ROOT / "tests" / "fixtures" / "buildpacks"


@pytest.fixture
def ssh_server(tmp_path: Path) -> Server:
    srv = start_server(
        tmp_path, "--ssh-listen", f"127.0.0.1:{free_port()}", "--buildpacks-dir", str(FIXTURE_PACKS)
    )
    yield srv
    srv.stop()


def test_push_over_ssh_builds_and_removed_keys_are_refused(
    ssh_server: Server, tmp_path: Path
) -> None:
    srv = ssh_server
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    srv.cli("keys:add", str(key) + ".pub")
    srv.cli("apps:create", "sshy")
    info = srv.api("GET", "/api/apps/sshy").json()
    assert info["ssh_git_url"].startswith("ssh://") and info["ssh_git_url"].endswith("/sshy.git")
    work = tmp_path / "work"
    work.mkdir()
    (work / "echo.marker").write_text("")
    make_repo(work, None, srv.env)
    env = {
        **srv.env,
        "GIT_SSH_COMMAND": f"ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
    }
    push = subprocess.run(
        ["git", "push", info["ssh_git_url"], "main"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert push.returncode == 0, push.stderr
    assert "remote: -----> Echo buildpack" in push.stderr
    builds = srv.api("GET", "/api/apps/sshy/builds").json()
    assert [b["status"] for b in builds] == ["succeeded"]
    # Unknown apps get the hint over SSH too.
    bad = subprocess.run(
        ["git", "push", info["ssh_git_url"].replace("sshy", "nope"), "main"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "yurt apps:create nope" in bad.stderr
    # After keys:remove the same key is refused.
    fingerprint = srv.api("GET", "/api/keys").json()[0]["fingerprint"]
    srv.cli("keys:remove", fingerprint)
    (work / "more").write_text("x")
    subprocess.run(["git", "add", "-A"], cwd=work, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "more"], cwd=work, env=env, check=True)
    refused = subprocess.run(
        ["git", "push", info["ssh_git_url"], "main"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr
