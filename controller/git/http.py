"""git smart HTTP: ``git http-backend`` as a CGI behind the controller's WSGI server.

The WSGI server (waitress) has already de-chunked the request body, so large pushes with
chunked bodies work; the backend's output is streamed back as it comes, so build output from
the pre-receive hook reaches the pusher live.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import IO

from flask import Blueprint, Response, request

from controller import proc
from controller.api.context import platform
from controller.errors import YurtError
from controller.names import is_app_name

git_http = Blueprint("git_http", __name__)
SERVICES = ("git-receive-pack", "git-upload-pack")


def pkt_line(text: str) -> bytes:
    data = text.encode()
    return f"{len(data) + 4:04x}".encode() + data


def remote_error(service: str, message: str) -> Response:
    """A ref advertisement holding only ``ERR message``: git prints 'remote error: ...'."""
    body = pkt_line(f"# service={service}\n") + b"0000" + pkt_line(f"ERR {message}")
    return Response(body, mimetype=f"application/x-{service}-advertisement")


def app_problem(repo: str) -> str | None:
    """Why this repo cannot be pushed to, or None if it can."""
    name = repo[: -len(".git")] if repo.endswith(".git") else repo
    if not is_app_name(name):
        return f"'{name[:40]}' is not a valid app name."
    if not platform().apps.exists(name) or not platform().repos.path(name).exists():
        return f"App '{name}' does not exist. Create it with: yurt apps:create {name}"
    return None


@git_http.get("/<name>.git/info/refs")
def info_refs(name: str) -> Response:
    repo = f"{name}.git"
    service = request.args.get("service", "")
    if service not in SERVICES:
        raise YurtError("Only smart HTTP is supported: use a git client newer than 1.6.6.")
    problem = app_problem(repo)
    if problem:
        return remote_error(service, problem)
    return run_backend(repo, "info/refs")


@git_http.post("/<name>.git/<service>")
def rpc(name: str, service: str) -> Response:
    repo = f"{name}.git"
    if service not in SERVICES:
        return Response("not found\n", status=404, mimetype="text/plain")
    if app_problem(repo):
        return Response("no such app\n", status=404, mimetype="text/plain")
    return run_backend(repo, service)


def backend_env(repo: str, path: str) -> dict[str, str]:
    name = repo[: -len(".git")] if repo.endswith(".git") else repo
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "GIT_PROJECT_ROOT": str(platform().settings.repos_dir),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_HTTP_MAX_REQUEST_BUFFER": str(platform().settings.max_push_bytes),
        "PATH_INFO": f"/{name}.git/{path}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query_string.decode("latin-1"),
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "REMOTE_USER": "yurt",
        "REMOTE_ADDR": request.remote_addr or "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "GATEWAY_INTERFACE": "CGI/1.1",
    }
    if request.content_length is not None:
        env["CONTENT_LENGTH"] = str(request.content_length)
    for header, var in (
        ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ("Git-Protocol", "GIT_PROTOCOL"),
    ):
        if header in request.headers:
            env[var] = request.headers[header]
    return env


def run_backend(repo: str, path: str) -> Response:
    child = proc.spawn(["git", "http-backend"], env=backend_env(repo, path))
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    feeder = threading.Thread(target=_feed, args=(request.stream, child.stdin), daemon=True)
    feeder.start()
    threading.Thread(target=_drain, args=(child.stderr,), daemon=True).start()
    status, headers = _read_cgi_headers(child.stdout)
    return Response(
        _body(child, feeder),
        status=status,
        headers=headers,
        direct_passthrough=True,
    )


def _feed(source: IO[bytes], sink: IO[bytes]) -> None:
    try:
        shutil.copyfileobj(source, sink, 1 << 16)
    except (BrokenPipeError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()


def _drain(stream: IO[bytes]) -> None:
    while stream.read(65536):
        pass


def _read_cgi_headers(stdout: IO[bytes]) -> tuple[int, list[tuple[str, str]]]:
    status = 200
    headers: list[tuple[str, str]] = []
    while True:
        line = stdout.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
        key, _, value = line.decode("latin-1").partition(":")
        key, value = key.strip(), value.strip()
        if key.lower() == "status":
            status = int(value.split()[0])
        else:
            headers.append((key, value))
    return status, headers


def _body(child: subprocess.Popen[bytes], feeder: threading.Thread) -> Iterator[bytes]:
    stdout = child.stdout
    assert stdout is not None
    finished = False
    try:
        # read1, not os.read: the header parser has already buffered part of the body.
        while chunk := stdout.read1(65536):  # type: ignore[attr-defined]
            yield chunk
        finished = True
    finally:
        if finished:
            child.wait()
        else:
            # The client went away mid-push: let git finish (the hook records the build and
            # the ref update stays consistent with it) instead of killing it half-way.
            threading.Thread(target=_finish_quietly, args=(child,), daemon=True).start()


def _finish_quietly(child: subprocess.Popen[bytes]) -> None:
    assert child.stdout is not None
    _drain(child.stdout)
    child.wait()
