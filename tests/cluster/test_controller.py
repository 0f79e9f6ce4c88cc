"""The Yurt controller on the demo cluster: stage 7, its systemd unit and env file, and the
host-side scripts (vagrant/yurt-login, vagrant/smoke.sh), checked against the real CLI.

No VM boots: the unit's command line and the scripts' `yurt ...` calls are compared with what
`yurt --help` (the CLI of this checkout) says exists, and the env file with the variables the
server really reads.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.runtime.nomad.client import NomadSettings
from controller.secrets.store import VaultSettings
from controller.server import server_command
from tests.cluster.cluster_files import (
    CONFIG,
    PROVISION,
    ROOT,
    VAGRANT,
    read_env_file,
    shell_scripts,
)

Contract = dict[str, str]
YURT_CONFIG = CONFIG / "yurt"
STAGE = PROVISION / "7-yurt.sh"
SMOKE = VAGRANT / "smoke.sh"
LOGIN = VAGRANT / "yurt-login"


# -- the real CLI -----------------------------------------------------------------------------


def yurt_argv() -> list[str]:
    """The `yurt` executable of this venv (.venv/bin/yurt), else the package run as a module."""
    script = Path(sys.executable).with_name("yurt")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "controller.cli"]


@functools.cache
def cli_help(*command: str) -> str:
    done = subprocess.run(
        [*yurt_argv(), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@functools.cache
def cli_commands() -> frozenset[str]:
    """Command names as `yurt --help` lists them (indented lines of the command sections)."""
    names = re.findall(r"^  ([a-z][a-z0-9:-]*)  ", cli_help(), re.M)
    assert "server" in names and "apps:create" in names, names
    return frozenset(names)


def options_of(*command: str) -> set[str]:
    """Every option spelling `yurt COMMAND --help` shows, e.g. {"-a", "--app", "--json"}."""
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", cli_help(*command)))


# -- the unit and the env file ----------------------------------------------------------------


def unit(name: str = "yurt.service") -> dict[str, list[str]]:
    """KEY -> values of a systemd unit file (sections merged; repeated keys accumulate)."""
    values: dict[str, list[str]] = {}
    for line in (YURT_CONFIG / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    return values


def exec_start() -> list[str]:
    (command,) = unit()["ExecStart"]
    return shlex.split(command)


def stage_var(name: str) -> str:
    """NAME=value as assigned in 7-yurt.sh, with $VARS it uses expanded from earlier ones."""
    assigned: dict[str, str] = {}
    for match in re.finditer(r"^([A-Z_]+)=(\S+)$", STAGE.read_text(), re.M):
        value = re.sub(
            r"\$\{?([A-Z_]+)\}?", lambda m: assigned.get(m[1], m[0]), match[2].strip('"')
        )
        assigned[match[1]] = value
    return assigned[name]


class Recording(dict[str, str]):
    """An environment that remembers every variable a from_env reads."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def server_env_vars() -> set[str]:
    """What `yurt server` reads from its environment: its options' env vars, and the Nomad,
    Consul and Vault variables read by NomadSettings/VaultSettings.from_env."""
    names = set()
    for param in server_command.params:
        envvar = getattr(param, "envvar", None)
        names.update([envvar] if isinstance(envvar, str) else envvar or [])
    env = Recording({"VAULT_ADDR": "http://v:8200", "VAULT_TOKEN": "t"})
    NomadSettings.from_env(env)
    VaultSettings.from_env(env)
    return names | env.read


def test_the_unit_runs_the_server_with_options_it_has(contract: Contract) -> None:
    argv = exec_start()
    assert argv[:2] == [f"{stage_var('VENV')}/bin/yurt", "server"]
    offered = options_of("server")
    given = [a.split("=", 1)[0] for a in argv[2:] if a.startswith("-")]
    assert given, argv
    for option in given:
        assert option in offered, f"yurt server has no option {option}"
    pairs = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert pairs["--runtime"] == "nomad"
    assert pairs["--listen"] == f"0.0.0.0:{contract['YURT_CONTROLLER_PORT']}"
    assert pairs["--data-dir"] == stage_var("DATA_DIR") == "/var/lib/yurt"


def test_the_unit_reads_the_root_only_env_file_and_drops_root() -> None:
    service = unit()
    assert service["EnvironmentFile"] == [stage_var("ENV_FILE")] == ["/etc/yurt/yurt.env"]
    assert service["User"] == ["yurt"]
    assert service["StateDirectory"] == ["yurt"]  # /var/lib/yurt, owned by the user
    assert service["Restart"] == ["on-failure"]
    assert service["WantedBy"] == ["multi-user.target"]
    after = " ".join(service["After"]).split()
    assert {"nomad.service", "consul.service", "vault.service"} <= set(after)
    script = STAGE.read_text()
    assert re.search(
        r'install_config "\$CONFIG_DIR/yurt/yurt.env" "\$ENV_FILE" 0600 root:root', script
    )
    assert "useradd --system" in script


def test_the_env_file_names_only_what_the_server_reads(contract: Contract) -> None:
    env = read_env_file(YURT_CONFIG / "yurt.env")
    unknown = set(env) - server_env_vars()
    assert not unknown, f"yurt server reads none of {sorted(unknown)}"
    required = {
        "NOMAD_ADDR",
        "NOMAD_NAMESPACE",
        "CONSUL_HTTP_ADDR",
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "YURT_REGISTRY",
        "YURT_BUILDER_IMAGE",
        "YURT_STACK_IMAGE",
        "YURT_CLUSTER_URL",
        "YURT_PUBLIC_URL",
        "YURT_BASE_DOMAIN",
        "YURT_ROUTER",
    }
    assert required <= set(env)
    # Nothing the unit's command line sets already (an option beats its env var, confusingly).
    given = {a for a in exec_start() if a.startswith("--")}
    for param in server_command.params:
        if getattr(param, "envvar", None) in env:
            assert not set(param.opts) & given, param.opts


def test_the_env_file_agrees_with_the_contract(contract: Contract) -> None:
    env = read_env_file(YURT_CONFIG / "yurt.env")
    registry = contract["YURT_REGISTRY_ADDR"]
    assert env["NOMAD_ADDR"] == f"http://127.0.0.1:{contract['YURT_NOMAD_PORT']}"
    assert env["NOMAD_NAMESPACE"] == contract["YURT_NOMAD_NAMESPACE"]
    assert env["CONSUL_HTTP_ADDR"] == f"http://127.0.0.1:{contract['YURT_CONSUL_PORT']}"
    assert env["VAULT_ADDR"] == f"http://127.0.0.1:{contract['YURT_VAULT_PORT']}"
    assert env["VAULT_TOKEN"] == "@VAULT_TOKEN@"
    assert env["YURT_REGISTRY"] == registry
    assert env["YURT_BUILDER_IMAGE"] == f"{registry}/yurt/builder:latest"
    assert env["YURT_STACK_IMAGE"] == f"{registry}/yurt/stack:latest"
    controller = f"http://@NODE_IP@:{contract['YURT_CONTROLLER_PORT']}"
    assert env["YURT_PUBLIC_URL"] == env["YURT_CLUSTER_URL"] == controller
    assert env["YURT_BASE_DOMAIN"] == "@YURT_BASE_DOMAIN@"
    assert env["YURT_ROUTER"] in ("traefik", "fabio", "both")
    assert env["YURT_DATACENTERS"] == contract["YURT_DATACENTER"]
    # The server's own defaults say the same, so the file only makes them explicit.
    assert "[default: REGISTRY/yurt/builder:latest]" in " ".join(cli_help("server").split())


def test_the_stage_pushes_the_images_the_controller_names(contract: Contract) -> None:
    env = read_env_file(YURT_CONFIG / "yurt.env")
    registry = contract["YURT_REGISTRY_ADDR"]
    expand = {"YURT_REGISTRY_ADDR": registry}
    builder = re.sub(r"\$(\w+)", lambda m: expand[m[1]], stage_var("BUILDER_IMAGE"))
    stack = re.sub(r"\$(\w+)", lambda m: expand[m[1]], stage_var("STACK_IMAGE"))
    assert (builder, stack) == (env["YURT_BUILDER_IMAGE"], env["YURT_STACK_IMAGE"])
    script = STAGE.read_text().replace("\\\n", " ")
    for name in ("builder", "stack"):
        assert (ROOT / "images" / name / "Dockerfile").is_file()
        assert f'-f "$SRC/images/{name}/Dockerfile"' in script
        assert f'docker push --quiet "${name.upper()}_IMAGE"' in script
    # The builder's tools trust the same plain-HTTP registry the Docker daemons do.
    assert '--build-arg "INSECURE_REGISTRY=$YURT_REGISTRY_ADDR"' in script
    assert '--build-arg "STACK_IMAGE=$STACK_IMAGE"' in script
    daemon = (CONFIG / "docker" / "daemon.json").read_text()
    assert f'"insecure-registries": ["{registry}"]' in daemon


def test_the_controller_gets_a_periodic_token_with_its_policy() -> None:
    script = STAGE.read_text().replace("\\\n", " ")
    create = re.search(r"vault token create ([^)]*)\)", script)
    assert create, "no vault token create"
    args = create[1].split()
    assert '-policy="$YURT_VAULT_CONTROLLER_POLICY"' in args
    assert '-period="$TOKEN_PERIOD"' in args
    assert "-orphan" in args
    assert "vault token renew" in script
    renew = unit("yurt-vault-renew.service")
    assert renew["EnvironmentFile"] == ["/etc/yurt/yurt.env"]
    assert renew["ExecStart"] == ["/usr/bin/vault token renew"]
    assert renew["StandardOutput"] == ["null"]  # the CLI would print the token
    timer = unit("yurt-vault-renew.timer")
    assert timer["OnUnitActiveSec"] == ["1h"]
    assert "systemctl enable --quiet --now yurt-vault-renew.timer" in script


def test_the_namespaces_exist_before_the_controller_starts() -> None:
    script = STAGE.read_text()
    check = script.index('for namespace in "$YURT_NOMAD_NAMESPACE" "$YURT_NOMAD_RELEASE_NAMESPACE"')
    assert check < script.index("service_up yurt")
    services = (PROVISION / "6-services.sh").read_text()
    assert services.count("nomad namespace apply") == 2


def test_the_vagrantfile_runs_the_yurt_stage_last_on_node1_every_time() -> None:
    text = (ROOT / "Vagrantfile").read_text()
    stages = re.findall(r'\["(\w+)", "(vagrant/provision/[^"]+)", :(\w+), (true|false)\]', text)
    names = [name for name, *_ in stages]
    assert names[-2:] == ["services", "yurt"]
    assert stages[-1] == ("yurt", "vagrant/provision/7-yurt.sh", "server", "true")
    assert 'ports["YURT_CONTROLLER_PORT"]' in text


# -- the host-side scripts --------------------------------------------------------------------


def yurt_calls(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, command, following words) of each `yurt COMMAND ...` in the script's
    code, comments left out; `yurt` as git's remote name (`git push yurt main`) is not one."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split(" #", 1)[0]
        if code.lstrip().startswith("#"):
            continue
        code = re.sub(r"\b(push|get-url) yurt\b", r"\1 REMOTE", code)
        for match in re.finditer(r"(?:^|[\s;(&|'\"])yurt ([a-z][a-z0-9:-]*)([^|;)&]*)", code):
            yield number, match[1], match[2].split()


@pytest.mark.parametrize("path", [SMOKE, LOGIN], ids=lambda p: p.name)
def test_scripts_use_only_commands_and_options_the_cli_has(path: Path) -> None:
    calls = list(yurt_calls(path))
    assert calls, f"no yurt commands found in {path.name}"
    for number, command, words in calls:
        assert command in cli_commands(), f"{path.name}:{number}: no command yurt {command}"
        offered = options_of(command)
        for word in words:
            option = word.split("=", 1)[0]
            if re.fullmatch(r"--?[a-zA-Z][\w-]*", option):
                assert option in offered, f"{path.name}:{number}: yurt {command} has no {option}"


def test_the_smoke_test_covers_the_user_steps() -> None:
    used = {command for _, command, _ in yurt_calls(SMOKE)}
    assert {
        "apps:create",
        "config:set",
        "ps:scale",
        "ps",
        "rollback",
        "logs",
        "apps:destroy",
    } <= used
    text = SMOKE.read_text()
    assert "git push yurt main" in text
    assert 'cp -R "$root/examples/hello-python"' in text
    assert (ROOT / "examples" / "hello-python" / "Procfile").is_file()
    assert "Hello from Yurt" in (ROOT / "examples" / "hello-python" / "app.py").read_text()
    assert '"$root/vagrant/yurt-login"' in text


def test_every_wait_in_the_smoke_test_has_a_deadline() -> None:
    """No bare loops: waits go through `eventually SECONDS ...`, long commands through
    `run_for SECONDS ...` (the yurt wrapper included), curl has --max-time."""
    code = [line for line in SMOKE.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(code)
    assert re.findall(r"^\s*(while|until)\b", text, re.M) == ["until"]  # inside eventually()
    assert re.search(r'yurt\(\) \{\n\s+run_for "\$CMD_TIMEOUT" "\$YURT_CLI" "\$@"', text)
    assert re.search(r'run_for "\$PUSH_TIMEOUT" git push yurt main', text)
    for line in code:
        if re.search(r"\bcurl -", line):
            assert "--max-time" in line, line
        if line.lstrip().startswith("eventually "):
            assert re.match(r'\s*eventually "\$\w+_TIMEOUT" ', line), line


@pytest.mark.parametrize("path", [SMOKE, LOGIN], ids=lambda p: p.name)
def test_host_scripts_are_strict_executables(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert re.search(r"^set -E?euo pipefail$", path.read_text(), re.M)
    assert os.access(path, os.X_OK), f"chmod +x {path.relative_to(ROOT)}"
    assert path in shell_scripts(), "the shellcheck test must cover it"


def test_yurt_login_reads_what_the_controller_writes() -> None:
    text = LOGIN.read_text()
    assert f"sudo cat {stage_var('DATA_DIR')}/admin-token" in text
    assert stage_var("ENV_FILE") in text
    assert "YURT_PUBLIC_URL" in read_env_file(YURT_CONFIG / "yurt.env")
    # The token reaches `yurt login` through YURT_TOKEN, the env var its --token reads.
    token_param = next(p for p in _login_params() if p.name == "token")
    assert token_param.envvar == "YURT_TOKEN"
    assert 'YURT_TOKEN=$token "$yurt_cli" login --url "$url"' in text


def _login_params() -> list[Any]:
    from controller.cli.auth import login

    return list(login.params)


def test_docs_show_only_commands_the_cli_has() -> None:
    """Every `yurt ...` in docs/cluster.md's console blocks exists."""
    docs = (ROOT / "docs" / "cluster.md").read_text()
    used = set(re.findall(r"^\s*\$ yurt ([a-z][a-z0-9:-]*)", docs, re.M))
    assert {"apps:create", "config:set", "ps:scale", "rollback", "logs"} <= used
    assert used <= cli_commands(), used - cli_commands()
