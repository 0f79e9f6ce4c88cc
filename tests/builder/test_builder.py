"""The cluster build task end to end: ``python -m controller.builder`` against a fake controller
(the builder contract) and a real registry."""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from controller.builds.procfile import parse_procfile
from tests.builder.conftest import (
    HELLO_APP,
    ROOT,
    SECRET_VALUE,
    TOKEN,
    FakeController,
    HelloBuilds,
    builder_env,
    copy_app,
    inspect_raw,
    require_tools,
    run_builder,
)
from tests.registry import Registry, push_stack_image

FIXTURE_WEB = Path(__file__).resolve().parents[1] / "fixtures" / "apps" / "web"


def assert_no_secrets(text: str) -> None:
    assert TOKEN not in text
    assert SECRET_VALUE not in text


def test_python_app_is_built_pushed_and_reported(
    hello_builds: HelloBuilds, registry: Registry
) -> None:
    run, ctl = hello_builds.first, hello_builds.first_ctl
    assert run.returncode == 0, run.output + run.stderr
    assert "-----> Python app detected" in run.output
    assert "       No build cache yet" in run.output
    assert f"-----> Pushing image {run.image}" in run.output
    (result,) = ctl.results
    digest = registry.manifest_digest("hello", ctl.build_id)
    assert result["digest"] == digest
    assert result["image"] == f"{registry.addr}/hello@{digest}"
    assert result["buildpack"] == "python"
    assert result["stack_image"].endswith("/yurt/stack:test")
    procfile = parse_procfile((HELLO_APP / "Procfile").read_text())
    assert result["process_types"] == procfile
    # The pinned image resolves to the same manifest.
    assert inspect_raw(result["image"]) == inspect_raw(run.image)
    assert ctl.saw("GET", "env") == [200]
    assert ctl.saw("GET", "cache.tar.gz") == [404]
    assert ctl.saw("PUT", "cache.tar.gz") == [204]
    assert len(ctl.cache_puts[0]) > 1000
    # The result is posted before the cache is saved (exit 0 needs only the result).
    order = [(m, p.rsplit("/", 1)[-1]) for m, p, _ in ctl.requests]
    assert order.index(("POST", "result")) < order.index(("PUT", "cache.tar.gz"))


def test_second_build_uses_the_cache(hello_builds: HelloBuilds, registry: Registry) -> None:
    run, ctl = hello_builds.second, hello_builds.second_ctl
    assert run.returncode == 0, run.output + run.stderr
    assert ctl.saw("GET", "cache.tar.gz") == [200]
    assert "       Restored " in run.output
    assert "Using cached virtualenv (requirements unchanged)" in run.output
    (result,) = ctl.results
    assert result["digest"] == registry.manifest_digest("hello", ctl.build_id)
    assert ctl.saw("PUT", "cache.tar.gz") == [204]


def test_cache_contents_are_the_buildpacks_cache(hello_builds: HelloBuilds) -> None:
    with tarfile.open(fileobj=io.BytesIO(hello_builds.first_ctl.cache_puts[0])) as tar:
        names = tar.getnames()
    assert any(n.startswith("./python/virtualenv") for n in names), names[:20]


def test_output_never_shows_the_token_or_config_values(hello_builds: HelloBuilds) -> None:
    for run in (hello_builds.first, hello_builds.second):
        assert_no_secrets(run.output)
        assert_no_secrets(run.stderr)


def test_failing_build_exits_non_zero_and_posts_nothing(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    source = copy_app(HELLO_APP, tmp_path / "src")
    (source / "requirements.txt").write_text("yurt-no-such-package-7f3a9c==1.0\n")
    controller.env = {"SECRET_KEY": SECRET_VALUE}
    run = run_builder(builder_env(controller, registry, stack_image, source, work_root, "broken"))
    assert run.returncode != 0
    assert " !     Push rejected, failed to compile Python app." in run.output
    assert controller.results == []
    assert controller.cache_puts == []
    assert_no_secrets(run.output + run.stderr)
    assert "Pushing image" not in run.output
    # Nothing left behind in the work dir (the ENV_DIR with the config values included).
    assert list(work_root.iterdir()) == []


def test_pinned_buildpack_and_non_web_process_types(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    env = builder_env(
        controller,
        registry,
        stack_image,
        source,
        work_root,
        "webapp",
        NOMAD_META_buildpack="procfile",
    )
    run = run_builder(env)
    assert run.returncode == 0, run.output + run.stderr
    (result,) = controller.results
    assert result["buildpack"] == "procfile"
    assert result["process_types"] == parse_procfile((FIXTURE_WEB / "Procfile").read_text())
    assert result["digest"] == registry.manifest_digest("webapp", controller.build_id)


def test_stack_image_from_meta_wins(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    other = push_stack_image(registry, name="yurt/stack-other", tag="v2")
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    env = builder_env(
        controller,
        registry,
        stack_image,
        source,
        work_root,
        "webapp",
        NOMAD_META_buildpack="procfile",
        NOMAD_META_stack_image=other,
    )
    run = run_builder(env)
    assert run.returncode == 0, run.output + run.stderr
    assert f"-----> Fetching the stack image {other}" in run.output
    assert controller.results[0]["stack_image"] == other


def test_unknown_pinned_buildpack_fails(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    env = builder_env(
        controller, registry, stack_image, source, work_root, "webapp", NOMAD_META_buildpack="cobol"
    )
    run = run_builder(env)
    assert run.returncode == 1
    assert " !     Unknown buildpack 'cobol'." in run.output
    assert controller.results == []


def test_missing_meta_is_a_clear_error(controller: FakeController, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "NOMAD_META_app": "hello"}
    run = run_builder(env | {"NOMAD_META_image": "x"})
    assert run.returncode == 1
    assert (
        run.output
        == " !     NOMAD_META_build_id is not set: the builder runs as the yurt-build job.\n"
    )


def test_rejected_token_fails_without_printing_it(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    env = builder_env(controller, registry, stack_image, source, work_root, "webapp")
    env["NOMAD_META_build_token"] = TOKEN + "-wrong"
    run = run_builder(env)
    assert run.returncode == 1
    assert " !     GET env: the controller answered HTTP 401: bad build token" in run.output
    assert TOKEN not in run.output + run.stderr
    assert controller.results == []


def test_result_refused_means_failure(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    controller.fail[("POST", "result")] = 409
    env = builder_env(
        controller,
        registry,
        stack_image,
        source,
        work_root,
        "webapp",
        NOMAD_META_buildpack="procfile",
    )
    run = run_builder(env)
    assert run.returncode == 1
    assert " !     POST result: the controller answered HTTP 409: injected" in run.output
    assert controller.cache_puts == []


def test_cache_upload_failure_only_warns(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    controller.fail[("PUT", "cache.tar.gz")] = 413
    env = builder_env(
        controller,
        registry,
        stack_image,
        source,
        work_root,
        "webapp",
        NOMAD_META_buildpack="procfile",
    )
    run = run_builder(env)
    assert run.returncode == 0, run.output
    assert " !     Warning: the build cache was not saved" in run.output
    assert len(controller.results) == 1


def test_unreachable_registry_fails(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    env = builder_env(
        controller,
        registry,
        stack_image,
        source,
        work_root,
        "webapp",
        NOMAD_META_buildpack="procfile",
    )
    env["NOMAD_META_image"] = f"127.0.0.1:9/webapp:{controller.build_id}"
    run = run_builder(env)
    assert run.returncode == 1
    assert " !     Could not push the image to 127.0.0.1:9/webapp:" in run.output
    assert controller.results == []


DOCKERFILE = """\
FROM {stack}
COPY . /srv/app
ENV GREETING=hello
WORKDIR /srv/app
CMD ["python3", "server.py"]
"""


def test_dockerfile_app_is_built_with_buildah(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    require_tools("buildah")
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    (source / "Procfile").unlink()
    (source / ".buildpacks").unlink(missing_ok=True)
    (source / "Dockerfile").write_text(DOCKERFILE.format(stack=stack_image))
    run = run_builder(
        builder_env(controller, registry, stack_image, source, work_root, "dockerapp")
    )
    assert run.returncode == 0, run.output + run.stderr
    assert "-----> Building the Dockerfile with buildah" in run.output
    assert re.search(r"^       STEP 2/\d+: COPY \. /srv/app$", run.output, re.M)
    assert "       No Procfile: web runs the image's CMD -> python3 server.py" in run.output
    (result,) = controller.results
    digest = registry.manifest_digest("dockerapp", controller.build_id)
    assert result == {
        "image": f"{registry.addr}/dockerapp@{digest}",
        "digest": digest,
        "buildpack": "dockerfile",
        "process_types": {"web": "python3 server.py"},
        "stack_image": "",
    }
    assert controller.saw("GET", "env") == []  # config vars stay out of Dockerfile builds
    assert controller.cache_puts == []
    config = inspect_config(result["image"])
    assert config["config"]["Cmd"] == ["python3", "server.py"]
    assert "GREETING=hello" in config["config"]["Env"]
    assert config["config"]["Labels"]["dev.yurt.build"] == controller.build_id


def test_dockerfile_app_with_procfile_and_a_failing_dockerfile(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    require_tools("buildah")
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    (source / ".buildpacks").unlink(missing_ok=True)
    (source / "Dockerfile").write_text(f"FROM {stack_image}\nCOPY missing-file /x\n")
    run = run_builder(
        builder_env(controller, registry, stack_image, source, work_root, "dockerapp")
    )
    assert run.returncode == 1
    assert "-----> Discovering process types" in run.output
    assert " !     The Dockerfile build failed" in run.output
    assert controller.results == []


def inspect_config(ref: str) -> dict[str, Any]:
    done = subprocess.run(
        ["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{ref}"],
        check=True,
        capture_output=True,
    )
    return dict(json.loads(done.stdout))


@pytest.fixture(autouse=True)
def _no_leftovers(work_root: Path) -> None:
    """Every test starts with an empty work root (the builder removes its scratch dir)."""
    for entry in work_root.iterdir():
        shutil.rmtree(entry, ignore_errors=True)


def test_sigterm_stops_the_build(
    controller: FakeController,
    registry: Registry,
    stack_image: str,
    work_root: Path,
    tmp_path: Path,
) -> None:
    """Nomad stops the task (a cancelled or timed-out build) with SIGTERM: the buildpack's
    processes die, nothing is pushed or reported, the scratch dir is removed."""
    packs = tmp_path / "buildpacks"
    bin_dir = packs / "sleepy" / "bin"
    bin_dir.mkdir(parents=True)
    scripts = {
        "detect": "#!/bin/sh\necho Sleepy\n",
        "compile": "#!/bin/sh\necho '-----> sleeping'\nsleep 300\n",
        "release": "#!/bin/sh\necho '--- {}'\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    source = copy_app(FIXTURE_WEB, tmp_path / "src")
    env = builder_env(
        controller,
        registry,
        stack_image,
        source,
        work_root,
        "webapp",
        NOMAD_META_buildpack="sleepy",
        YURT_BUILDPACKS_DIR=str(packs),
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "controller.builder"], env=env, cwd=ROOT, stdout=subprocess.PIPE
    )
    assert p.stdout is not None
    seen = b""
    while b"sleeping" not in seen:
        line = p.stdout.readline()
        assert line, seen
        seen += line
    started = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rest = p.stdout.read()
    assert p.wait(timeout=30) == 1
    assert time.monotonic() - started < 10
    assert b" !     Build cancelled." in rest
    assert controller.results == []
    assert list(work_root.iterdir()) == []
    leftover = subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True, text=True)
    assert leftover.stdout == ""
