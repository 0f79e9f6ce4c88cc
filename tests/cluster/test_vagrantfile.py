"""The Vagrantfile: valid Ruby, the documented settings, and every stage script it runs exists."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.cluster.cluster_files import PROVISION, ROOT

VAGRANTFILE = ROOT / "Vagrantfile"


def test_ruby_syntax() -> None:
    ruby = shutil.which("ruby")
    if ruby is None:
        pytest.skip(
            "ruby is not installed, so `ruby -c Vagrantfile` cannot run (apt-get install ruby)"
        )
    done = subprocess.run(
        [ruby, "-c", str(VAGRANTFILE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Syntax OK" in done.stdout


def test_settings_come_from_the_documented_environment_variables() -> None:
    text = VAGRANTFILE.read_text()
    for name in ("YURT_NODES", "YURT_MEMORY", "YURT_CPUS", "YURT_BOX", "YURT_IP_PREFIX"):
        assert re.search(rf'env_int\("{name}"|ENV\.fetch\("{name}"', text), name
        assert f"#   {name}" in text, f"{name} is not documented at the top of the Vagrantfile"
    assert 'ENV.fetch("YURT_BOX", "debian/bookworm64")' in text
    assert '"#{SERVER_IP}.sslip.io"' in text


def test_providers_and_synced_folder() -> None:
    text = VAGRANTFILE.read_text()
    assert 'config.vm.provider "virtualbox"' in text
    assert 'config.vm.provider "libvirt"' in text
    assert re.search(r'synced_folder "\.", "/yurt", type: "rsync"', text)


def test_every_stage_script_is_run_in_order() -> None:
    referenced = re.findall(r'"(vagrant/provision/[^"]+\.sh)"', VAGRANTFILE.read_text())
    on_disk = sorted(p.relative_to(ROOT).as_posix() for p in PROVISION.glob("*.sh"))
    assert referenced == on_disk
