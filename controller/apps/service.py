"""App service: the app records and everything that hangs off them (repo, builds, cache)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from ulid import ULID

from controller.builds.runner import available_buildpacks
from controller.builds.service import BuildService
from controller.db.models import App, Build, Release
from controller.errors import Conflict, InvalidParams, NotFound
from controller.git.repos import Repos
from controller.names import check_app_name
from controller.releases.service import default_formation
from controller.runtime.base import Runtime
from controller.settings import Settings


@dataclass(frozen=True)
class AppView:
    id: str
    name: str
    buildpack: str | None
    git_url: str
    ssh_git_url: str | None
    web_url: str | None
    created_at: datetime
    updated_at: datetime
    current_release: int | None = None
    formation: dict[str, int] = field(default_factory=dict)
    stopped: bool = False
    # instances up per process type; only in a single app's view (asks the runtime)
    processes: dict[str, int] | None = None


class AppService:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Any],
        repos: Repos,
        builds: BuildService,
        runtime: Runtime,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.sessions = sessions
        self.repos = repos
        self.builds = builds
        self.ssh_base: str | None = None  # set by the server when SSH push is enabled
        # Deletes an app's config vars; set by the platform (the config store is optional in
        # the unit tier).
        self.destroy_config: Callable[[App], None] | None = None

    def view(self, app: App, detail: bool = False) -> AppView:
        with self.sessions() as s:
            release = s.get(Release, app.current_release_id) if app.current_release_id else None
        types = json.loads(release.process_types) if release else {}
        processes = None
        if detail:
            ups = [p.type for p in self.runtime.processes(app.id) if p.state == "up"]
            processes = {t: 0 for t in types if t != "release"} | dict(Counter(ups))
        return AppView(
            id=app.id,
            name=app.name,
            buildpack=app.buildpack,
            git_url=f"{self.settings.base_url}/{app.name}.git",
            ssh_git_url=f"{self.ssh_base}/{app.name}.git" if self.ssh_base else None,
            web_url=self.runtime.web_url(app.name),
            created_at=app.created_at,
            updated_at=app.updated_at,
            current_release=release.version if release else None,
            formation=default_formation(types, json.loads(app.formation or "{}")),
            stopped=app.stopped,
            processes=processes,
        )

    def list(self) -> list[AppView]:
        with self.sessions() as s:
            return [self.view(a) for a in s.scalars(select(App).order_by(App.name)).all()]

    def find(self, name: str) -> App:
        """The app record, or NotFound (names are validated before any lookup)."""
        check_app_name(name)
        with self.sessions() as s:
            app = s.scalar(select(App).where(App.name == name))
        if app is None:
            raise NotFound(
                f"Couldn't find that app: {name}. Create it with: yurt apps:create {name}"
            )
        return app

    def find_by_id(self, app_id: str) -> App:
        with self.sessions() as s:
            app = s.get(App, app_id)
        if app is None:
            raise NotFound("That app no longer exists.")
        return app

    def exists(self, name: str) -> bool:
        with self.sessions() as s:
            return s.scalar(select(App.id).where(App.name == name)) is not None

    def create(self, name: str) -> AppView:
        check_app_name(name)
        app = App(id=str(ULID()), name=name)
        try:
            with self.sessions.begin() as s:
                s.add(app)
        except IntegrityError as exc:
            raise Conflict(f"The app name {name!r} is already taken.") from exc
        try:
            self.repos.create(name)
        except Exception:
            with self.sessions.begin() as s:
                s.execute(delete(App).where(App.id == app.id))
            raise
        return self.view(app)

    def set_buildpack(self, name: str, buildpack: str | None) -> AppView:
        app = self.find(name)
        if buildpack is not None:
            known = available_buildpacks(self.settings.buildpacks_dir)
            if buildpack not in known:
                raise InvalidParams(
                    f"Unknown buildpack {buildpack[:64]!r}. Available buildpacks: {', '.join(known)}."
                )
        with self.sessions.begin() as s:
            row = s.get(App, app.id)
            assert row is not None
            row.buildpack = buildpack
        return self.view(self.find(name))

    def destroy(self, name: str) -> AppView:
        """Cancel the app's builds, then remove its record, repo, build logs, cache and slugs."""
        app = self.find(name)
        view = self.view(app)
        if app.config_version and self.destroy_config is not None:
            self.destroy_config(app)  # first: if the store is down, nothing else is lost
        self.builds.cancel_all(app.id)
        self.runtime.destroy(app.name, app.id)
        with self.builds.app_locked(app.id), self.sessions.begin() as s:
            build_ids = s.scalars(select(Build.id).where(Build.app_id == app.id)).all()
            s.execute(delete(Build).where(Build.app_id == app.id))
            s.execute(delete(App).where(App.id == app.id))
            self.repos.destroy(name)
        shutil.rmtree(self.settings.cache_dir / app.id, ignore_errors=True)
        shutil.rmtree(self.settings.slugs_dir / app.id, ignore_errors=True)
        for build_id in build_ids:
            self.builds.log_path(build_id).unlink(missing_ok=True)
        return view

    def purge_cache(self, name: str) -> None:
        app = self.find(name)
        shutil.rmtree(self.settings.cache_dir / app.id, ignore_errors=True)
