"""The Node.js buildpack: npm/Yarn/pnpm installs, build scripts, pruning, caching, checks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.buildpacks.harness import (
    Buildpacks,
    Compiled,
    copy_app,
    relocated,
    run_in_release,
    serving,
)

integration = pytest.mark.integration  # these install real packages from the npm registry


def host_node_major() -> int:
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True
    ).stdout
    return int(version.strip().lstrip("v").split(".")[0])


def node_app(build_dir: Path, package: dict[str, object], **files: str) -> Path:
    """A tiny app without dependencies: npm install needs no network."""
    (build_dir / "package.json").write_text(
        json.dumps({"name": "tiny", "version": "1.0.0", **package})
    )
    for name, content in files.items():
        (build_dir / name).write_text(content)
    return build_dir


# --- node-express (npm) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def express_build(buildpacks: Buildpacks, tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    tmp = tmp_path_factory.mktemp("node-express")
    build_dir = copy_app("node-express", tmp / "build")
    return buildpacks.compile("nodejs", build_dir, tmp / "cache").check()


@integration
def test_npm_app_installs_builds_and_prunes(
    express_build: Compiled, buildpacks: Buildpacks
) -> None:
    out = express_build.output
    build_dir = express_build.build_dir
    assert "-----> Using Node.js " in out
    assert '       engines.node ">=18" is satisfied' in out
    assert "-----> Using npm " in out
    assert "-----> Installing dependencies with npm ci" in out
    assert "-----> Running build" in out
    assert "-----> Pruning devDependencies" in out
    assert (build_dir / "build-info.json").is_file()  # written by the app's build script
    assert (build_dir / "node_modules" / "express").is_dir()
    assert not (build_dir / "node_modules" / "kleur").exists()  # a devDependency
    profile = (build_dir / ".profile.d" / "nodejs.sh").read_text()
    assert 'export PATH="$HOME/node_modules/.bin:$PATH"' in profile
    assert 'export NODE_ENV="${NODE_ENV:-production}"' in profile
    assert buildpacks.release("nodejs", build_dir) == {
        "default_process_types": {"web": "npm start"}
    }


@integration
def test_npm_app_serves_http_with_npm_start(express_build: Compiled) -> None:
    with (
        relocated(express_build.build_dir) as release_dir,
        serving(release_dir, "npm start") as app,
    ):
        reply = app.get("/")
        assert reply.status == 200, app.log()
        assert reply.body == b"Hello from node-express on Yurt\n"


@integration
def test_unchanged_lockfile_reuses_cached_node_modules_without_npm_install(
    express_build: Compiled, buildpacks: Buildpacks, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    shutil.copytree(express_build.cache_dir, cache_dir, symlinks=True)
    marker = cache_dir / "nodejs" / "node_modules" / "content" / "express" / "restored-from-cache"
    marker.write_text("yes")
    build_dir = copy_app("node-express", tmp_path / "build")

    # If npm tried to install anything it would fail: offline, and an unreachable registry.
    no_npm = {"npm_config_offline": "true", "npm_config_registry": "http://127.0.0.1:9/"}
    second = buildpacks.compile("nodejs", build_dir, cache_dir, extra_env=no_npm).check()

    assert (
        "-----> Using cached node_modules (package.json and package-lock.json unchanged)"
        in second.output
    )
    assert "Installing dependencies" not in second.output
    assert (build_dir / "node_modules" / "express" / "restored-from-cache").read_text() == "yes"
    assert (build_dir / "build-info.json").is_file()  # the build still runs
    assert not (build_dir / "node_modules" / "kleur").exists()


# --- Yarn and pnpm ------------------------------------------------------------------------------


@integration
def test_yarn_app_installs_with_yarn_and_ships_it(buildpacks: Buildpacks, tmp_path: Path) -> None:
    build_dir = copy_app("node-yarn", tmp_path / "build")
    compiled = buildpacks.compile("nodejs", build_dir, tmp_path / "cache").check()
    assert "-----> Installing yarn 1.22.22 from the npm registry" in compiled.output
    assert "-----> Installing dependencies with yarn install --frozen-lockfile" in compiled.output
    assert (build_dir / "node_modules" / "ms").is_dir()

    with relocated(build_dir) as release_dir:
        done = run_in_release(release_dir, "yarn --version")
        assert done.returncode == 0, done.stdout
        assert done.stdout.strip() == "1.22.22"
        with serving(release_dir, "yarn start") as app:
            assert app.get("/").body.startswith(b"Hello from node-yarn on Yurt"), app.log()


@integration
def test_pnpm_app_installs_with_pnpm(buildpacks: Buildpacks, tmp_path: Path) -> None:
    build_dir = copy_app("node-pnpm", tmp_path / "build")
    compiled = buildpacks.compile("nodejs", build_dir, tmp_path / "cache").check()
    assert "-----> Installing dependencies with pnpm install --frozen-lockfile" in compiled.output
    assert (build_dir / "node_modules" / "ms").exists()
    assert not (build_dir / "node_modules" / "kleur").exists()
    with relocated(build_dir) as release_dir:
        done = run_in_release(release_dir, "node -e \"console.log(require('ms')('1h'))\"")
        assert done.stdout.strip() == "3600000", done.stdout


# --- checks before installing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "lockfiles",
    [
        ["package-lock.json", "yarn.lock"],
        ["yarn.lock", "pnpm-lock.yaml"],
        ["package-lock.json", "npm-shrinkwrap.json"],
    ],
)
def test_several_lockfiles_fail(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path, lockfiles: list[str]
) -> None:
    node_app(build_dir, {}, **dict.fromkeys(lockfiles, ""))
    compiled = buildpacks.compile("nodejs", build_dir, tmp_path / "cache")
    assert compiled.returncode == 1
    assert f" !     Multiple lockfiles found: {' '.join(lockfiles)}" in compiled.output


def test_invalid_package_json_fails(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path
) -> None:
    (build_dir / "package.json").write_text('{"name": "broken",}')
    compiled = buildpacks.compile("nodejs", build_dir, tmp_path / "cache")
    assert compiled.returncode == 1
    assert " !     Unable to parse package.json: " in compiled.output


def test_package_manager_field_must_match_the_lockfile(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path
) -> None:
    node_app(build_dir, {"packageManager": "pnpm@9.0.0"}, **{"yarn.lock": ""})
    compiled = buildpacks.compile("nodejs", build_dir, tmp_path / "cache")
    assert compiled.returncode == 1
    assert (
        ' !     package.json declares "packageManager": "pnpm@9.0.0", but the lockfile is yarn.lock.'
        in compiled.output
    )


@pytest.mark.parametrize("spec", ["18.x", "^18", "~18.1", ">=99", "<18", "16 || 18"])
def test_engines_node_the_host_cannot_satisfy_fails(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path, spec: str
) -> None:
    if host_node_major() in {16, 18}:
        pytest.skip("the host's node satisfies these specs")
    node_app(build_dir, {"engines": {"node": spec}})
    compiled = buildpacks.compile("nodejs", build_dir, tmp_path / "cache")
    assert compiled.returncode == 1
    assert (
        f' !     package.json requires Node.js "{spec}" (engines.node), but this build host has '
        in compiled.output
    )


def test_engines_node_the_host_satisfies_builds(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path
) -> None:
    major = host_node_major()
    scripts = {
        "build": "node -e \"require('fs').writeFileSync('built.txt', process.env.NODE_ENV)\""
    }
    node_app(build_dir, {"engines": {"node": f"{major}.x"}, "scripts": scripts})
    compiled = buildpacks.compile(
        "nodejs", build_dir, tmp_path / "cache", config={"GREETING": "hi"}
    ).check()
    assert f'       engines.node "{major}.x" is satisfied' in compiled.output
    assert "-----> Installing dependencies with npm install" in compiled.output
    assert (build_dir / "built.txt").read_text() == "production"
    assert "This app may not specify any way to start a node process." in compiled.output


def test_complex_engines_node_mismatch_only_warns(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path
) -> None:
    node_app(build_dir, {"engines": {"node": ">=1 <2"}, "scripts": {"start": "node -v"}})
    compiled = buildpacks.compile("nodejs", build_dir, tmp_path / "cache").check()
    assert (
        ' !     package.json requires Node.js ">=1 <2" (engines.node); this build host has '
        in compiled.output
    )
    assert "may not specify any way to start" not in compiled.output


def test_config_vars_reach_build_scripts_and_node_env_can_be_overridden(
    buildpacks: Buildpacks, build_dir: Path, tmp_path: Path
) -> None:
    script = "node -e \"require('fs').writeFileSync('env.txt', process.env.GREETING + ' ' + process.env.NODE_ENV)\""
    node_app(build_dir, {"scripts": {"heroku-postbuild": script, "build": "exit 1"}})
    config = {"GREETING": "hello", "NODE_ENV": "staging", "PATH": "/nowhere"}
    compiled = buildpacks.compile("nodejs", build_dir, tmp_path / "cache", config=config).check()
    assert "-----> Running heroku-postbuild" in compiled.output
    assert "Running build" not in compiled.output  # heroku-postbuild replaces build
    assert "Pruning devDependencies" not in compiled.output  # only when NODE_ENV=production
    assert (build_dir / "env.txt").read_text() == "hello staging"
