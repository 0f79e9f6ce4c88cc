"""Fixtures for the buildpack tests (helpers live in harness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.buildpacks.harness import Buildpacks


@pytest.fixture(scope="session")
def buildpacks(tmp_path_factory: pytest.TempPathFactory) -> Buildpacks:
    """One writable copy of buildpacks/ for the session, as the runner makes per build."""
    return Buildpacks.copy_to(tmp_path_factory.mktemp("buildpacks"))


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    """An empty BUILD_DIR for tests that write their own tiny app."""
    path = tmp_path / "build"
    path.mkdir()
    return path
