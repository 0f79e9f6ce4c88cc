"""``NomadRuntime``: the Runtime protocol on a Nomad cluster (first working step).

A release is a version of the app's service job (``render_app_job``); the release phase is a
batch job (``render_release_job``) that must exit 0 before the service job is registered. The
control loop is levant's: render -> ``/v1/jobs/parse`` -> register with ``EnforceIndex`` ->
the evaluation (placement failures at once) -> its deployment, watched with blocking queries
under Yurt's own deadline (failed on Nomad's side when it passes, reference pitfall 5) ->
on failure an explanation from the deployment and the failed allocations' task events, and
what Nomad's auto-revert did (§1.7, pitfall 4).

Not yet here (``NotImplementedError``): restart, logs, destroy, stop_app, missing, restore,
prune, and shutdown without ``keep_apps``.

Inputs the DeploySpec does not carry are explicit constructor arguments: the image digest and
build id of a release (``images`` or ``image_for``), the Vault config version
(``config_version_for``), and the app name of an app id (remembered from deploy/scale, or
``app_for``). ``DeploySpec.env`` (secret values) is never put in a job spec: config reaches
the tasks from Vault, pinned to the config version.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controller.runtime.base import DeployFailed, DeploySpec, Emit, ProcessView
from controller.runtime.nomad.client import (
    TERMINAL_ALLOC,
    TERMINAL_DEPLOYMENT,
    NomadClient,
    NomadError,
    NomadTimeout,
)
from controller.runtime.nomad.jobspec import (
    WEB,
    AppJobSpec,
    DeploySettings,
    HealthCheck,
    ReleaseJobSpec,
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
        self._images = images
        self._image_for = image_for
        self._config_version_for = config_version_for
        self._app_for = app_for
        self._apps: dict[str, str] = {}  # app id -> app name, learnt from deploy/scale

    # -- the job spec -----------------------------------------------------------------------------
    def job_id(self, app: str) -> str:
        return self.settings.job_prefix + app

    def app_spec(self, spec: DeploySpec) -> AppJobSpec:
        """The service job of ``spec``'s release."""
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
            processes={t: c for t, c in spec.process_types.items() if t != RELEASE},
            formation={t: n for t, n in spec.formation.items() if t != RELEASE},
            hosts=(f"{spec.app}.{s.base_domain}",) if s.base_domain else (),
            router=s.router,
            health_check=s.health_check,
        )

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
        self._apps[spec.app_id] = spec.app
        app = self.app_spec(spec)
        if RELEASE in spec.process_types:
            self._release_phase(app, spec.process_types[RELEASE], emit)
        current = self.client.job(app.job_id)
        before = (int(current["Version"]), int(current["JobModifyIndex"])) if current else None
        hcl = render_app_job(app)
        job = self.client.parse(hcl)
        result = self.client.register(job, before[1] if before else 0, submission=hcl)
        registered = self.client.job(app.job_id) or {}
        version = int(registered.get("Version", 0))
        if before is not None and version == before[0]:
            _say(emit, f"Job {app.job_id} unchanged (version {version}): nothing to roll out")
            return
        _say(emit, f"Registered job {app.job_id} version {version} ({app.release_name})")
        self._follow(app.job_id, result.eval_id, version, emit, app.release_name)
        try:
            self.client.tag_version(
                app.job_id, version, app.release_name, f"Yurt release {app.release_name}"
            )
        except NomadError as exc:  # the release is live; a missing tag only shortens history
            _say(emit, f"Warning: could not tag job version {version}: {exc}")
        _say(emit, f"Deployment successful: {app.release_name} is serving")

    def _follow(
        self, job_id: str, eval_id: str | None, version: int, emit: Emit, what: str
    ) -> None:
        """Wait for the evaluation of a register/scale, then its deployment (if any)."""
        ev = self._evaluation(eval_id)
        failed = (ev or {}).get("FailedTGAllocs") or {}
        if failed:
            raise DeployFailed(f"{what} could not be placed: {_placement(failed)}")
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

    def _evaluation(self, eval_id: str | None) -> dict[str, Any] | None:
        if not eval_id:
            return None
        deadline = time.monotonic() + self.settings.eval_timeout
        while True:
            ev = self.client.evaluation(eval_id)
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
            reason = _task_story(alloc)
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
        spec = ReleaseJobSpec.for_app(app, command)
        _say(emit, f"Running release command: {command}")
        hcl = render_release_job(spec)
        result = self.client.register(self.client.parse(hcl), submission=hcl)
        version = int((self.client.job(spec.job_id) or {}).get("Version", 0))
        ev = self._evaluation(result.eval_id)
        failed = (ev or {}).get("FailedTGAllocs") or {}
        if failed:
            raise DeployFailed(f"the release command could not be placed: {_placement(failed)}")

        def done(allocs: list[dict[str, Any]]) -> bool:
            return any(
                a.get("JobVersion") == version and a.get("ClientStatus") in TERMINAL_ALLOC
                for a in allocs
            )

        try:
            allocs = self.client.watch_allocations(spec.job_id, done, self.settings.release_timeout)
        except NomadTimeout:
            self.client.stop(spec.job_id)
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
        full = self.client.allocation(alloc["ID"])
        code = _exit_code(full, RELEASE)
        tail = self._tail(alloc["ID"], RELEASE)
        reason = f"exit status {code}" if code is not None else (_task_story(full) or "failed")
        message = f"the release command failed: {reason}"
        if tail:
            message += "\n" + "\n".join(tail)
        raise DeployFailed(message)

    def _tail(self, alloc_id: str, task: str) -> list[str]:
        lines: list[str] = []
        for stream in ("stdout", "stderr"):
            try:
                data = b"".join(self.client.alloc_logs(alloc_id, task, stream, timeout=10))
            except NomadError:
                continue
            lines += data.decode("utf-8", "replace").splitlines()
        return lines[-self.settings.log_lines :]

    # -- operate ----------------------------------------------------------------------------------------
    def scale(self, spec: DeploySpec) -> None:
        """Set each group's count through the scale API (refused with ``NomadConflict``
        while a deployment runs, pitfall 6) and wait for what it rolls out."""
        self._apps[spec.app_id] = spec.app
        job_id = self.job_id(spec.app)
        job = self.client.job(job_id)
        if job is None:
            raise DeployFailed(f"{spec.app} has no job on the cluster to scale")
        counts = {g["Name"]: int(g["Count"]) for g in job.get("TaskGroups") or []}
        for group, count in sorted(spec.formation.items()):
            if group == RELEASE or counts.get(group, count) == count:
                continue
            if group not in counts:
                raise DeployFailed(f"{spec.app} has no process type {group!r} in its job")
            result = self.client.scale(job_id, group, count, f"Yurt: {group}={count}")
            version = int((self.client.job(job_id) or {}).get("Version", 0))
            self._follow(job_id, result.eval_id, version, lambda _b: None, f"scale of {group}")

    def processes(self, app_id: str) -> list[ProcessView]:
        job_id = self.job_id(self._app(app_id))
        job = self.client.job(job_id)
        if job is None:
            return []
        releases = self._release_of(job_id)
        views = []
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
            views.append(_view(a, releases.get(int(a.get("JobVersion", -1)), 0)))
        return sorted(views, key=lambda v: (v.type != WEB, v.type, v.number, v.release))

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

    # -- not yet ----------------------------------------------------------------------------------------
    def shutdown(self, keep_apps: bool) -> None:
        if not keep_apps:
            raise NotImplementedError("shutdown without keep_apps is not yet on the nomad runtime")

    def restart(self, spec: DeploySpec, process_type: str | None) -> None:
        raise NotImplementedError("restart is not yet on the nomad runtime")

    def logs(
        self,
        app: str,
        app_id: str,
        lines: int,
        follow: bool,
        ps: str | None,
        source: str = "app",
    ) -> Iterator[str]:
        raise NotImplementedError("logs are not yet on the nomad runtime")

    def destroy(self, app: str, app_id: str) -> None:
        raise NotImplementedError("destroy is not yet on the nomad runtime")

    def stop_app(self, app_id: str) -> None:
        raise NotImplementedError("stop_app is not yet on the nomad runtime")

    def missing(self, app_id: str) -> bool:
        raise NotImplementedError("missing is not yet on the nomad runtime")

    def restore(self, spec: DeploySpec) -> None:
        raise NotImplementedError("restore is not yet on the nomad runtime")

    def prune(self, app: str, keep_versions: set[int]) -> None:
        raise NotImplementedError("prune is not yet on the nomad runtime")


# -- helpers ------------------------------------------------------------------------------------------


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


def _placement(failed: Mapping[str, Any]) -> str:
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


def _exit_code(alloc: Mapping[str, Any], task: str) -> int | None:
    for ev in reversed(_events(alloc, task)):
        code = (ev.get("Details") or {}).get("exit_code")
        if ev.get("Type") == "Terminated" and code not in (None, ""):
            try:
                return int(code)
            except ValueError:
                return None
    return None


def _task_story(alloc: Mapping[str, Any]) -> str:
    """Why an allocation's tasks failed: exit code, driver/template failure, restarts exceeded,
    or (running but not healthy) the health checks."""
    stories = []
    for task, state in sorted((alloc.get("TaskStates") or {}).items()):
        events = (state or {}).get("Events") or []
        code = _exit_code(alloc, task)
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
        exit_status=_exit_code(a, group),
        port=None,
    )


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
