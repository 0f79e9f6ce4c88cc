"""A long-running helper process that outlives the controller and is found again by pid file.

The process runs in its own session with its output in a log file, so a controller that dies
(even by SIGKILL) leaves it running; the next controller reads the pid file and re-attaches if
that pid is still the same command. Used for OpenBao (``controller/secrets/openbao.py``);
Caddy and supervisord use its process checks (:func:`pid_running`, :func:`cmdline`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class DaemonError(Exception):
    """The process could not be started or stopped."""


def pid_running(pid: int) -> bool:
    """True if the process exists and is not a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    """The process's argv ([] if it is gone). It reads empty for a moment while the process is
    in the middle of exec (seen right after Popen returns), so an empty one is read again."""
    for _ in range(20):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        if raw or not pid_running(pid):
            break
        time.sleep(0.01)
    return raw.decode(errors="replace").rstrip("\0").split("\0") if raw else []


class Daemon:
    """One daemon: its command line, pid file and log file."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        pid_path: Path,
        log_path: Path,
        cwd: Path,
        env: Mapping[str, str],
        error: type[Exception] = DaemonError,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.pid_path = pid_path
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env)
        self.error = error
        self.name = Path(self.argv[0]).name
        self._child: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        """The pid in the pid file, if that process is running and is this command."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        self._reap(pid)
        argv = cmdline(pid)
        # The binary's path may differ (a moved venv); its name and the arguments may not.
        same = bool(argv) and Path(argv[0]).name == self.name and argv[1:] == self.argv[1:]
        return pid if same and pid_running(pid) else None

    def spawn(self) -> int:
        """Start the command in its own session; returns its pid."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # Popen rather than controller.proc: a daemon must outlive this process (own
            # session, output to a file, nobody waits for it to finish).
            self._child = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._child.pid}\n")
        return self._child.pid

    def exit_status(self) -> int | None:
        """The exit status of the child this object spawned, once it has exited."""
        return None if self._child is None else self._child.poll()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL; forget the pid file."""
        pid = self.pid()
        if pid is not None:
            self.kill(pid, timeout)
        self.pid_path.unlink(missing_ok=True)

    def kill(self, pid: int, timeout: float = 5.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if self.wait_exit(pid, timeout):
                return
        raise self.error(f"{self.name} (pid {pid}) did not exit after SIGKILL")

    def wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._reap(pid)
            if not pid_running(pid):
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no {self.log_path.name})"
        return "\n".join(text.splitlines()[-lines:])

    def _reap(self, pid: int) -> None:
        # A child of ours that died stays a zombie until polled.
        if self._child is not None and self._child.pid == pid:
            self._child.poll()
