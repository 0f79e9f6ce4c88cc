"""``setup_vault`` and ``yurt admin:vault-setup`` against a real OpenBao dev server.

The tests log in through the JWT auth method with tokens they sign themselves, shaped like
Nomad's workload identities, and check what the resulting Vault token may and may not read.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions as hv
import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controller.cli import cli
from controller.secrets.vault_setup import (
    CREATED,
    UNCHANGED,
    UPDATED,
    VaultSetupError,
    VaultSetupSettings,
    read_contract,
    setup_vault,
    vault_objects,
)
from tests.conftest import free_port
from tests.secrets.conftest import ROOT_TOKEN, DevBao

KV = "secret"  # the dev server's KV v2 mount, and the cluster's


class Signer:
    """An RSA key standing in for Nomad's workload identity signing key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex

    @property
    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def identity(self, job: str, namespace: str = "yurt", **claims: Any) -> str:
        """A workload identity token as Nomad issues it for task ``web`` of ``job``."""
        now = int(time.time())
        alloc = str(uuid.uuid4())
        payload = {
            "aud": ["vault.io"],
            "sub": f"global:{namespace}:{job}:web:web:vault_default",
            "nomad_namespace": namespace,
            "nomad_job_id": job,
            "nomad_task": "web",
            "nomad_allocation_id": alloc,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


def settings(signer: Signer, **overrides: Any) -> VaultSetupSettings:
    return VaultSetupSettings.from_contract(
        read_contract(), jwt_validation_pubkeys=(signer.public_pem,), **overrides
    )


def login(
    bao: DevBao, token: str, role: str | None = "yurt-app", mount: str = "jwt-nomad"
) -> hvac.Client:
    """Log in as Nomad's client does; returns a client holding the issued Vault token."""
    client = hvac.Client(bao.addr)
    body = {"jwt": token} if role is None else {"jwt": token, "role": role}
    answer = client.write_data(f"auth/{mount}/login", data=body)
    client.token = answer["auth"]["client_token"]
    return client


def read_config(client: hvac.Client, app: str, version: int | None = None, mount: str = KV) -> Any:
    return client.secrets.kv.v2.read_secret_version(
        f"yurt/apps/{app}", mount_point=mount, version=version, raise_on_deleted_version=True
    )["data"]["data"]


def put_config(bao: DevBao, app: str, values: dict[str, str], mount: str = KV) -> None:
    bao.root().secrets.kv.v2.create_or_update_secret(f"yurt/apps/{app}", values, mount_point=mount)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def cluster_bao(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> Iterator[DevBao]:
    """One server set up as the cluster's (cluster.env names), with config for alpha and beta."""
    bao = DevBao(tmp_path_factory.mktemp("vault-setup"))
    bao.start()
    try:
        setup_vault(bao.root(), settings(signer))
        put_config(bao, "alpha", {"GREETING": "alpha-v1"})
        put_config(bao, "alpha", {"GREETING": "alpha-v2"})
        put_config(bao, "beta", {"GREETING": "beta-secret"})
        yield bao
    finally:
        bao.stop()


# --- setting up ----------------------------------------------------------------------------------


def test_second_run_changes_nothing(own_bao: DevBao, signer: Signer) -> None:
    first = setup_vault(own_bao.root(), settings(signer))
    outcomes = {step.what.split(" (")[0]: step.outcome for step in first}
    assert outcomes == {
        "KV v2 secrets engine at secret/": UNCHANGED,  # a dev server starts with one
        "JWT auth method at jwt-nomad/": CREATED,
        "auth config of jwt-nomad/": CREATED,
        "policy yurt-app": CREATED,
        "policy yurt-controller": CREATED,
        "role yurt-app at jwt-nomad/": CREATED,
    }
    second = setup_vault(own_bao.root(), settings(signer))
    assert [s.what for s in second] == [s.what for s in first]
    assert not any(step.changed for step in second), second


def test_role_is_jwt_and_admits_the_two_namespaces(cluster_bao: DevBao) -> None:
    role = cluster_bao.root().read("auth/jwt-nomad/role/yurt-app")["data"]
    assert role["role_type"] == "jwt"
    assert role["bound_claims"] == {"nomad_namespace": ["yurt", "yurt-release"]}
    assert role["bound_audiences"] == ["vault.io"]
    assert role["token_policies"] == ["yurt-app"]
    assert role["user_claim"] == "/nomad_job_id"


def test_app_policy_names_the_auth_methods_accessor(cluster_bao: DevBao) -> None:
    root = cluster_bao.root()
    accessor = root.sys.list_auth_methods()["data"]["jwt-nomad/"]["accessor"]
    policy = root.sys.read_acl_policy("yurt-app")["data"]["policy"]
    assert f"{{{{identity.entity.aliases.{accessor}.metadata.nomad_job_id}}}}" in policy
    assert "@JWT_ACCESSOR@" not in policy


def test_drift_is_put_back(own_bao: DevBao, signer: Signer) -> None:
    root = own_bao.root()
    setup_vault(root, settings(signer))
    root.write_data(
        "auth/jwt-nomad/role/yurt-app",
        data={"role_type": "jwt", "bound_claims": {"nomad_namespace": "*"}},
    )
    root.sys.create_or_update_acl_policy("yurt-app", 'path "secret/*" { capabilities = ["read"] }')
    steps = {s.what.split(" (")[0]: s.outcome for s in setup_vault(root, settings(signer))}
    assert steps["role yurt-app at jwt-nomad/"] == UPDATED
    assert steps["policy yurt-app"] == UPDATED
    assert steps["policy yurt-controller"] == UNCHANGED
    assert root.read("auth/jwt-nomad/role/yurt-app")["data"]["bound_claims"] == {
        "nomad_namespace": ["yurt", "yurt-release"]
    }


def test_other_names_are_mapped_onto_the_files(own_bao: DevBao, signer: Signer) -> None:
    """Another cluster's mount, prefix-keeping policies and role name: the same objects."""
    custom = settings(
        signer,
        kv_mount="apps-kv",
        jwt_mount="nomad-wi",
        role="apps",
        app_policy="apps-read",
        controller_policy="apps-admin",
        namespace="prod",
        release_namespace="prod-release",
    )
    steps = setup_vault(own_bao.root(), custom)
    assert steps[0].outcome == CREATED and steps[0].what == "KV v2 secrets engine at apps-kv/"
    assert not any(s.changed for s in setup_vault(own_bao.root(), custom))
    put_config(own_bao, "alpha", {"A": "1"}, mount="apps-kv")
    put_config(own_bao, "beta", {"B": "2"}, mount="apps-kv")

    client = login(own_bao, signer.identity("alpha", "prod-release"), role="apps", mount="nomad-wi")
    assert read_config(client, "alpha", mount="apps-kv") == {"A": "1"}
    with pytest.raises(hv.Forbidden):
        read_config(client, "beta", mount="apps-kv")
    with pytest.raises(hv.InvalidRequest, match='"nomad_namespace" does not match'):
        login(own_bao, signer.identity("alpha", "yurt"), role="apps", mount="nomad-wi")
    admin = own_bao.root().sys.read_acl_policy("apps-admin")["data"]["policy"]
    assert 'path "apps-kv/metadata/yurt/apps/*"' in admin and '"secret/' not in admin


def test_a_kv_v1_mount_is_refused(own_bao: DevBao, signer: Signer) -> None:
    own_bao.root().sys.enable_secrets_engine("kv", path="old-kv", options={"version": "1"})
    with pytest.raises(VaultSetupError, match=r"old-kv/ is already mounted as a KV version 1"):
        setup_vault(own_bao.root(), settings(signer, kv_mount="old-kv"))


def test_an_auth_method_of_another_type_is_refused(own_bao: DevBao, signer: Signer) -> None:
    own_bao.root().sys.enable_auth_method("approle", path="jwt-nomad")
    with pytest.raises(VaultSetupError, match=r"auth/jwt-nomad/ is already a approle"):
        setup_vault(own_bao.root(), settings(signer))


def test_a_token_without_rights_gets_a_clear_error(cluster_bao: DevBao, signer: Signer) -> None:
    weak = cluster_bao.root().auth.token.create(policies=["default"], ttl="5m")["auth"]
    client = hvac.Client(cluster_bao.addr, token=weak["client_token"])
    with pytest.raises(VaultSetupError, match="permission denied") as err:
        setup_vault(client, settings(signer))
    assert "manage mounts" in str(err.value)


def test_policy_paths_outside_the_prefix_are_not_moved(tmp_path: Path, signer: Signer) -> None:
    contract = read_contract()
    config = Path(__file__).resolve().parents[2] / "vagrant" / "config" / "vault"
    for name in ("jwt-auth-config.json", "jwt-app-role.json", "app-policy.hcl"):
        (tmp_path / name).write_text((config / name).read_text())
    (tmp_path / "controller-policy.hcl").write_text('path "sys/*" { capabilities = ["sudo"] }\n')
    with pytest.raises(VaultSetupError, match="outside secret/"):
        vault_objects(
            settings(signer, kv_mount="kv2"), "auth_jwt_1", contract=contract, config_dir=tmp_path
        )
    same = vault_objects(settings(signer), "auth_jwt_1", contract=contract, config_dir=tmp_path)
    assert same.policies["yurt-controller"].startswith('path "sys/*"')  # same names: verbatim


# --- what the issued tokens may do ---------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["yurt", "yurt-release"])
def test_an_apps_jobs_read_only_their_own_config(
    cluster_bao: DevBao, signer: Signer, namespace: str
) -> None:
    client = login(cluster_bao, signer.identity("alpha", namespace))
    assert read_config(client, "alpha") == {"GREETING": "alpha-v2"}
    assert read_config(client, "alpha", version=1) == {"GREETING": "alpha-v1"}
    with pytest.raises(hv.Forbidden):
        read_config(client, "beta")
    with pytest.raises(hv.Forbidden):
        client.secrets.kv.v2.create_or_update_secret("yurt/apps/alpha", {"X": "1"}, mount_point=KV)
    with pytest.raises(hv.Forbidden):
        client.secrets.kv.v2.list_secrets("yurt/apps", mount_point=KV)
    with pytest.raises(hv.Forbidden):
        client.secrets.kv.v2.read_secret_metadata("yurt/apps/alpha", mount_point=KV)


def test_default_role_is_the_apps_role(cluster_bao: DevBao, signer: Signer) -> None:
    """Nomad logs in without a role when a task's vault block names none."""
    client = login(cluster_bao, signer.identity("beta"), role=None)
    assert read_config(client, "beta") == {"GREETING": "beta-secret"}
    with pytest.raises(hv.Forbidden):
        read_config(client, "alpha")


@pytest.mark.parametrize(
    ("namespace", "claims", "reason"),
    [
        ("default", {}, 'claim "nomad_namespace" does not match'),  # builds, cluster services
        ("yurt-build", {}, 'claim "nomad_namespace" does not match'),
        ("yurt", {"aud": ["another-audience"]}, "invalid audience"),
        ("yurt", {"exp": int(time.time()) - 600, "nbf": int(time.time()) - 4000}, "expired"),
    ],
    ids=["default-namespace", "other-namespace", "wrong-audience", "expired"],
)
def test_other_identities_are_refused_at_login(
    cluster_bao: DevBao, signer: Signer, namespace: str, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(hv.InvalidRequest, match=reason):
        login(cluster_bao, signer.identity("alpha", namespace, **claims))


def test_a_token_signed_by_another_key_is_refused(cluster_bao: DevBao) -> None:
    with pytest.raises(hv.InvalidRequest, match="signature"):
        login(cluster_bao, Signer().identity("alpha"))


# --- yurt admin:vault-setup ----------------------------------------------------------------------


@pytest.fixture
def jwks_url(signer: Signer) -> Iterator[str]:
    """Nomad's /.well-known/jwks.json, served for OpenBao to fetch."""
    body = json.dumps(signer.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def run_cli(*args: str, env: dict[str, str]) -> Any:
    base = {"VAULT_TOKEN": ROOT_TOKEN, "VAULT_CACERT": "", "VAULT_SKIP_VERIFY": ""}
    return CliRunner().invoke(cli, ["admin:vault-setup", *args], env={**base, **env})


def test_cli_sets_up_vault_with_a_jwks_url(own_bao: DevBao, signer: Signer, jwks_url: str) -> None:
    first = run_cli("--jwks-url", jwks_url, env={"VAULT_ADDR": own_bao.addr})
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"Vault at {own_bao.addr}:\n")
    assert f"  created    auth config of jwt-nomad/ (keys from {jwks_url})" in first.stdout
    assert (
        "  created    role yurt-app at jwt-nomad/ (jwt; Nomad namespaces yurt and yurt-release)"
        in first.stdout
    )
    assert "  unchanged  KV v2 secrets engine at secret/" in first.stdout
    assert first.stdout.endswith("Done: 5 of 6 objects created or updated.\n")

    second = run_cli("--jwks-url", jwks_url, env={"VAULT_ADDR": own_bao.addr})
    assert second.exit_code == 0, second.output
    assert second.stdout.count("  unchanged  ") == 6
    assert second.stdout.endswith("Nothing changed: everything was already in place.\n")

    put_config(own_bao, "alpha", {"GREETING": "hi"})
    assert read_config(login(own_bao, signer.identity("alpha")), "alpha") == {"GREETING": "hi"}


def test_cli_names_come_from_the_environment(
    own_bao: DevBao, signer: Signer, tmp_path: Path
) -> None:
    key = tmp_path / "nomad.pub"
    key.write_text(signer.public_pem)
    env = {"VAULT_ADDR": own_bao.addr, "YURT_VAULT_ROLE": "apps", "YURT_VAULT_JWT_MOUNT": "wi"}
    done = run_cli("--jwt-validation-pubkey", str(key), env=env)
    assert done.exit_code == 0, done.output
    assert "role apps at wi/" in done.stdout
    assert own_bao.root().read("auth/wi/config")["data"]["default_role"] == "apps"


def test_cli_unreachable_vault_is_one_error_line() -> None:
    done = run_cli(env={"VAULT_ADDR": f"http://127.0.0.1:{free_port()}"})
    assert done.exit_code == 1
    assert done.stderr.startswith(
        "Error: checking the secrets engine at secret/: cannot reach Vault"
    )
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.output


def test_cli_jwks_url_vault_cannot_fetch(own_bao: DevBao) -> None:
    url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    done = run_cli("--jwks-url", url, env={"VAULT_ADDR": own_bao.addr})
    assert done.exit_code == 1
    assert done.stderr.startswith(
        "Error: writing auth/jwt-nomad/config: Vault answered: error checking jwks URL"
    )
    assert "can the Vault server reach Nomad there?" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"VAULT_ADDR": ""}, "Error: VAULT_ADDR is not set"),
        (
            (),
            {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": ""},
            "Error: VAULT_ADDR is set but there are no credentials",
        ),
        (
            ("--kv-mount", "a b"),
            {"VAULT_ADDR": "http://127.0.0.1:1"},
            "Error: invalid kv mount 'a b'",
        ),
        (
            ("--release-namespace", "yurt"),
            {"VAULT_ADDR": "http://127.0.0.1:1"},
            "Error: the app and release namespaces must differ",
        ),
        (
            ("--jwks-url", "file:///etc/passwd"),
            {"VAULT_ADDR": "http://127.0.0.1:1"},
            "Error: the JWKS URL must be",
        ),
        (
            ("--jwt-validation-pubkey", "/nonexistent.pem"),
            {"VAULT_ADDR": "http://127.0.0.1:1"},
            "Error: Cannot read /nonexistent.pem",
        ),
    ],
)
def test_cli_refuses_bad_settings(args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    done = run_cli(*args, env=env)
    assert done.exit_code == 1, done.output
    assert done.stderr.startswith(message), done.stderr


def test_cli_help_says_what_it_creates() -> None:
    done = CliRunner().invoke(cli, ["admin:vault-setup", "--help"])
    assert done.exit_code == 0
    text = " ".join(done.stdout.split())
    for words in (
        "KV v2 secrets engine",
        "JWT auth method",
        "app policy",
        "controller policy",
        "role_type jwt",
        "release namespace",
        "[env var: YURT_KV_MOUNT]",
    ):
        assert words in text, words
