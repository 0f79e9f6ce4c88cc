"""Fixtures: the fake cluster from tests/fakes, and a client that parses and registers specs."""

from __future__ import annotations

from tests.fakes.fixtures import fake_cluster, manual_cluster

__all__ = ["fake_cluster", "manual_cluster"]
