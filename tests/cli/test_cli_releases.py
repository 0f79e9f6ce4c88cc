"""releases, rollback, ps, ps:scale, ps:restart and logs against a fake API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from controller.cli.client import ApiClient
from tests.cli.conftest import FAKE_URL, Invoke
from tests.cli.fakes import FakeApi

RELEASES = "/api/apps/hello/releases"
FORMATION = "/api/apps/hello/formation"


def release_json(version: int, status: str = "succeeded", **fields: Any) -> dict[str, Any]:
    return {
        "id": f"01HXREL000000000000000000{version}",
        "app": "hello",
        "version": version,
        "name": f"v{version}",
        "description": "Deploy 0123456",
        "status": status,
        "current": False,
        "build_id": "01HXNEW0000000000000000000",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "slug_checksum": "sha256:abc",
        "process_types": {"web": "gunicorn app:app", "worker": "python worker.py"},
        "config_version": None,
        "error": None,
        "created_at": "2024-05-01T12:00:00Z",
        "finished_at": "2024-05-01T12:00:10Z",
        **fields,
    }


def process_json(ptype: str, number: int, state: str = "up", **fields: Any) -> dict[str, Any]:
    return {
        "type": ptype,
        "number": number,
        "name": f"{ptype}.{number}",
        "state": state,
        "release": "v3",
        "started_at": "2024-05-01T12:00:00Z",
        "exit_status": None,
        "port": 5001,
        **fields,
    }


def body(fake_api: FakeApi, index: int = -1) -> Any:
    return json.loads(fake_api.calls[index].body or b"null")


# -- releases ----------------------------------------------------------------------------


def test_releases_table_marks_the_current_one(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", RELEASES)] = (
        200,
        [
            release_json(3, "failed", description="Deploy fedcba9", commit="fedcba9876"),
            release_json(2, current=True),
            release_json(1, description="Rollback to v0", commit=None),
        ],
    )
    result = invoke("releases", "-a", "hello")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "STATUS", "DESCRIPTION", "COMMIT", "CREATED"]
    assert lines[1].startswith("  v3     failed     Deploy fedcba9  fedcba9")
    assert lines[2].startswith("* v2     succeeded  Deploy 0123456  0123456")
    assert lines[3].split() == [
        "v1",
        "succeeded",
        "Rollback",
        "to",
        "v0",
        "-",
        "2024-05-01T12:00:00Z",
    ]
    assert result.stderr == ""


def test_releases_json_and_empty(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", RELEASES)] = (200, [])
    assert json.loads(invoke("releases", "-a", "hello", "--json").stdout) == []
    result = invoke("releases", "-a", "hello")
    assert result.stdout.split() == ["VERSION", "STATUS", "DESCRIPTION", "COMMIT", "CREATED"]
    assert "git push yurt main" in result.stderr


def test_releases_info_defaults_to_the_current_release(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", RELEASES)] = (200, [release_json(3), release_json(2, current=True)])
    fake_api.routes[("GET", f"{RELEASES}/v2")] = (200, release_json(2, current=True))
    result = invoke("releases:info", "-a", "hello")
    assert result.exit_code == 0
    assert fake_api.paths()[-1] == f"GET {RELEASES}/v2"
    lines = result.stdout.splitlines()
    assert lines[0] == "=== Release v2"
    assert "Status:          succeeded (current)" in lines
    assert "Process types:   web, worker" in lines


def test_releases_info_version_is_path_encoded(invoke: Invoke, fake_api: FakeApi) -> None:
    result = invoke("releases:info", "../v3", "-a", "hello")
    assert result.exit_code == 1
    assert fake_api.paths() == [f"GET {RELEASES}/..%2Fv3"]


# -- rollback ----------------------------------------------------------------------------


def test_rollback_to_a_version(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("POST", RELEASES)] = (
        201,
        release_json(5, current=True, description="Rollback to v3"),
    )
    result = invoke("rollback", "3", "-a", "hello")
    assert result.exit_code == 0
    assert result.stderr == "Rolling back hello to v3... done, v5\n"
    assert result.stdout == ""
    assert body(fake_api) == {"release": "3"}


def test_rollback_to_the_previous_release(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("POST", RELEASES)] = (
        201,
        release_json(5, current=True, description="Rollback to v3"),
    )
    result = invoke("rollback", "-a", "hello")
    assert result.exit_code == 0
    assert result.stderr == "Rolling back hello... done, v5 (Rollback to v3)\n"
    assert body(fake_api) == {}


@pytest.mark.parametrize(
    ("status", "ident", "message"),
    [
        (409, "conflict", "There is no earlier release to roll back to."),
        (422, "deploy_failed", "Rollback to v3 failed: web.1 exited with status 1"),
    ],
)
def test_rollback_failure_prints_error_and_exits_1(
    invoke: Invoke, fake_api: FakeApi, status: int, ident: str, message: str
) -> None:
    fake_api.routes[("POST", RELEASES)] = (status, {"id": ident, "message": message})
    result = invoke("rollback", "v3", "-a", "hello")
    assert result.exit_code == 1
    assert result.stderr == f"Rolling back hello to v3... !\nError: {message}\n"
    assert result.stdout == ""


# -- ps ----------------------------------------------------------------------------------


def test_ps_groups_processes_by_type(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps/hello/processes")] = (
        200,
        [
            process_json("worker", 1, "crashed", exit_status=1, port=None),
            process_json("web", 2, "starting", started_at=None),
            process_json("web", 1),
        ],
    )
    result = invoke("ps", "-a", "hello")
    assert result.exit_code == 0
    assert result.stdout == (
        "=== web (2)\n"
        "web.1: up 2024-05-01T12:00:00Z  (v3)\n"
        "web.2: starting  (v3)\n"
        "\n"
        "=== worker (1)\n"
        "worker.1: crashed (exit status 1) 2024-05-01T12:00:00Z  (v3)\n"
    )


def test_ps_without_processes(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps/hello/processes")] = (200, [])
    result = invoke("ps", "-a", "hello")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "hello has no processes" in result.stderr
    assert json.loads(invoke("ps", "-a", "hello", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["web2"], "Invalid argument 'web2': use TYPE=COUNT"),
        (["=2"], "Invalid argument '=2'"),
        (["web=two"], "Invalid count 'two' for web"),
        (["web=-1"], "Invalid count '-1' for web"),
        (["web=1.5"], "Invalid count '1.5' for web"),
        (["web="], "Invalid count '' for web"),
        (["we b=1"], "Invalid argument 'we b=1'"),
        (["web=1", "web=2"], "The process type web is given twice."),
    ],
)
def test_ps_scale_bad_arguments_fail_before_any_request(
    invoke: Invoke, fake_api: FakeApi, args: list[str], message: str
) -> None:
    result = invoke("ps:scale", *args, "-a", "hello")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}")
    assert len(result.stderr.splitlines()) == 1
    assert fake_api.calls == []


def test_ps_scale_sends_the_counts_and_prints_the_formation(
    invoke: Invoke, fake_api: FakeApi
) -> None:
    fake_api.routes[("PATCH", FORMATION)] = (200, {"clock": 0, "web": 2, "worker": 1})
    result = invoke("ps:scale", "web=2", "worker=1", "-a", "hello")
    assert result.exit_code == 0
    assert body(fake_api) == {"web": 2, "worker": 1}
    assert result.stderr == "Scaling hello to web=2 worker=1... done\n"
    assert result.stdout == "web=2 clock=0 worker=1\n"


def test_ps_scale_without_arguments_shows_the_formation(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", FORMATION)] = (200, {"web": 1, "worker": 0})
    assert invoke("ps:scale", "-a", "hello").stdout == "web=1 worker=0\n"
    assert json.loads(invoke("ps:scale", "-a", "hello", "--json").stdout) == {
        "web": 1,
        "worker": 0,
    }
    assert fake_api.paths() == [f"GET {FORMATION}", f"GET {FORMATION}"]


def test_ps_scale_refused_by_the_server(invoke: Invoke, fake_api: FakeApi) -> None:
    message = "Unknown process type 'wrker'; this release has: web, worker."
    fake_api.routes[("PATCH", FORMATION)] = (422, {"id": "invalid_params", "message": message})
    result = invoke("ps:scale", "wrker=1", "-a", "hello")
    assert result.exit_code == 1
    assert result.stderr.endswith(f"... !\nError: {message}\n")


@pytest.mark.parametrize(("args", "sent"), [([], {}), (["web"], {"type": "web"})])
def test_ps_restart(invoke: Invoke, fake_api: FakeApi, args: list[str], sent: Any) -> None:
    fake_api.routes[("POST", "/api/apps/hello/processes/restart")] = (
        200,
        [process_json("web", 1)],
    )
    result = invoke("ps:restart", *args, "-a", "hello")
    assert result.exit_code == 0
    assert body(fake_api) == sent
    assert result.stderr.endswith("of hello... done\n")
    assert result.stdout == "=== web (1)\nweb.1: up 2024-05-01T12:00:00Z  (v3)\n"


# -- logs --------------------------------------------------------------------------------


def test_logs_streams_lines(invoke: Invoke, fake_api: FakeApi) -> None:
    text = b"web.1 | Listening on 5001\nworker.1 | tick\n"
    fake_api.routes[("GET", "/api/apps/hello/logs")] = (200, text)
    result = invoke("logs", "-a", "hello")
    assert result.exit_code == 0
    assert result.stdout_bytes == text
    assert (
        fake_api.calls[0].url == f"{FAKE_URL}/api/apps/hello/logs?lines=100&tail=false&source=app"
    )


def test_logs_options_become_query_parameters(invoke: Invoke, fake_api: FakeApi) -> None:
    fake_api.routes[("GET", "/api/apps/hello/logs")] = (200, b"")
    assert invoke("logs", "-a", "hello", "-n", "5", "-t", "-p", "web.1").exit_code == 0
    assert invoke("logs", "-a", "hello", "--num", "0", "--tail", "--ps", "web").exit_code == 0
    assert invoke("logs", "-a", "hello", "-s", "router").exit_code == 0
    urls = [c.url for c in fake_api.calls]
    assert urls == [
        f"{FAKE_URL}/api/apps/hello/logs?lines=5&tail=true&source=app&ps=web.1",
        f"{FAKE_URL}/api/apps/hello/logs?lines=0&tail=true&source=app&ps=web",
        f"{FAKE_URL}/api/apps/hello/logs?lines=100&tail=false&source=router",
    ]
    assert invoke("logs", "-a", "hello", "-s", "nginx").exit_code == 2


def test_logs_negative_num_is_a_usage_error(invoke: Invoke, fake_api: FakeApi) -> None:
    assert invoke("logs", "-a", "hello", "-n", "-1").exit_code == 2
    assert fake_api.calls == []


def interrupted_stream(
    self: ApiClient, path: str, params: dict[str, str] | None = None
) -> Iterator[bytes]:
    yield b"web.1 | one\n"
    raise KeyboardInterrupt


def test_ctrl_c_ends_a_tail_quietly(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ApiClient, "stream", interrupted_stream)
    result = invoke("logs", "-a", "hello", "--tail")
    assert result.exit_code == 0
    assert result.stdout == "web.1 | one\n"
    assert result.stderr == ""


def test_ctrl_c_without_tail_aborts(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ApiClient, "stream", interrupted_stream)
    result = invoke("logs", "-a", "hello")
    assert result.exit_code == 1
    assert "Aborted!" in result.stderr


def test_logs_error_from_the_server(invoke: Invoke, fake_api: FakeApi) -> None:
    result = invoke("logs", "-a", "nope")
    assert result.exit_code == 1
    assert result.stderr == "Error: No /api/apps/nope/logs\n"
