"""The Flask app factory: API, git smart HTTP and the hook endpoint, behind token auth."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from controller.api.context import platform
from controller.api.views import api
from controller.errors import Unauthorized, YurtError
from controller.git.http import git_http
from controller.git.receive import receive
from controller.platform import Platform
from controller.runtime.nomad.views import cluster_builds

log = logging.getLogger(__name__)
OPENAPI = Path(__file__).resolve().parent / "api" / "openapi.yaml"
PUBLIC = {"/api/health", "/api/openapi.json"}


def create_app(platform: Platform) -> Flask:
    app = Flask("yurt")
    app.extensions["yurt"] = platform
    app.config["MAX_CONTENT_LENGTH"] = platform.settings.max_push_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(api)
    app.register_blueprint(receive)
    app.register_blueprint(git_http)
    app.register_blueprint(cluster_builds)
    app.before_request(_authenticate)
    app.register_error_handler(YurtError, _yurt_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.add_url_rule("/api/openapi.json", "openapi", _openapi)
    return app


def _authenticate() -> None:
    if request.path in PUBLIC or request.path.startswith("/internal/"):
        return  # /internal checks the hook token itself
    p = platform()
    token = _token_from_request()
    if not token:
        raise Unauthorized(
            "Authentication required: send an API token (yurt auth:token prints it)."
        )
    if not p.tokens.is_valid(token):
        raise Unauthorized("Invalid API token. Run: yurt login --url URL --token TOKEN")


def _token_from_request() -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if request.authorization is not None and request.authorization.type == "basic":
        return request.authorization.password or ""
    return ""


def _error(status: int, ident: str, message: str) -> tuple[Response, int]:
    resp = jsonify(id=ident, message=message)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="Yurt"'
    return resp, status


def _yurt_error(exc: YurtError) -> tuple[Response, int]:
    return _error(exc.status, exc.id, exc.message)


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    idents = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    message = {
        404: f"No such resource: {request.method} {request.path[:200]}",
        405: f"Method {request.method} is not allowed on {request.path[:200]}",
    }.get(status, exc.description or exc.name)
    return _error(status, idents.get(status, "bad_request"), message)


def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(500, "internal_error", "Internal server error; the server log has details.")


def _openapi() -> Response:
    return jsonify(yaml.safe_load(OPENAPI.read_text()))
