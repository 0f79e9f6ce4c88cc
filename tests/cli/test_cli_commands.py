"""Commands against a fake API: what they request, print, and do to the 'yurt' git remote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import FAKE_URL, Invoke, git, make_git_repo
from tests.cli.fakes import FakeApi, app_json, build_json

OLD, NEW = "01HXOLD0000000000000000000", "01HXNEW0000000000000000000"


def test_apps_table_is_aligned(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps")] = (
        200,
        [app_json("hello", buildpack="python"), app_json("a-longer-name")],
    )
    lines = invoke("apps").stdout.splitlines()
    assert lines[0].split() == ["NAME", "BUILDPACK", "GIT", "URL", "CREATED"]
    assert lines[1].startswith("hello          python     http://127.0.0.1:7100/hello.git")
    assert lines[2].startswith("a-longer-name  -          http://")
    assert "\x1b[" not in "".join(lines)


def test_json_is_exactly_the_api_json(invoke: Invoke, fake_api: FakeApi) -> None:
    apps = [app_json("hello")]
    fake_api.routes[("GET", "/api/apps")] = (200, apps)
    assert json.loads(invoke("apps", "--json").stdout) == apps


def test_empty_list_prints_the_header_and_a_note(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/keys")] = (200, [])
    result = invoke("keys")
    assert result.stdout == "ID  NAME  FINGERPRINT  CREATED\n"
    assert "yurt keys:add" in result.stderr


def test_requests_carry_token_and_user_agent(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps")] = (200, [])
    invoke("apps")
    [request] = fake_api.calls
    assert request.headers["Authorization"] == "Bearer tok"
    assert request.headers["User-Agent"].startswith("yurt-cli/")


def test_create_in_a_repo_adds_then_updates_the_remote(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, invoke: Invoke, fake_api: FakeApi
) -> None:
    repo = make_git_repo(isolated / "repo", "http://elsewhere/old.git")
    git("remote", "remove", "yurt", cwd=repo)
    monkeypatch.chdir(repo)
    fake_api.routes[("POST", "/api/apps")] = (201, app_json("hello"))
    result = invoke("apps:create", "hello")
    assert result.exit_code == 0
    assert result.stdout == "http://127.0.0.1:7100/hello.git\n"
    assert "Git remote yurt added" in result.stderr
    assert git("remote", "get-url", "yurt", cwd=repo) == "http://127.0.0.1:7100/hello.git"
    assert json.loads(fake_api.calls[0].body or b"") == {"name": "hello"}

    git("remote", "set-url", "yurt", "http://elsewhere/old.git", cwd=repo)
    assert "Git remote yurt updated" in invoke("apps:create", "hello").stderr
    assert git("remote", "get-url", "yurt", cwd=repo) == "http://127.0.0.1:7100/hello.git"


def test_create_outside_a_repo_adds_no_remote(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("POST", "/api/apps")] = (201, app_json("hello"))
    result = invoke("apps:create", "hello")
    assert result.exit_code == 0
    assert "remote" not in result.stderr


@pytest.mark.parametrize(("remote_app", "kept"), [("hello", False), ("other", True)])
def test_destroy_removes_only_its_own_remote(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    invoke: Invoke,
    fake_api: FakeApi,
    remote_app: str,
    kept: bool,
) -> None:
    repo = make_git_repo(isolated / "repo", f"{FAKE_URL}/{remote_app}.git")
    monkeypatch.chdir(repo)
    fake_api.routes[("DELETE", "/api/apps/hello")] = (200, app_json("hello"))
    result = invoke("apps:destroy", "hello", "--confirm", "hello")
    assert result.exit_code == 0
    assert result.stderr.startswith("Destroying hello... done\n")
    assert ("yurt" in git("remote", cwd=repo)) is kept


def test_apps_info(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps/hello")] = (200, app_json("hello"))
    assert invoke("apps:info", "-a", "hello").stdout == (
        "=== hello\n"
        "Name:         hello\n"
        "Git URL:      http://127.0.0.1:7100/hello.git\n"
        "SSH Git URL:  -\n"
        "Web URL:      -\n"
        "Release:      (none yet: git push yurt main)\n"
        "Processes:    (none)\n"
        "Buildpack:    (detected on each build)\n"
        "Created:      2024-05-01T12:00:00Z\n"
    )


def test_apps_info_shows_release_and_processes_up_of_wanted(
    invoke: Invoke, fake_api: FakeApi
) -> None:
    fake_api.routes[("GET", "/api/apps/hello")] = (
        200,
        app_json(
            "hello",
            current_release="v3",
            formation={"web": 2, "worker": 1},
            processes={"web": 1, "worker": 1},
        ),
    )
    out = invoke("apps:info", "-a", "hello").stdout
    assert "Release:      v3\n" in out
    assert "Processes:    web: 1/2, worker: 1/1\n" in out


def test_domains_commands(invoke: Invoke, fake_api: FakeApi) -> None:
    domain = {"hostname": "www.example.com", "app": "hello", "default": False, "created_at": None}
    fake_api.routes[("POST", "/api/apps/hello/domains")] = (201, domain)
    fake_api.routes[("DELETE", "/api/apps/hello/domains/www.example.com")] = (200, domain)
    fake_api.routes[("GET", "/api/apps/hello/domains")] = (
        200,
        [
            {"hostname": "hello.localhost", "app": "hello", "default": True, "created_at": None},
            domain,
        ],
    )
    result = invoke("domains:add", "www.example.com", "-a", "hello")
    assert result.exit_code == 0 and "Point www.example.com's DNS" in result.stderr
    assert fake_api.calls[-1].body == b'{"hostname": "www.example.com"}'
    listed = invoke("domains", "-a", "hello").stdout
    assert listed.index("hello.localhost") < listed.index("www.example.com")
    assert invoke("domains:remove", "www.example.com", "-a", "hello").exit_code == 0


def test_builds_output_current_streams_the_newest(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps/hello/builds")] = (
        200,
        [build_json(NEW, "building"), build_json(OLD)],
    )
    fake_api.routes[("GET", f"/api/apps/hello/builds/{NEW}/output")] = (200, b"-----> Python\n")
    result = invoke("builds:output", "current", "-a", "hello")
    assert result.exit_code == 0
    assert result.stdout == "-----> Python\n"
    assert fake_api.calls[-1].url and fake_api.calls[-1].url.endswith(f"/{NEW}/output")


def test_builds_output_no_follow(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", f"/api/apps/hello/builds/{OLD}/output")] = (200, b"log")
    invoke("builds:output", OLD, "-a", "hello", "--no-follow")
    assert fake_api.calls[-1].url == f"{FAKE_URL}/api/apps/hello/builds/{OLD}/output?follow=false"


def test_builds_table(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps/hello/builds")] = (200, [build_json(OLD)])
    lines = invoke("builds", "-a", "hello").stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "COMMIT", "BUILDPACK", "CREATED"]
    assert lines[1].split() == [OLD, "succeeded", "0123456", "python", "2024-05-01T12:00:00Z"]


def test_cancel_defaults_to_the_newest_running_build(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps/hello/builds")] = (
        200,
        [build_json(NEW, "succeeded"), build_json(OLD, "pending")],
    )
    cancel = ("POST", f"/api/apps/hello/builds/{OLD}/cancel")
    fake_api.routes[cancel] = (200, build_json(OLD, "cancelled"))
    result = invoke("builds:cancel", "-a", "hello")
    assert result.exit_code == 0
    assert fake_api.paths()[-1] == " ".join(cancel)


def test_cancel_with_nothing_running_is_an_error(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps/hello/builds")] = (200, [build_json(OLD)])
    result = invoke("builds:cancel", "-a", "hello")
    assert result.exit_code == 1
    assert result.stderr == "Error: hello has no pending or running build to cancel.\n"


def test_build_ids_are_path_encoded(invoke: Invoke, fake_api: FakeApi) -> None:
    invoke("builds:info", "../../keys", "-a", "hello")
    assert fake_api.paths() == ["GET /api/apps/hello/builds/..%2F..%2Fkeys"]


def test_buildpacks_marks_the_pinned_one(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/buildpacks")] = (
        200,
        [{"name": "python", "detects": "requirements.txt"}, {"name": "node", "detects": "x"}],
    )
    fake_api.routes[("GET", "/api/apps/hello")] = (200, app_json("hello", buildpack="node"))
    lines = invoke("buildpacks", "-a", "hello").stdout.splitlines()
    assert lines[1:] == ["   python  requirements.txt", "*  node    x"]


@pytest.mark.parametrize(
    ("args", "body"),
    [
        (["buildpacks:set", "python"], {"buildpack": "python"}),
        (["buildpacks:clear"], {"buildpack": None}),
    ],
)
def test_buildpack_set_and_clear(
    invoke: Invoke, fake_api: FakeApi, args: list[str], body: dict[str, object]
) -> None:
    fake_api.routes[("PATCH", "/api/apps/hello")] = (200, app_json("hello"))
    assert invoke(*args, "-a", "hello").exit_code == 0
    assert json.loads(fake_api.calls[0].body or b"") == body


def test_keys_add_reads_the_default_key(
    isolated: Path, invoke: Invoke, fake_api: FakeApi, tmp_path: Path
) -> None:
    ssh = tmp_path / "cli-home" / ".ssh"
    ssh.mkdir()
    (ssh / "id_rsa.pub").write_text("ssh-rsa AAAA me@host\n")
    key = {
        "id": "k1",
        "name": "me@host",
        "fingerprint": "SHA256:abc",
        "public_key": "x",
        "created_at": "2024-05-01T12:00:00Z",
    }
    fake_api.routes[("POST", "/api/keys")] = (201, key)
    result = invoke("keys:add")
    assert result.exit_code == 0, result.output
    assert result.stdout == "me@host  SHA256:abc\n"
    assert json.loads(fake_api.calls[0].body or b"") == {"public_key": "ssh-rsa AAAA me@host"}


def test_keys_add_refuses_a_private_key(isolated: Path, invoke: Invoke, fake_api: FakeApi) -> None:
    (isolated / "id").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    result = invoke("keys:add", "id")
    assert result.exit_code == 1
    assert "is a private key" in result.stderr
    assert fake_api.calls == []


def test_keys_add_without_any_key(invoke: Invoke) -> None:
    result = invoke("keys:add")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: No public key at ")


def test_keys_remove_by_fingerprint_encodes_it(invoke: Invoke, fake_api: FakeApi) -> None:
    invoke("keys:remove", "SHA256:ab/c+d")
    assert fake_api.paths() == ["DELETE /api/keys/SHA256%3Aab%2Fc%2Bd"]
