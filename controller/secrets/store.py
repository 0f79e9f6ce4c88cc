"""Config vars in Vault/OpenBao KV v2: one secret per app, every change a new KV version.

A release pins the KV version it runs with, so reading an old version gives back exactly the
config that release had. Writes use check-and-set against the version they were computed from;
a concurrent writer makes us re-read and re-apply, so no change is lost.

Values are secrets: nothing in this module puts one in a message, a log or an exception chain.
Errors from hvac/requests can carry response bodies or URLs, so they are translated into
:mod:`controller.errors` types and raised ``from None``.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import hvac
import hvac.exceptions as hv
import requests

from controller.errors import (
    ConfigConflict,
    ConfigStoreUnavailable,
    ConfigVersionNotFound,
    InvalidParams,
)
from controller.names import check_app_name
from controller.secrets.validate import check_change, check_config_size

T = TypeVar("T")

DEFAULT_MOUNT = "secret"
DEFAULT_PREFIX = "yurt/apps"
# KV v2 keeps only 10 versions per secret unless told otherwise, and silently prunes older
# ones; a release pinned to a pruned version could not be rolled back to. Set per secret.
KEEP_VERSIONS = 1000
CAS_ATTEMPTS = 8
TIMEOUT = 10.0

MOUNT_RE = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\Z")
CAS_MISMATCH = "check-and-set parameter did not match"


@dataclass(frozen=True)
class ConfigVersion:
    """One KV version of an app's config. Version 0 with no values: the app has no config yet."""

    version: int
    values: dict[str, str]


@dataclass(frozen=True)
class ConfigChange:
    """The outcome of :meth:`ConfigStore.change`.

    ``set_keys``/``unset_keys`` are the keys whose value really changed; when both are empty
    nothing was written and ``config`` is the unchanged current version.
    """

    config: ConfigVersion
    previous_version: int
    set_keys: tuple[str, ...] = ()
    unset_keys: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.set_keys or self.unset_keys)


@dataclass(frozen=True)
class VaultSettings:
    """Where an external Vault/OpenBao is and how to log in to it."""

    addr: str
    token: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    ca_cert: str | None = None
    verify: bool = True
    mount: str = DEFAULT_MOUNT
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> VaultSettings | None:
        """Read Vault's usual variables plus YURT_VAULT_MOUNT/PREFIX; None without VAULT_ADDR."""
        addr = environ.get("VAULT_ADDR", "").strip()
        if not addr:
            return None
        skip = environ.get("VAULT_SKIP_VERIFY", "").strip().lower()
        settings = cls(
            addr=addr,
            token=environ.get("VAULT_TOKEN") or None,
            role_id=environ.get("VAULT_ROLE_ID") or None,
            secret_id=environ.get("VAULT_SECRET_ID") or None,
            ca_cert=environ.get("VAULT_CACERT") or None,
            verify=skip in ("", "0", "false", "no"),
            mount=environ.get("YURT_VAULT_MOUNT") or DEFAULT_MOUNT,
            prefix=environ.get("YURT_VAULT_PREFIX") or DEFAULT_PREFIX,
        )
        if not settings.token and not (settings.role_id and settings.secret_id):
            raise ValueError(
                "VAULT_ADDR is set but there are no credentials: "
                "set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID"
            )
        return settings

    @property
    def tls_verify(self) -> bool | str:
        """hvac's ``verify``: off, the CA file, or the system CAs."""
        if not self.verify:
            return False
        return self.ca_cert or True


def check_kv_path(name: str, value: str) -> str:
    """Mount and prefix end up in URLs and in a policy: plain path segments only."""
    if not MOUNT_RE.match(value):
        raise ValueError(
            f"invalid {name} {value[:64]!r}: use '/'-separated letters, digits, '_' and '-'"
        )
    return value


def apply_change(
    current: Mapping[str, str], set_values: Mapping[str, str], unset: Iterable[str]
) -> dict[str, str]:
    """The config after a change. Unsetting a key that is not set is a no-op (as on Heroku)."""
    new = {**current, **set_values}
    for key in unset:
        new.pop(key, None)
    return new


class ConfigStore:
    """Reads and changes apps' config vars in one KV v2 mount.

    Auth is a token (or a callable returning one, asked again after a 403) or AppRole
    credentials (logged in again after a 403, e.g. when the token expired). The object holds no
    connection state that an outage could break: after Vault comes back it simply works again.
    """

    def __init__(
        self,
        addr: str,
        *,
        token: str | Callable[[], str] | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        approle_mount: str = "approle",
        verify: bool | str = True,
        mount: str = DEFAULT_MOUNT,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = TIMEOUT,
        keep_versions: int = KEEP_VERSIONS,
        cas_attempts: int = CAS_ATTEMPTS,
    ) -> None:
        if (token is None) == (role_id is None or secret_id is None):
            raise ValueError("give either a token or an AppRole role_id and secret_id")
        self.addr = addr.rstrip("/")
        self.mount = check_kv_path("mount", mount.strip("/"))
        self.prefix = check_kv_path("prefix", prefix.strip("/"))
        self.keep_versions = keep_versions
        self.cas_attempts = cas_attempts
        self._token = token
        self._approle = (role_id, secret_id, approle_mount) if token is None else None
        self._client = hvac.Client(url=self.addr, token="", verify=verify, timeout=timeout)
        self._timeout = timeout
        self._logged_in = False
        self._login_lock = threading.Lock()
        self._app_locks: dict[str, threading.Lock] = {}
        self._app_locks_guard = threading.Lock()

    @classmethod
    def from_settings(cls, settings: VaultSettings) -> ConfigStore:
        """A store for an external Vault; a token wins over AppRole credentials."""
        return cls(
            settings.addr,
            token=settings.token,
            role_id=None if settings.token else settings.role_id,
            secret_id=None if settings.token else settings.secret_id,
            verify=settings.tls_verify,
            mount=settings.mount,
            prefix=settings.prefix,
        )

    # --- paths ---------------------------------------------------------------------------------

    def secret_path(self, app: str) -> str:
        """The app's secret relative to the mount (what hvac calls ``path``)."""
        return f"{self.prefix}/{check_app_name(app)}"

    def data_path(self, app: str) -> str:
        """The full KV v2 data path, as a Nomad ``template`` block reads it (``?version=N``)."""
        return f"{self.mount}/data/{self.secret_path(app)}"

    # --- the API -------------------------------------------------------------------------------

    def read(self, app: str, version: int | None = None) -> ConfigVersion:
        """The app's config at ``version``, or the latest one (version 0 if it has none)."""
        path = self.secret_path(app)
        if version is not None and (not isinstance(version, int) or version < 0):
            raise InvalidParams(f"Invalid config version {version!r}: versions are 0, 1, 2, ...")
        if version == 0:
            return ConfigVersion(0, {})
        try:
            resp = self._call(
                lambda c: c.secrets.kv.v2.read_secret_version(
                    path, version=version, mount_point=self.mount, raise_on_deleted_version=True
                ),
                passing=hv.InvalidPath,
            )
        except hv.InvalidPath as exc:
            self._check_mount(exc)
            gone = _version_gone(exc)
            if version is None and gone is None:
                return ConfigVersion(0, {})
            what = f"config version {version}" if version else "the latest config version"
            raise ConfigVersionNotFound(
                f"{what[0].upper()}{what[1:]} of app {app} {gone or 'does not exist'}."
            ) from None
        data = resp["data"]
        values = {str(k): v if isinstance(v, str) else str(v) for k, v in data["data"].items()}
        return ConfigVersion(int(data["metadata"]["version"]), values)

    def change(
        self, app: str, set_values: Mapping[str, str], unset: Iterable[str] = ()
    ) -> ConfigChange:
        """Set and unset config vars in one new KV version (all or nothing).

        Nothing is written when the change would leave the config as it is; the returned
        :class:`ConfigChange` then has ``changed == False``.
        """
        self.secret_path(app)
        to_set, to_unset = check_change(set_values, unset)
        with self._app_lock(app):  # same-process writers queue here; CAS covers other processes
            for attempt in range(self.cas_attempts):
                current = self.read(app)
                new = apply_change(current.values, to_set, to_unset)
                set_keys = tuple(k for k in to_set if current.values.get(k) != to_set[k])
                unset_keys = tuple(k for k in to_unset if k in current.values)
                if not (set_keys or unset_keys):
                    return ConfigChange(current, current.version)
                check_config_size(new, set_keys)
                written = self._write(app, new, cas=current.version)
                if written is not None:
                    config = ConfigVersion(written, new)
                    return ConfigChange(config, current.version, set_keys, unset_keys)
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise ConfigConflict(
            f"The config of app {app} was changed by someone else {self.cas_attempts} times "
            "while this change was being written; try again."
        )

    def destroy(self, app: str) -> None:
        """Delete every version of the app's config and its metadata (for ``apps:destroy``)."""
        path = self.secret_path(app)
        try:
            self._call(
                lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(
                    path, mount_point=self.mount
                ),
                passing=hv.InvalidPath,
            )
        except hv.InvalidPath as exc:
            self._check_mount(exc)  # a secret that does not exist is already destroyed

    def ping(self) -> None:
        """Raise ConfigStoreUnavailable unless the store answers, is unsealed and takes our token."""
        self._call(lambda c: c.auth.token.lookup_self())

    # --- internals -----------------------------------------------------------------------------

    def _write(self, app: str, values: dict[str, str], cas: int) -> int | None:
        """Write a new version if the current one is still ``cas``; None if it is not."""
        path = self.secret_path(app)
        if cas == 0 and self.keep_versions:
            # Before the first version, so it applies from the start; idempotent on a retry.
            self._call(
                lambda c: c.secrets.kv.v2.update_metadata(
                    path, max_versions=self.keep_versions, mount_point=self.mount
                )
            )
        try:
            resp = self._call(
                lambda c: c.secrets.kv.v2.create_or_update_secret(
                    path, values, cas=cas, mount_point=self.mount
                ),
                passing=hv.InvalidRequest,
            )
        except hv.InvalidRequest as exc:
            if any(CAS_MISMATCH in e for e in exc.errors or ()):
                return None
            raise self._unavailable(f"refused to store the config of app {app} (400)") from None
        return int(resp["data"]["version"])

    @contextmanager
    def _app_lock(self, app: str) -> Iterator[None]:
        with self._app_locks_guard:
            lock = self._app_locks.setdefault(app, threading.Lock())
        with lock:
            yield

    def _call(
        self, request: Callable[[hvac.Client], T], passing: type[hv.VaultError] | None = None
    ) -> T:
        """Run one request, logging in first (and once more after a 403), translating every
        transport or server failure into ConfigStoreUnavailable, except ``passing``, which the
        caller handles (and must re-raise ``from None``: hvac errors carry response bodies)."""
        for attempt in (1, 2):
            self._login(force=attempt == 2)
            try:
                return request(self._client)
            except hv.Forbidden:
                if attempt == 1:
                    continue
                raise self._unavailable(
                    "denied access (403): the token or its policy does not allow Yurt's paths "
                    f"under {self.mount}/{self.prefix}"
                ) from None
            except (hv.VaultError, requests.RequestException) as exc:
                if passing is not None and isinstance(exc, passing):
                    raise
                raise self._translate(exc) from None
        raise AssertionError("unreachable")

    def _login(self, force: bool) -> None:
        with self._login_lock:
            if self._logged_in and not force:
                return
            try:
                if self._approle is not None:
                    role_id, secret_id, mount = self._approle
                    self._client.auth.approle.login(role_id, secret_id, mount_point=mount)
                else:
                    token = self._token
                    self._client.token = token() if callable(token) else token
            except (hv.InvalidRequest, hv.Forbidden, hv.InvalidPath, hv.Unauthorized):
                raise self._unavailable(
                    "refused the AppRole login (check role_id/secret_id)"
                ) from None
            except (hv.VaultError, requests.RequestException) as exc:
                raise self._translate(exc) from None
            self._logged_in = True

    def _check_mount(self, exc: hv.InvalidPath) -> None:
        # A missing secret is a 404 without errors; a missing mount names the route.
        if any("no handler for route" in e for e in exc.errors or ()):
            raise self._unavailable(f"has no KV v2 mount at {self.mount}/") from None

    def _unavailable(self, what: str) -> ConfigStoreUnavailable:
        return ConfigStoreUnavailable(f"The config store at {self.addr} {what}.")

    def _translate(self, exc: Exception) -> ConfigStoreUnavailable:
        if isinstance(exc, hv.VaultDown):
            sealed = any("sealed" in e for e in exc.errors or ())
            return self._unavailable("is sealed" if sealed else "is unavailable (503)")
        if isinstance(exc, hv.VaultNotInitialized):
            return self._unavailable("is not initialized")
        if isinstance(exc, hv.VaultError):
            return self._unavailable(f"failed ({type(exc).__name__})")
        if isinstance(exc, requests.exceptions.SSLError):
            return self._unavailable(f"failed TLS verification: {_tls_reason(exc)}")
        if isinstance(exc, requests.Timeout):
            return self._unavailable(f"is unreachable: no answer within {self._timeout:g}s")
        return self._unavailable(f"is unreachable: {_os_reason(exc)}")


def _version_gone(exc: hv.InvalidPath) -> str | None:
    """Why a 404 on a version happened, from the metadata KV v2 sends with it (None if none)."""
    try:
        meta = exc.json["data"]["metadata"]
    except (TypeError, KeyError):
        return None
    if meta.get("destroyed"):
        return "was destroyed"
    if meta.get("deletion_time"):
        return "was deleted"
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        reason = getattr(cur, "reason", None)  # urllib3's MaxRetryError keeps it here
        cur = reason if isinstance(reason, BaseException) else (cur.__cause__ or cur.__context__)


def _os_reason(exc: BaseException) -> str:
    """'Connection refused' and the like, without requests' long wrapper text."""
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror)
    return type(exc).__name__


def _tls_reason(exc: BaseException) -> str:
    for cause in _causes(exc):
        message = getattr(cause, "verify_message", None)
        if message:
            return str(message)
    return "the server certificate could not be verified"
