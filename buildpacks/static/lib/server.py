"""Static file server for apps built by Yurt's static buildpack.

Serves ``public/`` if the app has one, else the app's root directory, on 0.0.0.0:$PORT.
Only the Python standard library is used, so any python3 on the host can run it.

- ``/dir/`` serves ``dir/index.html``; ``/dir`` redirects to ``/dir/``; no directory listings.
- Paths with a dot-segment (``/.git``, ``/.profile.d``, ``/.yurt``, ``/.env``) are never served,
  nor anything that resolves outside the served directory (``..``, symlinks).
- One access log line per request on stdout; SIGTERM stops the server cleanly (exit 0).
"""

from __future__ import annotations

import mimetypes
import os
import signal
import sys
import urllib.parse
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Only the built-in table (not the host's /etc/mime.types), so types don't vary by host.
MIME_TYPES = mimetypes.MimeTypes(filenames=())
for extension, mime_type in {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".txt": "text/plain",
    ".webmanifest": "application/manifest+json",
}.items():
    MIME_TYPES.add_type(mime_type, extension)

TEXT_TYPES_WITHOUT_TEXT_PREFIX = {
    "application/javascript",
    "application/json",
    "application/manifest+json",
    "application/xml",
    "image/svg+xml",
}
CHUNK_SIZE = 64 * 1024


def content_type(path: Path) -> str:
    """The Content-Type for a file, with charset=utf-8 for text types."""
    mime_type, _ = MIME_TYPES.guess_type(path.name)
    mime_type = mime_type or "application/octet-stream"
    if mime_type.startswith("text/") or mime_type in TEXT_TYPES_WITHOUT_TEXT_PREFIX:
        return f"{mime_type}; charset=utf-8"
    return mime_type


def document_root(app_dir: Path) -> Path:
    """``public/`` when the app has one, else the app directory itself."""
    public = app_dir / "public"
    return (public if public.is_dir() else app_dir).resolve()


def resolve(root: Path, url_path: str) -> Path | None:
    """The file or directory a URL path names inside root, or None if it may not be served."""
    path = urllib.parse.unquote(url_path.split("?", 1)[0].split("#", 1)[0])
    if "\0" in path or "\\" in path:
        return None
    segments = [segment for segment in path.split("/") if segment]
    if any(segment.startswith(".") for segment in segments):
        return None  # dotfiles, dot-directories, and "." / ".." themselves
    candidate = root.joinpath(*segments).resolve()
    if candidate != root and root not in candidate.parents:
        return None
    return candidate


class StaticHandler(BaseHTTPRequestHandler):
    server_version = "YurtStatic/1.0"
    protocol_version = "HTTP/1.1"
    root: Path

    def do_GET(self) -> None:
        self.serve(send_body=True)

    def do_HEAD(self) -> None:
        self.serve(send_body=False)

    def serve(self, send_body: bool) -> None:
        url_path = self.path.split("?", 1)[0]
        target = resolve(self.root, url_path)
        if target is not None and target.is_dir():
            if not url_path.endswith("/"):
                query = self.path[len(url_path) :]
                self.send_plain(
                    HTTPStatus.MOVED_PERMANENTLY, "", send_body, location=url_path + "/" + query
                )
                return
            target = target / "index.html"
        if target is None or not target.is_file():
            self.send_plain(HTTPStatus.NOT_FOUND, "Not Found\n", send_body)
            return
        self.send_file(target, send_body)

    def send_file(self, target: Path, send_body: bool) -> None:
        try:
            handle = target.open("rb")
        except OSError:
            self.send_plain(HTTPStatus.NOT_FOUND, "Not Found\n", send_body)
            return
        with handle:
            stat = os.fstat(handle.fileno())
            if self.not_modified_since(stat.st_mtime):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(target))
            self.send_header("Content-Length", str(stat.st_size))
            self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
            self.end_headers()
            if send_body:
                while chunk := handle.read(CHUNK_SIZE):
                    self.wfile.write(chunk)

    def not_modified_since(self, mtime: float) -> bool:
        header = self.headers.get("If-Modified-Since")
        if not header:
            return False
        try:
            since = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        return int(mtime) <= since

    def send_plain(
        self, status: HTTPStatus, text: str, send_body: bool, location: str = ""
    ) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.address_string()} - {format % args}\n")
        sys.stdout.flush()


def main() -> int:
    port = int(os.environ.get("PORT", "5000"))
    app_dir = Path(__file__).resolve().parents[2]  # this file is <app>/.yurt/static/server.py
    StaticHandler.root = document_root(app_dir)
    server = ThreadingHTTPServer(("0.0.0.0", port), StaticHandler)
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"Serving {StaticHandler.root} on 0.0.0.0:{port}", flush=True)
    try:
        server.serve_forever()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        print("Stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
