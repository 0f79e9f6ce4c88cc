"""Helpers for the example app: editing its greeting, and running it by hand (the floors)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness import free_port, http_get, log

GREETING = "Hello from Yurt!"


def set_greeting(text: str) -> Callable[[Path], None]:
    """An edit that changes only the app's code: the greeting string in app.py."""

    def edit(work: Path) -> None:
        app = work / "app.py"
        source = app.read_text()
        start = source.index('return f"') + len('return f"')
        end = source.index(" ({dyno})", start)
        app.write_text(source[:start] + text + source[end:])

    return edit


def procfile_web(app_dir: Path) -> str:
    for line in (app_dir / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"no web process in {app_dir / 'Procfile'}")


def run_by_hand(app_dir: Path, env: dict[str, str], timeout: float = 60) -> float:
    """Start the Procfile's web command in ``app_dir`` (PATH from ``env``) and wait for the first
    200 on ``/``; returns seconds from start to that 200. The process is stopped after."""
    port = free_port()
    command = procfile_web(app_dir)
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=app_dir,
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{shlex.quote(command)} exited with {proc.returncode}")
            with contextlib.suppress(OSError):
                if http_get(f"http://127.0.0.1:{port}/", timeout=2)[0] == 200:
                    return time.perf_counter() - start
            time.sleep(0.01)
        raise TimeoutError(f"{command} did not answer 200 within {timeout:.0f} s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def venv_env(venv: Path, home: Path) -> dict[str, str]:
    """A clean environment like the one Yurt gives builds and apps (nothing inherited from this
    shell: no PIP_*, PYTHON* or proxy settings), with the virtualenv first on PATH."""
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }


def python_for(app_dir: Path) -> str:
    """The interpreter the buildpack picks: python3.X from .python-version, else python3."""
    pinned = app_dir / ".python-version"
    if pinned.exists():
        version = ".".join(pinned.read_text().strip().split(".")[:2])
        return f"python{version}"
    return "python3"


def floor_cold(source: Path, scratch: Path) -> dict[str, float]:
    """By hand, in a copy of ``source`` under ``scratch``: fresh venv + pip install -r
    requirements.txt (empty pip cache) + start the web command + first 200. Returns each step's
    seconds and the total."""
    app_dir = scratch / "app"
    shutil.copytree(source, app_dir)
    venv = scratch / "venv"
    env = venv_env(venv, scratch)
    env["PIP_CACHE_DIR"] = str(scratch / "pip-cache")  # empty: downloads, like a cold build
    t0 = time.perf_counter()
    python = python_for(app_dir)
    subprocess.run([python, "-m", "venv", str(venv)], env=env, check=True, timeout=300)
    t1 = time.perf_counter()
    pip = [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "--no-input"]
    pip += ["--progress-bar", "off", "-q", "-r", "requirements.txt"]
    subprocess.run(pip, cwd=app_dir, env=env, check=True, timeout=600)
    t2 = time.perf_counter()
    first_200 = run_by_hand(app_dir, env)
    total = time.perf_counter() - t0
    log(f"floor: venv {t1 - t0:.2f}s, pip {t2 - t1:.2f}s, start {first_200:.2f}s")
    return {"venv_s": t1 - t0, "pip_s": t2 - t1, "start_s": first_200, "total_s": total}
