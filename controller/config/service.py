"""Config service: an app's config vars (Heroku's ``config:*``), stored in Vault/OpenBao.

Every change is a new KV version and, when the app has a release, a new release pinned to it
("Set K1, K2 config vars") deployed like code. With ``restart=False`` (``--no-restart``) only
the KV version is written; the next release (a push, another change, or ``ps:restart``, which
then releases the pending config) takes it. Values never leave this service except to the API
caller who asked for them, the build's ENV_DIR and the processes' environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from controller.db.models import App
from controller.errors import DeployError
from controller.releases.service import ReleaseService
from controller.runtime.base import DeployFailed
from controller.secrets.store import ConfigStore, ConfigVersion


@dataclass(frozen=True)
class ConfigUpdate:
    config: ConfigVersion
    changed: tuple[str, ...]  # keys set or unset
    release: int | None  # the release made for the change, if any


def describe_change(set_keys: tuple[str, ...], unset_keys: tuple[str, ...]) -> str:
    """A release description that names the keys, never the values."""
    parts = []
    if set_keys:
        parts.append(f"Set {', '.join(set_keys)} config vars")
    if unset_keys:
        parts.append(f"Unset {', '.join(unset_keys)} config vars")
    return "; ".join(parts)


class ConfigService:
    def __init__(
        self, sessions: sessionmaker[Any], store: ConfigStore, releases: ReleaseService
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.releases = releases

    def get(self, app: App) -> ConfigVersion:
        return self.store.read(app.name)

    def update(
        self, app: App, set_values: dict[str, str], unset: list[str], restart: bool
    ) -> ConfigUpdate:
        """Apply the change as one new KV version; with ``restart``, release and deploy it."""
        change = self.store.change(app.name, set_values, unset)
        keys = change.set_keys + change.unset_keys
        if change.changed:
            self._record_version(app, change.config.version)
        if not change.changed or not restart or self.releases.current(app.id) is None:
            return ConfigUpdate(change.config, keys, None)
        description = describe_change(change.set_keys, change.unset_keys)
        try:
            version = self.releases.release_config(app, change.config.version, description)
        except DeployFailed as exc:
            raise DeployError(
                f"The config was saved (version {change.config.version}) but its release "
                f"failed, so the previous release keeps serving. {exc}"
            ) from exc
        return ConfigUpdate(change.config, keys, version)

    def restore(self, app: App, version: int | None) -> int:
        """For rollback: make the newest config equal to ``version``'s (writing a new KV
        version if they differ); returns the version to pin."""
        with self.sessions() as s:
            row = s.get(App, app.id)
            latest = row.config_version if row else 0
        if (version or 0) == latest:
            return latest
        target = self.store.read(app.name, version).values if version else {}
        current = self.store.read(app.name)
        unset = [k for k in current.values if k not in target]
        change = self.store.change(app.name, target, unset)
        if not change.changed:
            return change.config.version
        self._record_version(app, change.config.version)
        return change.config.version

    def for_build(self, app_id: str) -> dict[str, str]:
        """The newest config, for a build's ENV_DIR (no store call for apps without config)."""
        with self.sessions() as s:
            app = s.get(App, app_id)
        if app is None or not app.config_version:
            return {}
        return self.store.read(app.name, app.config_version).values

    def destroy(self, app: App) -> None:
        self.store.destroy(app.name)

    def _record_version(self, app: App, version: int) -> None:
        """Note the newest KV version in the DB (concurrent changes: the highest wins)."""
        with self.sessions.begin() as s:
            s.execute(
                update(App)
                .where(App.id == app.id, App.config_version < version)
                .values(config_version=version)
            )
