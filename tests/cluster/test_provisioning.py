"""The provisioning scripts: shellcheck-clean, strict, exact versions, verified downloads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cluster.cluster_files import (
    NODE_ENV,
    PROVISION,
    ROOT,
    VAGRANT,
    run_lib,
    shell_scripts,
)

STAGE_SCRIPTS = sorted(PROVISION.glob("*.sh"))
CLUSTER_PACKAGES = {"nomad", "consul", "vault", "docker-ce", "docker-ce-cli", "containerd.io"}


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = [*shell_scripts()]
    assert len(scripts) >= 8, scripts
    done = subprocess.run(
        [shellcheck, "-x", *(str(p.relative_to(ROOT)) for p in scripts)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", STAGE_SCRIPTS, ids=lambda p: p.name)
def test_stage_scripts_are_strict_and_use_the_lib(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    code = [line for line in lines if line and not line.startswith("#")]
    assert code[0] == "set -euo pipefail"
    assert code[1] == 'source "${YURT_DIR:-/yurt}/vagrant/lib.sh"'
    assert re.search(r"^stage ", path.read_text(), re.M), "no progress line for this stage"


def calls(text: str, name: str) -> list[list[str]]:
    """Arguments of each call to `name`, following backslash continuations."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        words = line.split()
        if words and words[0] == name:
            found.append(words[1:])
    return found


def test_apt_get_install_happens_only_in_the_two_helpers() -> None:
    for path in shell_scripts():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "apt-get install" in line:
                assert path.name == "lib.sh", f"{path.name}:{number} installs outside the helpers"
    lib = (VAGRANT / "lib.sh").read_text()
    assert lib.count("apt-get install") == 2


def test_every_pinned_install_names_a_version_variable(versions: dict[str, str]) -> None:
    text = (PROVISION / "1-packages.sh").read_text()
    pinned = calls(text, "apt_install_pinned")
    assert pinned, "no pinned installs found"
    packages = set()
    for args in pinned:
        for arg in args:
            match = re.fullmatch(r'"([a-z0-9.+-]+)=\$\{(\w+)\}(-\$\{(\w+)\})?"', arg)
            assert match, f"not PKG=${{VERSION}}: {arg}"
            packages.add(match[1])
            variable = match[2]
            if variable not in versions:
                # A derived variable, e.g. docker_deb_version="5:${DOCKER_VERSION}-1~debian...".
                assignment = re.search(rf"^{variable}=(.*)$", text, re.M)
                assert assignment, f"{variable} is neither in versions.env nor assigned"
                source = re.search(r"\$\{(\w+_VERSION)\}", assignment[1])
                assert source, f"{variable} is not built from a *_VERSION variable"
                variable = source[1]
            assert variable.endswith("_VERSION") and variable in versions, arg
    assert packages == CLUSTER_PACKAGES - {"containerd.io"}


def test_pinned_versions_are_exact(versions: dict[str, str]) -> None:
    for key, value in versions.items():
        if key.endswith("_VERSION"):
            assert re.fullmatch(r"\d+\.\d+\.\d+", value), f"{key}={value} is not an exact version"
    for key in ("CNI_PLUGINS_SHA256_AMD64", "CNI_PLUGINS_SHA256_ARM64"):
        assert re.fullmatch(r"[0-9a-f]{64}", versions[key]), key
    for key in ("HASHICORP_KEY_FINGERPRINT", "DOCKER_KEY_FINGERPRINT"):
        assert re.fullmatch(r"[0-9A-F]{40}", versions[key]), f"{key} is not a full fingerprint"


def test_distribution_packages_are_only_tools(versions: dict[str, str]) -> None:
    tools = set(versions["DEBIAN_PACKAGES"].split())
    assert tools and not tools & CLUSTER_PACKAGES
    text = (PROVISION / "1-packages.sh").read_text()
    assert calls(text, "apt_install_os") == [['"${debian_packages[@]}"']]


def test_downloads_are_verified() -> None:
    """Every file fetched with curl is a signing key (fingerprint checked) or has a sha256."""
    for path in shell_scripts():
        text = path.read_text()
        for line in text.splitlines():
            match = re.search(r"curl\b.*\s-o\s+(\S+)", line)
            if not match or match[1] == "/dev/null":
                continue
            assert "sha256sum --check" in text or "--show-keys" in text, f"{path.name}: {line}"
    packages = (PROVISION / "1-packages.sh").read_text()
    assert "${CNI_PLUGINS_VERSION}" in packages


def test_signing_key_with_another_fingerprint_is_refused(tmp_path: Path) -> None:
    """add_signed_repo reads the key's primary fingerprint and stops before writing anything."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (apt-get install gnupg)")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    subprocess.run(
        [*gpg, "--passphrase", "", "--quick-gen-key", "Test <t@example.invalid>", "ed25519"],
        check=True,
        capture_output=True,
    )
    key = tmp_path / "key.asc"
    key.write_text(
        subprocess.run(
            [*gpg, "--armor", "--export"], check=True, capture_output=True, text=True
        ).stdout
    )
    colons = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    actual = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    expected = "798AEC654E5C15428C8E42EEAA16FCBCA621E701"
    done = run_lib(
        f'add_signed_repo test "file://{key}" {expected} "http://x bookworm main"', NODE_ENV
    )
    assert done.returncode != 0
    assert f"has fingerprint '{actual}', expected {expected}" in done.stderr
    assert not Path("/etc/apt/sources.list.d/test.list").exists()
