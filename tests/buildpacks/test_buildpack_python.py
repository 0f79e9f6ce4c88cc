"""The Python buildpack: interpreter choice, pip/uv/Poetry installs, relocation, caching."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.buildpacks.harness import (
    Buildpacks,
    Compiled,
    copy_app,
    procfile_command,
    relocated,
    run_in_release,
    serving,
)

integration = pytest.mark.integration  # these install real packages from PyPI


def host_python_version(name: str) -> str | None:
    """X.Y.Z of an interpreter on PATH, asked from / (so pyenv answers for the host)."""
    path = shutil.which(name)
    if path is None:
        return None
    done = subprocess.run(
        [path, "-c", "import platform; print(platform.python_version())"],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def python_app(build_dir: Path, files: dict[str, str]) -> Path:
    """A tiny app with an empty requirements.txt (pip installs nothing: no network needed)."""
    (build_dir / "requirements.txt").write_text("")
    for name, content in files.items():
        (build_dir / name).write_text(content)
    return build_dir


# --- python-flask (pip) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flask_build(buildpacks: Buildpacks, tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    tmp = tmp_path_factory.mktemp("python-flask")
    build_dir = copy_app("python-flask", tmp / "build")
    return buildpacks.compile("python", build_dir, tmp / "cache").check()


@integration
def test_pip_app_compiles_into_a_virtualenv(flask_build: Compiled, buildpacks: Buildpacks) -> None:
    out = flask_build.output
    assert "-----> Using Python 3.11." in out
    assert "as requested by .python-version" in out
    assert "-----> Installing requirements with pip" in out
    assert "       Successfully installed" in out
    assert "No Procfile found" not in out
    venv = flask_build.build_dir / ".yurt" / "python"
    assert (venv / "pyvenv.cfg").is_file()
    assert (flask_build.build_dir / ".profile.d" / "python.sh").is_file()
    assert buildpacks.release("python", flask_build.build_dir) == {}


@integration
def test_pip_virtualenv_works_after_relocation(flask_build: Compiled) -> None:
    build_path = str(flask_build.build_dir)
    with relocated(flask_build.build_dir) as release_dir:
        done = run_in_release(
            release_dir,
            'bash -c \'python -c "import flask, sys; print(sys.prefix)" && flask --version'
            " && gunicorn --version && .yurt/python/bin/gunicorn --version"
            ' && echo "PYTHONPATH=$PYTHONPATH VIRTUAL_ENV=$VIRTUAL_ENV"\'',
        )
        assert done.returncode == 0, done.stdout
        assert done.stdout.splitlines()[0] == f"{release_dir}/.yurt/python"
        assert "Flask 3.1.3" in done.stdout
        assert "gunicorn (version 27.0.1)" in done.stdout
        assert f"PYTHONPATH={release_dir} VIRTUAL_ENV={release_dir}/.yurt/python" in done.stdout
        for script in (release_dir / ".yurt" / "python" / "bin").iterdir():
            if (
                script.is_file()
                and not script.is_symlink()
                and not script.name.startswith("activate")
            ):
                assert build_path not in script.read_text(errors="replace"), script


@integration
def test_pip_app_serves_http_from_its_procfile(flask_build: Compiled) -> None:
    with (
        relocated(flask_build.build_dir) as release_dir,
        serving(release_dir, procfile_command(release_dir)) as app,
    ):
        reply = app.get("/")
        assert reply.status == 200, app.log()
        assert reply.body == b"Hello from python-flask on Yurt\n"
        assert reply.headers["Content-Type"].startswith("text/html")


@integration
def test_unchanged_requirements_reuse_the_cached_virtualenv_without_pip(
    flask_build: Compiled, buildpacks: Buildpacks, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    shutil.copytree(flask_build.cache_dir, cache_dir, symlinks=True)
    shutil.rmtree(cache_dir / "pip", ignore_errors=True)
    marker = cache_dir / "python" / "virtualenv" / "content" / "restored-from-cache"
    marker.write_text("yes")
    build_dir = copy_app("python-flask", tmp_path / "build")

    # If pip ran at all it would fail: no index, no config, no links.
    no_pip = {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1"}
    second = buildpacks.compile("python", build_dir, cache_dir, extra_env=no_pip).check()

    assert "-----> Using cached virtualenv (requirements unchanged)" in second.output
    assert "Installing requirements" not in second.output
    assert "Collecting" not in second.output
    assert not (cache_dir / "pip").exists()
    assert (build_dir / ".yurt" / "python" / "restored-from-cache").read_text() == "yes"
    with relocated(build_dir) as release_dir:
        done = run_in_release(release_dir, "python -c 'import flask'")
        assert done.returncode == 0, done.stdout


@integration
def test_changed_requirements_rebuild_the_virtualenv(
    flask_build: Compiled, buildpacks: Buildpacks, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    shutil.copytree(flask_build.cache_dir, cache_dir, symlinks=True)
    build_dir = copy_app("python-flask", tmp_path / "build")
    with (build_dir / "requirements.txt").open("a") as requirements:
        requirements.write("# pinned on purpose\n")

    second = buildpacks.compile("python", build_dir, cache_dir).check()

    assert (
        "Rebuilding the virtualenv (changed since the last build: requirements.txt)"
        in second.output
    )
    assert "-----> Installing requirements with pip" in second.output
    assert "Using cached virtualenv" not in second.output


# --- the virtualenv cache: hard links, and what later writes do to them ---------------------------


def venv_files(venv: Path) -> dict[str, bytes]:
    """Every regular file of a virtualenv (bytecode left out) and its content."""
    return {
        str(path.relative_to(venv)): path.read_bytes()
        for path in sorted(venv.rglob("*"))
        if path.is_file() and not path.is_symlink() and path.suffix != ".pyc"
    }


def empty_app(build_dir: Path) -> Path:
    build_dir.mkdir()
    return python_app(build_dir, {})


def cached_venv(cache_dir: Path) -> Path:
    return cache_dir / "python" / "virtualenv" / "content"


@pytest.fixture
def linked_build(buildpacks: Buildpacks, tmp_path: Path) -> tuple[Compiled, dict[str, bytes]]:
    """A cold build (empty requirements: no network) and a snapshot of the venv it made."""
    build_dir = empty_app(tmp_path / "build1")
    compiled = buildpacks.compile("python", build_dir, tmp_path / "cache").check()
    assert "-----> Creating a virtualenv in .yurt/python" in compiled.output
    return compiled, venv_files(build_dir / ".yurt" / "python")


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def test_cold_build_venv_has_the_bundled_pip_and_a_linked_cache_copy(
    linked_build: tuple[Compiled, dict[str, bytes]],
) -> None:
    compiled, snapshot = linked_build
    venv = compiled.build_dir / ".yurt" / "python"
    cached = cached_venv(compiled.cache_dir)
    # What `python -m venv` installs (pip, and setuptools up to 3.11), minus pip's own
    # bytecode compilation of them.
    bundled = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import ensurepip; print(ensurepip.version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pip_version = subprocess.run(
        [str(venv / "bin" / "pip"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert pip_version.startswith(f"pip {bundled} from {site_packages(venv)}/pip "), pip_version
    setuptools = list(site_packages(venv).glob("setuptools-*.dist-info"))
    if setuptools:
        assert not list((site_packages(venv) / "setuptools").rglob("*.pyc"))
    # The cache holds the same files, as hard links (no second copy of the data).
    assert venv_files(cached) == snapshot
    for name in snapshot:
        assert (venv / name).stat().st_ino == (cached / name).stat().st_ino, name
    assert (compiled.cache_dir / "python" / "virtualenv" / "manifest").is_file()


def test_replacing_writes_in_the_build_venv_leave_the_linked_cache_intact(
    linked_build: tuple[Compiled, dict[str, bytes]], buildpacks: Buildpacks, tmp_path: Path
) -> None:
    """What later steps of a build (or a later buildpack) do to the venv with pip, Python and
    sed -i makes new files or unlinks: the cached copy keeps its content and is reused."""
    compiled, snapshot = linked_build
    venv = compiled.build_dir / ".yurt" / "python"
    python = str(venv / "bin" / "python")
    no_index = {**os.environ, "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1"}
    steps = [
        [python, "-m", "compileall", "-f", "-q", str(site_packages(venv))],
        [python, "-m", "pip", "uninstall", "-y", "-q", "pip"],
        ["sed", "-i", "s/^/# edited /", str(venv / "pyvenv.cfg")],
    ]
    for argv in steps:
        subprocess.run(argv, env=no_index, check=True, capture_output=True)
    assert (venv / "pyvenv.cfg").read_bytes() != snapshot["pyvenv.cfg"]
    assert not (site_packages(venv) / "pip").exists()

    assert venv_files(cached_venv(compiled.cache_dir)) == snapshot
    build_dir = empty_app(tmp_path / "build2")
    second = buildpacks.compile("python", build_dir, compiled.cache_dir).check()
    assert "-----> Using cached virtualenv (requirements unchanged)" in second.output
    assert venv_files(build_dir / ".yurt" / "python") == snapshot


def test_in_place_write_to_a_linked_file_makes_the_next_build_rebuild(
    linked_build: tuple[Compiled, dict[str, bytes]], buildpacks: Buildpacks, tmp_path: Path
) -> None:
    """A file rewritten in place (same inode) changes the cached copy too: the manifest check
    notices and the next build makes a new venv instead of restoring the changed one."""
    compiled, snapshot = linked_build
    venv = compiled.build_dir / ".yurt" / "python"
    target = "pyvenv.cfg"
    with (venv / target).open("ab") as fh:  # appends to the shared inode
        fh.write(b"appended = in place\n")
    assert b"appended" in (cached_venv(compiled.cache_dir) / target).read_bytes()

    build_dir = empty_app(tmp_path / "build2")
    second = buildpacks.compile("python", build_dir, compiled.cache_dir).check()
    assert "Rebuilding the virtualenv (the cached one was modified" in second.output
    assert "Using cached virtualenv" not in second.output
    rebuilt = venv_files(build_dir / ".yurt" / "python")
    assert rebuilt.keys() == snapshot.keys()  # a fresh venv (some files name its own path)
    assert b"appended" not in rebuilt[target]
    # And the cache now holds the new venv, reused by the build after.
    third_dir = empty_app(tmp_path / "build3")
    third = buildpacks.compile("python", third_dir, compiled.cache_dir).check()
    assert "-----> Using cached virtualenv (requirements unchanged)" in third.output


def test_linked_cache_survives_a_tar_round_trip(
    linked_build: tuple[Compiled, dict[str, bytes]], buildpacks: Buildpacks, tmp_path: Path
) -> None:
    """The nomad builder keeps the cache as a tarball between builds: whole-second mtimes and
    fresh directories must not look like a modified cache."""
    compiled, snapshot = linked_build
    tarball = tmp_path / "cache.tar.gz"
    subprocess.run(["tar", "-czf", str(tarball), "-C", str(compiled.cache_dir), "."], check=True)
    restored = tmp_path / "cache-restored"
    restored.mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(restored)], check=True)

    build_dir = empty_app(tmp_path / "build2")
    second = buildpacks.compile("python", build_dir, restored).check()
    assert "-----> Using cached virtualenv (requirements unchanged)" in second.output
    assert venv_files(build_dir / ".yurt" / "python") == snapshot


# --- python-uv and python-poetry ----------------------------------------------------------------


@integration
@pytest.mark.parametrize(
    ("app", "installer_line"),
    [
        ("python-uv", "-----> Installing dependencies from uv.lock with uv "),
        ("python-poetry", "-----> Installing dependencies from poetry.lock (Poetry "),
    ],
)
def test_locked_app_installs_main_dependencies_only(
    buildpacks: Buildpacks, tmp_path: Path, app: str, installer_line: str
) -> None:
    build_dir = copy_app(app, tmp_path / "build")
    compiled = buildpacks.compile("python", build_dir, tmp_path / "cache").check()
    assert installer_line in compiled.output

    with relocated(build_dir) as release_dir:
        done = run_in_release(
            release_dir, "bash -c 'python -c \"import flask\" && gunicorn --version'"
        )
        assert done.returncode == 0, done.stdout
        # pytest is only in the dev group of both sample apps.
        dev = run_in_release(release_dir, "python -c 'import pytest'")
        assert dev.returncode != 0


# --- choosing the interpreter -------------------------------------------------------------------


def test_python_version_file_selects_the_interpreter(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path
) -> None:
    python_app(build_dir, {".python-version": "# the app's Python\n\n  3.11  \n"})
    compiled = buildpacks.compile("python", build_dir, tmp_path / "cache").check()
    assert "-----> Using Python 3.11." in compiled.output
    assert "-----> No Procfile found; add one with a web: process" in compiled.output
    assert (build_dir / ".yurt" / "python" / "bin" / "python").exists()


def test_exact_python_version_must_match(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path
) -> None:
    exact = host_python_version("python3.11")
    if exact is None:
        pytest.skip("no working python3.11 on PATH")
    python_app(build_dir, {".python-version": f"{exact}\n"})
    compiled = buildpacks.compile("python", build_dir, tmp_path / "cache").check()
    assert f"-----> Using Python {exact} (" in compiled.output


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {".python-version": "3.11.99\n"},
            "Python 3.11.99 was requested by .python-version, but this build host only has: 3.",
        ),
        (
            {"runtime.txt": "python-3.4\n"},
            "Python 3.4 was requested by runtime.txt, but this build host only has: 3.",
        ),
        ({".python-version": "3.11\n3.12\n"}, "Multiple Python versions found in .python-version"),
        ({".python-version": "latest\n"}, "Invalid Python version in .python-version: 'latest'"),
        ({"runtime.txt": "3.11\n"}, "Invalid Python version in runtime.txt: '3.11'"),
    ],
)
def test_unavailable_or_invalid_python_version_fails(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    python_app(build_dir, files)
    compiled = buildpacks.compile("python", build_dir, tmp_path / "cache")
    assert compiled.returncode == 1
    assert f" !     {message}" in compiled.output
    assert not (build_dir / ".yurt").exists()


def test_bad_version_sample_lists_the_host_pythons(buildpacks: Buildpacks, tmp_path: Path) -> None:
    build_dir = copy_app("python-bad-version", tmp_path / "build")
    compiled = buildpacks.compile("python", build_dir, tmp_path / "cache")
    assert compiled.returncode == 1
    line = next(line for line in compiled.output.splitlines() if "was requested" in line)
    assert line.startswith(
        " !     Python 3.7 was requested by .python-version, but this build host only has: "
    )
    version = host_python_version("python3.11")
    if version is not None:
        assert f"{version} (" in line


def interpreter_outside_path() -> Path | None:
    """A python3.N whose 3.N is not runnable from PATH (pyenv keeps several), if there is one."""
    on_path = {f"3.{minor}" for minor in range(6, 20) if host_python_version(f"python3.{minor}")}
    for python in sorted(Path("/root/.pyenv/versions").glob("3.*/bin/python3.*")):
        version = python.name.removeprefix("python")
        if re.fullmatch(r"3\.\d+", version) and version not in on_path:
            return python
    return None


def test_search_path_adds_interpreters(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path
) -> None:
    extra = interpreter_outside_path()
    if extra is None:
        pytest.skip("no Python interpreter outside PATH on this host")
    wanted = extra.name[len("python") :]
    bin_dir = tmp_path / "extra-bin"
    bin_dir.mkdir()
    (bin_dir / extra.name).symlink_to(extra)
    python_app(build_dir, {".python-version": f"{wanted}\n"})

    missing = buildpacks.compile("python", build_dir, tmp_path / "cache")
    assert missing.returncode == 1
    assert f"Python {wanted} was requested by .python-version" in missing.output

    shutil.rmtree(build_dir / ".yurt", ignore_errors=True)
    found = buildpacks.compile(
        "python", build_dir, tmp_path / "cache", extra_env={"YURT_PYTHON_SEARCH_PATH": str(bin_dir)}
    ).check()
    assert f"-----> Using Python {wanted}." in found.output


# --- choosing the package manager ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            ["requirements.txt", "poetry.lock", "pyproject.toml"],
            "Multiple Python package manager files were found: requirements.txt poetry.lock",
        ),
        (
            ["uv.lock", "poetry.lock", "pyproject.toml"],
            "Multiple Python package manager files were found",
        ),
        (["Pipfile", "Pipfile.lock"], "Pipenv (Pipfile.lock) is not supported"),
        (["Pipfile"], "A Pipfile was found, but Pipenv is not supported"),
        (["pyproject.toml"], "pyproject.toml was found, but no lock file."),
        (["uv.lock"], "uv.lock was found, but pyproject.toml is missing."),
        (["setup.py"], "Implicit setup.py file support is not available."),
        (["requirement.txt"], "Found 'requirement.txt', but no requirements.txt."),
        (["app.py"], "Couldn't find any supported Python package manager files."),
    ],
)
def test_package_manager_files_must_be_unambiguous(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path, files: list[str], message: str
) -> None:
    for name in files:
        (build_dir / name).write_text("")
    compiled = buildpacks.compile("python", build_dir, tmp_path / "cache")
    assert compiled.returncode == 1
    assert f" !     {message}" in compiled.output
    assert not (build_dir / ".yurt").exists()
