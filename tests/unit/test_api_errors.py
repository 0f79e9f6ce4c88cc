"""The API's error cases: every bad request gets a JSON 4xx with a message, never a 500."""

from __future__ import annotations

import pytest

from tests.unit.conftest import Api


def assert_error(resp: object, status: int, ident: str, words: str = "") -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)  # type: ignore[attr-defined]
    body = resp.get_json()  # type: ignore[attr-defined]
    assert set(body) == {"id", "message"}
    assert body["id"] == ident
    assert words.lower() in body["message"].lower()
    assert "Traceback" not in body["message"]


def test_missing_and_wrong_tokens(api: Api) -> None:
    assert_error(api.client.get("/api/apps"), 401, "unauthorized", "token")
    resp = api.client.get("/api/apps", headers={"Authorization": "Bearer nope"})
    assert_error(resp, 401, "unauthorized", "invalid api token")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    basic = api.client.get("/api/apps", auth=("anyone", api.token))
    assert basic.status_code == 200


def test_health_and_openapi_need_no_token(api: Api) -> None:
    assert api.client.get("/api/health").get_json()["status"] == "ok"
    assert api.client.get("/api/openapi.json").get_json()["openapi"].startswith("3.")


def test_hook_endpoint_refuses_api_tokens(api: Api) -> None:
    resp = api.client.post("/internal/apps/x/push", headers=api.auth)
    assert_error(resp, 401, "unauthorized", "hooks")


@pytest.mark.parametrize(
    ("body", "status", "ident", "words"),
    [
        ("{not json", 400, "bad_request", "not valid JSON"),
        ("[1, 2]", 422, "invalid_params", "JSON object"),
        ('"hello"', 422, "invalid_params", "JSON object"),
        ("{}", 422, "invalid_params", "missing field 'name'"),
        ('{"name": 5}', 422, "invalid_params", "field 'name'"),
        ('{"name": "ok-name", "region": "eu"}', 422, "invalid_params", "unknown field 'region'"),
        ('{"name": "Bad_Name"}', 422, "invalid_params", "lowercase letters"),
        ('{"name": "api"}', 422, "invalid_params", "reserved"),
    ],
)
def test_create_app_rejects_bad_bodies(
    api: Api, body: str, status: int, ident: str, words: str
) -> None:
    resp = api.client.post(
        "/api/apps", data=body, headers={**api.auth, "Content-Type": "application/json"}
    )
    assert_error(resp, status, ident, words)
    assert api.client.get("/api/apps", headers=api.auth).get_json() == []


def test_duplicate_app_is_a_conflict(api: Api) -> None:
    assert api.client.post("/api/apps", json={"name": "twice"}, headers=api.auth).status_code == 201
    assert_error(
        api.client.post("/api/apps", json={"name": "twice"}, headers=api.auth),
        409,
        "conflict",
        "taken",
    )


def test_unknown_things_are_404s(api: Api) -> None:
    assert_error(
        api.client.get("/api/apps/nothere", headers=api.auth), 404, "not_found", "apps:create"
    )
    assert_error(
        api.client.get("/api/nowhere", headers=api.auth), 404, "not_found", "no such resource"
    )
    api.client.post("/api/apps", json={"name": "real"}, headers=api.auth)
    assert_error(
        api.client.get("/api/apps/real/builds/01M8C1A42NQX9395Q18HS1HVAJ", headers=api.auth),
        404,
        "not_found",
        "build",
    )
    assert_error(
        api.client.delete("/api/keys/nokey", headers=api.auth), 404, "not_found", "ssh key"
    )


def test_invalid_path_values_are_422s(api: Api) -> None:
    assert_error(
        api.client.get("/api/apps/BAD..NAME", headers=api.auth), 422, "invalid_params", "app name"
    )
    api.client.post("/api/apps", json={"name": "real"}, headers=api.auth)
    assert_error(
        api.client.get("/api/apps/real/builds/..%2F..%2Fx", headers=api.auth), 404, "not_found"
    )
    assert_error(
        api.client.get("/api/apps/real/builds/notanid", headers=api.auth),
        422,
        "invalid_params",
        "ulid",
    )
    assert_error(
        api.client.get(
            "/api/apps/real/builds/01M8C1A42NQX9395Q18HS1HVAJ/output?follow=maybe", headers=api.auth
        ),
        422,
        "invalid_params",
        "follow",
    )


def test_wrong_method_is_405(api: Api) -> None:
    assert_error(api.client.put("/api/apps", headers=api.auth), 405, "method_not_allowed")


def test_buildpack_must_exist(api: Api) -> None:
    api.client.post("/api/apps", json={"name": "packed"}, headers=api.auth)
    resp = api.client.patch("/api/apps/packed", json={"buildpack": "cobol"}, headers=api.auth)
    assert_error(resp, 422, "invalid_params", "available buildpacks")
    ok = api.client.patch("/api/apps/packed", json={"buildpack": "python"}, headers=api.auth)
    assert ok.get_json()["buildpack"] == "python"
    cleared = api.client.patch("/api/apps/packed", json={"buildpack": None}, headers=api.auth)
    assert cleared.get_json()["buildpack"] is None
    assert_error(
        api.client.patch("/api/apps/packed", json={}, headers=api.auth),
        422,
        "invalid_params",
        "missing",
    )


def test_keys_reject_garbage_and_duplicates(api: Api) -> None:
    for junk in (
        "",
        "hello",
        "ssh-ed25519 !!!",
        "ssh-ed25519 AAAA\nssh-rsa BBBB",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBAD",
    ):
        assert_error(
            api.client.post("/api/keys", json={"public_key": junk}, headers=api.auth),
            422,
            "invalid_params",
        )
    assert api.client.get("/api/keys", headers=api.auth).get_json() == []


def test_unexpected_errors_are_json_500_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom() -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.platform.apps, "list", boom)
    resp = api.client.get("/api/apps", headers=api.auth)
    assert_error(resp, 500, "internal_error")
    assert "secret internals" not in resp.get_data(as_text=True)
