"""Build service: records builds, queues them per app, runs them, lets people follow them.

At most one build per app runs at a time (later pushes wait, in order, and say so); different
apps build in parallel up to ``max_parallel_builds``. A build runs in its own thread, so a
pusher that disconnects does not stop it.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker
from ulid import ULID

from controller import proc, tmpfs
from controller.builds.log import BuildLog, LogCapExceeded, read_all
from controller.builds.runner import (
    BuildCancelled,
    BuildFailed,
    BuildRequest,
    BuildResult,
    Cancel,
    dumps_process_types,
    error_lines,
    heading,
    make_env_dir,
    run_build,
)
from controller.db.models import App, Build, utcnow
from controller.errors import Conflict, NotFound, YurtError
from controller.names import check_build_id
from controller.runtime.base import DeployFailed
from controller.runtime.local import users
from controller.settings import Settings

log = logging.getLogger(__name__)
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class BuildView:
    id: str
    app: str
    status: str
    commit: str
    ref: str
    buildpack: str | None
    error: str | None
    slug_size: int | None
    slug_checksum: str | None
    image: str | None
    process_types: dict[str, str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, build: Build, app_name: str) -> BuildView:
        return cls(
            id=build.id,
            app=app_name,
            status=build.status,
            commit=build.commit,
            ref=build.ref,
            buildpack=build.buildpack,
            error=build.error,
            slug_size=build.slug_size,
            slug_checksum=build.slug_checksum,
            image=build.image,
            process_types=json.loads(build.process_types) if build.process_types else {},
            created_at=build.created_at,
            started_at=build.started_at,
            finished_at=build.finished_at,
        )


@dataclass
class _Active:
    """A queued or running build: what to build, and the handles to follow or stop it."""

    build_id: str
    app_id: str
    app_name: str
    pinned: str | None
    commit: str
    ref: str
    old: str | None  # the ref's value the pusher saw
    source: Path
    log: BuildLog
    cancel: Cancel
    thread: threading.Thread | None = None


# Called after a successful build with (app id, build id); the runtime issue hangs
# releases off this. It runs in the build thread and may write to the build log.
AfterBuild = Callable[[str, str, str, BuildResult, Callable[[bytes], None]], None]


@dataclass(frozen=True)
class RemoteBuild:
    """A build handed to a remote builder (the nomad runtime's ``yurt-build`` job)."""

    app_id: str
    app: str
    build_id: str
    commit: str
    source: Path  # the pushed commit as a tar file; served to the builder while it runs
    pinned_buildpack: str | None
    env: dict[str, str]  # config vars for the buildpacks' ENV_DIR (secret values)


class RemoteBuilder(Protocol):
    def build(self, req: RemoteBuild, emit: Callable[[bytes], None], cancel: Cancel) -> BuildResult:
        """Run the build elsewhere, its output into ``emit``; raise BuildFailed or
        BuildCancelled (``cancel`` is set on a timeout or a cancel) like a local build."""
        ...

    def stop_interrupted(self, build_ids: set[str]) -> int:
        """Stop what still runs of builds a controller restart interrupted."""
        ...


class BuildService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Any]) -> None:
        self.settings = settings
        self.sessions = sessions
        self._slots = threading.BoundedSemaphore(settings.max_parallel_builds)
        self._app_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._active: dict[str, _Active] = {}
        self.after_build: AfterBuild | None = None
        # The app's config vars for ENV_DIR (app id -> values); raises a YurtError when the
        # config store cannot answer, which fails the build with that reason.
        self.build_config: Callable[[str], dict[str, str]] | None = None
        # Builds run there instead of here (the nomad runtime); None: buildpacks run locally.
        self.remote: RemoteBuilder | None = None

    # -- queries -------------------------------------------------------------------------

    def list(self, app: App) -> list[BuildView]:
        with self.sessions() as s:
            rows = s.scalars(
                select(Build).where(Build.app_id == app.id).order_by(Build.id.desc())
            ).all()
            return [BuildView.of(b, app.name) for b in rows]

    def get(self, app: App, build_id: str) -> BuildView:
        return BuildView.of(self._row(app, build_id), app.name)

    def _row(self, app: App, build_id: str) -> Build:
        check_build_id(build_id)
        with self.sessions() as s:
            build = s.get(Build, build_id)
            if build is None or build.app_id != app.id:
                raise NotFound(f"Build {build_id} not found for app {app.name}.")
            return build

    def output(self, app: App, build_id: str, follow: bool = True) -> Iterator[bytes]:
        self._row(app, build_id)
        active = self._active.get(build_id)
        if active is not None and follow:
            return active.log.follow()
        return read_all(self.log_path(build_id))

    def log_path(self, build_id: str) -> Path:
        return self.settings.builds_dir / f"{build_id}.log"

    def is_active(self, build_id: str) -> bool:
        return build_id in self._active

    # -- starting builds -----------------------------------------------------------------

    def start(
        self, app: App, commit: str, ref: str, source_tar: Path, old: str | None = None
    ) -> str:
        """Record a pending build and start its thread; returns the build id.

        ``old`` is the ref's value the pusher saw; if another push moves the ref while this
        build waits for its turn, the build fails at once instead of building a stale base.
        """
        build_id = str(ULID())
        with self.sessions.begin() as s:
            s.add(Build(id=build_id, app_id=app.id, commit=commit, ref=ref, status="pending"))
        active = _Active(
            build_id=build_id,
            app_id=app.id,
            app_name=app.name,
            pinned=app.buildpack,
            commit=commit,
            ref=ref,
            old=old,
            source=source_tar,
            log=BuildLog(self.log_path(build_id), self.settings.build_log_cap),
            cancel=Cancel(),
        )
        with self._guard:
            self._active[build_id] = active
        thread = threading.Thread(
            target=self._run,
            args=(active,),
            name=f"build-{app.name}-{build_id}",
            daemon=True,
        )
        active.thread = thread
        thread.start()
        return build_id

    def _app_lock(self, app_id: str) -> threading.Lock:
        with self._guard:
            return self._app_locks.setdefault(app_id, threading.Lock())

    def _app_exists(self, app_id: str) -> bool:
        with self.sessions() as s:
            return s.get(App, app_id) is not None

    @contextmanager
    def app_locked(self, app_id: str, timeout: float = 30) -> Iterator[None]:
        """Hold the app's build lock (no build of it can start meanwhile)."""
        lock = self._app_lock(app_id)
        if not lock.acquire(timeout=timeout):
            raise Conflict("A build of this app is still running; try again shortly.")
        try:
            yield
        finally:
            lock.release()

    def _emitter(self, active: _Active) -> Callable[[bytes], None]:
        def emit(data: bytes) -> None:
            try:
                active.log.write(data)
            except LogCapExceeded:
                active.cancel.cancel(cap_hit=True)

        return emit

    def _wait_for(self, lock: threading.Semaphore | threading.Lock, active: _Active) -> bool:
        while not lock.acquire(timeout=0.5):
            if active.cancel.cancelled:
                return False
        return True

    def _run(self, active: _Active) -> None:
        emit = self._emitter(active)
        app_lock = self._app_lock(active.app_id)
        have_app = False
        try:
            have_app = self._wait_turn(active, app_lock, emit)
            status, error, result = self._attempt(active, emit)
            self._finish(active, status, error, result)
            if status == "succeeded" and active.old is not None:
                # Keep the app's turn until git has moved the ref (right after the hook
                # exits), so the next queued push compares against the landed commit.
                self._await_ref(active)
        finally:
            if have_app:
                app_lock.release()
            active.source.unlink(missing_ok=True)

    def _wait_turn(
        self,
        active: _Active,
        app_lock: threading.Lock,
        emit: Callable[[bytes], None],
    ) -> bool:
        """Take the app's lock (one build per app); False if cancelled while waiting."""
        if app_lock.acquire(blocking=False):
            return True
        emit(heading(f"Another build of {active.app_name} is running; waiting for it to finish"))
        return self._wait_for(app_lock, active)

    def _attempt(
        self, active: _Active, emit: Callable[[bytes], None]
    ) -> tuple[str, str, BuildResult | None]:
        """Run the build in a build slot; returns (status, error, result), never raises."""
        have_slot = False
        result = None
        try:
            have_slot = self._slots.acquire(blocking=False)
            if not have_slot:
                emit(heading("Waiting for a free build slot (the server's build limit is reached)"))
                have_slot = self._wait_for(self._slots, active)
            if not have_slot or active.cancel.cancelled:
                raise BuildCancelled("cancelled")
            if not self._app_exists(active.app_id):
                raise BuildCancelled("cancelled: the app was destroyed")
            self._check_ref(active)
            self._mark(active.build_id, status="building", started_at=utcnow())
            result = self._build(active, emit)
            if self.after_build is not None:
                self.after_build(active.app_id, active.build_id, active.commit, result, emit)
            return "succeeded", "", result
        except BuildCancelled as exc:
            status, error = self._cancel_reason(active, str(exc))
            active.log.write(error_lines(f"Build {error}."), force=True)
            return status, error, result
        except (BuildFailed, DeployFailed) as exc:
            active.log.write(error_lines(str(exc)), force=True)
            return "failed", str(exc), result
        except Exception as exc:  # the build must end recorded, whatever broke
            log.exception("build %s crashed", active.build_id)
            error = f"internal error: {type(exc).__name__}"
            active.log.write(error_lines(f"Build failed: {error} (see the server log)"), force=True)
            return "failed", error, result
        finally:
            if have_slot:
                self._slots.release()

    def _ref_value(self, active: _Active) -> str:
        repo = self.settings.repos_dir / f"{active.app_name}.git"
        res = proc.run(
            ["git", "--git-dir", repo, "rev-parse", "--verify", "--quiet", active.ref],
            check=False,
        )
        return res.stdout.strip() or "0" * 40

    def _check_ref(self, active: _Active) -> None:
        """Fail at once if another push moved the branch while this one waited."""
        if active.old is None:
            return
        current = self._ref_value(active)
        if current != active.old:
            branch = active.ref.removeprefix("refs/heads/")
            raise BuildFailed(
                f"{branch} moved to {current[:7]} while this push waited (another push landed "
                f"first).\nFetch, merge and push again."
            )

    def _await_ref(self, active: _Active, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._ref_value(active) != active.commit:
            time.sleep(0.05)

    def _cancel_reason(self, active: _Active, reason: str) -> tuple[str, str]:
        if active.cancel.cap_hit:
            return (
                "failed",
                f"failed: its log passed the cap of {self.settings.build_log_cap} bytes",
            )
        if active.cancel.timed_out:
            return "failed", f"timed out after {self.settings.build_timeout:.0f} s"
        return "cancelled", reason

    def _build(self, active: _Active, emit: Callable[[bytes], None]) -> BuildResult:
        """Run the build here or on the remote builder, cancelled after the build timeout."""
        timer = threading.Timer(
            self.settings.build_timeout, active.cancel.cancel, kwargs={"timeout": True}
        )
        timer.daemon = True
        timer.start()
        try:
            if self.remote is not None:
                return self._build_remote(self.remote, active, emit)
            return self._build_here(active, emit)
        finally:
            timer.cancel()

    def _build_here(self, active: _Active, emit: Callable[[bytes], None]) -> BuildResult:
        work = self.settings.data_dir / "tmp" / "builds" / active.build_id
        work.mkdir(parents=True, exist_ok=True)
        # Buildpacks run as the app's user (as root): it must reach the work, cache and env
        # dirs, whose parents are traversable (0711) but not listable.
        work.parent.chmod(0o711)
        env_root = tmpfs.private_dir(self.settings.data_dir, "builds", 0o711)
        user = users.ensure_user(active.app_name) if users.running_as_root() else None
        env_dir: Path | None = None
        try:
            env_dir = make_env_dir(env_root, self._config_values(active))
            req = BuildRequest(
                source_tar=active.source,
                work_dir=work,
                cache_dir=self.settings.cache_dir / active.app_id,
                env_dir=env_dir,
                buildpacks_dir=self.settings.buildpacks_dir,
                slug_path=self.settings.slugs_dir / active.app_id / f"{active.build_id}.tgz",
                commit=active.commit,
                pinned_buildpack=active.pinned,
                user=user,
            )
            emit(
                heading(
                    f"Building {active.app_name} from {active.commit[:7]} (build {active.build_id})"
                )
            )
            return run_build(req, emit, active.cancel)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if env_dir is not None:
                shutil.rmtree(env_dir, ignore_errors=True)

    def _build_remote(
        self, remote: RemoteBuilder, active: _Active, emit: Callable[[bytes], None]
    ) -> BuildResult:
        req = RemoteBuild(
            app_id=active.app_id,
            app=active.app_name,
            build_id=active.build_id,
            commit=active.commit,
            source=active.source,
            pinned_buildpack=active.pinned,
            env=self._config_values(active),
        )
        return remote.build(req, emit, active.cancel)  # the builder says what it builds

    def _config_values(self, active: _Active) -> dict[str, str]:
        """Config vars for ENV_DIR (kept on tmpfs, never in the data dir)."""
        if self.build_config is None:
            return {}
        try:
            return self.build_config(active.app_id)
        except YurtError as exc:
            raise BuildFailed(f"The build needs the app's config vars: {exc.message}") from None

    def _finish(self, active: _Active, status: str, error: str, result: BuildResult | None) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error or None}
        if result is not None and status == "succeeded":
            values.update(
                buildpack=result.buildpack,
                slug_path=str(result.slug_path) if result.slug_path else None,
                image=result.image,
                slug_size=result.slug_size,
                slug_checksum=result.slug_checksum,
                process_types=dumps_process_types(result.process_types),
            )
            active.log.write(heading(f"Build {active.build_id} succeeded"), force=True)
        elif result is not None and result.slug_path is not None:
            result.slug_path.unlink(missing_ok=True)
        self._mark(active.build_id, **values)
        active.log.close()
        with self._guard:
            self._active.pop(active.build_id, None)

    def _mark(self, build_id: str, **values: Any) -> None:
        with self.sessions.begin() as s:
            s.execute(update(Build).where(Build.id == build_id).values(**values))

    # -- stopping builds -----------------------------------------------------------------

    def cancel(self, app: App, build_id: str) -> BuildView:
        build = self._row(app, build_id)
        active = self._active.get(build_id)
        if active is None:
            if build.status in FINISHED:
                raise Conflict(f"Build {build_id} has already finished ({build.status}).")
            raise Conflict(f"Build {build_id} is not running on this server.")
        active.cancel.cancel()
        if active.thread is not None:
            active.thread.join(timeout=30)
        return self.get(app, build_id)

    def cancel_all(self, app_id: str, wait: float = 30) -> None:
        """Cancel every queued or running build of an app and wait for them to end."""
        actives = [a for a in list(self._active.values()) if a.app_id == app_id]
        for a in actives:
            a.cancel.cancel()
        for a in actives:
            if a.thread is not None:
                a.thread.join(timeout=wait)
        if any(a.build_id in self._active for a in actives):
            raise Conflict("A build of this app did not stop in time; try again.")

    def shutdown(self, wait: float = 10) -> None:
        actives = list(self._active.values())
        for a in actives:
            a.cancel.cancel()
        for a in actives:
            if a.thread is not None:
                a.thread.join(timeout=wait)

    def recover_interrupted(self) -> int:
        """Mark builds left pending/building by a stopped server as failed (interrupted)."""
        with self.sessions.begin() as s:
            stale = s.scalars(select(Build).where(Build.status.in_(("pending", "building")))).all()
            for build in stale:
                build.status = "failed"
                build.error = "interrupted: the server stopped during this build"
                build.finished_at = utcnow()
                build.slug_path = None
                path = self.log_path(build.id)
                if path.parent.exists():
                    with path.open("ab") as fh:
                        fh.write(
                            error_lines("Build interrupted: the server stopped during this build.")
                        )
            count = len(stale)
            interrupted = {b.id for b in stale}
        if interrupted and self.remote is not None:
            try:
                stopped = self.remote.stop_interrupted(interrupted)
            except YurtError as exc:  # the cluster is unreachable: they fail on their own
                log.warning("could not stop interrupted build jobs: %s", exc.message)
            else:
                if stopped:
                    log.warning("stopped %d build job(s) of interrupted builds", stopped)
        shutil.rmtree(self.settings.data_dir / "tmp" / "builds", ignore_errors=True)
        for partial in self.settings.slugs_dir.glob("*/*.partial"):
            partial.unlink(missing_ok=True)
        return count
