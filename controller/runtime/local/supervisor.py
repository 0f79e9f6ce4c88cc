"""supervisord as the local runtime's process manager.

Yurt writes one ``programs/<name>.conf`` per process instance and drives supervisord over
XML-RPC on a unix socket in the state dir (``reloadConfig`` + ``addProcessGroup`` to start,
``stopProcess`` + ``removeProcessGroup`` to stop). supervisord daemonizes itself, so it and the
apps outlive the controller; :meth:`Supervisor.start` re-attaches to it through its pid file and
socket, or starts a new one that re-reads every program conf.

Each program's environment goes in its own env file (``export KEY='value'`` lines, mode 0400,
owned by the program's user) in ``env_dir``, and ``command=`` only names that file: the
command is ``env -i YURT_SUPERVISOR_ID=... bash -c '. "$0" && exec "$@"' ENV_FILE ARGV...``.
So config vars never appear in supervisord's confs or in /proc/PID/cmdline, ``env -i`` keeps the
controller's own environment (tokens, secrets) out of the apps, and the file is quoted with POSIX
shell quoting, which can express any value without NUL (line feeds included: multi-line config
vars such as PEM keys). ``command=`` itself is split with POSIX shlex; see :func:`_shell_word`.

A program with a ``stamped_log`` gets its output time-stamped: before sourcing the env file, the
shell points its stdout and stderr at a pipe read by a small Perl script (:data:`STAMPER`,
started through bash process substitution) and then execs the program as before, so the
program is still the process supervisord started, gets its signals directly and its exit status
is supervisord's. The stamper writes ``2024-05-01T12:00:00.123Z line`` to ``stamped_log`` as
each line arrives (UTC, milliseconds), rotates that file itself at ``log_max_bytes`` keeping
``log_backups``, ignores SIGTERM/SIGINT/SIGHUP/SIGQUIT (supervisord signals the whole process
group; the stamper must outlive the program to write its last words) and exits when every
writer of the pipe is gone, writing a last line that had no line feed. It runs as the
program's user, in its process group (so ``killasgroup`` SIGKILLs it with the program) and
with the marker in its environment (so :meth:`Supervisor._kill_orphans` finds it).
supervisord's own ``stdout_logfile`` then only gets what escapes the stamper (a stamper that
cannot open its file writes there instead). The stamper writes its file itself because
supervisord closes a program's pipes as soon as it reaps it: lines still in flight through a
stamper would be lost, and those are the last words of a crash or a graceful stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import proc
from controller.daemon import pid_running

log = logging.getLogger(__name__)

PROGRAM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,100}\Z")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
GROUP_RE = re.compile(r"^[A-Za-z0-9_.-]{0,100}\Z")
# The ini file is read with universal newlines (a CR would become a LF); NUL cannot be in
# argv or the environment.
FORBIDDEN_IN_VALUES = re.compile(r"[\r\x00]")
# Paths are written unquoted, so they must not hold what supervisor's parser interprets.
FORBIDDEN_IN_PATHS = re.compile(r"[\n\r\x00%;#]")

ENV_BINARY = shutil.which("env") or "/usr/bin/env"
BASH_BINARY = shutil.which("bash") or "/bin/bash"
# Sources the env file ($0) and execs the program's argv with that environment.
SOURCE_AND_EXEC = '. "$0" && exec "$@"'
PERL_BINARY = shutil.which("perl")
# The same, with stdout and stderr going through the stamper first; $1..$5 are the stamper's
# perl, script, log file, size cap and backups count.
STAMP_SOURCE_AND_EXEC = (
    'exec > >(trap "" TERM INT HUP QUIT; exec "$1" -e "$2" -- "$3" "$4" "$5") 2>&1; '
    'shift 5 && . "$0" && exec "$@"'
)
# The stamper (see the module docstring): reads its stdin in chunks, stamps each whole line with
# the time it was read, one write per chunk. Time::HiRes is in Debian's "perl" (a dependency of
# git), not in "perl-base": without it the milliseconds read .000. No "#" in it: it is joined
# into one line of the ini file.
STAMPER = " ".join(
    line.strip()
    for line in r"""
use strict;
my ($path, $max, $keep) = @ARGV;
my $now = eval { require Time::HiRes; \&Time::HiRes::time } || sub { time };
(my $dir = $path) =~ s{/[^/]*\z}{};
mkdir $dir, 0700;
my ($fh, $ino, $direct);
sub reopen {
  if (open $fh, ">>", $path) { $ino = (stat $fh)[1] }
  else { warn "yurt: cannot write $path: $!\n"; open $fh, ">&", \*STDOUT; $direct = 1 }
}
sub rotate {
  close $fh;
  for (my $i = $keep - 1; $i > 0; $i--) { rename "$path.$i", "$path." . ($i + 1) }
  $keep > 0 ? rename($path, "$path.1") : unlink($path);
  reopen();
}
sub put {
  my $t = $now->();
  my @g = gmtime $t;
  my $s = sprintf "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ",
    $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0], ($t - int $t) * 1000;
  (my $out = $_[0]) =~ s/^/$s/mg;
  syswrite $fh, $out;
  return if $direct;
  my @st = stat $path;
  if (!@st || $st[1] != $ino) { close $fh; reopen() } elsif ($st[7] >= $max) { rotate() }
}
reopen();
my $buf = "";
while (sysread STDIN, $buf, 65536, length $buf) {
  my $i = rindex $buf, "\n";
  if ($i >= 0) { put(substr $buf, 0, $i + 1, "") }
  elsif (length $buf >= 65536) { put("$buf\n"); $buf = "" }
}
put("$buf\n") if length $buf;
""".strip().splitlines()
)
MARKER_VAR = "YURT_SUPERVISOR_ID"
SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to 108 bytes on Linux
RPC_TIMEOUT = 10.0
ORPHAN_GRACE = 5.0
MIB = 1024 * 1024

# supervisor.xmlrpc.Faults codes we expect and tolerate.
BAD_NAME = 10
ALREADY_STARTED = 60
NOT_RUNNING = 70
ALREADY_ADDED = 90

# supervisord's log lines about a program, e.g. "2025-01-01 10:00:00,123 INFO spawned: 'web-1'
# with pid 42" and "... WARN exited: web-1 (exit status 3; not expected)".
LOG_LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \w+ (.*)$")
SPAWNED_RE = re.compile(r"^spawned: '([^']+)' with pid")
ENDED_RE = re.compile(r"^(?:exited|stopped): (\S+) \((?:exit status (\d+)|terminated by (SIG\w+))")


class ProcessManagerError(Exception):
    """supervisord is unreachable or refused a request."""


@dataclass(frozen=True, kw_only=True)
class Program:
    """One process instance as supervisord should run it."""

    name: str
    command: tuple[str, ...]
    cwd: Path
    environment: Mapping[str, str]
    log_file: Path
    user: str | None = None
    autorestart: bool = True
    startsecs: int = 1
    startretries: int = 5
    stopwaitsecs: int = 30
    group: str = ""
    log_max_bytes: int = 10 * MIB
    log_backups: int = 3
    # If set (and perl is installed), output goes through the stamper into this file; see the
    # module docstring.
    stamped_log: Path | None = None

    def __post_init__(self) -> None:
        _check_program(self)


@dataclass(frozen=True)
class ProgramInfo:
    """A program's state as supervisord reports it.

    ``restarts`` and ``exit_status`` come from supervisord's log since the program's conf was
    written (see :class:`_History`); a log rotated before the controller read it loses them.
    """

    name: str
    state: str  # STOPPED STARTING RUNNING BACKOFF STOPPING EXITED FATAL UNKNOWN
    pid: int
    started_at: float | None
    exit_status: int | None  # of the last exit, -N if killed by signal N; None if never exited
    description: str
    spawn_error: str
    restarts: int


def _check_program(p: Program) -> None:
    if not PROGRAM_NAME_RE.match(p.name):
        raise ValueError(f"invalid program name {p.name!r}: use [a-z0-9][a-z0-9_-]*, no dots")
    if not p.command or not p.command[0] or "=" in p.command[0]:
        raise ValueError("a program needs a command whose first word has no '='")
    for word in p.command:
        _check_value("command word", word)
    for key, value in p.environment.items():
        if not ENV_KEY_RE.match(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        _check_value(f"environment variable {key}", value)
    for path in (p.cwd, p.log_file, *([p.stamped_log] if p.stamped_log else [])):
        if FORBIDDEN_IN_PATHS.search(str(path)) or not path.is_absolute():
            raise ValueError(f"path {str(path)!r} must be absolute, without % ; # or line breaks")
    if p.user is not None and not USER_RE.match(p.user):
        raise ValueError(f"invalid user name {p.user!r}")
    if not GROUP_RE.match(p.group):
        raise ValueError(f"invalid group label {p.group!r}")
    if min(p.startsecs, p.startretries, p.stopwaitsecs, p.log_backups) < 0 or p.log_max_bytes < 1:
        raise ValueError("program timings and log sizes must not be negative")


def _check_value(what: str, value: str) -> None:
    if FORBIDDEN_IN_VALUES.search(value):
        raise ValueError(f"{what} must not contain a carriage return or NUL")


# -- config rendering --------------------------------------------------------------------


def _shell_word(word: str) -> str:
    """Quote ``word`` so supervisor's config parsing + shlex.split give it back exactly.

    On top of POSIX shell quoting: ``%`` is doubled (values are %-formatted) and kept outside
    quotes so the text never holds ``%(here)s`` (replaced before formatting); ``;``/``#``
    are backslash-escaped so no whitespace precedes them (an inline comment otherwise); a line
    feed is quoted and followed by an indented ``'``, which makes the rest an ini continuation
    line (the parser strips the indent and joins the lines with the line feed).
    """
    out = []
    for part in re.split(r"([;#%\n])", word):
        if part == "\n":
            out.append("'\n    '")
        elif part == "%":
            out.append("%%")
        elif part in (";", "#"):
            out.append("\\" + part)
        elif part:
            out.append(shlex.quote(part))
    return "".join(out) or "''"


def command_line(program: Program, marker: str, env_file: Path) -> str:
    """The ``command=`` value: ``env -i`` with only our marker, a shell that sources the
    program's env file (after starting the stamper, for a program with a ``stamped_log``),
    then its argv."""
    shell = [SOURCE_AND_EXEC, str(env_file)]
    if program.stamped_log is not None and PERL_BINARY:
        shell = [
            STAMP_SOURCE_AND_EXEC,
            str(env_file),
            PERL_BINARY,
            STAMPER,
            str(program.stamped_log),
            str(program.log_max_bytes),
            str(program.log_backups),
        ]
    argv = [ENV_BINARY, "-i", "--", f"{MARKER_VAR}={marker}", BASH_BINARY, "-c", *shell]
    argv += program.command
    return " ".join(_shell_word(word) for word in argv)


def render_env(environment: Mapping[str, str]) -> str:
    """The env file's text: one ``export KEY='value'`` line per variable."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(environment.items()))


def render_program(program: Program, marker: str, env_file: Path) -> str:
    """The ``programs/<name>.conf`` text for ``program``."""
    flag = {True: "true", False: "false"}
    lines = [
        f"; generated by yurt{' for ' + program.group if program.group else ''}",
        f"[program:{program.name}]",
        f"command={command_line(program, marker, env_file)}",
        f"directory={program.cwd}",
        "autostart=true",
        f"autorestart={flag[program.autorestart]}",
        f"startsecs={program.startsecs}",
        f"startretries={program.startretries}",
        "stopsignal=TERM",
        f"stopwaitsecs={program.stopwaitsecs}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={program.log_file}",
        f"stdout_logfile_maxbytes={program.log_max_bytes}",
        f"stdout_logfile_backups={program.log_backups}",
    ]
    if program.user:
        lines.append(f"user={program.user}")
    return "\n".join(lines) + "\n"


def render_supervisord(state_dir: Path, logs_dir: Path, minfds: int) -> str:
    """The main ``supervisord.conf``: unix socket only, programs included from ``programs/``."""
    sock = state_dir / "supervisor.sock"
    return f"""; generated by yurt: supervisord for the local runtime
[unix_http_server]
file={sock}
chmod=0700

[supervisord]
logfile={logs_dir / "supervisord.log"}
logfile_maxbytes=10MB
logfile_backups=3
loglevel=info
pidfile={state_dir / "supervisord.pid"}
nodaemon=false
directory={state_dir}
childlogdir={logs_dir}
umask=027
minfds={minfds}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock}

[include]
files = programs/*.conf
"""


# -- XML-RPC over the unix socket ----------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    """Like supervisor.xmlrpc.SupervisorTransport, but with a timeout on every call, so a
    hung supervisord cannot hang the controller."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = _UnixConnection(self._path, self._timeout)
        self._connection = (host, conn)
        return conn


# -- the process manager -------------------------------------------------------------------


class _History:
    """What supervisord's log says about each program: spawn times and the last exit status,
    which supervisor does not report itself (it counts no restarts, and forgets the status of
    a process that exited before ``startsecs``). Read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.spawns: dict[str, list[float]] = {}
        self.exits: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()  # API and deploy threads ask at once

    def restarts(self, name: str, since: float) -> int:
        return max(sum(1 for t in self.spawns.get(name, []) if t >= since) - 1, 0)

    def last_exit(self, name: str, since: float) -> int | None:
        when, status = self.exits.get(name, (0.0, 0))
        return status if when >= since else None

    def update(self) -> None:
        with self._lock:
            self._read_new_lines()

    def _read_new_lines(self) -> None:
        try:
            with self.path.open("rb") as fh:
                if os.fstat(fh.fileno()).st_size < self.offset:
                    self.offset = 0  # rotated
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return
        data = data[: data.rfind(b"\n") + 1]
        self.offset += len(data)
        for line in data.decode("utf-8", "replace").splitlines():
            self._parse(line)

    def _parse(self, line: str) -> None:
        found = LOG_LINE_RE.match(line)
        if found is None:
            return
        stamp, millis, message = found.groups()
        when = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
        if spawned := SPAWNED_RE.match(message):
            self.spawns.setdefault(spawned.group(1), []).append(when)
        elif ended := ENDED_RE.match(message):
            name, code, signame = ended.groups()
            sig = signal.Signals.__members__.get(signame)
            status = int(code) if code else -(sig.value if sig else 1)
            self.exits[name] = (when, status)


class Supervisor:
    """One supervisord owned by Yurt, with its state under ``state_dir``."""

    def __init__(self, state_dir: Path, logs_dir: Path, env_dir: Path | None = None) -> None:
        self.state_dir = state_dir.absolute()
        self.logs_dir = logs_dir.absolute()
        # Env files are read by the programs' users: the dir is traversable (0711) but not
        # listable, each file readable by its program's user only.
        self.env_dir = (env_dir or self.state_dir / "env").absolute()
        self.conf_dir = self.state_dir / "programs"
        self.conf_file = self.state_dir / "supervisord.conf"
        self.socket = self.state_dir / "supervisor.sock"
        self.pid_file = self.state_dir / "supervisord.pid"
        self.main_log = self.logs_dir / "supervisord.log"
        self.marker = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:16]
        self._history = _History(self.main_log)

    # -- supervisord itself

    def start(self) -> bool:
        """Re-attach to our running supervisord, or start one; True if one was started."""
        if self.alive():
            return False
        self._prepare_dirs()
        self._drop_unrunnable()
        minfds = min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        _write_atomic(self.conf_file, render_supervisord(self.state_dir, self.logs_dir, minfds))
        # Instances left running by a supervisord that was killed would hold their ports.
        self._kill_orphans()
        # supervisord forks, daemonizes (setsid) and the command returns once its socket is
        # bound, so it outlives this process; its own environment stays minimal.
        env = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8"}
        argv = [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_file)]
        try:
            proc.run(argv, env=env, timeout=30)
        except proc.CommandFailed as exc:
            raise ProcessManagerError(f"supervisord did not start: {exc.output.strip()}") from exc
        self._wait_until_alive()
        return True

    def alive(self) -> bool:
        """Whether the supervisord named by our pid file answers on our socket."""
        pid = self._pid()
        if pid is None:
            return False
        try:
            return bool(self._call("getPID", timeout=2.0) == pid)
        except ProcessManagerError:
            return False

    def shutdown(self) -> None:
        """Stop supervisord and every program (each gets its SIGTERM grace period)."""
        pid = self._pid()
        if pid is not None and self.alive():
            with contextlib.suppress(ProcessManagerError):  # it may be exiting already
                self._call("shutdown")
            if not _wait_gone([pid], self._longest_grace() + 10):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._kill_orphans()

    # -- programs

    def add(self, program: Program) -> None:
        """Start ``program`` (write its conf, reload, add its group); no-op if already running
        with the same conf, restarted if its conf changed. Returns while it is STARTING."""
        self.add_many([program])

    def add_many(self, programs: Sequence[Program]) -> None:
        """:meth:`add` for several programs with one ``reloadConfig``, which re-reads every
        conf and so costs about 1.5 ms per configured program."""
        new_env = set()
        for program in programs:
            program.log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            env_file = self._env_file(program.name)
            if _write_atomic(env_file, render_env(program.environment), _uid(program.user)):
                new_env.add(program.name)
            text = render_program(program, self.marker, env_file)
            _write_atomic(self._conf(program.name), text)
        _added, changed, _removed = self._call("reloadConfig")[0]
        for program in programs:
            # A changed environment leaves the conf as it was: restart for it too.
            if program.name in changed or program.name in new_env:
                self._stop_and_remove(program.name)
            self._call("addProcessGroup", program.name, tolerate=(ALREADY_ADDED,))

    def remove(self, name: str) -> None:
        """Stop ``name`` (SIGTERM, its grace period, then SIGKILL to its process group) and
        forget it; nothing happens if it does not exist."""
        if self.alive():
            self._stop_and_remove(name)
        self._conf(name).unlink(missing_ok=True)
        self._env_file(name).unlink(missing_ok=True)

    def stop(self, name: str, wait: bool = True) -> None:
        """Stop ``name`` but keep it configured (a supervisord restart starts it again)."""
        timeout = self._grace(name) + RPC_TIMEOUT
        self._call("stopProcess", name, wait, timeout=timeout, tolerate=(NOT_RUNNING,))

    def start_program(self, name: str) -> None:
        """Start a stopped program; returns while it is STARTING."""
        self._call("startProcess", name, False, tolerate=(ALREADY_STARTED,))

    def info(self, name: str) -> ProgramInfo | None:
        raw = self._call("getProcessInfo", name, tolerate=(BAD_NAME,))
        if raw is None:
            return None
        self._history.update()
        return self._program_info(raw)

    def all(self) -> list[ProgramInfo]:
        self._history.update()
        return [self._program_info(raw) for raw in self._call("getAllProcessInfo")]

    def names(self) -> list[str]:
        """Programs configured (from the conf files), running or not."""
        return sorted(p.stem for p in self.conf_dir.glob("*.conf"))

    def read_log(self, name: str, offset: int, length: int) -> tuple[str, int]:
        """Up to ``length`` bytes of ``name``'s log from byte ``offset``, cut after the last
        whole line, and the offset to read on from. A negative offset reads the last
        ``length`` bytes from a line start; an offset past the end (the file rotated) starts
        again at 0."""
        path = self.log_file(name)
        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                start = _log_start(fh, size, offset, length)
                fh.seek(start)
                data = fh.read(max(length, 0))
        except FileNotFoundError:
            return "", 0
        if len(data) == length and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]
        return data.decode("utf-8", "replace"), start + len(data)

    def log_file(self, name: str) -> Path:
        """The log file named in ``name``'s conf."""
        try:
            text = self._conf(name).read_text()
        except FileNotFoundError:
            raise ProcessManagerError(f"no program named {name!r}") from None
        found = re.search(r"^stdout_logfile=(.*)$", text, re.M)
        if found is None:
            raise ProcessManagerError(f"{name}.conf names no log file")
        return Path(found.group(1))

    # -- helpers

    def _conf(self, name: str) -> Path:
        if not PROGRAM_NAME_RE.match(name):
            raise ValueError(f"invalid program name {name!r}")
        return self.conf_dir / f"{name}.conf"

    def _drop_unrunnable(self) -> None:
        """Remove confs naming a user that no longer exists: supervisord refuses to start at
        all with one of them, which would take every app down. Their owner (the runtime)
        sees them missing and starts them again."""
        for conf in self.conf_dir.glob("*.conf"):
            found = re.search(r"^user=(.*)$", conf.read_text(errors="replace"), re.M)
            if found is None:
                continue
            try:
                pwd.getpwnam(found.group(1))
            except KeyError:
                log.warning("dropping %s: its user %s no longer exists", conf.name, found.group(1))
                conf.unlink(missing_ok=True)
                self._env_file(conf.stem).unlink(missing_ok=True)

    def _env_file(self, name: str) -> Path:
        if not PROGRAM_NAME_RE.match(name):
            raise ValueError(f"invalid program name {name!r}")
        return self.env_dir / f"{name}.env"

    def _prepare_dirs(self) -> None:
        if len(str(self.socket).encode()) > SOCKET_PATH_MAX:
            raise ProcessManagerError(f"socket path too long for a unix socket: {self.socket}")
        for d in (self.state_dir, self.conf_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
        self.env_dir.mkdir(parents=True, exist_ok=True)
        self.env_dir.chmod(0o711)

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _wait_until_alive(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.alive():
            if time.monotonic() > deadline:
                raise ProcessManagerError(
                    f"supervisord started but did not answer on {self.socket}; see {self.main_log}"
                )
            time.sleep(0.02)

    def _stop_and_remove(self, name: str) -> None:
        timeout = self._grace(name) + RPC_TIMEOUT
        self._call("stopProcess", name, True, timeout=timeout, tolerate=(NOT_RUNNING, BAD_NAME))
        self._call("removeProcessGroup", name, tolerate=(BAD_NAME,))

    def _grace(self, name: str) -> int:
        try:
            text = self._conf(name).read_text()
        except FileNotFoundError:
            return 30
        found = re.search(r"^stopwaitsecs=(\d+)$", text, re.M)
        return int(found.group(1)) if found else 30

    def _longest_grace(self) -> int:
        return max((self._grace(name) for name in self.names()), default=0)

    def _call(
        self,
        method: str,
        *args: object,
        timeout: float = RPC_TIMEOUT,
        tolerate: tuple[int, ...] = (),
    ) -> Any:
        """Call ``supervisor.<method>``; faults listed in ``tolerate`` return None."""
        transport = _UnixTransport(str(self.socket), timeout)
        try:
            with xmlrpc.client.ServerProxy("http://localhost", transport=transport) as server:
                return getattr(server.supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode in tolerate:
                return None
            raise ProcessManagerError(
                f"supervisord refused {method}{args!r}: {fault.faultString}"
            ) from fault
        except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException) as exc:
            raise ProcessManagerError(
                f"supervisord is not answering on {self.socket} ({method}: {exc})"
            ) from exc

    def _program_info(self, raw: Mapping[str, Any]) -> ProgramInfo:
        name = raw["name"]
        try:
            # Log lines from before the conf was (re)written belong to an earlier program.
            since = self._conf(name).stat().st_mtime - 0.5
        except FileNotFoundError:
            since = float(raw["start"])
        exit_status = self._history.last_exit(name, since)
        if exit_status is None and raw["stop"]:
            exit_status = raw["exitstatus"]
        return ProgramInfo(
            name=name,
            state=raw["statename"],
            pid=raw["pid"],
            started_at=float(raw["start"]) if raw["start"] else None,
            exit_status=exit_status,
            description=raw["description"],
            spawn_error=raw["spawnerr"],
            restarts=self._history.restarts(name, since),
        )

    def _kill_orphans(self) -> None:
        """SIGTERM, then SIGKILL, the process groups of programs started by an earlier
        supervisord on this state dir (found by the marker in their environment)."""
        pids = list(_marked_pids(f"{MARKER_VAR}={self.marker}".encode()))
        if not pids:
            return
        _signal_groups(pids, signal.SIGTERM)
        if not _wait_gone(pids, ORPHAN_GRACE):
            _signal_groups(pids, signal.SIGKILL)
            _wait_gone(pids, ORPHAN_GRACE)


# -- module helpers ------------------------------------------------------------------------


def _write_atomic(path: Path, text: str, owner: int | None = None) -> bool:
    """Replace ``path`` with ``text`` (mode 0600; 0400 and owned by ``owner`` if given) unless
    it already holds exactly that; True if it wrote."""
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text and (owner is None or path.stat().st_uid == owner):
            return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    if owner is not None:
        os.chown(tmp, owner, -1)
        os.chmod(tmp, 0o400)
    os.replace(tmp, path)
    return True


def _uid(user: str | None) -> int | None:
    """The uid that must own a program's env file: its user's when we can switch to it."""
    if user is None or os.geteuid() != 0:
        return None
    return pwd.getpwnam(user).pw_uid


def _log_start(fh: Any, size: int, offset: int, length: int) -> int:
    if offset > size:
        return 0
    if offset >= 0:
        return offset
    start = max(size - length, 0)
    if start > 0:
        fh.seek(start - 1)
        rest = fh.read(length + 1)
        newline = rest.find(b"\n")
        start = start + newline if newline >= 0 else size
    return start


def _marked_pids(needle: bytes) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            yield int(entry.name)


def _signal_groups(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(pid_running(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
