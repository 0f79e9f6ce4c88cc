"""The served OpenAPI document stays true: it is valid, it lists exactly the API's routes, and
real responses match its schemas."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.unit.conftest import Api


def spec(api: Api) -> dict[str, Any]:
    return api.client.get("/api/openapi.json").get_json()  # type: ignore[no-any-return]


def test_document_is_valid_openapi(api: Api) -> None:
    validate(spec(api))


def flask_routes(api: Api) -> set[tuple[str, str]]:
    routes = set()
    for rule in api.client.application.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    return routes


def spec_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_document_lists_exactly_the_routes(api: Api) -> None:
    assert flask_routes(api) == spec_routes(spec(api))


def validator(doc: dict[str, Any], path: str, method: str, status: int) -> jsonschema.Validator:
    response = doc["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    resolver_doc = {**schema, "components": doc["components"]}
    return jsonschema.Draft7Validator(_nullable(resolver_doc))


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` -> JSON Schema's type lists, for jsonschema."""
    if isinstance(node, dict):
        out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


def check(api: Api, doc: dict[str, Any], method: str, url: str, path: str, **kw: Any) -> Any:
    resp = getattr(api.client, method)(url, headers=api.auth, **kw)
    statuses = doc["paths"][path][method]["responses"]
    assert str(resp.status_code) in statuses, (
        f"{method} {url} answered undocumented {resp.status_code}"
    )
    if resp.is_json:
        validator(doc, path, method, resp.status_code).validate(resp.get_json())
    return resp


def test_responses_match_the_schemas(api: Api, tmp_path: Path) -> None:
    doc = spec(api)
    check(api, doc, "get", "/api/health", "/api/health")
    check(api, doc, "post", "/api/apps", "/api/apps", json={"name": "docs"})
    check(api, doc, "post", "/api/apps", "/api/apps", json={"name": "docs"})  # 409
    check(api, doc, "post", "/api/apps", "/api/apps", json={"nope": 1})  # 422
    check(api, doc, "get", "/api/apps", "/api/apps")
    check(api, doc, "get", "/api/apps/docs", "/api/apps/{app}")
    check(api, doc, "get", "/api/apps/missing", "/api/apps/{app}")  # 404
    check(api, doc, "patch", "/api/apps/docs", "/api/apps/{app}", json={"buildpack": "static"})
    check(api, doc, "get", "/api/buildpacks", "/api/buildpacks")
    check(api, doc, "get", "/api/apps/docs/builds", "/api/apps/{app}/builds")
    check(api, doc, "delete", "/api/apps/docs/build-cache", "/api/apps/{app}/build-cache")
    ident = "01M8C1A42NQX9395Q18HS1HVAJ"
    check(api, doc, "get", f"/api/apps/docs/builds/{ident}", "/api/apps/{app}/builds/{build_id}")
    check(
        api,
        doc,
        "post",
        f"/api/apps/docs/builds/{ident}/cancel",
        "/api/apps/{app}/builds/{build_id}/cancel",
    )
    releases = "/api/apps/{app}/releases"
    assert check(api, doc, "get", "/api/apps/docs/releases", releases).get_json() == []
    check(api, doc, "get", "/api/apps/docs/releases/v1", releases + "/{version}")  # 404
    check(api, doc, "get", "/api/apps/docs/releases/nope", releases + "/{version}")  # 422
    check(api, doc, "post", "/api/apps/docs/releases", releases, json={})  # 409
    check(api, doc, "post", "/api/apps/docs/releases", releases, json={"x": 1})  # 422
    formation = "/api/apps/{app}/formation"
    check(api, doc, "get", "/api/apps/docs/formation", formation)
    check(api, doc, "patch", "/api/apps/docs/formation", formation, json={"web": 2})  # 409
    check(api, doc, "get", "/api/apps/docs/processes", "/api/apps/{app}/processes")
    check(
        api,
        doc,
        "post",
        "/api/apps/docs/processes/restart",
        "/api/apps/{app}/processes/restart",
        json={},
    )  # 422: no release yet
    logs = check(api, doc, "get", "/api/apps/docs/logs?lines=5", "/api/apps/{app}/logs")
    assert logs.status_code == 200
    check(api, doc, "get", "/api/apps/docs/logs?lines=x", "/api/apps/{app}/logs")  # 422
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "k.pub").read_text()
    check(api, doc, "post", "/api/keys", "/api/keys", json={"public_key": public})
    check(api, doc, "get", "/api/keys", "/api/keys")
    resp = api.client.get("/api/keys", headers=api.auth).get_json()
    check(api, doc, "delete", f"/api/keys/{resp[0]['fingerprint']}", "/api/keys/{ident}")
    check(api, doc, "delete", "/api/apps/docs", "/api/apps/{app}")


@pytest.mark.parametrize("path", ["/api/apps", "/api/keys", "/api/buildpacks"])
def test_unauthorized_answers_are_documented(api: Api, path: str) -> None:
    doc = spec(api)
    resp = api.client.get(path)
    assert resp.status_code == 401
    validator(doc, path, "get", 401).validate(resp.get_json())
