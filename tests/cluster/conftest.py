"""Fixtures for the demo cluster's static checks (no VM boots; see cluster_files.py)."""

from __future__ import annotations

import pytest

from tests.cluster.cluster_files import VAGRANT, read_env_file


@pytest.fixture(scope="session")
def contract() -> dict[str, str]:
    """vagrant/cluster.env: the values the cluster and the controller must agree on."""
    return read_env_file(VAGRANT / "cluster.env")


@pytest.fixture(scope="session")
def versions() -> dict[str, str]:
    """vagrant/versions.env: pinned versions, checksums and key fingerprints."""
    return read_env_file(VAGRANT / "versions.env")
