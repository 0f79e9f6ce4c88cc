"""Builds on the cluster: one dispatch of the parameterized ``yurt-build`` job per push.

The controller registers ``yurt-build`` (jobspecs/build.nomad.hcl.j2) once, then for each
build opens a *grant* (a random bearer token that opens only that build's source, config
vars, the app's build cache and its result endpoint, and dies with the build), dispatches the
job with the build's meta, streams the task's output into the push as it is written, and
takes the outcome from the task's real exit code plus the result the builder posted (the
image it pushed, pinned by digest, and the process types).

The builder (``python -m controller.builder`` in the builder image) talks back to
``/internal/builds/<id>/...`` (controller/runtime/nomad/views.py).

The dispatch's idempotency token is the build id, not the commit: a retried dispatch of the
same build finds its child again, while a new build of the same commit (a re-push after a
failure) gets a new child with its own grant. With the commit as token Nomad would hand back
the old child, whose grant is gone.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import tarfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.builds.runner import BuildCancelled, BuildFailed, BuildResult, Cancel
from controller.builds.service import RemoteBuild
from controller.errors import Unauthorized
from controller.runtime.nomad.client import TERMINAL_ALLOC, NomadClient, NomadError, NomadTimeout
from controller.runtime.nomad.jobspec import BuildJobSpec, render_build_job
from controller.runtime.nomad.runtime import exit_code, placement, task_story

log = logging.getLogger(__name__)
TASK = "build"


@dataclass
class Grant:
    """What one running build's token opens; ``result`` is what the builder reported."""

    token_hash: str
    req: RemoteBuild
    result: dict[str, Any] | None = None


@dataclass
class BuildGrants:
    """The tokens of the builds running on the cluster (in memory: they die with the build,
    and a controller restart fails running builds anyway)."""

    _grants: dict[str, Grant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, req: RemoteBuild) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._grants[req.build_id] = Grant(_hash(token), req)
        return token

    def check(self, build_id: str, token: str) -> Grant:
        """The grant of a running build for its token; 401 for anything else (an unknown
        build and a wrong token look the same)."""
        with self._lock:
            grant = self._grants.get(build_id)
        if grant is None or not hmac.compare_digest(grant.token_hash, _hash(token)):
            raise Unauthorized("This build token is not valid (or the build has ended).")
        return grant

    def close(self, build_id: str) -> Grant | None:
        with self._lock:
            return self._grants.pop(build_id, None)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class NomadBuilder:
    """``BuildService.remote`` on the nomad runtime."""

    def __init__(
        self,
        client: NomadClient,
        spec: BuildJobSpec,
        cache_dir: Path,
        *,
        stack_image: str | None = None,
        eval_timeout: float = 30.0,
        poll: float = 2.0,
    ) -> None:
        self.client = client
        self.spec = spec
        self.cache_dir = cache_dir
        self.stack_image = stack_image
        self.eval_timeout = eval_timeout
        self.poll = poll
        self.grants = BuildGrants()
        # commit -> its app.json (None: none), read from the pushed source: the first deploy
        # of a commit runs inside the pre-receive hook, before git lets anyone else see it.
        self._app_json: OrderedDict[str, bytes | None] = OrderedDict()
        self._registered: str | None = None
        self._register_lock = threading.Lock()

    def app_json(self, commit: str) -> bytes | None:
        """The app.json of a commit built here recently (None if unknown or absent)."""
        with self._register_lock:
            return self._app_json.get(commit)

    def _remember_app_json(self, req: RemoteBuild) -> None:
        try:
            with tarfile.open(req.source) as tar:
                member = tar.extractfile("app.json")
                data = member.read(1 << 20) if member is not None else None
        except (KeyError, OSError, tarfile.TarError):
            data = None
        with self._register_lock:
            self._app_json[req.commit] = data
            while len(self._app_json) > 100:
                self._app_json.popitem(last=False)

    def cache_path(self, app_id: str) -> Path:
        """The app's build cache, kept by the controller so any client can build the app
        (in the app's cache dir, which builds:purge-cache and apps:destroy remove)."""
        return self.cache_dir / app_id / "cluster-build-cache.tar.gz"

    def target(self, app: str, build_id: str) -> str:
        return f"{self.spec.registry}/{app}:{build_id.lower()}"

    def stop_interrupted(self, build_ids: set[str]) -> int:
        """Stop the build jobs of builds a controller restart interrupted (their grants are
        gone, so they could only fail later); returns how many were still running."""
        stopped = 0
        for stub in self.client.jobs(f"{self.spec.job_id}/dispatch-"):
            meta = stub.get("Meta") or {}
            if stub.get("Stop") or stub.get("Status") == "dead":
                continue
            if meta.get("build_id") in build_ids:
                self._stop(str(stub["ID"]))
                stopped += 1
        return stopped

    # -- one build ----------------------------------------------------------------------------------
    def build(self, req: RemoteBuild, emit: Callable[[bytes], None], cancel: Cancel) -> BuildResult:
        self._ensure_job()
        token = self.grants.open(req)
        child: str | None = None
        try:
            meta = {
                "app": req.app,
                "build_id": req.build_id,
                "commit": req.commit,
                "image": self.target(req.app, req.build_id),
                "build_token": token,
            }
            if req.pinned_buildpack:
                meta["buildpack"] = req.pinned_buildpack
            if self.stack_image:
                meta["stack_image"] = self.stack_image
            cancel.check()
            dispatched = self.client.dispatch(
                self.spec.job_id, meta, idempotency_token=req.build_id
            )
            child = dispatched.dispatched_job_id
            _say(emit, f"Build job {child} dispatched")
            self._check_placement(dispatched.eval_id)
            alloc_id = self._first_allocation(child, cancel)
            output = _Output(self.client, alloc_id, emit)
            output.start()
            alloc = self._wait_done(child, alloc_id, cancel)
            output.join()
            result = self._outcome(req, alloc)
            self._remember_app_json(req)
            return result
        except BuildCancelled:
            if child is not None:
                self._stop(child)
            raise
        except NomadError as exc:
            if child is not None:
                self._stop(child)
            raise BuildFailed(f"The cluster could not run the build: {exc.message}") from None
        finally:
            self.grants.close(req.build_id)

    def _ensure_job(self) -> None:
        """Register ``yurt-build`` when its rendered spec changed (Nomad makes no new version
        for an identical spec, but this saves the round trips on every push)."""
        hcl = render_build_job(self.spec)
        with self._register_lock:
            if self._registered == hcl and self.client.job(self.spec.job_id) is not None:
                return
            try:
                self.client.register(self.client.parse(hcl), submission=hcl)
            except NomadError as exc:
                raise BuildFailed(f"Could not register the build job: {exc.message}") from None
            self._registered = hcl

    def _check_placement(self, eval_id: str | None) -> None:
        """Fail at once when no client can run the build (not after the build timeout)."""
        if not eval_id:
            return
        deadline = time.monotonic() + self.eval_timeout
        while True:
            ev = self.client.evaluation(eval_id)
            if ev.get("Status") != "pending" or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        failed = ev.get("FailedTGAllocs") or {}
        if failed:
            raise BuildFailed(f"The build could not be placed on the cluster: {placement(failed)}")

    def _first_allocation(self, child: str, cancel: Cancel) -> str:
        while True:
            cancel.check()
            try:
                allocs = self.client.watch_allocations(child, bool, timeout=self.poll)
            except NomadTimeout:
                continue
            return str(sorted(allocs, key=lambda a: a.get("CreateIndex", 0))[0]["ID"])

    def _wait_done(self, child: str, alloc_id: str, cancel: Cancel) -> dict[str, Any]:
        def done(allocs: list[dict[str, Any]]) -> bool:
            return any(
                a["ID"] == alloc_id and a.get("ClientStatus") in TERMINAL_ALLOC for a in allocs
            )

        while True:
            cancel.check()
            try:
                self.client.watch_allocations(child, done, timeout=self.poll)
            except NomadTimeout:
                continue
            return self.client.allocation(alloc_id)

    def _outcome(self, req: RemoteBuild, alloc: dict[str, Any]) -> BuildResult:
        grant = self.grants.close(req.build_id)
        code = exit_code(alloc, TASK)
        if alloc.get("ClientStatus") != "complete" or code not in (0, None):
            reason = f"exit status {code}" if code not in (None, 0) else task_story(alloc)
            raise BuildFailed(
                f"The build failed on the cluster: {reason or alloc.get('ClientStatus')}"
            )
        result = grant.result if grant is not None else None
        if result is None:
            raise BuildFailed("The build task ended without reporting an image.")
        return BuildResult(
            buildpack=str(result["buildpack"]),
            slug_path=None,
            slug_size=None,
            slug_checksum=None,
            process_types=dict(result["process_types"]),
            image=str(result["image"]),
        )

    def _stop(self, child: str) -> None:
        try:
            self.client.stop(child)
        except NomadError as exc:
            log.warning("could not stop build job %s: %s", child, exc)


def _say(emit: Callable[[bytes], None], line: str) -> None:
    emit(f"-----> {line}\n".encode())


class _Output:
    """Streams the build task's stdout and stderr into the push while it runs."""

    def __init__(self, client: NomadClient, alloc_id: str, emit: Callable[[bytes], None]):
        self.client = client
        self.alloc_id = alloc_id
        self._emit = emit
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._follow, args=(s,), name=f"build-log-{s}", daemon=True)
            for s in ("stdout", "stderr")
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def join(self, timeout: float = 30.0) -> None:
        for t in self._threads:
            t.join(timeout)

    def _follow(self, stream: str) -> None:
        try:
            for chunk in self.client.alloc_logs(self.alloc_id, TASK, stream, follow=True):
                with self._lock:
                    self._emit(chunk)
        except NomadError as exc:
            with self._lock:
                self._emit(
                    f" !     The build's {stream} could not be read: {exc.message}\n".encode()
                )
