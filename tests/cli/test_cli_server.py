"""The ``yurt`` executable against a real ``yurt server`` (the ``server`` fixture)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import Server

UNKNOWN_BUILD = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def repo(server: Server, path: Path) -> Path:
    path.mkdir()
    server.git("init", "-q", cwd=path)
    return path


def assert_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 1, done
    assert done.stderr.splitlines()[-1].startswith("Error: ")
    assert text in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_create_in_a_repo_adds_the_remote(server: Server, tmp_path: Path) -> None:
    work = repo(server, tmp_path / "work")
    done = server.cli("apps:create", "hello", cwd=work)
    git_url = f"{server.url}/hello.git"
    assert git_url in done.stdout
    assert "Git remote yurt added" in done.stderr
    assert server.git("remote", "get-url", "yurt", cwd=work).stdout.strip() == git_url

    listing = server.cli("apps").stdout.splitlines()
    assert listing[0].split()[0] == "NAME"
    assert [line.split()[0] for line in listing[1:]] == ["hello"]

    info = json.loads(server.cli("apps:info", "--json", "-a", "hello").stdout)
    assert (info["name"], info["git_url"]) == ("hello", git_url)
    # Inside the repo the app comes from the 'yurt' remote.
    assert server.cli("apps:info", cwd=work).stdout.startswith("=== hello\n")


def test_invalid_name_is_an_error(server: Server) -> None:
    assert_error(server.cli("apps:create", "Not_Valid", check=False), "Invalid app name")


def test_destroy_with_confirm(server: Server, tmp_path: Path) -> None:
    work = repo(server, tmp_path / "work")
    server.cli("apps:create", "hello", cwd=work)
    assert_error(server.cli("apps:destroy", "hello", cwd=work, check=False), "--confirm hello")
    done = server.cli("apps:destroy", "hello", "--confirm", "hello", cwd=work)
    assert "Git remote yurt removed" in done.stderr
    assert server.git("remote", cwd=work).stdout.strip() == ""
    assert json.loads(server.cli("apps", "--json").stdout) == []
    assert_error(server.cli("apps:info", "-a", "hello", check=False), "hello")


def test_keys_round_trip(server: Server, tmp_path: Path) -> None:
    key = tmp_path / "key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@test", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", f"{key}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    added = server.cli("keys:add", f"{key}.pub", "--name", "laptop")
    assert fingerprint in added.stdout

    keys = json.loads(server.cli("keys", "--json").stdout)
    assert [(k["name"], k["fingerprint"]) for k in keys] == [("laptop", fingerprint)]
    assert fingerprint in server.cli("keys").stdout

    server.cli("keys:remove", fingerprint)
    assert json.loads(server.cli("keys", "--json").stdout) == []
    assert_error(server.cli("keys:remove", "laptop", check=False), "")


def test_keys_add_refuses_the_private_key(server: Server, tmp_path: Path) -> None:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    assert_error(server.cli("keys:add", str(key), check=False), "private key")


def test_builds_of_a_new_app_is_an_empty_table(server: Server) -> None:
    server.cli("apps:create", "hello")
    done = server.cli("builds", "-a", "hello")
    assert done.stdout.split() == ["ID", "STATUS", "COMMIT", "BUILDPACK", "CREATED"]
    assert json.loads(server.cli("builds", "-a", "hello", "--json").stdout) == []


def test_unknown_build_is_an_error(server: Server) -> None:
    server.cli("apps:create", "hello")
    assert_error(server.cli("builds:info", UNKNOWN_BUILD, "-a", "hello", check=False), "")
    assert_error(server.cli("builds:output", "current", "-a", "hello", check=False), "no builds")
    assert_error(server.cli("builds:cancel", "-a", "hello", check=False), "no pending")


def test_buildpacks_set_and_clear(server: Server) -> None:
    server.cli("apps:create", "hello")
    available = json.loads(server.cli("buildpacks", "--json").stdout)
    name = available[0]["name"]
    server.cli("buildpacks:set", name, "-a", "hello")
    assert f"*  {name}" in server.cli("buildpacks", "-a", "hello").stdout
    assert json.loads(server.cli("apps:info", "-a", "hello", "--json").stdout)["buildpack"] == name
    server.cli("buildpacks:clear", "-a", "hello")
    assert json.loads(server.cli("apps:info", "-a", "hello", "--json").stdout)["buildpack"] is None
    assert_error(server.cli("buildpacks:set", "no-such-pack", "-a", "hello", check=False), "")


def test_purge_cache(server: Server) -> None:
    server.cli("apps:create", "hello")
    assert "done" in server.cli("builds:purge-cache", "-a", "hello").stderr


def test_wrong_token_suggests_login(server: Server) -> None:
    env = {**server.env, "YURT_TOKEN": "wrong"}
    done = subprocess.run(["yurt", "apps"], env=env, capture_output=True, text=True, check=False)
    assert_error(done, "yurt login")


def test_login_writes_config_and_git_credentials(server: Server, tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = {k: v for k, v in server.env.items() if k not in ("YURT_URL", "YURT_TOKEN")}
    env["HOME"] = str(home)

    def yurt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["yurt", *args], env=env, capture_output=True, text=True)

    assert_error(yurt("apps"), "No Yurt server configured")
    assert_error(yurt("login", "--url", server.url, "--token", "wrong"), "yurt login")
    done = yurt("login", "--url", server.url, "--token", server.token)
    assert done.returncode == 0, done.stderr
    assert (home / ".config" / "yurt" / "config.json").stat().st_mode & 0o777 == 0o600
    assert yurt("apps").returncode == 0
    assert yurt("auth:token").stdout.strip() == server.token
    host = server.url.removeprefix("http://")
    filled = subprocess.run(
        ["git", "credential", "fill"],
        input=f"protocol=http\nhost={host}\n\n",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"password={server.token}\n" in filled.stdout
