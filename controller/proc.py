"""The one subprocess helper: list arguments, never a shell, return codes always checked."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class CommandFailed(Exception):
    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        super().__init__(f"{argv[0]} exited with status {returncode}")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Result:
    """Run a command to completion and capture its output."""
    args = [os.fspath(a) for a in argv]
    done = subprocess.run(
        args,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
        preexec_fn=preexec_fn,
    )
    out = done.stdout.decode("utf-8", "replace")
    err = done.stderr.decode("utf-8", "replace")
    if check and done.returncode != 0:
        raise CommandFailed(args, done.returncode, (out + err)[-4000:])
    return Result(done.returncode, out, err)


def stream(
    argv: Sequence[str | os.PathLike[str]],
    on_output: Callable[[bytes], None],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> int:
    """Run a command in its own process group, feeding stdout+stderr to ``on_output``.

    Returns the exit status (negative for a signal). ``on_start`` receives the Popen so a
    caller can cancel the whole group with :func:`kill_group`.
    """
    args = [os.fspath(a) for a in argv]
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    if on_start is not None:
        on_start(proc)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        on_output(chunk)
    proc.stdout.close()
    return proc.wait()


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal a process started by :func:`stream` and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a command with piped stdin/stdout for a caller that streams both ways
    (e.g. ``git http-backend``); the caller must wait for it."""
    return subprocess.Popen(
        [os.fspath(a) for a in argv],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
