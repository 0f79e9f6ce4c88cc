"""Image assembly with maintained, daemonless tools: skopeo, umoci and buildah.

A buildpack build becomes the stack image plus one layer: the slug unpacked at ``/app``
(owned by APP_UID:APP_GID) and the launcher at ``/usr/local/bin/yurt-launch``. The image
config sets ``ENTRYPOINT`` to the launcher, ``WorkingDir`` and ``HOME`` to ``/app`` and
``User`` to APP_UID:APP_GID. A Dockerfile app is built by ``buildah`` (chroot isolation, vfs
storage). Either way the result is pushed with its manifest digest read back from the tool.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import proc
from controller.builder.launcher import LAUNCHER, LAUNCHER_PATH
from controller.builds.runner import detail, heading

# The non-root user the app runs as (and owns /app). Matches the `app` user of images/stack.
APP_UID = 1000
APP_GID = 1000
APP_DIR = "/app"

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}\Z")

Emit = Callable[[bytes], None]


class ImageError(Exception):
    """Assembling or pushing the image failed; the message is shown to the pusher."""


def split_ref(ref: str) -> tuple[str, str, str]:
    """``host[:port]/path[:tag][@digest]`` -> (registry host, repository, tag or digest)."""
    name, at, digest = ref.partition("@")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    host = name.split("/", 1)[0] if "/" in name else ""
    if not ("." in host or ":" in host or host == "localhost"):
        host = "docker.io"  # e.g. debian:bookworm-slim, library/python
    return host, name, (at + digest) if at else tag


def repository(ref: str) -> str:
    """The ref without its tag or digest."""
    return split_ref(ref)[1]


@dataclass(frozen=True)
class Registry:
    """The cluster registry and whether to verify its TLS certificate (tests: plain http)."""

    host: str
    tls_verify: bool = True

    def verify(self, ref: str) -> bool:
        """TLS verification for ``ref``: the setting applies to the cluster registry only."""
        return self.tls_verify or split_ref(ref)[0] != self.host

    def flags(self, ref: str, flag: str) -> list[str]:
        """``[flag=false]`` when not verifying ``ref``; else nothing, so that the tools'
        ``registries.conf`` (``insecure = true`` entries) still applies."""
        return [] if self.verify(ref) else [f"{flag}=false"]


def tool_env(work: Path) -> dict[str, str]:
    """A clean environment for skopeo, umoci and buildah: no build token, no config vars."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(work / "home"),
        "TMPDIR": str(work / "tmp"),
    }
    for key in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "CONTAINERS_POLICY"):
        if key in os.environ:
            env[key] = os.environ[key]
    for d in (work / "home", work / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    return env


class ImageBuilder:
    def __init__(self, work: Path, registry: Registry, emit: Emit) -> None:
        self.work = work
        self.registry = registry
        self.emit = emit
        self.env = tool_env(work)
        self.layout = work / "oci"

    # -- buildpack apps ------------------------------------------------------------------

    def slug_image(
        self,
        *,
        stack: str,
        slug: Path,
        target: str,
        process_types: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> str:
        """Stack + slug layer, pushed to ``target``; returns the manifest digest."""
        image = f"{self.layout}:build"
        self.emit(heading(f"Fetching the stack image {stack}"))
        self._run(
            "skopeo",
            "copy",
            "--quiet",
            *self.registry.flags(stack, "--src-tls-verify"),
            f"docker://{stack}",
            f"oci:{image}",
            what=f"Could not fetch the stack image {stack}",
        )
        self.emit(heading(f"Adding the app layer ({APP_DIR}, owned by {APP_UID}:{APP_GID})"))
        layer = self.work / "app-layer.tar"
        write_app_layer(slug, layer)
        self.emit(detail(f"Layer: {layer.stat().st_size / 1e6:.1f}M uncompressed"))
        self._run(
            "umoci",
            "raw",
            "add-layer",
            "--image",
            image,
            "--history.created_by",
            f"yurt: slug at {APP_DIR} and {LAUNCHER_PATH}",
            layer,
            what="Could not add the app layer",
        )
        layer.unlink()
        self._run(
            "umoci",
            "config",
            "--image",
            image,
            *config_args(process_types, labels),
            what="Could not write the image config",
        )
        return self._push(f"oci:{image}", target, "skopeo")

    # -- Dockerfile apps -----------------------------------------------------------------

    def dockerfile_image(
        self, *, context: Path, target: str, labels: Mapping[str, str]
    ) -> tuple[str, dict[str, Any]]:
        """``buildah build`` the app's Dockerfile, push it to ``target``; returns the digest
        and the image's OCI config (``Cmd``, ``Entrypoint``, ...)."""
        storage = [
            "--root",
            str(self.work / "containers" / "storage"),
            "--runroot",
            str(self.work / "containers" / "run"),
            "--storage-driver",
            "vfs",
        ]
        label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
        self.emit(heading("Building the Dockerfile with buildah"))
        out = _Indented(self.emit)
        status = proc.stream(
            [
                "buildah",
                *storage,
                "build",
                "--isolation",
                "chroot",
                "--layers=false",
                *([] if self.registry.tls_verify else ["--tls-verify=false"]),
                *label_args,
                "--file",
                str(context / "Dockerfile"),
                "--tag",
                target,
                str(context),
            ],
            out,
            cwd=context,
            env=self.env,
        )
        out.flush()
        if status != 0:
            raise ImageError(f"The Dockerfile build failed (buildah exited with status {status}).")
        inspect = proc.run(
            ["buildah", *storage, "inspect", "--type", "image", target], env=self.env, check=False
        )
        try:
            config = json.loads(inspect.stdout)["OCIv1"].get("config") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ImageError(
                f"Could not read the built image's config: {inspect.stderr[-300:]}"
            ) from None
        digest = self._push(f"containers-storage:{target}", target, "buildah", storage)
        return digest, dict(config)

    # -- shared --------------------------------------------------------------------------

    def _push(self, source: str, target: str, tool: str, storage: list[str] | None = None) -> str:
        self.emit(heading(f"Pushing image {target}"))
        digest_file = self.work / "digest"
        flag = "--dest-tls-verify" if tool == "skopeo" else "--tls-verify"
        verify = self.registry.flags(target, flag)
        if tool == "skopeo":
            argv = ["skopeo", "copy", "--quiet", *verify, "--digestfile", str(digest_file)]
            argv += [source, f"docker://{target}"]
        else:
            argv = ["buildah", *(storage or []), "push", "--quiet", *verify]
            argv += ["--digestfile", str(digest_file), target, f"docker://{target}"]
        self._run(*argv, what=f"Could not push the image to {target}")
        digest = digest_file.read_text().strip()
        if not DIGEST_RE.match(digest):
            raise ImageError(f"{tool} reported an unexpected digest {digest[:80]!r}")
        self.emit(detail(f"Digest: {digest}"))
        return digest

    def _run(self, *argv: str | os.PathLike[str], what: str) -> None:
        res = proc.run(argv, env=self.env, check=False, timeout=3600)
        if res.returncode != 0:
            output = (res.stdout + res.stderr).strip().splitlines()[-8:]
            raise ImageError("\n".join([f"{what}:", *output]))


def config_args(process_types: Mapping[str, str], labels: Mapping[str, str]) -> list[str]:
    """``umoci config`` flags: launcher ENTRYPOINT, CMD = the web process (if any), /app."""
    args = [
        f"--config.user={APP_UID}:{APP_GID}",
        f"--config.workingdir={APP_DIR}",
        f"--config.env=HOME={APP_DIR}",
        "--clear=config.entrypoint",
        f"--config.entrypoint={LAUNCHER_PATH}",
        "--clear=config.cmd",
        "--config.cmd=/bin/sh",
    ]
    web = process_types.get("web")
    if web:
        args += ["--config.cmd=-c", f"--config.cmd={web}"]
    args += [f"--config.label={k}={v}" for k, v in labels.items()]
    return args


def write_app_layer(slug: Path, out: Path, uid: int = APP_UID, gid: int = APP_GID) -> None:
    """An uncompressed layer tar: the slug's entries under ``app/`` (owned by uid:gid),
    plus the launcher (root-owned, 0755)."""
    with (
        tarfile.open(slug, "r:gz") as src,
        tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for member in _slug_members(src):
            fileobj = src.extractfile(member) if member.isreg() else None
            name = _under_app(member.name)
            if name is None:
                continue
            member.name = name
            if member.islnk():
                target = _under_app(member.linkname)
                if target is None:
                    continue
                member.linkname = target
            member.uid, member.gid = uid, gid
            member.uname = member.gname = ""
            member.pax_headers = {}
            dst.addfile(member, fileobj)
        for directory in ("usr", "usr/local", "usr/local/bin"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            dst.addfile(info)
        data = LAUNCHER.encode()
        info = tarfile.TarInfo(LAUNCHER_PATH.lstrip("/"))
        info.size = len(data)
        info.mode = 0o755
        dst.addfile(info, io.BytesIO(data))


def _slug_members(src: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The slug's members; the app dir itself first (``./`` in tars made with ``-C dir .``)."""
    seen_root = False
    for member in src:
        if _under_app(member.name) == "app":
            seen_root = True
        elif not seen_root:
            root = tarfile.TarInfo("app")
            root.type = tarfile.DIRTYPE
            root.mode = 0o755
            seen_root = True
            yield root
        yield member


def _under_app(name: str) -> str | None:
    """``./x/y`` -> ``app/x/y``; None for names that would escape the app dir."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(["app", *parts])


class _Indented:
    """A child's output as 7-space detail lines (whole lines; ``flush`` for the rest)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.pending = bytearray()

    def __call__(self, chunk: bytes) -> None:
        self.pending.extend(chunk)
        *lines, rest = self.pending.split(b"\n")
        for line in lines:
            self.emit(b"       " + line.rstrip(b"\r") + b"\n")
        self.pending[:] = rest

    def flush(self) -> None:
        if self.pending:
            self(b"\n")
