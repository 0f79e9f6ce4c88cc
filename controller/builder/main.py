"""One cluster build, start to finish (see docs/cluster.md, "How builds run on the cluster").

1. Read the dispatch meta (``NOMAD_META_*``) and the builder settings (``YURT_*``).
2. Fetch the app's config vars (for ENV_DIR) and build cache from the controller.
3. Build: the same buildpack runner as the local runtime, or buildah for a Dockerfile app.
4. Assemble and push the image, then POST the result and PUT the updated cache.

Progress goes to stdout in the pusher's format (the controller streams it into ``git push``).
Exit status 0 only when the image is pushed and the result posted. The build token and the
config values are never printed; the values only touch disk in the private ENV_DIR.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from controller import proc
from controller.builder.client import ControllerClient, ControllerError
from controller.builder.image import (
    APP_GID,
    APP_UID,
    ImageBuilder,
    ImageError,
    Registry,
    repository,
    split_ref,
)
from controller.builds.runner import (
    BuildCancelled,
    BuildFailed,
    BuildRequest,
    BuildResult,
    Cancel,
    declared_process_types,
    detail,
    error_lines,
    heading,
    make_env_dir,
    run_build,
)
from controller.names import APP_NAME_RE, BUILD_ID_RE
from controller.settings import repo_root

COMMIT_RE = re.compile(r"[0-9a-f]{7,64}\Z")
IMAGE_RE = re.compile(r"[a-z0-9][A-Za-z0-9._:/-]*(?:@sha256:[0-9a-f]{64})?\Z")
BUILDPACK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
DOCKERFILE = "dockerfile"
SLUG = "slug.tgz"


class BuilderError(Exception):
    """A problem with the builder's inputs; the message is shown to the pusher."""


@dataclass(frozen=True)
class Job:
    app: str
    build_id: str
    commit: str
    image: str  # the target ref, <registry>/<app>:<build id>
    token: str
    buildpack: str | None
    stack_image: str
    controller_url: str
    registry: Registry
    source_dir: Path
    buildpacks_dir: Path
    work_root: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Job:
        def need(key: str) -> str:
            value = env.get(key, "").strip()
            if not value:
                raise BuilderError(f"{key} is not set: the builder runs as the yurt-build job.")
            return value

        app = need("NOMAD_META_app")
        build_id = need("NOMAD_META_build_id")
        commit = need("NOMAD_META_commit")
        image = need("NOMAD_META_image")
        token = need("NOMAD_META_build_token")
        checks = (
            (APP_NAME_RE.match(app), "NOMAD_META_app is not a valid app name"),
            (BUILD_ID_RE.match(build_id), "NOMAD_META_build_id is not a build id"),
            (COMMIT_RE.match(commit), "NOMAD_META_commit is not a commit id"),
            (
                IMAGE_RE.match(image) and ":" in image.rsplit("/", 1)[-1],
                "NOMAD_META_image is not <registry>/<app>:<tag>",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise BuilderError(message)
        buildpack = env.get("NOMAD_META_buildpack", "").strip() or None
        if buildpack is not None and not BUILDPACK_RE.match(buildpack):
            raise BuilderError("NOMAD_META_buildpack is not a buildpack name")
        stack = (
            env.get("NOMAD_META_stack_image", "").strip() or env.get("YURT_STACK_IMAGE", "").strip()
        )
        if not stack:
            raise BuilderError("No stack image: set YURT_STACK_IMAGE (or the stack_image meta).")
        if not IMAGE_RE.match(stack):
            raise BuilderError("The stack image is not a valid image reference")
        registry = env.get("YURT_REGISTRY", "").strip() or split_ref(image)[0]
        tls = env.get("YURT_REGISTRY_TLS_VERIFY", "true").strip().lower()
        if tls not in ("true", "false", "1", "0", "yes", "no"):
            raise BuilderError("YURT_REGISTRY_TLS_VERIFY must be true or false")
        work = env.get("YURT_WORK_DIR") or env.get("NOMAD_TASK_DIR") or tempfile.gettempdir()
        return cls(
            app=app,
            build_id=build_id,
            commit=commit,
            image=image,
            token=token,
            buildpack=buildpack,
            stack_image=stack,
            controller_url=need("YURT_CONTROLLER_URL"),
            registry=Registry(registry, tls in ("true", "1", "yes")),
            source_dir=Path(need("YURT_SOURCE_DIR")),
            buildpacks_dir=Path(env.get("YURT_BUILDPACKS_DIR") or repo_root() / "buildpacks"),
            work_root=Path(work),
        )


class Output:
    """Progress lines on stdout, flushed at once (the controller streams the task's log)."""

    def __init__(self) -> None:
        self.stream = sys.stdout.buffer

    def __call__(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()


class Build:
    def __init__(self, job: Job, emit: Output, cancel: Cancel) -> None:
        self.job = job
        self.emit = emit
        self.cancel = cancel
        self.client = ControllerClient(job.controller_url, job.build_id, job.token)
        self.scratch = Path(tempfile.mkdtemp(prefix="yurt-build-", dir=job.work_root))
        self.in_runner = False

    def run(self) -> None:
        job = self.job
        self.emit(heading(f"Building {job.app} from {job.commit[:7]} (build {job.build_id})"))
        if not job.source_dir.is_dir():
            raise BuilderError(f"The source directory {job.source_dir} does not exist.")
        labels = {
            "org.opencontainers.image.revision": job.commit,
            "dev.yurt.app": job.app,
            "dev.yurt.build": job.build_id,
        }
        images = ImageBuilder(self.scratch / "image", job.registry, self.emit)
        if self._is_dockerfile_app():
            declared = self._procfile()  # a broken Procfile fails before the image build
            labels["dev.yurt.buildpack"] = DOCKERFILE
            digest, config = images.dockerfile_image(
                context=job.source_dir, target=job.image, labels=labels
            )
            process_types = declared if declared is not None else self._image_command(config)
            self._post_result(digest, DOCKERFILE, process_types, "")
            return
        result = self._buildpack_build()
        labels["dev.yurt.buildpack"] = result.buildpack
        digest = images.slug_image(
            stack=job.stack_image,
            slug=self.scratch / SLUG,
            target=job.image,
            process_types=result.process_types,
            labels=labels,
        )
        self._post_result(digest, result.buildpack, result.process_types, job.stack_image)
        self._save_cache()

    def close(self) -> None:
        self.client.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    # -- steps ---------------------------------------------------------------------------

    def _is_dockerfile_app(self) -> bool:
        src = self.job.source_dir
        if self.job.buildpack or not (src / "Dockerfile").is_file():
            return False
        listing = src / ".buildpacks"
        if listing.is_file():
            lines = listing.read_text(errors="replace").splitlines()
            if any(line.strip() and not line.strip().startswith("#") for line in lines):
                return False  # the runner uses the listed buildpacks, as on the local runtime
        return True

    def _procfile(self) -> dict[str, str] | None:
        """A Dockerfile app's Procfile types (None when it has no Procfile)."""
        return declared_process_types(self.job.source_dir, self.emit)

    def _image_command(self, config: Mapping[str, Any]) -> dict[str, str]:
        """No Procfile: ``web`` runs the image's CMD. The app job passes it as
        ``/bin/sh -c "<CMD>"``, which the image's ENTRYPOINT (if any) receives as arguments."""
        cmd = config.get("Cmd") or []
        if not cmd:
            raise BuildFailed(
                "The Dockerfile sets no CMD and the app has no Procfile:\n"
                "add a CMD, or a Procfile with a web: line."
            )
        web = shlex.join(str(arg) for arg in cmd)
        self.emit(heading("Discovering process types"))
        self.emit(detail(f"No Procfile: web runs the image's CMD -> {web}"))
        if config.get("Entrypoint"):
            self.emit(detail("The image's ENTRYPOINT receives it as: /bin/sh -c '<CMD>'"))
        return {"web": web}

    def _buildpack_build(self) -> BuildResult:
        job = self.job
        as_root = os.geteuid() == 0
        if as_root:
            _check_traversable(self.scratch)
            self.scratch.chmod(0o711)  # the build user reaches its work, cache and env dirs
        config_vars = self.client.fetch_env()
        cache_dir = self.scratch / "cache"
        cache_dir.mkdir()
        self._restore_cache(cache_dir)
        source_tar = self.scratch / "source.tar"
        proc.run(["tar", "-C", job.source_dir, "-cf", source_tar, "."])
        env_dir = make_env_dir(self.scratch, config_vars)
        del config_vars
        try:
            req = BuildRequest(
                source_tar=source_tar,
                work_dir=self.scratch / "work",
                cache_dir=cache_dir,
                env_dir=env_dir,
                buildpacks_dir=job.buildpacks_dir,
                slug_path=self.scratch / SLUG,
                commit=job.commit,
                pinned_buildpack=job.buildpack,
                # Buildpacks and the app's build hooks never run as root (nor can they read
                # the token from this process's environment).
                user=(APP_UID, APP_GID) if as_root else None,
            )
            self.in_runner = True
            try:
                return run_build(req, self.emit, self.cancel)
            finally:
                self.in_runner = False
        finally:
            shutil.rmtree(env_dir, ignore_errors=True)
            shutil.rmtree(self.scratch / "work", ignore_errors=True)
            source_tar.unlink(missing_ok=True)

    def _restore_cache(self, cache_dir: Path) -> None:
        self.emit(heading("Restoring the build cache"))
        tarball = self.scratch / "cache-in.tar.gz"
        if not self.client.fetch_cache(tarball):
            self.emit(detail("No build cache yet (first build of this app)"))
            return
        size = tarball.stat().st_size
        res = proc.run(["tar", "-xzf", tarball, "-C", cache_dir], check=False)
        tarball.unlink()
        if res.returncode != 0:
            shutil.rmtree(cache_dir)
            cache_dir.mkdir()
            self.emit(detail("The cached tarball is damaged: building without the cache"))
            return
        self.emit(detail(f"Restored {size / 1e6:.1f}M"))

    def _save_cache(self) -> None:
        self.emit(heading("Saving the build cache"))
        tarball = self.scratch / "cache-out.tar.gz"
        try:
            proc.run(
                [
                    "tar",
                    "--use-compress-program=gzip -1",
                    "--numeric-owner",
                    "-C",
                    self.scratch / "cache",
                    "-cf",
                    tarball,
                    ".",
                ]
            )
            self.client.upload_cache(tarball)
        except (proc.CommandFailed, ControllerError) as exc:
            self.emit(error_lines(f"Warning: the build cache was not saved ({exc});"))
            self.emit(error_lines("the next build of this app starts without it."))
            return
        self.emit(detail(f"Saved {tarball.stat().st_size / 1e6:.1f}M"))

    def _post_result(
        self,
        digest: str,
        buildpack: str,
        process_types: Mapping[str, str],
        stack_image: str,
    ) -> None:
        result: dict[str, Any] = {
            "image": f"{repository(self.job.image)}@{digest}",
            "digest": digest,
            "buildpack": buildpack,
            "process_types": dict(process_types),
            "stack_image": stack_image,
        }
        self.client.post_result(result)
        self.emit(heading(f"Image {result['image']}"))


def _check_traversable(path: Path) -> None:
    """The build user must reach the scratch dir: every parent needs o+x."""
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise BuilderError(
                f"The work directory's parent {parent} is not traversable by the build user "
                f"(uid {APP_UID}): set YURT_WORK_DIR to a directory under a path with o+x."
            )


def main(environ: Mapping[str, str] | None = None) -> int:
    emit = Output()
    cancel = Cancel()
    build: Build | None = None

    def on_term(signum: int, frame: FrameType | None) -> None:
        cancel.cancel()
        if build is None or not build.in_runner:
            raise BuildCancelled("cancelled")

    signal.signal(signal.SIGTERM, on_term)
    try:
        job = Job.from_env(os.environ if environ is None else environ)
        build = Build(job, emit, cancel)
        build.run()
    except (BuildFailed, BuilderError, ImageError, ControllerError) as exc:
        emit(error_lines(str(exc) or type(exc).__name__))
        return 1
    except BuildCancelled as exc:
        emit(error_lines(f"Build {exc}."))
        return 1
    except Exception as exc:
        # Our own messages never hold the token or config values; keep it short anyway.
        emit(
            error_lines(f"The builder failed unexpectedly: {type(exc).__name__}: {str(exc)[:300]}")
        )
        return 1
    finally:
        if build is not None:
            build.close()
    return 0
