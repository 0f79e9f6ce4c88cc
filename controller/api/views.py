"""API views under /api: each parses input, calls one service, serialises the result."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, jsonify, request, stream_with_context

from controller import __version__
from controller.api.bodies import (
    AppCreate,
    AppUpdate,
    ConfigPatch,
    DomainCreate,
    FormationUpdate,
    KeyCreate,
    ReleaseCreate,
    RestartRequest,
    parse_body,
)
from controller.api.context import platform
from controller.api.serialize import (
    app_json,
    build_json,
    domain_json,
    key_json,
    process_json,
    release_json,
)
from controller.builds.runner import DETECT_HINTS, available_buildpacks, detection_order
from controller.errors import InvalidParams

api = Blueprint("api", __name__, url_prefix="/api")


@api.get("/health")
def health() -> Response:
    return jsonify(status="ok", version=__version__)


@api.get("/apps")
def list_apps() -> Response:
    return jsonify([app_json(a) for a in platform().apps.list()])


@api.post("/apps")
def create_app() -> tuple[Response, int]:
    body = parse_body(AppCreate)
    return jsonify(app_json(platform().apps.create(body.name))), 201


@api.get("/apps/<app>")
def get_app(app: str) -> Response:
    p = platform()
    return jsonify(app_json(p.apps.view(p.apps.find(app), detail=True)))


@api.patch("/apps/<app>")
def update_app(app: str) -> Response:
    body = parse_body(AppUpdate)
    return jsonify(app_json(platform().apps.set_buildpack(app, body.buildpack)))


@api.delete("/apps/<app>")
def destroy_app(app: str) -> Response:
    return jsonify(app_json(platform().apps.destroy(app)))


@api.get("/buildpacks")
def list_buildpacks() -> Response:
    ordered = detection_order(available_buildpacks(platform().settings.buildpacks_dir))
    return jsonify([{"name": n, "detects": DETECT_HINTS.get(n, "")} for n in ordered])


@api.delete("/apps/<app>/build-cache")
def purge_cache(app: str) -> Response:
    platform().apps.purge_cache(app)
    return jsonify(app=app, message="The build cache was purged; the next build starts cold.")


@api.get("/apps/<app>/builds")
def list_builds(app: str) -> Response:
    p = platform()
    return jsonify([build_json(b) for b in p.builds.list(p.apps.find(app))])


@api.get("/apps/<app>/builds/<build_id>")
def get_build(app: str, build_id: str) -> Response:
    p = platform()
    return jsonify(build_json(p.builds.get(p.apps.find(app), build_id)))


@api.get("/apps/<app>/builds/<build_id>/output")
def build_output(app: str, build_id: str) -> Response:
    p = platform()
    follow = request.args.get("follow", "true")
    if follow not in ("true", "false"):
        raise InvalidParams("follow must be 'true' or 'false'.")
    chunks: Iterator[bytes] = p.builds.output(p.apps.find(app), build_id, follow == "true")
    return Response(
        stream_with_context(chunks),
        mimetype="text/plain",
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
    )


@api.post("/apps/<app>/builds/<build_id>/cancel")
def cancel_build(app: str, build_id: str) -> Response:
    p = platform()
    return jsonify(build_json(p.builds.cancel(p.apps.find(app), build_id)))


@api.get("/keys")
def list_keys() -> Response:
    return jsonify([key_json(k) for k in platform().keys.list()])


@api.post("/keys")
def add_key() -> tuple[Response, int]:
    body = parse_body(KeyCreate)
    return jsonify(key_json(platform().keys.add(body.public_key, body.name))), 201


@api.delete("/keys/<path:ident>")
def remove_key(ident: str) -> Response:
    return jsonify(key_json(platform().keys.remove(ident)))


@api.get("/apps/<app>/releases")
def list_releases(app: str) -> Response:
    p = platform()
    return jsonify([release_json(r) for r in p.releases.list(p.apps.find(app))])


@api.get("/apps/<app>/releases/<version>")
def get_release(app: str, version: str) -> Response:
    p = platform()
    return jsonify(release_json(p.releases.get(p.apps.find(app), version)))


@api.get("/apps/<app>/releases/<version>/preview")
def preview_release(app: str, version: str) -> Response:
    p = platform()
    name = None if version == "current" else version
    diff = p.releases.preview(p.apps.find(app), name)
    return Response(diff, mimetype="text/plain")


@api.post("/apps/<app>/releases")
def rollback(app: str) -> tuple[Response, int]:
    body = parse_body(ReleaseCreate)
    p = platform()
    return jsonify(release_json(p.releases.rollback(p.apps.find(app), body.release))), 201


@api.get("/apps/<app>/formation")
def get_formation(app: str) -> Response:
    p = platform()
    return jsonify(p.releases.formation(p.apps.find(app)))


@api.patch("/apps/<app>/formation")
def update_formation(app: str) -> Response:
    body = parse_body(FormationUpdate)
    changes = body.model_extra or {}
    if not changes:
        raise InvalidParams('Give at least one process type and count, e.g. {"web": 2}.')
    for ptype, count in changes.items():
        if type(count) is not int:
            raise InvalidParams(f"The count for {ptype[:64]!r} must be an integer.")
    p = platform()
    settings = p.settings
    return jsonify(p.releases.scale(p.apps.find(app), changes, settings.max_scale))


@api.get("/apps/<app>/processes")
def list_processes(app: str) -> Response:
    p = platform()
    record = p.apps.find(app)
    return jsonify([process_json(v) for v in p.runtime.processes(record.id)])


@api.post("/apps/<app>/processes/restart")
def restart_processes(app: str) -> Response:
    body = parse_body(RestartRequest)
    p = platform()
    record = p.apps.find(app)
    p.releases.restart(record, body.type)
    return jsonify([process_json(v) for v in p.runtime.processes(record.id)])


@api.post("/apps/<app>/processes/stop")
def stop_processes(app: str) -> Response:
    p = platform()
    record = p.apps.find(app)
    p.releases.stop(record)
    return jsonify([process_json(v) for v in p.runtime.processes(record.id)])


@api.post("/apps/<app>/processes/start")
def start_processes(app: str) -> Response:
    p = platform()
    record = p.apps.find(app)
    p.releases.start(record)
    return jsonify([process_json(v) for v in p.runtime.processes(record.id)])


@api.get("/apps/<app>/domains")
def list_domains(app: str) -> Response:
    p = platform()
    return jsonify([domain_json(d) for d in p.domains.list(p.apps.find(app))])


@api.post("/apps/<app>/domains")
def add_domain(app: str) -> tuple[Response, int]:
    body = parse_body(DomainCreate)
    p = platform()
    return jsonify(domain_json(p.domains.add(p.apps.find(app), body.hostname))), 201


@api.delete("/apps/<app>/domains/<hostname>")
def remove_domain(app: str, hostname: str) -> Response:
    p = platform()
    return jsonify(domain_json(p.domains.remove(p.apps.find(app), hostname)))


@api.get("/apps/<app>/logs")
def app_logs(app: str) -> Response:
    p = platform()
    record = p.apps.find(app)
    follow = request.args.get("tail", "false") == "true"
    try:
        lines = int(request.args.get("lines", "100"))
    except ValueError as exc:
        raise InvalidParams("lines must be an integer.") from exc
    if not 0 <= lines <= 10000:
        raise InvalidParams("lines must be between 0 and 10000.")
    ps = request.args.get("ps") or None
    source = request.args.get("source", "app")
    if source not in ("app", "router"):
        raise InvalidParams("source must be 'app' (the processes' output) or 'router'.")
    lines_iter = p.runtime.logs(app, record.id, lines, follow, ps, source)
    chunks = (line.encode() for line in lines_iter)
    return Response(stream_with_context(chunks), mimetype="text/plain")


@api.get("/apps/<app>/config")
def get_config(app: str) -> Response:
    p = platform()
    config = p.config.get(p.apps.find(app))
    return jsonify(vars=config.values, version=config.version)


@api.patch("/apps/<app>/config")
def update_config(app: str) -> Response:
    body = parse_body(ConfigPatch)
    if not body.vars:
        raise InvalidParams('Give at least one config var, e.g. {"vars": {"KEY": "value"}}.')
    set_values = {k: v for k, v in body.vars.items() if v is not None}
    unset = [k for k, v in body.vars.items() if v is None]
    p = platform()
    result = p.config.update(p.apps.find(app), set_values, unset, body.restart)
    return jsonify(
        vars=result.config.values,
        version=result.config.version,
        changed=list(result.changed),
        release=f"v{result.release}" if result.release else None,
    )
