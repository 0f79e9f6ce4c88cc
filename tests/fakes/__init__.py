"""Strict fakes of the cluster services Yurt talks to (Nomad and Consul), for contract tests.

Import ``FakeCluster`` from here, or use the ``fake_cluster`` fixture from
``tests.fakes.fixtures``.
"""

from .cluster import FakeCluster

__all__ = ["FakeCluster"]
