"""The runtime interface: what runs releases and routes traffic to them.

The local runtime (supervisord + Caddy) and the nomad runtime implement it; everything above
it (git receive, builds, releases, API, CLI) is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

Emit = Callable[[bytes], None]


class DeployFailed(Exception):
    """The new release did not become healthy; the previous one keeps serving."""


@dataclass(frozen=True)
class DeploySpec:
    app: str
    app_id: str
    version: int
    slug_path: Path | None  # local runtime: the slug file
    process_types: dict[str, str]
    formation: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)  # config vars (secret values)
    # nomad runtime: the image by digest, the build that made it, the config KV version, the
    # commit (its app.json declares the web health check)
    image: str | None = None
    build_id: str | None = None
    config_version: int | None = None
    commit: str | None = None


@dataclass(frozen=True)
class ProcessView:
    type: str
    number: int
    state: str  # starting, up, unhealthy (nomad: checks failing), crashed, stopped, retiring
    release: int
    started_at: datetime | None
    restarts: int | None
    exit_status: int | None
    port: int | None


class Runtime(Protocol):
    def start(self) -> None: ...

    def shutdown(self, keep_apps: bool) -> None: ...

    def deploy(self, spec: DeploySpec, emit: Emit) -> None: ...

    def scale(self, spec: DeploySpec) -> None: ...

    def restart(self, spec: DeploySpec, process_type: str | None) -> None: ...

    def processes(self, app_id: str) -> list[ProcessView]: ...

    def logs(
        self,
        app: str,
        app_id: str,
        lines: int,
        follow: bool,
        ps: str | None,
        source: str = "app",
    ) -> Iterator[str]: ...

    def destroy(self, app: str, app_id: str) -> None: ...

    def web_url(self, app: str) -> str: ...

    def is_serving(self, app_id: str, version: int) -> bool: ...

    def discard(self, app_id: str, version: int) -> None: ...

    def apply_routes(self, force: bool = False) -> None:
        """Make the router match the DB (apps, their domains, instances that are up)."""
        ...

    def stop_app(self, app_id: str) -> None: ...

    def missing(self, app_id: str) -> bool:
        """Whether the app's processes are gone and must be restored from the DB."""
        ...

    def restore(self, spec: DeploySpec) -> None: ...

    def preview(self, spec: DeploySpec) -> str:
        """What deploying ``spec`` would change in the runtime, as a unified diff."""
        ...

    def prune(self, app: str, keep_versions: set[int]) -> None:
        """Drop what the runtime keeps for releases not in ``keep_versions``."""
        ...
