"""Release service: creates releases (from builds, rollbacks) and has the runtime deploy them.

The DB is the ledger: a release is a slug + process types + config version + description,
numbered per app. The runtime's processes are derived from it, never the other way round.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker
from ulid import ULID

from controller.builds.runner import BuildResult
from controller.db.models import App, Release, utcnow
from controller.errors import (
    ConfigStoreUnavailable,
    Conflict,
    DeployError,
    InvalidParams,
    NotFound,
    YurtError,
)
from controller.runtime.base import DeployFailed, DeploySpec, Emit, Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseView:
    id: str
    app: str
    version: int
    build_id: str | None
    commit: str | None
    slug_checksum: str | None
    image: str | None
    process_types: dict[str, str]
    config_version: int | None
    description: str
    status: str
    error: str | None
    current: bool
    created_at: datetime
    finished_at: datetime | None


class ConfigValues(Protocol):
    """Where a release's pinned config values come from (the config store)."""

    def read(self, app: str, version: int | None = None) -> Any: ...


class ReleaseService:
    def __init__(
        self,
        sessions: sessionmaker[Any],
        runtime: Runtime,
        keep: int = 10,
        config: ConfigValues | None = None,
    ) -> None:
        self.sessions = sessions
        self.runtime = runtime
        self.keep = keep  # releases whose slugs are kept for rollback (besides the current one)
        self.config = config
        # Makes an app's newest config equal to a pinned version's; returns the version that
        # holds it (set by the platform: the config service).
        self.restore_config: Callable[[App, int | None], int] | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, app_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(app_id, threading.Lock())

    # -- queries -------------------------------------------------------------------------

    def list(self, app: App) -> list[ReleaseView]:
        with self.sessions() as s:
            rows = s.scalars(
                select(Release).where(Release.app_id == app.id).order_by(Release.version.desc())
            ).all()
            current = s.get(App, app.id)
            cur_id = current.current_release_id if current else None
            return [_view(r, app.name, r.id == cur_id) for r in rows]

    def get(self, app: App, version: str | int) -> ReleaseView:
        row = self._find(app, version)
        with self.sessions() as s:
            current = s.get(App, app.id)
            return _view(
                row, app.name, current is not None and current.current_release_id == row.id
            )

    def _find(self, app: App, version: str | int) -> Release:
        """Release ``vN`` of the app; 422 for a malformed version, 404 for a missing one."""
        number = parse_version(version)
        with self.sessions() as s:
            row = s.scalar(
                select(Release).where(Release.app_id == app.id, Release.version == number)
            )
        if row is None:
            raise NotFound(f"Release v{number} not found for app {app.name}.")
        return row

    def current(self, app_id: str) -> Release | None:
        with self.sessions() as s:
            app = s.get(App, app_id)
            if app is None or app.current_release_id is None:
                return None
            return s.get(Release, app.current_release_id)

    # -- creating and deploying ----------------------------------------------------------

    def release_build(
        self, app_id: str, build_id: str, commit: str, result: BuildResult, emit: Emit
    ) -> None:
        """After a successful build: make a release of it and deploy it (in the push). It pins
        the app's newest config version at release time, so a config change made while the
        build ran is not lost."""
        values = {
            "build_id": build_id,
            "slug_path": str(result.slug_path) if result.slug_path else None,
            "image": result.image,
            "slug_checksum": result.slug_checksum,
            "commit": commit,
            "process_types": json.dumps(result.process_types),
            "description": f"Deploy {commit[:7]}",
        }
        self._create_and_deploy(app_id, values, emit, pin_latest_config=True)

    def release_config(self, app: App, config_version: int, description: str) -> int | None:
        """A new release of the current slug with another config version, deployed; None if
        the app has no release yet (its first push will take the config)."""
        with self._lock(app.id):
            current = self.current(app.id)
            if current is None:
                return None
            with self.sessions() as s:
                row = s.get(App, app.id)
                # A concurrent change may have written a newer version: never pin an older one.
                config_version = max(config_version, row.config_version if row else 0)
            values = {
                "build_id": current.build_id,
                "slug_path": current.slug_path,
                "image": current.image,
                "slug_checksum": current.slug_checksum,
                "commit": current.commit,
                "process_types": current.process_types,
                "config_version": config_version,
                "description": description,
            }
            release_id = self._create(app.id, values)
            self._deploy(app.id, release_id, lambda _b: None)
        with self.sessions() as s:
            row = s.get(Release, release_id)
            assert row is not None
            return row.version

    def rollback(self, app: App, version: str | int | None) -> ReleaseView:
        with self.sessions() as s:
            succeeded = s.scalars(
                select(Release)
                .where(Release.app_id == app.id, Release.status == "succeeded")
                .order_by(Release.version.desc())
            ).all()
            if version is None:
                if len(succeeded) < 2:
                    raise Conflict("There is no earlier release to roll back to.")
                target = succeeded[1]
            else:
                number = parse_version(version)
                target = next((r for r in succeeded if r.version == number), None)
                if target is None:
                    raise InvalidParams(
                        f"Cannot roll back to v{number}: it does not exist or never deployed successfully."
                    )
            if target.image is None and not Path(target.slug_path or "").is_file():
                raise InvalidParams(
                    f"Cannot roll back to v{target.version}: its slug was pruned (Yurt keeps "
                    f"the slugs of the last {self.keep} releases)."
                )
            values = {
                "build_id": target.build_id,
                "slug_path": target.slug_path,
                "image": target.image,
                "slug_checksum": target.slug_checksum,
                "commit": target.commit,
                "process_types": target.process_types,
                "config_version": target.config_version,
                "description": f"Rollback to v{target.version}",
            }
        if self.restore_config is not None:
            # The config vars become the target's again (a new KV version with its values),
            # so config:* shows what runs and the next change starts from there.
            values["config_version"] = self.restore_config(app, target.config_version)
        try:
            release_id = self._create_and_deploy(app.id, values, lambda _b: None)
        except DeployFailed as exc:
            raise DeployError(f"Rollback to v{target.version} failed: {exc}") from exc
        with self.sessions() as s:
            row = s.get(Release, release_id)
            assert row is not None
            cur = s.get(App, app.id)
            return _view(row, app.name, cur is not None and cur.current_release_id == row.id)

    def _create_and_deploy(
        self, app_id: str, values: dict[str, Any], emit: Emit, pin_latest_config: bool = False
    ) -> str:
        with self._lock(app_id):
            if pin_latest_config:
                with self.sessions() as s:
                    app = s.get(App, app_id)
                    values = {**values, "config_version": app.config_version if app else 0}
            release_id = self._create(app_id, values)
            self._deploy(app_id, release_id, emit)
        return release_id

    def _create(self, app_id: str, values: dict[str, Any]) -> str:
        with self.sessions.begin() as s:
            last = s.scalar(select(func.max(Release.version)).where(Release.app_id == app_id))
            release = Release(id=str(ULID()), app_id=app_id, version=(last or 0) + 1, **values)
            s.add(release)
            return release.id

    def spec(self, app_id: str, release: Release) -> DeploySpec:
        with self.sessions() as s:
            app = s.get(App, app_id)
            assert app is not None
            types = json.loads(release.process_types)
            formation = default_formation(types, json.loads(app.formation or "{}"))
            name = app.name
        return DeploySpec(
            app=name,
            app_id=app_id,
            version=release.version,
            slug_path=Path(release.slug_path) if release.slug_path else None,
            process_types=types,
            formation=formation,
            env=self.config_values(name, release.config_version),
            image=release.image,
            build_id=release.build_id,
            config_version=release.config_version,
            commit=release.commit,
        )

    def config_values(self, app: str, version: int | None) -> dict[str, str]:
        """The config a release pinned; asks the config store only if there is one."""
        if not version:
            return {}
        if self.config is None:
            raise ConfigStoreUnavailable("No config store is configured on this server.")
        values: dict[str, str] = self.config.read(app, version).values
        return values

    def _deploy(self, app_id: str, release_id: str, emit: Emit) -> None:
        with self.sessions() as s:
            release = s.get(Release, release_id)
            assert release is not None
        self._set(release_id, status="deploying")
        emit(f"-----> Releasing v{release.version}\n".encode())
        try:
            try:
                spec = self.spec(app_id, release)
            except YurtError as exc:  # the config store is down, sealed, or lost the version
                raise DeployFailed(exc.message) from None
            try:
                self.runtime.deploy(spec, emit)
            except DeployFailed:
                raise
            except Exception as exc:  # the release must end recorded, whatever broke
                log.exception("deploying %s v%s crashed", app_id, release.version)
                raise DeployFailed(
                    f"Internal error while deploying ({type(exc).__name__}); see the server log."
                ) from exc
        except DeployFailed as exc:
            self._set(release_id, status="failed", error=str(exc), finished_at=utcnow())
            raise DeployFailed(
                f"{exc}\nRelease v{release.version} failed; the previous release keeps serving."
            ) from exc
        self._set(release_id, status="succeeded", finished_at=utcnow())
        with self.sessions.begin() as s:
            s.execute(
                update(App)
                .where(App.id == app_id)
                .values(current_release_id=release_id, stopped=False)
            )
        emit(f"-----> v{release.version} is live\n".encode())
        self.prune(app_id)

    def prune(self, app_id: str) -> None:
        """Delete slugs and release dirs of all but the last ``keep`` releases and the current
        one. Rollback copies a slug path into a new release, so a slug goes only when no kept
        release uses it."""
        with self.sessions() as s:
            app = s.get(App, app_id)
            rows = s.scalars(
                select(Release).where(Release.app_id == app_id).order_by(Release.version.desc())
            ).all()
        if app is None:
            return
        kept = [r for r in rows[: self.keep]] + [r for r in rows if r.id == app.current_release_id]
        kept_slugs = {r.slug_path for r in kept}
        for release in rows[self.keep :]:
            if release.slug_path and release.slug_path not in kept_slugs:
                Path(release.slug_path).unlink(missing_ok=True)
        self.runtime.prune(app.name, {r.version for r in kept})

    def _set(self, release_id: str, **values: Any) -> None:
        with self.sessions.begin() as s:
            s.execute(update(Release).where(Release.id == release_id).values(**values))

    def recover(self) -> int:
        """After a crash mid-deploy: settle releases left 'deploying' to match what runs.

        A release whose web instances are routed ('up') was switched to, so it succeeded;
        any other was not, so it failed and its instances are stopped.
        """
        with self.sessions() as s:
            stuck = s.scalars(
                select(Release).where(Release.status.in_(("pending", "deploying")))
            ).all()
        for release in stuck:
            if self.runtime.is_serving(release.app_id, release.version):
                self._set(release.id, status="succeeded", finished_at=utcnow())
                with self.sessions.begin() as s:
                    s.execute(
                        update(App)
                        .where(App.id == release.app_id)
                        .values(current_release_id=release.id)
                    )
            else:
                self.runtime.discard(release.app_id, release.version)
                self._set(
                    release.id,
                    status="failed",
                    error="interrupted: the server stopped during this deploy",
                    finished_at=utcnow(),
                )
        return len(stuck)

    def restore_missing(self) -> Sequence[str]:
        """After a reboot (supervisord's confs live on tmpfs) or a lost process manager: start
        every app's current release again from the DB, except apps stopped with ps:stop."""
        restored: Sequence[str] = []
        with self.sessions() as s:
            apps = s.scalars(
                select(App).where(App.current_release_id.is_not(None), App.stopped.is_(False))
            ).all()
        for app in apps:
            release = self.current(app.id)
            if release is None:
                continue
            with self._lock(app.id):
                try:
                    if not self.runtime.missing(app.id):
                        continue
                    self.runtime.restore(self.spec(app.id, release))
                    restored = [*restored, app.name]
                except DeployFailed as exc:
                    log.error("could not restore %s v%s: %s", app.name, release.version, exc)
                except YurtError as exc:  # e.g. the config store is down: try the others
                    log.error(
                        "could not restore %s v%s: %s", app.name, release.version, exc.message
                    )
        return restored

    def restart(self, app: App, process_type: str | None) -> None:
        """ps:restart: rolling restart of one type or all, web without downtime."""
        release = self.current(app.id)
        if release is None:
            raise Conflict(f"{app.name} has no release yet: git push it first.")
        types = [t for t in json.loads(release.process_types) if t != "release"]
        if process_type is not None and process_type not in types:
            raise InvalidParams(
                f"Unknown process type {process_type[:64]!r}; this release has: {', '.join(types)}."
            )
        with self.sessions() as s:
            row = s.get(App, app.id)
            pending = row is not None and row.config_version != (release.config_version or 0)
        if pending and row is not None:
            # Config set with --no-restart: restarting releases it (Dokku's behaviour).
            try:
                self.release_config(app, row.config_version, "Apply pending config changes")
            except DeployFailed as exc:
                raise DeployError(f"Restart failed; the old processes keep running: {exc}") from exc
            return
        with self._lock(app.id):
            try:
                self.runtime.restart(self.spec(app.id, release), process_type)
            except DeployFailed as exc:
                raise DeployError(f"Restart failed; the old processes keep running: {exc}") from exc

    def preview(self, app: App, version: str | int | None) -> str:
        """What deploying release ``version`` (default: the current one) with the app's
        formation and domains would change in the runtime (nomad: the job spec diff)."""
        if version is None:
            target = self.current(app.id)
            if target is None:
                raise Conflict(f"{app.name} has no release yet: git push it first.")
        else:
            target = self._find(app, version)
        try:
            return self.runtime.preview(self.spec(app.id, target))
        except DeployFailed as exc:
            raise InvalidParams(f"Cannot preview v{target.version}: {exc}") from None

    def reroute(self, app: App) -> None:
        """Roll web again so the app's routing (its job's tags) names its current domains (the
        nomad runtime, after domains:add/remove); nothing to do before the first release or
        while the app is stopped: the next deploy or ps:start carries them."""
        release = self.current(app.id)
        with self.sessions() as s:
            row = s.get(App, app.id)
            stopped = row is None or row.stopped
        if release is None or stopped or "web" not in json.loads(release.process_types):
            return
        with self._lock(app.id):
            try:
                self.runtime.restart(self.spec(app.id, release), "web")
            except (DeployFailed, YurtError) as exc:
                message = exc.message if isinstance(exc, YurtError) else str(exc)
                raise DeployError(
                    f"The domain change is saved but web could not be rolled to route it: "
                    f"{message}. It takes effect with the next deploy or ps:restart."
                ) from exc

    def stop(self, app: App) -> None:
        """ps:stop: stop every process; nothing runs until ps:start or the next deploy."""
        with self._lock(app.id):
            with self.sessions.begin() as s:
                s.execute(update(App).where(App.id == app.id).values(stopped=True))
            self.runtime.stop_app(app.id)

    def start(self, app: App) -> None:
        """ps:start: run the current release with the app's formation again."""
        release = self.current(app.id)
        if release is None:
            raise Conflict(f"{app.name} has no release yet: git push it first.")
        with self._lock(app.id):
            try:
                self.runtime.scale(self.spec(app.id, release))
            except DeployFailed as exc:
                raise DeployError(f"{app.name} did not start: {exc}") from exc
            with self.sessions.begin() as s:
                s.execute(update(App).where(App.id == app.id).values(stopped=False))

    # -- formation -----------------------------------------------------------------------

    def scale(self, app: App, changes: dict[str, int], max_count: int) -> dict[str, int]:
        release = self.current(app.id)
        if release is None:
            raise Conflict(f"{app.name} has no release yet: git push it first.")
        types = json.loads(release.process_types)
        for ptype, count in changes.items():
            if ptype not in types or ptype == "release":
                raise InvalidParams(
                    f"Unknown process type {ptype[:64]!r}; this release has: {', '.join(t for t in types if t != 'release')}."
                )
            if not 0 <= count <= max_count:
                raise InvalidParams(
                    f"Counts must be between 0 and {max_count}; got {ptype}={count}."
                )
        with self._lock(app.id):
            with self.sessions.begin() as s:
                row = s.get(App, app.id)
                assert row is not None
                before, stopped = row.formation, row.stopped
                formation = {
                    **default_formation(types, json.loads(row.formation or "{}")),
                    **changes,
                }
                row.formation = json.dumps(formation)
            if stopped:
                return formation  # recorded; ps:start runs it
            try:
                self.runtime.scale(self.spec(app.id, release))
            except DeployFailed as exc:
                with self.sessions.begin() as s:
                    s.execute(update(App).where(App.id == app.id).values(formation=before))
                raise DeployError(f"Scaling {app.name} failed, nothing changed: {exc}") from exc
        return formation

    def formation(self, app: App) -> dict[str, int]:
        release = self.current(app.id)
        types = json.loads(release.process_types) if release else {}
        return default_formation(types, json.loads(app.formation or "{}"))


def default_formation(types: dict[str, str], saved: dict[str, int]) -> dict[str, int]:
    """Heroku's default: one web, other types 0, unless scaled."""
    return {t: int(saved.get(t, 1 if t == "web" else 0)) for t in types if t != "release"}


def parse_version(value: str | int) -> int:
    text = str(value)
    digits = text[1:] if text.startswith("v") else text
    if not digits.isdigit() or int(digits) < 1:
        raise InvalidParams(f"Invalid release {text[:20]!r}: use vN, e.g. v3.")
    return int(digits)


def _view(r: Release, app: str, current: bool) -> ReleaseView:
    return ReleaseView(
        id=r.id,
        app=app,
        version=r.version,
        build_id=r.build_id,
        commit=r.commit,
        slug_checksum=r.slug_checksum,
        image=r.image,
        process_types=json.loads(r.process_types),
        config_version=r.config_version,
        description=r.description,
        status=r.status,
        error=r.error,
        current=current,
        created_at=r.created_at,
        finished_at=r.finished_at,
    )
