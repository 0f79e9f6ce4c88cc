"""The controller's side of a push: the pre-receive hook hands over the pushed commit here.

``POST /internal/apps/<app>/push`` takes the commit's tar (made by ``git archive`` while the
objects are still in quarantine), starts a build and streams its output back as JSON lines:
``{"out": "..."}`` per chunk, then one ``{"status": ..., "build": ..., "error": ...}``.
Only our hooks can call it (they hold the hook token in the data dir).
"""

from __future__ import annotations

import codecs
import json
import shutil
import tempfile
from collections.abc import Iterator

from flask import Blueprint, Response, request

from controller.api.context import platform
from controller.errors import InvalidParams, Unauthorized
from controller.platform import Platform

receive = Blueprint("receive", __name__, url_prefix="/internal")


def require_hook_token() -> None:
    if not platform().tokens.is_hook(request.headers.get("X-Yurt-Hook-Token", "")):
        raise Unauthorized("This endpoint is for Yurt's own git hooks.")


@receive.post("/apps/<app>/push")
def push(app: str) -> Response:
    require_hook_token()
    p = platform()
    record = p.apps.find(app)
    commit = request.headers.get("X-Yurt-Commit", "")
    ref = request.headers.get("X-Yurt-Ref", "")
    old = request.headers.get("X-Yurt-Old-Commit", "")
    if len(commit) not in (40, 64) or not all(c in "0123456789abcdef" for c in commit):
        raise InvalidParams("X-Yurt-Commit must be a full commit id.")
    if old and (len(old) not in (40, 64) or not all(c in "0123456789abcdef" for c in old)):
        raise InvalidParams("X-Yurt-Old-Commit must be a full commit id.")
    if not ref.startswith("refs/heads/"):
        raise InvalidParams("X-Yurt-Ref must be a branch ref.")
    tmp_dir = p.settings.data_dir / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=tmp_dir, prefix="source-", suffix=".tar", delete=False
    ) as fh:
        shutil.copyfileobj(request.stream, fh, 1 << 20)
    source = p.settings.data_dir / "tmp" / fh.name
    build_id = p.builds.start(record, commit, ref, source, old or None)
    return Response(_stream(p, record.id, build_id), mimetype="application/x-ndjson")


def _stream(p: Platform, app_id: str, build_id: str) -> Iterator[bytes]:
    app = p.apps.find_by_id(app_id)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in p.builds.output(app, build_id, follow=True):
        text = decoder.decode(chunk)
        if text:
            yield (json.dumps({"out": text}) + "\n").encode()
    build = p.builds.get(app, build_id)
    yield (
        json.dumps({"status": build.status, "build": build.id, "error": build.error}) + "\n"
    ).encode()
