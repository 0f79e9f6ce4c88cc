"""Errors that reach users: each carries a stable id, an HTTP status and a plain message.

The API turns them into ``{"id": ..., "message": ...}``; the CLI prints ``Error: message``.
Messages must never contain secret values.
"""

from __future__ import annotations


class YurtError(Exception):
    """Base class for errors meant for the user."""

    status = 500
    id = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParams(YurtError):
    status = 422
    id = "invalid_params"


class BadRequest(YurtError):
    status = 400
    id = "bad_request"


class Unauthorized(YurtError):
    status = 401
    id = "unauthorized"


class Forbidden(YurtError):
    status = 403
    id = "forbidden"


class NotFound(YurtError):
    status = 404
    id = "not_found"


class Conflict(YurtError):
    status = 409
    id = "conflict"


class PayloadTooLarge(YurtError):
    status = 413
    id = "payload_too_large"


class Unavailable(YurtError):
    status = 503
    id = "unavailable"


class DeployError(YurtError):
    """A release did not become healthy; the previous release keeps serving."""

    status = 422
    id = "deploy_failed"
