"""``/internal/builds/<id>/...``: what a build running on the cluster fetches and reports.

Every route needs the build's own bearer token (dispatch meta ``build_token``, see
controller/runtime/nomad/builds.py); it opens only that build, and only while it runs.

* ``GET source.tar.gz``: the pushed commit (Nomad's ``artifact`` unpacks it in the task).
* ``GET env``: the app's config vars for the buildpacks' ENV_DIR.
* ``GET``/``PUT cache.tar.gz``: the app's build cache, kept here rather than on one client.
* ``POST result``: the image the builder pushed (pinned by digest) and the process types.
"""

from __future__ import annotations

import re
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file

from controller.api.context import platform
from controller.errors import InvalidParams, NotFound
from controller.names import PROCESS_TYPE_RE
from controller.runtime.nomad.builds import Grant, NomadBuilder

cluster_builds = Blueprint("cluster_builds", __name__, url_prefix="/internal/builds")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20


def _builder() -> NomadBuilder:
    remote = platform().builds.remote
    if not isinstance(remote, NomadBuilder):
        raise NotFound("Builds do not run on a cluster on this server.")
    return remote


def _grant(build_id: str) -> tuple[NomadBuilder, Grant]:
    builder = _builder()
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return builder, builder.grants.check(build_id, token)


@cluster_builds.get("/<build_id>/source.tar.gz")
def source(build_id: str) -> Response:
    _, grant = _grant(build_id)
    return Response(_gzip(grant.req.source), mimetype="application/gzip")


def _gzip(path: Path) -> Iterator[bytes]:
    """The pushed commit's tar (kept uncompressed by the push) gzipped on the fly."""
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if data := z.compress(chunk):
                yield data
    yield z.flush()


@cluster_builds.get("/<build_id>/env")
def env(build_id: str) -> Response:
    _, grant = _grant(build_id)
    response = jsonify({"env": grant.req.env})
    response.headers["Cache-Control"] = "no-store"
    return response


@cluster_builds.get("/<build_id>/cache.tar.gz")
def get_cache(build_id: str) -> Response:
    builder, grant = _grant(build_id)
    path = builder.cache_path(grant.req.app_id)
    if not path.is_file():
        raise NotFound("This app has no build cache yet.")
    return send_file(path, mimetype="application/gzip")


@cluster_builds.put("/<build_id>/cache.tar.gz")
def put_cache(build_id: str) -> tuple[str, int]:
    builder, grant = _grant(build_id)
    path = builder.cache_path(grant.req.app_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".cache-", delete=False) as fh:
        tmp = Path(fh.name)
        try:
            while chunk := request.stream.read(_CHUNK):
                fh.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(path)
    return "", 204


@cluster_builds.post("/<build_id>/result")
def result(build_id: str) -> tuple[str, int]:
    builder, grant = _grant(build_id)
    body = request.get_json(silent=True)
    grant.result = _check_result(body, builder.spec.registry, grant.req.app)
    return "", 204


def _check_result(body: Any, registry: str, app: str) -> dict[str, Any]:
    """The builder's report, checked: the image must be this app's repository in the
    cluster registry, pinned by the digest it names."""
    if not isinstance(body, dict):
        raise InvalidParams("The result must be a JSON object.")
    digest = body.get("digest")
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise InvalidParams("digest must be sha256:<64 hex digits>.")
    image = body.get("image")
    if image != f"{registry}/{app}@{digest}":
        raise InvalidParams(f"image must be {registry}/{app}@{digest}.")
    types = body.get("process_types")
    if (
        not isinstance(types, dict)
        or not all(isinstance(k, str) and PROCESS_TYPE_RE.fullmatch(k) for k in types)
        or not all(isinstance(v, str) and v.strip() for v in types.values())
    ):
        raise InvalidParams("process_types must map process type names to commands.")
    buildpack = body.get("buildpack")
    if not isinstance(buildpack, str) or not buildpack or len(buildpack) > 64:
        raise InvalidParams("buildpack must be a name.")
    return {"image": image, "digest": digest, "process_types": types, "buildpack": buildpack}
