"""The platform behind the current request (set by the app factory)."""

from __future__ import annotations

from flask import current_app

from controller.platform import Platform


def platform() -> Platform:
    return current_app.extensions["yurt"]
