"""The Procfile buildpack: nothing to build, the Procfile says how to run the app."""

from __future__ import annotations

from pathlib import Path

from tests.buildpacks.harness import Buildpacks, copy_app, procfile_command, relocated, serving


def test_procfile_buildpack_compiles_nothing_and_runs_the_procfile(
    buildpacks: Buildpacks, tmp_path: Path
) -> None:
    build_dir = copy_app("procfile-only", tmp_path / "build")
    compiled = buildpacks.compile("procfile", build_dir, tmp_path / "cache").check()
    assert compiled.output == "-----> Procfile app: nothing to compile\n"
    assert buildpacks.release("procfile", build_dir) == {}
    with (
        relocated(build_dir) as release_dir,
        serving(release_dir, procfile_command(release_dir)) as app,
    ):
        assert app.get("/hello.txt").body == b"Hello from procfile-only on Yurt\n"
