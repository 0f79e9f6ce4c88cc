"""``yurt jobspec:render``: the job spec Yurt would submit, with no controller or cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pygohcl
import pytest
from click.testing import CliRunner

from controller.cli import cli

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "Procfile").write_text(
        "web: gunicorn app:app\nworker: python worker.py\nrelease: python migrate.py\n"
    )
    (tmp_path / "app.json").write_text(
        json.dumps({"healthchecks": {"web": [{"path": "/health", "attempts": 3}]}})
    )
    return tmp_path


def render(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["jobspec:render", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.output


def groups(hcl: str) -> dict[str, dict]:
    job = next(iter(pygohcl.loads(hcl)["job"].values()))
    return {name: body for name, body in job["group"].items()}


def test_app_job_from_procfile_app_json_and_options(app_dir: Path) -> None:
    code, out = render(
        "--app",
        "shop",
        "--app-dir",
        str(app_dir),
        "--release",
        "7",
        "--image",
        f"reg:5000/shop@{DIGEST}",
        "--config-version",
        "4",
        "--formation",
        "web=3,worker=2",
        "--domain",
        "shop.example.com",
        "--router",
        "both",
    )
    assert code == 0, out
    found = groups(out)
    assert sorted(found) == ["web", "worker"]  # release runs as its own batch job
    assert found["web"]["count"] == 3 and found["worker"]["count"] == 2
    assert f'image = "reg:5000/shop@{DIGEST}"' in out
    assert 'path     = "/health"' in out
    assert "Host(`shop.localhost`) || Host(`shop.example.com`)" in out
    assert "urlprefix-shop.example.com/" in out
    assert "secret/data/yurt/apps/shop?version=4" in out
    assert '"yurt_release"        = "v7"' in out


def test_release_and_build_jobs(app_dir: Path) -> None:
    code, out = render("--app", "shop", "--app-dir", str(app_dir), "--job", "release")
    assert code == 0, out
    assert 'namespace   = "yurt-release"' in out and "python migrate.py" in out
    pygohcl.loads(out)
    code, out = render("--app", "shop", "--job", "build", "--namespace", "apps")
    assert code == 0, out
    assert "parameterized" in out and 'namespace   = "apps"' in out
    pygohcl.loads(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--formation", "nope=1"], "The Procfile has no process type nope."),
        (["--formation", "web=x"], "Invalid formation 'web=x'"),
        (["--image", "reg/shop:latest"], "must be pinned by digest"),
        (["--domain", "bad domain"], "invalid domain"),
        (["--app", "Bad_Name"], "invalid app name"),
    ],
)
def test_bad_input_is_one_error_line(app_dir: Path, args: list[str], message: str) -> None:
    base = ["--app", "shop", "--app-dir", str(app_dir)]
    code, out = render(*base, *args)
    assert code == 1 and message in out and "Traceback" not in out
    assert out.startswith("Error: ")


def test_missing_procfile(tmp_path: Path) -> None:
    code, out = render("--app", "shop", "--app-dir", str(tmp_path))
    assert code == 1 and "No Procfile in" in out
