"""Fixtures for the fake cluster's own tests (other test packages import them the same way)."""

from tests.fakes.fixtures import fake_cluster, manual_cluster

__all__ = ["fake_cluster", "manual_cluster"]
