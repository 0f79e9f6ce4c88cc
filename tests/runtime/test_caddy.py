"""The local runtime's router: the real caddy binary in front of tiny Python backends on loopback."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from controller.daemon import pid_running
from controller.runtime.local.caddy import (
    AppRoute,
    Caddy,
    RouterError,
    caddy_config,
)
from tests.conftest import free_port

# --- backends: each answers its own name ---------------------------------------------------------


class _NameHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real app servers do
    disable_nagle_algorithm = True  # headers and body go in two writes: avoid the 40 ms stall
    timeout = 1  # close idle keep-alive connections, so a stopped backend really goes away
    server: _NameServer

    def do_GET(self) -> None:
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _NameServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _NameHandler)
        self.name = name


@dataclass
class Backend:
    name: str
    server: _NameServer
    stopped: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        """Like an app on SIGTERM: stop accepting, finish what is in flight."""
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def backend() -> Iterator[Callable[[str], Backend]]:
    started: list[Backend] = []

    def start(name: str) -> Backend:
        b = Backend(name, _NameServer(name))
        threading.Thread(target=b.server.serve_forever, args=(0.05,), daemon=True).start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


# --- caddy ---------------------------------------------------------------------------------------


@dataclass
class Router:
    """Caddy objects over one state dir and one pair of ports, all stopped at the end."""

    root: Path
    admin_listen: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    router_listen: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    dns_listen: str | None = None
    made: list[Caddy] = field(default_factory=list)

    def caddy(self) -> Caddy:
        c = Caddy(
            self.root / "state",
            self.admin_listen,
            self.router_listen,
            self.root / "logs",
            dns_listen=self.dns_listen,
        )
        self.made.append(c)
        return c

    def get(
        self, host: str, session: requests.Session | None = None, timeout: float = 10
    ) -> requests.Response:
        url = f"http://{self.router_listen}/"
        return (session or requests).get(url, headers={"Host": host}, timeout=timeout)

    def cleanup(self) -> None:
        for c in self.made:
            with contextlib.suppress(RouterError):
                c.stop()
        pid_file = self.root / "state" / "caddy.pid"
        if pid_file.exists():  # belt and braces: never leave a caddy behind
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    r = Router(tmp_path)
    yield r
    r.cleanup()


@pytest.fixture
def caddy(router: Router) -> Caddy:
    c = router.caddy()
    assert c.start() is True
    return c


# --- routing -------------------------------------------------------------------------------------


def test_each_host_reaches_its_app(
    router: Router, caddy: Caddy, backend: Callable[[str], Backend]
) -> None:
    a, b = backend("A"), backend("B")
    caddy.apply(
        [
            AppRoute("a", ("a.localhost",), (a.address,)),
            AppRoute("b", ("b.localhost", "www.example.com"), (b.address,)),
        ]
    )

    assert router.get("a.localhost").text == "A"
    assert router.get("b.localhost").text == "B"
    assert router.get("WWW.Example.com").text == "B"
    assert router.get(f"a.localhost:{router.router_listen.rsplit(':', 1)[1]}").text == "A"


def test_round_robin_across_an_apps_upstreams(
    router: Router, caddy: Caddy, backend: Callable[[str], Backend]
) -> None:
    one, two = backend("one"), backend("two")
    caddy.apply([AppRoute("a", ("a.localhost",), (one.address, two.address))])

    answers = [router.get("a.localhost").text for _ in range(6)]

    assert sorted(answers) == ["one"] * 3 + ["two"] * 3
    assert answers[0] != answers[1]


def test_unknown_host_gets_a_404_page_naming_it(router: Router, caddy: Caddy) -> None:
    caddy.apply([AppRoute("a", ("a.localhost",), ())])

    resp = router.get("nobody.localhost")

    assert resp.status_code == 404
    assert "No app answers the host nobody.localhost" in resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")


def test_unknown_host_gets_404_before_any_apply(router: Router, caddy: Caddy) -> None:
    assert router.get("anything.localhost").status_code == 404


def test_app_without_web_processes_gets_503(router: Router, caddy: Caddy) -> None:
    caddy.apply([AppRoute("idle", ("idle.localhost",), ())])

    resp = router.get("idle.localhost")

    assert resp.status_code == 503
    assert "idle has no running web processes" in resp.text


def test_routes_reads_back_what_was_applied(caddy: Caddy) -> None:
    applied = [
        AppRoute("a", ("a.localhost", "a.example.com"), ("127.0.0.1:1", "127.0.0.1:2")),
        AppRoute("default", ("default.localhost",), ()),
    ]
    caddy.apply(applied)
    assert caddy.routes() == applied

    caddy.apply([])
    assert caddy.routes() == []


def test_removed_app_falls_to_the_404_page(
    router: Router, caddy: Caddy, backend: Callable[[str], Backend]
) -> None:
    a = backend("A")
    caddy.apply([AppRoute("a", ("a.localhost",), (a.address,))])
    caddy.apply([])

    assert router.get("a.localhost").status_code == 404


def test_access_log_gets_a_line_per_request(
    router: Router, caddy: Caddy, backend: Callable[[str], Backend]
) -> None:
    a, b = backend("A"), backend("B")
    caddy.apply(
        [
            AppRoute("a", ("a.localhost",), (a.address,)),
            AppRoute("b", ("b.localhost",), (b.address,)),
        ]
    )
    router.get("a.localhost")

    log = caddy.access_log("a")
    lines = _wait_for_lines(log)
    entry = json.loads(lines[-1])
    assert entry["request"]["host"] == "a.localhost"
    assert entry["status"] == 200
    assert log == router.root / "logs" / "a" / "router.log"
    assert not caddy.access_log("b").exists() or caddy.access_log("b").read_text() == ""
    assert "handled request" not in (router.root / "logs" / "caddy.log").read_text()


def _wait_for_lines(path: Path) -> list[str]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if path.exists() and (lines := path.read_text().splitlines()):
            return lines
        time.sleep(0.05)
    raise AssertionError(f"no access line in {path}")


# --- process lifecycle ---------------------------------------------------------------------------


def test_second_object_reattaches_instead_of_starting(router: Router, caddy: Caddy) -> None:
    routes = [AppRoute("a", ("a.localhost",), ("127.0.0.1:9",))]
    caddy.apply(routes)
    pid = (router.root / "state" / "caddy.pid").read_text()

    again = router.caddy()

    assert again.start() is False
    assert again.alive()
    assert again.routes() == routes
    assert (router.root / "state" / "caddy.pid").read_text() == pid


def test_start_after_sigkill_starts_a_new_caddy(router: Router, caddy: Caddy) -> None:
    pid = int((router.root / "state" / "caddy.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: not caddy.alive())

    again = router.caddy()

    assert again.start() is True
    assert again.alive()
    assert int((router.root / "state" / "caddy.pid").read_text()) != pid
    assert router.get("a.localhost").status_code == 404


def test_stale_pid_file_starts_fresh(router: Router) -> None:
    state = router.root / "state"
    state.mkdir(parents=True)
    (state / "caddy.pid").write_text(f"{os.getpid()}\n")  # alive, but not a caddy

    assert router.caddy().start() is True


def test_stop_ends_the_process(router: Router, caddy: Caddy) -> None:
    pid = int((router.root / "state" / "caddy.pid").read_text())

    caddy.stop()

    assert not pid_running(pid)
    assert not caddy.alive()
    assert not (router.root / "state" / "caddy.pid").exists()


def test_errors_say_what_caddy_said(router: Router, caddy: Caddy) -> None:
    bad = {"handler": "nope"}
    with pytest.raises(RouterError, match=r"\(500\).*unknown module: http\.handlers\.nope"):
        caddy.admin.request("PATCH", "/config/apps/http/servers/yurt/routes/0/handle/0", bad)
    assert router.get("x.localhost").status_code == 404  # the refused change left Caddy as it was
    caddy.stop()
    with pytest.raises(RouterError, match="cannot reach Caddy's admin API"):
        caddy.routes()


def _wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


# --- zero downtime -------------------------------------------------------------------------------


@dataclass
class Load:
    """GETs in a loop through the router on one keep-alive connection, as a browser sends them.

    Each config change makes Caddy swap its HTTP server: the old one closes its idle keep-alive
    connections and its listening socket (Caddy binds the new one with SO_REUSEPORT). A request
    sent at that instant meets a connection closed before any response byte. HTTP clients retry
    such an idempotent request once (RFC 9112 section 9.3.1; browsers, curl, Go's net/http and
    `hey` do); python-requests does not by default, so this client is given that one retry, and
    `dropped` counts how often it was needed.
    """

    router: Router
    host: str
    ok: int = 0
    dropped: int = 0
    failures: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    covered: bool = False  # the load lasted until the end of the switching

    def run(self, max_requests: int = 5000, max_seconds: float = 15) -> None:
        deadline = time.monotonic() + max_seconds
        with requests.Session() as session:
            retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods={"GET"})
            session.mount("http://", HTTPAdapter(max_retries=retry))
            while not self.done.is_set() and self.ok + len(self.failures) < max_requests:
                if time.monotonic() > deadline:
                    break
                self._one(session)

    def _one(self, session: requests.Session) -> None:
        try:
            resp = self.router.get(self.host, session, timeout=10)
        except requests.RequestException as exc:
            self.failures.append(repr(exc))
            return
        self.dropped += len(resp.raw.retries.history) if resp.raw.retries else 0
        if resp.status_code == 200:
            self.ok += 1
        else:
            self.failures.append(f"{resp.status_code} {resp.text[:80]}")

    def __enter__(self) -> Load:
        self.thread = threading.Thread(target=self.run)
        self.thread.start()
        _wait_until(lambda: self.ok > 10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.covered = self.thread.is_alive()
        self.done.set()
        self.thread.join()

    def report(self) -> str:
        return f"{self.ok} ok, {len(self.failures)} failed, {self.dropped} retried after a drop"


def test_switching_upstreams_under_load_fails_no_request(
    router: Router, caddy: Caddy, backend: Callable[[str], Backend]
) -> None:
    one, two = backend("one"), backend("two")
    caddy.apply([AppRoute("a", ("a.localhost",), (one.address,))])
    latencies = []

    with Load(router, "a.localhost") as load:
        for i in range(30):
            target = (two, one)[i % 2]
            started = time.perf_counter()
            caddy.apply([AppRoute("a", ("a.localhost",), (target.address,))])
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)

    median, worst = statistics.median(latencies) * 1000, max(latencies) * 1000
    print(f"\napply median {median:.1f} ms, max {worst:.1f} ms; {load.report()}")
    assert load.failures == []
    assert load.covered and load.ok > 100


def test_old_backend_stopped_right_after_the_switch_fails_no_request(
    router: Router, caddy: Caddy, backend: Callable[[str], Backend]
) -> None:
    current = backend("v0")
    caddy.apply([AppRoute("a", ("a.localhost",), (current.address,))])

    with Load(router, "a.localhost") as load:
        for i in range(1, 31):
            new = backend(f"v{i}")
            caddy.apply([AppRoute("a", ("a.localhost",), (new.address,))])
            current.stop()
            current = new
            time.sleep(0.02)

    print(f"\n{load.report()}")
    assert load.failures == []
    assert load.covered and load.ok > 100


def test_a_stopped_upstream_is_retried_on_another(
    router: Router, caddy: Caddy, backend: Callable[[str], Backend]
) -> None:
    up, gone = backend("up"), backend("gone")
    caddy.apply([AppRoute("a", ("a.localhost",), (up.address, gone.address))])
    gone.stop()  # crashed, its route not updated yet

    assert {router.get("a.localhost").text for _ in range(6)} == {"up"}


# --- config generation ---------------------------------------------------------------------------


def _config(routes: list[AppRoute], auto_https: bool = False) -> dict[str, object]:
    return caddy_config(
        routes,
        admin_listen="127.0.0.1:2019",
        router_listen=":443" if auto_https else "127.0.0.1:8080",
        logs_dir=Path("/logs"),
        data_dir=Path("/data"),
        auto_https=auto_https,
    )


def test_config_disables_automatic_https_by_default() -> None:
    server = _config([])["apps"]["http"]["servers"]["yurt"]  # type: ignore[index]
    assert server["automatic_https"] == {"disable": True}


def test_config_with_auto_https_lets_caddy_manage_public_hosts() -> None:
    config = _config([AppRoute("a", ("a.example.com", "a.localhost"), ("127.0.0.1:1",))], True)
    server = config["apps"]["http"]["servers"]["yurt"]  # type: ignore[index]
    assert server["automatic_https"] == {"skip": ["a.localhost"]}
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False  # type: ignore[index]


def test_config_rejects_a_host_claimed_by_two_apps() -> None:
    with pytest.raises(ValueError, match=r"(?i)x\.localhost belongs to both a and b"):
        _config([AppRoute("a", ("x.localhost",)), AppRoute("b", ("X.localhost",))])


# --- dynamic upstreams (the runtime's mode) ------------------------------------------------------


def test_dynamic_upstreams_follow_the_dns_table_without_a_config_load(
    tmp_path: Path, backend: Callable[[str], Backend]
) -> None:
    """What a deploy does: new upstream in the responder's table, old one stopped after
    RETIRE_MIN_WAIT. Clients that reuse a kept-alive connection blindly see no error, because
    Caddy's config (and so its HTTP server) never changes."""
    from controller.runtime.local.router_dns import write_table
    from controller.runtime.local.runtime import RETIRE_MIN_WAIT
    from tests.runtime.test_router_dns import responder_process

    def port(b: Backend) -> int:
        return int(b.server.server_address[1])

    table = tmp_path / "router-dns.json"
    current = backend("v0")
    write_table(table, {"a": [port(current)]})
    with responder_process(table) as dns_listen:
        router = Router(tmp_path, dns_listen=dns_listen)
        try:
            caddy = router.caddy()
            caddy.start()
            caddy.apply([AppRoute("a", ("a.localhost",), (current.address,))])
            assert router.get("a.localhost").text == "v0"
            config = caddy.admin.get("/config/")
            codes: list[int] = []
            failures: list[str] = []
            done = threading.Event()

            def naive() -> None:
                _host, _, router_port = router.router_listen.rpartition(":")
                conn = http.client.HTTPConnection("127.0.0.1", int(router_port), timeout=10)
                while not done.is_set():
                    try:
                        conn.request("GET", "/", headers={"Host": "a.localhost"})
                        resp = conn.getresponse()
                        resp.read()
                        codes.append(resp.status)
                    except (OSError, http.client.HTTPException) as exc:
                        failures.append(repr(exc))
                        conn.close()
                    time.sleep(0.005)
                conn.close()

            clients = [threading.Thread(target=naive) for _ in range(3)]
            for t in clients:
                t.start()
            try:
                for i in range(1, 6):
                    new = backend(f"v{i}")
                    write_table(table, {"a": [port(new)]})
                    time.sleep(RETIRE_MIN_WAIT)
                    current.stop()
                    current = new
            finally:
                done.set()
                for t in clients:
                    t.join()
            assert failures == []
            assert len(codes) > 100 and set(codes) == {200}
            assert router.get("a.localhost").text == "v5"
            assert caddy.admin.get("/config/") == config
        finally:
            router.cleanup()


def test_config_with_dns_takes_upstreams_from_srv_lookups() -> None:
    routes = [AppRoute("a", ("a.localhost",), ("127.0.0.1:5000",)), AppRoute("b", ("b.x",))]
    config = caddy_config(
        routes,
        admin_listen="127.0.0.1:2019",
        router_listen="127.0.0.1:8080",
        logs_dir=Path("/logs"),
        data_dir=Path("/data"),
        dns_listen="127.0.0.1:7118",
    )
    a, b, _catch_all = config["apps"]["http"]["servers"]["yurt"]["routes"]
    proxy = a["handle"][0]
    assert "upstreams" not in proxy  # the ports are only in the responder's table
    assert proxy["dynamic_upstreams"] == {
        "source": "srv",
        "name": "a.web.yurt.",
        "refresh": "250ms",
        "grace_period": "1000ms",
        "resolver": {"addresses": ["127.0.0.1:7118"]},
        "dial_timeout": "1s",
    }
    assert proxy["transport"]["resolver"] == {"addresses": ["127.0.0.1:7118"]}
    assert proxy["load_balancing"]["try_duration"] == "5s"
    assert b["handle"][0]["status_code"] == 503


def test_apply_if_changed_loads_nothing_when_caddy_runs_that_config(
    router: Router, caddy: Caddy
) -> None:
    routes = [AppRoute("a", ("a.localhost",), ("127.0.0.1:5000",))]
    assert caddy.apply(routes) is True
    again = router.caddy()  # a new controller re-attaching
    assert again.start() is False
    assert again.apply(routes, if_changed=True) is False
    other = [AppRoute("a", ("a.localhost", "a.example"), ("127.0.0.1:5000",))]
    assert again.apply(other, if_changed=True) is True
    assert again.routes() == other
