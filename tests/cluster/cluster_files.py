"""The demo cluster's files as the tests read them: paths, env files, HCL and the provisioning lib.

No VM boots in these tests. They parse what `vagrant up` would install and run the parts of
the provisioning that work without one (placeholder rendering, key fingerprint checks).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pygohcl

ROOT = Path(__file__).resolve().parents[2]
VAGRANT = ROOT / "vagrant"
CONFIG = VAGRANT / "config"
JOBS = VAGRANT / "jobs"
PROVISION = VAGRANT / "provision"

ENV_LINE = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines; comments and blank lines skipped; one level of double quotes removed."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        assert match, f"{path.name}:{number}: not KEY=value: {line!r}"
        value = match["value"]
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[match["key"]] = value
    return values


def load_hcl(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = pygohcl.loads(path.read_text())
    return parsed


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def as_list(value: Any) -> list[Any]:
    """pygohcl gives one block as a dict and repeated blocks as a list."""
    return value if isinstance(value, list) else [value]


def shell_scripts() -> list[Path]:
    """Every shell script under vagrant/: *.sh, and the host-side commands without a suffix
    (vagrant/yurt-login) recognised by their shebang."""
    found = set(VAGRANT.rglob("*.sh"))
    for path in VAGRANT.rglob("*"):
        if path.is_file() and not path.suffix:
            with path.open("rb") as fh:
                first = fh.readline()
            if re.match(rb"#!\s*/(usr/)?bin/(env\s+)?(ba)?sh\b", first):
                found.add(path)
    return sorted(found)


def run_lib(snippet: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run bash snippet after sourcing vagrant/lib.sh from this checkout (YURT_DIR=ROOT)."""
    script = f"set -euo pipefail\nsource {VAGRANT / 'lib.sh'}\n{snippet}\n"
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "YURT_DIR": str(ROOT)}
    return subprocess.run(
        ["bash", "-c", script], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


# A node identity like the Vagrantfile passes; 127.0.0.1 exists on every machine (interface lo).
NODE_ENV = {
    "NODE_NAME": "node1",
    "NODE_IP": "127.0.0.1",
    "NODE_ROLE": "server",
    "SERVER_IP": "127.0.0.1",
    "STAGE": "1",
    "STAGE_TOTAL": "6",
    "YURT_BASE_DOMAIN": "127.0.0.1.sslip.io",
}
