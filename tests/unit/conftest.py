"""Unit-tier fixtures: the Flask app over a fresh data dir, no subprocess server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from controller.platform import Platform
from controller.settings import Settings
from controller.web import create_app


@dataclass
class Api:
    client: FlaskClient
    token: str
    platform: Platform

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    platform = Platform.open(Settings(data_dir=tmp_path / "data"))
    token = platform.tokens.ensure_admin_token(platform.settings.admin_token_file)
    assert token
    app = create_app(platform)
    app.testing = False  # exercise the real error handlers
    yield Api(app.test_client(), token, platform)
    platform.close()
