"""``BuildExecutor``: does what a Nomad client would do with the ``yurt-build`` allocations of
the fake cluster, with the real builder.

The fake Nomad schedules the dispatched build and holds its allocation running. For each one
this thread does the client's part: it fetches the ``artifact`` the job spec names (the
controller's source endpoint, with the header the spec sets, unpacked into the task's
``local/src``), runs ``python -m controller.builder`` with the task's env and the dispatch
meta as ``NOMAD_META_*`` (as the docker driver would, minus the container), copies its output
into the allocation's log as it is written, and ends the allocation with the builder's real
exit code. Only the container is missing; everything the controller and the builder say to
each other is real.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import requests

from tests.fakes.cluster import FakeCluster

REPO = Path(__file__).resolve().parents[2]


class BuildExecutor:
    def __init__(
        self,
        cluster: FakeCluster,
        work: Path,
        *,
        namespace: str = "yurt",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.work = work
        self.namespace = namespace
        self.extra_env = dict(extra_env or {})
        self.runs: list[dict[str, Any]] = []  # per build: meta (without the token), exit code
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="build-executor", daemon=True)

    def __enter__(self) -> BuildExecutor:
        self.cluster.set_batch_result("yurt-build/", hold=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for child in self.cluster.children("yurt-build"):
                for alloc in self.cluster.allocations(child["ID"], self.namespace):
                    if alloc["ID"] in self._seen or alloc["ClientStatus"] != "running":
                        continue
                    self._seen.add(alloc["ID"])
                    self._run(child, alloc["ID"])

    def _run(self, job: dict[str, Any], alloc_id: str) -> None:
        task = job["TaskGroups"][0]["Tasks"][0]
        meta = {k: v for k, v in (job.get("Meta") or {}).items() if isinstance(v, str)}
        task_dir = self.work / alloc_id
        src = task_dir / "local" / "src"
        src.mkdir(parents=True)
        code = 1
        try:
            self._fetch_artifact(task["Artifacts"][0], meta, src)
            code = self._builder(task, meta, task_dir)
        except Exception as exc:  # the client reports a failed download as a task failure
            self.cluster.append_log(alloc_id, "build", f"artifact: {exc}\n", "stderr")
        finally:
            self.runs.append(
                {"meta": {k: v for k, v in meta.items() if k != "build_token"}, "exit": code}
            )
            self.cluster.finish(alloc_id, code)

    def _fetch_artifact(self, artifact: dict[str, Any], meta: dict[str, str], dest: Path) -> None:
        url = _interpolate(artifact["GetterSource"], meta)
        headers = {
            k: _interpolate(v, meta) for k, v in (artifact.get("GetterHeaders") or {}).items()
        }
        resp = requests.get(url, headers=headers, timeout=60)
        resp.raise_for_status()
        with tarfile.open(fileobj=io.BytesIO(resp.content), mode="r:gz") as tar:
            tar.extractall(dest, filter="data")

    def _builder(self, task: dict[str, Any], meta: dict[str, str], task_dir: Path) -> int:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(task_dir),
            "NOMAD_TASK_DIR": str(task_dir / "local"),
            **{k: _interpolate(v, meta) for k, v in (task.get("Env") or {}).items()},
            **{f"NOMAD_META_{k}": v for k, v in meta.items()},
            "YURT_SOURCE_DIR": str(task_dir / "local" / "src"),
            **self.extra_env,
        }
        alloc_id = task_dir.name
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.builder"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        copiers = [
            threading.Thread(target=self._copy, args=(proc.stdout, alloc_id, "stdout")),
            threading.Thread(target=self._copy, args=(proc.stderr, alloc_id, "stderr")),
        ]
        for t in copiers:
            t.start()
        code = proc.wait(timeout=600)
        for t in copiers:
            t.join()
        return code

    def _copy(self, pipe: IO[bytes], alloc_id: str, stream: str) -> None:
        for line in iter(pipe.readline, b""):
            self.cluster.append_log(alloc_id, "build", line.decode("utf-8", "replace"), stream)


def _interpolate(value: str, meta: Mapping[str, str]) -> str:
    """``${NOMAD_META_x}`` as the client fills it in."""
    for key, val in meta.items():
        value = value.replace("${NOMAD_META_" + key + "}", val)
    return value
