"""The local runtime: releases run as supervisord programs, Caddy routes to healthy ones.

A deploy starts the new release's web instances on fresh ports beside the old ones, waits
until each is healthy, switches the route in one change of the router's DNS table (Caddy's
config stays as it is), then retires the old instances (SIGTERM, grace, SIGKILL). If the new
instances never get healthy nothing switches.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import json
import logging
import os
import re
import shutil
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import delete, select, update
from sqlalchemy.orm import sessionmaker

from controller import proc, tmpfs
from controller.builds.appjson import web_check
from controller.db.models import App, Domain, Instance
from controller.errors import InvalidParams
from controller.runtime.base import DeployFailed, DeploySpec, Emit, ProcessView
from controller.runtime.local import router_dns, users
from controller.runtime.local.caddy import SRV_GRACE, SRV_REFRESH, AppRoute, Caddy
from controller.runtime.local.supervisor import (
    ProcessManagerError,
    Program,
    ProgramInfo,
    Supervisor,
)
from controller.settings import Settings

log = logging.getLogger(__name__)

# Runs a Procfile command the Heroku way: cwd and HOME = the release dir, .profile.d/*.sh
# and .profile sourced first, then the command through a shell.
LAUNCHER = (
    'cd "$HOME" || exit 1; '
    'for f in .profile.d/*.sh; do [ -f "$f" ] && . "$f"; done; '
    "[ -f .profile ] && . ./.profile; "
    'exec bash -c "$YURT_COMMAND"'
)
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"

# Crash handling. supervisord restarts an instance that exits at once; one that exits within
# STARTSECS of starting is retried STARTRETRIES times (1, 2, 3 s apart) and then left FATAL.
# The watchdog then restarts FATAL instances itself, waiting CRASH_BACKOFF_BASE * 2^n seconds
# (at most CRASH_BACKOFF_MAX) before the n-th restart, and shows them as "crashed" meanwhile.
# An instance that stays up CRASH_RESET seconds starts again from the shortest wait.
STARTSECS = 10
STARTRETRIES = 3
CRASH_BACKOFF_BASE = 5.0
CRASH_BACKOFF_MAX = 300.0
CRASH_RESET = 60.0
# supervisord states in which an instance cannot answer: it is taken out of its app's routes.
DOWN_STATES = frozenset({"BACKOFF", "EXITED", "FATAL", "STOPPED", "STOPPING", "UNKNOWN"})


@dataclass
class _Backoff:
    attempts: int = 0
    next_at: float = 0.0


@dataclass(frozen=True)
class HealthCheck:
    path: str | None = None
    timeout: float = 5
    attempts: int = 5
    wait: float = 1


class LocalRuntime:
    def __init__(self, settings: Settings, sessions: sessionmaker[Any]) -> None:
        self.settings = settings
        self.sessions = sessions
        state = settings.data_dir / "runtime"
        self.apps_dir = settings.data_dir / "apps"
        self.logs_dir = settings.data_dir / "logs"
        self.supervisor = Supervisor(
            private_run_dir(settings.data_dir),
            self.logs_dir / "supervisor",
            env_dir=tmpfs.private_dir(settings.data_dir, "env", 0o711),
        )
        self.caddy = Caddy(
            state / "caddy",
            settings.router_admin_listen,
            settings.router_listen,
            self.logs_dir / "router",
            dns_listen=settings.router_dns_listen,
        )
        self.dns_table = state / "router-dns.json"  # what the router's DNS responder answers
        self._dns_written: dict[str, list[int]] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._started = False  # the unit tier opens a platform without starting a runtime
        self._applied: list[AppRoute] | None = None  # what Caddy was last given
        self._backoff: dict[str, _Backoff] = {}
        self._kept: dict[str, set[int]] = {}  # per app: the release versions prune() keeps

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.apps_dir.mkdir(parents=True, exist_ok=True)
        self.apps_dir.chmod(0o711)
        if users.running_as_root():
            check_traversable(self.apps_dir)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.chmod(0o700)
        self.supervisor.start()
        self._start_router_dns(wait=True)
        self.caddy.start()
        self._started = True
        self.apply_routes()
        # Instances a previous controller was retiring when it stopped: finish the job.
        self._remove([i for i in self._all_instances() if i.state == "retiring"])
        self._stop = threading.Event()
        threading.Thread(target=self._watchdog, name="runtime-watchdog", daemon=True).start()

    def _watchdog(self, every: float = 2.0) -> None:
        """Bring back supervisord or Caddy if they die (kill -9), with all processes and routes;
        restart crashed instances with backoff and keep them out of routes while down."""
        while not self._stop.wait(every):
            try:
                if not self.supervisor.alive():
                    log.warning("supervisord is gone; restarting it and its programs")
                    self.supervisor.start()
                self._start_router_dns(wait=False)
                if not self.caddy.alive():
                    log.warning("Caddy is gone; restarting it and restoring routes")
                    self.caddy.start()
                    self.apply_routes(force=True)
                self.heal()
            except Exception:
                log.exception("watchdog could not restore the runtime")

    def _router_dns_program(self) -> Program:
        import controller

        listen = self.settings.router_dns_listen
        return Program(
            name=router_dns.PROGRAM,
            command=(
                sys.executable,
                "-m",
                "controller.runtime.local.router_dns",
                "--listen",
                listen,
                "--table",
                str(self.dns_table.absolute()),
            ),
            cwd=self.dns_table.parent.absolute(),
            environment={"PYTHONPATH": str(Path(controller.__file__).resolve().parent.parent)},
            log_file=self.logs_dir / "router" / "dns.log",
            stopwaitsecs=5,
        )

    def _start_router_dns(self, wait: bool) -> None:
        """Run the responder Caddy asks for upstreams (a supervisord program, so it outlives
        this controller as Caddy and the apps do); start it again if it stopped. ``wait``: at
        the controller's start, (re)configure it and wait until it answers."""
        if not self.dns_table.exists():
            router_dns.write_table(self.dns_table, {})
        info = None if wait else self.supervisor.info(router_dns.PROGRAM)
        if info is None:
            self.supervisor.add(self._router_dns_program())  # no-op if running, same conf
        elif info.state in DOWN_STATES:
            self.supervisor.start_program(router_dns.PROGRAM)
        if wait and not router_dns.wait_ready(self.settings.router_dns_listen):
            log.warning(
                "the router's DNS responder does not answer on udp %s; see %s",
                self.settings.router_dns_listen,
                self.logs_dir / "router" / "dns.log",
            )

    def heal(self) -> None:
        """One pass of crash handling: restart FATAL instances whose backoff has passed, then
        route only to web instances that can answer."""
        infos = {i.name: i for i in self.supervisor.all()}
        now = time.monotonic()
        for inst in self._all_instances():
            info = infos.get(inst.program)
            if inst.state != "up" or info is None:
                continue
            backoff = self._backoff.get(inst.program)
            if info.state == "FATAL":
                backoff = self._backoff.setdefault(inst.program, _Backoff())
                if backoff.next_at == 0.0:
                    wait = min(CRASH_BACKOFF_BASE * 2**backoff.attempts, CRASH_BACKOFF_MAX)
                    backoff.next_at = now + wait
                    self._note(
                        inst,
                        f"crashed (exit status {info.exit_status}); restarting in {wait:.0f} s",
                    )
                elif now >= backoff.next_at:
                    backoff.attempts += 1
                    backoff.next_at = 0.0
                    self.supervisor.start_program(inst.program)
            elif (
                backoff is not None
                and info.state == "RUNNING"
                and info.started_at is not None
                and time.time() - info.started_at > CRASH_RESET
            ):
                del self._backoff[inst.program]
        self.apply_routes()

    def _note(self, inst: Instance, message: str) -> None:
        """Add a line from Yurt to an instance's log (as Heroku's router and dyno manager do).
        It goes to supervisord's log file of the instance (root's), stamped like the app's."""
        path = self._log_path(self._app_name(inst.app_id), inst.program)
        with contextlib.suppress(OSError), path.open("a") as fh:
            fh.write(f"{log_stamp()} yurt: {inst.process_type}.{inst.number} {message}\n")

    def _all_instances(self) -> list[Instance]:
        with self.sessions() as s:
            return list(s.scalars(select(Instance)).all())

    def shutdown(self, keep_apps: bool) -> None:
        self._stop.set()
        if keep_apps:
            return
        self.supervisor.shutdown()
        self.caddy.stop()

    def web_url(self, app: str) -> str:
        _host, _, port = self.settings.router_listen.rpartition(":")
        suffix = "" if port == "80" else f":{port}"
        return f"http://{app}.{self.settings.base_domain}{suffix}"

    # -- routing -------------------------------------------------------------------------

    def apply_routes(self, force: bool = False) -> None:
        """Make Caddy route every app's hosts to its web instances that are up and not down
        in supervisord (crashed, restarting). The instances go to the DNS responder's table,
        which Caddy reads within SRV_REFRESH; Caddy's config is only loaded when hosts or apps
        change, or an app gets its first or loses its last web instance."""
        if not self._started:
            return  # start() applies them
        with self.sessions() as s:
            apps = {a.id: a.name for a in s.scalars(select(App)).all()}
            ups = s.scalars(
                select(Instance).where(Instance.state == "up", Instance.process_type == "web")
            ).all()
            domains = s.scalars(select(Domain).order_by(Domain.hostname)).all()
        try:
            down = {i.name for i in self.supervisor.all() if i.state in DOWN_STATES}
        except ProcessManagerError:
            down = set()  # the watchdog restarts supervisord and comes back here
        upstreams: dict[str, list[str]] = {name: [] for name in apps.values()}
        hosts: dict[str, list[str]] = {
            name: [f"{name}.{self.settings.base_domain}"] for name in apps.values()
        }
        for inst in ups:
            if inst.app_id in apps and inst.port and inst.program not in down:
                upstreams[apps[inst.app_id]].append(f"127.0.0.1:{inst.port}")
        for domain in domains:
            if domain.app_id in apps:
                hosts[apps[domain.app_id]].append(domain.hostname)
        routes = [
            AppRoute(app=name, hosts=tuple(hosts[name]), upstreams=tuple(sorted(ups_)))
            for name, ups_ in sorted(upstreams.items())
        ]
        table = {r.app: [int(u.rpartition(":")[2]) for u in r.upstreams] for r in routes}
        shape = [AppRoute(r.app, r.hosts, ("srv",) if r.upstreams else ()) for r in routes]
        with self._lock:
            # The table first: a route that starts proxying must find its upstreams there.
            switched = table != self._dns_written
            if force or switched:
                router_dns.write_table(self.dns_table, table)
                self._dns_written = table
            if force or shape != self._applied:
                # First apply of this controller: Caddy may run this config already.
                self.caddy.apply(routes, if_changed=self._applied is None and not force)
                self._applied = shape
        if switched:
            # Caddy may answer from its cached lookup for SRV_REFRESH: return once it cannot,
            # so that a deploy or scale is in effect when the API says so.
            time.sleep(SRV_REFRESH + 0.05)

    # -- deploy --------------------------------------------------------------------------

    def deploy(self, spec: DeploySpec, emit: Emit) -> None:
        release_dir = self._unpack(spec)
        self._release_phase(spec, release_dir, emit)
        old = self._instances(spec.app_id)
        new_web = self._start_type(spec, release_dir, "web", spec.formation.get("web", 0), emit)
        try:
            self._await_healthy(spec, release_dir, new_web, emit)
        except DeployFailed:
            self._remove(new_web)
            raise
        self._mark(new_web, "up")
        self._mark([i for i in old if i.process_type == "web"], "retiring")
        self.apply_routes()
        emit(b"-----> Switched traffic to the new release\n")
        others = [t for t in spec.process_types if t not in ("web", "release")]
        for ptype in others:
            started = self._start_type(spec, release_dir, ptype, spec.formation.get(ptype, 0), emit)
            self._mark(started, "up")
        self._retire_later(old)

    def _unpack(self, spec: DeploySpec) -> Path:
        """The release dir, unpacked from the slug (and handed to the app's user) once.

        Its name carries the slug's build id, so a dir left by an older data dir or DB with
        the same version number is never mistaken for this release."""
        if spec.slug_path is None:
            raise DeployFailed(
                f"v{spec.version} has no slug: it was built for a cluster (nomad runtime)"
            )
        app_dir = self.apps_dir / spec.app
        release_dir = app_dir / "releases" / release_dir_name(spec.version, spec.slug_path)
        if release_dir.exists():
            self._check_owner(spec.app, app_dir, release_dir)
            return release_dir
        tmp = release_dir.with_name(release_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        proc.run(["tar", "-xzf", spec.slug_path, "-C", tmp])
        if users.running_as_root():
            uid, gid = self._owner(spec.app)
            # Slugs built as the app's user unpack (as root, owners kept) already owned by it;
            # walk the tree with chown only when some file is not (older or foreign slugs).
            not_theirs = ["(", "!", "-uid", str(uid), "-o", "!", "-gid", str(gid), ")"]
            foreign = proc.run(["find", tmp, *not_theirs, "-print", "-quit"])
            if foreign.stdout.strip():
                proc.run(["chown", "-R", f"{uid}:{gid}", tmp])
            for d in (app_dir, app_dir / "releases"):
                shutil.chown(d, uid, gid)
                d.chmod(0o700)
        tmp.rename(release_dir)
        return release_dir

    def _check_owner(self, app: str, app_dir: Path, release_dir: Path) -> None:
        """Hand an existing release dir to the app's user again if that user was re-created
        with another uid (apps:destroy and create, or another Yurt on the same machine)."""
        if not users.running_as_root():
            return
        uid, gid = self._owner(app)
        if release_dir.stat().st_uid != uid:
            proc.run(["chown", "-R", f"{uid}:{gid}", release_dir])
        for d in (app_dir, app_dir / "releases"):
            if d.stat().st_uid != uid:
                shutil.chown(d, uid, gid)

    def _log_path(self, app: str, program: str) -> Path:
        """supervisord's log file of a program: what escapes the stamper, Yurt's own notes,
        and all the output of programs started before output was stamped."""
        return self.logs_dir / app / f"{program}.log"

    def _stamped_log_path(self, app: str, program: str) -> Path:
        """The stamper's file: the program's output, each line time-stamped. In the app's dir
        because the stamper runs as the app's user (see supervisor.py)."""
        return self.apps_dir / app / "logs" / f"{program}.log"

    def _log_files(self, app: str, inst: Instance) -> list[_LogFile]:
        label = f"{inst.process_type}.{inst.number}"
        return [
            _LogFile(label, self._log_path(app, inst.program)),
            _LogFile(label, self._stamped_log_path(app, inst.program)),
        ]

    def _owner(self, app: str) -> tuple[int, int]:
        return users.ensure_user(app)

    def _user(self, app: str) -> str | None:
        return users.user_for_app(app) if users.running_as_root() else None

    def _env(
        self, spec: DeploySpec, release_dir: Path, ptype: str, number: int, port: int | None
    ) -> dict[str, str]:
        env = {
            **spec.env,
            "HOME": str(release_dir),
            "PATH": BASE_PATH,
            "LANG": "C.UTF-8",
            "DYNO": f"{ptype}.{number}",
            "YURT_APP": spec.app,
            "YURT_RELEASE": f"v{spec.version}",
            "YURT_COMMAND": spec.process_types[ptype],
        }
        if port is not None:
            env["PORT"] = str(port)
        return env

    def _release_phase(self, spec: DeploySpec, release_dir: Path, emit: Emit) -> None:
        command = spec.process_types.get("release")
        if not command:
            return
        emit(f"-----> Running release command: {command}\n".encode())
        env = self._env(spec, release_dir, "release", 1, None)
        uid, gid = self._owner(spec.app)
        preexec = users.drop_privileges(uid, gid) if users.running_as_root() else None
        status = proc.stream(
            ["bash", "-c", LAUNCHER],
            lambda b: emit(b),
            cwd=release_dir,
            env=env,
            preexec_fn=preexec,
        )
        if status != 0:
            raise DeployFailed(
                f"The release command exited with status {status}; nothing was switched."
            )

    def _start_type(
        self, spec: DeploySpec, release_dir: Path, ptype: str, count: int, emit: Emit
    ) -> list[Instance]:
        started = []
        for number in range(1, count + 1):
            port = _free_port() if ptype == "web" else None
            inst = self._start_instance(spec, release_dir, ptype, number, port)
            started.append(inst)
        if started:
            emit(f"-----> Starting {count} {ptype} process(es) of v{spec.version}\n".encode())
        return started

    def _start_instance(
        self,
        spec: DeploySpec,
        release_dir: Path,
        ptype: str,
        number: int,
        port: int | None,
        suffix: str = "",
    ) -> Instance:
        name = f"{spec.app}-v{spec.version}-{ptype.lower().replace('_', '-')}-{number}{suffix}"
        log_file = self._log_path(spec.app, name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        program = Program(
            name=name,
            command=("bash", "-c", LAUNCHER),
            cwd=release_dir,
            environment=self._env(spec, release_dir, ptype, number, port),
            user=self._user(spec.app),
            log_file=log_file,
            stamped_log=self._stamped_log_path(spec.app, name),
            startsecs=STARTSECS,
            startretries=STARTRETRIES,
            stopwaitsecs=int(self.settings.kill_timeout),
        )
        inst = Instance(
            program=name,
            app_id=spec.app_id,
            release_version=spec.version,
            process_type=ptype,
            number=number,
            port=port,
            state="starting",
        )
        with self.sessions.begin() as s:
            s.merge(inst)
        self.supervisor.add(program)
        return inst

    def _await_healthy(
        self, spec: DeploySpec, release_dir: Path, instances: list[Instance], emit: Emit
    ) -> None:
        if not instances:
            return
        check = read_healthcheck(release_dir)
        emit(f"-----> Waiting for {len(instances)} web process(es) to become healthy\n".encode())
        deadline = time.monotonic() + self.settings.boot_timeout
        for inst in instances:
            self._await_port(inst, deadline)
            if check.path:
                self._await_http(inst, check)
        emit(b"       healthy\n")

    def _await_port(self, inst: Instance, deadline: float) -> None:
        assert inst.port is not None
        while time.monotonic() < deadline:
            info = self.supervisor.info(inst.program)
            if info is not None and info.state in ("FATAL", "EXITED", "BACKOFF"):
                raise DeployFailed(self._crash_reason(inst, info))
            try:
                with socket.create_connection(("127.0.0.1", inst.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise DeployFailed(
            f"{inst.process_type}.{inst.number} did not accept connections on its PORT within "
            f"{self.settings.boot_timeout:.0f} s.\n{self._log_tail(inst)}"
        )

    def _await_http(self, inst: Instance, check: HealthCheck) -> None:
        url = f"http://127.0.0.1:{inst.port}{check.path}"
        last = ""
        for _ in range(max(check.attempts, 1)):
            try:
                resp = requests.get(url, timeout=check.timeout, allow_redirects=False)
                if 200 <= resp.status_code < 400:
                    return
                last = f"answered {resp.status_code}"
            except requests.RequestException as exc:
                last = f"failed: {type(exc).__name__}"
            time.sleep(check.wait)
        raise DeployFailed(
            f"Health check GET {check.path} on {inst.process_type}.{inst.number} {last} "
            f"after {check.attempts} attempt(s).\n{self._log_tail(inst)}"
        )

    def _crash_reason(self, inst: Instance, info: ProgramInfo) -> str:
        status = f" with status {info.exit_status}" if info.exit_status is not None else ""
        return f"{inst.process_type}.{inst.number} exited{status} before it was healthy.\n{self._log_tail(inst)}"

    def _log_tail(self, inst: Instance, lines: int = 10) -> str:
        files = self._log_files(self._app_name(inst.app_id), inst)
        _settle([f.path for f in files])  # the stamper may still be writing its last lines
        text = [line for _key, _label, line in _history(files, lines)]
        if not text:
            return "(no output)"
        return "Last output:\n" + "\n".join(f"  {line}" for line in text)

    def _app_name(self, app_id: str) -> str:
        with self.sessions() as s:
            app = s.get(App, app_id)
            return app.name if app else app_id

    # -- instance bookkeeping ------------------------------------------------------------

    def _instances(self, app_id: str) -> list[Instance]:
        with self.sessions() as s:
            return list(s.scalars(select(Instance).where(Instance.app_id == app_id)).all())

    def _mark(self, instances: list[Instance], state: str) -> None:
        if not instances:
            return
        with self.sessions.begin() as s:
            s.execute(
                update(Instance)
                .where(Instance.program.in_([i.program for i in instances]))
                .values(state=state)
            )

    def _remove(self, instances: list[Instance]) -> None:
        for inst in instances:
            self._backoff.pop(inst.program, None)
            try:
                self.supervisor.remove(inst.program)
            except Exception:
                log.exception("could not stop %s", inst.program)
        with self.sessions.begin() as s:
            s.execute(delete(Instance).where(Instance.program.in_([i.program for i in instances])))

    def _retire_later(self, instances: list[Instance]) -> None:
        if instances:
            threading.Thread(target=self._drain_and_remove, args=(instances,), daemon=True).start()

    def _drain_and_remove(self, instances: list[Instance]) -> None:
        """Stop instances the router no longer sends to, once they have taken what it already
        sent them. A web server that gets SIGTERM closes its listening socket and the kernel
        resets every connection still in its accept queue, which Caddy answers with a 502; and
        Caddy's previous config may still be dialing them just after a swap."""
        ports = {i.port for i in instances if i.process_type == "web" and i.port}
        if ports:
            _wait_drained(ports, RETIRE_MIN_WAIT, self.settings.kill_timeout)
        self._remove(instances)
        # Their release dirs may be pruned now (prune() skips the dirs of running instances).
        for app in {self._app_name(i.app_id) for i in instances}:
            if app in self._kept:
                self.prune(app, self._kept[app])

    def is_serving(self, app_id: str, version: int) -> bool:
        return any(
            i.release_version == version and i.state == "up" and i.process_type == "web"
            for i in self._instances(app_id)
        )

    def discard(self, app_id: str, version: int) -> None:
        """Stop a release's instances that never got traffic."""
        self._remove([i for i in self._instances(app_id) if i.release_version == version])

    # -- operate -------------------------------------------------------------------------

    def scale(self, spec: DeploySpec) -> None:
        """Start or retire instances of the current release to match the formation, with
        one routing change for all types (each Caddy reload is a chance to drop a request)."""
        release_dir = self._unpack(spec)
        current = [i for i in self._instances(spec.app_id) if i.state != "retiring"]
        started: list[Instance] = []
        extra: list[Instance] = []
        for ptype in spec.process_types:
            if ptype == "release":
                continue
            have = [i for i in current if i.process_type == ptype]
            want = spec.formation.get(ptype, 0)
            extra += [i for i in have if i.number > want]
            numbers = {i.number for i in have}
            for number in range(1, want + 1):
                if number not in numbers:
                    port = _free_port() if ptype == "web" else None
                    started.append(self._start_instance(spec, release_dir, ptype, number, port))
        webs = [i for i in started if i.process_type == "web"]
        try:
            self._await_healthy(spec, release_dir, webs, lambda _b: None)
        except DeployFailed:
            self._remove(started)
            raise
        self._mark(started, "up")
        self._mark(extra, "retiring")
        self.apply_routes()
        self._retire_later(extra)

    def restart(self, spec: DeploySpec, process_type: str | None) -> None:
        """Rolling restart: start replacements, switch, retire the old ones."""
        old = [
            i
            for i in self._instances(spec.app_id)
            if process_type in (None, i.process_type) and i.state == "up"
        ]
        release_dir = self._unpack(spec)
        fresh = []
        for inst in old:
            port = _free_port() if inst.process_type == "web" else None
            suffix = f"-r{int(time.time() * 1000) % 100000}"
            fresh.append(
                self._start_instance(
                    spec, release_dir, inst.process_type, inst.number, port, suffix
                )
            )
        webs = [i for i in fresh if i.process_type == "web"]
        try:
            self._await_healthy(spec, release_dir, webs, lambda b: None)
        except DeployFailed:
            self._remove(fresh)
            raise
        self._mark(old, "retiring")
        self._mark(fresh, "up")
        self.apply_routes()
        self._retire_later(old)

    def stop_app(self, app_id: str) -> None:
        """ps:stop: take the app out of the router, then stop all its instances."""
        instances = self._instances(app_id)
        self._mark(instances, "retiring")
        self.apply_routes()
        self._drain_and_remove(instances)

    def missing(self, app_id: str) -> bool:
        """Whether the app's processes are gone from supervisord (after a reboot wiped the
        tmpfs run dir, or someone removed them): instances recorded but not configured, or
        none recorded at all."""
        configured = set(self.supervisor.names())
        instances = [i for i in self._instances(app_id) if i.state != "retiring"]
        return not instances or any(i.program not in configured for i in instances)

    def restore(self, spec: DeploySpec) -> None:
        """Start the app's current release again from the DB (formation, release dir)."""
        self._remove(
            [
                i
                for i in self._instances(spec.app_id)
                if i.program not in set(self.supervisor.names())
            ]
        )
        self.scale(spec)

    def preview(self, spec: DeploySpec) -> str:
        raise InvalidParams(
            "Previews show how a release would change the app's Nomad job; this server runs "
            "apps on this machine (yurt server --runtime local)."
        )

    def prune(self, app: str, keep_versions: set[int]) -> None:
        """Remove unpacked release dirs of versions not in ``keep_versions`` and not running
        (those go when their instances are retired)."""
        self._kept[app] = set(keep_versions)
        running = {i.release_version for i in self._instances_of(app)}
        releases = self.apps_dir / app / "releases"
        newest = max(keep_versions, default=0)
        for path in releases.glob("v*"):
            if path.name.endswith(".partial"):
                continue  # being unpacked right now
            version = path.name.removeprefix("v").partition("-")[0]
            if not version.isdigit() or int(version) > newest:
                continue  # a release newer than the ones counted (deploying now)
            if int(version) not in keep_versions | running:
                shutil.rmtree(path, ignore_errors=True)

    def _instances_of(self, app: str) -> list[Instance]:
        with self.sessions() as s:
            app_id = s.scalar(select(App.id).where(App.name == app))
        return self._instances(app_id) if app_id else []

    def processes(self, app_id: str) -> list[ProcessView]:
        views = []
        for inst in sorted(self._instances(app_id), key=lambda i: (i.process_type, i.number)):
            info = self.supervisor.info(inst.program)
            views.append(_view(inst, info))
        return views

    def logs(
        self,
        app: str,
        app_id: str,
        lines: int,
        follow: bool,
        ps: str | None,
        source: str = "app",
    ) -> Iterator[str]:
        """The last ``lines`` of the app's output, all instances merged in time order
        (``source="app"``), or of the router's access lines for the app (``"router"``); then,
        with ``follow``, new lines as they come."""
        if source == "router":
            router = {"router": self.caddy.access_log(app)}
            yield from _tail_files(router, lines, follow, _router_line)
            return
        instances = sorted(self._instances(app_id), key=lambda i: (i.process_type, i.number))
        files = [
            log_file
            for i in instances
            if ps in (None, i.process_type, f"{i.process_type}.{i.number}")
            for log_file in self._log_files(app, i)
        ]
        for _key, label, line in _history(files, lines):
            yield _plain_line(label, line)
        while follow:
            time.sleep(0.25)
            for _key, label, line in _new_lines(files):
                yield _plain_line(label, line)

    def destroy(self, app: str, app_id: str) -> None:
        instances = self._instances(app_id)
        if self._started:
            self._remove(instances)
            self.apply_routes()
        self._kept.pop(app, None)
        shutil.rmtree(self.apps_dir / app, ignore_errors=True)
        shutil.rmtree(self.logs_dir / app, ignore_errors=True)
        if users.running_as_root():
            users.remove_user(app)


def _plain_line(label: str, line: str) -> str:
    return f"{label} | {line}\n"


def _router_line(label: str, line: str) -> str:
    """A Caddy JSON access line as ``router | TIME METHOD HOST/URI STATUS DURATION``."""
    try:
        entry = json.loads(line)
        req = entry["request"]
        when = datetime.fromtimestamp(float(entry["ts"]), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        text = (
            f"{when} {req['method']} {req['host']}{req['uri']} {entry['status']} "
            f"{float(entry['duration']) * 1000:.1f}ms from {req.get('remote_ip', '?')}"
        )
    except (ValueError, KeyError, TypeError):
        text = line
    return f"{label} | {text}\n"


def _tail_files(
    files: dict[str, Path], lines: int, follow: bool, fmt: Callable[[str, str], str]
) -> Iterator[str]:
    offsets: dict[str, int] = {}
    for label, path in sorted(files.items()):
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        for line in data.decode(errors="replace").splitlines()[-lines:] if lines else []:
            yield fmt(label, line)
        offsets[label] = len(data)
    while follow:
        time.sleep(0.25)
        for label, path in files.items():
            try:
                with path.open("rb") as fh:
                    if os.fstat(fh.fileno()).st_size < offsets.get(label, 0):
                        offsets[label] = 0  # rotated
                    fh.seek(offsets.get(label, 0))
                    data = fh.read()
            except OSError:
                continue
            data = data[: data.rfind(b"\n") + 1]  # whole lines only
            if data:
                offsets[label] = offsets.get(label, 0) + len(data)
                for line in data.decode(errors="replace").splitlines():
                    yield fmt(label, line)


# -- app logs: stamped lines, merged by time ---------------------------------------------------

# The stamper's prefix (supervisor.STAMPER): RFC 3339, UTC, milliseconds, then one space.
STAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")
STAMP_LEN = 25
LOG_BACKUPS_READ = 3  # rotated files (NAME.log.1 ...) read when the current one is short
READ_BLOCK = 64 * 1024
# Key of a line without a stamp at the start of a file (output from before stamping, or what
# escaped the stamper): older than any stamped line. Later unstamped lines take the key of the
# line before them, so each file keeps its order.
OLDEST = ""

Entry = tuple[str, str, str]  # (stamp, label, line without the stamp)


def log_stamp(when: float | None = None) -> str:
    """``when`` (default: now) as the stamper writes it: ``2024-05-01T12:00:00.123Z``."""
    moment = datetime.fromtimestamp(time.time() if when is None else when, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def split_stamp(line: str) -> tuple[str | None, str]:
    """``(stamp, rest)`` of a stamped line, ``(None, line)`` of another."""
    if len(line) >= STAMP_LEN and STAMP_RE.match(line):
        return line[: STAMP_LEN - 1], line[STAMP_LEN:]
    return None, line


@dataclass
class _LogFile:
    """One log file of an instance, and how far :func:`_new_lines` has read it."""

    label: str
    path: Path
    inode: int = 0
    offset: int = 0


def _open_log(path: Path) -> int:
    """A read-only fd on ``path`` if it is a plain file. Stamped logs are in a dir the app's
    user owns, and the controller may read as root: no symlinks (in the last two components),
    FIFOs, devices or hard links to other files."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(path.parent, flags | os.O_DIRECTORY)
    try:
        fd = os.open(path.name, flags | os.O_NONBLOCK, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise OSError(errno.EINVAL, "not a plain log file", str(path))
    return fd


def _read_last(path: Path, count: int) -> tuple[list[str], int, int]:
    """The last ``count`` lines of ``path`` (read backwards in blocks), its inode and size."""
    fd = _open_log(path)
    try:
        st = os.fstat(fd)
        end = pos = st.st_size
        data = b""
        while pos > 0 and data.count(b"\n") <= count:
            step = min(READ_BLOCK, pos)
            pos -= step
            data = os.pread(fd, step, pos) + data
    finally:
        os.close(fd)
    lines = data.decode(errors="replace").splitlines()
    if pos > 0:
        lines = lines[1:]  # cut in the middle
    return lines[-count:] if count else [], st.st_ino, end


def _keyed(label: str, lines: Iterable[str], key: str = OLDEST) -> list[Entry]:
    out = []
    for line in lines:
        stamp, text = split_stamp(line)
        key = stamp or key
        out.append((key, label, text))
    return out


def _history(files: list[_LogFile], count: int) -> list[Entry]:
    """The last ``count`` lines of all ``files`` merged by stamp (ties in ``files`` order), each
    file read from its end (and its rotated files if it is short). Sets each file's position for
    :func:`_new_lines`."""
    streams = []
    for log_file in files:
        lines: list[str] = []
        try:
            lines, log_file.inode, log_file.offset = _read_last(log_file.path, count)
        except OSError:
            log_file.inode = log_file.offset = 0
        for n in range(1, LOG_BACKUPS_READ + 1):
            if len(lines) >= count:
                break
            with contextlib.suppress(OSError):
                older = _read_last(log_file.path.with_name(f"{log_file.path.name}.{n}"), count)
                lines = older[0][len(lines) - count :] + lines
        # A file's lines are in time order but for clock steps and a restarted program's
        # stamper still writing: sort (stable, and cheap on sorted data) to be sure.
        streams.append(sorted(_keyed(log_file.label, lines), key=lambda e: e[0]))
    merged = list(heapq.merge(*streams, key=lambda e: e[0]))
    return merged[-count:] if count else []


def _new_lines(files: list[_LogFile]) -> list[Entry]:
    """Whole lines added to ``files`` since the last call, merged by stamp. A file replaced by
    rotation is read to its end first (as ``NAME.1``)."""
    entries: list[Entry] = []
    for log_file in files:
        chunks = []
        try:
            fd = _open_log(log_file.path)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if log_file.inode and st.st_ino != log_file.inode:
                chunks.append(_rest_of_rotated(log_file))
                log_file.offset = 0
            elif st.st_size < log_file.offset:
                log_file.offset = 0  # truncated
            log_file.inode = st.st_ino
            data = os.pread(fd, max(st.st_size - log_file.offset, 0), log_file.offset)
        finally:
            os.close(fd)
        data = data[: data.rfind(b"\n") + 1]  # whole lines only
        log_file.offset += len(data)
        chunks.append(data)
        text = b"".join(chunks).decode(errors="replace").splitlines()
        entries += _keyed(log_file.label, text, key=log_stamp())
    return sorted(entries, key=lambda e: e[0])


def _rest_of_rotated(log_file: _LogFile) -> bytes:
    try:
        fd = _open_log(log_file.path.with_name(f"{log_file.path.name}.1"))
    except OSError:
        return b""
    try:
        st = os.fstat(fd)
        if st.st_ino != log_file.inode:
            return b""
        data = os.pread(fd, max(st.st_size - log_file.offset, 0), log_file.offset)
    finally:
        os.close(fd)
    return data if data.endswith(b"\n") or not data else data + b"\n"


def _settle(paths: list[Path], quiet: float = 0.15, limit: float = 1.0) -> None:
    """Wait (at most ``limit`` seconds) until ``paths`` stop growing for ``quiet`` seconds."""

    def sizes() -> list[int]:
        out = []
        for path in paths:
            try:
                out.append(path.stat().st_size)
            except OSError:
                out.append(-1)
        return out

    deadline = time.monotonic() + limit
    last = sizes()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = sizes()
        if now == last:
            return
        last = now


def _view(inst: Instance, info: ProgramInfo | None) -> ProcessView:
    state = inst.state
    if info is None:
        state = "stopped"
    elif info.state == "FATAL":
        state = "crashed"
    elif info.state in ("BACKOFF", "EXITED"):
        state = "crashed" if inst.state == "up" else state
    started = datetime.fromtimestamp(info.started_at, UTC) if info and info.started_at else None
    return ProcessView(
        type=inst.process_type,
        number=inst.number,
        state=state,
        release=inst.release_version,
        started_at=started,
        restarts=info.restarts if info else None,
        exit_status=info.exit_status if info else None,
        port=inst.port,
    )


def release_dir_name(version: int, slug_path: Path) -> str:
    """``v3-<build id>``: the version users see, and the slug it was unpacked from."""
    return f"v{version}-{slug_path.name.removesuffix('.tgz')}"


def read_healthcheck(release_dir: Path) -> HealthCheck:
    """The web check of the release's app.json, else a plain TCP check."""
    try:
        check = web_check((release_dir / "app.json").read_bytes())
    except OSError:
        check = None
    if check is None:
        return HealthCheck()
    return HealthCheck(
        path=check.path, timeout=check.timeout, attempts=check.attempts, wait=check.wait
    )


def check_traversable(path: Path) -> None:
    """App users must be able to pass through every parent of their release dirs."""
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & 0o001:
            raise RuntimeError(
                f"App users cannot reach {path}: {parent} is not traversable by others. "
                f"Use a data dir such as /var/lib/yurt, or run: chmod o+x {parent}"
            )


def private_run_dir(data_dir: Path) -> Path:
    """supervisord's state (socket, program confs) lives on tmpfs, not in the data dir: unix
    socket paths are limited to ~100 bytes, and its env files (``env-<key>`` beside it, see
    :class:`Supervisor`) hold config vars, which must never be written to the data dir."""
    return tmpfs.private_dir(data_dir, "supervisor")


# After a route switch, old web instances get at least this long before SIGTERM (Caddy reads
# the new upstreams within SRV_REFRESH, or SRV_GRACE after a failed lookup; requests already
# sent still finish), then until nothing waits on their port, at most kill_timeout.
RETIRE_MIN_WAIT = max(1.0, SRV_REFRESH + SRV_GRACE + 0.25)
RETIRE_QUIET_CHECKS = 3  # 0.1 s apart
TCP_ESTABLISHED, TCP_SYN_RECV, TCP_LISTEN = "01", "03", "0A"


def _port_busy(ports: set[int]) -> bool:
    """Whether a connection to one of ``ports`` is not taken by the app yet: queued on the
    listening socket (a LISTEN socket's rx_queue in /proc/net/tcp is its accept queue), in its
    handshake, or accepted with request bytes still unread."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) not in ports:
                continue
            state, rx_queue = fields[3], int(fields[4].split(":")[1], 16)
            if state == TCP_SYN_RECV or (state in (TCP_LISTEN, TCP_ESTABLISHED) and rx_queue):
                return True
    return False


def _wait_drained(ports: set[int], min_wait: float, max_wait: float) -> None:
    time.sleep(min_wait)
    deadline = time.monotonic() + max_wait
    quiet = 0
    while quiet < RETIRE_QUIET_CHECKS and time.monotonic() < deadline:
        quiet = 0 if _port_busy(ports) else quiet + 1
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
