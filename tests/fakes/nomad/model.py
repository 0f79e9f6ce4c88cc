"""Records kept by the fake Nomad (allocations, deployments, evaluations) and their API shapes.

API field names and shapes: [N:api/allocations.go AllocationListStub, Allocation, TaskState,
TaskEvent; N:nomad/structs/deployment.go Deployment, DeploymentState; N:api/evaluations.go].
Timestamps: ``time.Time`` fields are RFC3339 strings, the rest int64 Unix nanoseconds
[reference §1.0]. The allocation *list stub* has no ``DeploymentID`` and no ``Job``; only
``GET /v1/allocation/:id`` returns them, as real Nomad does.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

NODE_ID = "f00dcafe-0000-4000-8000-000000000001"
NODE_NAME = "fake-node-1"
NODE_ADDRESS = "127.0.0.1"
ZERO_TIME = "0001-01-01T00:00:00Z"


def new_id() -> str:
    return str(uuid.uuid4())


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int | None) -> str:
    if not ns:
        return ZERO_TIME
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Outcome:
    """What a placed allocation will do, decided by the test (see FakeCluster.set_outcome)."""

    kind: str = "healthy"  # healthy | unhealthy | fail_start | pending | placement_failure
    task_events: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    hold: bool = False  # batch: stay running until released


@dataclass
class TaskRun:
    name: str
    state: str = "pending"
    failed: bool = False
    restarts: int = 0
    last_restart: int = 0
    started_at: int = 0
    finished_at: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, etype: str, message: str = "", **details: str) -> None:
        self.events.append(
            {
                "Type": etype,
                "Time": now_ns(),
                "Message": message,
                "DisplayMessage": message or etype,
                "Details": dict(details),
                "FailsTask": details.get("fails_task") == "true",
                "ExitCode": int(details.get("exit_code", "0")),
                "Signal": int(details.get("signal", "0")),
                "DriverError": details.get("driver_error", ""),
                "RestartReason": details.get("restart_reason", ""),
            }
        )

    def api(self) -> dict[str, Any]:
        return {
            "State": self.state,
            "Failed": self.failed,
            "Restarts": self.restarts,
            "LastRestart": rfc3339(self.last_restart),
            "StartedAt": rfc3339(self.started_at) if self.started_at else None,
            "FinishedAt": rfc3339(self.finished_at) if self.finished_at else None,
            "Events": list(self.events),
        }


@dataclass
class Alloc:
    id: str
    eval_id: str
    name: str
    namespace: str
    job: dict[str, Any]  # the job version this allocation runs
    job_create_index: int
    group: str
    outcome: Outcome
    deployment_id: str = ""
    canary: bool = False
    healthy: bool | None = None
    health_time: int = 0
    health_index: int = 0
    desired_status: str = "run"
    desired_description: str = ""
    client_status: str = "pending"
    client_description: str = ""
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    ports: list[dict[str, Any]] = field(default_factory=list)
    previous: str = ""
    next: str = ""
    reschedules: int = 0
    create_index: int = 0
    modify_index: int = 0
    create_time: int = field(default_factory=now_ns)
    modify_time: int = field(default_factory=now_ns)
    placed_at: float = 0.0  # simulated seconds
    running_since: float | None = None
    unhealthy_since: float | None = None
    logs: dict[tuple[str, str], bytearray] = field(default_factory=dict)
    service_ids: list[str] = field(default_factory=list)
    reported: bool = False  # a "pending" outcome has emitted its task events

    @property
    def job_id(self) -> str:
        return str(self.job["ID"])

    @property
    def job_version(self) -> int:
        return int(self.job["Version"])

    def live(self) -> bool:
        """Not terminal: desired to run and not finished on the client."""
        return self.desired_status == "run" and self.client_status in ("pending", "running")

    def deployment_status(self) -> dict[str, Any] | None:
        if not self.deployment_id:
            return None
        return {
            "Healthy": self.healthy,
            "Timestamp": rfc3339(self.health_time),
            "Canary": self.canary,
            "ModifyIndex": self.health_index,
        }

    def stub(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "EvalID": self.eval_id,
            "Name": self.name,
            "Namespace": self.namespace,
            "NodeID": NODE_ID,
            "NodeName": NODE_NAME,
            "JobID": self.job_id,
            "JobType": self.job["Type"],
            "JobVersion": self.job_version,
            "TaskGroup": self.group,
            "DesiredStatus": self.desired_status,
            "DesiredDescription": self.desired_description,
            "ClientStatus": self.client_status,
            "ClientDescription": self.client_description,
            "TaskStates": {name: t.api() for name, t in self.tasks.items()},
            "DeploymentStatus": self.deployment_status(),
            "FollowupEvalID": "",
            "NextAllocation": self.next,
            "RescheduleTracker": self._reschedule_tracker(),
            "PreemptedAllocations": None,
            "PreemptedByAllocation": "",
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
            "CreateTime": self.create_time,
            "ModifyTime": self.modify_time,
        }

    def _reschedule_tracker(self) -> dict[str, Any] | None:
        if not self.reschedules:
            return None
        return {
            "Events": [
                {
                    "RescheduleTime": self.create_time,
                    "PrevAllocID": self.previous,
                    "PrevNodeID": NODE_ID,
                    "Delay": 0,
                }
            ]
        }

    def full(self) -> dict[str, Any]:
        out = self.stub()
        for key in ("JobType", "JobVersion"):
            out.pop(key)
        tasks = {
            t["Name"]: {
                "Cpu": {"CpuShares": t["Resources"]["CPU"]},
                "Memory": {"MemoryMB": t["Resources"]["MemoryMB"]},
            }
            for tg in self.job["TaskGroups"]
            if tg["Name"] == self.group
            for t in tg["Tasks"]
        }
        out.update(
            {
                "Job": self.job,
                "DeploymentID": self.deployment_id,
                "PreviousAllocation": self.previous,
                "AllocModifyIndex": self.create_index,
                "DesiredTransition": {
                    "Migrate": None,
                    "Reschedule": None,
                    "ForceReschedule": None,
                    "NoShutdownDelay": None,
                },
                "AllocatedResources": {
                    "Tasks": tasks,
                    "Shared": {
                        "DiskMB": 300,
                        "Networks": [
                            {"Mode": "host", "IP": NODE_ADDRESS, "DynamicPorts": self.ports}
                        ],
                        "Ports": self.ports,
                    },
                },
                "NetworkStatus": {"InterfaceName": "", "Address": NODE_ADDRESS, "DNS": None},
                "Metrics": {
                    "NodesEvaluated": 1,
                    "NodesFiltered": 0,
                    "NodesExhausted": 0,
                    "AllocationTime": 100000,
                    "CoalescedFailures": 0,
                },
            }
        )
        return out


def deployment_record(
    job: dict[str, Any], index: int, groups: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    ts = now_ns()
    return {
        "ID": new_id(),
        "Namespace": job["Namespace"],
        "JobID": job["ID"],
        "JobVersion": job["Version"],
        "JobModifyIndex": job["ModifyIndex"],
        "JobSpecModifyIndex": job["JobModifyIndex"],
        "JobCreateIndex": job["CreateIndex"],
        "IsMultiregion": False,
        "TaskGroups": groups,
        "Status": "running",
        "StatusDescription": "Deployment is running",
        "EvalPriority": job["Priority"],
        "CreateIndex": index,
        "ModifyIndex": index,
        "CreateTime": ts,
        "ModifyTime": ts,
    }


def deployment_state(update: dict[str, Any], desired_total: int, canaries: int) -> dict[str, Any]:
    return {
        "AutoRevert": update["AutoRevert"],
        "AutoPromote": update["AutoPromote"],
        "ProgressDeadline": update["ProgressDeadline"],
        "RequireProgressBy": ZERO_TIME,
        "Promoted": False,
        "PlacedCanaries": None,
        "DesiredCanaries": canaries,
        "DesiredTotal": desired_total,
        "PlacedAllocs": 0,
        "HealthyAllocs": 0,
        "UnhealthyAllocs": 0,
    }


def evaluation_record(
    job: dict[str, Any], triggered_by: str, index: int, **extra: Any
) -> dict[str, Any]:
    ts = now_ns()
    ev = {
        "ID": new_id(),
        "Namespace": job["Namespace"],
        "Priority": job["Priority"],
        "Type": job["Type"],
        "TriggeredBy": triggered_by,
        "JobID": job["ID"],
        "JobModifyIndex": job["JobModifyIndex"],
        "NodeID": "",
        "NodeModifyIndex": 0,
        "DeploymentID": "",
        "Status": "complete",
        "StatusDescription": "",
        "Wait": 0,
        "WaitUntil": ZERO_TIME,
        "NextEval": "",
        "PreviousEval": "",
        "BlockedEval": "",
        "RelatedEvals": None,
        "FailedTGAllocs": None,
        "ClassEligibility": None,
        "QuotaLimitReached": "",
        "EscapedComputedClass": False,
        "AnnotatePlan": False,
        "QueuedAllocations": {},
        "LeaderACL": "",
        "SnapshotIndex": index,
        "CreateIndex": index,
        "ModifyIndex": index,
        "CreateTime": ts,
        "ModifyTime": ts,
    }
    ev.update(extra)
    return ev
