"""`pip install yurt` must be the whole installation: the wheel carries the data the server
reads beside controller/ (settings.repo_root): git hooks, buildpacks and job spec templates,
executables still executable."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_has_hooks_buildpacks_and_jobspecs(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = tmp_path.glob("yurt-*.whl")
    with zipfile.ZipFile(wheel) as z:
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
    executables = ["hooks/pre-receive"] + [
        str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("buildpacks/*/bin/*"))
    ]
    for path in executables:
        assert modes.get(path, 0) & 0o111, f"{path} missing or not executable in the wheel"
    for path in ("jobspecs/app.nomad.hcl.j2", "buildpacks/_lib/common.sh",
                 "controller/api/openapi.yaml", "controller/migrations/versions/0005_images.py"):  # fmt: skip
        assert path in modes, f"{path} missing from the wheel"
    assert not [p for p in modes if p.startswith("tests/")]
