"""Shared pieces of the benchmarks: a real ``yurt server`` in a temp data dir on free loopback
ports, git and CLI helpers, a keep-alive load generator that records every request, /proc
readings, and the JSON result files that ``report.py`` turns into BENCHMARKS.md.

Every benchmark runs inside ``with yurt_server(...) as srv:``; leaving the block (normally, on an
exception, SIGINT or SIGTERM) stops the server with ``--stop-apps`` semantics, kills whatever it
left behind (Caddy, supervisord, app processes), removes the per-app users it created as root
and the temp dir (kept with BENCH_KEEP=1).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import platform
import pwd
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BIN = ROOT / ".venv" / "bin"
YURT = str(BIN / "yurt")
HELLO = ROOT / "examples" / "hello-python"
TINY = ROOT / "tests" / "fixtures" / "apps" / "web"
HTTP_TIMEOUT = 10.0
STARTED = time.time()  # when this benchmark's process started (the report matches load samples)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raise_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """SIGTERM (make, timeout) unwinds like Ctrl-C, so every ``finally`` cleanup runs."""
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)


# --- the server --------------------------------------------------------------------------------


@dataclass
class Server:
    tmp: Path
    data_dir: Path
    home: Path
    url: str
    router_port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    apps: list[str] = field(default_factory=list)

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def host(self, app: str) -> str:
        return f"{app}.localhost"

    def cli(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [YURT, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"yurt {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done.stdout

    def git(self, *args: str, cwd: Path, timeout: float = 900) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done.stdout

    def create_app(self, name: str, source: Path) -> Path:
        """``apps:create`` + a git work tree holding ``source`` with a ``yurt`` remote."""
        self.cli("apps:create", name)
        self.apps.append(name)
        work = self.tmp / "work" / name
        shutil.copytree(source, work)
        self.git("init", "-q", "--initial-branch=main", cwd=work)
        self.git("add", "-A", cwd=work)
        self.git("commit", "-qm", "initial", cwd=work)
        self.git("remote", "add", "yurt", f"{self.url}/{name}.git", cwd=work)
        return work

    def push(self, work: Path, on_line: Callable[[float, str], None] | None = None) -> float:
        """``git push yurt main``; returns its duration. ``on_line(wall_time, line)`` sees each
        line of the push's output as it arrives (the build streams to stderr)."""
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["git", "push", "--progress", "yurt", "main"],
            cwd=work,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        lines = []
        try:
            for raw in iter(proc.stderr.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                lines.append(line)
                if on_line:
                    on_line(time.time(), line)
            status = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if status != 0:
            raise RuntimeError("git push failed:\n" + "\n".join(lines[-40:]))
        return time.perf_counter() - start

    def commit(self, work: Path, message: str, edit: Callable[[Path], None]) -> None:
        edit(work)
        self.git("commit", "-qam", message, cwd=work)

    def api(self, path: str) -> Any:
        """GET an API path (JSON) with the admin token."""
        port = int(self.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.env['YURT_TOKEN']}"})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
        return json.loads(body)

    def web_ports(self, app: str) -> list[int]:
        """Ports of the app's web instances that are up."""
        procs = self.api(f"/api/apps/{app}/processes")
        return [p["port"] for p in procs if p["type"] == "web" and p["state"] == "up"]

    def caddy_pid(self) -> int | None:
        return _read_pid(self.data_dir / "runtime" / "caddy" / "caddy.pid")

    def supervisord_pid(self) -> int | None:
        return _read_pid(supervisor_run_dir(self.data_dir) / "supervisord.pid")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def supervisor_run_dir(data_dir: Path) -> Path:
    """Where the controller keeps supervisord's state (see runtime.private_run_dir)."""
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    if os.geteuid() == 0:
        base = Path("/run/yurt")
    else:
        base = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/yurt-{os.geteuid()}")  # noqa: S108
    return base / f"supervisor-{key}"


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YURT_", "GIT_", "XDG_"))}
    env.update(
        HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@yurt.invalid",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@yurt.invalid",
        GIT_TERMINAL_PROMPT="0",
        LANG="C.UTF-8",
    )
    return env


def _wait_health(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"yurt server exited early:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(url + "/api/health", timeout=1)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"yurt server did not answer in 60 s:\n{log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def yurt_server(name: str) -> Iterator[Server]:
    """A ``yurt server --stop-apps`` with a fresh data dir, HOME and free ports."""
    install_signal_handlers()
    tmp = Path(tempfile.mkdtemp(prefix=f"yurt-bench-{name}-"))
    tmp.chmod(0o711)  # per-app users must pass through to their release dirs
    home, data_dir = tmp / "home", tmp / "data"
    home.mkdir()
    data_dir.mkdir()
    port, router_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = base_env(home)
    log_path = tmp / "server.log"
    argv = [YURT, "server", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}"]
    argv += ["--router-listen", f"127.0.0.1:{router_port}"]
    argv += ["--router-admin-listen", f"127.0.0.1:{free_port()}", "--stop-apps"]
    argv += ["--router-dns-listen", f"127.0.0.1:{free_port()}"]
    log(f"starting yurt server on {url}, router 127.0.0.1:{router_port}, data in {data_dir}")
    with log_path.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(tmp, data_dir, home, url, router_port, env, proc, log_path)
    try:
        _wait_health(proc, url, log_path)
        token = (data_dir / "admin-token").read_text().strip()
        srv.env = {**env, "YURT_URL": url, "YURT_TOKEN": token}
        yield srv
    finally:
        stop_server(srv)


def stop_server(srv: Server) -> None:
    log("stopping yurt server and everything it started")
    caddy, supervisord = srv.caddy_pid(), srv.supervisord_pid()
    if srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(90)
        except subprocess.TimeoutExpired:
            log("yurt server did not stop in 90 s; killing it")
            srv.proc.kill()
            srv.proc.wait()
    for pid in (caddy, supervisord):
        if pid is not None and _alive(pid):
            log(f"killing leftover pid {pid}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _remove_app_users(srv.apps)
    run_dir = supervisor_run_dir(srv.data_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(run_dir.with_name(run_dir.name.replace("supervisor-", "env-", 1)), True)
    if os.environ.get("BENCH_KEEP"):
        log(f"kept {srv.tmp} (BENCH_KEEP)")
    else:
        shutil.rmtree(srv.tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _remove_app_users(apps: Sequence[str]) -> None:
    """As root the server made one system user per app; remove the ones this run made."""
    if os.geteuid() != 0 or not apps:
        return
    from controller.runtime.local import users

    for app in apps:
        user = users.user_for_app(app)
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            continue
        for pid in _pids():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(["userdel", user], capture_output=True, check=False)


# --- HTTP ----------------------------------------------------------------------------------------


def http_get(url: str, host: str | None = None, timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
    """One GET on a new connection: (status, body)."""
    m = re.match(r"http://([^/:]+):(\d+)(/.*)?$", url)
    if not m:
        raise ValueError(url)
    conn = http.client.HTTPConnection(m[1], int(m[2]), timeout=timeout)
    try:
        conn.request("GET", m[3] or "/", headers={"Host": host} if host else {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def wait_for_body(
    port: int, host: str, needle: str, timeout: float = 120, interval: float = 0.02
) -> float:
    """Poll the router until the body contains ``needle``; returns the wall time it did."""
    deadline = time.monotonic() + timeout
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < deadline:
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            seen = time.time()
            if resp.will_close:
                conn.close()
                conn = None
            if resp.status == 200 and needle in body:
                return seen
        except (OSError, http.client.HTTPException):
            if conn:
                conn.close()
            conn = None
        time.sleep(interval)
    raise TimeoutError(f"{host} did not answer {needle!r} within {timeout:.0f} s")


# Lines of the push output whose arrival time splits push-to-live into phases.
MARKERS = {
    "build": "-----> Building",
    "venv": "-----> Creating a virtualenv",
    "pip": "-----> Installing requirements",
    "installed": "Successfully installed",
    "types": "-----> Discovering process types",
    "compress": "-----> Compressing",
    "release": "-----> Releasing",
    "starting": "-----> Starting",
    "healthy": "       healthy",
    "switch": "-----> Switched traffic",
    "live": " is live",
}


def timed_push(
    srv: Server, work: Path, app: str, needle: str, timeout: float = 600
) -> tuple[dict[str, float], list[str]]:
    """``git push`` while polling the router for ``needle``: seconds from push start to each
    marker line of the push output, to ``push_end`` and to ``live_s`` (the router answered
    ``needle``); and the push output."""
    marks: dict[str, float] = {}
    lines: list[str] = []
    errors: list[BaseException] = []

    def on_line(t: float, line: str) -> None:
        lines.append(line)
        for key, text in MARKERS.items():
            if text in line and key not in marks:
                marks[key] = t

    def push() -> None:
        try:
            srv.push(work, on_line)
            marks["push_end"] = time.time()
        except BaseException as exc:
            errors.append(exc)

    t0 = time.time()
    th = threading.Thread(target=push, daemon=True)
    th.start()
    try:
        seen = wait_for_body(srv.router_port, srv.host(app), needle, timeout=timeout)
    finally:
        th.join(timeout)
    if errors:
        raise errors[0]
    out = {k: round(v - t0, 3) for k, v in marks.items()}
    out["live_s"] = round(seen - t0, 3)
    return out, lines


# --- load generator --------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # wall-clock time the request was sent (time.time())
    latency: float  # seconds, send -> whole body read (or -> error)
    status: int  # 0 on error
    error: str  # "" or "ExceptionType: message"
    reused: bool  # sent on a kept-alive connection
    worker: int
    body: str = ""


class Load:
    """Open-loop paced GETs (``rate`` req/s over ``workers`` threads), each thread holding one
    keep-alive connection. Like urllib3 and Go's http.Transport, a kept-alive connection the
    server has closed meanwhile (readable before we send) is replaced before sending, and that
    is recorded in ``dropped`` (``check_dropped=False`` skips that check, like a naive client);
    a request that fails is recorded as failed and never retried."""

    def __init__(
        self,
        port: int,
        host: str,
        rate: float = 100,
        workers: int = 10,
        path: str = "/",
        check_dropped: bool = True,
    ) -> None:
        self.port, self.host, self.path = port, host, path
        self.check_dropped = check_dropped  # False: a naive client that reuses blindly
        self.rate, self.workers = rate, workers
        self.samples: list[Sample] = []
        self.dropped: list[float] = []  # wall times a kept-alive connection was found closed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        t0 = time.monotonic()
        for i in range(self.workers):
            start = t0 + i / self.rate
            th = threading.Thread(target=self._run, args=(i, start), daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(HTTP_TIMEOUT + 5)

    def _run(self, worker: int, next_at: float) -> None:
        interval = self.workers / self.rate
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at = max(next_at + interval, time.monotonic() - interval)
            if conn is not None and self.check_dropped and _dropped(conn):
                conn.close()
                conn = None
                with self._lock:
                    self.dropped.append(time.time())
            conn, sample = self._one(conn, worker)
            with self._lock:
                self.samples.append(sample)
        if conn:
            conn.close()

    def _one(
        self, conn: http.client.HTTPConnection | None, worker: int
    ) -> tuple[http.client.HTTPConnection | None, Sample]:
        reused = conn is not None
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        sent = time.time()
        t0 = time.perf_counter()
        try:
            conn.request("GET", self.path, headers={"Host": self.host})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            err = f"{type(exc).__name__}: {exc}"
            return None, Sample(sent, time.perf_counter() - t0, 0, err, reused, worker)
        sample = Sample(
            sent, time.perf_counter() - t0, resp.status, "", reused, worker, body.strip()[:60]
        )
        if resp.will_close:
            conn.close()
            return None, sample
        return conn, sample


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True if the idle connection is readable: the server closed it (EOF) or sent junk."""
    if conn.sock is None:
        return True
    try:
        return bool(select.select([conn.sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    ok = [s for s in samples if 200 <= s.status < 300]
    lat = [s.latency * 1000 for s in ok]
    span = (max(s.t for s in samples) - min(s.t for s in samples)) if samples else 0.0
    return {
        "requests": len(samples),
        "failed": sum(1 for s in samples if s.status == 0),
        "non_2xx": sum(1 for s in samples if s.status and not 200 <= s.status < 300),
        "duration_s": round(span, 2),
        "rate": round(len(samples) / span, 1) if span else 0.0,
        "p50_ms": round(percentile(lat, 50), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "max_ms": round(max(lat), 2) if lat else float("nan"),
    }


# --- /proc -----------------------------------------------------------------------------------------


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _status(pid: int) -> dict[str, str]:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_kib(pid: int) -> int:
    value = _status(pid).get("VmRSS", "0 kB")
    return int(value.split()[0])


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (by PPid)."""
    children: dict[int, list[int]] = {}
    for p in _pids():
        ppid = _status(p).get("PPid")
        if ppid:
            children.setdefault(int(ppid), []).append(p)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


# --- machine and results -------------------------------------------------------------------------


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": cpu,
        "nproc": nproc,
        "cpu_count": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "user": pwd.getpwuid(os.geteuid()).pw_name,
    }


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def tool_version(argv: Sequence[str]) -> str:
    with contextlib.suppress(OSError):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    return "?"


def save(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/NAME.json`` with the run's context."""
    RESULTS.mkdir(exist_ok=True)
    data = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "started": STARTED,
        "finished": time.time(),
        "commit": commit(),
        "load_after": loadavg(),
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    log(f"wrote {path.relative_to(ROOT)}")
    return path


def _jsonable(value: object) -> object:
    if isinstance(value, Sample):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))


def stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }
