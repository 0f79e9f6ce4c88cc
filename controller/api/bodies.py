"""Request bodies: strict pydantic models (unknown fields and wrong types are rejected)."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, ValidationError

from controller.errors import BadRequest, InvalidParams

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AppCreate(Body):
    name: str


class AppUpdate(Body):
    buildpack: str | None


class KeyCreate(Body):
    public_key: str
    name: str | None = None


def parse_body(model: type[M]) -> M:
    """Parse the JSON body into ``model`` or raise a 400/422 that says what is wrong."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            import json

            data = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidParams("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidParams(describe(exc)) from exc


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        kind = err["type"]
        if kind == "extra_forbidden":
            parts.append(f"unknown field {field!r}")
        elif kind == "missing":
            parts.append(f"missing field {field!r}")
        else:
            parts.append(f"field {field!r}: {err['msg'].lower()}")
    return "Invalid request: " + "; ".join(parts) + "."


class ReleaseCreate(Body):
    """A rollback: a new release from an earlier one (Heroku's POST /apps/{app}/releases)."""

    release: str | None = None


class FormationUpdate(Body):
    """``{"web": 2, "worker": 0}``: new counts per process type."""

    model_config = ConfigDict(extra="allow", strict=True)


class RestartRequest(Body):
    type: str | None = None


class DomainCreate(Body):
    hostname: str


class ConfigPatch(Body):
    """``{"vars": {"KEY": "value", "OLD": null}, "restart": true}``: set and unset at once."""

    vars: dict[str, str | None]
    restart: bool = True
