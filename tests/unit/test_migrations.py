"""Schema migrations: a fresh data dir migrates to the models exactly, and an older data dir
opens without losing anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from controller.db.engine import make_engine, migrate
from controller.db.models import Base
from controller.platform import Platform
from controller.settings import Settings


def test_migrations_produce_exactly_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_reopening_a_data_dir_keeps_its_data_and_uses_wal(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = Platform.open(settings)
    first.apps.create("keeper")
    first.close()
    second = Platform.open(settings)
    assert [a.name for a in second.apps.list()] == ["keeper"]
    second.close()
    with sqlite3.connect(settings.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (settings.data_dir.stat().st_mode & 0o777) == 0o711
    assert (settings.data_dir / "repos").stat().st_mode & 0o777 == 0o700
