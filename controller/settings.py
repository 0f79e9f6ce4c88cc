"""Server settings: one frozen dataclass, filled from CLI options and ``YURT_*`` env vars."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from controller.secrets.store import VaultSettings

if TYPE_CHECKING:  # controller.runtime.nomad imports this module
    from controller.runtime.nomad.client import NomadSettings

ROUTERS = ("traefik", "fabio", "both")


@dataclass(frozen=True)
class ClusterSettings:
    """The nomad runtime's choices (``--runtime nomad``); where Nomad and Consul are is in
    ``nomad`` (NOMAD_*/CONSUL_* env vars, as the nomad CLI reads them)."""

    nomad: NomadSettings
    # The registry apps' images are pushed to and pulled from, as the cluster's clients see it.
    registry: str = "registry.service.consul:5000"
    builder_image: str = ""  # default: REGISTRY/yurt/builder:latest
    stack_image: str = ""  # default: what the builder image was built with
    # The controller as the cluster's clients reach it (build tasks fetch the source there);
    # default: the server's public URL.
    controller_url: str = ""
    router: str = "traefik"
    datacenters: tuple[str, ...] = ("dc1",)
    deploy_timeout: float = 900.0

    def __post_init__(self) -> None:
        if self.router not in ROUTERS:
            raise ValueError(f"the router must be one of {', '.join(ROUTERS)}, not {self.router!r}")

    @property
    def builder(self) -> str:
        return self.builder_image or f"{self.registry}/yurt/builder:latest"


def default_data_dir() -> Path:
    """/var/lib/yurt as root (apps' users must reach their release dirs; /root is private),
    else ~/.local/share/yurt."""
    if os.geteuid() == 0:
        return Path("/var/lib/yurt")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "yurt"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    listen: str = "127.0.0.1:7100"
    # Public base URL of the controller (for git URLs); derived from ``listen`` when empty.
    public_url: str = ""
    ssh_listen: str = ""
    ssh_host: str = ""
    max_parallel_builds: int = 2
    build_timeout: float = 15 * 60
    build_log_cap: int = 20 * 1024 * 1024
    max_push_bytes: int = 2 * 1024 * 1024 * 1024
    buildpacks_dir: Path = field(default_factory=lambda: repo_root() / "buildpacks")
    hooks_dir: Path = field(default_factory=lambda: repo_root() / "hooks")
    runtime: str = "local"
    router_listen: str = "127.0.0.1:8080"
    router_admin_listen: str = "127.0.0.1:7119"
    # UDP: the DNS responder Caddy asks for each app's web instances (see router_dns.py).
    router_dns_listen: str = "127.0.0.1:7118"
    base_domain: str = "localhost"
    boot_timeout: float = 60
    kill_timeout: float = 30
    keep_apps: bool = True
    releases_kept: int = 10
    max_scale: int = 20
    threads: int = 32
    # The embedded OpenBao (config vars) listens here and on the next port (raft cluster).
    openbao_listen: str = "127.0.0.1:7120"
    # An external Vault/OpenBao (VAULT_ADDR, ...) instead of the embedded one.
    vault: VaultSettings | None = None
    # runtime == "nomad": the cluster.
    cluster: ClusterSettings | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "yurt.db"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def builds_dir(self) -> Path:
        return self.data_dir / "builds"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def slugs_dir(self) -> Path:
        return self.data_dir / "slugs"

    @property
    def ssh_dir(self) -> Path:
        return self.data_dir / "ssh"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def hook_token_file(self) -> Path:
        return self.run_dir / "hook-token"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host, _, port = self.listen.rpartition(":")
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{port}"


def repo_root() -> Path:
    """The source tree Yurt runs from (buildpacks/ and hooks/ live beside controller/)."""
    return Path(__file__).resolve().parent.parent


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default
