"""The builder's side of the controller's internal build endpoints.

Every request carries the build's bearer token in a header (never in a URL, which could end up
in a log), under ``<controller>/internal/builds/<build id>/``. Errors name the endpoint and the
HTTP status, never the token or any config value.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

T = TypeVar("T")

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 300.0
ATTEMPTS = 3


class ControllerError(Exception):
    """The controller could not be reached or refused a request."""


class ControllerClient:
    def __init__(self, controller_url: str, build_id: str, token: str) -> None:
        self.base = f"{controller_url.rstrip('/')}/internal/builds/{build_id}/"
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.headers["User-Agent"] = "yurt-builder"

    def close(self) -> None:
        self._session.close()

    def fetch_env(self) -> dict[str, str]:
        """The app's config vars, for the buildpacks' ENV_DIR."""

        def get() -> dict[str, str]:
            resp = self._request("GET", "env")
            self._expect(resp, "GET env", 200)
            try:
                env = resp.json()["env"]
            except (ValueError, KeyError, TypeError):
                raise ControllerError(
                    "GET env: the controller's answer is not {'env': {...}}"
                ) from None
            if not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in env.items()
            ):
                raise ControllerError("GET env: the config vars are not a map of strings")
            return env

        return self._retry(get)

    def fetch_cache(self, dest: Path) -> bool:
        """Download the app's build cache tarball to ``dest``; False when there is none yet."""

        def get() -> bool:
            with self._request("GET", "cache.tar.gz", stream=True) as resp:
                if resp.status_code == 404:
                    return False
                self._expect(resp, "GET cache.tar.gz", 200)
                with dest.open("wb") as fh:
                    shutil.copyfileobj(resp.raw, fh, 1 << 20)
            return True

        return self._retry(get)

    def upload_cache(self, tarball: Path) -> None:
        def put() -> None:
            with tarball.open("rb") as fh:
                resp = self._request(
                    "PUT",
                    "cache.tar.gz",
                    data=fh,
                    headers={"Content-Type": "application/gzip"},
                )
            self._expect(resp, "PUT cache.tar.gz", 200, 201, 204)

        self._retry(put)

    def post_result(self, result: dict[str, Any]) -> None:
        def post() -> None:
            resp = self._request("POST", "result", json=result)
            self._expect(resp, "POST result", 200, 201, 204)

        self._retry(post)

    # -- plumbing ------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kw: Any) -> requests.Response:
        try:
            return self._session.request(
                method, self.base + path, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kw
            )
        except requests.RequestException as exc:
            # The exception text names the URL only (the token is a header).
            raise _Retryable(f"{method} {path}: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _expect(resp: requests.Response, what: str, *ok: int) -> None:
        if resp.status_code in ok:
            return
        message = ""
        try:
            body = resp.json()
            if isinstance(body, dict) and isinstance(body.get("message"), str):
                message = ": " + body["message"][:300]
        except ValueError:
            pass
        error = f"{what}: the controller answered HTTP {resp.status_code}{message}"
        if resp.status_code >= 500:
            raise _Retryable(error)
        raise ControllerError(error)

    @staticmethod
    def _retry(call: Callable[[], T]) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return call()
            except _Retryable as exc:
                if attempt == ATTEMPTS:
                    raise ControllerError(str(exc)) from None
                time.sleep(attempt)
        raise AssertionError("unreachable")


class _Retryable(ControllerError):
    """A connection error or 5xx: worth another try."""
