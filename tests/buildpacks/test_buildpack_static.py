"""The static buildpack and its file server (buildpacks/static/lib/server.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.buildpacks.harness import BUILDPACKS_SOURCE, Buildpacks, copy_app, relocated, serving

WEB = "python3 .yurt/static/server.py"


def load_server_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "yurt_static_server", BUILDPACKS_SOURCE / "static/lib/server.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def static_build(buildpacks: Buildpacks, tmp_path: Path) -> Path:
    build_dir = copy_app("static-site", tmp_path / "build")
    (build_dir / "docs").mkdir()
    (build_dir / "docs" / "index.html").write_text("<p>docs</p>")
    (build_dir / "empty").mkdir()
    (build_dir / ".env").write_text("SECRET=1")
    compiled = buildpacks.compile("static", build_dir, tmp_path / "cache").check()
    assert "-----> Installing the static file server" in compiled.output
    assert "       Serving the repository root" in compiled.output
    return build_dir


def test_release_runs_the_installed_server(buildpacks: Buildpacks, static_build: Path) -> None:
    assert (static_build / ".yurt" / "static" / "server.py").is_file()
    assert buildpacks.release("static", static_build) == {"default_process_types": {"web": WEB}}


def test_site_is_served_with_content_types(static_build: Path) -> None:
    with relocated(static_build) as release_dir, serving(release_dir, WEB) as app:
        index = app.get("/")
        assert index.status == 200, app.log()
        assert index.headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"Hello from static-site on Yurt" in index.body
        css = app.get("/style.css")
        assert css.headers["Content-Type"] == "text/css; charset=utf-8"
        assert css.body == (release_dir / "style.css").read_bytes()
        assert app.get("/index.html?v=1").status == 200

        redirect = app.get("/docs")
        assert (redirect.status, redirect.headers["Location"]) == (301, "/docs/")
        assert app.get("/docs/").body == b"<p>docs</p>"

        for hidden in (
            "/.env",
            "/.yurt/static/server.py",
            "/.profile.d/",
            "/%2e%2e/etc/passwd",
            "/empty/",
            "/nope",
        ):
            reply = app.get(hidden)
            assert (reply.status, reply.body) == (404, b"Not Found\n"), hidden

        assert app.stop() == 0  # SIGTERM is a clean exit
        log = app.log()
        assert '"GET /style.css HTTP/1.1" 200' in log
        assert '"GET /.env HTTP/1.1" 404' in log


def test_public_directory_is_the_document_root(buildpacks: Buildpacks, tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    (build_dir / "public").mkdir(parents=True)
    (build_dir / "public" / "index.html").write_text("<h1>public</h1>")
    (build_dir / "secret.txt").write_text("not for the web")
    compiled = buildpacks.compile("static", build_dir, tmp_path / "cache").check()
    assert "       Serving public/" in compiled.output
    with relocated(build_dir) as release_dir, serving(release_dir, WEB) as app:
        assert app.get("/").body == b"<h1>public</h1>"
        assert app.get("/secret.txt").status == 404
        assert app.get("/../secret.txt").status == 404


def test_symlinks_out_of_the_document_root_are_not_followed(
    buildpacks: Buildpacks, tmp_path: Path
) -> None:
    build_dir = copy_app("static-site", tmp_path / "build")
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    (build_dir / "link.txt").symlink_to(outside)
    buildpacks.compile("static", build_dir, tmp_path / "cache").check()
    with serving(build_dir, WEB) as app:
        assert app.get("/link.txt").status == 404


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.html", "text/html; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.woff2", "font/woff2"),
        ("a.unknown-extension", "application/octet-stream"),
    ],
)
def test_content_type(name: str, expected: str) -> None:
    assert load_server_module().content_type(Path(name)) == expected
