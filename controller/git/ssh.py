"""git push over SSH: a private sshd, started by the controller, with one forced command per key.

Like Dokku and Piku, every key in ``authorized_keys`` carries
``command="python -m controller.git.ssh_command --data-dir D --key-id K",restrict``, so the only
thing a key can do is run :mod:`controller.git.ssh_command`, which allows git push and fetch for
existing apps. sshd runs with its own config, host keys and log under ``settings.ssh_dir``
and only lets in the user the controller runs as.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from controller import proc
from controller.keys.service import KeyView, authorized_keys_text, write_authorized_keys
from controller.settings import Settings

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
INSTALL_HINT = "install openssh-server (apt-get install openssh-server)"
PRIVSEP_DIR = Path("/run/sshd")
START_DEADLINE = 10.0
STOP_GRACE = 5.0
KEY_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
# Characters that would break a value in sshd_config or in authorized_keys' command="...".
UNSAFE_PATH_RE = re.compile(r"[\s\"'\\%#\x00-\x1f\x7f]")


class SshServerError(RuntimeError):
    """The SSH server could not be configured or started."""


class SshServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ssh_dir = settings.ssh_dir
        self.config_path = self.ssh_dir / "sshd_config"
        self.host_key = self.ssh_dir / "ssh_host_ed25519_key"
        self.authorized_keys = self.ssh_dir / "authorized_keys"
        self.log_path = self.ssh_dir / "sshd.log"
        self.host, self.port = parse_listen(settings.ssh_listen)
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Write config and host keys if needed, start sshd and wait until it listens."""
        if self._proc is not None and self._proc.poll() is None:
            return
        sshd = find_sshd()
        check_safe_path(self.ssh_dir)
        self.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.ssh_dir.chmod(0o700)
        self._ensure_host_key()
        if not self.authorized_keys.exists():
            write_authorized_keys(self.authorized_keys, "")
        self.config_path.write_text(self.render_config())
        _make_privsep_dir()
        self._validate(sshd)
        self._check_port_free()
        self._spawn(sshd)
        self._wait_ready()

    def stop(self) -> None:
        """SIGTERM sshd, then SIGKILL if it has not exited after 5 s. Safe to call twice."""
        child, self._proc = self._proc, None
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def sync_keys(self, keys: list[KeyView]) -> None:
        """Rewrite authorized_keys so that exactly ``keys`` may push, each by forced command."""
        self.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = authorized_keys_text(keys, self.forced_command)
        write_authorized_keys(self.authorized_keys, text)

    def forced_command(self, key: KeyView) -> str:
        """The command sshd runs for ``key``; it sits inside ``command="..."``."""
        if not KEY_ID_RE.match(key.id):
            raise ValueError(f"SSH key id {key.id[:40]!r} is not a ULID.")
        check_safe_path(self.settings.data_dir)
        check_safe_path(Path(sys.executable))
        # -P: don't put sshd's working directory (the user's home) on sys.path.
        argv = [sys.executable, "-P", "-m", "controller.git.ssh_command"]
        argv += ["--data-dir", str(self.settings.data_dir), "--key-id", key.id]
        return shlex.join(argv)

    def git_url_base(self) -> str:
        """``ssh://user@host:port``; an app's git URL is ``f"{base}/{app}.git"``."""
        host = self.settings.ssh_host or self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"ssh://{self.user}@{host}:{self.port}"

    def render_config(self) -> str:
        """sshd_config for a git-only server: keys only, no shells, no forwarding."""
        root = os.getuid() == 0
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "AuthorizedPrincipalsFile none",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            f"PermitRootLogin {'forced-commands-only' if root else 'no'}",
            f"AllowUsers {self.user}",
            "UsePAM no",
            "StrictModes no",
            "PermitTTY no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "AllowStreamLocalForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "DisableForwarding yes",
            "PermitUserEnvironment no",
            # Lets clients ask for git protocol v2 (git sends it with SendEnv).
            "AcceptEnv GIT_PROTOCOL",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            f"PidFile {self.ssh_dir / 'sshd.pid'}",
            "LogLevel INFO",
        ]
        return "# Written by Yurt on every start; edits are lost.\n" + "\n".join(lines) + "\n"

    def _ensure_host_key(self) -> None:
        if self.host_key.exists():
            return
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "yurt-host"]
        proc.run([*argv, "-f", self.host_key])

    def _validate(self, sshd: str) -> None:
        try:
            proc.run([sshd, "-t", "-f", self.config_path])
        except proc.CommandFailed as exc:
            raise SshServerError(f"sshd rejected {self.config_path}: {exc.output.strip()}") from exc

    def _check_port_free(self) -> None:
        if _accepts(self._connect_host(), self.port):
            raise SshServerError(
                f"Cannot start sshd: something already listens on {self.host}:{self.port} "
                "(choose another ssh_listen)."
            )

    def _spawn(self, sshd: str) -> None:
        # Not proc.run: sshd is a long-running child we keep and stop later, not a command
        # to run to completion. List argv, no shell.
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _wait_ready(self) -> None:
        """Wait for sshd to log that it listens and to accept a connection (10 s)."""
        assert self._proc is not None
        start = self.log_path.stat().st_size
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()
                raise SshServerError(f"sshd exited at start. {self._log_tail(start)}")
            if self._listening(start) and _accepts(self._connect_host(), self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise SshServerError(
            f"sshd did not listen on {self.host}:{self.port} within {START_DEADLINE:.0f} s. "
            f"{self._log_tail(start)}"
        )

    def _listening(self, offset: int) -> bool:
        return b"Server listening on" in self._read_log(offset)

    def _read_log(self, offset: int) -> bytes:
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read()

    def _log_tail(self, offset: int) -> str:
        tail = self._read_log(offset)[-2000:].decode("utf-8", "replace").strip()
        return f"Log ({self.log_path}):\n{tail}" if tail else f"Nothing in {self.log_path}."

    def _connect_host(self) -> str:
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:2222"`` or ``"[::1]:2222"`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SshServerError(f"Invalid SSH listen address {listen!r}: use HOST:PORT.")
    if UNSAFE_PATH_RE.search(host):
        raise SshServerError(f"Invalid SSH listen host {host!r}.")
    return host, int(port)


def find_sshd() -> str:
    """Path of the sshd binary (sshd needs an absolute path to re-exec itself)."""
    for path in SSHD_PATHS:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("sshd")
    if found is None:
        raise SshServerError(f"sshd was not found: {INSTALL_HINT}.")
    return os.path.abspath(found)


def check_safe_path(path: Path) -> Path:
    """Refuse paths that cannot be written safely into sshd_config or authorized_keys."""
    if not path.is_absolute() or UNSAFE_PATH_RE.search(str(path)):
        raise SshServerError(
            f"The path {str(path)[:200]!r} cannot be used for the SSH server: it must be "
            "absolute, without spaces, quotes, backslashes, '%' or '#'."
        )
    return path


def _make_privsep_dir() -> None:
    """sshd running as root needs its privilege separation dir (``mkdir -p /run/sshd``)."""
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    except PermissionError:
        if os.getuid() == 0:
            raise


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
