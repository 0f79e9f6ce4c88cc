"""Pytest fixtures for the fake cluster. Import them into a test module or conftest:

    from tests.fakes.fixtures import fake_cluster, manual_cluster  # noqa: F401

``fake_cluster`` advances simulated time on its own (a ticker every 20 ms, 5 s of simulated
time per tick), which suits code under test that polls or uses blocking queries.
``manual_cluster`` never advances by itself: the test drives time with ``advance``,
``run_until`` or ``settle``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cluster import FakeCluster


@pytest.fixture
def fake_cluster() -> Iterator[FakeCluster]:
    with FakeCluster() as cluster:
        yield cluster


@pytest.fixture
def manual_cluster() -> Iterator[FakeCluster]:
    with FakeCluster(tick=None) as cluster:
        yield cluster
