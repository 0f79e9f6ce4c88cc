"""The image the builder pushes: stack layers + one app layer, and its config. Pulled back from
the real registry with skopeo. Plus unit tests of the image helpers."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from controller.builder.image import (
    APP_GID,
    APP_UID,
    Registry,
    config_args,
    repository,
    split_ref,
    write_app_layer,
)
from controller.builder.launcher import LAUNCHER, LAUNCHER_PATH
from tests.builder.conftest import HelloBuilds, PulledImage, inspect_raw, pull_image
from tests.registry import Registry as LocalRegistry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hello_image(hello_builds: HelloBuilds, tmp_path_factory: pytest.TempPathFactory) -> PulledImage:
    run = hello_builds.first
    assert run.returncode == 0, run.output + run.stderr
    return pull_image(
        hello_builds.first_ctl.results[0]["image"], tmp_path_factory.mktemp("pull") / "oci"
    )


def layer_members(image: PulledImage, index: int) -> dict[str, tarfile.TarInfo]:
    blob = image.blob(image.manifest["layers"][index]["digest"])
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read_bytes()))) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_layers_are_the_stack_plus_one_app_layer(
    hello_image: PulledImage, stack_image: str, hello_builds: HelloBuilds
) -> None:
    stack = inspect_raw(stack_image)
    stack_layers = [layer["digest"] for layer in stack["layers"]]
    layers = [layer["digest"] for layer in hello_image.manifest["layers"]]
    assert layers[:-1] == stack_layers
    assert len(layers) == len(stack_layers) + 1
    assert len(hello_image.config["rootfs"]["diff_ids"]) == len(layers)
    # The second build's image shares the stack layers (only the app layer differs).
    second = inspect_raw(hello_builds.second_ctl.results[0]["image"])
    assert [layer["digest"] for layer in second["layers"]][:-1] == stack_layers


def test_app_layer_holds_the_slug_at_app(hello_image: PulledImage) -> None:
    members = layer_members(hello_image, -1)
    for name in (
        "app",
        "app/app.py",
        "app/Procfile",
        "app/requirements.txt",
        "app/.profile.d/python.sh",
    ):
        assert name in members, sorted(members)[:30]
        assert (members[name].uid, members[name].gid) == (APP_UID, APP_GID)
    assert members["app"].isdir()
    assert any(
        n.startswith("app/.yurt/python/lib/python3.11/site-packages/flask/") for n in members
    )
    gunicorn = members["app/.yurt/python/bin/gunicorn"]
    assert gunicorn.mode & 0o111
    python = members["app/.yurt/python/bin/python"]
    assert python.issym()
    assert not any(n.startswith(("app/.git/", "/")) or "/../" in n for n in members)
    launcher = members[LAUNCHER_PATH.lstrip("/")]
    assert (launcher.uid, launcher.mode) == (0, 0o755)


def test_image_config(hello_image: PulledImage, hello_builds: HelloBuilds) -> None:
    config = hello_image.config["config"]
    assert config["Entrypoint"] == [LAUNCHER_PATH]
    web = hello_builds.first_ctl.results[0]["process_types"]["web"]
    assert config["Cmd"] == ["/bin/sh", "-c", web]
    assert config["WorkingDir"] == "/app"
    assert config["User"] == f"{APP_UID}:{APP_GID}"
    assert "HOME=/app" in config["Env"]
    # The stack's env is kept.
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in config["Env"]
    assert "LANG=C.UTF-8" in config["Env"]
    labels = config["Labels"]
    assert labels["dev.yurt.app"] == "hello"
    assert labels["dev.yurt.build"] == hello_builds.first_ctl.build_id
    assert labels["dev.yurt.buildpack"] == "python"
    assert len(labels["org.opencontainers.image.revision"]) == 40


def test_posted_digest_is_the_registry_digest(
    hello_builds: HelloBuilds, registry: LocalRegistry
) -> None:
    for ctl in (hello_builds.first_ctl, hello_builds.second_ctl):
        (result,) = ctl.results
        assert result["digest"] == registry.manifest_digest("hello", ctl.build_id)


def test_launcher_sources_profile_d_then_execs(tmp_path: Path) -> None:
    """The launcher, run against a fake /app, through the real /bin/sh."""
    app = tmp_path / "app"
    (app / ".profile.d").mkdir(parents=True)
    (app / ".profile.d" / "a.sh").write_text(
        'export FROM_PROFILE_D="yes"\nexport PATH="$HOME/bin:$PATH"\n'
    )
    (app / ".profile").write_text('export FROM_PROFILE="$FROM_PROFILE_D-too"\n')
    script = tmp_path / "yurt-launch"
    script.write_text(LAUNCHER.replace("export HOME=/app", f"export HOME={app}"))
    script.chmod(0o755)
    done = subprocess.run(
        [script, "/bin/sh", "-c", 'echo "$FROM_PROFILE_D $FROM_PROFILE $PWD ${PATH%%:*}"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == f"yes yes-too {app} {app}/bin\n"
    no_args = subprocess.run(
        [script], input="echo shell", capture_output=True, text=True, check=True
    )
    assert no_args.stdout == "shell\n"


def test_stack_launcher_file_matches_the_builders() -> None:
    assert (ROOT / "images" / "stack" / "yurt-launch").read_text() == LAUNCHER


def test_launcher_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    done = subprocess.run(
        ["shellcheck", ROOT / "images" / "stack" / "yurt-launch"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_write_app_layer(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("data")
    (src / "run").write_text("#!/bin/sh\n")
    (src / "run").chmod(0o755)
    (src / "link").symlink_to("sub/f.txt")
    (src / "hard").hardlink_to(src / "sub" / "f.txt")
    long_name = "d" * 120
    (src / long_name).mkdir()
    (src / long_name / "x").write_text("long")
    slug = tmp_path / "slug.tgz"
    subprocess.run(["tar", "-czf", slug, "-C", src, "."], check=True)
    layer = tmp_path / "layer.tar"
    write_app_layer(slug, layer)
    with tarfile.open(layer) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("app/sub/f.txt").read() == b"data"  # type: ignore[union-attr]
        assert tar.extractfile(LAUNCHER_PATH.lstrip("/")).read() == LAUNCHER.encode()  # type: ignore[union-attr]
    assert next(iter(members)) == "app"
    assert members["app/run"].mode == 0o755
    assert members["app/link"].issym() and members["app/link"].linkname == "sub/f.txt"
    hard = members.get("app/hard") or members["app/sub/f.txt"]
    if hard.islnk():
        assert hard.linkname.startswith("app/")
    assert f"app/{long_name}/x" in members
    assert {(m.uid, m.gid) for n, m in members.items() if n.startswith("app")} == {
        (APP_UID, APP_GID)
    }
    assert all(m.uname == "" for n, m in members.items() if n.startswith("app"))


def test_split_ref_and_repository() -> None:
    assert split_ref("registry.service.consul:5000/hello:01ABC") == (
        "registry.service.consul:5000",
        "registry.service.consul:5000/hello",
        "01ABC",
    )
    assert split_ref("127.0.0.1:5000/yurt/stack") == (
        "127.0.0.1:5000",
        "127.0.0.1:5000/yurt/stack",
        "",
    )
    assert split_ref("debian:bookworm-slim")[0] == "docker.io"
    digest = "sha256:" + "a" * 64
    assert repository(f"localhost/x/y@{digest}") == "localhost/x/y"
    assert repository(f"r:5000/x:tag@{digest}") == "r:5000/x"


def test_tls_verify_applies_to_the_cluster_registry_only() -> None:
    reg = Registry("r:5000", tls_verify=False)
    assert reg.verify("r:5000/app:1") is False
    assert reg.verify("ghcr.io/yurt/stack:1") is True
    assert Registry("r:5000").verify("r:5000/app:1") is True


def test_config_args_without_web_process() -> None:
    args = config_args({"worker": "python worker.py"}, {"a": "b"})
    assert "--config.cmd=/bin/sh" in args
    assert not any(a.startswith("--config.cmd=-c") for a in args)
    assert "--config.label=a=b" in args
