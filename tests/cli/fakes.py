"""A fake Yurt API at the transport: a requests adapter answering from a table of routes."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter

Route = tuple[str, str]  # (method, path)


class FakeApi(BaseAdapter):
    """Answers ``(method, path)`` from ``routes``: a (status, JSON-able or bytes) pair."""

    def __init__(self, routes: Mapping[Route, tuple[int, Any]] | None = None) -> None:
        super().__init__()
        self.routes: dict[Route, tuple[int, Any]] = dict(routes or {})
        self.calls: list[requests.PreparedRequest] = []

    def send(  # type: ignore[override]  # the fake ignores timeouts, proxies and TLS
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.calls.append(request)
        path = urlsplit(request.url or "").path
        status, body = self.routes.get(
            (request.method or "", path), (404, {"id": "not_found", "message": f"No {path}"})
        )
        response = requests.Response()
        response.status_code = status
        response.reason = "Fake"
        response.url = request.url or ""
        response.request = request
        if isinstance(body, bytes):
            response.headers["Content-Type"] = "text/plain"
            response.raw = io.BytesIO(body)
        else:
            response.headers["Content-Type"] = "application/json"
            response.raw = io.BytesIO(json.dumps(body).encode())
        return response

    def close(self) -> None:
        pass

    def paths(self) -> list[str]:
        return [f"{r.method} {urlsplit(r.url or '').path}" for r in self.calls]

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("http://", self)
        return session


def app_json(name: str = "hello", **fields: Any) -> dict[str, Any]:
    return {
        "id": "01HXAPP0000000000000000000",
        "name": name,
        "buildpack": None,
        "git_url": f"http://127.0.0.1:7100/{name}.git",
        "ssh_git_url": None,
        "web_url": None,
        "current_release": None,
        "formation": {},
        "stopped": False,
        "processes": None,
        "created_at": "2024-05-01T12:00:00Z",
        "updated_at": "2024-05-01T12:00:00Z",
        **fields,
    }


def build_json(build_id: str, status: str = "succeeded", **fields: Any) -> dict[str, Any]:
    return {
        "id": build_id,
        "app": "hello",
        "status": status,
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "ref": "refs/heads/main",
        "buildpack": "python",
        "error": None,
        "slug": None,
        "process_types": {"web": "gunicorn app:app"},
        "created_at": "2024-05-01T12:00:00Z",
        "started_at": None,
        "finished_at": None,
        **fields,
    }
