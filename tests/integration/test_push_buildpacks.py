"""Real buildpacks through real pushes: the example app, cache reuse, node and static apps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, Server, make_repo

pytestmark = pytest.mark.integration
APPS = ROOT / "tests" / "apps"


def push_app(server: Server, tmp_path: Path, name: str, source: Path) -> Path:
    server.cli("apps:create", name)
    work = make_repo(tmp_path / name, source, server.env)
    server.git("remote", "add", "yurt", f"{server.url}/{name}.git", cwd=work)
    return work


def test_example_python_app_builds_then_reuses_its_cache(server: Server, tmp_path: Path) -> None:
    work = push_app(server, tmp_path, "hello", ROOT / "examples" / "hello-python")
    first = server.git("push", "yurt", "main", cwd=work).stderr
    assert "remote: -----> Python app detected" in first
    assert "Procfile declares types -> web" in first
    builds = server.api("GET", "/api/apps/hello/builds").json()
    assert builds[0]["status"] == "succeeded"
    assert builds[0]["buildpack"] == "python"
    assert builds[0]["process_types"]["web"].startswith("gunicorn app:app")
    (work / "app.py").write_text((work / "app.py").read_text().replace("Hello", "Hi"))
    server.git("commit", "-qam", "change code only", cwd=work)
    second = server.git("push", "yurt", "main", cwd=work).stderr
    assert "Using cached virtualenv" in second
    assert "Collecting flask" not in second and "Downloading" not in second
    info = server.cli("builds:info", "current", "-a", "hello", "--json").stdout
    assert '"status": "succeeded"' in info


def test_node_and_static_apps_build(server: Server, tmp_path: Path) -> None:
    node = push_app(server, tmp_path, "nodey", APPS / "node-express")
    out = server.git("push", "yurt", "main", cwd=node).stderr
    assert "Node.js app detected" in out
    [build] = server.api("GET", "/api/apps/nodey/builds").json()
    assert build["process_types"]["web"] == "npm start"
    static = push_app(server, tmp_path, "site", APPS / "static-site")
    out = server.git("push", "yurt", "main", cwd=static).stderr
    assert "Static app detected" in out
    [build] = server.api("GET", "/api/apps/site/builds").json()
    assert "web" in build["process_types"]


def test_pinned_buildpack_wins_and_incompatible_pin_fails(server: Server, tmp_path: Path) -> None:
    work = push_app(server, tmp_path, "pinned", APPS / "static-site")
    server.cli("buildpacks:set", "procfile", "-a", "pinned")
    res = server.git("push", "yurt", "main", cwd=work, check=False)
    assert res.returncode != 0
    assert "App not compatible with buildpack: procfile" in res.stderr
    server.cli("buildpacks:clear", "-a", "pinned")
    assert "Static app detected" in server.git("push", "yurt", "main", cwd=work).stderr
