"""Config vars end to end: Vault/OpenBao KV versions pinned per release, ENV_DIR at build time,
the environment at run time, rollback, no leaks, and a config store that is down or sealed."""

from __future__ import annotations

import getpass
import os
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from controller.runtime.local.runtime import private_run_dir
from tests.conftest import ROOT, Server, make_repo, start_server
from tests.integration.test_local_runtime import change, deploy_app, releases

pytestmark = pytest.mark.integration
FIXTURE_PACKS = ROOT / "tests" / "fixtures" / "buildpacks"
PEM = "-----BEGIN KEY-----\nline 'one' \"two\" $HOME `x`\n%(here)s ; # \\ end\n-----END KEY-----\n"


def env_of(srv: Server, key: str, app: str = "web") -> str | None:
    resp = srv.app_get(app, f"/env/{key}")
    return resp.text if resp.status_code == 200 else None


def config(srv: Server, app: str = "web") -> dict[str, object]:
    return srv.api("GET", f"/api/apps/{app}/config").json()  # type: ignore[no-any-return]


def test_config_changes_are_releases_pinned_to_kv_versions(server: Server, tmp_path: Path) -> None:
    deploy_app(server, tmp_path)
    pem = tmp_path / "key.pem"
    pem.write_text(PEM)
    out = server.cli("config:set", "GREETING=hello world", f"PEM=@{pem}", "-a", "web")
    assert "Released v2 (config version 1)" in out.stderr
    assert env_of(server, "GREETING") == "hello world"
    assert env_of(server, "PEM") == PEM
    rel = releases(server, "web")[0]
    assert rel["description"] == "Set GREETING, PEM config vars"
    assert rel["config_version"] == 1 and rel["status"] == "succeeded"
    assert server.cli("config:get", "PEM", "-a", "web").stdout == PEM
    shell = server.cli("config", "--shell", "-a", "web").stdout
    assert "GREETING='hello world'\n" in shell

    server.cli("config:unset", "GREETING", "-a", "web")
    assert env_of(server, "GREETING") is None
    assert releases(server, "web")[0]["description"] == "Unset GREETING config vars"
    # Setting the same value again changes nothing: no new version, no release.
    again = server.api("PATCH", "/api/apps/web/config", json={"vars": {"PEM": PEM}}).json()
    assert again["changed"] == [] and again["release"] is None and again["version"] == 2
    # Rollback restores the code and the config of v2.
    server.cli("rollback", "v2", "-a", "web")
    assert env_of(server, "GREETING") == "hello world"
    # ... as a new config version with v2's values, so config:* shows what runs.
    assert releases(server, "web")[0]["config_version"] == 3
    assert config(server) == {"vars": {"GREETING": "hello world", "PEM": PEM}, "version": 3}
    # --no-restart records; ps:restart releases the pending config.
    server.cli("config:set", "LATER=1", "--no-restart", "-a", "web")
    assert env_of(server, "LATER") is None
    assert config(server)["vars"] == {"GREETING": "hello world", "PEM": PEM, "LATER": "1"}
    server.cli("ps:restart", "-a", "web")
    assert env_of(server, "LATER") == "1"
    assert releases(server, "web")[0]["description"] == "Apply pending config changes"


def test_bad_config_input_is_a_4xx_that_changes_nothing(server: Server, tmp_path: Path) -> None:
    deploy_app(server, tmp_path)
    before = len(releases(server, "web"))
    cases = [
        ({"PORT": "1"}, "reserved"),
        ({"YURT_X": "1"}, "reserved"),
        ({"1BAD": "x"}, "1BAD"),
        ({"BIG": "x" * 40000}, "BIG"),
        ({"NUL": "a\x00b"}, "NUL"),
    ]
    for body, word in cases:
        resp = server.api("PATCH", "/api/apps/web/config", json={"vars": body})
        assert resp.status_code == 422, (body, resp.text)
        assert word in resp.json()["message"]
        assert "x" * 100 not in resp.text
    wrong = server.api("PATCH", "/api/apps/web/config", json={"vars": {"A": 1}})
    assert wrong.status_code == 422
    cli = server.cli("config:set", "NOEQUALS", "-a", "web", check=False)
    assert cli.returncode == 1 and "Error: Invalid argument 'NOEQUALS'" in cli.stderr
    assert len(releases(server, "web")) == before
    assert config(server) == {"vars": {}, "version": 0}


def test_destroying_an_app_destroys_its_config(server: Server) -> None:
    server.cli("apps:create", "gone")
    server.api("PATCH", "/api/apps/gone/config", json={"vars": {"A": "1"}})
    assert config(server, "gone") == {"vars": {"A": "1"}, "version": 1}
    server.cli("apps:destroy", "gone", "--confirm", "gone")
    server.cli("apps:create", "gone")
    assert config(server, "gone") == {"vars": {}, "version": 0}


def test_env_dir_at_build_time_and_nothing_leaks(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--buildpacks-dir", str(FIXTURE_PACKS))
    planted = f"PLANTED-{uuid.uuid4().hex}"
    try:
        srv.cli("apps:create", "web")
        srv.api("PATCH", "/api/apps/web/config", json={"vars": {"SECRET": planted}})
        work = make_repo(tmp_path / "web", ROOT / "tests/fixtures/apps/web", srv.env)
        change(srv, work, "envcopy", **{"__buildpacks": "envcopy\n", "envcopy__marker": ""})
        srv.git("remote", "add", "yurt", f"{srv.url}/web.git", cwd=work)
        push = srv.git("push", "yurt", "main", cwd=work)
        builder = "yurt-web" if os.geteuid() == 0 else getpass.getuser()  # never root as root
        assert f"envcopy as {builder}: SECRET" in push.stderr
        [release_dir] = (srv.data_dir / "apps/web/releases").glob("v1-*")
        assert (release_dir / ".env-at-build" / "SECRET").read_text() == planted
        assert env_of(srv, "SECRET") == planted
        srv.cli("config:set", "OTHER=1", "-a", "web")
        logs = srv.api("GET", "/api/apps/web/logs?lines=1000").text
        build_out = srv.cli("builds:output", "current", "-a", "web").stdout
        outputs = [push.stdout, push.stderr, logs, build_out, srv.log_path.read_text()]
        assert not [o for o in outputs if planted in o]
        # Nothing in the data dir has it (but the app's own release dir, where the build put
        # it on purpose, and OpenBao's encrypted storage).
        leaks = []
        for path in Path(srv.data_dir).resolve().rglob("*"):
            rel = path.relative_to(Path(srv.data_dir).resolve()).as_posix()
            skip = rel.startswith(("openbao/data", "apps/web/releases"))
            if path.is_file() and not skip and planted.encode() in path.read_bytes():
                leaks.append(rel)
        assert leaks == []
        db = sqlite3.connect(Path(srv.data_dir) / "yurt.db")
        dump = "\n".join(db.iterdump())
        assert planted not in dump and "Set OTHER config vars" in dump  # keys named, not values
        # supervisord's confs (the local runtime's "job specs") hold no values either.
        confs = list((private_run_dir(srv.data_dir) / "programs").glob("*.conf"))
        assert confs and not [c for c in confs if planted in c.read_text()]
    finally:
        srv.stop()


def test_concurrent_changes_all_land(server: Server, tmp_path: Path) -> None:
    deploy_app(server, tmp_path)
    errors: list[str] = []

    def writer(prefix: str) -> None:
        for i in range(4):
            resp = server.api("PATCH", "/api/apps/web/config", json={"vars": {f"{prefix}{i}": "v"}})
            if resp.status_code != 200:
                errors.append(resp.text)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    latest = config(server)
    assert sorted(latest["vars"]) == [f"{p}{i}" for p in "AB" for i in range(4)]  # type: ignore[arg-type]
    assert latest["version"] == 8
    current = next(r for r in releases(server, "web") if r["current"])
    assert current["config_version"] == 8  # the running release has every change
    assert env_of(server, "A3") == "v" and env_of(server, "B3") == "v"


def test_sealed_or_down_store_is_a_503_and_apps_keep_running(tmp_path: Path) -> None:
    from tests.secrets.conftest import ROOT_TOKEN, DevBao

    bao = DevBao(tmp_path / "bao")
    bao.start()
    srv = start_server(tmp_path, extra_env={"VAULT_ADDR": bao.addr, "VAULT_TOKEN": ROOT_TOKEN})
    try:
        work = deploy_app(srv, tmp_path)
        srv.cli("config:set", "GREETING=hi", "-a", "web")
        before = len(releases(srv, "web"))
        bao.seal()
        resp = srv.api("PATCH", "/api/apps/web/config", json={"vars": {"X": "1"}})
        assert resp.status_code == 503 and "sealed" in resp.json()["message"]
        assert srv.api("GET", "/api/apps/web/config").status_code == 503
        cli = srv.cli("config", "-a", "web", check=False)
        assert cli.returncode == 1 and "sealed" in cli.stderr
        assert env_of(srv, "GREETING") == "hi"  # running apps keep their config
        change(srv, work, "v2", VERSION="2")
        push = srv.git("push", "yurt", "main", cwd=work, check=False)
        assert push.returncode != 0 and "The build needs the app's config vars" in push.stderr
        assert "sealed" in push.stderr
        assert len(releases(srv, "web")) == before  # the build failed: no release
        bao.unseal()
        srv.cli("config:set", "X=1", "-a", "web")
        assert env_of(srv, "X") == "1" and env_of(srv, "GREETING") == "hi"
        bao.stop()
        down = srv.api("GET", "/api/apps/web/config")
        assert down.status_code == 503 and "unreachable" in down.json()["message"]
    finally:
        srv.stop()
        bao.stop()
