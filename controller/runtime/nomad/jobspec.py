"""Yurt's Nomad job specs: typed inputs, and the HCL rendered from the templates in ``jobspecs/``.

Three jobs, one template each (``_``-prefixed partials are shared pieces, never rendered alone):

* ``app.nomad.hcl.j2`` - the service job of one app (``AppJobSpec``): one group per process
  type, the image pinned by digest, routing tags and checks on ``web``, canaries that serve only
  once their checks pass, config vars from Vault pinned to the release's KV version.
* ``build.nomad.hcl.j2`` - the parameterized batch job ``yurt-build`` (``BuildJobSpec``),
  dispatched once per push.
* ``release.nomad.hcl.j2`` - the release phase of one release (``ReleaseJobSpec``): a batch job
  with the app job's ID in the release namespace (``<namespace>-release``), so the Vault role's
  ``nomad_job_id`` policy lets both read the app's secret.

Rendering is pure (no network, no clock). Inputs are validated when the dataclass is built, so
a value that means something in a second language (a domain inside a Traefik rule or a Fabio
tag, the KV path inside a Go template string) is refused there, and every value is quoted for
HCL by the one ``hcl`` filter. The template environment makes that filter unavoidable: undefined
names raise (``StrictUndefined``), the only filter is ``hcl``, and any ``[[ value ]]`` that did
not go through it is an error. Delimiters are ``[[ ]]``/``[% %]``/``[# #]`` (as in nomad-pack and
levant) so Nomad's own ``{{ }}`` template syntax passes through untouched.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2

from controller.errors import InvalidParams
from controller.names import BUILD_ID_RE, CONFIG_KEY_RE, PROCESS_TYPE_RE, is_app_name
from controller.runtime.nomad.hcl import HCL, RuntimeVar, hcl, interpolate
from controller.settings import repo_root

ROUTER_KINDS = ("traefik", "fabio", "both")
WEB = "web"

_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"(?=.{{1,253}}\Z){_DNS_LABEL}(?:\.{_DNS_LABEL})*\Z")
_JOB_ID_RE = re.compile(rf"{_DNS_LABEL}\Z")
_IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}\Z")
_IMAGE_REF_RE = re.compile(r"[a-z0-9][A-Za-z0-9._:/-]*(?:@sha256:[0-9a-f]{64})?\Z")
_KV_PATH_RE = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_.-]+)+\Z")
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}\Z")
_CHECK_PATH_RE = re.compile(r"/[\x21-\x7e]{0,1023}\Z")
_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~/-]*)?\Z")


class JobSpecError(InvalidParams):
    """An input that cannot be rendered into a job spec (the message names the value's role)."""


def _check(ok: object, message: str) -> None:
    if not ok:
        raise JobSpecError(message)


@dataclass(frozen=True)
class Resources:
    """A task's resources: CPU in MHz, memory in MB, optional ``memory_max`` (oversubscription)."""

    cpu: int = 100
    memory: int = 256
    memory_max: int | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.cpu, int) and self.cpu >= 1, f"cpu must be >= 1 MHz: {self.cpu!r}")
        _check(
            isinstance(self.memory, int) and self.memory >= 10,
            f"memory must be >= 10 MB: {self.memory!r}",
        )
        _check(
            self.memory_max is None
            or (isinstance(self.memory_max, int) and self.memory_max >= self.memory),
            f"memory_max must be >= memory: {self.memory_max!r}",
        )


@dataclass(frozen=True)
class HealthCheck:
    """The Consul check of ``web``: HTTP on ``path`` (app.json ``healthchecks.web``), else TCP."""

    path: str | None = None
    interval: timedelta = timedelta(seconds=10)
    timeout: timedelta = timedelta(seconds=2)
    # check_restart: restart after this many failed checks in a row, not counting the first
    # ``grace`` after the task starts (the app's boot time).
    restart_limit: int = 3
    grace: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        _check(
            self.path is None or _CHECK_PATH_RE.match(self.path),
            "the health check path must start with '/' and contain no spaces or control characters",
        )
        _check(
            self.interval >= timedelta(seconds=1) and self.timeout >= timedelta(seconds=1),
            "check interval and timeout must be at least 1s",
        )
        _check(self.restart_limit >= 1, "check restart_limit must be >= 1")

    @property
    def type(self) -> str:
        return "http" if self.path else "tcp"


@dataclass(frozen=True)
class DeploySettings:
    """Update, restart, reschedule and stop timings (defaults follow Nomad's and Heroku's)."""

    min_healthy_time: timedelta = timedelta(seconds=10)
    healthy_deadline: timedelta = timedelta(seconds=300)
    progress_deadline: timedelta = timedelta(seconds=600)
    max_parallel: int = 1  # rolling updates of process types other than web
    kill_timeout: timedelta = timedelta(seconds=30)
    shutdown_delay: timedelta = timedelta(seconds=10)
    restart_attempts: int = 2
    restart_interval: timedelta = timedelta(seconds=300)
    restart_delay: timedelta = timedelta(seconds=10)
    reschedule_delay: timedelta = timedelta(seconds=30)
    reschedule_max_delay: timedelta = timedelta(seconds=600)

    def __post_init__(self) -> None:
        _check(
            self.min_healthy_time < self.healthy_deadline < self.progress_deadline,
            "need min_healthy_time < healthy_deadline < progress_deadline",
        )
        _check(self.max_parallel >= 1, "max_parallel must be >= 1")
        _check(
            self.restart_attempts >= 0
            and self.restart_interval > self.restart_delay * self.restart_attempts,
            "restart_interval must exceed restart_attempts * restart_delay",
        )
        _check(
            timedelta(seconds=5) <= self.reschedule_delay <= self.reschedule_max_delay,
            "need 5s <= reschedule_delay <= reschedule_max_delay",
        )


@dataclass(frozen=True)
class ProcessGroup:
    """One task group (and its single task) as the templates see it."""

    name: str
    command: str | None  # None: the image's own command (Dockerfile apps)
    count: int
    resources: Resources
    env: Mapping[str, str]
    web: bool = False
    restart: str = ""  # a restart nonce (group meta ``yurt_restart``); changing it rolls the group

    @property
    def canaries(self) -> int:
        """web: a full set of canaries (blue/green), promoted once all are healthy."""
        return self.count if self.web else 0

    def max_parallel(self, deploy: DeploySettings) -> int:
        # With canary == count, max_parallel == count lets the promotion retire every old
        # allocation at once instead of one at a time (Nomad's blue/green setup).
        return max(self.count, 1) if self.web else deploy.max_parallel


def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True, kw_only=True)
class _Workload:
    """What an app's service job and its release-phase job share.

    Defaults are the demo cluster's contract (vagrant/cluster.env). ``config_version`` None or 0
    means the app has no config vars: no vault, identity or template blocks are rendered.
    """

    app: str
    release: int
    build_id: str
    image: str  # <registry>/<app>@sha256:<digest>
    job_id: str = ""
    config_version: int | None = None
    kv_path: str = ""  # default: secret/data/yurt/apps/<app>
    vault_role: str = "yurt-app"
    vault_audience: str = "vault.io"
    namespace: str = "yurt"
    region: str = "global"
    datacenters: tuple[str, ...] = ("dc1",)
    env: Mapping[str, str] = field(default_factory=dict)  # non-secret env vars only
    description: str = ""
    deploy: DeploySettings = DeploySettings()

    def __post_init__(self) -> None:
        _check(is_app_name(self.app), f"invalid app name {self.app[:64]!r}")
        _check(
            isinstance(self.release, int) and self.release >= 1,
            f"release versions are 1, 2, ...: {self.release!r}",
        )
        _check(BUILD_ID_RE.match(self.build_id), f"invalid build id {self.build_id[:40]!r}")
        _check(
            _IMAGE_RE.match(self.image),
            f"the image must be pinned by digest (<registry>/<app>@sha256:<64 hex>): {self.image[:200]!r}",
        )
        _check(
            self.config_version is None
            or (isinstance(self.config_version, int) and self.config_version >= 0),
            f"config versions are 0, 1, 2, ...: {self.config_version!r}",
        )
        if not self.kv_path:
            object.__setattr__(self, "kv_path", f"secret/data/yurt/apps/{self.app}")
        _check(
            _KV_PATH_RE.match(self.kv_path) and "/data/" in self.kv_path,
            f"invalid KV v2 data path {self.kv_path!r}",
        )
        for name in (self.vault_role, self.vault_audience, self.namespace, self.region):
            _check(_NAME_RE.match(name), f"invalid cluster setting {name!r}")
        _check(self.datacenters, "at least one datacenter is needed")
        for dc in self.datacenters:
            _check(_NAME_RE.match(dc), f"invalid datacenter {dc!r}")
        for key in self.env:
            _check(CONFIG_KEY_RE.match(key), f"invalid env var name {key[:64]!r}")
        object.__setattr__(self, "env", _frozen_map(self.env))

    @property
    def release_name(self) -> str:
        return f"v{self.release}"

    @property
    def has_config(self) -> bool:
        return bool(self.config_version)

    @property
    def job_meta(self) -> dict[str, str]:
        """Ownership meta. The release id makes every release a new job version even when
        nothing else changed (reference pitfall 7)."""
        meta = {
            "yurt_app": self.app,
            "yurt_release": self.release_name,
            "yurt_build": self.build_id,
        }
        if self.has_config:
            meta["yurt_config_version"] = str(self.config_version)
        if self.description:
            meta["yurt_description"] = self.description
        return meta

    @property
    def secret_env_template(self) -> str:
        """The ``template`` data that renders the app's config vars as KEY=value lines.

        It reads the KV v2 secret pinned to this release's version (``?version=N``, reference
        §3.2), so the config a release runs with never changes under it; values go through
        ``toJSON`` so quotes, newlines and ``#`` survive the env file parser. ``kv_path`` was
        checked to hold no quote, so it cannot end the Go template string.
        """
        return (
            f'{{{{ with secret "{self.kv_path}?version={self.config_version}" }}}}'
            "{{ range $k, $v := .Data.data }}{{ $k }}={{ $v | toJSON }}\n"
            "{{ end }}{{ end }}"
        )


@dataclass(frozen=True, kw_only=True)
class AppJobSpec(_Workload):
    """One release of one app, as its service job. ``job_id`` defaults to the app name.

    The cluster's Vault policy scopes secrets by the ``nomad_job_id`` claim
    (``<kv prefix>/<job id>``), so a job id other than the app name needs a matching policy.
    """

    processes: Mapping[str, str | None]  # process type -> command (Procfile)
    formation: Mapping[str, int]  # process type -> count; missing types run 0
    hosts: tuple[str, ...] = ()
    router: str = "traefik"  # traefik | fabio | both
    traefik_entrypoints: tuple[str, ...] = ("web",)
    web_port: int = 5000
    health_check: HealthCheck = HealthCheck()
    resources: Mapping[str, Resources] = field(default_factory=dict)  # per-type overrides
    default_resources: Resources = Resources()
    # process type -> restart nonce, rendered as the group's meta ``yurt_restart``: a new nonce
    # is a destructive update of that group only, rolled out under its update block (restart).
    restarts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.job_id:
            object.__setattr__(self, "job_id", self.app)
        _check(
            _JOB_ID_RE.match(self.job_id) and len(self.service_name) <= 63,
            f"app job ids are DNS labels (the service name {self.job_id}-web must be one too): {self.job_id!r}",
        )
        _check(self.processes, "an app needs at least one process type")
        for name in self.processes:
            _check(PROCESS_TYPE_RE.match(name), f"invalid process type {name[:64]!r}")
        for name, count in self.formation.items():
            _check(name in self.processes, f"the formation scales unknown process type {name!r}")
            _check(isinstance(count, int) and count >= 0, f"invalid count for {name}: {count!r}")
        for name in self.resources:
            _check(name in self.processes or name == "release", f"resources for unknown {name!r}")
        _check(self.router in ROUTER_KINDS, f"router must be one of {', '.join(ROUTER_KINDS)}")
        for host in self.hosts:
            _check(_HOST_RE.match(host), f"invalid domain {host[:253]!r}: use a DNS name")
        for entrypoint in self.traefik_entrypoints:
            _check(_NAME_RE.match(entrypoint), f"invalid Traefik entrypoint {entrypoint!r}")
        _check("PORT" not in self.env, "PORT is set by Yurt for web")
        _check(1 <= self.web_port <= 65535, f"invalid web port {self.web_port!r}")
        object.__setattr__(self, "processes", _frozen_map(self.processes))
        object.__setattr__(self, "formation", _frozen_map(self.formation))
        object.__setattr__(self, "resources", _frozen_map(self.resources))
        for name, nonce in self.restarts.items():
            _check(name in self.processes, f"a restart of unknown process type {name!r}")
            _check(_NAME_RE.match(nonce), f"invalid restart nonce {nonce[:64]!r}")
        object.__setattr__(self, "restarts", _frozen_map(self.restarts))

    @property
    def job_meta(self) -> dict[str, str]:
        """Plus the formation Yurt asked for: a later deploy with the same formation keeps the
        counts on the cluster (PreserveCounts), which an autoscaler or an operator may have
        changed since; a new formation (ps:scale) sets them."""
        return {**super().job_meta, "yurt_formation": self.formation_text}

    @property
    def formation_text(self) -> str:
        return ",".join(f"{t}={self.formation.get(t, 0)}" for t in sorted(self.processes))

    @property
    def service_name(self) -> str:
        """The Consul service of web (Nomad's own default, ``<job>-<group>``). Apps never share
        a name with the cluster's services (``registry``, ``traefik``), which DNS resolves."""
        return f"{self.job_id}-{WEB}"

    def resources_for(self, process_type: str) -> Resources:
        return self.resources.get(process_type, self.default_resources)

    @property
    def groups(self) -> list[ProcessGroup]:
        """web first, then the other process types by name (a stable order between releases)."""
        names = sorted(self.processes, key=lambda n: (n != WEB, n))
        return [
            ProcessGroup(
                name=name,
                command=self.processes[name],
                count=self.formation.get(name, 0),
                resources=self.resources_for(name),
                env={**self.env, "PORT": str(self.web_port)} if name == WEB else self.env,
                web=name == WEB,
                restart=self.restarts.get(name, ""),
            )
            for name in names
        ]

    @property
    def routing_tags(self) -> list[str]:
        return routing_tags(self.service_name, self.hosts, self.router, self.traefik_entrypoints)

    @property
    def service_meta(self) -> dict[str, str]:
        """The release goes here, not in the tags, which must not change between releases."""
        return {"yurt_app": self.app, "yurt_release": self.release_name}


def routing_tags(
    router: str, hosts: tuple[str, ...], kind: str, entrypoints: tuple[str, ...]
) -> list[str]:
    """Consul tags that route ``hosts`` to a service through Traefik and/or Fabio.

    Deliberately a function of the routing inputs only - no release, build or image - because
    Traefik deletes a router whose instances disagree about it, which during a rolling update
    means 404s (reference §5.1, pitfall 12). Canaries carry the same tags: Nomad registers them
    with these tags when ``canary_tags`` is empty, and Traefik (passing/warning) and Fabio
    (passing) route to them only once their checks pass (reference §5.1, §5.2, pitfall 11).
    """
    if not hosts:
        return []
    tags: list[str] = []
    if kind in ("traefik", "both"):
        rule = " || ".join(f"Host(`{host}`)" for host in hosts)
        tags += [
            "traefik.enable=true",
            f"traefik.http.routers.{router}.rule={rule}",
            f"traefik.http.routers.{router}.entrypoints={','.join(entrypoints)}",
        ]
    if kind in ("fabio", "both"):
        tags += [f"urlprefix-{host}/" for host in hosts]
    return tags


@dataclass(frozen=True, kw_only=True)
class ReleaseJobSpec(_Workload):
    """The release phase (Procfile ``release:``) of one release: a batch job that runs once.

    It has the app's service job ID (``job_id`` defaults to the app name) but lives in its own
    namespace, ``<app namespace>-release``: the two jobs never collide, and the cluster's Vault
    role, whose policy is keyed on the ``nomad_job_id`` claim, admits both to the app's secret.
    ``run`` is a per-run nonce (job meta ``yurt_run``): registering an identical batch job
    creates no new version and so no new allocation (reference §1.2, pitfall 7), so without
    it a second run of the same release (a re-deploy, a restore) would silently not run.
    """

    namespace: str = "yurt-release"
    command: str
    resources: Resources = Resources()
    run: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.job_id:
            object.__setattr__(self, "job_id", self.app)
        _check(_JOB_ID_RE.match(self.job_id), f"invalid release job id {self.job_id!r}")
        _check(self.command.strip(), "the release command is empty")
        _check(not self.run or _NAME_RE.match(self.run), f"invalid run nonce {self.run[:64]!r}")

    @classmethod
    def for_app(cls, spec: AppJobSpec, command: str, **overrides: Any) -> ReleaseJobSpec:
        """The release phase of the release ``spec`` deploys: same image, config, cluster and
        job ID, in the release namespace ``<spec.namespace>-release``."""
        shared = {f.name: getattr(spec, f.name) for f in fields(_Workload)}
        shared["namespace"] = release_namespace(spec.namespace)
        shared["resources"] = spec.resources_for("release")
        return cls(**{**shared, "command": command, **overrides})

    @property
    def job_meta(self) -> dict[str, str]:
        meta = super().job_meta
        if self.run:
            meta["yurt_run"] = self.run
        return meta

    @property
    def task(self) -> ProcessGroup:
        return ProcessGroup("release", self.command, 1, self.resources, self.env)


def release_namespace(namespace: str) -> str:
    """The namespace of the release-phase jobs of apps in ``namespace``."""
    return f"{namespace}-release"


@dataclass(frozen=True, kw_only=True)
class BuildJobSpec:
    """The parameterized build job, registered once and dispatched once per push.

    Dispatch meta: ``app``, ``build_id``, ``commit``, ``image`` (the target ``<registry>/<app>:
    <build id>``) and ``build_token``, the per-build bearer token for the controller's source
    endpoint ``<controller_url>/internal/builds/<build id>/source.tar.gz``.
    """

    builder_image: str
    controller_url: str  # as reachable from the cluster's clients
    registry: str = "registry.service.consul:5000"
    job_id: str = "yurt-build"
    namespace: str = "default"
    region: str = "global"
    datacenters: tuple[str, ...] = ("dc1",)
    resources: Resources = Resources(cpu=1000, memory=1024, memory_max=2048)
    disk_mb: int = 4096
    kill_timeout: timedelta = timedelta(seconds=30)
    meta_required: tuple[str, ...] = ("app", "build_id", "commit", "image", "build_token")
    meta_optional: tuple[str, ...] = ("buildpack", "stack_image")

    def __post_init__(self) -> None:
        _check(
            _IMAGE_REF_RE.match(self.builder_image),
            f"invalid builder image {self.builder_image[:200]!r}",
        )
        object.__setattr__(self, "controller_url", self.controller_url.rstrip("/"))
        _check(
            _URL_RE.match(self.controller_url), f"invalid controller URL {self.controller_url!r}"
        )
        for name in (self.job_id, self.namespace, self.region, *self.datacenters):
            _check(_NAME_RE.match(name), f"invalid cluster setting {name!r}")
        _check(self.disk_mb >= 10, "disk_mb must be >= 10")
        for key in (*self.meta_required, *self.meta_optional):
            _check(re.fullmatch(r"[a-z_]+", key), f"invalid meta key {key!r}")

    @property
    def env(self) -> dict[str, str]:
        return {
            "YURT_CONTROLLER_URL": self.controller_url,
            "YURT_REGISTRY": self.registry,
            "YURT_SOURCE_DIR": "/local/src",
        }


# -- rendering ------------------------------------------------------------------------------------


def jobspecs_dir() -> Path:
    """The templates: ``jobspecs/`` beside ``controller/`` (a source tree or an installed wheel)."""
    return repo_root() / "jobspecs"


def render_app_job(spec: AppJobSpec) -> str:
    return render("app.nomad.hcl.j2", spec=spec)


def render_release_job(spec: ReleaseJobSpec) -> str:
    return render("release.nomad.hcl.j2", spec=spec)


def render_build_job(spec: BuildJobSpec) -> str:
    return render("build.nomad.hcl.j2", spec=spec)


def render(template: str, **context: Any) -> str:
    """Render one job template; ``_``-prefixed partials are only included by others."""
    if template.startswith("_"):
        raise ValueError(f"{template} is a partial; render the job template that includes it")
    return _environment().get_template(template).render(**context)


def _hcl_filter(value: object, indent: int = 0) -> HCL:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError, naming what is missing
    return hcl(value, indent)


def _only_hcl(value: object) -> object:
    """Jinja ``finalize``: every ``[[ value ]]`` must have gone through the hcl filter."""
    if not isinstance(value, HCL):
        raise jinja2.TemplateError(
            f"job templates print only hcl-quoted values; got a {type(value).__name__}"
            " (write [[ value | hcl ]])"
        )
    return value


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(jobspecs_dir()),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - HCL, not HTML: the hcl filter quotes every value
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_only_hcl,
    )
    # No other filters: `default` & co. would let a missing value through StrictUndefined.
    env.filters.clear()
    env.filters["hcl"] = _hcl_filter
    env.globals.update(interpolate=interpolate, runtime=RuntimeVar)
    return env
