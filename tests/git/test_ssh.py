"""git over SSH: the forced-command parser, and a real sshd + ssh + git end to end."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ulid import ULID

from controller.git import ssh
from controller.git.ssh import SshServer, SshServerError, check_safe_path, parse_listen
from controller.git.ssh_command import key_present, parse_command
from controller.keys.service import KeyView
from controller.settings import Settings

SSHD = Path("/usr/sbin/sshd")
requires_sshd = pytest.mark.skipif(
    not SSHD.exists(), reason="install openssh-server (apt-get install -y openssh-server)"
)

# ---------------------------------------------------------------- parser (no sshd needed)


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("git-receive-pack 'hello.git'", ("receive-pack", "hello")),
        ("git-receive-pack '/hello.git'", ("receive-pack", "hello")),
        ("git-upload-pack 'hello.git'", ("upload-pack", "hello")),
        ("git-upload-pack '/hello.git'", ("upload-pack", "hello")),
        ("git-receive-pack hello.git", ("receive-pack", "hello")),
        ("git-receive-pack /hello.git", ("receive-pack", "hello")),
        ("git-receive-pack 'hello'", ("receive-pack", "hello")),
        ("git-receive-pack '/hello'", ("receive-pack", "hello")),
        ("git-receive-pack hello", ("receive-pack", "hello")),
        ("git-receive-pack '/hello.git/'", ("receive-pack", "hello")),
        ("git-upload-pack 'my-app-2.git'", ("upload-pack", "my-app-2")),
        ("  git-receive-pack 'hello.git'\n", ("receive-pack", "hello")),
    ],
)
def test_parse_command_accepts(cmd: str, expected: tuple[str, str]) -> None:
    assert parse_command(cmd) == expected


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        ("", "only git push and fetch"),
        ("   ", "only git push and fetch"),
        ("ls /", "Only git push and fetch are allowed over SSH (got: 'ls /')"),
        ("bash", "Only git push"),
        ("git-upload-archive 'hello.git'", "Only git push"),
        ("git receive-pack 'hello.git'", "Only git push"),
        ("git-receive-pack", "Only git push"),
        ("git-receive-pack '../../etc.git'", "Only git push"),
        ("git-receive-pack '/../hello.git'", "Only git push"),
        ("git-receive-pack 'a/hello.git'", "Only git push"),
        ("git-receive-pack '..'", "Invalid app name"),
        ("git-receive-pack 'hello.git", "Only git push"),
        ("git-receive-pack hello.git'", "Only git push"),
        ('git-receive-pack "hello.git"', "Invalid app name"),
        ("git-receive-pack 'hello.git'; rm -rf /", "Only git push"),
        ("git-receive-pack 'hello.git' 'other.git'", "Only git push"),
        ("git-receive-pack 'hello.git'\nls", "Only git push"),
        ("git-receive-pack 'Hello.git'", "Invalid app name"),
        ("git-receive-pack 'admin.git'", "reserved"),
        ("git-receive-pack 'a--b.git'", "two dashes"),
        ("git-receive-pack '.git'", "Invalid app name"),
    ],
)
def test_parse_command_rejects(cmd: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_command(cmd)
    assert message in str(info.value)


def test_parse_command_shortens_long_commands() -> None:
    with pytest.raises(ValueError) as info:
        parse_command("x" * 500)
    assert len(str(info.value)) < 200


def test_key_present(tmp_path: Path) -> None:
    path = tmp_path / "authorized_keys"
    key_id = str(ULID())
    assert not key_present(path, key_id)
    path.write_text(f'command="x --key-id {key_id}",restrict ssh-ed25519 AAAA {key_id}\n')
    assert key_present(path, key_id)
    assert not key_present(path, str(ULID()))
    assert not key_present(path, "AAAA")
    path.write_text(f"# {key_id}\n")
    assert not key_present(path, key_id)


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:2222") == ("127.0.0.1", 2222)
    assert parse_listen("[::1]:2222") == ("::1", 2222)
    for bad in ("", "2222", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:70000", "a b:22"):
        with pytest.raises(SshServerError):
            parse_listen(bad)


def test_check_safe_path() -> None:
    assert check_safe_path(Path("/var/lib/yurt")) == Path("/var/lib/yurt")
    for bad in ('/a"b', "/a b", "/a\nb", "/a%h", "relative", "/a\\b", "/a'b"):
        with pytest.raises(SshServerError):
            check_safe_path(Path(bad))


def test_missing_sshd_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "SSHD_PATHS", (str(tmp_path / "nope"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    server = SshServer(Settings(data_dir=tmp_path / "data", ssh_listen="127.0.0.1:2222"))
    with pytest.raises(SshServerError, match=r"apt-get install openssh-server"):
        server.start()


def test_forced_command_is_shell_safe(tmp_path: Path) -> None:
    server = SshServer(Settings(data_dir=tmp_path / "data", ssh_listen="127.0.0.1:2222"))
    key = _view(str(ULID()), "ssh-ed25519 AAAA")
    cmd = server.forced_command(key)
    assert '"' not in cmd and "\n" not in cmd
    assert cmd.endswith(
        f"-m controller.git.ssh_command --data-dir {tmp_path}/data --key-id {key.id}"
    )
    with pytest.raises(ValueError):
        server.forced_command(_view('x" ls', "ssh-ed25519 AAAA"))


def test_git_url_base(tmp_path: Path) -> None:
    user = _user()
    plain = SshServer(Settings(data_dir=tmp_path, ssh_listen="0.0.0.0:2222"))
    assert plain.git_url_base() == f"ssh://{user}@127.0.0.1:2222"
    named = SshServer(Settings(data_dir=tmp_path, ssh_listen="0.0.0.0:22", ssh_host="git.example"))
    assert named.git_url_base() == f"ssh://{user}@git.example:22"


# ---------------------------------------------------------------- real sshd, ssh and git


@dataclass
class Env:
    server: SshServer
    settings: Settings
    key: Path
    key_view: KeyView
    tmp: Path

    @property
    def base(self) -> str:
        return self.server.git_url_base()

    def ssh_command(self, key: Path | None = None) -> list[str]:
        return [
            "ssh",
            "-i",
            str(key or self.key),
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
        ]

    def ssh(self, *remote: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
        host, port = self.server.host, str(self.server.port)
        argv = [*self.ssh_command(key), "-p", port, f"{self.server.user}@{host}", *remote]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )

    def git(
        self, *args: str, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "GIT_SSH_COMMAND": " ".join(self.ssh_command()),
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
        res = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )
        if check and res.returncode != 0:
            raise AssertionError(f"git {args} failed: {res.stdout}{res.stderr}")
        return res


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    settings = Settings(data_dir=tmp_path / "data", ssh_listen=f"127.0.0.1:{_free_port()}")
    key = _client_key(tmp_path / "id_ed25519")
    view = _view(str(ULID()), _public_key(key))
    server = SshServer(settings)
    server.sync_keys([view])
    try:
        server.start()
        bare = settings.repos_dir / "hello.git"
        subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", bare], check=True)
        yield Env(server, settings, key, view, tmp_path)
    finally:
        server.stop()


def _work_repo(env: Env) -> tuple[Path, str]:
    work = env.tmp / "work"
    env.git("init", "-q", "--initial-branch=main", str(work))
    (work / "README").write_text("hello\n")
    env.git("add", "README", cwd=work)
    env.git("commit", "-q", "-m", "first", cwd=work)
    head = env.git("rev-parse", "HEAD", cwd=work).stdout.strip()
    return work, head


def _bare_head(env: Env) -> str:
    repo = env.settings.repos_dir / "hello.git"
    return env.git("--git-dir", str(repo), "rev-parse", "main").stdout.strip()


@requires_sshd
@pytest.mark.integration
def test_generated_config_passes_sshd_t(env: Env) -> None:
    res = subprocess.run(
        [str(SSHD), "-t", "-f", str(env.server.config_path)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    text = env.server.config_path.read_text()
    assert f"AuthorizedKeysFile {env.settings.ssh_dir}/authorized_keys" in text
    assert "PasswordAuthentication no" in text
    assert (env.settings.ssh_dir.stat().st_mode & 0o777) == 0o700


@requires_sshd
@pytest.mark.integration
def test_push_over_ssh_url(env: Env) -> None:
    work, head = _work_repo(env)
    env.git("push", "-q", f"{env.base}/hello.git", "main", cwd=work)
    assert _bare_head(env) == head


@requires_sshd
@pytest.mark.integration
def test_push_with_scp_style_url(env: Env) -> None:
    work, head = _work_repo(env)
    ssh = " ".join([*env.ssh_command(), "-p", str(env.server.port)])
    url = f"{env.server.user}@{env.server.host}:hello.git"
    res = subprocess.run(
        ["git", "-c", f"core.sshCommand={ssh}", "push", "-q", url, "main"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert _bare_head(env) == head


@requires_sshd
@pytest.mark.integration
def test_fetch_and_clone(env: Env) -> None:
    work, head = _work_repo(env)
    env.git("push", "-q", f"{env.base}/hello.git", "main", cwd=work)
    clone = env.tmp / "clone"
    env.git("clone", "-q", f"{env.base}/hello.git", str(clone))
    assert (clone / "README").read_text() == "hello\n"
    env.git("fetch", "-q", f"{env.base}/hello", "main", cwd=work)
    assert env.git("rev-parse", "FETCH_HEAD", cwd=work).stdout.strip() == head


@requires_sshd
@pytest.mark.integration
def test_interactive_shell_refused(env: Env) -> None:
    res = env.ssh()
    assert res.returncode != 0
    assert "only git push and fetch are allowed over SSH" in res.stderr


@requires_sshd
@pytest.mark.integration
def test_other_command_refused(env: Env) -> None:
    res = env.ssh("ls /")
    assert res.returncode == 1
    assert "Only git push and fetch are allowed over SSH (got: 'ls /')" in res.stderr
    assert "bin" not in res.stdout


@requires_sshd
@pytest.mark.integration
def test_push_to_unknown_app_refused(env: Env) -> None:
    work, _ = _work_repo(env)
    res = env.git("push", "-q", f"{env.base}/nope.git", "main", cwd=work, check=False)
    assert res.returncode != 0
    assert "Unknown app 'nope'. Create it with: yurt apps:create nope" in res.stderr


@requires_sshd
@pytest.mark.integration
def test_path_traversal_refused(env: Env) -> None:
    (env.settings.data_dir / "etc.git").mkdir()
    res = env.ssh("git-receive-pack '../../etc.git'")
    assert res.returncode == 1
    assert "Only git push and fetch" in res.stderr


@requires_sshd
@pytest.mark.integration
def test_unknown_key_refused_by_sshd(env: Env) -> None:
    other = _client_key(env.tmp / "other")
    res = env.ssh("git-upload-pack 'hello.git'", key=other)
    assert res.returncode == 255
    assert "Permission denied" in res.stderr


@requires_sshd
@pytest.mark.integration
def test_removed_key_refused(env: Env) -> None:
    work, _ = _work_repo(env)
    env.git("push", "-q", f"{env.base}/hello.git", "main", cwd=work)
    env.server.sync_keys([])
    res = env.git("push", "-q", f"{env.base}/hello.git", "main:other", cwd=work, check=False)
    assert res.returncode != 0
    assert "Permission denied" in res.stderr


@requires_sshd
@pytest.mark.integration
def test_command_rechecks_key(env: Env) -> None:
    """A key removed after sshd let it in (the race) is refused by the forced command."""
    env.server.sync_keys([])
    args = ["--data-dir", str(env.settings.data_dir), "--key-id", env.key_view.id]
    res = subprocess.run(
        [sys.executable, "-m", "controller.git.ssh_command", *args],
        env={**os.environ, "SSH_ORIGINAL_COMMAND": "git-receive-pack 'hello.git'"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1
    assert "no longer allowed" in res.stderr


@requires_sshd
@pytest.mark.integration
def test_start_refuses_busy_port(env: Env) -> None:
    again = SshServer(Settings(data_dir=env.tmp / "data2", ssh_listen=env.settings.ssh_listen))
    with pytest.raises(SshServerError, match="already listens"):
        again.start()
    again.stop()


# ---------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _client_key(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True
    )
    return path


def _public_key(key: Path) -> str:
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    return f"{kind} {blob}"


def _view(key_id: str, public_key: str) -> KeyView:
    return KeyView(key_id, "test", "SHA256:x", public_key, datetime.now(UTC))


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name
