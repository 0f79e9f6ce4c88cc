"""A small threaded HTTP/1.1 server on a loopback port, shared by the fake Nomad and Consul.

Handlers get a ``Request`` and return a ``Response`` (or raise ``HTTPError``); a response body
may be an iterator of byte chunks for streaming endpoints (Nomad log frames), sent with chunked
transfer encoding as they come (as Go's net/http does for Nomad's streams), ending when the
iterator ends, the client goes away or the server stops.
Blocking queries are built on ``wait_for_index`` over the cluster-wide condition.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .nomad.jobspec import parse_duration

MAX_WAIT = 600.0  # 10m, both Nomad and Consul [ND:api-docs/index.mdx#blocking-queries; C:features/blocking.mdx]
DEFAULT_WAIT = 300.0


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    method: str
    path: str  # percent-decoded, like Go's URL.Path
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def has(self, name: str) -> bool:
        return name in self.query

    def json(self) -> Any:
        if not self.body:
            raise HTTPError(400, "Request body is empty")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, f"invalid character in JSON body: {exc}") from exc

    def bool_arg(self, name: str) -> bool | None:
        """Go strconv.ParseBool, which is what Nomad uses for query booleans."""
        raw = self.arg(name)
        if raw is None or raw == "":
            return None
        if raw in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if raw in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise HTTPError(
            400,
            f'Failed to parse value of "{name}" ({raw}) as a bool: strconv.ParseBool: parsing "{raw}": invalid syntax',
        )

    def int_arg(self, name: str) -> int | None:
        raw = self.arg(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise HTTPError(400, f"Failed to parse {name}: {raw!r} is not a number") from exc

    def check_params(self, allowed: set[str]) -> None:
        """Reject query parameters the fake does not implement (real servers ignore unknown ones)."""
        unknown = sorted(set(self.query) - allowed)
        if unknown:
            raise HTTPError(
                400, f"fake: unsupported query parameter(s) {unknown} for {self.method} {self.path}"
            )


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterator[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data).encode()
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})


Handler = Callable[[Request], Response]


class Router:
    """Regex routes; the first match wins. 405 when the path matches but the method does not."""

    def __init__(self) -> None:
        self.routes: list[tuple[re.Pattern[str], set[str], Callable[..., Response]]] = []

    def add(self, pattern: str, methods: str, fn: Callable[..., Response]) -> None:
        self.routes.append((re.compile(f"^{pattern}$"), set(methods.split()), fn))

    def dispatch(self, req: Request) -> Response:
        matched = False
        for pattern, methods, fn in self.routes:
            m = pattern.match(req.path)
            if not m:
                continue
            matched = True
            if req.method in methods:
                return fn(req, *m.groups())
        if matched:
            raise HTTPError(405, "Invalid method")
        raise HTTPError(404, f"Invalid URL path: {req.path!r}")


def parse_wait(req: Request) -> float:
    raw = req.arg("wait")
    if not raw:
        return DEFAULT_WAIT
    try:
        seconds = parse_duration(raw) / 1e9
    except ValueError as exc:
        raise HTTPError(400, f"Invalid wait time: {raw}") from exc
    return min(seconds, MAX_WAIT)


def wait_for_index(
    cond: threading.Condition,
    stopped: threading.Event,
    current: Callable[[], int],
    min_index: int,
    wait: float,
) -> None:
    """Block (holding ``cond``) until ``current()`` exceeds ``min_index`` or ``wait`` passes."""
    deadline = time.monotonic() + wait
    while current() <= min_index and not stopped.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        cond.wait(min(remaining, 0.5))


class FakeHTTPServer:
    """Serves ``app(request) -> Response`` on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app: Callable[[Request], Response], stopped: threading.Event) -> None:
        self.app = app
        self.stopped = stopped
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and chunked streams like Go's net/http
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    method=self.command,
                    path=unquote(split.path),
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                try:
                    resp = outer.app(req)
                except HTTPError as exc:
                    resp = Response.text(exc.message, exc.status)
                outer._write(self, resp)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def _write(self, handler: BaseHTTPRequestHandler, resp: Response) -> None:
        try:
            handler.send_response(resp.status)
            for key, value in resp.headers.items():
                handler.send_header(key, value)
            if isinstance(resp.body, bytes):
                handler.send_header("Content-Length", str(len(resp.body)))
                handler.end_headers()
                if handler.command != "HEAD":
                    handler.wfile.write(resp.body)
                return
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            for chunk in resp.body:
                if self.stopped.is_set():
                    break
                if chunk:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
        finally:
            if not isinstance(resp.body, bytes):
                close = getattr(resp.body, "close", None)
                if close is not None:
                    close()
