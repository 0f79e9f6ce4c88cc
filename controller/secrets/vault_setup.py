"""What a cluster's Vault/OpenBao needs for Yurt, set up idempotently through hvac.

:func:`setup_vault` makes sure that:

- a KV v2 secrets engine holds the apps' config vars (``<kv mount>/data/<kv prefix>/<app>``);
- a JWT auth method trusts Nomad's workload identities (its keys come from Nomad's JWKS URL);
- the app policy lets a task read only its own app's secret: the path is templated on the
  identity's ``nomad_job_id`` claim, so job ``alpha`` reads ``.../apps/alpha`` and nothing else;
- the controller policy manages every app's secret (and nothing outside the apps' prefix);
- the role (``role_type = "jwt"``; Vault and OpenBao default to ``oidc``) admits identities of
  the app namespace and of the release namespace only. An app's service job and its
  release-phase batch job carry the same job ID, so both read the app's config; jobs in any
  other namespace (builds, cluster services) are refused at login.

The objects' content comes from ``vagrant/config/vault/`` (the same files the demo cluster's
provisioning reads), written for the names in ``vagrant/cluster.env``. Other names (a
``--kv-mount`` of another cluster, say) are mapped onto those files here, so the files stay the
one source of truth. Every step reads what is in place first and writes only what differs;
running it twice changes nothing the second time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions as hv
import requests

from controller.secrets.store import check_kv_path
from controller.settings import repo_root

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"

# Settings field -> the vagrant/cluster.env key that holds its default.
CONTRACT_KEYS = {
    "kv_mount": "YURT_KV_MOUNT",
    "kv_prefix": "YURT_KV_PREFIX",
    "jwt_mount": "YURT_VAULT_JWT_MOUNT",
    "audience": "YURT_VAULT_AUDIENCE",
    "role": "YURT_VAULT_ROLE",
    "app_policy": "YURT_VAULT_APP_POLICY",
    "controller_policy": "YURT_VAULT_CONTROLLER_POLICY",
    "namespace": "YURT_NOMAD_NAMESPACE",
    "release_namespace": "YURT_NOMAD_RELEASE_NAMESPACE",
}

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
AUDIENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,255}\Z")
ACCESSOR_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")
POLICY_PATH_RE = re.compile(r'^(\s*path\s+")([^"]*)(")', re.M)
DURATION_RE = re.compile(r"^(\d+)([smh]?)\Z")
ENV_LINE_RE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


class VaultSetupError(Exception):
    """Setting up Vault failed; the message says which step and what Vault answered."""


def cluster_dir() -> Path:
    """``vagrant/`` in the source tree: cluster.env and config/vault/."""
    return repo_root() / "vagrant"


def read_contract(path: Path | None = None) -> dict[str, str]:
    """The KEY=value lines of ``vagrant/cluster.env`` (comments and blank lines skipped)."""
    path = path or cluster_dir() / "cluster.env"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VaultSetupError(f"cannot read {path}: {exc.strerror}") from None
    return {m[1]: m[2] for line in text.splitlines() if (m := ENV_LINE_RE.match(line.strip()))}


@dataclass(frozen=True, kw_only=True)
class VaultSetupSettings:
    """The names Yurt's Vault objects get. :meth:`from_contract` fills in the cluster's."""

    kv_mount: str
    kv_prefix: str
    jwt_mount: str
    audience: str  # the ``aud`` Nomad puts in workload identities for Vault
    role: str
    app_policy: str
    controller_policy: str
    namespace: str  # Nomad namespace of the apps' service jobs (job ID = app)
    release_namespace: str  # ... and of their release-phase jobs (the same job ID)
    jwks_url: str | None = None  # None: the one in jwt-auth-config.json
    jwt_validation_pubkeys: tuple[str, ...] = ()  # PEM keys instead of a JWKS URL (tests)

    def __post_init__(self) -> None:
        for name in ("kv_mount", "kv_prefix", "jwt_mount"):
            check_kv_path(name.replace("_", " "), getattr(self, name))
        for name in ("role", "app_policy", "controller_policy", "namespace", "release_namespace"):
            if not NAME_RE.match(getattr(self, name)):
                raise ValueError(f"invalid {name.replace('_', ' ')} {getattr(self, name)[:64]!r}")
        if self.app_policy == self.controller_policy:
            raise ValueError("the app policy and the controller policy need different names")
        if self.namespace == self.release_namespace:
            raise ValueError("the app and release namespaces must differ (job IDs are shared)")
        if not AUDIENCE_RE.match(self.audience):
            raise ValueError(f"invalid audience {self.audience[:64]!r}")
        if self.jwks_url is not None and self.jwt_validation_pubkeys:
            raise ValueError("give a JWKS URL or validation public keys, not both")
        if self.jwks_url is not None and not re.match(r"^https?://\S+\Z", self.jwks_url):
            raise ValueError(f"the JWKS URL must be http(s)://...: {self.jwks_url[:100]!r}")

    @classmethod
    def from_contract(cls, contract: Mapping[str, str], **overrides: Any) -> VaultSetupSettings:
        """Names from ``contract`` (cluster.env's keys), replaced by the non-None ``overrides``."""
        values: dict[str, Any] = {}
        for name, key in CONTRACT_KEYS.items():
            if overrides.get(name) is None and not contract.get(key):
                raise VaultSetupError(f"{key} is missing from vagrant/cluster.env")
            values[name] = contract.get(key)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def namespaces(self) -> list[str]:
        return [self.namespace, self.release_namespace]


@dataclass(frozen=True)
class Step:
    """One object :func:`setup_vault` looked after, and what it had to do."""

    outcome: str  # created | updated | unchanged
    what: str

    @property
    def changed(self) -> bool:
        return self.outcome != UNCHANGED


@dataclass(frozen=True)
class VaultObjects:
    """What the auth config, the role and the policies should hold (request bodies)."""

    auth_config: dict[str, Any]
    role: dict[str, Any]
    policies: dict[str, str] = field(default_factory=dict)  # name -> HCL


def vault_objects(
    settings: VaultSetupSettings,
    jwt_accessor: str,
    *,
    contract: Mapping[str, str] | None = None,
    config_dir: Path | None = None,
) -> VaultObjects:
    """Read ``vagrant/config/vault/`` and fit it to ``settings``.

    The files are written for the names in ``contract`` (cluster.env); the JSON fields that
    carry a name are set from ``settings``, and the policies' paths are moved from the
    contract's KV mount/prefix to the settings' ones.
    """
    contract = read_contract() if contract is None else contract
    config_dir = config_dir or cluster_dir() / "config" / "vault"
    if not ACCESSOR_RE.match(jwt_accessor):
        raise VaultSetupError(f"unexpected accessor {jwt_accessor[:64]!r} of the JWT auth method")

    auth_config = _load_json(config_dir / "jwt-auth-config.json")
    auth_config["default_role"] = settings.role
    if settings.jwt_validation_pubkeys:
        auth_config.pop("jwks_url", None)
        auth_config["jwt_validation_pubkeys"] = list(settings.jwt_validation_pubkeys)
    elif settings.jwks_url is not None:
        auth_config["jwks_url"] = settings.jwks_url

    role = _load_json(config_dir / "jwt-app-role.json")
    role["bound_audiences"] = [settings.audience]
    role["bound_claims"] = {**role.get("bound_claims", {}), "nomad_namespace": settings.namespaces}
    role["token_policies"] = [settings.app_policy]

    base = (contract.get("YURT_KV_MOUNT", ""), contract.get("YURT_KV_PREFIX", ""))
    want = (settings.kv_mount, settings.kv_prefix)
    app_policy = _read(config_dir / "app-policy.hcl").replace("@JWT_ACCESSOR@", jwt_accessor)
    policies = {
        settings.app_policy: _move_paths(app_policy, base, want),
        settings.controller_policy: _move_paths(
            _read(config_dir / "controller-policy.hcl"), base, want
        ),
    }
    return VaultObjects(auth_config=auth_config, role=role, policies=policies)


def setup_vault(
    client: hvac.Client,
    settings: VaultSetupSettings,
    *,
    contract: Mapping[str, str] | None = None,
    config_dir: Path | None = None,
    report: Callable[[Step], None] | None = None,
) -> list[Step]:
    """Create or update Yurt's Vault objects; returns (and reports, as it goes) each step."""
    steps: list[Step] = []

    def done(outcome: str, what: str) -> None:
        steps.append(Step(outcome, what))
        if report is not None:
            report(steps[-1])

    vault_objects(settings, "auth_jwt_check", contract=contract, config_dir=config_dir)  # files ok?
    done(
        _ensure_kv_mount(client, settings.kv_mount), f"KV v2 secrets engine at {settings.kv_mount}/"
    )
    accessor = _ensure_jwt_auth(client, settings.jwt_mount)
    done(accessor[0], f"JWT auth method at {settings.jwt_mount}/")
    objects = vault_objects(settings, accessor[1], contract=contract, config_dir=config_dir)

    where = "keys from " + (
        "the given public keys"
        if settings.jwt_validation_pubkeys
        else objects.auth_config.get("jwks_url", "no JWKS URL")
    )
    done(
        _ensure_auth_config(client, settings.jwt_mount, objects.auth_config),
        f"auth config of {settings.jwt_mount}/ ({where})",
    )
    for name, text in objects.policies.items():
        done(_ensure_policy(client, name, text), f"policy {name}")
    namespaces = " and ".join(settings.namespaces)
    done(
        _ensure_role(client, settings.jwt_mount, settings.role, objects.role),
        f"role {settings.role} at {settings.jwt_mount}/ (jwt; Nomad namespaces {namespaces})",
    )
    return steps


# --- the steps ------------------------------------------------------------------------------------


def _ensure_kv_mount(client: hvac.Client, mount: str) -> str:
    with _step(f"checking the secrets engine at {mount}/"):
        mounts = client.sys.list_mounted_secrets_engines()["data"]
    current = mounts.get(f"{mount}/")
    if current is None:
        with _step(f"enabling KV v2 at {mount}/"):
            client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        return CREATED
    version = (current.get("options") or {}).get("version")
    if current.get("type") != "kv" or version != "2":
        kind = f"KV version {version or 1}" if current.get("type") == "kv" else current.get("type")
        raise VaultSetupError(
            f"{mount}/ is already mounted as a {kind} secrets engine; Yurt needs KV version 2"
            " there (choose another --kv-mount, or upgrade it: vault kv enable-versioning)"
        )
    return UNCHANGED


def _ensure_jwt_auth(client: hvac.Client, mount: str) -> tuple[str, str]:
    """(outcome, accessor) of the JWT auth method at ``mount``."""
    with _step(f"checking the auth method at {mount}/"):
        methods = client.sys.list_auth_methods()["data"]
    outcome = UNCHANGED
    if f"{mount}/" not in methods:
        with _step(f"enabling the JWT auth method at {mount}/"):
            client.sys.enable_auth_method("jwt", path=mount)
            methods = client.sys.list_auth_methods()["data"]
        outcome = CREATED
    current = methods[f"{mount}/"]
    if current.get("type") != "jwt":
        raise VaultSetupError(
            f"auth/{mount}/ is already a {current.get('type')} auth method, not jwt"
            " (choose another --jwt-mount)"
        )
    return outcome, str(current["accessor"])


def _ensure_auth_config(client: hvac.Client, mount: str, want: dict[str, Any]) -> str:
    path = f"auth/{mount}/config"
    with _step(f"reading {path}"):
        current = (client.read(path) or {}).get("data")
    # One source of keys only: the ones we do not set must be empty.
    expected = {"jwks_url": "", "jwt_validation_pubkeys": [], "oidc_discovery_url": "", **want}
    if current is not None and _matches(current, expected):
        return UNCHANGED
    hint = "Vault fetches the JWKS URL itself: can the Vault server reach Nomad there?"
    with _step(f"writing {path}", hint if "jwks_url" in want else ""):
        client.write_data(path, data=want)
    return CREATED if current is None else UPDATED


def _ensure_policy(client: hvac.Client, name: str, text: str) -> str:
    current: str | None = None
    with _step(f"reading policy {name}"):
        try:
            current = client.sys.read_acl_policy(name)["data"]["policy"]
        except hv.InvalidPath:
            current = None
    if current == text:
        return UNCHANGED
    with _step(f"writing policy {name}"):
        client.sys.create_or_update_acl_policy(name, text)
    return CREATED if current is None else UPDATED


def _ensure_role(client: hvac.Client, mount: str, name: str, want: dict[str, Any]) -> str:
    path = f"auth/{mount}/role/{name}"
    with _step(f"reading {path}"):
        current = (client.read(path) or {}).get("data")
    if current is not None and _matches(current, want):
        return UNCHANGED
    with _step(f"writing {path}"):
        client.write_data(path, data=want)
    return CREATED if current is None else UPDATED


# --- helpers --------------------------------------------------------------------------------------


@contextmanager
def _step(doing: str, hint: str = "") -> Iterator[None]:
    """Turn hvac/requests failures into one VaultSetupError naming the step."""
    try:
        yield
    except hv.VaultError as exc:
        answer = "; ".join(str(e) for e in exc.errors or []) or type(exc).__name__
        if isinstance(exc, hv.Forbidden):
            hint = "the token needs to manage mounts, auth methods and policies"
        raise VaultSetupError(
            f"{doing}: Vault answered: {answer}" + (f" ({hint})" if hint else "")
        ) from None
    except requests.RequestException as exc:
        raise VaultSetupError(f"{doing}: cannot reach Vault ({type(exc).__name__})") from None


def _matches(current: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    return all(_same(current.get(key), value) for key, value in want.items())


def _same(have: Any, want: Any) -> bool:
    """Vault answers durations in seconds, PEM keys without the last newline, empty lists as
    null; anything else must be equal."""
    if isinstance(want, str) and isinstance(have, int) and not isinstance(have, bool):
        return _seconds(want) == have
    if isinstance(want, str) and isinstance(have, str):
        return want.strip() == have.strip()
    if isinstance(want, list) and (have is None or isinstance(have, list)):
        have = have or []
        return len(have) == len(want) and all(map(_same, have, want))
    if isinstance(want, dict) and isinstance(have, dict):
        return have.keys() == want.keys() and all(_same(have[k], v) for k, v in want.items())
    return bool(have == want)


def _seconds(duration: str) -> int | None:
    """``"30m"`` -> 1800 (the forms the role file uses); None for anything else."""
    match = DURATION_RE.match(duration)
    if match is None:
        return None
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def _move_paths(policy: str, base: tuple[str, str], want: tuple[str, str]) -> str:
    """Move every ``path "<base mount>/<data|metadata>/<base prefix>..."`` to ``want``'s."""
    if base == want:
        return policy

    def move(match: re.Match[str]) -> str:
        for kind in ("data", "metadata"):
            old = f"{base[0]}/{kind}/{base[1]}"
            rest = match[2].removeprefix(old)
            if rest != match[2] and (not rest or rest[0] == "/"):
                return f"{match[1]}{want[0]}/{kind}/{want[1]}{rest}{match[3]}"
        raise VaultSetupError(f"policy path {match[2]!r} is outside {base[0]}/*/{base[1]}")

    return POLICY_PATH_RE.sub(move, policy)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VaultSetupError(f"cannot read {path}: {exc.strerror}") from None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise VaultSetupError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VaultSetupError(f"{path} should hold a JSON object")
    return data
