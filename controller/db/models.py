"""The controller's tables. The DB is the ledger; repos, slugs and processes derive from it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class App(Base):
    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    name: Mapped[str] = mapped_column(String(30), unique=True, index=True)
    buildpack: Mapped[str | None] = mapped_column(String(64), default=None)
    # {"web": 2, "worker": 1}: how many instances of each process type should run.
    formation: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    current_release_id: Mapped[str | None] = mapped_column(String(26), default=None)
    # The newest KV version of the app's config vars (0: none). Only the number, never values:
    # releases pin it, and apps without config never need the config store.
    config_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # ps:stop: no process runs until ps:start or the next deploy.
    stopped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    builds: Mapped[list[Build]] = relationship(
        back_populates="app", cascade="all, delete-orphan", passive_deletes=True
    )


class Build(Base):
    __tablename__ = "builds"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    commit: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(255), default="refs/heads/main")
    buildpack: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    slug_path: Mapped[str | None] = mapped_column(Text, default=None)
    slug_size: Mapped[int | None] = mapped_column(Integer, default=None)
    slug_checksum: Mapped[str | None] = mapped_column(String(80), default=None)
    # nomad runtime: the image the build pushed, pinned by digest (<registry>/<app>@sha256:..)
    image: Mapped[str | None] = mapped_column(Text, default=None)
    process_types: Mapped[str | None] = mapped_column(Text, default=None)  # JSON object
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    app: Mapped[App] = relationship(back_populates="builds")


class Release(Base):
    """An immutable, numbered release: a slug + config version + process types."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app_id", "version"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    build_id: Mapped[str | None] = mapped_column(String(26), default=None)
    # What the release runs: a slug file (local runtime) or an image by digest (nomad runtime).
    slug_path: Mapped[str | None] = mapped_column(Text, default=None)
    image: Mapped[str | None] = mapped_column(Text, default=None)
    slug_checksum: Mapped[str | None] = mapped_column(String(80), default=None)
    commit: Mapped[str | None] = mapped_column(String(64), default=None)
    process_types: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    config_version: Mapped[int | None] = mapped_column(Integer, default=None)
    description: Mapped[str] = mapped_column(Text)
    # pending -> deploying -> succeeded | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Instance(Base):
    """A running process instance of a release (a supervisord program on the local runtime)."""

    __tablename__ = "instances"

    program: Mapped[str] = mapped_column(String(128), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    release_version: Mapped[int] = mapped_column(Integer)
    process_type: Mapped[str] = mapped_column(String(63))
    number: Mapped[int] = mapped_column(Integer)
    port: Mapped[int | None] = mapped_column(Integer, default=None)
    # starting -> up (routed) | retiring
    state: Mapped[str] = mapped_column(String(16), default="starting")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Domain(Base):
    """A custom hostname routed to an app, besides its default APP.BASE_DOMAIN."""

    __tablename__ = "domains"

    hostname: Mapped[str] = mapped_column(String(253), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SshKey(Base):
    __tablename__ = "ssh_keys"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(128), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    # sha256 of the token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
