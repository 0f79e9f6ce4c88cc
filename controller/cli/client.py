"""The one HTTP client for the Yurt API: auth header, timeouts and turning failures into errors.

Every failure becomes a :class:`CliError` with a message a user can act on; the token never
appears in one. Tests inject a ``requests.Session`` with a fake adapter mounted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests

from controller import __version__
from controller.cli.errors import CliError

USER_AGENT = f"yurt-cli/{__version__}"
CONNECT_TIMEOUT = 5.0
# Destroying an app removes its repository, builds and slugs, which can take a while.
READ_TIMEOUT = 120.0


def api_path(*segments: str) -> str:
    """``/api/a/b``, each segment percent-encoded so user input cannot change the route."""
    return "/api/" + "/".join(quote(s, safe="") for s in segments)


class ApiClient:
    def __init__(self, url: str, token: str, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT})

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self._send(
            method,
            path,
            json=body,
            headers={"Accept": "application/json"},
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"The server at {self.url} did not answer with JSON. Is it a Yurt server?"
            ) from exc

    def stream(self, path: str, params: Mapping[str, str] | None = None) -> Iterator[bytes]:
        """The response body as it arrives, with no read timeout (build logs can pause)."""
        response = self._send(
            "GET", path, params=params, stream=True, timeout=(CONNECT_TIMEOUT, None)
        )
        with response:
            try:
                yield from response.iter_content(chunk_size=None)
            except requests.RequestException as exc:
                raise CliError(f"Lost the connection to the Yurt server at {self.url}.") from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, **kwargs)
        except requests.ConnectionError as exc:  # includes ConnectTimeout
            raise CliError(
                f"Cannot reach the Yurt server at {self.url}. Is 'yurt server' running?"
            ) from exc
        except requests.Timeout as exc:
            raise CliError(
                f"The Yurt server at {self.url} did not answer within {READ_TIMEOUT:.0f} s."
            ) from exc
        except requests.RequestException as exc:
            raise CliError(f"Invalid Yurt server URL {self.url!r}: {exc}") from exc
        if response.status_code >= 400:
            raise self._api_error(response)
        return response

    def _api_error(self, response: requests.Response) -> CliError:
        message = f"The server answered {response.status_code} {response.reason}."
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            message = data["message"]
        response.close()
        if response.status_code == 401 and "yurt login" not in message:
            message = f"{message} Run yurt login --url {self.url} --token TOKEN."
        return CliError(message)
