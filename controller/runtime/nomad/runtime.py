"""``NomadRuntime``: the Runtime protocol on a Nomad cluster.

A release is a version of the app's service job (``render_app_job``, job ID ``<job prefix><app>``
in the runtime's namespace); the release phase is a batch job (``render_release_job``) with the
same job ID in ``<namespace>-release`` (so the Vault role keyed on ``nomad_job_id`` admits both
to the app's secret) that must exit 0 before the service job is registered; a per-run nonce in
its meta makes every run a new version, so a re-run really runs (§1.2, pitfall 7). The control
loop is levant's: render -> ``/v1/jobs/parse`` -> register with ``EnforceIndex`` -> the
evaluation (placement failures at once) -> its deployment, watched with blocking queries under
Yurt's own deadline (failed on Nomad's side when it passes, reference pitfall 5) -> on failure
an explanation from the deployment and the failed allocations' task events, and what Nomad's
auto-revert did (§1.7, pitfall 4).

Operating an app: ``scale`` uses the scale API (refused while a deployment runs, pitfall 6;
a stopped or missing job is restored instead); ``restart`` re-registers the release with a new
``yurt_restart`` nonce in the meta of the groups concerned, so Nomad rolls them under their
update blocks (canaries for web: no downtime); ``stop_app`` deregisters without purge (the
history stays; ``restore`` registers the release again); ``destroy`` purges the app job and
its release job; ``logs`` reads the allocations' log streams (§1.9) and merges their follow
streams. Apps on a cluster outlive the controller (``shutdown`` leaves them), and Nomad keeps
job versions itself (``prune`` has nothing to do).

Inputs the DeploySpec does not carry are explicit constructor arguments: the image digest and
build id of a release (``images`` or ``image_for``), the Vault config version
(``config_version_for``), and the app name of an app id (remembered from deploy/scale, or
``app_for``). ``DeploySpec.env`` (secret values) is never put in a job spec: config reaches
the tasks from Vault, pinned to the config version.
"""

from __future__ import annotations

import contextlib
import difflib
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controller.errors import Conflict, InvalidParams
from controller.runtime.base import DeployFailed, DeploySpec, Emit, ProcessView
from controller.runtime.nomad.client import (
    LOG_STREAMS,
    TERMINAL_ALLOC,
    TERMINAL_DEPLOYMENT,
    NomadClient,
    NomadConflict,
    NomadError,
    NomadTimeout,
)
from controller.runtime.nomad.consul import ConsulClient, ConsulError
from controller.runtime.nomad.jobspec import (
    WEB,
    AppJobSpec,
    DeploySettings,
    HealthCheck,
    ReleaseJobSpec,
    release_namespace,
    render_app_job,
    render_release_job,
)

RELEASE = "release"
# Task events that say why a task did not start or run (§1.8); "Terminated" is read separately.
_FAILURE_EVENTS = (
    "Driver Failure",
    "Failed Artifact Download",
    "Template",
    "Task hook failed",
    "Setup Failure",
    "Failed Validation",
)


ROUTER_LOGS = (
    "router logs are not available on the nomad runtime: read Traefik's (or Fabio's) logs on"
    " the cluster"
)


class DeploymentInProgress(Conflict):
    """Nomad refuses to scale (and Yurt to restart) a job while its deployment runs
    (pitfall 6): answered 409, try again when it finishes."""

    id = "deployment_in_progress"

    def __init__(self, app: str) -> None:
        super().__init__(f"a deployment of {app} is in progress; try again when it finishes")


class RouterLogsUnavailable(InvalidParams):
    """``logs(source="router")``: the router runs on the cluster, not beside the controller."""

    id = "router_logs_unavailable"

    def __init__(self) -> None:
        super().__init__(ROUTER_LOGS)


@dataclass(frozen=True)
class ReleaseImage:
    """What a release runs: the image pinned by digest and the build that made it."""

    image: str  # <registry>/<app>@sha256:<digest>
    build_id: str


@dataclass(frozen=True)
class NomadRuntimeSettings:
    """Cluster-side choices of the nomad runtime (the job spec's defaults where not given)."""

    namespace: str = "yurt"
    region: str = "global"
    datacenters: tuple[str, ...] = ("dc1",)
    job_prefix: str = ""  # app job id = prefix + app name
    base_domain: str | None = None  # hosts: <app>.<base_domain>
    router: str = "traefik"
    health_check: HealthCheck = field(default_factory=HealthCheck)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    deploy_timeout: float = 900.0  # Yurt's own deadline for one deployment (seconds)
    release_timeout: float = 1800.0  # for the release phase
    eval_timeout: float = 30.0  # for an evaluation to be processed
    log_lines: int = 20  # of a failed release command, shown to the user
    url_scheme: str = "http"
    stop_timeout: float = 120.0  # stop_app waits this long for the allocations to stop
    log_poll: float = 2.0  # how often a log follow looks for new allocations (seconds)

    @property
    def release_namespace(self) -> str:
        """Where release-phase jobs run: ``<namespace>-release`` (same job ID as the app's)."""
        return release_namespace(self.namespace)


@dataclass
class _Progress:
    emit: Emit
    last: str = ""
    promoted: set[str] = field(default_factory=set)


class NomadRuntime:
    def __init__(
        self,
        client: NomadClient,
        settings: NomadRuntimeSettings | None = None,
        *,
        images: Mapping[tuple[str, int], ReleaseImage] | None = None,
        image_for: Callable[[DeploySpec], ReleaseImage] | None = None,
        config_version_for: Callable[[DeploySpec], int | None] | None = None,
        app_for: Callable[[str], str] | None = None,
        health_check_for: Callable[[DeploySpec], HealthCheck] | None = None,
        hosts_for: Callable[[DeploySpec], tuple[str, ...]] | None = None,
        consul: ConsulClient | None = None,
    ) -> None:
        if (images is None) == (image_for is None):
            raise ValueError("give exactly one of images and image_for")
        self.client = client
        self.settings = settings or NomadRuntimeSettings()
        if self.settings.namespace != client.settings.namespace:
            # the client's namespace would silently override the job's (§1.0)
            raise ValueError(
                f"the runtime renders jobs for namespace {self.settings.namespace!r} but the"
                f" client uses {client.settings.namespace!r}"
            )
        self.release_client = client.in_namespace(self.settings.release_namespace)
        self._images = images
        self._image_for = image_for
        self._config_version_for = config_version_for
        self._app_for = app_for
        # The web check of the release's app.json, and the app's custom domains.
        self._health_check_for = health_check_for
        self._hosts_for = hosts_for
        # What routers see: a web instance Nomad runs but whose Consul check fails gets no
        # traffic, and ps says so.
        self.consul = consul
        self._apps: dict[str, str] = {}  # app id -> app name, learnt from deploy/scale

    # -- the job spec -----------------------------------------------------------------------------
    def job_id(self, app: str) -> str:
        return self.settings.job_prefix + app

    def app_spec(self, spec: DeploySpec, restarts: Mapping[str, str] | None = None) -> AppJobSpec:
        """The service job of ``spec``'s release (``restarts``: group -> restart nonce)."""
        image = self._image(spec)
        s = self.settings
        return AppJobSpec(
            app=spec.app,
            release=spec.version,
            build_id=image.build_id,
            image=image.image,
            job_id=self.job_id(spec.app),
            config_version=self._config_version_for(spec) if self._config_version_for else None,
            namespace=s.namespace,
            region=s.region,
            datacenters=s.datacenters,
            deploy=s.deploy,
            # an empty command (none in the Procfile) runs the image's own CMD
            processes={t: c or None for t, c in spec.process_types.items() if t != RELEASE},
            formation={t: n for t, n in spec.formation.items() if t != RELEASE},
            hosts=self._hosts(spec),
            router=s.router,
            health_check=self._health_check_for(spec) if self._health_check_for else s.health_check,
            restarts=restarts or {},
        )

    def _hosts(self, spec: DeploySpec) -> tuple[str, ...]:
        """The app's default host, then its custom domains (``hosts_for``)."""
        base = self.settings.base_domain
        default = (f"{spec.app}.{base}",) if base else ()
        more = self._hosts_for(spec) if self._hosts_for else ()
        return default + tuple(h for h in more if h not in default)

    def _image(self, spec: DeploySpec) -> ReleaseImage:
        if self._image_for is not None:
            return self._image_for(spec)
        assert self._images is not None
        try:
            return self._images[(spec.app, spec.version)]
        except KeyError:
            raise DeployFailed(f"no image is known for {spec.app} v{spec.version}") from None

    def _app(self, app_id: str) -> str:
        if app_id in self._apps:
            return self._apps[app_id]
        if self._app_for is not None:
            return self._app_for(app_id)
        raise LookupError(f"unknown app id {app_id!r} (not deployed by this runtime)")

    # -- deploy -----------------------------------------------------------------------------------
    def deploy(self, spec: DeploySpec, emit: Emit) -> None:
        self._deploy(spec, emit, release_phase=True)

    def _deploy(self, spec: DeploySpec, emit: Emit, *, release_phase: bool) -> None:
        self._apps[spec.app_id] = spec.app
        job_id = self.job_id(spec.app)
        current = self.client.job(job_id)
        restarts: dict[str, str] = {}
        if current and (current.get("Meta") or {}).get("yurt_release") == f"v{spec.version}":
            restarts = _restarts(current)  # the same release again: no needless rollout
        app = self.app_spec(spec, {k: v for k, v in restarts.items() if k in spec.process_types})
        if release_phase and RELEASE in spec.process_types:
            self._release_phase(app, spec.process_types[RELEASE], emit)
            current = self.client.job(job_id)
        version = self._register(app, current, emit, app.release_name)
        if version is None:
            return
        try:
            self.client.tag_version(
                app.job_id, version, app.release_name, f"Yurt release {app.release_name}"
            )
        except NomadError as exc:  # the release is live; a missing tag only shortens history
            _say(emit, f"Warning: could not tag job version {version}: {exc}")
        _say(emit, f"Deployment successful: {app.release_name} is serving")

    def preview(self, spec: DeploySpec) -> str:
        """What deploying ``spec`` would change: a unified diff from the HCL the current job
        version was registered with to the HCL Yurt would register now (empty: nothing
        changes). The new spec goes through Nomad's parser first, so a spec Nomad would
        refuse is an error here, not at deploy time. Nothing is registered."""
        job_id = self.job_id(spec.app)
        current = self.client.job(job_id)
        restarts = _restarts(current) if current else {}
        app = self.app_spec(spec, {k: v for k, v in restarts.items() if k in spec.process_types})
        new = render_app_job(app)
        self.client.parse(new)
        if current is None or current.get("Stop"):
            old, label = "", f"{job_id}: no job on the cluster"
        else:
            version = int(current["Version"])
            release = (current.get("Meta") or {}).get("yurt_release", "?")
            old = self.client.submission(job_id, version) or ""
            label = f"{job_id} version {version} ({release}), as registered"
        diff = difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            label,
            f"{job_id} for {app.release_name}, as Yurt would register it",
        )
        return "".join(diff)

    def _register(
        self, app: AppJobSpec, current: dict[str, Any] | None, emit: Emit, what: str
    ) -> int | None:
        """Register ``app`` over ``current`` (check-and-set) and follow what it rolls out;
        the new job version, or None when the spec was unchanged (nothing rolled out)."""
        before = (int(current["Version"]), int(current["JobModifyIndex"])) if current else None
        hcl = render_app_job(app)
        job = self.client.parse(hcl)
        # The formation Yurt last deployed is unchanged: keep the counts the cluster has (an
        # autoscaler's or an operator's, levant's behaviour); a new formation sets them.
        preserve = (
            current is not None
            and (current.get("Meta") or {}).get("yurt_formation") == app.formation_text
        )
        result = self.client.register(
            job, before[1] if before else 0, preserve_counts=preserve, submission=hcl
        )
        registered = self.client.job(app.job_id) or {}
        version = int(registered.get("Version", 0))
        if before is not None and version == before[0]:
            _say(emit, f"Job {app.job_id} unchanged (version {version}): nothing to roll out")
            return None
        _say(emit, f"Registered job {app.job_id} version {version} ({app.release_name})")
        self._follow(app.job_id, result.eval_id, version, emit, what)
        return version

    def _follow(
        self, job_id: str, eval_id: str | None, version: int, emit: Emit, what: str
    ) -> None:
        """Wait for the evaluation of a register/scale, then its deployment (if any)."""
        ev = self._evaluation(eval_id)
        failed = (ev or {}).get("FailedTGAllocs") or {}
        if failed:
            raise DeployFailed(f"{what} could not be placed: {placement(failed)}")
        dep_id = (ev or {}).get("DeploymentID") or ""
        if not dep_id:
            dep = self.client.deployment(job_id)
            if dep is None or int(dep.get("JobVersion", -1)) != version:
                _say(emit, "No deployment needed")
                return
            dep_id = dep["ID"]
        progress = _Progress(emit)

        def until(d: dict[str, Any]) -> bool:
            _report(progress, d)
            return d.get("Status") in TERMINAL_DEPLOYMENT

        try:
            dep = self.client.watch_deployment(dep_id, until, timeout=self.settings.deploy_timeout)
        except NomadTimeout:
            _say(emit, f"Deployment not done in {self.settings.deploy_timeout:g}s: failing it")
            with contextlib.suppress(NomadError):  # it finished meanwhile: read how
                self.client.fail_deployment(dep_id)
            dep = self.client.watch_deployment(dep_id, timeout=self.settings.eval_timeout)
        if dep["Status"] == "successful":
            return
        raise DeployFailed(self._explain(job_id, dep, what))

    def _evaluation(
        self, eval_id: str | None, client: NomadClient | None = None
    ) -> dict[str, Any] | None:
        if not eval_id:
            return None
        deadline = time.monotonic() + self.settings.eval_timeout
        while True:
            ev = (client or self.client).evaluation(eval_id)
            if ev.get("Status") not in ("pending",) or time.monotonic() >= deadline:
                return ev
            time.sleep(0.1)

    # -- explaining a failure ----------------------------------------------------------------------
    def _explain(self, job_id: str, dep: dict[str, Any], what: str) -> str:
        version = int(dep.get("JobVersion", -1))
        allocs = [a for a in self.client.allocations(job_id) if a.get("JobVersion") == version]
        parts: list[str] = []
        for group, state in sorted((dep.get("TaskGroups") or {}).items()):
            canaries = int(state.get("DesiredCanaries") or 0)
            wanted = (
                canaries
                if canaries and not state.get("Promoted")
                else int(state.get("DesiredTotal") or 0)
            )
            healthy = int(state.get("HealthyAllocs") or 0)
            if healthy >= wanted:
                continue
            noun = "canaries" if canaries and not state.get("Promoted") else "allocations"
            why = self._why(group, allocs)
            parts.append(
                f"{group}: {healthy} of {wanted} {noun} became healthy"
                + (f": {why}" if why else "")
            )
        desc = str(dep.get("StatusDescription") or dep.get("Status"))
        if not parts:
            parts.append(f"{what}: {desc}")
        else:
            parts.append(f"Nomad: {desc.split(' - ')[0]}")
        parts.append(self._revert_note(job_id, desc))
        return "; ".join(p for p in parts if p)

    def _why(self, group: str, allocs: list[dict[str, Any]]) -> str:
        """The first failed or unhealthy allocation's story, from its task events."""
        bad = [
            a
            for a in allocs
            if a.get("TaskGroup") == group
            and (
                a.get("ClientStatus") == "failed"
                or (a.get("DeploymentStatus") or {}).get("Healthy") is False
            )
        ]
        candidates = bad or [a for a in allocs if a.get("TaskGroup") == group]
        for stub in candidates:
            alloc = self.client.allocation(stub["ID"])
            reason = task_story(alloc)
            if reason:
                return reason
        return ""

    def _revert_note(self, job_id: str, desc: str) -> str:
        marker = "rolling back to job version "
        if marker in desc:
            target = int(desc.split(marker, 1)[1].split()[0])
            release = self._release_of(job_id).get(target)
            name = f"v{release}" if release else "an earlier release"
            return f"auto-revert rolled back to {name} (job version {target})"
        if "no stable job version" in desc:
            return "no earlier healthy release to roll back to"
        if "not rolling back" in desc:
            return "not rolled back (the stable version has the same spec)"
        return ""

    def _release_of(self, job_id: str) -> dict[int, int]:
        """Job version -> Yurt release number, from each retained version's meta."""
        found: dict[int, int] = {}
        for v in self.client.versions(job_id):
            release = ((v.get("Meta") or {}).get("yurt_release") or "").removeprefix("v")
            if release.isdigit():
                found[int(v["Version"])] = int(release)
        return found

    # -- release phase --------------------------------------------------------------------------------
    def _release_phase(self, app: AppJobSpec, command: str, emit: Emit) -> None:
        # A fresh nonce per run: an identical batch job would get no new allocation (§1.2).
        spec = ReleaseJobSpec.for_app(app, command, run=uuid.uuid4().hex)
        client = self.release_client
        _say(emit, f"Running release command: {command}")
        hcl = render_release_job(spec)
        result = client.register(client.parse(hcl), submission=hcl)
        version = int((client.job(spec.job_id) or {}).get("Version", 0))
        ev = self._evaluation(result.eval_id, client)
        failed = (ev or {}).get("FailedTGAllocs") or {}
        if failed:
            raise DeployFailed(f"the release command could not be placed: {placement(failed)}")

        def done(allocs: list[dict[str, Any]]) -> bool:
            return any(
                a.get("JobVersion") == version and a.get("ClientStatus") in TERMINAL_ALLOC
                for a in allocs
            )

        try:
            allocs = client.watch_allocations(spec.job_id, done, self.settings.release_timeout)
        except NomadTimeout:
            client.stop(spec.job_id)
            raise DeployFailed(
                f"the release command did not finish in {self.settings.release_timeout:g}s"
            ) from None
        alloc = next(
            a
            for a in allocs
            if a.get("JobVersion") == version and a.get("ClientStatus") in TERMINAL_ALLOC
        )
        if alloc["ClientStatus"] == "complete":
            _say(emit, "Release command succeeded")
            return
        full = client.allocation(alloc["ID"])
        code = exit_code(full, RELEASE)
        tail = self._tail(alloc["ID"], RELEASE, client)
        reason = f"exit status {code}" if code is not None else (task_story(full) or "failed")
        message = f"the release command failed: {reason}"
        if tail:
            message += "\n" + "\n".join(tail)
        raise DeployFailed(message)

    def _tail(self, alloc_id: str, task: str, client: NomadClient) -> list[str]:
        lines: list[str] = []
        for stream in LOG_STREAMS:
            try:
                data = b"".join(client.alloc_logs(alloc_id, task, stream, timeout=10))
            except NomadError:
                continue
            lines += data.decode("utf-8", "replace").splitlines()
        return lines[-self.settings.log_lines :]

    # -- operate ----------------------------------------------------------------------------------------
    def scale(self, spec: DeploySpec) -> None:
        """Set each group's count through the scale API and wait for what it rolls out.

        Refused with ``DeploymentInProgress`` (409) while a deployment runs, as Nomad refuses
        it (pitfall 6). A stopped or missing job is restored with ``spec``'s formation (this is
        how ps:start reaches the runtime)."""
        self._apps[spec.app_id] = spec.app
        job_id = self.job_id(spec.app)
        job = self.client.job(job_id)
        if job is None or job.get("Stop"):
            # ps:start after stop_app, or a job lost on the cluster: run the release again
            self.restore(spec)
            return
        self._refuse_while_deploying(spec.app, job_id)
        counts = {g["Name"]: int(g["Count"]) for g in job.get("TaskGroups") or []}
        for group, count in sorted(spec.formation.items()):
            if group == RELEASE or counts.get(group, count) == count:
                continue
            if group not in counts:
                raise DeployFailed(f"{spec.app} has no process type {group!r} in its job")
            try:
                result = self.client.scale(job_id, group, count, f"Yurt: {group}={count}")
            except NomadConflict as exc:  # a deployment started meanwhile
                if "active deployment" in exc.nomad_message:
                    raise DeploymentInProgress(spec.app) from None
                raise
            version = int((self.client.job(job_id) or {}).get("Version", 0))
            self._follow(job_id, result.eval_id, version, lambda _b: None, f"scale of {group}")

    def processes(self, app_id: str) -> list[ProcessView]:
        job_id = self.job_id(self._app(app_id))
        job = self.client.job(job_id)
        if job is None:
            return []
        releases = self._release_of(job_id)
        views = []
        failing: dict[str, bool] | None = None
        for a in self.client.allocations(job_id):
            if a.get("TaskGroup") == RELEASE:
                continue
            desired, client = a.get("DesiredStatus"), a.get("ClientStatus")
            if desired != "run" and client in TERMINAL_ALLOC:
                continue  # gone: stopped by an update or a scale-down
            if a.get("NextAllocation"):
                continue  # replaced by a rescheduled allocation
            if client in TERMINAL_ALLOC and a.get("JobVersion") != job["Version"]:
                continue  # a failed allocation of a release the job has moved on from
            view = _view(a, releases.get(int(a.get("JobVersion", -1)), 0))
            if view.type == WEB and view.state == "up":
                failing = self._failing(job_id) if failing is None else failing
                if failing.get(a["ID"]):
                    view = replace(view, state="unhealthy")
            views.append(view)
        return sorted(views, key=lambda v: (v.type != WEB, v.type, v.number, v.release))

    def _failing(self, job_id: str) -> dict[str, bool]:
        """Allocation id -> True for web instances whose Consul checks are critical (so no
        router sends them traffic). Empty when Consul cannot be asked: ps then shows what
        Nomad knows."""
        if self.consul is None:
            return {}
        try:
            instances = self.consul.service_health(f"{job_id}-{WEB}", passing=False)
        except ConsulError:
            return {}
        return {
            alloc: inst.status == "critical"
            for inst in instances
            if (alloc := _alloc_of_service(inst.id))
        }

    def is_serving(self, app_id: str, version: int) -> bool:
        """The job runs ``version`` as a stable (successfully deployed) version with at least
        one healthy web allocation (or any running one for an app without web)."""
        job = self.client.job(self.job_id(self._app(app_id)))
        if job is None or job.get("Stop") or not job.get("Stable"):
            return False
        if (job.get("Meta") or {}).get("yurt_release") != f"v{version}":
            return False
        groups = {g["Name"] for g in job.get("TaskGroups") or []}
        wanted = WEB if WEB in groups else None
        for a in self.client.allocations(job["ID"]):
            if a.get("JobVersion") != job["Version"] or a.get("ClientStatus") != "running":
                continue
            if wanted is None or a.get("TaskGroup") == wanted:
                return True
        return False

    def discard(self, app_id: str, version: int) -> None:
        """Undo a release that never served: fail its running deployment (Nomad auto-reverts),
        or revert to the latest stable version of another release, or stop a first release."""
        job_id = self.job_id(self._app(app_id))
        job = self.client.job(job_id)
        if job is None or (job.get("Meta") or {}).get("yurt_release") != f"v{version}":
            return
        dep = self.client.deployment(job_id)
        if (
            dep
            and dep.get("JobVersion") == job["Version"]
            and dep["Status"] not in TERMINAL_DEPLOYMENT
        ):
            self.client.fail_deployment(dep["ID"])
            return
        if job.get("Stable"):
            return  # it serves: discarding is for releases that never got traffic
        for v in self.client.versions(job_id):  # newest first
            meta = v.get("Meta") or {}
            if v.get("Stable") and meta.get("yurt_release") != f"v{version}":
                self.client.revert(
                    job_id, int(v["Version"]), enforce_prior_version=int(job["Version"])
                )
                return
        self.client.stop(job_id)

    def web_url(self, app: str) -> str:
        if not self.settings.base_domain:
            raise NotImplementedError("web_url needs a base domain on the nomad runtime")
        return f"{self.settings.url_scheme}://{app}.{self.settings.base_domain}"

    def start(self) -> None:
        """Nothing to start: the cluster runs the apps."""

    def apply_routes(self, force: bool = False) -> None:
        """Routing follows the Consul catalog (tags in the job spec): nothing to apply."""

    def _refuse_while_deploying(self, app: str, job_id: str) -> None:
        dep = self.client.deployment(job_id)
        if dep is not None and dep.get("Status") not in TERMINAL_DEPLOYMENT:
            raise DeploymentInProgress(app)

    def restart(self, spec: DeploySpec, process_type: str | None) -> None:
        """Rolling restart of one process type or all: the release's job again, with a new
        ``yurt_restart`` nonce in the meta of the groups concerned. A meta change is a
        destructive update (pitfall 7), so Nomad replaces those allocations under their
        update blocks (web through healthy canaries: no downtime) and auto-reverts if the
        new ones fail; waits for the deployment like ``deploy``."""
        self._apps[spec.app_id] = spec.app
        job_id = self.job_id(spec.app)
        job = self.client.job(job_id)
        if job is None or job.get("Stop"):
            raise Conflict(f"{spec.app} is not running on the cluster: nothing to restart")
        self._refuse_while_deploying(spec.app, job_id)
        types = [t for t in spec.process_types if t != RELEASE]
        if process_type is not None and process_type not in types:
            raise InvalidParams(f"{spec.app} has no process type {process_type[:64]!r}")
        nonce = uuid.uuid4().hex
        restarts = {t: v for t, v in _restarts(job).items() if t in types}
        restarts.update({t: nonce for t in ([process_type] if process_type else types)})
        what = f"restart of {process_type or 'all processes'}"
        self._register(self.app_spec(spec, restarts), job, lambda _b: None, what)

    def stop_app(self, app_id: str) -> None:
        """ps:stop: deregister the job without purge (its versions stay; ``restore`` or a
        scale registers the release again) and wait until its allocations have stopped."""
        job_id = self.job_id(self._app(app_id))
        job = self.client.job(job_id)
        if job is None:
            return
        if not job.get("Stop"):
            self.client.stop(job_id)

        def stopped(allocs: list[dict[str, Any]]) -> bool:
            return all(a.get("ClientStatus") in TERMINAL_ALLOC for a in allocs)

        with contextlib.suppress(NomadTimeout):  # they are stopping; ps shows them retiring
            self.client.watch_allocations(job_id, stopped, self.settings.stop_timeout)

    def missing(self, app_id: str) -> bool:
        """The app's job does not exist on the cluster or is stopped."""
        job = self.client.job(self.job_id(self._app(app_id)))
        return job is None or bool(job.get("Stop"))

    def restore(self, spec: DeploySpec) -> None:
        """Run ``spec``'s release again, quietly: a no-op when the job already runs it. The
        release phase is not run again (it ran when the release was deployed; a release
        command such as a migration may not be safe to repeat), as on the local runtime."""
        self._apps[spec.app_id] = spec.app
        job = self.client.job(self.job_id(spec.app))
        if (
            job is not None
            and not job.get("Stop")
            and (job.get("Meta") or {}).get("yurt_release") == f"v{spec.version}"
        ):
            return
        self._deploy(spec, lambda _b: None, release_phase=False)

    def destroy(self, app: str, app_id: str) -> None:
        """Purge the app's job and its release job (both namespaces); absent ones are fine.
        Nomad deregisters the Consul services of the allocations it stops."""
        job_id = self.job_id(app)
        for client in (self.client, self.release_client):
            if client.job(job_id) is None:
                continue
            try:
                client.stop(job_id, purge=True)
            except NomadError as exc:
                if exc.nomad_status != 404:  # purged meanwhile
                    raise
        self._apps.pop(app_id, None)

    def prune(self, app: str, keep_versions: set[int]) -> None:
        """Nothing to do: Nomad keeps a bounded number of job versions itself
        (``job_tracked_versions``, tagged versions kept, §1.2), and a rollback re-registers a
        release from the DB anyway. Deleting old images from the cluster registry is out of
        scope here."""

    def shutdown(self, keep_apps: bool) -> None:
        """Nothing to stop, with or without ``keep_apps``: apps on a cluster outlive the
        controller (Nomad runs them; the controller only talks to it)."""

    # -- logs -----------------------------------------------------------------------------------------
    def logs(
        self,
        app: str,
        app_id: str,
        lines: int,
        follow: bool,
        ps: str | None,
        source: str = "app",
    ) -> Iterator[str]:
        """The last ``lines`` of each instance's output, prefixed ``web.1 | `` like the local
        runtime; with ``follow``, then new lines of all running instances merged as they come
        (and of instances that appear later, e.g. a new release's).

        Instances are the running allocations (several per label while a deployment replaces
        them), or for a label with none running, its latest finished one. Nomad keeps stdout
        and stderr in separate files with no common clock, so an instance's tail is drawn from
        both (stdout first, each stream getting at least half of ``lines`` when both have
        more). Errors (router logs, Nomad unreachable) are raised here, before the first line.
        """
        if source == "router":
            raise RouterLogsUnavailable()
        if source != "app":
            raise InvalidParams("source must be 'app' or 'router'")
        self._apps[app_id] = app
        job_id = self.job_id(app)
        chosen = self._log_allocations(job_id, ps)
        tails = [(label, a, self._read_tail(a, lines)) for label, a in chosen]
        return self._log_lines(job_id, ps, tails, follow)

    def _log_allocations(self, job_id: str, ps: str | None) -> list[tuple[str, dict[str, Any]]]:
        if self.client.job(job_id) is None:
            return []
        by_label: dict[str, list[dict[str, Any]]] = {}
        for a in self.client.allocations(job_id):
            label = _label(a)
            if ps in (None, a.get("TaskGroup"), label):
                by_label.setdefault(label, []).append(a)
        chosen = []
        for label, allocs in sorted(by_label.items(), key=lambda kv: _label_key(kv[0])):
            allocs.sort(key=lambda a: int(a.get("CreateIndex") or 0))
            live = [a for a in allocs if _live(a)]
            chosen += [(label, a) for a in (live or allocs[-1:])]
        return chosen

    def _read_tail(self, alloc: dict[str, Any], lines: int) -> tuple[list[str], dict[str, int]]:
        """The alloc's last ``lines`` lines and the byte offset reached in each stream."""
        texts: dict[str, list[str]] = {}
        offsets: dict[str, int] = {}
        for stream in LOG_STREAMS:
            data = b"".join(self.client.alloc_logs(alloc["ID"], str(alloc["TaskGroup"]), stream))
            offsets[stream] = len(data)
            texts[stream] = data.decode("utf-8", "replace").splitlines()
        out, err = texts["stdout"], texts["stderr"]
        keep_err = min(len(err), max(lines - len(out), (lines + 1) // 2))
        keep_out = min(len(out), lines - keep_err)
        return (out[len(out) - keep_out :] + err[len(err) - keep_err :], offsets)

    def _log_lines(
        self,
        job_id: str,
        ps: str | None,
        tails: list[tuple[str, dict[str, Any], tuple[list[str], dict[str, int]]]],
        follow: bool,
    ) -> Iterator[str]:
        for label, _a, (text, _offsets) in tails:
            for line in text:
                yield f"{label} | {line}\n"
        if not follow:
            return
        merged = _MergedFollow(self.client, job_id, ps, self.settings.log_poll)
        # finished ones too: never read from the start again
        merged.followed.update(a["ID"] for _name, a, _tail in tails)
        for label, a, (_text, offsets) in tails:
            if _live(a):
                merged.add(label, a, offsets)
        yield from merged.lines()


# -- helpers ------------------------------------------------------------------------------------------


class _MergedFollow:
    """The follow streams (§1.9) of several allocations merged into one iterator: a reader
    thread per allocation and stream feeds a queue, and a watcher thread adds allocations
    that appear later (a new release, a scale-up). Closing the iterator stops them all."""

    def __init__(self, client: NomadClient, job_id: str, ps: str | None, poll: float) -> None:
        self.client, self.job_id, self.ps, self.poll = client, job_id, ps, poll
        self.queue: queue.Queue[str] = queue.Queue(maxsize=10_000)
        self.stop = threading.Event()
        self.followed: set[str] = set()

    def lines(self) -> Iterator[str]:
        threading.Thread(
            target=self._watch, name=f"yurt-logs-watch-{self.job_id}", daemon=True
        ).start()
        try:
            while True:
                yield self.queue.get()
        finally:  # the consumer stopped iterating (generator closed): let every reader go
            self.stop.set()

    def add(self, label: str, alloc: Mapping[str, Any], offsets: Mapping[str, int]) -> None:
        self.followed.add(alloc["ID"])
        for stream in LOG_STREAMS:
            threading.Thread(
                target=self._pump,
                args=(alloc["ID"], label, str(alloc["TaskGroup"]), stream, offsets.get(stream, 0)),
                name=f"yurt-logs-{alloc['ID'][:8]}-{stream}",
                daemon=True,
            ).start()

    def _put(self, label: str, raw: bytes) -> None:
        line = f"{label} | {raw.decode('utf-8', 'replace')}\n"
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                self.queue.put(line, timeout=0.5)
                return

    def _pump(self, alloc_id: str, label: str, task: str, stream: str, offset: int) -> None:
        chunks = self.client.alloc_logs(
            alloc_id, task, stream, follow=True, offset=offset, stop=self.stop
        )
        pending = b""
        try:
            for data in chunks:
                *complete, pending = (pending + data).split(b"\n")
                for raw in complete:
                    self._put(label, raw)
            if pending:
                self._put(label, pending)
        except NomadError:
            return  # the allocation is gone (garbage-collected): its stream ends
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _watch(self) -> None:
        while not self.stop.wait(self.poll):
            try:
                allocs = self.client.allocations(self.job_id)
            except NomadError:
                continue  # Nomad briefly unreachable: look again later
            for a in sorted(allocs, key=lambda a: int(a.get("CreateIndex") or 0)):
                label = _label(a)
                if a["ID"] in self.followed or not _live(a):
                    continue
                if self.ps in (None, a.get("TaskGroup"), label):
                    self.add(label, a, {})


def _restarts(job: Mapping[str, Any]) -> dict[str, str]:
    """Group -> restart nonce of a registered job (group meta ``yurt_restart``)."""
    found = {}
    for g in job.get("TaskGroups") or []:
        nonce = (g.get("Meta") or {}).get("yurt_restart")
        if nonce:
            found[str(g["Name"])] = str(nonce)
    return found


def _label(a: Mapping[str, Any]) -> str:
    """``web.1`` for allocation ``<job>.web[0]``: the local runtime's instance names."""
    name = str(a.get("Name") or "")
    index = name.rsplit("[", 1)[-1].rstrip("]") if "[" in name else ""
    return f"{a.get('TaskGroup')}.{int(index) + 1 if index.isdigit() else 0}"


def _label_key(label: str) -> tuple[bool, str, int]:
    group, _, number = label.rpartition(".")
    return (group != WEB, group, int(number) if number.isdigit() else 0)


def _live(a: Mapping[str, Any]) -> bool:
    """Running, or about to (its output may still grow)."""
    client = a.get("ClientStatus")
    return client == "running" or (client == "pending" and a.get("DesiredStatus") == "run")


def _say(emit: Emit, line: str) -> None:
    emit(f"-----> {line}\n".encode())


def _report(progress: _Progress, dep: dict[str, Any]) -> None:
    """One progress line whenever the healthy count or the phase changes."""
    groups = dep.get("TaskGroups") or {}
    for name, state in sorted(groups.items()):
        if state.get("DesiredCanaries") and state.get("Promoted") and name not in progress.promoted:
            progress.promoted.add(name)
            _say(progress.emit, f"Canaries of {name} healthy: promoted")
    healthy = sum(int(s.get("HealthyAllocs") or 0) for s in groups.values())
    total = sum(int(s.get("DesiredTotal") or 0) for s in groups.values())
    unhealthy = sum(int(s.get("UnhealthyAllocs") or 0) for s in groups.values())
    line = f"Waiting for the deployment: {healthy}/{total} healthy"
    if unhealthy:
        line += f", {unhealthy} unhealthy"
    if dep.get("Status") in TERMINAL_DEPLOYMENT or line == progress.last:
        return
    progress.last = line
    _say(progress.emit, line)


def placement(failed: Mapping[str, Any]) -> str:
    """Why an evaluation could not place groups, from its ``FailedTGAllocs`` metrics."""
    parts = []
    for group, metric in sorted(failed.items()):
        metric = metric or {}
        details = [f"{k} {v}" for k, v in sorted((metric.get("DimensionExhausted") or {}).items())]
        details += [f"{k} {v}" for k, v in sorted((metric.get("ConstraintFiltered") or {}).items())]
        if not metric.get("NodesAvailable") and not details:
            details.append("no nodes available")
        parts.append(f"{group}: " + (", ".join(details) or "no node fits"))
    return "; ".join(parts)


def _events(alloc: Mapping[str, Any], task: str) -> list[dict[str, Any]]:
    return list(((alloc.get("TaskStates") or {}).get(task) or {}).get("Events") or [])


def exit_code(alloc: Mapping[str, Any], task: str) -> int | None:
    """The task's last exit code (its last ``Terminated`` event), None if it never ended."""
    for ev in reversed(_events(alloc, task)):
        code = (ev.get("Details") or {}).get("exit_code")
        if ev.get("Type") == "Terminated" and code not in (None, ""):
            try:
                return int(code)
            except ValueError:
                return None
    return None


def task_story(alloc: Mapping[str, Any]) -> str:
    """Why an allocation's tasks failed: exit code, driver/template failure, restarts exceeded,
    or (running but not healthy) the health checks."""
    stories = []
    for task, state in sorted((alloc.get("TaskStates") or {}).items()):
        events = (state or {}).get("Events") or []
        code = exit_code(alloc, task)
        failure = next((e for e in reversed(events) if e.get("Type") in _FAILURE_EVENTS), None)
        exceeded = any(e.get("Type") == "Not Restarting" for e in events)
        if code not in (None, 0):
            story = f"Task '{task}' failed: exit status {code}"
        elif failure is not None:
            story = (
                f"Task '{task}' {failure['Type'].lower()}: {failure.get('DisplayMessage') or '-'}"
            )
        elif state.get("State") == "running" or (
            (alloc.get("DeploymentStatus") or {}).get("Healthy") is False and state.get("StartedAt")
        ):
            story = f"Task '{task}' runs but its health checks did not pass in time"
        elif state.get("State") == "pending" and events:
            last = events[-1]
            story = f"Task '{task}' never started (last event: {last.get('Type')}: {last.get('DisplayMessage') or '-'})"
        else:
            continue
        if exceeded:
            story += " (restarts exceeded)"
        stories.append(story)
    return "; ".join(stories)


def _view(a: Mapping[str, Any], release: int) -> ProcessView:
    group = str(a.get("TaskGroup"))
    name = str(a.get("Name") or "")
    index = name.rsplit("[", 1)[-1].rstrip("]") if "[" in name else ""
    number = int(index) + 1 if index.isdigit() else 0
    task = (a.get("TaskStates") or {}).get(group) or {}
    health = (a.get("DeploymentStatus") or {}).get("Healthy")
    client = a.get("ClientStatus")
    if a.get("DesiredStatus") != "run":
        state = "retiring"
    elif client == "pending":
        state = "starting"
    elif client == "running":
        # Healthy is None outside a deployment and for allocations updated in place (a revert
        # to the spec they run): those serve. Only canaries and new placements wait for it.
        fresh = (a.get("DeploymentStatus") or {}).get("Canary") or not task.get("StartedAt")
        state = "crashed" if health is False else "starting" if health is None and fresh else "up"
    elif client == "complete":
        state = "stopped"
    else:
        state = "crashed"
    return ProcessView(
        type=group,
        number=number,
        state=state,
        release=release,
        started_at=_time(task.get("StartedAt")),
        restarts=task.get("Restarts"),
        exit_status=exit_code(a, group),
        port=None,
    )


def _alloc_of_service(service_id: str) -> str:
    """The allocation id in a Nomad-registered service id
    (``_nomad-task-<alloc id>-<task or group-NAME>-<service>-<port>``, reference §4)."""
    prefix = "_nomad-task-"
    if not service_id.startswith(prefix):
        return ""
    rest = service_id[len(prefix) :]
    return rest[:36] if len(rest) > 36 and rest[36] == "-" else ""


def _time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str) or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


if TYPE_CHECKING:
    from controller.runtime.base import Runtime

    def _is_a_runtime(runtime: NomadRuntime) -> Runtime:
        return runtime  # mypy checks NomadRuntime against the Runtime protocol
