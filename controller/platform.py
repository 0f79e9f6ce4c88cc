"""The platform object: settings plus every service, built once and shared by API and server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from controller.apps.service import AppService
from controller.auth import TokenService, load_or_create_hook_token
from controller.builds.service import BuildService
from controller.db.engine import make_engine, make_sessionmaker, migrate
from controller.domains.service import DomainService
from controller.git.repos import Repos
from controller.keys.service import KeyService
from controller.releases.service import ReleaseService
from controller.runtime.local.runtime import LocalRuntime
from controller.settings import Settings


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Any]
    tokens: TokenService
    repos: Repos
    builds: BuildService
    apps: AppService
    keys: KeyService
    runtime: LocalRuntime
    releases: ReleaseService
    domains: DomainService

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """Open (creating and migrating if needed) the data dir's state."""
        for d in (settings.data_dir, settings.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        # 0711: app users may pass through to their own release dir (data/apps/APP, 0700,
        # owned by them) but cannot list the data dir; everything else inside is 0700.
        settings.data_dir.chmod(0o711)
        private = (
            settings.repos_dir,
            settings.builds_dir,
            settings.cache_dir,
            settings.slugs_dir,
            settings.run_dir,
            settings.data_dir / "tmp",
        )
        for d in private:
            d.mkdir(exist_ok=True)
            d.chmod(0o700)
        engine = make_engine(f"sqlite:///{settings.db_path}")
        migrate(engine)
        for db_file in settings.data_dir.glob("yurt.db*"):
            db_file.chmod(0o600)
        sessions = make_sessionmaker(engine)
        tokens = TokenService(sessions, load_or_create_hook_token(settings.hook_token_file))
        repos = Repos(settings)
        builds = BuildService(settings, sessions)
        runtime = LocalRuntime(settings, sessions)
        releases = ReleaseService(sessions, runtime, keep=settings.releases_kept)
        builds.after_build = releases.release_build
        apps = AppService(settings, sessions, repos, builds, runtime)
        return cls(
            settings,
            engine,
            sessions,
            tokens,
            repos,
            builds,
            apps,
            KeyService(sessions),
            runtime,
            releases,
            DomainService(settings, sessions, runtime),
        )

    def close(self) -> None:
        self.builds.shutdown()
        self.engine.dispose()
