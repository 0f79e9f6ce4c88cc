"""bin/detect of every buildpack against every sample app and a few edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.buildpacks.harness import APPS, BUILDPACKS, Buildpacks

# Which buildpacks claim each sample app (the runner then picks by its detection order).
EXPECTED = {
    "python-flask": {"python": "Python", "procfile": "Procfile"},
    "python-uv": {"python": "Python", "procfile": "Procfile"},
    "python-poetry": {"python": "Python", "procfile": "Procfile"},
    "python-bad-version": {"python": "Python"},
    "node-express": {"nodejs": "Node.js"},
    "node-yarn": {"nodejs": "Node.js"},
    "node-pnpm": {"nodejs": "Node.js"},
    "static-site": {"static": "Static"},
    "procfile-only": {"procfile": "Procfile"},
    "undetectable": {},
}


def test_every_sample_app_has_an_expectation() -> None:
    assert {path.name for path in APPS.iterdir() if path.is_dir()} == set(EXPECTED)


@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_sample_app_detection(buildpacks: Buildpacks, app: str) -> None:
    detected = {bp: buildpacks.detect(bp, APPS / app) for bp in BUILDPACKS}
    assert {bp: name for bp, name in detected.items() if name is not None} == EXPECTED[app]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({".python-version": "3.12\n"}, "Python"),
        ({"runtime.txt": "python-3.12\n"}, "Python"),
        ({"manage.py": ""}, "Python"),
        ({"main.py": ""}, "Python"),
        ({"setup.py": ""}, "Python"),
        ({"Pipfile": ""}, "Python"),
        ({"requirement.txt": "flask\n"}, "Python"),
        ({"README.md": "hi\n"}, None),
    ],
)
def test_python_detection(
    buildpacks: Buildpacks, build_dir: Path, files: dict[str, str], expected: str | None
) -> None:
    for name, content in files.items():
        (build_dir / name).write_text(content)
    assert buildpacks.detect("python", build_dir) == expected


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"index.html": "<h1>hi</h1>"}, "Static"),
        ({"public/index.html": "<h1>hi</h1>"}, "Static"),
        ({"public/style.css": ""}, None),  # public/ without an index.html
        ({"index.html": "", "package.json": "{}"}, None),  # left to the Node.js buildpack
        ({"about.html": ""}, None),
    ],
)
def test_static_detection(
    buildpacks: Buildpacks, build_dir: Path, files: dict[str, str], expected: str | None
) -> None:
    for name, content in files.items():
        (build_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (build_dir / name).write_text(content)
    assert buildpacks.detect("static", build_dir) == expected


def test_nodejs_detection_needs_package_json_at_the_root(
    buildpacks: Buildpacks, build_dir: Path
) -> None:
    (build_dir / "web").mkdir()
    (build_dir / "web" / "package.json").write_text("{}")
    assert buildpacks.detect("nodejs", build_dir) is None
    (build_dir / "package.json").write_text("{}")
    assert buildpacks.detect("nodejs", build_dir) == "Node.js"


def test_procfile_detection_needs_a_procfile_file(buildpacks: Buildpacks, build_dir: Path) -> None:
    (build_dir / "Procfile").mkdir()
    assert buildpacks.detect("procfile", build_dir) is None
