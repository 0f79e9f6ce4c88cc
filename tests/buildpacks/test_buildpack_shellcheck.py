"""Every buildpack shell script passes shellcheck (following the files it sources)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.buildpacks.harness import BUILDPACKS_SOURCE


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    patterns = ("*/bin/*", "*/lib/*.sh", "_lib/*.sh")
    scripts = sorted(path for pattern in patterns for path in BUILDPACKS_SOURCE.glob(pattern))
    assert len(scripts) >= 14, scripts
    done = subprocess.run(
        [shellcheck, "-x", *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
