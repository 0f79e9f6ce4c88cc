"""Every HCL/JSON file of the demo cluster parses, and holds the settings the cluster relies on."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.cluster.cluster_files import (
    CONFIG,
    JOBS,
    NODE_ENV,
    VAGRANT,
    as_list,
    load_hcl,
    load_json,
    run_lib,
)

HCL_FILES = sorted(VAGRANT.rglob("*.hcl"))
JSON_FILES = sorted(VAGRANT.rglob("*.json"))
NODE_PLACEHOLDERS = {"@NODE_NAME@", "@NODE_IP@", "@NODE_IFACE@", "@SERVER_IP@"}
# Placeholders beyond the node's that a stage fills in for one file (render NAME=VALUE).
EXTRA_PLACEHOLDERS = {
    "app-policy.hcl": {"JWT_ACCESSOR": "auth_jwt_0123"},  # filled by 5-vault.sh's own sed
    "yurt.env": {"VAULT_TOKEN": "hvs.token&with|odd\\chars", "YURT_BASE_DOMAIN": "x.sslip.io"},
}


def test_the_cluster_has_configs_and_jobs() -> None:
    names = {p.relative_to(VAGRANT).as_posix() for p in HCL_FILES}
    assert {
        "config/consul/common.hcl",
        "config/consul/server.hcl",
        "config/consul/client.hcl",
        "config/nomad/common.hcl",
        "config/nomad/server.hcl",
        "config/nomad/client.hcl",
        "config/vault/server.hcl",
        "config/vault/app-policy.hcl",
        "jobs/registry.nomad.hcl",
        "jobs/traefik.nomad.hcl",
        "jobs/fabio.nomad.hcl",
    } <= names


@pytest.mark.parametrize("path", HCL_FILES, ids=lambda p: p.relative_to(VAGRANT).as_posix())
def test_hcl_parses(path: Path) -> None:
    assert load_hcl(path), f"{path} is empty"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.relative_to(VAGRANT).as_posix())
def test_json_parses(path: Path) -> None:
    assert load_json(path)


def test_configs_use_only_known_placeholders() -> None:
    for path in sorted(CONFIG.rglob("*")):
        if not path.is_file():
            continue
        found = set(re.findall(r"@[A-Z_]+@", path.read_text()))
        extra = {f"@{name}@" for name in EXTRA_PLACEHOLDERS.get(path.name, {})}
        allowed = NODE_PLACEHOLDERS | extra
        assert found <= allowed, f"{path.name}: unknown placeholders {found - allowed}"


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(CONFIG.rglob("*")) if p.is_file() and p.name != "app-policy.hcl"],
    ids=lambda p: p.relative_to(VAGRANT).as_posix(),
)
def test_configs_render_for_a_node(path: Path) -> None:
    """lib.sh's render fills every placeholder (node ones, and the file's NAME=VALUE extras,
    whatever characters the values hold), and the result still parses."""
    extra = EXTRA_PLACEHOLDERS.get(path.name, {})
    args = " ".join(shlex.quote(f"{k}={v}") for k, v in extra.items())
    done = run_lib(f"render {path} {args}", NODE_ENV)
    assert done.returncode == 0, done.stderr
    assert not re.search(r"@[A-Z_]+@", done.stdout)
    for name, value in extra.items():
        assert value in done.stdout, name
    if path.suffix == ".hcl":
        import pygohcl

        assert pygohcl.loads(done.stdout)


def test_render_refuses_an_unknown_placeholder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hcl"
    bad.write_text('x = "@TYPO@"\n')
    done = run_lib(f"render {bad}", NODE_ENV)
    assert done.returncode != 0
    assert "unknown placeholder" in done.stderr


def test_render_refuses_a_node_address_no_interface_has() -> None:
    done = run_lib(
        f"render {CONFIG / 'nomad' / 'client.hcl'}", {**NODE_ENV, "NODE_IP": "198.51.100.254"}
    )
    assert done.returncode != 0
    assert "no interface has address 198.51.100.254" in done.stderr


def test_install_config_changes_a_file_only_once(tmp_path: Path) -> None:
    dest = tmp_path / "etc" / "consul.hcl"
    src = CONFIG / "consul" / "common.hcl"
    owner = '"$(id -un):$(id -gn)"'
    snippet = f"""
install_config {src} {dest} 0640 {owner}; echo "first=$CHANGED"
CHANGED=0
install_config {src} {dest} 0640 {owner}; echo "second=$CHANGED"
"""
    done = run_lib(snippet, NODE_ENV)
    assert done.returncode == 0, done.stderr
    assert "first=1" in done.stdout
    assert "second=0" in done.stdout
    assert oct(dest.stat().st_mode & 0o777) == "0o640"


def test_nomad_agent_settings() -> None:
    common = load_hcl(CONFIG / "nomad" / "common.hcl")
    assert common["advertise"] == {
        "http": "@NODE_IP@",
        "rpc": "@NODE_IP@",
        "serf": "@NODE_IP@",
    }
    assert common["consul"]["client_auto_join"] is True
    assert common["vault"]["enabled"] is True
    assert common["vault"]["default_identity"]["ttl"]

    server = load_hcl(CONFIG / "nomad" / "server.hcl")
    assert server["server"] == {"enabled": True, "bootstrap_expect": 1}

    client = load_hcl(CONFIG / "nomad" / "client.hcl")
    assert client["client"]["enabled"] is True
    assert client["client"]["network_interface"] == "@NODE_IFACE@"
    assert client["client"]["cni_path"] == "/opt/cni/bin"
    docker = client["plugin"]["docker"]["config"]
    assert docker["volumes"]["enabled"] is True, "the build job mounts the Docker socket"
    assert docker["allow_privileged"] is True, "the build job may run a privileged builder"


def test_node1_host_volumes_back_the_registry_job() -> None:
    volumes = load_hcl(CONFIG / "nomad" / "host-volumes.hcl")["client"]["host_volume"]
    registry = load_hcl(JOBS / "registry.nomad.hcl")["job"]["registry"]["group"]["registry"]
    source = registry["volume"]["storage"]["source"]
    assert source in volumes
    assert volumes[source]["read_only"] is False


def test_consul_agent_settings() -> None:
    common = load_hcl(CONFIG / "consul" / "common.hcl")
    assert common["acl"] == {"enabled": False}
    assert common["bind_addr"] == common["advertise_addr"] == "@NODE_IP@"
    assert common["retry_join"] == ["@SERVER_IP@"]
    server = load_hcl(CONFIG / "consul" / "server.hcl")
    assert server["server"] is True
    assert server["bootstrap_expect"] == 1
    assert load_hcl(CONFIG / "consul" / "client.hcl")["server"] is False


def test_vault_server_settings() -> None:
    vault = load_hcl(CONFIG / "vault" / "server.hcl")
    assert "raft" in vault["storage"]
    listener = vault["listener"]["tcp"]
    assert listener["tls_disable"] is True  # demo only, stated in docs/cluster.md
    assert vault["api_addr"].startswith("http://@NODE_IP@:")


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.nomad.hcl")), ids=lambda p: p.name)
def test_job_files_hold_one_job_with_pinned_images(path: Path) -> None:
    jobs = load_hcl(path)["job"]
    assert len(jobs) == 1, "Nomad accepts exactly one job per file"
    (job,) = jobs.values()
    images = [
        task["config"]["image"]
        for group in job["group"].values()
        for task in group["task"].values()
        if task["driver"] == "docker"
    ]
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{image} is not pinned"


def test_traefik_runs_on_every_node() -> None:
    job = load_hcl(JOBS / "traefik.nomad.hcl")["job"]["traefik"]
    assert job["type"] == "system"
    checks = as_list(job["group"]["traefik"]["service"]["check"])
    assert any(check["path"] == "/ping" for check in checks)
