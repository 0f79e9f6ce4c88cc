"""The fake Nomad's state store and its small scheduler/deployment watcher.

Everything runs under one ``threading.Condition`` shared with the fake Consul; each write bumps
the raft-like index and wakes blocking queries. Time inside the simulation is *simulated*:
``advance()`` moves it by ``sim_step`` seconds, so update-block durations (min_healthy_time,
healthy_deadline, progress_deadline, reschedule delays) keep their meaning without waiting.

Behaviour modelled, with sources:
* register: no new version when the spec is unchanged (an eval is still made), EnforceIndex
  check-and-set, versions pruned to ``job_tracked_versions`` keeping the newest stable and tagged
  ones [N:nomad/job_endpoint.go Register; N:nomad/state/state_store.go; reference §1.2];
  a stop (deregister without purge) is a new version with ``Stop=true``
  [N:nomad/state/state_store.go upsertJobImpl]; purge forgets the history.
* the reconciler [N:scheduler/reconciler/reconcile_cluster.go]: a deployment only for groups
  with an update strategy and something to place; canaries only when existing allocations need a
  destructive update (never on the first version); rolling replacement limited by max_parallel;
  allocations whose group is unchanged are updated in place; unpromoted canaries of failed or
  superseded deployments are stopped.
* the deployment watcher [N:nomad/deploymentwatcher/deployment_watcher.go]: an unhealthy
  allocation fails the deployment at once only when progress_deadline is 0 or it cannot be
  rescheduled; otherwise it is replaced and the deployment fails at the progress deadline
  (which only starts once something was placed, so an unplaceable group waits forever);
  auto-promote needs every canary group to opt in; auto-revert goes to the latest *stable*
  version and only if its spec differs, with Nomad's status descriptions; success marks the
  version stable.
* namespaces: a job in a namespace that does not exist is refused (only ``default`` exists in
  a new cluster; the test creates others with ``FakeCluster.create_namespace``)
  [N:nomad/state/state_store.go upsertJobImpl].
* dispatch: meta/payload validation and errors, child IDs, meta merged into the child,
  idempotency tokens returning the existing child without an eval [N:nomad/job_endpoint.go
  Dispatch, validateDispatchRequest].
* batch allocations restart per the restart policy and are rescheduled per the reschedule
  policy (batch default: 1 attempt), like real clients do; test outcomes decide exit codes.
"""

from __future__ import annotations

import base64
import copy
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..consul.state import ConsulState, ServiceInstance
from . import canonical
from .model import (
    NODE_ADDRESS,
    Alloc,
    Outcome,
    TaskRun,
    deployment_record,
    deployment_state,
    evaluation_record,
    new_id,
    now_ns,
    rfc3339,
)

ACTIVE = ("running", "paused", "pending", "initializing", "blocked", "unblocking")
SEC = 10**9


class NomadError(Exception):
    """An API error: HTTP status plus Nomad's plain-text message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def multierror(errors: list[str]) -> str:
    """go-multierror's default format, as Nomad returns validation failures."""
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "\n" + "".join(f"\t* {e}\n" for e in errors) + "\n"


@dataclass
class JobEntry:
    versions: list[dict[str, Any]]  # oldest first; versions[-1] is the current job
    create_index: int
    submissions: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    latest_eval: str = ""

    @property
    def job(self) -> dict[str, Any]:
        return self.versions[-1]


@dataclass
class OutcomeRule:
    job: str  # job ID, or the parent ID of dispatched children, or a prefix for batch results
    group: str | None
    version: int | None
    outcome: Outcome
    prefix: bool = False


class NomadState:
    def __init__(
        self,
        cond: threading.Condition,
        consul: ConsulState,
        *,
        sim_step: float = 5.0,
        tracked_versions: int = 6,
    ) -> None:
        self.cond = cond
        self.consul = consul
        self.sim_step = sim_step
        self.tracked_versions = tracked_versions
        self.now = 0.0
        self.index = 1
        self.tables = {"jobs": 1, "allocs": 1, "deployment": 1, "evals": 1}
        self.jobs: dict[tuple[str, str], JobEntry] = {}
        self.allocs: dict[str, Alloc] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.progress_by: dict[str, dict[str, float]] = {}  # deployment -> group -> sim deadline
        self.evals: dict[str, dict[str, Any]] = {}
        self.rules: list[OutcomeRule] = []
        self.next_port = 20000
        self.namespaces: set[str] = {"default"}

    # -- indexes -------------------------------------------------------------------------------
    def write(self, *tables: str) -> int:
        self.index += 1
        for t in tables:
            self.tables[t] = self.index
        self.cond.notify_all()
        return self.index

    def entry(self, namespace: str, job_id: str) -> JobEntry:
        entry = self.jobs.get((namespace, job_id))
        if entry is None:
            raise NomadError(404, "job not found")
        return entry

    # -- test controls -----------------------------------------------------------------------
    def add_rule(self, rule: OutcomeRule) -> None:
        self.rules.append(rule)

    def _outcome(self, job: dict[str, Any], group: str) -> Outcome:
        """The latest matching rule, preferring one pinned to this job version."""
        exact: Outcome | None = None
        general: Outcome | None = None
        for rule in self.rules:
            matches = (
                job["ID"].startswith(rule.job)
                if rule.prefix
                else rule.job in (job["ID"], job["ParentID"])
            )
            if not matches or rule.group not in (None, group):
                continue
            if rule.version is None:
                general = rule.outcome
            elif rule.version == job["Version"]:
                exact = rule.outcome
        chosen = exact or general
        return copy.deepcopy(chosen) if chosen else Outcome()

    # -- register / versions ------------------------------------------------------------------
    def register(self, job: dict[str, Any], *, enforce: bool = False, modify_index: int = 0, preserve_counts: bool = False,
                 submission: dict[str, Any] | None = None, triggered_by: str = "job-register") -> dict[str, Any]:  # fmt: skip
        errors = canonical.strict_errors(job)
        if errors:
            raise NomadError(400, "; ".join(errors))
        job = canonical.canonicalize(job)
        errors = canonical.validate(job)
        if errors:
            raise NomadError(500, multierror(errors))
        if job["Namespace"] not in self.namespaces:
            # [N:nomad/job_endpoint_hooks.go jobNamespaceConstraintCheckHook.Validate;
            # N:nomad/state/state_store.go upsertJobImpl]: a plain RPC error, so HTTP 500 (§1.0)
            raise NomadError(
                500, f'job "{job["ID"]}" is in nonexistent namespace "{job["Namespace"]}"'
            )
        key = (job["Namespace"], job["ID"])
        entry = self.jobs.get(key)
        cur = entry.job if entry else None
        if enforce:
            self._enforce_index(cur, modify_index)
        if cur is not None:
            self._validate_update(cur, job)
            if preserve_counts:
                counts = {tg["Name"]: tg["Count"] for tg in cur["TaskGroups"]}
                for tg in job["TaskGroups"]:
                    tg["Count"] = counts.get(tg["Name"], tg["Count"])
        if cur is not None and entry is not None and not canonical.spec_changed(cur, job):
            return self._unchanged_register(entry, triggered_by)
        entry = self._store_version(key, job, submission)
        return self._evaluate(entry, triggered_by)

    def _enforce_index(self, cur: dict[str, Any] | None, jmi: int) -> None:
        prefix = "Enforcing job modify index"
        if cur is not None and jmi == 0:
            raise NomadError(500, f"{prefix} 0: job already exists")
        if cur is not None and jmi != cur["JobModifyIndex"]:
            raise NomadError(
                500,
                f"{prefix} {jmi}: job exists with conflicting job modify index: {cur['JobModifyIndex']}",
            )
        if cur is None and jmi != 0:
            raise NomadError(500, f"{prefix} {jmi}: job does not exist")

    @staticmethod
    def _validate_update(cur: dict[str, Any], new: dict[str, Any]) -> None:
        if cur["Type"] != new["Type"]:
            raise NomadError(500, f'cannot update job from type "{cur["Type"]}" to "{new["Type"]}"')
        if (cur["ParameterizedJob"] is None) != (new["ParameterizedJob"] is None):
            raise NomadError(500, "cannot update parameterized job to being non-parameterized" if cur["ParameterizedJob"] else
                             "cannot update non-parameterized job to being parameterized")  # fmt: skip

    def _unchanged_register(self, entry: JobEntry, triggered_by: str) -> dict[str, Any]:
        job = entry.job
        reply = {
            "EvalID": "",
            "EvalCreateIndex": 0,
            "JobModifyIndex": job["JobModifyIndex"],
            "Warnings": "",
            "Index": job["ModifyIndex"],
        }
        if not self._is_parent(job):
            index = self.write("evals")
            ev = evaluation_record(job, triggered_by, index)
            self.evals[ev["ID"]] = ev
            entry.latest_eval = ev["ID"]
            reply.update({"EvalID": ev["ID"], "EvalCreateIndex": index, "Index": index})
        return reply

    @staticmethod
    def _is_parent(job: dict[str, Any]) -> bool:
        return (job["ParameterizedJob"] is not None and not job["Dispatched"]) or job[
            "Periodic"
        ] is not None

    def _store_version(
        self, key: tuple[str, str], job: dict[str, Any], submission: dict[str, Any] | None
    ) -> JobEntry:
        index = self.write("jobs")
        entry = self.jobs.get(key)
        job.update({"Stable": False, "VersionTag": None, "ModifyIndex": index, "JobModifyIndex": index, "SubmitTime": now_ns(),
                    "Status": "pending", "StatusDescription": "", "VaultToken": "", "ConsulToken": ""})  # fmt: skip
        if entry is None:
            job.update({"Version": 0, "CreateIndex": index})
            entry = self.jobs[key] = JobEntry([job], index)
        else:
            job.update({"Version": entry.job["Version"] + 1, "CreateIndex": entry.create_index})
            entry.versions.append(job)
            self._prune_versions(entry)
        entry.submissions[job["Version"]] = copy.deepcopy(submission) if submission else None
        return entry

    def _prune_versions(self, entry: JobEntry) -> None:
        stable = [v for v in entry.versions[:-1] if v["Stable"]]
        keep_stable = stable[-1]["Version"] if stable else None
        while True:
            untagged = [v for v in entry.versions if v["VersionTag"] is None]
            if len(untagged) <= self.tracked_versions:
                return
            victim = next(
                (v for v in untagged if v["Version"] != keep_stable and v is not entry.job), None
            )
            if victim is None:
                return
            entry.versions.remove(victim)

    def _evaluate(self, entry: JobEntry, triggered_by: str) -> dict[str, Any]:
        job = entry.job
        reply = {
            "EvalID": "",
            "EvalCreateIndex": 0,
            "JobModifyIndex": job["JobModifyIndex"],
            "Warnings": "",
            "Index": job["ModifyIndex"],
        }
        if self._is_parent(job):
            self._set_status(entry)
            return reply
        index = self.write("evals")
        ev = evaluation_record(job, triggered_by, index)
        self.evals[ev["ID"]] = ev
        entry.latest_eval = ev["ID"]
        self._on_new_version(entry, ev)
        self.reconcile(entry)
        self._set_status(entry)
        reply.update({"EvalID": ev["ID"], "EvalCreateIndex": index, "Index": index})
        return reply

    # -- scheduling ----------------------------------------------------------------------------
    def job_allocs(self, entry: JobEntry, all_: bool = False) -> list[Alloc]:
        job = entry.job
        return [a for a in self.allocs.values() if a.job_id == job["ID"] and a.namespace == job["Namespace"]
                and (all_ or a.job_create_index == entry.create_index)]  # fmt: skip

    def job_deployments(self, entry: JobEntry, all_: bool = False) -> list[dict[str, Any]]:
        job = entry.job
        deps = [d for d in self.deployments.values() if d["JobID"] == job["ID"] and d["Namespace"] == job["Namespace"]
                and (all_ or d["JobCreateIndex"] == entry.create_index)]  # fmt: skip
        return sorted(deps, key=lambda d: d["CreateIndex"], reverse=True)

    def _current_deployment(self, entry: JobEntry) -> dict[str, Any] | None:
        for dep in self.job_deployments(entry):
            if dep["JobVersion"] == entry.job["Version"]:
                return dep
        return None

    def _on_new_version(self, entry: JobEntry, ev: dict[str, Any]) -> None:
        """Cancel superseded deployments, update in place, and create this version's deployment."""
        job = entry.job
        for old_dep in self.job_deployments(entry):
            if old_dep["Status"] in ACTIVE and old_dep["JobVersion"] != job["Version"]:
                desc = (
                    "Cancelled because job is stopped"
                    if job["Stop"]
                    else "Cancelled due to newer version of job"
                )
                self._set_deployment_status(old_dep, "cancelled", desc)
                self._stop_unpromoted_canaries(old_dep)
        if job["Stop"] or job["Type"] not in ("service", "system"):
            return
        groups: dict[str, dict[str, Any]] = {}
        for tg in job["TaskGroups"]:
            live = [a for a in self.job_allocs(entry) if a.live() and a.group == tg["Name"]]
            destructive = [a for a in live if canonical.group_destructive(a.job, job, tg["Name"])]
            inplace = [a for a in live if a not in destructive]
            upd = tg["Update"]
            if upd is None or upd["MaxParallel"] == 0 or tg["Count"] == 0:
                continue
            if len(live) == tg["Count"] and not destructive and not inplace:
                continue
            groups[tg["Name"]] = deployment_state(
                upd, tg["Count"], upd["Canary"] if destructive else 0
            )
        dep: dict[str, Any] | None = None
        if groups:
            index = self.write("deployment")
            dep = deployment_record(job, index, groups)
            if any(g["DesiredCanaries"] for g in groups.values()):
                auto = all(g["AutoPromote"] for g in groups.values() if g["DesiredCanaries"])
                dep["StatusDescription"] = ("Deployment is running pending automatic promotion" if auto
                                            else "Deployment is running but requires manual promotion")  # fmt: skip
            self.deployments[dep["ID"]] = dep
            self.progress_by[dep["ID"]] = {}
            ev["DeploymentID"] = dep["ID"]
        for a in self.job_allocs(entry):
            if (
                a.live()
                and a.job_version != job["Version"]
                and not canonical.group_destructive(a.job, job, a.group)
            ):
                self._inplace(a, job, dep)

    def _inplace(self, a: Alloc, job: dict[str, Any], dep: dict[str, Any] | None) -> None:
        a.job = job
        if dep is not None and a.group in dep["TaskGroups"]:
            a.deployment_id, a.healthy, a.health_time = dep["ID"], None, 0
            a.running_since = self.now if a.running_since is not None else None
            dep["TaskGroups"][a.group]["PlacedAllocs"] += 1
            self._note_placement(dep, a.group)
        a.outcome.kind = (
            self._outcome(job, a.group).kind if a.client_status == "running" else a.outcome.kind
        )
        self._touch(a)
        if a.client_status == "running":
            self._register_services(a)

    def reconcile(self, entry: JobEntry) -> None:
        job = entry.job
        if self._is_parent(job):
            return
        allocs = self.job_allocs(entry)
        if job["Stop"]:
            for a in allocs:
                if a.live():
                    self._stop(a, "alloc not needed due to job update")
            return
        names = {tg["Name"] for tg in job["TaskGroups"]}
        for a in allocs:
            if a.live() and a.group not in names:
                self._stop(a, "alloc not needed as task group was removed")
        dep = self._current_deployment(entry)
        for tg in job["TaskGroups"]:
            self._reconcile_group(entry, tg, dep)

    def _reconcile_group(
        self, entry: JobEntry, tg: dict[str, Any], dep: dict[str, Any] | None
    ) -> None:
        job = entry.job
        self._reschedule(entry, tg, dep)
        group = [a for a in self.job_allocs(entry) if a.group == tg["Name"]]
        if job["Type"] == "batch":
            self._reconcile_batch(entry, tg, group)
            return
        # failed allocations that will not be replaced keep their slot, like Nomad's reconciler
        new = [a for a in group if a.job_version == job["Version"] and a.desired_status == "run" and not a.next
               and a.client_status in ("pending", "running", "failed")]  # fmt: skip
        old = [a for a in group if a.live() and a.job_version != job["Version"]]
        dstate = dep["TaskGroups"].get(tg["Name"]) if dep else None
        dep_active = dep is not None and dep["Status"] in ACTIVE and dstate is not None
        if (
            dep is not None
            and dstate is not None
            and dep_active
            and dstate["DesiredCanaries"]
            and not dstate["Promoted"]
        ):
            placed = [a for a in new if a.canary]
            for _ in range(dstate["DesiredCanaries"] - len(placed)):
                name = self._canary_name(old, placed) or self._free_name(job, tg)
                canary = self._place(entry, tg, dep, canary=True, name=name)
                if canary is None:
                    break
                placed.append(canary)
            return
        self._stop_excess(tg, new, old)
        new = [a for a in new if a.desired_status == "run"]
        old = [a for a in old if a.live()]
        if dep is not None and dstate is not None:
            if dep_active:
                self._rolling(entry, tg, dep, new, old)
            return
        for a in old:  # no update strategy: replace everything at once
            self._stop(a, "alloc is being updated due to job update")
            self._place(entry, tg, None, name=a.name)
        for _ in range(tg["Count"] - len(new) - len(old)):
            self._place(entry, tg, None, name=self._free_name(job, tg))

    @staticmethod
    def _canary_name(old: list[Alloc], canaries: list[Alloc]) -> str | None:
        used = {c.name for c in canaries}
        return next((a.name for a in sorted(old, key=lambda x: x.name) if a.name not in used), None)

    def _rolling(
        self,
        entry: JobEntry,
        tg: dict[str, Any],
        dep: dict[str, Any],
        new: list[Alloc],
        old: list[Alloc],
    ) -> None:
        in_dep = [a for a in new if a.deployment_id == dep["ID"]]
        missing = tg["Count"] - len(new) - len(old)
        if not old:
            for _ in range(missing):
                self._place(entry, tg, dep, name=self._free_name(entry.job, tg))
            return
        if any(a.healthy is False for a in in_dep):
            return
        limit = tg["Update"]["MaxParallel"] - sum(1 for a in in_dep if a.healthy is None)
        for a in sorted(old, key=lambda x: x.name)[: max(limit, 0)]:
            self._stop(a, "alloc is being updated due to job update")
            self._place(entry, tg, dep, name=a.name)
            limit -= 1
        for _ in range(min(missing, max(limit, 0))):
            self._place(entry, tg, dep, name=self._free_name(entry.job, tg))

    def _stop_excess(self, tg: dict[str, Any], new: list[Alloc], old: list[Alloc]) -> None:
        excess = len(new) + len(old) - tg["Count"]
        new_names = {a.name for a in new}
        for a in sorted(old, key=lambda x: (x.name not in new_names, x.name)):
            if excess <= 0:
                return
            self._stop(a, "alloc not needed due to job update")
            excess -= 1
        for a in sorted(new, key=lambda x: x.name, reverse=True):
            if excess <= 0:
                return
            self._stop(a, "alloc not needed due to job update")
            excess -= 1

    def _reconcile_batch(self, entry: JobEntry, tg: dict[str, Any], group: list[Alloc]) -> None:
        job = entry.job
        for a in group:
            if a.live() and a.job_version != job["Version"]:
                self._stop(a, "alloc is being updated due to job update")
        current = [
            a
            for a in group
            if a.job_version == job["Version"] and not a.next and a.desired_status == "run"
        ]
        for _ in range(tg["Count"] - len(current)):
            self._place(entry, tg, None, name=self._free_name(job, tg))

    def _reschedule(self, entry: JobEntry, tg: dict[str, Any], dep: dict[str, Any] | None) -> None:
        """Replace failed (and, in an active deployment, unhealthy) allocations after their delay."""
        policy = tg["ReschedulePolicy"]
        for a in [a for a in self.job_allocs(entry) if a.group == tg["Name"]]:
            if (
                a.next
                or a.unhealthy_since is None
                or a.job_version != entry.job["Version"]
                or policy is None
            ):
                continue
            failed = a.client_status == "failed" and a.desired_status == "run"
            unhealthy_in_dep = (
                a.healthy is False
                and a.live()
                and dep is not None
                and a.deployment_id == dep["ID"]
                and dep["Status"] in ACTIVE
            )
            if not (failed or unhealthy_in_dep) or not self._reschedule_eligible(policy, a):
                continue
            if dep is not None and a.deployment_id == dep["ID"] and dep["Status"] == "failed":
                continue
            if self.now - a.unhealthy_since < self._reschedule_delay(policy, a):
                continue
            if a.live():
                self._stop(a, "alloc was rescheduled because it failed")
            replacement = self._place(entry, tg, dep if dep is not None and dep["Status"] in ACTIVE and a.deployment_id else None,
                                      name=a.name, canary=a.canary, previous=a)  # fmt: skip
            a.next = replacement.id if replacement else "unplaced"
            self._touch(a)

    @staticmethod
    def _reschedule_eligible(policy: dict[str, Any], a: Alloc) -> bool:
        return bool(policy["Unlimited"]) or a.reschedules < int(policy["Attempts"] or 0)

    @staticmethod
    def _reschedule_delay(policy: dict[str, Any], a: Alloc) -> float:
        delay = (policy["Delay"] or 0) / SEC
        if policy["DelayFunction"] in ("exponential", "fibonacci"):
            delay *= 2**a.reschedules
        if policy["MaxDelay"]:
            delay = min(delay, policy["MaxDelay"] / SEC)
        return delay

    def _free_name(self, job: dict[str, Any], tg: dict[str, Any]) -> str:
        taken = {
            a.name
            for a in self.allocs.values()
            if a.live() and a.job_id == job["ID"] and a.group == tg["Name"]
        }
        i = 0
        while f"{job['ID']}.{tg['Name']}[{i}]" in taken:
            i += 1
        return f"{job['ID']}.{tg['Name']}[{i}]"

    def _place(self, entry: JobEntry, tg: dict[str, Any], dep: dict[str, Any] | None, *, name: str, canary: bool = False,
               previous: Alloc | None = None) -> Alloc | None:  # fmt: skip
        job = entry.job
        outcome = self._outcome(job, tg["Name"])
        ev = self.evals.get(entry.latest_eval)
        if outcome.kind == "placement_failure":
            self._placement_failed(entry, tg, ev)
            return None
        index = self.write("allocs")
        a = Alloc(id=new_id(), eval_id=entry.latest_eval, name=name, namespace=job["Namespace"], job=job,
                  job_create_index=entry.create_index, group=tg["Name"], outcome=outcome, placed_at=self.now,
                  create_index=index, modify_index=index)  # fmt: skip
        if previous is not None:
            a.previous, a.reschedules = previous.id, previous.reschedules + 1
        a.tasks = {t["Name"]: TaskRun(t["Name"]) for t in tg["Tasks"]}
        for run in a.tasks.values():
            run.event("Received", "Task received by client")
        a.ports = self._ports(tg)
        if dep is not None and tg["Name"] in dep["TaskGroups"]:
            a.deployment_id, a.canary = dep["ID"], canary
            dstate = dep["TaskGroups"][tg["Name"]]
            dstate["PlacedAllocs"] += 1
            if canary:
                dstate["PlacedCanaries"] = [*(dstate["PlacedCanaries"] or []), a.id]
            self._note_placement(dep, tg["Name"])
        self.allocs[a.id] = a
        return a

    def _note_placement(self, dep: dict[str, Any], group: str) -> None:
        deadline = dep["TaskGroups"][group]["ProgressDeadline"]
        if deadline and group not in self.progress_by[dep["ID"]]:
            self.progress_by[dep["ID"]][group] = self.now + deadline / SEC
            dep["TaskGroups"][group]["RequireProgressBy"] = rfc3339(now_ns() + deadline)
        self._touch_deployment(dep)

    def _placement_failed(
        self, entry: JobEntry, tg: dict[str, Any], ev: dict[str, Any] | None
    ) -> None:
        if ev is None or (ev["FailedTGAllocs"] or {}).get(tg["Name"]):
            return
        index = self.write("evals")
        metric = {"NodesEvaluated": 1, "NodesFiltered": 0, "NodesInPool": 1, "NodesAvailable": {"dc1": 1}, "ClassFiltered": None,
                  "ConstraintFiltered": None, "NodesExhausted": 1, "ClassExhausted": None, "DimensionExhausted": {"memory": 1},
                  "QuotaExhausted": None, "ResourcesExhausted": None, "Scores": None, "AllocationTime": 100000,
                  "CoalescedFailures": max(tg["Count"] - 1, 0), "ScoreMetaData": None}  # fmt: skip
        ev["FailedTGAllocs"] = {**(ev["FailedTGAllocs"] or {}), tg["Name"]: metric}
        ev["QueuedAllocations"] = {**ev["QueuedAllocations"], tg["Name"]: tg["Count"]}
        if not ev["BlockedEval"]:
            blocked = evaluation_record(entry.job, "queued-allocs", index, Status="blocked", PreviousEval=ev["ID"],
                                        StatusDescription="created to place remaining allocations")  # fmt: skip
            self.evals[blocked["ID"]] = blocked
            ev["BlockedEval"] = blocked["ID"]
        ev["ModifyIndex"] = index

    def _ports(self, tg: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for net in tg["Networks"] or []:
            for p in net["ReservedPorts"] or []:
                out.append(
                    {
                        "Label": p["Label"],
                        "Value": p["Value"],
                        "To": p["To"],
                        "HostIP": NODE_ADDRESS,
                    }
                )
            for p in net["DynamicPorts"] or []:
                self.next_port += 1
                out.append(
                    {
                        "Label": p["Label"],
                        "Value": self.next_port,
                        "To": p["To"] if p["To"] > 0 else self.next_port,
                        "HostIP": NODE_ADDRESS,
                    }
                )
        return out

    def _stop(self, a: Alloc, why: str) -> None:
        a.desired_status, a.desired_description = "stop", why
        if a.client_status in ("pending", "running"):
            a.client_status = "complete"
            for run in a.tasks.values():
                if run.state != "dead":
                    run.event("Killing", "Sent interrupt")
                    run.event("Killed", "Task successfully killed")
                    run.state, run.finished_at = "dead", now_ns()
        self._deregister_services(a)
        self._touch(a)

    def _touch(self, a: Alloc) -> None:
        a.modify_index = self.write("allocs")
        a.modify_time = now_ns()

    def _touch_deployment(self, dep: dict[str, Any]) -> None:
        dep["ModifyIndex"] = self.write("deployment")
        dep["ModifyTime"] = now_ns()

    def _stop_unpromoted_canaries(self, dep: dict[str, Any]) -> None:
        for dstate in dep["TaskGroups"].values():
            if dstate["Promoted"]:
                continue
            for alloc_id in dstate["PlacedCanaries"] or []:
                a = self.allocs.get(alloc_id)
                if a is not None and a.live():
                    self._stop(a, "alloc not needed due to job update")

    def _set_deployment_status(self, dep: dict[str, Any], status: str, desc: str) -> None:
        dep["Status"], dep["StatusDescription"] = status, desc
        self._touch_deployment(dep)

    # -- Consul registration ---------------------------------------------------------------------
    def _services(self, a: Alloc) -> list[tuple[dict[str, Any], str]]:
        tg = next(g for g in a.job["TaskGroups"] if g["Name"] == a.group)
        out = [(s, f"group-{a.group}") for s in tg["Services"] or []]
        for t in tg["Tasks"]:
            out.extend((s, t["Name"]) for s in t["Services"] or [])
        return [(s, owner) for s, owner in out if s["Provider"] == "consul"]

    def _register_services(self, a: Alloc) -> None:
        self._deregister_services(a)
        status = "passing" if a.outcome.kind == "healthy" else "critical"
        for svc, owner in self._services(a):
            label = svc["PortLabel"]
            port = (
                int(label)
                if label.isdigit()
                else next((p["Value"] for p in a.ports if p["Label"] == label), 0)
            )
            tags = svc["CanaryTags"] if a.canary and svc["CanaryTags"] else svc["Tags"] or []
            meta = svc["CanaryMeta"] if a.canary and svc["CanaryMeta"] else svc["Meta"] or {}
            sid = f"_nomad-task-{a.id}-{owner}-{svc['Name']}-{label}"
            checks = [
                {"Node": "fake-node-1", "CheckID": f"_nomad-check-{new_id().replace('-', '')[:40]}",
                 "Name": c["Name"] or f'service: "{svc["Name"]}" check', "Status": status, "Notes": "", "Output": "",
                 "ServiceID": sid, "ServiceName": svc["Name"], "ServiceTags": list(tags), "Type": c["Type"]}
                for c in svc["Checks"] or []
            ]  # fmt: skip
            inst = ServiceInstance(
                sid,
                svc["Name"],
                list(tags),
                NODE_ADDRESS,
                port,
                {"external-source": "nomad", **meta},
                checks,
            )
            self.consul.register(inst)
            a.service_ids.append(sid)

    def _deregister_services(self, a: Alloc) -> None:
        for sid in a.service_ids:
            self.consul.deregister(sid)
        a.service_ids = []

    # -- simulation -------------------------------------------------------------------------------
    def advance(self) -> None:
        """One simulated step: client progress, health, deployment watcher, scheduler."""
        self.now += self.sim_step
        for a in list(self.allocs.values()):
            if a.live() or (a.client_status == "failed" and a.unhealthy_since is None):
                self._step_alloc(a)
        for dep in list(self.deployments.values()):
            if dep["Status"] in ACTIVE:
                self._watch_deployment(dep)
        for entry in list(self.jobs.values()):
            self.reconcile(entry)
            self._set_status(entry)

    def _step_alloc(self, a: Alloc) -> None:
        if a.client_status == "pending":
            self._start(a)
        elif a.client_status == "running":
            if a.job["Type"] == "batch":
                self._finish_batch(a)
            else:
                self._judge_health(a)
        elif a.client_status == "failed":
            self._mark_unhealthy(a)

    def _start(self, a: Alloc) -> None:
        kind = a.outcome.kind
        if kind == "pending":
            if not a.reported:
                a.reported = True
                for run in a.tasks.values():
                    for ev in a.outcome.task_events or [
                        {"Type": "Task Setup", "DisplayMessage": "Building Task Directory"}
                    ]:
                        self._custom_event(run, ev)
                self._touch(a)
            self._judge_health(a)
            return
        for run in a.tasks.values():
            run.event("Task Setup", "Building Task Directory")
        if kind == "fail_start":
            self._fail_start(a)
            return
        for run in a.tasks.values():
            run.state, run.started_at = "running", now_ns()
            run.event("Driver", "Downloading image")
            run.event("Started", "Task started by client")
            for ev in a.outcome.task_events:
                self._custom_event(run, ev)
        a.client_status, a.running_since = "running", self.now
        self._write_logs(a)
        self._register_services(a)
        self._touch(a)

    @staticmethod
    def _custom_event(run: TaskRun, ev: dict[str, Any]) -> None:
        details = {k: str(v) for k, v in (ev.get("Details") or {}).items()}
        run.event(ev["Type"], ev.get("DisplayMessage", ev.get("Message", "")), **details)

    def _fail_start(self, a: Alloc) -> None:
        tg = next(g for g in a.job["TaskGroups"] if g["Name"] == a.group)
        events = a.outcome.task_events or [{"Type": "Driver Failure", "DisplayMessage": "Failed to start task: driver failure",
                                            "Details": {"driver_error": "failed to start task"}}]  # fmt: skip
        for t in tg["Tasks"]:
            run, attempts = a.tasks[t["Name"]], t["RestartPolicy"]["Attempts"]
            for attempt in range(attempts + 1):
                for ev in events:
                    self._custom_event(run, ev)
                if attempt < attempts:
                    run.event(
                        "Restarting",
                        "Task restarting in 15s",
                        restart_reason="Restart within policy",
                    )
                    run.restarts += 1
                    run.last_restart = now_ns()
            run.event(
                "Not Restarting",
                f'Exceeded allowed attempts {attempts} in interval 30m0s and mode is "fail"',
                fails_task="true",
            )
            run.state, run.failed, run.finished_at = "dead", True, now_ns()
        a.client_status, a.client_description = "failed", "Failed tasks"
        self._mark_unhealthy(a)
        self._touch(a)

    def _write_logs(self, a: Alloc) -> None:
        for task in a.tasks:
            for stream, text in (("stdout", a.outcome.stdout), ("stderr", a.outcome.stderr)):
                a.logs.setdefault((task, stream), bytearray()).extend(text.encode())

    def _finish_batch(self, a: Alloc) -> None:
        if a.outcome.hold:
            return
        code = a.outcome.exit_code
        tg = next(g for g in a.job["TaskGroups"] if g["Name"] == a.group)
        for t in tg["Tasks"]:
            run = a.tasks[t["Name"]]
            run.event("Terminated", f"Exit Code: {code}", exit_code=str(code), signal="0")
            if code and run.restarts < t["RestartPolicy"]["Attempts"]:
                run.restarts += 1
                run.last_restart = now_ns()
                run.event(
                    "Restarting", "Task restarting in 15s", restart_reason="Restart within policy"
                )
                run.event("Started", "Task started by client")
                self._write_logs(a)
                self._touch(a)
                return
            if code:
                run.event(
                    "Not Restarting",
                    f'Exceeded allowed attempts {run.restarts} in interval 24h0m0s and mode is "fail"',
                    fails_task="true",
                )
            run.state, run.failed, run.finished_at = "dead", bool(code), now_ns()
        a.client_status = "failed" if code else "complete"
        a.client_description = "Failed tasks" if code else "All tasks have completed"
        if code:
            a.unhealthy_since = self.now
        self._deregister_services(a)
        self._touch(a)

    def _judge_health(self, a: Alloc) -> None:
        if not a.deployment_id or a.healthy is not None:
            return
        tg = next(g for g in a.job["TaskGroups"] if g["Name"] == a.group)
        upd = tg["Update"] or canonical.DEFAULT_UPDATE
        if upd["HealthCheck"] == "manual":
            return
        if a.outcome.kind == "healthy" and a.running_since is not None:
            if self.now - a.running_since >= upd["MinHealthyTime"] / SEC:
                self._set_health(a, True)
        elif self.now - a.placed_at >= upd["HealthyDeadline"] / SEC:
            self._mark_unhealthy(a)

    def _mark_unhealthy(self, a: Alloc) -> None:
        if a.unhealthy_since is None:
            a.unhealthy_since = self.now
        if a.deployment_id and a.healthy is None:
            self._set_health(a, False)

    def _set_health(self, a: Alloc, healthy: bool) -> None:
        a.healthy, a.health_time = healthy, now_ns()
        self._touch(a)
        a.health_index = a.modify_index
        if not healthy and a.unhealthy_since is None:
            a.unhealthy_since = self.now
        dep = self.deployments.get(a.deployment_id)
        if dep is None or a.group not in dep["TaskGroups"]:
            return
        dstate = dep["TaskGroups"][a.group]
        dstate["HealthyAllocs" if healthy else "UnhealthyAllocs"] += 1
        if healthy and dstate["ProgressDeadline"]:
            self.progress_by[dep["ID"]][a.group] = self.now + dstate["ProgressDeadline"] / SEC
            dstate["RequireProgressBy"] = rfc3339(now_ns() + dstate["ProgressDeadline"])
        self._touch_deployment(dep)

    # -- deployment watcher ---------------------------------------------------------------------
    def _watch_deployment(self, dep: dict[str, Any]) -> None:
        entry = self.jobs.get((dep["Namespace"], dep["JobID"]))
        if entry is None or entry.job["Version"] != dep["JobVersion"]:
            return
        allocs = [a for a in self.allocs.values() if a.deployment_id == dep["ID"]]
        for a in allocs:
            if a.healthy is False and a.desired_status == "run" and not a.next:
                dstate = dep["TaskGroups"][a.group]
                tg = next(g for g in entry.job["TaskGroups"] if g["Name"] == a.group)
                if not dstate["ProgressDeadline"] or not self._reschedule_eligible(
                    tg["ReschedulePolicy"], a
                ):
                    self.fail_deployment(
                        dep, "Failed due to unhealthy allocations", dstate["AutoRevert"]
                    )
                    return
        for group, deadline in self.progress_by[dep["ID"]].items():
            if self.now > deadline and not self._group_done(entry, dep, group):
                if not self._deadline_hit(entry, dep):
                    # Nomad's deadline timer fires once per deadline; a new one comes with progress
                    self.progress_by[dep["ID"]][group] = math.inf
                return
        self._maybe_promote(dep, allocs)
        if all(self._group_done(entry, dep, g) for g in dep["TaskGroups"]):
            self._set_deployment_status(dep, "successful", "Deployment completed successfully")
            self.set_stable(entry, dep["JobVersion"], True)

    def _deadline_hit(self, entry: JobEntry, dep: dict[str, Any]) -> bool:
        rollback = False
        fail = False
        for group, dstate in dep["TaskGroups"].items():
            healthy = self._healthy_count(dep, group)
            if dstate["DesiredCanaries"] and not dstate["Promoted"]:
                if healthy >= dstate["DesiredCanaries"]:
                    continue  # waiting for a manual promotion does not fail
            elif healthy >= dstate["DesiredTotal"]:
                continue
            fail = True
            rollback = rollback or bool(dstate["AutoRevert"])
        if fail:
            self.fail_deployment(dep, "Failed due to progress deadline", rollback)
        return fail

    def _healthy_count(self, dep: dict[str, Any], group: str) -> int:
        return sum(
            1
            for a in self.allocs.values()
            if a.deployment_id == dep["ID"] and a.group == group and a.live() and a.healthy
        )

    def _group_done(self, entry: JobEntry, dep: dict[str, Any], group: str) -> bool:
        dstate = dep["TaskGroups"][group]
        if dstate["DesiredCanaries"] and not dstate["Promoted"]:
            return False
        old_left = any(
            a.live() and a.group == group and a.job_version != dep["JobVersion"]
            for a in self.job_allocs(entry)
        )
        return self._healthy_count(dep, group) >= dstate["DesiredTotal"] and not old_left

    def _maybe_promote(self, dep: dict[str, Any], allocs: list[Alloc]) -> None:
        canary_groups = {
            g: s for g, s in dep["TaskGroups"].items() if s["DesiredCanaries"] and not s["Promoted"]
        }
        if not canary_groups or not all(s["AutoPromote"] for s in canary_groups.values()):
            return
        for dstate in canary_groups.values():
            healthy = [a for a in allocs if a.id in (dstate["PlacedCanaries"] or []) and a.healthy]
            if len(healthy) < dstate["DesiredCanaries"]:
                return
        self.promote(dep, None)

    def promote(self, dep: dict[str, Any], groups: list[str] | None) -> None:
        if dep["Status"] not in ACTIVE:
            raise NomadError(500, "can't promote terminal deployment")
        targets = [
            g
            for g, s in dep["TaskGroups"].items()
            if s["DesiredCanaries"] and (groups is None or g in groups)
        ]
        if not targets:
            raise NomadError(500, "can't promote deployment with no canaries")
        for g in targets:
            dstate = dep["TaskGroups"][g]
            healthy = sum(1 for c in dstate["PlacedCanaries"] or [] if self.allocs[c].healthy)
            if healthy < dstate["DesiredCanaries"]:
                raise NomadError(
                    500,
                    f'Task group "{g}" has {healthy}/{dstate["DesiredCanaries"]} healthy allocations',
                )
        for g in targets:
            dep["TaskGroups"][g]["Promoted"] = True
            for c in dep["TaskGroups"][g]["PlacedCanaries"] or []:
                a = self.allocs[c]
                a.canary = False
                self._touch(a)
                if a.client_status == "running":
                    self._register_services(a)
        dep["StatusDescription"] = "Deployment is running"
        self._touch_deployment(dep)
        entry = self.jobs.get((dep["Namespace"], dep["JobID"]))
        if entry is not None:
            self.reconcile(entry)

    def fail_deployment(self, dep: dict[str, Any], desc: str, rollback: bool) -> int | None:
        """Fail ``dep``; with ``rollback``, register the latest stable version. Returns its new version."""
        entry = self.jobs.get((dep["Namespace"], dep["JobID"]))
        target = None
        if rollback and entry is not None:
            stable = next((v for v in reversed(entry.versions) if v["Stable"]), None)
            if stable is None:
                desc += " - no stable job version to auto revert to"
            elif canonical.spec_changed(entry.job, stable):
                desc += f" - rolling back to job version {stable['Version']}"
                target = stable
            else:
                desc += f" - not rolling back to stable job version {stable['Version']} as current job has same specification"
        self._set_deployment_status(dep, "failed", desc)
        self._stop_unpromoted_canaries(dep)
        if target is None or entry is None:
            return None
        reverted = copy.deepcopy(target)
        self._store_version(
            (dep["Namespace"], dep["JobID"]), reverted, entry.submissions.get(target["Version"])
        )
        self._evaluate(entry, "deployment-watcher")
        return int(target["Version"])

    # -- job status, stability, tags --------------------------------------------------------------
    def _set_status(self, entry: JobEntry) -> None:
        job = entry.job
        if self._is_parent(job) or job["Type"] == "system":
            status = "dead" if job["Stop"] else "running"
        else:
            allocs = self.job_allocs(entry)
            evals = [
                e
                for e in self.evals.values()
                if e["JobID"] == job["ID"] and e["Namespace"] == job["Namespace"]
            ]
            if any(a.live() for a in allocs):
                status = "running"
            elif any(e["Status"] in ("blocked", "pending") for e in evals):
                status = "pending"
            elif job["Stop"] or allocs or evals:
                status = "dead"
            else:
                status = "pending"
        if job["Status"] != status:
            job["Status"] = status
            job["ModifyIndex"] = self.write("jobs")

    def set_stable(self, entry: JobEntry, version: int, stable: bool) -> int:
        target = next((v for v in entry.versions if v["Version"] == version), None)
        if target is None:
            raise NomadError(500, f"job {entry.job['ID']!r} at version {version} not found")
        index = self.write("jobs")
        target["Stable"] = stable
        target["ModifyIndex"] = index
        return index

    def tag_version(
        self, entry: JobEntry, name: str, version: int, description: str
    ) -> dict[str, Any]:
        target = next((v for v in entry.versions if v["Version"] == version), None)
        if target is None:
            raise NomadError(500, f"version {version} not found")
        for v in entry.versions:
            if v is not target and (v["VersionTag"] or {}).get("Name") == name:
                raise NomadError(
                    500, f'tag "{name}" already exists on a different version of the job'
                )
        index = self.write("jobs")
        target["VersionTag"] = {"Name": name, "Description": description, "TaggedTime": now_ns()}
        return {
            "Name": name,
            "Description": description,
            "TaggedTime": target["VersionTag"]["TaggedTime"],
            "Index": index,
        }

    def untag_version(self, entry: JobEntry, name: str) -> dict[str, Any]:
        target = next(
            (v for v in entry.versions if (v["VersionTag"] or {}).get("Name") == name), None
        )
        if target is None:
            raise NomadError(500, f'tag "{name}" not found on job "{entry.job["ID"]}"')
        target["VersionTag"] = None
        return {"Index": self.write("jobs")}

    # -- other writes ------------------------------------------------------------------------------
    def deregister(self, namespace: str, job_id: str, purge: bool) -> dict[str, Any]:
        entry = self.entry(namespace, job_id)
        job = entry.job
        if purge:
            for a in self.job_allocs(entry):
                if a.live():
                    self._stop(a, "alloc not needed due to job update")
            for dep in self.job_deployments(entry):
                if dep["Status"] in ACTIVE:
                    self._set_deployment_status(
                        dep, "cancelled", "Cancelled because job is stopped"
                    )
            del self.jobs[(namespace, job_id)]
            index = self.write("jobs", "evals")
            ev = evaluation_record(job, "job-deregister", index)
            self.evals[ev["ID"]] = ev
            return {
                "EvalID": ev["ID"],
                "EvalCreateIndex": index,
                "JobModifyIndex": index,
                "Index": index,
            }
        stopped = copy.deepcopy(job)
        stopped["Stop"] = True
        if job["Stop"]:
            reply = self._unchanged_register(entry, "job-deregister")
        else:
            self._store_version((namespace, job_id), stopped, entry.submissions.get(job["Version"]))
            reply = self._evaluate(entry, "job-deregister")
        return {k: reply[k] for k in ("EvalID", "EvalCreateIndex", "JobModifyIndex", "Index")}

    def revert(self, entry: JobEntry, version: int, enforce_prior: int | None) -> dict[str, Any]:
        cur = entry.job
        if enforce_prior is not None and enforce_prior != cur["Version"]:
            raise NomadError(
                500, f"Current job has version {cur['Version']}; enforcing version {enforce_prior}"
            )
        if version == cur["Version"]:
            raise NomadError(500, "can't revert to current version")
        target = next((v for v in entry.versions if v["Version"] == version), None)
        if target is None:
            raise NomadError(
                500,
                f'job "{cur["ID"]}" in namespace "{cur["Namespace"]}" at version {version} not found',
            )
        job = copy.deepcopy(target)
        if not canonical.spec_changed(cur, job):
            return self._unchanged_register(entry, "job-register")
        self._store_version((cur["Namespace"], cur["ID"]), job, entry.submissions.get(version))
        return self._evaluate(entry, "job-register")

    def scale(
        self, entry: JobEntry, group: str, count: int | None, message: str, enforce: bool, jmi: int
    ) -> dict[str, Any]:
        job = entry.job
        if not any(tg["Name"] == group for tg in job["TaskGroups"]):
            raise NomadError(
                400, f'task group "{group}" specified for scaling does not exist in job'
            )
        if count is None:
            return {
                "EvalID": "",
                "EvalCreateIndex": 0,
                "JobModifyIndex": job["JobModifyIndex"],
                "Warnings": "",
                "Index": self.write("jobs"),
            }
        if count < 0:
            raise NomadError(400, "scaling action count can't be negative")
        if enforce and jmi != job["JobModifyIndex"]:
            raise NomadError(
                400,
                f"Enforcing job modify index {jmi}: job exists with conflicting job modify index: {job['JobModifyIndex']}",
            )
        if any(d["Status"] in ACTIVE for d in self.job_deployments(entry)):
            raise NomadError(400, "job scaling blocked due to active deployment")
        scaled = copy.deepcopy(job)
        for tg in scaled["TaskGroups"]:
            if tg["Name"] == group:
                tg["Count"] = count
        if not canonical.spec_changed(job, scaled):
            return self._unchanged_register(entry, "job-scaling")
        self._store_version(
            (job["Namespace"], job["ID"]), scaled, entry.submissions.get(job["Version"])
        )
        return self._evaluate(entry, "job-scaling")

    def dispatch(self, parent_entry: JobEntry | None, parent_id: str, meta: dict[str, str], payload: bytes,
                 prefix: str, token: str) -> dict[str, Any]:  # fmt: skip
        if parent_entry is None:
            raise NomadError(500, "parameterized job not found")
        parent = parent_entry.job
        if parent["ParameterizedJob"] is None or parent["Dispatched"]:
            raise NomadError(500, f'Specified job "{parent_id}" is not a parameterized job')
        if parent["Stop"]:
            raise NomadError(500, f'Specified job "{parent_id}" is stopped')
        _validate_dispatch(parent["ParameterizedJob"], meta, payload)
        if token:
            for entry in self.jobs.values():
                child = entry.job
                if child["ParentID"] == parent["ID"] and child["DispatchIdempotencyToken"] == token:
                    return {"DispatchedJobID": child["ID"], "EvalID": "", "EvalCreateIndex": 0, "JobCreateIndex": child["CreateIndex"],
                            "Index": child["ModifyIndex"]}  # fmt: skip
        child = copy.deepcopy(parent)
        suffix = f"{int(time.time())}-{new_id()[:8]}"
        child_id = f"{parent['ID']}/dispatch-{prefix + '-' if prefix else ''}{suffix}"
        child.update({"ID": child_id, "Name": child_id, "ParentID": parent["ID"], "Dispatched": True, "DispatchIdempotencyToken": token,
                      "Payload": base64.b64encode(payload).decode() if payload else None, "Meta": {**(parent["Meta"] or {}), **meta}})  # fmt: skip
        entry = self._store_version((parent["Namespace"], child_id), child, None)
        reply = self._evaluate(entry, "job-register")
        return {"DispatchedJobID": child_id, "EvalID": reply["EvalID"], "EvalCreateIndex": reply["EvalCreateIndex"],
                "JobCreateIndex": entry.create_index, "Index": reply["Index"]}  # fmt: skip


def _validate_dispatch(pj: dict[str, Any], meta: dict[str, str], payload: bytes) -> None:
    if pj["Payload"] == "required" and not payload:
        raise NomadError(500, "Payload is not provided but required by parameterized job")
    if pj["Payload"] == "forbidden" and payload:
        raise NomadError(500, "Payload provided but forbidden by parameterized job")
    if len(payload) > 16 * 1024:
        raise NomadError(500, f"Payload exceeds maximum size; {len(payload)} > {16 * 1024}")
    allowed = set(pj["MetaRequired"] or []) | set(pj["MetaOptional"] or [])
    unpermitted = [k for k in meta if k not in allowed]
    if unpermitted:
        raise NomadError(
            500, f"Dispatch request included unpermitted metadata keys: [{' '.join(unpermitted)}]"
        )
    missing = [k for k in pj["MetaRequired"] or [] if k not in meta]
    if missing:
        raise NomadError(500, f"Dispatch did not provide required meta keys: [{' '.join(missing)}]")
