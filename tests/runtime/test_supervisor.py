"""The local runtime's process manager against a real supervisord (integration tier)."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.runtime.local import users
from controller.runtime.local.supervisor import (
    Program,
    ProgramInfo,
    Supervisor,
    command_line,
    render_env,
    render_program,
)
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

HTTP_SERVER = """
import http.server, os
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from " + os.environ["DYNO"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
print("listening on", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
"""

TRAPS_TERM = """
import signal, sys, time
def bye(signum, frame):
    print("got SIGTERM, finishing", flush=True)
    time.sleep(1)
    print("clean exit", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""

# Ignores SIGTERM, and so does the child it starts (ignored signals are inherited).
IGNORES_TERM = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
print("child", child.pid, flush=True)
time.sleep(1000)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return str(resp.read().decode())


def answers(port: int) -> str | None:
    try:
        return get(port)
    except OSError:
        return None


def in_state(sup: Supervisor, name: str, *states: str) -> Callable[[], ProgramInfo | None]:
    def check() -> ProgramInfo | None:
        info = sup.info(name)
        return info if info is not None and info.state in states else None

    return check


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "state", tmp_path / "logs"


@pytest.fixture
def sup(dirs: tuple[Path, Path]) -> Iterator[Supervisor]:
    # Env files must be reachable by app users, which pytest's 0700 tmp dirs are not.
    env_dir = Path(tempfile.mkdtemp(prefix="yurt-env-"))
    env_dir.chmod(0o711)
    supervisor = Supervisor(*dirs, env_dir=env_dir / "env")
    try:
        yield supervisor
    finally:
        supervisor.shutdown()
        shutil.rmtree(env_dir, ignore_errors=True)
        assert not supervisor.alive()


def python_program(sup: Supervisor, name: str, script: str, **kw: object) -> Program:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **kw.pop("env", {})}  # type: ignore[dict-item]
    defaults: dict[str, object] = {
        "name": name,
        "command": (PYTHON, "-u", "-c", script),
        "cwd": sup.state_dir.parent,
        "environment": env,
        "log_file": sup.logs_dir / "apps" / f"{name}.log",
    }
    return Program(**{**defaults, **kw})  # type: ignore[arg-type]


def web_program(sup: Supervisor, name: str, port: int, **kw: object) -> Program:
    return python_program(sup, name, HTTP_SERVER, env={"PORT": str(port), "DYNO": "web.1"}, **kw)


# -- config rendering (no supervisord) ----------------------------------------------------


def test_program_rejects_bad_names_and_unwritable_values(tmp_path: Path) -> None:
    base: dict[str, object] = {
        "name": "hello-v3-web-1",
        "command": ("true",),
        "cwd": tmp_path,
        "environment": {},
        "log_file": tmp_path / "x.log",
    }
    Program(**base)  # type: ignore[arg-type]
    bad: list[dict[str, object]] = [
        {"name": "hello.v3.web.1"},
        {"name": "Hello"},
        {"environment": {"A": "carriage\rreturn"}},
        {"environment": {"A": "nul\x00"}},
        {"environment": {"BAD-KEY": "x"}},
        {"command": ("echo", "a\x00b")},
        {"command": ("A=1",)},
        {"command": ()},
        {"cwd": Path("relative")},
        {"log_file": tmp_path / "100%.log"},
        {"user": "Root;rm"},
    ]
    for change in bad:
        with pytest.raises(ValueError):
            Program(**{**base, **change})  # type: ignore[arg-type]


def test_rendered_conf_has_the_stop_and_log_settings(tmp_path: Path) -> None:
    program = Program(
        name="web-1",
        command=("bash", "-c", "exec web"),
        cwd=tmp_path,
        environment={"PORT": "5000"},
        log_file=tmp_path / "web-1.log",
        user="yurt-hello",
        stopwaitsecs=7,
        group="hello",
    )
    text = render_program(program, "m", tmp_path / "web-1.env")
    for line in (
        "; generated by yurt for hello",
        "[program:web-1]",
        "stopwaitsecs=7",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={tmp_path / 'web-1.log'}",
        "user=yurt-hello",
    ):
        assert line in text.splitlines()
    words = shlex.split(command_line(program, "m", tmp_path / "web-1.env") % {})
    assert words[-4:] == [str(tmp_path / "web-1.env"), "bash", "-c", "exec web"]
    assert not any("PORT" in w for w in words)  # the environment is in the env file only
    assert render_env({"PORT": "5000", "B": "it's"}) == "export B='it'\"'\"'s'\nexport PORT=5000\n"


# -- a real supervisord ------------------------------------------------------------------


def test_start_reattaches_and_programs_outlive_the_starting_process(
    sup: Supervisor, dirs: tuple[Path, Path]
) -> None:
    port = free_port()
    starter = f"""
import sys
from pathlib import Path
from controller.runtime.local.supervisor import Supervisor
from tests.runtime.test_supervisor import web_program
sup = Supervisor(Path({str(dirs[0])!r}), Path({str(dirs[1])!r}))
assert sup.start() is True
sup.add(web_program(sup, "hello-web-1", {port}))
"""
    subprocess.run([PYTHON, "-c", starter], cwd=ROOT, check=True, timeout=60)
    assert sup.start() is False  # the starter process has exited; supervisord has not
    assert wait_for(lambda: answers(port), what="the web program") == "hello from web.1"
    again = Supervisor(*dirs)
    assert again.start() is False
    assert again.alive()
    assert again.names() == ["hello-web-1"]


def test_web_program_runs_logs_and_reports_state(sup: Supervisor) -> None:
    assert sup.start() is True
    port = free_port()
    sup.add(web_program(sup, "hello-web-1", port))
    info = wait_for(in_state(sup, "hello-web-1", "RUNNING"), what="RUNNING")
    assert isinstance(info, ProgramInfo)
    assert info.pid > 0 and is_running(info.pid)
    assert info.started_at is not None and abs(info.started_at - time.time()) < 30
    assert info.exit_status is None and info.restarts == 0
    assert wait_for(lambda: answers(port)) == "hello from web.1"
    sup.add(web_program(sup, "hello-web-1", port))  # identical: nothing restarts
    assert sup.info("hello-web-1").pid == info.pid  # type: ignore[union-attr]
    assert [i.name for i in sup.all()] == ["hello-web-1"]

    first, offset = sup.read_log("hello-web-1", 0, 65536)
    assert f"listening on {port}" in first
    assert offset == len(first.encode())
    get(port)
    more = wait_for(lambda: sup.read_log("hello-web-1", offset, 65536)[0], what="more log")
    assert '"GET / HTTP/1.1" 200' in str(more)
    assert sup.read_log("hello-web-1", 10**9, 100)[0].startswith("listening")  # rotated
    tail, _ = sup.read_log("hello-web-1", -1, 4096)
    assert tail.endswith("\n") and "GET /" in tail


def test_environment_reaches_the_process_exactly(sup: Supervisor) -> None:
    sup.start()
    os.environ["YURT_TEST_CONTROLLER_SECRET"] = "must-not-leak"  # supervisord inherits ours
    hostile = {
        "QUOTE": 'a"b',
        "BOTH": 'it\'s "both"',
        "HERE": "%(here)s",
        "PERCENT": "100% %% %s %(ENV_HOME)s",
        "COMMA": "x,y=z",
        "COMMENTS": "a ;not a comment #nor this",
        "SHELL_META": "$HOME `id` $(id) \\ \\\\ &|<>*?",
        "SPACES": "  padded  ",
        "EMPTY": "",
        "UNICODE": "ünïcödé ✓",
        "SINGLE": "'",
        "DOUBLE": '"',
        "MULTILINE": "-----BEGIN KEY-----\n  indented\n;x\n#y\n[program:evil]\n\nend\n",
    }
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    program = python_program(sup, "envtest", script, env=hostile, autorestart=False, startsecs=0)
    try:
        sup.add(program)
        wait_for(in_state(sup, "envtest", "EXITED"), what="EXITED")
        seen = json.loads(program.log_file.read_text().splitlines()[0])
    finally:
        del os.environ["YURT_TEST_CONTROLLER_SECRET"]
    assert {k: seen.get(k) for k in hostile} == hostile
    assert "YURT_TEST_CONTROLLER_SECRET" not in seen
    assert "SUPERVISOR_ENABLED" not in seen
    # Values live only in the env file (0600 here, 0400 owned by the user with user=), never
    # in supervisord's conf, so never in a command line either.
    conf = (sup.conf_dir / "envtest.conf").read_text()
    assert "nïcödé" not in conf and "BEGIN KEY" not in conf
    env_file = sup.env_dir / "envtest.env"
    assert env_file.stat().st_mode & 0o077 == 0
    sup.remove("envtest")
    assert not env_file.exists()


def test_remove_sends_sigterm_and_waits_for_a_clean_exit(sup: Supervisor) -> None:
    sup.start()
    program = python_program(sup, "graceful", TRAPS_TERM, stopwaitsecs=10)
    sup.add(program)
    wait_for(lambda: "ready" in sup.read_log("graceful", 0, 4096)[0], what="ready")
    started = time.monotonic()
    sup.remove("graceful")
    took = time.monotonic() - started
    assert 0.9 < took < 5, took
    assert "clean exit" in program.log_file.read_text()
    assert sup.info("graceful") is None and sup.names() == []
    sup.remove("graceful")  # absent: no error


def test_remove_sigkills_a_group_that_ignores_sigterm(sup: Supervisor) -> None:
    sup.start()
    sup.add(python_program(sup, "stubborn", IGNORES_TERM, stopwaitsecs=1))
    log = wait_for(lambda: "child" in (t := sup.read_log("stubborn", 0, 4096)[0]) and t)
    child = int(str(log).split()[1])
    parent = sup.info("stubborn").pid  # type: ignore[union-attr]
    started = time.monotonic()
    sup.remove("stubborn")
    took = time.monotonic() - started
    assert 0.9 < took < 5, took
    wait_for(lambda: not is_running(parent) and not is_running(child), 5, "the group to die")


def test_crash_loop_ends_fatal_with_its_exit_status(sup: Supervisor) -> None:
    sup.start()
    script = "import sys; print('boom', flush=True); sys.exit(3)"
    sup.add(python_program(sup, "crasher", script, startsecs=1, startretries=2))
    info = wait_for(in_state(sup, "crasher", "FATAL"), 20, "FATAL")
    assert isinstance(info, ProgramInfo)
    assert info.exit_status == 3
    assert info.restarts == 2  # 1 start + 2 retries
    assert sup.read_log("crasher", 0, 4096)[0].count("boom") == 3


def test_a_killed_program_is_restarted(sup: Supervisor) -> None:
    sup.start()
    port = free_port()
    sup.add(web_program(sup, "hello-web-1", port))
    first = wait_for(in_state(sup, "hello-web-1", "RUNNING"))
    assert isinstance(first, ProgramInfo)
    os.kill(first.pid, signal.SIGKILL)

    def restarted() -> ProgramInfo | None:
        info = sup.info("hello-web-1")
        return info if info and info.state == "RUNNING" and info.pid != first.pid else None

    info = wait_for(restarted, 15, "a restart")
    assert isinstance(info, ProgramInfo)
    assert info.restarts == 1
    assert info.exit_status == -signal.SIGKILL
    assert wait_for(lambda: answers(port)) == "hello from web.1"


def test_adding_a_changed_program_restarts_it(sup: Supervisor) -> None:
    sup.start()
    old_port, new_port = free_port(), free_port()
    sup.add(web_program(sup, "hello-web-1", old_port))
    old = wait_for(in_state(sup, "hello-web-1", "RUNNING"))
    assert isinstance(old, ProgramInfo)
    sup.add(web_program(sup, "hello-web-1", new_port))
    assert wait_for(lambda: answers(new_port)) == "hello from web.1"
    assert not is_running(old.pid) and answers(old_port) is None


def test_add_many_starts_each_program(sup: Supervisor) -> None:
    sup.start()
    ports = [free_port(), free_port()]
    sup.add_many([web_program(sup, f"hello-web-{i}", port) for i, port in enumerate(ports)])
    for port in ports:
        assert wait_for(lambda port=port: answers(port)) == "hello from web.1"  # type: ignore[misc]
    assert sup.names() == ["hello-web-0", "hello-web-1"]


def test_stop_and_start_program_keep_the_conf(sup: Supervisor) -> None:
    sup.start()
    sup.add(python_program(sup, "worker-1", TRAPS_TERM))
    wait_for(in_state(sup, "worker-1", "RUNNING"))
    sup.stop("worker-1")
    assert sup.info("worker-1").state == "STOPPED"  # type: ignore[union-attr]
    assert sup.names() == ["worker-1"]
    sup.stop("worker-1")  # already stopped: no error
    sup.start_program("worker-1")
    wait_for(in_state(sup, "worker-1", "RUNNING"))


def test_supervisord_killed_is_restarted_with_its_programs(sup: Supervisor) -> None:
    sup.start()
    port = free_port()
    sup.add(web_program(sup, "hello-web-1", port))
    old = wait_for(in_state(sup, "hello-web-1", "RUNNING"))
    assert isinstance(old, ProgramInfo)
    assert wait_for(lambda: answers(port))
    os.kill(int(sup.pid_file.read_text()), signal.SIGKILL)
    wait_for(lambda: not sup.alive(), 5, "supervisord to die")
    assert is_running(old.pid)  # orphaned, still holding the port

    assert sup.start() is True
    new = wait_for(in_state(sup, "hello-web-1", "RUNNING"), 15, "the program again")
    assert isinstance(new, ProgramInfo)
    assert new.pid != old.pid
    assert not is_running(old.pid)  # the orphan was stopped, so the port was free again
    assert wait_for(lambda: answers(port)) == "hello from web.1"


def test_errors_when_supervisord_is_not_running(sup: Supervisor) -> None:
    from controller.runtime.local.supervisor import ProcessManagerError

    assert not sup.alive()
    with pytest.raises(ProcessManagerError, match="not answering"):
        sup.info("anything")


# -- isolation: programs run as the app's user --------------------------------------------


@pytest.fixture
def app_user() -> Iterator[str]:
    if not users.running_as_root():
        pytest.skip("running programs as another user needs root")
    app = "supervisor-test"
    users.ensure_user(app)
    try:
        yield users.user_for_app(app)
    finally:
        users.remove_user(app)


def test_program_runs_as_the_app_user_and_cannot_read_root_files(
    sup: Supervisor, app_user: str
) -> None:
    import pwd

    secrets = Path(tempfile.mkdtemp())
    secrets.chmod(0o755)  # so only the file's own mode protects it
    secret = secrets / "root-token"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    script = f"""
import time
try:
    open({str(secret)!r}).read()
    print("READ THE SECRET", flush=True)
except PermissionError as exc:
    print(exc.strerror, flush=True)
time.sleep(1000)
"""
    sup.start()
    program = python_program(sup, "isolated", script, user=app_user, cwd=Path("/"))
    program = dataclasses.replace(program, command=("/usr/bin/python3", "-c", script))
    try:
        sup.add(program)
        info = wait_for(in_state(sup, "isolated", "RUNNING"))
        assert isinstance(info, ProgramInfo)
        status = Path(f"/proc/{info.pid}/status").read_text()
        uid = pwd.getpwnam(app_user).pw_uid
        assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status
        env_file = sup.env_dir / "isolated.env"
        assert (env_file.stat().st_uid, env_file.stat().st_mode & 0o777) == (uid, 0o400)
        log = wait_for(lambda: sup.read_log("isolated", 0, 4096)[0], what="output")
        assert "Permission denied" in str(log) and "READ THE SECRET" not in str(log)
    finally:
        sup.remove("isolated")
        secret.unlink()
        secrets.rmdir()


def test_a_conf_whose_user_is_gone_is_dropped_instead_of_blocking_start(
    sup: Supervisor, tmp_path: Path
) -> None:
    program = python_program(sup, "orphaned", "print(1)", user="yurt-no-such-user-x")
    sup.conf_dir.mkdir(parents=True, exist_ok=True)
    (sup.conf_dir / "orphaned.conf").write_text(
        render_program(program, sup.marker, sup.env_dir / "orphaned.env")
    )
    assert sup.start() is True  # supervisord would refuse to start with that conf
    assert sup.alive() and sup.names() == []
