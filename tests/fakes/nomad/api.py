"""HTTP routes of the fake Nomad agent: thin parsing over ``NomadState``.

Routing of ``/v1/job/<id>/<suffix>`` follows Nomad: the path is percent-decoded, the prefix
stripped and the suffix matched, so dispatched IDs with ``/`` work raw or as ``%2F``
[N:command/agent/job_endpoint.go JobSpecificRequest]. Errors are plain text with Nomad's
status codes: handler errors 400/404/405, ACL failures 403, RPC/validation failures 500
[N:command/agent/http.go wrap]. Query responses carry ``X-Nomad-Index``,
``X-Nomad-KnownLeader`` and ``X-Nomad-LastContact``; ``?index=&wait=`` blocks until the index
moves past ``index`` (no jitter) [ND:api-docs/index.mdx#blocking-queries].

Stricter than Nomad: request bodies are checked by ``schema.check_json`` (unknown or
mis-cased keys and wrong types are 400, where Nomad drops or fails them), unknown query
parameters are 400, and endpoints the fake does not implement answer 501.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..httpbase import HTTPError, Request, Response, Router, parse_wait, wait_for_index
from . import canonical
from .jobspec import JobspecError, parse_job
from .schema import JSONTypeError, check_json
from .state import ACTIVE, JobEntry, NomadError, NomadState

QUERY = {"namespace", "region", "index", "wait", "stale", "pretty"}
WRITE = {"namespace", "region", "pretty"}
FRAME = 64 * 1024
_NOT_IMPLEMENTED = (
    "/plan",
    "/evaluate",
    "/periodic/force",
    "/summary",
    "/services",
    "/actions",
    "/action",
)


class NomadAPI:
    def __init__(
        self, state: NomadState, stopped: threading.Event, token: str | None, log_heartbeat: float
    ) -> None:
        self.state = state
        self.cond = state.cond
        self.stopped = stopped
        self.token = token
        self.log_heartbeat = log_heartbeat
        r = self.router = Router()
        r.add(r"/v1/jobs/parse", "PUT POST", self.parse)
        r.add(r"/v1/jobs", "GET", self.list_jobs)
        r.add(r"/v1/jobs", "PUT POST", lambda req: self.register(req, ""))
        r.add(r"/v1/job/(.+)", "GET PUT POST DELETE", self.job_specific)
        r.add(r"/v1/deployments", "GET", self.list_deployments)
        r.add(r"/v1/deployment/allocations/(.+)", "GET", self.deployment_allocs)
        r.add(r"/v1/deployment/promote/(.+)", "PUT POST", self.promote)
        r.add(r"/v1/deployment/fail/(.+)", "PUT POST", self.fail)
        r.add(r"/v1/deployment/(.+)", "GET", self.deployment)
        r.add(r"/v1/allocation/(.+)", "GET", self.allocation)
        r.add(r"/v1/evaluation/(.+)", "GET", self.evaluation)
        r.add(r"/v1/client/fs/logs/(.+)", "GET", self.logs)
        r.add(r"/v1/status/leader", "GET", lambda req: Response.json("127.0.0.1:4647"))
        r.add(
            r"/v1/agent/self",
            "GET",
            lambda req: Response.json(
                {
                    "config": {
                        "Region": "global",
                        "Datacenter": "dc1",
                        "Version": {"Version": "1.11.0"},
                    }
                }
            ),
        )

    # -- plumbing -----------------------------------------------------------------------------------
    def __call__(self, req: Request) -> Response:
        self._auth(req)
        region = req.arg("region")
        if region and region != "global":
            raise HTTPError(500, "No path to region")
        try:
            return self.router.dispatch(req)
        except NomadError as exc:
            raise HTTPError(exc.status, exc.message) from exc
        except JSONTypeError as exc:
            raise HTTPError(400, f"fake Nomad: {exc}") from exc

    def _auth(self, req: Request) -> None:
        if self.token is None:
            return
        given = req.headers.get("x-nomad-token") or ""
        auth = req.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            raise HTTPError(403, "Permission denied")
        if given != self.token:
            raise HTTPError(403, "ACL token not found")

    @staticmethod
    def _ns(req: Request) -> str:
        return req.arg("namespace") or "default"

    def _query(
        self,
        req: Request,
        index_fn: Callable[[], int],
        produce: Callable[[], Any],
        extra: frozenset[str] | set[str] = frozenset(),
    ) -> Response:
        req.check_params(QUERY | extra)
        min_index = req.int_arg("index") or 0
        with self.cond:
            if min_index > 0:
                wait_for_index(self.cond, self.stopped, index_fn, min_index, parse_wait(req))
            data = produce()
            index = max(index_fn(), 1)
        return Response.json(
            data,
            headers={
                "X-Nomad-Index": str(index),
                "X-Nomad-KnownLeader": "true",
                "X-Nomad-LastContact": "0",
            },
        )

    @staticmethod
    def _written(reply: dict[str, Any]) -> Response:
        out = dict(reply)
        out.setdefault("LastContact", 0)
        out.setdefault("KnownLeader", False)
        return Response.json(out, headers={"X-Nomad-Index": str(reply.get("Index", 0))})

    def _body(self, req: Request, kind: str) -> dict[str, Any]:
        body = req.json()
        check_json(body, kind)
        return body

    # -- jobs -----------------------------------------------------------------------------------------
    def parse(self, req: Request) -> Response:
        req.check_params(WRITE)
        body = self._body(req, "JobsParseRequest")
        if not body.get("JobHCL"):
            raise HTTPError(400, "Job spec is empty")
        if body.get("Variables"):
            raise HTTPError(400, "fake Nomad: HCL variables (Variables) are not supported")
        try:
            job = parse_job(body["JobHCL"])
        except JobspecError as exc:
            raise HTTPError(400, f"Failed to parse job: {exc}") from exc
        if body.get("Canonicalize"):
            job = canonical.canonicalize(job, server=False)
        return Response.json(job)

    def list_jobs(self, req: Request) -> Response:
        ns, prefix, meta = (
            req.arg("namespace") or "default",
            req.arg("prefix") or "",
            bool(req.bool_arg("meta")),
        )

        def produce() -> list[dict[str, Any]]:
            entries = [
                e
                for (n, jid), e in sorted(self.state.jobs.items())
                if (ns == "*" or n == ns) and jid.startswith(prefix)
            ]
            return [self._stub(e, meta) for e in entries]

        return self._query(req, lambda: self.state.tables["jobs"], produce, {"prefix", "meta"})

    def _stub(self, entry: JobEntry, meta: bool) -> dict[str, Any]:
        job = entry.job
        stub = {k: job[k] for k in ("ID", "ParentID", "Name", "Namespace", "Datacenters", "NodePool", "Type", "Priority", "Stop", "Status",
                                    "StatusDescription", "CreateIndex", "ModifyIndex", "JobModifyIndex", "SubmitTime")}  # fmt: skip
        stub.update({"Multiregion": None, "Periodic": job["Periodic"] is not None, "ParameterizedJob": job["ParameterizedJob"] is not None,
                     "JobSummary": self._summary(entry)})  # fmt: skip
        if meta:
            stub["Meta"] = job["Meta"]
        return stub

    def _summary(self, entry: JobEntry) -> dict[str, Any]:
        job = entry.job
        summary = {
            tg["Name"]: {
                "Queued": 0,
                "Complete": 0,
                "Failed": 0,
                "Running": 0,
                "Starting": 0,
                "Lost": 0,
                "Unknown": 0,
            }
            for tg in job["TaskGroups"]
        }
        for a in self.state.job_allocs(entry):
            row = summary.get(a.group)
            if row is not None:
                key = {
                    "pending": "Starting",
                    "running": "Running",
                    "complete": "Complete",
                    "failed": "Failed",
                }.get(a.client_status, "Lost")
                row[key] += 1
        children = {"Pending": 0, "Running": 0, "Dead": 0}
        for other in self.state.jobs.values():
            if other.job["ParentID"] == job["ID"] and other.job["Namespace"] == job["Namespace"]:
                children[
                    other.job["Status"].capitalize()
                    if other.job["Status"] in ("pending", "running", "dead")
                    else "Pending"
                ] += 1
        return {"JobID": job["ID"], "Namespace": job["Namespace"], "Summary": summary, "Children": children,
                "CreateIndex": entry.create_index, "ModifyIndex": job["ModifyIndex"]}  # fmt: skip

    def register(self, req: Request, path_id: str) -> Response:
        req.check_params(WRITE)
        body = req.json()
        if isinstance(body, dict) and "Job" not in body and ("TaskGroups" in body or "ID" in body):
            raise HTTPError(
                400,
                'Job must be specified (the body must be {"Job": {...}}; real Nomad reads a bare job as empty)',
            )
        check_json(body, "JobRegisterRequest")
        job = body.get("Job")
        if job is None:
            raise HTTPError(400, "Job must be specified")
        if job.get("ID") is None:
            raise HTTPError(400, "Job ID hasn't been provided")
        if path_id and job["ID"] != path_id:
            raise HTTPError(400, "Job ID does not match name")
        job = dict(job)
        job["Namespace"] = (
            req.arg("namespace") or body.get("Namespace") or job.get("Namespace") or "default"
        )
        with self.cond:
            reply = self.state.register(job, enforce=bool(body.get("EnforceIndex")), modify_index=body.get("JobModifyIndex") or 0,
                                        preserve_counts=bool(body.get("PreserveCounts")), submission=body.get("Submission"))  # fmt: skip
        return self._written(reply)

    def job_specific(self, req: Request, rest: str) -> Response:
        routes: list[tuple[str, Callable[[Request, str], Response]]] = [
            ("/allocations", self.job_allocations),
            ("/evaluations", self.job_evaluations),
            ("/dispatch", self.dispatch),
            ("/versions", self.versions),
            ("/revert", self.revert),
            ("/deployments", self.job_deployments),
            ("/deployment", self.job_deployment),
            ("/stable", self.stable),
            ("/scale", self.scale),
            ("/submission", self.submission),
        ]
        if rest.endswith("/tag") and "/versions/" in rest:
            job_id, _, tag = rest[: -len("/tag")].rpartition("/versions/")
            return self.tag(req, job_id, tag)
        for suffix in _NOT_IMPLEMENTED:
            if rest.endswith(suffix):
                raise HTTPError(501, f"fake Nomad: {suffix} is not implemented")
        for suffix, fn in routes:
            if rest.endswith(suffix):
                return fn(req, rest[: -len(suffix)])
        if req.method == "GET":
            return self.get_job(req, rest)
        if req.method == "DELETE":
            return self.delete_job(req, rest)
        return self.register(req, rest)

    def get_job(self, req: Request, job_id: str) -> Response:
        key = (self._ns(req), job_id)

        def index() -> int:
            entry = self.state.jobs.get(key)
            return entry.job["ModifyIndex"] if entry else self.state.tables["jobs"]

        return self._query(req, index, lambda: self.state.entry(*key).job)

    def delete_job(self, req: Request, job_id: str) -> Response:
        req.check_params(WRITE | {"purge", "global", "eval_priority", "no_shutdown_delay"})
        purge = bool(req.bool_arg("purge"))
        req.bool_arg("global")
        req.bool_arg("no_shutdown_delay")
        with self.cond:
            return self._written(self.state.deregister(self._ns(req), job_id, purge))

    def job_allocations(self, req: Request, job_id: str) -> Response:
        if req.method != "GET":
            raise HTTPError(405, "Invalid method")
        all_ = bool(req.bool_arg("all"))
        key = (self._ns(req), job_id)

        def allocs() -> list[Any]:
            entry = self.state.jobs.get(key)
            if entry is None:
                return (
                    [a for a in self.state.allocs.values() if (a.namespace, a.job_id) == key]
                    if all_
                    else []
                )
            return self.state.job_allocs(entry, all_)

        def index() -> int:
            return max((a.modify_index for a in allocs()), default=self.state.tables["allocs"])

        return self._query(
            req,
            index,
            lambda: [
                a.stub() for a in sorted(allocs(), key=lambda a: a.create_index, reverse=True)
            ],
            {"all", "resources", "task_states"},
        )

    def job_evaluations(self, req: Request, job_id: str) -> Response:
        ns = self._ns(req)

        def evals() -> list[dict[str, Any]]:
            return sorted(
                (
                    e
                    for e in self.state.evals.values()
                    if e["JobID"] == job_id and e["Namespace"] == ns
                ),
                key=lambda e: e["CreateIndex"],
                reverse=True,
            )

        return self._query(req, lambda: self.state.tables["evals"], evals)

    def versions(self, req: Request, job_id: str) -> Response:
        if req.bool_arg("diffs") or req.arg("diff_version") or req.arg("diff_tag"):
            raise HTTPError(501, "fake Nomad: version diffs are not implemented")
        key = (self._ns(req), job_id)

        def produce() -> dict[str, Any]:
            entry = self.state.jobs.get(key)
            if entry is None:
                raise HTTPError(404, "job versions not found")
            return {
                "Versions": list(reversed(entry.versions)),
                "Diffs": None,
                "Index": self.state.tables["jobs"],
                "LastContact": 0,
                "KnownLeader": True,
            }

        return self._query(
            req, lambda: self.state.tables["jobs"], produce, {"diffs", "diff_version", "diff_tag"}
        )

    def submission(self, req: Request, job_id: str) -> Response:
        try:
            version = int(req.arg("version") or "")
        except ValueError as exc:
            raise HTTPError(400, "Unable to parse job submission version parameter") from exc

        def produce() -> Any:
            sub = self.state.entry(self._ns(req), job_id).submissions.get(version)
            if sub is None:
                raise HTTPError(404, "job source not found")
            return sub

        return self._query(req, lambda: self.state.tables["jobs"], produce, {"version"})

    def tag(self, req: Request, job_id: str, tag: str) -> Response:
        req.check_params(WRITE)
        with self.cond:
            entry = self.state.entry(self._ns(req), job_id)
            if req.method == "DELETE":
                return self._written(self.state.untag_version(entry, tag))
            body = self._body(req, "JobTagRequest")
            # Without Version, Nomad tags version 0, not the latest [I:hashicorp/nomad#24266, #27759].
            return self._written(
                self.state.tag_version(
                    entry, tag, body.get("Version") or 0, body.get("Description") or ""
                )
            )

    def revert(self, req: Request, job_id: str) -> Response:
        req.check_params(WRITE)
        try:
            body = self._body(req, "JobRevertRequest")
        except JSONTypeError as exc:
            if "TaggedVersion" in str(exc):
                raise HTTPError(
                    400,
                    f"fake Nomad: {exc}; Nomad has no TaggedVersion and would revert to version 0 [hashicorp/nomad#24059]",
                ) from exc
            raise
        if not body.get("JobID"):
            raise HTTPError(400, "JobID must be specified")
        if body["JobID"] != job_id:
            raise HTTPError(400, "Job ID does not match")
        with self.cond:
            entry = self.state.entry(self._ns(req), job_id)
            return self._written(
                self.state.revert(
                    entry, body.get("JobVersion") or 0, body.get("EnforcePriorVersion")
                )
            )

    def stable(self, req: Request, job_id: str) -> Response:
        req.check_params(WRITE)
        body = self._body(req, "JobStabilityRequest")
        if not body.get("JobID"):
            raise HTTPError(400, "JobID must be specified")
        if body["JobID"] != job_id:
            raise HTTPError(400, "Job ID does not match")
        with self.cond:
            entry = self.state.entry(self._ns(req), job_id)
            return self._written(
                {
                    "Index": self.state.set_stable(
                        entry, body.get("JobVersion") or 0, bool(body.get("Stable"))
                    )
                }
            )

    def dispatch(self, req: Request, job_id: str) -> Response:
        req.check_params(WRITE | {"idempotency_token"})
        body = self._body(req, "JobDispatchRequest")
        if body.get("JobID") and body["JobID"] != job_id:
            raise HTTPError(400, "Job ID does not match")
        try:
            payload = base64.b64decode(body.get("Payload") or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HTTPError(400, "Payload must be base64") from exc
        with self.cond:
            entry = self.state.jobs.get((self._ns(req), job_id))
            reply = self.state.dispatch(entry, job_id, body.get("Meta") or {}, payload, body.get("IdPrefixTemplate") or "",
                                        req.arg("idempotency_token") or "")  # fmt: skip
        return self._written(reply)

    def scale(self, req: Request, job_id: str) -> Response:
        key = (self._ns(req), job_id)
        if req.method == "GET":
            return self._query(req, lambda: self._scale_index(key), lambda: self._scale_status(key))
        req.check_params(WRITE)
        body = self._body(req, "ScalingRequest")
        target = body.get("Target") or {}
        if target.get("Job") and target["Job"] != job_id:
            raise HTTPError(400, "job ID in payload did not match URL")
        if "Group" not in target:
            raise HTTPError(400, "missing task group name for scaling action")
        with self.cond:
            entry = self.state.entry(*key)
            reply = self.state.scale(entry, target["Group"], body.get("Count"), body.get("Message") or "", bool(body.get("EnforceIndex")),
                                     body.get("JobModifyIndex") or 0)  # fmt: skip
        return self._written(reply)

    def _scale_index(self, key: tuple[str, str]) -> int:
        entry = self.state.jobs.get(key)
        if entry is None:
            return self.state.index
        return max(
            [entry.job["ModifyIndex"], *(a.modify_index for a in self.state.job_allocs(entry))]
        )

    def _scale_status(self, key: tuple[str, str]) -> dict[str, Any]:
        entry = self.state.entry(*key)
        job = entry.job
        groups = {
            tg["Name"]: {
                "Desired": tg["Count"],
                "Placed": 0,
                "Running": 0,
                "Healthy": 0,
                "Unhealthy": 0,
                "Events": None,
            }
            for tg in job["TaskGroups"]
        }
        for a in self.state.job_allocs(entry):
            row = groups.get(a.group)
            if row is None or a.canary or not a.live():
                continue
            row["Placed"] += 1
            row["Running"] += a.client_status == "running"
            row["Healthy"] += a.healthy is True
            row["Unhealthy"] += a.healthy is False
        return {"JobID": job["ID"], "Namespace": job["Namespace"], "JobCreateIndex": entry.create_index, "JobModifyIndex": job["ModifyIndex"],
                "JobStopped": job["Stop"], "TaskGroups": groups}  # fmt: skip

    # -- deployments ------------------------------------------------------------------------------
    def _job_deps(self, req: Request, job_id: str, all_: bool) -> list[dict[str, Any]]:
        entry = self.state.jobs.get((self._ns(req), job_id))
        return self.state.job_deployments(entry, all_) if entry else []

    def job_deployments(self, req: Request, job_id: str) -> Response:
        all_ = bool(req.bool_arg("all"))

        def index() -> int:
            return max(
                (d["ModifyIndex"] for d in self._job_deps(req, job_id, all_)),
                default=self.state.tables["deployment"],
            )

        return self._query(req, index, lambda: self._job_deps(req, job_id, all_), {"all"})

    def job_deployment(self, req: Request, job_id: str) -> Response:
        def index() -> int:
            deps = self._job_deps(req, job_id, False)
            return deps[0]["ModifyIndex"] if deps else self.state.tables["deployment"]

        def produce() -> Any:
            deps = self._job_deps(req, job_id, False)
            return deps[0] if deps else None  # JSON null, status 200, like Nomad

        return self._query(req, index, produce)

    def list_deployments(self, req: Request) -> Response:
        ns = self._ns(req)
        return self._query(req, lambda: self.state.tables["deployment"],
                           lambda: [d for d in self.state.deployments.values() if ns == "*" or d["Namespace"] == ns], {"prefix"})  # fmt: skip

    def _deployment(self, dep_id: str) -> dict[str, Any]:
        dep = self.state.deployments.get(dep_id)
        if dep is None:
            raise HTTPError(404, "deployment not found")
        return dep

    def deployment(self, req: Request, dep_id: str) -> Response:
        def index() -> int:
            dep = self.state.deployments.get(dep_id)
            return dep["ModifyIndex"] if dep else self.state.tables["deployment"]

        return self._query(req, index, lambda: self._deployment(dep_id))

    def deployment_allocs(self, req: Request, dep_id: str) -> Response:
        def allocs() -> list[Any]:
            return [a.stub() for a in self.state.allocs.values() if a.deployment_id == dep_id]

        return self._query(req, lambda: self.state.tables["allocs"], allocs)

    def _deployment_body(self, req: Request, dep_id: str, kind: str) -> dict[str, Any]:
        req.check_params(WRITE)
        body = self._body(req, kind)
        if body.get("DeploymentID") != dep_id:
            raise HTTPError(
                400,
                "Deployment ID does not match"
                if body.get("DeploymentID")
                else "Deployment ID must be specified",
            )
        return body

    def promote(self, req: Request, dep_id: str) -> Response:
        body = self._deployment_body(req, dep_id, "DeploymentPromoteRequest")
        with self.cond:
            dep = self._deployment(dep_id)
            self.state.promote(dep, None if body.get("All") else list(body.get("Groups") or []))
            return self._written({"EvalID": "", "EvalCreateIndex": 0, "DeploymentModifyIndex": dep["ModifyIndex"], "RevertedJobVersion": None,
                                  "Index": dep["ModifyIndex"]})  # fmt: skip

    def fail(self, req: Request, dep_id: str) -> Response:
        req.check_params(WRITE)
        if req.body:
            self._deployment_body(req, dep_id, "DeploymentFailRequest")
        with self.cond:
            dep = self._deployment(dep_id)
            if dep["Status"] not in ACTIVE:
                raise HTTPError(500, "can't fail terminal deployment")
            rollback = any(g["AutoRevert"] for g in dep["TaskGroups"].values())
            reverted = self.state.fail_deployment(dep, "Deployment marked as failed", rollback)
            return self._written({"EvalID": "", "EvalCreateIndex": 0, "DeploymentModifyIndex": dep["ModifyIndex"],
                                  "RevertedJobVersion": reverted, "Index": dep["ModifyIndex"]})  # fmt: skip

    # -- allocations, evaluations, logs ---------------------------------------------------------------
    def allocation(self, req: Request, alloc_id: str) -> Response:
        def produce() -> dict[str, Any]:
            a = self.state.allocs.get(alloc_id)
            if a is None:
                raise HTTPError(404, "alloc not found")
            return a.full()

        def index() -> int:
            a = self.state.allocs.get(alloc_id)
            return a.modify_index if a else self.state.tables["allocs"]

        return self._query(req, index, produce)

    def evaluation(self, req: Request, eval_id: str) -> Response:
        def produce() -> dict[str, Any]:
            ev = self.state.evals.get(eval_id)
            if ev is None:
                raise HTTPError(404, "eval not found")
            return ev

        return self._query(
            req,
            lambda: (self.state.evals.get(eval_id) or {}).get(
                "ModifyIndex", self.state.tables["evals"]
            ),
            produce,
        )

    def logs(self, req: Request, alloc_id: str) -> Response:
        req.check_params(
            {"namespace", "region", "task", "type", "follow", "offset", "origin", "plain"}
        )
        follow, plain = bool(req.bool_arg("follow")), bool(req.bool_arg("plain"))
        offset = req.int_arg("offset") or 0
        task, log_type, origin = (
            req.arg("task") or "",
            req.arg("type") or "",
            req.arg("origin") or "start",
        )
        with self.cond:
            a = self.state.allocs.get(alloc_id)
            if a is None:
                raise HTTPError(404, f'Unknown allocation "{alloc_id}"')
            if not task:
                raise HTTPError(400, "must provide task name")
            if log_type not in ("stdout", "stderr"):
                raise HTTPError(400, "must provide log type (stdout/stderr)")
            if origin not in ("start", "end"):
                raise HTTPError(400, "origin must be start or end")
            run = a.tasks.get(task)
            if run is None:
                raise HTTPError(400, f'unknown task name "{task}"')
            if not run.started_at:
                raise HTTPError(404, f'task "{task}" not started yet. No logs available')
            spec = next(
                t
                for g in a.job["TaskGroups"]
                if g["Name"] == a.group
                for t in g["Tasks"]
                if t["Name"] == task
            )
            if (spec["LogConfig"] or {}).get("Disabled"):
                raise HTTPError(
                    404, f'log entry for task "{task}" and log type "{log_type}" not found'
                )
            buf = a.logs.setdefault((task, log_type), bytearray())
            start = max(len(buf) - offset, 0) if origin == "end" else min(offset, len(buf))
        chunks = self._stream(buf, start, follow, plain, f"alloc/logs/{task}.{log_type}.0")
        ctype = "text/plain; charset=utf-8" if plain else "application/json"
        return Response(200, chunks, {"Content-Type": ctype})

    def _stream(
        self, buf: bytearray, pos: int, follow: bool, plain: bool, file: str
    ) -> Iterator[bytes]:
        """Frames as Nomad sends them: concatenated JSON objects, no delimiter, ``{}`` heartbeats."""
        last_sent = time.monotonic()
        while not self.stopped.is_set():
            with self.cond:
                if follow and len(buf) <= pos:
                    self.cond.wait(min(self.log_heartbeat, 0.2))
                data = bytes(buf[pos : pos + FRAME])
            if data:
                pos += len(data)
                last_sent = time.monotonic()
                yield (
                    data
                    if plain
                    else json.dumps(
                        {"Offset": pos, "Data": base64.b64encode(data).decode(), "File": file}
                    ).encode()
                )
                continue
            if not follow:
                return
            if not plain and time.monotonic() - last_sent >= self.log_heartbeat:
                last_sent = time.monotonic()
                yield b"{}"
            else:
                yield b""
