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


class InvalidConfig(InvalidParams):
    """A config var name or value breaks a rule. The message names the key, never the value."""

    id = "invalid_config"


class ConfigVersionNotFound(NotFound):
    """A pinned config version was deleted, destroyed, pruned or never written."""

    id = "config_version_not_found"


class ConfigConflict(Conflict):
    """Concurrent changes to one app's config kept winning the check-and-set; try again."""

    id = "config_conflict"


class ConfigStoreUnavailable(Unavailable):
    """Vault/OpenBao is down, sealed, failing or refusing our token."""

    id = "config_store_unavailable"
