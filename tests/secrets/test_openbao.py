"""The embedded OpenBao: real ``bao`` with persistent (Raft) storage in a temp state dir."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import hvac
import hvac.exceptions as hv
import pytest

from controller.daemon import Daemon
from controller.errors import ConfigStoreUnavailable
from controller.secrets.openbao import POLICY_NAME, EmbeddedOpenBao, check_loopback
from controller.secrets.store import ConfigVersion
from tests.secrets.conftest import PLANTED, free_port_pair

MakeBao = Callable[[], EmbeddedOpenBao]


def bao_pid(bao: EmbeddedOpenBao) -> int:
    return int((bao.state_dir / "bao.pid").read_text())


def root_client(bao: EmbeddedOpenBao) -> hvac.Client:
    keys = json.loads(bao.init_path.read_text())
    return hvac.Client(bao.addr, token=keys["root_token"])


@pytest.fixture
def make_bao(tmp_path: Path) -> Iterator[MakeBao]:
    """Builds EmbeddedOpenBao objects on one state dir and port; kills their bao at teardown."""
    state_dir = tmp_path / "openbao"
    listen = f"127.0.0.1:{free_port_pair()}"
    made: list[EmbeddedOpenBao] = []

    def make() -> EmbeddedOpenBao:
        made.append(EmbeddedOpenBao(state_dir, listen))
        return made[-1]

    yield make
    for bao in made:
        with contextlib.suppress(Exception):
            bao.stop()
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((state_dir / "bao.pid").read_text()), signal.SIGKILL)


@pytest.fixture
def bao(make_bao: MakeBao) -> EmbeddedOpenBao:
    first = make_bao()
    assert first.start() is True
    return first


def test_first_start_initialises_with_private_files(bao: EmbeddedOpenBao) -> None:
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(bao.state_dir) == 0o700
    assert mode(bao.data_dir) == 0o700
    assert mode(bao.init_path) == 0o600
    assert mode(bao.token_path) == 0o600
    keys = json.loads(bao.init_path.read_text())
    assert len(keys["unseal_keys_b64"]) == 1 and keys["root_token"]
    assert bao.alive()

    store = bao.store()
    store.change("web-app", {"SECRET": PLANTED})
    assert store.read("web-app") == ConfigVersion(1, {"SECRET": PLANTED})

    log = bao.log_path.read_text()
    token = bao.controller_token()
    for secret in (keys["root_token"], keys["unseal_keys_b64"][0], token, PLANTED):
        assert secret not in log
    assert json.loads(bao.config_path.read_text())["listener"][0]["tcp"]["tls_disable"] is True


def test_controller_token_is_limited_to_yurts_paths(bao: EmbeddedOpenBao) -> None:
    token = bao.controller_token()
    keys = json.loads(bao.init_path.read_text())
    assert token != keys["root_token"]
    client = hvac.Client(bao.addr, token=token)
    info = client.auth.token.lookup_self()["data"]
    assert info["policies"] == [POLICY_NAME]
    assert info["period"] > 0 and info["orphan"] is True

    client.secrets.kv.v2.create_or_update_secret("yurt/apps/ok", {"A": "1"})
    denied = [
        lambda: client.sys.read_acl_policy(POLICY_NAME),
        lambda: client.sys.list_acl_policies(),
        lambda: client.secrets.kv.v2.create_or_update_secret("other", {"A": "1"}),
        lambda: client.secrets.kv.v2.read_secret_version(
            "yurt/other", raise_on_deleted_version=True
        ),
        lambda: client.auth.token.create(policies=[POLICY_NAME]),
        lambda: client.sys.enable_secrets_engine("kv", path="mine"),
    ]
    for call in denied:
        with pytest.raises(hv.Forbidden):
            call()


def test_stop_and_start_keeps_data_token_and_unseals(make_bao: MakeBao) -> None:
    first = make_bao()
    first.start()
    first.store().change("web-app", {"A": "1", "B": PLANTED})
    token = first.controller_token()
    first.stop()
    assert not first.alive()

    second = make_bao()
    assert second.start() is True
    assert second.alive()
    assert second.controller_token() == token  # still valid, so reused
    assert second.store().read("web-app") == ConfigVersion(1, {"A": "1", "B": PLANTED})


def test_kill_9_then_ensure_running(bao: EmbeddedOpenBao) -> None:
    store = bao.store()
    store.change("web-app", {"A": "1"})
    os.kill(bao_pid(bao), signal.SIGKILL)
    with pytest.raises(ConfigStoreUnavailable, match="is unreachable"):
        store.read("web-app")
    assert not bao.alive()

    assert bao.ensure_running() is True
    assert bao.alive()
    assert store.read("web-app") == ConfigVersion(1, {"A": "1"})  # same store object
    assert bao.ensure_running() is False


def test_sealed_is_unsealed_by_ensure_running(bao: EmbeddedOpenBao) -> None:
    store = bao.store()
    store.change("web-app", {"A": "1"})
    root_client(bao).sys.seal()
    with pytest.raises(ConfigStoreUnavailable, match="is sealed"):
        store.change("web-app", {"B": PLANTED})
    assert bao.ensure_running() is True
    assert store.change("web-app", {"B": "2"}).config.version == 2


def test_reattaches_to_the_running_server(bao: EmbeddedOpenBao, make_bao: MakeBao) -> None:
    pid = bao_pid(bao)
    bao.store().change("web-app", {"A": "1"})
    again = make_bao()  # as a restarted controller would
    assert again.start() is False
    assert bao_pid(again) == pid
    assert again.store().read("web-app").values == {"A": "1"}


def test_a_revoked_controller_token_is_replaced(bao: EmbeddedOpenBao) -> None:
    store = bao.store()
    store.change("web-app", {"A": "1"})
    old = bao.controller_token()
    root_client(bao).auth.token.revoke(old)
    assert store.change("web-app", {"B": "2"}).config.version == 2  # 403, new token, retried
    assert bao.controller_token() != old
    assert bao.token_path.read_text().strip() == bao.controller_token()


def test_a_foreign_process_in_the_pid_file_is_not_ours(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        pid_path = tmp_path / "x.pid"
        pid_path.write_text(f"{sleeper.pid}\n")
        daemon = Daemon(
            [sys.executable, "-c", "import time; time.sleep(30)"],
            pid_path=pid_path,
            log_path=tmp_path / "x.log",
            cwd=tmp_path,
            env={},
        )
        assert daemon.pid() is None  # a live pid, but not our command: never signalled
        ours = daemon.spawn()
        assert daemon.pid() == ours
        daemon.stop()
        assert daemon.pid() is None and not pid_path.exists()
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("listen", ["0.0.0.0:8200", "10.1.2.3:8200", "localhost:8200", "8200"])
def test_refuses_a_listener_off_loopback(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedOpenBao(tmp_path, listen)
    assert check_loopback("[::1]:8200") == "[::1]:8200"
