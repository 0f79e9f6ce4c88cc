"""The buildpack runner: source tree in, slug out (the classic v2 buildpack contract).

The same runner serves every runtime: the local runtime calls it on the host, the nomad
runtime's build job calls it inside the builder image. It knows nothing about the DB.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from controller import proc
from controller.builds.procfile import ProcfileError, parse_procfile
from controller.runtime.local import users

# Fixed detection order (documented in docs/buildpacks.md): the first that detects wins.
DETECTION_ORDER = ("nodejs", "python", "static", "procfile")
DETECT_HINTS = {
    "nodejs": "package.json",
    "python": "requirements.txt, uv.lock or poetry.lock (with pyproject.toml), "
    ".python-version, runtime.txt, app.py, main.py, manage.py",
    "static": "index.html, or a public/ directory",
    "procfile": "a Procfile",
}
STACK = "yurt-24"
STACK_PATH = "/usr/local/bin:/usr/bin:/bin"

Emit = Callable[[bytes], None]


class BuildFailed(Exception):
    """The build cannot produce a slug; the message is shown to the pusher."""


class BuildCancelled(Exception):
    pass


@dataclass
class Cancel:
    """Lets another thread stop a running build and every process it started."""

    cancelled: bool = False
    timed_out: bool = False
    cap_hit: bool = False
    _proc: subprocess.Popen[bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, p: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._proc = p
            if self.cancelled:
                proc.kill_group(p)

    def cancel(self, *, timeout: bool = False, cap_hit: bool = False) -> None:
        with self._lock:
            if not self.cancelled:
                self.timed_out = timeout
                self.cap_hit = cap_hit
            self.cancelled = True
            if self._proc is not None and self._proc.poll() is None:
                proc.kill_group(self._proc)
                threading.Timer(5, self._kill_hard, args=(self._proc,)).start()

    @staticmethod
    def _kill_hard(p: subprocess.Popen[bytes]) -> None:
        import signal

        if p.poll() is None:
            proc.kill_group(p, signal.SIGKILL)

    def check(self) -> None:
        if self.cancelled:
            raise BuildCancelled("timed out" if self.timed_out else "cancelled")


@dataclass(frozen=True)
class BuildRequest:
    source_tar: Path
    work_dir: Path  # scratch space for this build, removed afterwards by the caller
    cache_dir: Path
    env_dir: Path
    buildpacks_dir: Path
    slug_path: Path
    commit: str
    pinned_buildpack: str | None = None
    # (uid, gid) the buildpacks run as: the app's user when the server runs as root.
    user: tuple[int, int] | None = None


@dataclass(frozen=True)
class BuildResult:
    """What a build made: a slug file (local runtime) or an image pushed to the cluster's
    registry, pinned by digest (nomad runtime)."""

    buildpack: str
    slug_path: Path | None
    slug_size: int | None
    slug_checksum: str | None
    process_types: dict[str, str]
    image: str | None = None


def available_buildpacks(buildpacks_dir: Path) -> list[str]:
    return sorted(
        p.name
        for p in buildpacks_dir.iterdir()
        if p.is_dir() and not p.name.startswith(("_", ".")) and (p / "bin" / "detect").exists()
    )


def detection_order(known: list[str]) -> list[str]:
    """The bundled buildpacks in their fixed order, then any others by name."""
    return [n for n in DETECTION_ORDER if n in known] + [
        n for n in known if n not in DETECTION_ORDER
    ]


def heading(text: str) -> bytes:
    return f"-----> {text}\n".encode()


def detail(text: str) -> bytes:
    return f"       {text}\n".encode()


def error_lines(text: str) -> bytes:
    return "".join(f" !     {line}\n" for line in text.splitlines()).encode()


class Runner:
    def __init__(self, req: BuildRequest, emit: Emit, cancel: Cancel) -> None:
        self.req = req
        self.emit = emit
        self.cancel = cancel
        self.build_dir = req.work_dir / "app"
        self.packs_dir = req.work_dir / "buildpacks"
        self.home_dir = req.work_dir / "home"
        self.env: dict[str, str] = {
            # The stack: system tools only (app users cannot reach the server's own Python).
            "PATH": STACK_PATH,
            "LANG": "C.UTF-8",
            "STACK": STACK,
            "SOURCE_VERSION": req.commit,
            "HOME": str(self.home_dir),
            "TMPDIR": str(req.work_dir / "tmp"),
        }

    def run(self) -> BuildResult:
        self._prepare()
        packs = self._choose_buildpacks()
        release: dict[str, object] = {}
        for name in packs:
            self.cancel.check()
            release = self._compile(name)
        self.cancel.check()
        process_types = self._process_types(packs[-1], release)
        slug_size, checksum = self._make_slug()
        return BuildResult(
            buildpack=",".join(packs),
            slug_path=self.req.slug_path,
            slug_size=slug_size,
            slug_checksum=checksum,
            process_types=process_types,
        )

    # -- steps -------------------------------------------------------------------------

    def _prepare(self) -> None:
        for d in (self.build_dir, self.home_dir, self.req.work_dir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        self.req.cache_dir.mkdir(parents=True, exist_ok=True)
        self.req.env_dir.mkdir(parents=True, exist_ok=True)
        proc.run(["tar", "-xf", self.req.source_tar, "-C", self.build_dir])
        shutil.copytree(self.req.buildpacks_dir, self.packs_dir, symlinks=True)
        self._apply_slugignore()
        self._hand_over()

    def _hand_over(self) -> None:
        """Give the build's files to the user the buildpacks run as (the cache only the first
        time: afterwards everything in it was written by that user)."""
        if self.req.user is None:
            return
        uid, gid = self.req.user
        owner = f"{uid}:{gid}"
        proc.run(["chown", "-R", owner, self.req.work_dir, self.req.env_dir])
        cache = self.req.cache_dir
        if cache.stat().st_uid != uid:
            proc.run(["chown", "-R", owner, cache])
        cache.chmod(0o700)

    def _preexec(self) -> Callable[[], None] | None:
        return users.drop_privileges(*self.req.user) if self.req.user else None

    def _apply_slugignore(self) -> None:
        ignore = self.build_dir / ".slugignore"
        if not ignore.is_file():
            return
        patterns = [
            line.strip()
            for line in ignore.read_text(errors="replace").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        removed = 0
        for path in sorted(self.build_dir.rglob("*"), reverse=True):
            rel = path.relative_to(self.build_dir).as_posix()
            if any(_slugignore_match(rel, pat) for pat in patterns):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists() or path.is_symlink():
                    path.unlink()
                removed += 1
        if removed:
            self.emit(heading(f"Removed {removed} path(s) listed in .slugignore"))

    def _choose_buildpacks(self) -> list[str]:
        known = available_buildpacks(self.packs_dir)
        pinned = self._pinned()
        if pinned:
            for name in pinned:
                if name not in known:
                    raise BuildFailed(
                        f"Unknown buildpack {name!r}. Available buildpacks: {', '.join(known)}."
                    )
                if self._detect(name) is None:
                    raise BuildFailed(f"App not compatible with buildpack: {name}")
            return pinned
        if (self.build_dir / "Dockerfile").is_file():
            raise BuildFailed(
                "Dockerfile detected. Dockerfile builds run on the nomad runtime;\n"
                "this server uses the local runtime, which builds with buildpacks.\n"
                "To build with a buildpack instead, pin one: yurt buildpacks:set NAME"
            )
        for name in detection_order(known):
            if self._detect(name) is not None:
                return [name]
        hints = "\n".join(f"  {n}: {DETECT_HINTS.get(n, 'see its bin/detect')}" for n in known)
        raise BuildFailed(
            "Unable to select a buildpack: no buildpack detected this app.\n"
            f"What each buildpack looks for:\n{hints}\n"
            "Or pin one with: yurt buildpacks:set NAME"
        )

    def _pinned(self) -> list[str]:
        if self.req.pinned_buildpack:
            return [self.req.pinned_buildpack]
        listing = self.build_dir / ".buildpacks"
        if listing.is_file():
            names = [
                line.strip()
                for line in listing.read_text(errors="replace").splitlines()
                if line.strip() and not line.strip().startswith("#")
            ]
            if names:
                self.emit(heading(f"Using buildpacks from .buildpacks: {', '.join(names)}"))
            return names
        return []

    def _detect(self, name: str) -> str | None:
        script = self.packs_dir / name / "bin" / "detect"
        res = proc.run(
            [script, self.build_dir],
            env=self.env,
            check=False,
            timeout=60,
            preexec_fn=self._preexec(),
        )
        if res.returncode != 0:
            return None
        return res.stdout.strip().splitlines()[0] if res.stdout.strip() else name

    def _compile(self, name: str) -> dict[str, object]:
        label = self._detect(name) or name
        self.emit(heading(f"{label} app detected"))
        bin_dir = self.packs_dir / name / "bin"
        status = proc.stream(
            [bin_dir / "compile", self.build_dir, self.req.cache_dir, self.req.env_dir],
            self.emit,
            cwd=self.build_dir,
            env=self.env,
            on_start=self.cancel.attach,
            preexec_fn=self._preexec(),
        )
        self.cancel.check()
        if status != 0:
            raise BuildFailed(f"Push rejected, failed to compile {label} app.")
        self._source_export(self.packs_dir / name / "export")
        res = proc.run(
            [bin_dir / "release", self.build_dir],
            env=self.env,
            check=False,
            preexec_fn=self._preexec(),
        )
        if res.returncode != 0:
            raise BuildFailed(f"The {label} buildpack's bin/release failed: {res.stderr[-500:]}")
        try:
            data = yaml.safe_load(res.stdout) or {}
        except yaml.YAMLError as exc:
            raise BuildFailed(f"The {label} buildpack's bin/release printed invalid YAML") from exc
        if not isinstance(data, dict):
            raise BuildFailed(f"The {label} buildpack's bin/release did not print a YAML mapping")
        return data

    def _source_export(self, export: Path) -> None:
        """Carry a buildpack's ``export`` file into the next buildpack's environment."""
        if not export.is_file():
            return
        script = 'source "$1" >/dev/null 2>&1; env -0'
        res = proc.run(
            ["bash", "-c", script, "export", export],
            env=self.env,
            check=False,
            preexec_fn=self._preexec(),
        )
        if res.returncode == 0:
            pairs = (item.split("=", 1) for item in res.stdout.split("\0") if "=" in item)
            self.env = {k: v for k, v in pairs if not k.startswith("BASH_") and k != "_"}

    def _process_types(self, last_pack: str, release: dict[str, object]) -> dict[str, str]:
        defaults = release.get("default_process_types") or {}
        if not isinstance(defaults, dict):
            raise BuildFailed(f"The {last_pack} buildpack's default_process_types is not a map")
        types = {str(k): str(v) for k, v in defaults.items()}
        in_procfile = declared_process_types(self.build_dir, self.emit)
        declared = in_procfile or {}
        extra = {k: v for k, v in types.items() if k not in declared}
        if extra:
            if in_procfile is None:
                self.emit(heading("Discovering process types"))
            self.emit(detail(f"Default types for buildpack -> {', '.join(extra)}"))
        merged = {**types, **declared}
        return merged

    def _make_slug(self) -> tuple[int, str]:
        self.emit(heading("Compressing..."))
        slug = self.req.slug_path
        slug.parent.mkdir(parents=True, exist_ok=True)
        tmp = slug.with_suffix(".partial")
        proc.run(
            [
                "tar",
                "--use-compress-program=gzip -1",
                "--exclude=./.git",
                "--numeric-owner",
                "-C",
                self.build_dir,
                "-cf",
                tmp,
                ".",
            ]
        )
        digest = hashlib.sha256()
        with tmp.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        os.replace(tmp, slug)
        size = slug.stat().st_size
        self.emit(detail(f"Done: {size / 1e6:.1f}M"))
        return size, "sha256:" + digest.hexdigest()


def _slugignore_match(rel: str, pattern: str) -> bool:
    pat = pattern.lstrip("/")
    if pattern.startswith("/"):
        return fnmatch.fnmatch(rel, pat) or rel.startswith(pat.rstrip("/") + "/")
    base = rel.rsplit("/", 1)[-1]
    return (
        fnmatch.fnmatch(rel, pat)
        or fnmatch.fnmatch(base, pat)
        or rel.startswith(pat.rstrip("/") + "/")
    )


def declared_process_types(app_dir: Path, emit: Emit) -> dict[str, str] | None:
    """The process types the app's Procfile declares (None: it has no Procfile), said in the
    build output."""
    procfile = app_dir / "Procfile"
    if not procfile.is_file():
        return None
    try:
        declared = parse_procfile(procfile.read_text(errors="replace"))
    except ProcfileError as exc:
        raise BuildFailed(str(exc)) from exc
    emit(heading("Discovering process types"))
    emit(detail(f"Procfile declares types -> {', '.join(declared) or '(none)'}"))
    return declared


def run_build(req: BuildRequest, emit: Emit, cancel: Cancel) -> BuildResult:
    """Run one build; raise BuildFailed or BuildCancelled when there is no slug."""
    return Runner(req, emit, cancel).run()


def make_env_dir(root: Path, values: dict[str, str]) -> Path:
    """Write config vars as ENV_DIR files (one file per var) in a fresh private dir."""
    env_dir = Path(tempfile.mkdtemp(prefix="env-", dir=root))
    os.chmod(env_dir, 0o700)
    for key, value in values.items():
        (env_dir / key).write_text(value)
    return env_dir


def dumps_process_types(types: dict[str, str]) -> str:
    return json.dumps(types, sort_keys=False)
