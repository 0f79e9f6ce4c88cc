"""ConfigStore against a real OpenBao dev server."""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

import pytest

from controller.errors import (
    ConfigStoreUnavailable,
    ConfigVersionNotFound,
    InvalidConfig,
    InvalidParams,
)
from controller.secrets.store import ConfigChange, ConfigStore, ConfigVersion, VaultSettings
from tests.secrets.conftest import PLANTED, ROOT_TOKEN, DevBao


def kv_metadata(bao: DevBao, app: str) -> dict[str, object]:
    meta = bao.root().secrets.kv.v2.read_secret_metadata(f"yurt/apps/{app}", mount_point="secret")
    return dict(meta["data"])


def assert_hidden(err: BaseException, *values: str) -> None:
    """Neither the message nor the formatted traceback (with its chain) shows a value."""
    text = "".join(traceback.format_exception(err))
    for value in (PLANTED, *values):
        assert value not in text


# --- reading and changing ------------------------------------------------------------------------


def test_no_config_yet_is_version_zero(store: ConfigStore, app: str) -> None:
    assert store.read(app) == ConfigVersion(0, {})
    assert store.read(app, version=0) == ConfigVersion(0, {})


def test_set_get_unset(store: ConfigStore, app: str) -> None:
    first = store.change(app, {"DATABASE_URL": "postgres://db", "MULTI": "a\nb\n"})
    assert first.changed and first.previous_version == 0
    assert first.config == ConfigVersion(1, {"DATABASE_URL": "postgres://db", "MULTI": "a\nb\n"})
    assert store.read(app) == first.config

    second = store.change(app, {}, ["MULTI"])
    assert second.unset_keys == ("MULTI",) and second.set_keys == ()
    assert store.read(app) == ConfigVersion(2, {"DATABASE_URL": "postgres://db"})


def test_one_change_of_many_keys_is_one_version(
    shared_bao: DevBao, store: ConfigStore, app: str
) -> None:
    store.change(app, {"A": "1", "B": "2", "C": "3"})
    change = store.change(app, {"A": "10", "B": "2", "D": "4", "E": "5"}, ["C", "MISSING"])
    assert change.config == ConfigVersion(2, {"A": "10", "B": "2", "D": "4", "E": "5"})
    assert change.set_keys == ("A", "D", "E")  # B kept its value
    assert change.unset_keys == ("C",)  # unsetting a missing key is a no-op, as on Heroku
    assert kv_metadata(shared_bao, app)["current_version"] == 2


def test_change_that_changes_nothing_writes_nothing(
    shared_bao: DevBao, store: ConfigStore, app: str
) -> None:
    store.change(app, {"A": "1"})
    same = store.change(app, {"A": "1"}, ["NOT_SET"])
    assert not same.changed
    assert same.config == ConfigVersion(1, {"A": "1"}) and same.previous_version == 1
    assert kv_metadata(shared_bao, app)["current_version"] == 1
    empty = store.change(f"{app}-new", {}, ["NOT_SET"])
    assert not empty.changed and empty.config == ConfigVersion(0, {})


def test_old_versions_stay_readable(shared_bao: DevBao, store: ConfigStore, app: str) -> None:
    for i in range(1, 13):  # more than KV v2's default of 10 kept versions
        store.change(app, {"N": str(i)})
    assert store.read(app, version=1) == ConfigVersion(1, {"N": "1"})
    assert store.read(app, version=7) == ConfigVersion(7, {"N": "7"})
    assert store.read(app) == ConfigVersion(12, {"N": "12"})
    assert kv_metadata(shared_bao, app)["max_versions"] == store.keep_versions


def test_missing_deleted_and_destroyed_versions(
    shared_bao: DevBao, store: ConfigStore, app: str
) -> None:
    for value in ("a", "b", "c"):
        store.change(app, {"K": PLANTED + value})
    kv = shared_bao.root().secrets.kv.v2
    kv.delete_secret_versions(f"yurt/apps/{app}", [1], mount_point="secret")
    kv.destroy_secret_versions(f"yurt/apps/{app}", [2], mount_point="secret")
    cases = [(1, "was deleted"), (2, "was destroyed"), (9, "does not exist")]
    for version, why in cases:
        with pytest.raises(ConfigVersionNotFound) as caught:
            store.read(app, version=version)
        assert (caught.value.status, caught.value.id) == (404, "config_version_not_found")
        assert caught.value.message == f"Config version {version} of app {app} {why}."
        assert_hidden(caught.value)
    assert store.read(app, version=3).values == {"K": PLANTED + "c"}
    with pytest.raises(InvalidParams):
        store.read(app, version=-1)


def test_destroy_removes_every_version(store: ConfigStore, app: str) -> None:
    store.change(app, {"A": "1"})
    store.change(app, {"B": "2"})
    store.destroy(app)
    assert store.read(app) == ConfigVersion(0, {})
    with pytest.raises(ConfigVersionNotFound):
        store.read(app, version=1)
    store.destroy(app)  # destroying nothing is fine
    assert store.change(app, {"C": "3"}).config == ConfigVersion(1, {"C": "3"})


def test_invalid_app_names_never_reach_a_path(store: ConfigStore) -> None:
    for name in ("../x", "Upper", "a/b", "x"):
        with pytest.raises(InvalidParams):
            store.read(name)
        with pytest.raises(InvalidParams):
            store.change(name, {"A": "1"})


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("set_values", "unset"),
    [
        ({"bad-key": PLANTED}, []),
        ({"PORT": PLANTED}, []),
        ({"YURT_X": PLANTED}, []),
        ({}, ["DYNO"]),
        ({"K": PLANTED + "\0"}, []),
        ({"K": PLANTED * 2000}, []),
        ({"OK": "fine", "K": PLANTED + "x" * 40_000}, []),
    ],
)
def test_invalid_changes_are_refused_whole(
    store: ConfigStore, app: str, set_values: dict[str, str], unset: list[str]
) -> None:
    store.change(app, {"BEFORE": "1"})
    with pytest.raises(InvalidConfig) as caught:
        store.change(app, set_values, unset)
    assert caught.value.status == 422
    assert_hidden(caught.value)
    assert store.read(app) == ConfigVersion(1, {"BEFORE": "1"})


def test_total_size_counts_what_is_already_set(store: ConfigStore, app: str) -> None:
    big = "x" * 30_000
    store.change(app, {"A": big, "B": big})
    with pytest.raises(InvalidConfig) as caught:
        store.change(app, {"C": PLANTED + "y" * 10_000})
    assert "Setting C would make the app's config" in caught.value.message
    assert_hidden(caught.value)
    assert store.read(app).version == 1
    store.change(app, {"C": "small"}, ["A"])  # room once A is gone


# --- concurrency -----------------------------------------------------------------------------------


def run_threads(*targets: object) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


@pytest.mark.parametrize("separate_stores", [False, True], ids=["one-store", "two-stores"])
def test_concurrent_changes_all_land(shared_bao: DevBao, app: str, separate_stores: bool) -> None:
    """2 threads x 20 changes: within one store they queue, across stores (like two controller
    processes) check-and-set makes the loser re-read and re-apply."""
    stores = [shared_bao.store(), shared_bao.store()]
    if not separate_stores:
        stores[1] = stores[0]

    def writer(name: str, store: ConfigStore) -> None:
        for i in range(20):
            store.change(app, {f"{name}_{i}": str(i)})

    assert run_threads(lambda: writer("T1", stores[0]), lambda: writer("T2", stores[1])) == []
    final = stores[0].read(app)
    assert final.version == 40
    assert final.values == {f"{n}_{i}": str(i) for n in ("T1", "T2") for i in range(20)}


def test_a_write_in_between_is_reapplied_not_lost(
    shared_bao: DevBao, app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic CAS conflict: another writer lands between our read and our write."""
    ours, theirs = shared_bao.store(), shared_bao.store()
    ours.change(app, {"BASE": "0"})
    real_read = ours.read
    interfered: list[ConfigChange] = []

    def read_then_interfere(app_: str, version: int | None = None) -> ConfigVersion:
        config = real_read(app_, version)
        if not interfered:
            interfered.append(theirs.change(app, {"THEIRS": "1"}, ["BASE"]))
        return config

    monkeypatch.setattr(ours, "read", read_then_interfere)
    change = ours.change(app, {"OURS": "1"})
    assert change.config == ConfigVersion(3, {"THEIRS": "1", "OURS": "1"})
    assert change.previous_version == 2


# --- faults ----------------------------------------------------------------------------------------


def test_sealed_then_unsealed_with_the_same_object(own_bao: DevBao, app: str) -> None:
    store = own_bao.store()
    store.change(app, {"A": PLANTED})
    own_bao.seal()
    for call in (
        lambda: store.read(app),
        lambda: store.change(app, {"B": PLANTED + "b"}),
        lambda: store.destroy(app),
        store.ping,
    ):
        with pytest.raises(ConfigStoreUnavailable) as caught:
            call()
        err = caught.value
        assert (err.status, err.id) == (503, "config_store_unavailable")
        assert err.message == f"The config store at {own_bao.addr} is sealed."
        assert err.__cause__ is None and err.__suppress_context__
        assert_hidden(err, PLANTED + "b")
    own_bao.unseal()
    store.ping()
    assert store.change(app, {"B": "2"}).config == ConfigVersion(2, {"A": PLANTED, "B": "2"})


def test_down_then_back_with_the_same_object(own_bao: DevBao, app: str) -> None:
    store = own_bao.store(timeout=2)
    store.change(app, {"A": "1"})
    own_bao.stop()
    with pytest.raises(ConfigStoreUnavailable) as caught:
        store.change(app, {"B": PLANTED})
    assert caught.value.message == (
        f"The config store at {own_bao.addr} is unreachable: Connection refused."
    )
    assert_hidden(caught.value)
    own_bao.start()  # dev mode keeps nothing in memory across restarts; same root token
    assert store.read(app) == ConfigVersion(0, {})
    assert store.change(app, {"B": "2"}).config == ConfigVersion(1, {"B": "2"})


def test_a_token_without_permission(own_bao: DevBao, app: str) -> None:
    root = own_bao.root()
    root.sys.create_or_update_acl_policy(
        "elsewhere", 'path "secret/data/other/*" { capabilities = ["read"] }'
    )
    token = root.auth.token.create(policies=["elsewhere"])["auth"]["client_token"]
    store = own_bao.store(token=token)
    with pytest.raises(ConfigStoreUnavailable) as caught:
        store.change(app, {"A": PLANTED})
    assert "denied access (403)" in caught.value.message
    assert_hidden(caught.value, token)
    with pytest.raises(ConfigStoreUnavailable):
        own_bao.store(token="not-a-token").ping()


def test_a_missing_mount(shared_bao: DevBao, app: str) -> None:
    with pytest.raises(ConfigStoreUnavailable) as caught:
        shared_bao.store(mount="nothing-here").read(app)
    assert caught.value.message.endswith("has no KV v2 mount at nothing-here/.")


def test_custom_mount_and_prefix(own_bao: DevBao, app: str) -> None:
    own_bao.root().sys.enable_secrets_engine("kv", path="yurt-kv", options={"version": "2"})
    store = own_bao.store(mount="yurt-kv", prefix="teams/blue")
    store.change(app, {"A": "1"})
    raw = own_bao.root().secrets.kv.v2.read_secret_version(
        f"teams/blue/{app}", mount_point="yurt-kv", raise_on_deleted_version=True
    )
    assert raw["data"]["data"] == {"A": "1"}
    assert store.data_path(app) == f"yurt-kv/data/teams/blue/{app}"
    with pytest.raises(ValueError):
        ConfigStore(own_bao.addr, token=ROOT_TOKEN, prefix='x" { }')


def test_approle_logs_in_again_when_its_token_is_revoked(own_bao: DevBao, app: str) -> None:
    root = own_bao.root()
    root.sys.enable_auth_method("approle")
    root.sys.create_or_update_acl_policy(
        "yurt", 'path "secret/*" { capabilities = ["create", "read", "update", "list"] }'
    )
    root.auth.approle.create_or_update_approle("yurt", token_policies=["yurt"])
    role_id = root.auth.approle.read_role_id("yurt")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("yurt")["data"]["secret_id"]
    store = ConfigStore(own_bao.addr, role_id=role_id, secret_id=secret_id)
    store.change(app, {"A": "1"})
    root.auth.token.revoke(store._client.token)  # as if it had expired
    assert store.change(app, {"B": "2"}).config.version == 2

    wrong = ConfigStore(own_bao.addr, role_id=role_id, secret_id="wrong")
    with pytest.raises(ConfigStoreUnavailable) as caught:
        wrong.ping()
    assert "refused the AppRole login" in caught.value.message


def test_tls_with_a_ca_file(tmp_path: Path, app: str) -> None:
    bao = DevBao(tmp_path / "tls-bao", tls=True)
    bao.start()
    try:
        settings = VaultSettings.from_env(
            {"VAULT_ADDR": bao.addr, "VAULT_TOKEN": ROOT_TOKEN, "VAULT_CACERT": bao.ca_cert}
        )
        assert settings is not None
        ConfigStore.from_settings(settings).change(app, {"A": "1"})
        with pytest.raises(ConfigStoreUnavailable) as caught:
            ConfigStore(bao.addr, token=ROOT_TOKEN).ping()  # system CAs only: refused
        assert "failed TLS verification" in caught.value.message
    finally:
        bao.stop()


# --- settings --------------------------------------------------------------------------------------


def test_settings_from_env() -> None:
    assert VaultSettings.from_env({}) is None
    full = VaultSettings.from_env(
        {
            "VAULT_ADDR": "https://vault:8200",
            "VAULT_TOKEN": "t",
            "VAULT_CACERT": "/ca.pem",
            "YURT_VAULT_MOUNT": "kv",
            "YURT_VAULT_PREFIX": "paas/apps",
        }
    )
    assert full == VaultSettings(
        "https://vault:8200", "t", None, None, "/ca.pem", True, "kv", "paas/apps"
    )
    assert full.tls_verify == "/ca.pem"
    approle = VaultSettings.from_env(
        {
            "VAULT_ADDR": "https://v",
            "VAULT_ROLE_ID": "r",
            "VAULT_SECRET_ID": "s",
            "VAULT_SKIP_VERIFY": "true",
        }
    )
    assert approle is not None
    assert (approle.role_id, approle.secret_id, approle.tls_verify) == ("r", "s", False)
    assert (approle.mount, approle.prefix) == ("secret", "yurt/apps")
    with pytest.raises(ValueError, match="no credentials"):
        VaultSettings.from_env({"VAULT_ADDR": "https://v"})


def test_store_needs_exactly_one_way_to_log_in() -> None:
    with pytest.raises(ValueError):
        ConfigStore("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        ConfigStore("http://127.0.0.1:1", token="t", role_id="r", secret_id="s")
