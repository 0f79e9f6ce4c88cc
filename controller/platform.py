"""The platform object: settings plus every service, built once and shared by API and server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from controller import proc
from controller.apps.service import AppService
from controller.auth import TokenService, load_or_create_hook_token
from controller.builds.appjson import web_check
from controller.builds.service import BuildService
from controller.config.service import ConfigService
from controller.db.engine import make_engine, make_sessionmaker, migrate
from controller.db.models import App, Domain
from controller.domains.service import DomainService
from controller.git.repos import Repos
from controller.keys.service import KeyService
from controller.releases.service import ReleaseService
from controller.runtime.base import DeployFailed, DeploySpec, Runtime
from controller.runtime.local.runtime import LocalRuntime
from controller.secrets.openbao import EmbeddedOpenBao
from controller.secrets.store import ConfigStore
from controller.settings import Settings

if TYPE_CHECKING:
    from controller.runtime.nomad.builds import NomadBuilder


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
    runtime: Runtime
    releases: ReleaseService
    domains: DomainService
    config: ConfigService
    openbao: EmbeddedOpenBao | None  # None with an external Vault

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """Open (creating and migrating if needed) the data dir's state."""
        for d in (settings.data_dir, settings.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        # 0711: app users may pass through to their own release dir (data/apps/APP, 0700,
        # owned by them) but cannot list the data dir; everything else inside is 0700.
        settings.data_dir.chmod(0o711)
        private = (settings.repos_dir, settings.builds_dir, settings.slugs_dir, settings.run_dir)
        for d in private:
            d.mkdir(exist_ok=True)
            d.chmod(0o700)
        # Builds run as each app's user: they pass through these (0711, not listable) to their
        # own build and cache dirs (0700, owned by the app's user).
        for d in (settings.cache_dir, settings.data_dir / "tmp"):
            d.mkdir(exist_ok=True)
            d.chmod(0o711)
        engine = make_engine(f"sqlite:///{settings.db_path}")
        migrate(engine)
        for db_file in settings.data_dir.glob("yurt.db*"):
            db_file.chmod(0o600)
        sessions = make_sessionmaker(engine)
        tokens = TokenService(sessions, load_or_create_hook_token(settings.hook_token_file))
        repos = Repos(settings)
        builds = BuildService(settings, sessions)
        runtime = make_runtime(settings, sessions, builds)
        openbao, store = open_config_store(settings)
        releases = ReleaseService(sessions, runtime, keep=settings.releases_kept, config=store)
        config = ConfigService(sessions, store, releases)
        builds.after_build = releases.release_build
        builds.build_config = config.for_build
        releases.restore_config = config.restore
        apps = AppService(settings, sessions, repos, builds, runtime)
        apps.destroy_config = config.destroy
        domains = DomainService(settings, sessions, runtime)
        if settings.runtime == "nomad":
            domains.on_change = releases.reroute  # routes are tags in the app's job
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
            domains,
            config,
            openbao,
        )

    def start_config_store(self) -> None:
        """Start (or re-attach to) the embedded OpenBao; an external Vault is only checked
        when used, so the server starts while it is down."""
        if self.openbao is not None:
            self.openbao.start()

    def close(self) -> None:
        self.builds.shutdown()
        self.engine.dispose()


def open_config_store(settings: Settings) -> tuple[EmbeddedOpenBao | None, ConfigStore]:
    """The external Vault named by the settings, else the embedded OpenBao in the data dir."""
    if settings.vault is not None:
        return None, ConfigStore.from_settings(settings.vault)
    openbao = EmbeddedOpenBao(settings.data_dir / "openbao", settings.openbao_listen)
    return openbao, openbao.store()


def make_runtime(settings: Settings, sessions: sessionmaker[Any], builds: BuildService) -> Runtime:
    """The local runtime, or with ``--runtime nomad`` the cluster's (and its builder)."""
    if settings.runtime != "nomad":
        return LocalRuntime(settings, sessions)
    from controller.runtime.nomad.builds import NomadBuilder
    from controller.runtime.nomad.client import NomadClient
    from controller.runtime.nomad.consul import ConsulClient
    from controller.runtime.nomad.jobspec import BuildJobSpec
    from controller.runtime.nomad.runtime import (
        NomadRuntime,
        NomadRuntimeSettings,
        ReleaseImage,
    )

    cluster = settings.cluster
    if cluster is None:
        raise ValueError("the nomad runtime needs the cluster's settings")
    client = NomadClient(cluster.nomad)

    def image_for(spec: DeploySpec) -> ReleaseImage:
        if not spec.image or not spec.build_id:
            raise DeployFailed(
                f"v{spec.version} has no image: it was built by the local runtime; push again"
            )
        return ReleaseImage(image=spec.image, build_id=spec.build_id)

    def app_for(app_id: str) -> str:
        with sessions() as s:
            app = s.get(App, app_id)
            if app is None:
                raise LookupError(f"unknown app id {app_id!r}")
            return app.name

    def hosts_for(spec: DeploySpec) -> tuple[str, ...]:
        with sessions() as s:
            rows = s.scalars(
                select(Domain.hostname)
                .where(Domain.app_id == spec.app_id)
                .order_by(Domain.created_at, Domain.hostname)
            )
            return tuple(rows)

    builder = NomadBuilder(
        client,
        BuildJobSpec(
            builder_image=cluster.builder,
            controller_url=cluster.controller_url or settings.base_url,
            registry=cluster.registry,
            namespace=cluster.nomad.namespace,
            region=cluster.nomad.region or "global",
            datacenters=cluster.datacenters,
        ),
        settings.cache_dir,
        stack_image=cluster.stack_image or None,
    )
    builds.remote = builder
    return NomadRuntime(
        client,
        NomadRuntimeSettings(
            namespace=cluster.nomad.namespace,
            region=cluster.nomad.region or "global",
            datacenters=cluster.datacenters,
            base_domain=settings.base_domain,
            router=cluster.router,
            deploy_timeout=cluster.deploy_timeout,
        ),
        image_for=image_for,
        config_version_for=lambda spec: spec.config_version or None,
        app_for=app_for,
        health_check_for=lambda spec: _web_health_check(settings, spec, builder),
        hosts_for=hosts_for,
        consul=ConsulClient(cluster.nomad),
    )


def _web_health_check(settings: Settings, spec: DeploySpec, builder: NomadBuilder) -> Any:
    """The Consul check of web: the HTTP path app.json declares at the release's commit, else
    TCP. Read from the app's repo (the controller has no slug on the nomad runtime), or, for
    a commit still in the push's quarantine, from what its build saw."""
    from controller.runtime.nomad.jobspec import HealthCheck

    if not spec.commit:
        return HealthCheck()
    repo = settings.repos_dir / f"{spec.app}.git"
    shown = proc.run(["git", "--git-dir", repo, "show", f"{spec.commit}:app.json"], check=False)
    text = shown.stdout if shown.returncode == 0 else builder.app_json(spec.commit)
    check = web_check(text)
    return HealthCheck(path=check.path) if check else HealthCheck()
