"""vagrant/cluster.env is the one place for the values the cluster and the controller share.

Each test reads a value from cluster.env and the file on the cluster side that must agree with
it (agent configs, Vault policy/role, jobs), so neither side can drift alone.
"""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlsplit

from controller.secrets.vault_setup import VaultSetupSettings, vault_objects
from tests.cluster.cluster_files import (
    CONFIG,
    JOBS,
    PROVISION,
    ROOT,
    VAGRANT,
    as_list,
    load_hcl,
    load_json,
)

Contract = dict[str, str]


def port_of(address: str) -> int:
    """Port of host:port or scheme://host:port."""
    parsed = urlsplit(address if "://" in address else f"tcp://{address}")
    assert parsed.port is not None, address
    return parsed.port


def test_contract_is_plain_and_bash_reads_it_the_same(contract: Contract) -> None:
    expected = {
        "YURT_NOMAD_PORT",
        "YURT_CONSUL_PORT",
        "YURT_CONSUL_DNS_PORT",
        "YURT_VAULT_PORT",
        "YURT_DATACENTER",
        "YURT_NOMAD_NAMESPACE",
        "YURT_NOMAD_RELEASE_NAMESPACE",
        "YURT_VAULT_JWT_MOUNT",
        "YURT_VAULT_AUDIENCE",
        "YURT_VAULT_ROLE",
        "YURT_VAULT_APP_POLICY",
        "YURT_VAULT_CONTROLLER_POLICY",
        "YURT_KV_MOUNT",
        "YURT_KV_PREFIX",
        "YURT_REGISTRY_ADDR",
        "YURT_ROUTER_PORT",
        "YURT_TRAEFIK_ENTRYPOINT",
        "YURT_TASK_DNS",
        "YURT_CONTROLLER_PORT",
    }
    assert set(contract) == expected
    for key, value in contract.items():
        assert re.fullmatch(r"[A-Za-z0-9._:/-]+", value), f"{key}={value!r} is not a plain token"
    sourced = subprocess.run(
        ["bash", "-c", f'set -a; source "{VAGRANT / "cluster.env"}"; env -0'],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from_bash = dict(item.split("=", 1) for item in sourced.split("\0") if item.startswith("YURT_"))
    assert from_bash == contract


def test_nomad_agents_agree(contract: Contract) -> None:
    nomad = load_hcl(CONFIG / "nomad" / "common.hcl")
    assert nomad["ports"]["http"] == int(contract["YURT_NOMAD_PORT"])
    assert nomad["datacenter"] == contract["YURT_DATACENTER"]
    assert port_of(nomad["consul"]["address"]) == int(contract["YURT_CONSUL_PORT"])
    vault = nomad["vault"]
    assert vault["jwt_auth_backend_path"] == contract["YURT_VAULT_JWT_MOUNT"]
    assert vault["default_identity"]["aud"] == [contract["YURT_VAULT_AUDIENCE"]]
    assert port_of(vault["address"]) == int(contract["YURT_VAULT_PORT"])


def test_consul_agents_and_dns_agree(contract: Contract) -> None:
    consul = load_hcl(CONFIG / "consul" / "common.hcl")
    assert consul["datacenter"] == contract["YURT_DATACENTER"]
    assert consul["ports"]["http"] == int(contract["YURT_CONSUL_PORT"])
    assert consul["ports"]["dns"] == int(contract["YURT_CONSUL_DNS_PORT"])
    dnsmasq = (CONFIG / "system" / "dnsmasq-consul.conf").read_text().splitlines()
    assert f"server=/consul/127.0.0.1#{contract['YURT_CONSUL_DNS_PORT']}" in dnsmasq
    assert f"listen-address={contract['YURT_TASK_DNS']}" in dnsmasq


def test_docker_daemons_agree(contract: Contract) -> None:
    daemon = load_json(CONFIG / "docker" / "daemon.json")
    assert contract["YURT_REGISTRY_ADDR"] in daemon["insecure-registries"]
    assert daemon["dns"] == [contract["YURT_TASK_DNS"]]
    assert daemon["bip"].split("/")[0] == contract["YURT_TASK_DNS"]


def test_vault_server_and_jwt_auth_agree(contract: Contract) -> None:
    server = load_hcl(CONFIG / "vault" / "server.hcl")
    assert port_of(server["listener"]["tcp"]["address"]) == int(contract["YURT_VAULT_PORT"])
    auth = load_json(CONFIG / "vault" / "jwt-auth-config.json")
    jwks = urlsplit(auth["jwks_url"])
    assert jwks.port == int(contract["YURT_NOMAD_PORT"])
    assert jwks.path == "/.well-known/jwks.json"
    assert auth["default_role"] == contract["YURT_VAULT_ROLE"]


def test_vault_role_admits_only_app_and_release_jobs(contract: Contract) -> None:
    """An app's service job (namespace yurt) and its release phase (yurt-release, the same job
    ID) log in; builds and cluster services (namespace default) do not."""
    role = load_json(CONFIG / "vault" / "jwt-app-role.json")
    assert role["role_type"] == "jwt", "Vault and OpenBao default role_type to oidc"
    assert role["bound_audiences"] == [contract["YURT_VAULT_AUDIENCE"]]
    namespaces = [contract["YURT_NOMAD_NAMESPACE"], contract["YURT_NOMAD_RELEASE_NAMESPACE"]]
    assert role["bound_claims"] == {"nomad_namespace": namespaces}
    assert "default" not in namespaces
    assert role["user_claim"] == "/nomad_job_id"
    assert role["user_claim_json_pointer"] is True
    assert role["claim_mappings"]["nomad_job_id"] == "nomad_job_id"
    assert role["token_policies"] == [contract["YURT_VAULT_APP_POLICY"]]


def test_app_policy_reads_only_the_apps_own_secret(contract: Contract) -> None:
    paths = load_hcl(CONFIG / "vault" / "app-policy.hcl")["path"]
    job_id = "{{identity.entity.aliases.@JWT_ACCESSOR@.metadata.nomad_job_id}}"
    own = f"{contract['YURT_KV_MOUNT']}/data/{contract['YURT_KV_PREFIX']}/{job_id}"
    assert paths == {own: {"capabilities": ["read"]}}


def test_vault_setup_writes_the_files_as_they_are(contract: Contract) -> None:
    """With cluster.env's names, `yurt admin:vault-setup` writes exactly what the files say
    (the accessor filled in), so it and 5-vault.sh's `vault write @file` agree."""
    settings = VaultSetupSettings.from_contract(contract)
    objects = vault_objects(settings, "auth_jwt_0123", contract=contract)
    vault = CONFIG / "vault"
    assert objects.role == load_json(vault / "jwt-app-role.json")
    assert objects.auth_config == load_json(vault / "jwt-auth-config.json")
    app_policy = (vault / "app-policy.hcl").read_text().replace("@JWT_ACCESSOR@", "auth_jwt_0123")
    assert objects.policies == {
        contract["YURT_VAULT_APP_POLICY"]: app_policy,
        contract["YURT_VAULT_CONTROLLER_POLICY"]: (vault / "controller-policy.hcl").read_text(),
    }
    script = (PROVISION / "5-vault.sh").read_text()
    for name in (
        "jwt-auth-config.json",
        "jwt-app-role.json",
        "app-policy.hcl",
        "controller-policy.hcl",
    ):
        assert f"$CONFIG_DIR/vault/{name}" in script, name


def test_both_app_namespaces_exist_on_the_cluster(contract: Contract) -> None:
    script = (PROVISION / "6-services.sh").read_text().replace("\\\n", " ")
    applied = re.findall(r"nomad namespace apply .*?\"\$(\w+)\"", script)
    assert applied == ["YURT_NOMAD_NAMESPACE", "YURT_NOMAD_RELEASE_NAMESPACE"]


def test_controller_policy_stays_under_the_apps_prefix(contract: Contract) -> None:
    paths = load_hcl(CONFIG / "vault" / "controller-policy.hcl")["path"]
    mount, prefix = contract["YURT_KV_MOUNT"], contract["YURT_KV_PREFIX"]
    allowed = re.compile(rf"{re.escape(mount)}/(data|metadata)/{re.escape(prefix)}(/\*)?")
    assert paths
    for path in paths:
        assert allowed.fullmatch(path), path


def test_registry_job_is_the_contract_address(contract: Contract) -> None:
    host, port = contract["YURT_REGISTRY_ADDR"].rsplit(":", 1)
    service_name, _, domain = host.partition(".")
    assert domain == "service.consul"
    group = load_hcl(JOBS / "registry.nomad.hcl")["job"]["registry"]["group"]["registry"]
    (service,) = as_list(group["service"])
    assert service["name"] == service_name
    assert group["network"]["port"][service["port"]]["static"] == int(port)


def test_traefik_job_serves_the_router_port(contract: Contract) -> None:
    group = load_hcl(JOBS / "traefik.nomad.hcl")["job"]["traefik"]["group"]["traefik"]
    assert group["network"]["port"]["http"]["static"] == int(contract["YURT_ROUTER_PORT"])
    args = group["task"]["traefik"]["config"]["args"]
    entrypoint, router_port = contract["YURT_TRAEFIK_ENTRYPOINT"], contract["YURT_ROUTER_PORT"]
    assert f"--entrypoints.{entrypoint}.address=:{router_port}" in args
    assert "--providers.consulcatalog.exposedByDefault=false" in args
    consul = f"127.0.0.1:{contract['YURT_CONSUL_PORT']}"
    assert f"--providers.consulcatalog.endpoint.address={consul}" in args


def test_fabio_job_serves_the_router_port(contract: Contract) -> None:
    group = load_hcl(JOBS / "fabio.nomad.hcl")["job"]["fabio"]["group"]["fabio"]
    assert group["network"]["port"]["http"]["static"] == int(contract["YURT_ROUTER_PORT"])
    args = group["task"]["fabio"]["config"]["args"]
    assert f"-proxy.addr=:{contract['YURT_ROUTER_PORT']}" in args
    assert f"-registry.consul.addr=127.0.0.1:{contract['YURT_CONSUL_PORT']}" in args


def test_cli_profile_uses_the_contract_ports(contract: Contract) -> None:
    profile = (CONFIG / "system" / "profile.sh").read_text()
    ports = dict(re.findall(r"export (\w+_ADDR)=\"[^\"]*:(\d+)\"", profile))
    assert ports == {
        "NOMAD_ADDR": contract["YURT_NOMAD_PORT"],
        "CONSUL_HTTP_ADDR": contract["YURT_CONSUL_PORT"],
        "VAULT_ADDR": contract["YURT_VAULT_PORT"],
    }


def test_scripts_take_names_from_the_contract(contract: Contract) -> None:
    """Scripts use $YURT_... instead of repeating a contract value, so a change is one edit."""
    keys = (
        "YURT_VAULT_JWT_MOUNT",
        "YURT_VAULT_ROLE",
        "YURT_VAULT_AUDIENCE",
        "YURT_VAULT_CONTROLLER_POLICY",
        "YURT_NOMAD_RELEASE_NAMESPACE",
        "YURT_REGISTRY_ADDR",
        "YURT_KV_PREFIX",
    )
    sources = [*PROVISION.glob("*.sh"), VAGRANT / "lib.sh", ROOT / "Vagrantfile"]
    for path in sources:
        code = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
        for key in keys:
            hits = [line for line in code if contract[key] in line]
            assert not hits, f"{path.name} repeats {key}={contract[key]}: {hits}"


def test_hello_job_is_an_app_as_the_contract_describes(contract: Contract) -> None:
    """vagrant/jobs/hello.nomad.hcl stands in for a controller-rendered app job (issue #5)."""
    (job_id, job) = next(iter(load_hcl(JOBS / "hello.nomad.hcl")["job"].items()))
    assert job["namespace"] == contract["YURT_NOMAD_NAMESPACE"]
    group = job["group"]["web"]
    tags = group["service"]["tags"]
    assert "traefik.enable=true" in tags
    assert (
        f"traefik.http.routers.{job_id}.entrypoints={contract['YURT_TRAEFIK_ENTRYPOINT']}" in tags
    )
    task = group["task"]["web"]
    assert task["vault"]["role"] == contract["YURT_VAULT_ROLE"]
    secret = f'secret "{contract["YURT_KV_MOUNT"]}/data/{contract["YURT_KV_PREFIX"]}/{job_id}"'
    assert secret in task["template"]["data"]
