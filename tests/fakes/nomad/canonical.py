"""Defaults, validation and spec comparison for registered jobs.

* ``canonicalize`` fills the defaults of ``api.Job.Canonicalize`` that the agent applies before
  converting a registered job [N:command/agent/job_endpoint.go ApiJobToStructJob; N:api/jobs.go,
  api/tasks.go Canonicalize; reference §2 "update/restart/reschedule defaults"]. Service and
  system jobs get the default update strategy (max_parallel 1, health_check "checks",
  min_healthy_time 10s, healthy_deadline 5m, progress_deadline 10m), merged job -> group;
  batch jobs get none, so they never have deployments.
* ``validate`` returns the server-side validation errors (real Nomad answers them with HTTP 500
  and a go-multierror body [N:command/agent/http.go wrap]); ``strict_errors`` returns what the
  fake rejects with 400 although Nomad would accept it silently (``vault.policies``, dropped by
  servers >= 1.10 [reference §3.1]).
* ``spec_changed`` / ``group_destructive`` decide whether a register makes a new version and
  whether an allocation is replaced or updated in place [N:nomad/structs Job.SpecChanged;
  N:scheduler/util.go tasksUpdated; reference pitfall 7: meta changes are destructive,
  tag-only service changes in place].
"""

from __future__ import annotations

import copy
import re
from typing import Any

from . import schema

SEC = 10**9
MIN = 60 * SEC
HOUR = 60 * MIN
DEFAULT_UPDATE: dict[str, Any] = {
    "Stagger": 30 * SEC,
    "MaxParallel": 1,
    "HealthCheck": "checks",
    "MinHealthyTime": 10 * SEC,
    "HealthyDeadline": 5 * MIN,
    "ProgressDeadline": 10 * MIN,
    "Canary": 0,
    "AutoRevert": False,
    "AutoPromote": False,
}
RESTART = {
    "service": {
        "Attempts": 2,
        "Interval": 30 * MIN,
        "Delay": 15 * SEC,
        "Mode": "fail",
        "RenderTemplates": False,
    },
    "batch": {
        "Attempts": 3,
        "Interval": 24 * HOUR,
        "Delay": 15 * SEC,
        "Mode": "fail",
        "RenderTemplates": False,
    },
}
RESCHEDULE = {
    "service": {
        "Attempts": 0,
        "Interval": 0,
        "Delay": 30 * SEC,
        "DelayFunction": "exponential",
        "MaxDelay": HOUR,
        "Unlimited": True,
    },
    "batch": {
        "Attempts": 1,
        "Interval": 24 * HOUR,
        "Delay": 5 * SEC,
        "DelayFunction": "constant",
        "MaxDelay": 0,
        "Unlimited": False,
    },
}
#: fields the server manages; they never make a spec "changed"
SERVER_FIELDS = (
    "Status", "StatusDescription", "Stable", "Version", "SubmitTime", "CreateIndex", "ModifyIndex",
    "JobModifyIndex", "VersionTag", "NomadTokenID", "ConsulToken", "VaultToken",
)  # fmt: skip
_SERVICE_NAME = re.compile(r"^(?i:[a-z0-9]|[a-z0-9][a-z0-9\-]{0,61}[a-z0-9])$")


def _fill(obj: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    for key, value in defaults.items():
        if obj.get(key) is None:
            obj[key] = copy.deepcopy(value)
    return obj


def _full(obj_type: str, partial: dict[str, Any] | None) -> dict[str, Any]:
    """An object with every schema field present, values taken from ``partial``."""
    out = schema.empty(obj_type)
    out.update(partial or {})
    return out


def canonicalize(job: dict[str, Any], *, server: bool = True) -> dict[str, Any]:
    """A deep copy of ``job`` (an api.Job dict) with api.Job.Canonicalize defaults filled.

    ``server=False`` is what ``/v1/jobs/parse`` with Canonicalize=true returns: the server-only
    defaults (parameterized payload "optional", node pool "default") are not applied there
    [I:hashicorp/nomad#7621].
    """
    job = _full("Job", copy.deepcopy(job))
    _fill(job, {"Region": "global", "Namespace": "default", "Type": "service", "Priority": 50, "AllAtOnce": False,
                "NodePool": "default" if server else "", "ConsulToken": "", "VaultToken": "", "ConsulNamespace": "", "VaultNamespace": "",
                "NomadTokenID": "", "Stop": False, "ParentID": "", "Dispatched": False, "DispatchIdempotencyToken": "",
                "Status": "", "StatusDescription": "", "Stable": False, "Version": 0, "SubmitTime": 0,
                "CreateIndex": 0, "ModifyIndex": 0, "JobModifyIndex": 0})  # fmt: skip
    if job["Name"] is None:
        job["Name"] = job["ID"]
    if not job["Datacenters"]:
        job["Datacenters"] = ["*"]
    kind = "batch" if job["Type"] in ("batch", "sysbatch") else "service"
    if job["Update"] is not None:
        job["Update"] = _fill(_full("UpdateStrategy", job["Update"]), DEFAULT_UPDATE)
    elif kind == "service":
        job["Update"] = dict(DEFAULT_UPDATE)
    if job["ParameterizedJob"] is not None:
        pj = _full("ParameterizedJobConfig", job["ParameterizedJob"])
        if server:
            pj["Payload"] = pj["Payload"] or "optional"
        job["ParameterizedJob"] = pj
    if job["Periodic"] is not None:
        job["Periodic"] = _fill(
            _full("PeriodicConfig", job["Periodic"]),
            {"Enabled": True, "ProhibitOverlap": False, "TimeZone": "UTC"},
        )
    job["TaskGroups"] = [_canonicalize_group(job, tg, kind) for tg in job["TaskGroups"] or []]
    return job


def _canonicalize_group(job: dict[str, Any], tg: dict[str, Any], kind: str) -> dict[str, Any]:
    tg.update({k: v for k, v in _full("TaskGroup", tg).items() if k not in tg})
    if tg["Count"] is None:
        tg["Count"] = (tg["Scaling"] or {}).get("Min") or 1
    tg["EphemeralDisk"] = _fill(
        _full("EphemeralDisk", tg["EphemeralDisk"]),
        {"Sticky": False, "Migrate": False, "SizeMB": 300},
    )
    if job["Update"] is not None and job["Type"] in ("service", "system"):
        merged = dict(job["Update"])
        merged.update({k: v for k, v in (tg["Update"] or {}).items() if v is not None})
        tg["Update"] = merged
    else:
        tg["Update"] = None
    if job["Type"] == "service":
        tg["Migrate"] = _fill(
            _full("MigrateStrategy", tg["Migrate"]),
            {
                "MaxParallel": 1,
                "HealthCheck": "checks",
                "MinHealthyTime": 10 * SEC,
                "HealthyDeadline": 5 * MIN,
            },
        )
    tg["RestartPolicy"] = _fill(_full("RestartPolicy", tg["RestartPolicy"]), RESTART[kind])
    if job["Type"] in ("service", "batch"):
        resched = _full("ReschedulePolicy", tg["ReschedulePolicy"])
        _fill(resched, {k: v for k, v in (job["Reschedule"] or {}).items() if v is not None})
        tg["ReschedulePolicy"] = _fill(resched, RESCHEDULE[kind])
    if tg["Scaling"] is not None:
        tg["Scaling"] = _fill(
            _full("ScalingPolicy", tg["Scaling"]),
            {"Enabled": True, "Min": tg["Count"], "Type": "horizontal"},
        )
    tg["Services"] = [
        _canonicalize_service(s, f"{job['Name']}-{tg['Name']}") for s in tg["Services"] or []
    ] or None
    tg["Tasks"] = [_canonicalize_task(job, tg, t) for t in tg["Tasks"] or []]
    return tg


def _canonicalize_service(svc: dict[str, Any], default_name: str) -> dict[str, Any]:
    svc = _full("Service", svc)
    svc["Name"] = svc["Name"] or default_name
    svc["AddressMode"] = svc["AddressMode"] or "auto"
    svc["OnUpdate"] = svc["OnUpdate"] or "require_healthy"
    svc["Provider"] = svc["Provider"] or "consul"
    checks = []
    for check in svc["Checks"] or []:
        check = _full("ServiceCheck", check)
        check["OnUpdate"] = check["OnUpdate"] or svc["OnUpdate"]
        if check["CheckRestart"] is None and svc["CheckRestart"] is not None:
            check["CheckRestart"] = copy.deepcopy(svc["CheckRestart"])
        if check["CheckRestart"] is not None:
            check["CheckRestart"] = _fill(
                _full("CheckRestart", check["CheckRestart"]), {"Grace": SEC}
            )
        checks.append(check)
    svc["Checks"] = checks or None
    return svc


def _canonicalize_task(
    job: dict[str, Any], tg: dict[str, Any], task: dict[str, Any]
) -> dict[str, Any]:
    task = _full("Task", task)
    task["Resources"] = _fill(
        _full("Resources", task["Resources"]),
        {"CPU": 100, "Cores": 0, "MemoryMB": 300, "MemoryMaxMB": 0},
    )
    task["KillTimeout"] = task["KillTimeout"] if task["KillTimeout"] is not None else 5 * SEC
    task["LogConfig"] = _fill(
        _full("LogConfig", task["LogConfig"]),
        {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False},
    )
    restart = dict(tg["RestartPolicy"])
    restart.update({k: v for k, v in (task["RestartPolicy"] or {}).items() if v is not None})
    task["RestartPolicy"] = restart
    task["Templates"] = [
        _fill(_full("Template", t), {"SourcePath": "", "DestPath": "", "EmbeddedTmpl": "", "ChangeSignal": "", "LeftDelim": "{{",
                                     "RightDelim": "}}", "Envvars": False, "VaultGrace": 0, "Once": False})
        for t in task["Templates"] or []
    ] or None  # fmt: skip
    if task["Vault"] is not None:
        task["Vault"] = _fill(_full("Vault", task["Vault"]), {"Env": True, "DisableFile": False, "Namespace": "", "ChangeMode": "restart",
                                                            "ChangeSignal": "SIGHUP", "AllowTokenExpiration": False})  # fmt: skip
    task["Artifacts"] = [
        _fill(
            _full("TaskArtifact", a),
            {"GetterMode": "any", "RelativeDest": "local/", "GetterInsecure": False},
        )
        for a in task["Artifacts"] or []
    ] or None
    if task["Lifecycle"] is not None and not task["Lifecycle"].get("Hook"):
        task["Lifecycle"] = None
    task["Services"] = [
        _canonicalize_service(s, f"{job['Name']}-{tg['Name']}-{task['Name']}")
        for s in task["Services"] or []
    ] or None
    return task


def strict_errors(job: dict[str, Any]) -> list[str]:
    """What the fake refuses (HTTP 400) although Nomad would accept and silently drop it."""
    errs = []
    for tg in job.get("TaskGroups") or []:
        for task in tg.get("Tasks") or []:
            if (task.get("Vault") or {}).get("Policies"):
                errs.append(
                    f"Job.TaskGroups[{tg.get('Name')}].Tasks[{task.get('Name')}].Vault.Policies: "
                    "vault policies are silently dropped by Nomad >= 1.10; use vault.role with workload identity"
                )
    return errs


def validate(job: dict[str, Any]) -> list[str]:
    """Server-side validation of a canonical job (Nomad answers these with HTTP 500)."""
    errs: list[str] = []
    if not job["ID"] or " " in job["ID"]:
        errs.append("Missing job ID" if not job["ID"] else "Job ID contains a space")
    if job["Type"] not in ("service", "batch", "system", "sysbatch"):
        errs.append(f'Invalid job type: "{job["Type"]}"')
    if not 1 <= job["Priority"] <= 100:
        errs.append("Job priority must be between [1, 100]")
    if not job["TaskGroups"]:
        errs.append("Missing job task groups")
    if job["ParameterizedJob"] is not None:
        if job["Type"] not in ("batch", "sysbatch"):
            errs.append('Parameterized job can only be used with "batch" or "sysbatch" scheduler')
        if job["ParameterizedJob"]["Payload"] not in ("optional", "required", "forbidden"):
            errs.append(f"Unknown payload requirement: {job['ParameterizedJob']['Payload']!r}")
    seen: dict[str, int] = {}
    for i, tg in enumerate(job["TaskGroups"] or [], start=1):
        if tg["Name"] in seen:
            errs.append(
                f"Job task group {i} redefines '{tg['Name']}' from group {seen[tg['Name']]}"
            )
        seen[tg["Name"]] = i
        errs.extend(
            f"Task group {tg['Name']} validation failed: {e}" for e in _validate_group(job, tg)
        )
    return errs


def _validate_group(job: dict[str, Any], tg: dict[str, Any]) -> list[str]:
    errs: list[str] = []
    if not tg["Name"]:
        errs.append("Missing task group name")
    if tg["Count"] < 0:
        errs.append("Task group count can't be negative")
    if not tg["Tasks"]:
        errs.append("Missing tasks for task group")
    upd = tg["Update"]
    if upd is not None:
        if upd["HealthCheck"] not in ("checks", "task_states", "manual"):
            errs.append(f"Invalid health check given: {upd['HealthCheck']!r}")
        if upd["MaxParallel"] < 0 or upd["Canary"] < 0:
            errs.append("Update max_parallel and canary must be >= 0")
        if upd["ProgressDeadline"] and upd["HealthyDeadline"] >= upd["ProgressDeadline"]:
            errs.append("Healthy deadline must be less than progress deadline")
        if upd["AutoPromote"] and not upd["Canary"]:
            errs.append("Auto Promote requires a Canary count greater than zero")
    labels = {
        p["Label"]
        for n in tg["Networks"] or []
        for p in (n["DynamicPorts"] or []) + (n["ReservedPorts"] or [])
    }
    for svc in tg["Services"] or []:
        errs.extend(_validate_service(svc, labels))
    task_names: set[str] = set()
    for task in tg["Tasks"] or []:
        if task["Name"] in task_names:
            errs.append(f"Task {task['Name']} redefines a task of the group")
        task_names.add(task["Name"])
        errs.extend(
            f"Task {task['Name'] or '?'} validation failed: {e}"
            for e in _validate_task(task, labels)
        )
    return errs


def _validate_service(svc: dict[str, Any], labels: set[str]) -> list[str]:
    errs = []
    if not _SERVICE_NAME.match(svc["Name"]):
        errs.append(
            f"Service name must be valid per RFC 1123 and can contain only alphanumeric characters or dashes: {svc['Name']!r}"
        )
    if svc["Provider"] not in ("consul", "nomad"):
        errs.append(f"Service provider must be one of consul or nomad: {svc['Provider']!r}")
    port = svc["PortLabel"]
    if port and not port.isdigit() and port not in labels:
        errs.append(f"port label {port!r} referenced by services {svc['Name']} does not exist")
    for check in svc["Checks"] or []:
        ctype = check["Type"]
        if ctype not in ("http", "tcp", "script", "grpc"):
            errs.append(f"service {svc['Name']!r} check: invalid type ({ctype!r})")
        if svc["Provider"] == "nomad" and ctype not in ("http", "tcp"):
            errs.append(
                f"service {svc['Name']!r} check: provider nomad supports only http and tcp checks"
            )
        if ctype == "http" and not check["Path"]:
            errs.append(f"service {svc['Name']!r} check: http type must have http path")
        if check["Interval"] < SEC:
            errs.append(
                f"service {svc['Name']!r} check: interval ({check['Interval']}) cannot be lower than 1s"
            )
        if check["Timeout"] < SEC:
            errs.append(f"service {svc['Name']!r} check: timeout ({check['Timeout']}) is too low")
        cport = check["PortLabel"]
        if cport and not cport.isdigit() and cport not in labels:
            errs.append(f"check port label {cport!r} does not exist")
    return errs


def _validate_task(task: dict[str, Any], labels: set[str]) -> list[str]:
    errs = []
    if not task["Name"]:
        errs.append("Missing task name")
    if not task["Driver"]:
        errs.append("Missing task driver")
    if task["KillTimeout"] < 0:
        errs.append("KillTimeout must be a positive value")
    res = task["Resources"]
    if res["CPU"] < 1 and not res["Cores"]:
        errs.append(f"minimum CPU value is 1; got {res['CPU']}")
    if res["MemoryMB"] < 10:
        errs.append(f"minimum MemoryMB value is 10; got {res['MemoryMB']}")
    if res["MemoryMaxMB"] and res["MemoryMaxMB"] < res["MemoryMB"]:
        errs.append("MemoryMaxMB value must be greater or equal to MemoryMB")
    if task["Lifecycle"] is not None and task["Lifecycle"]["Hook"] not in (
        "prestart",
        "poststart",
        "poststop",
    ):
        errs.append(f"invalid hook: {task['Lifecycle']['Hook']}")
    errs.extend(_validate_templates(task))
    vault = task["Vault"]
    if vault is not None and vault["ChangeMode"] not in ("restart", "noop", "signal"):
        errs.append(f"Vault validation failed: Invalid change mode ({vault['ChangeMode']})")
    for i, art in enumerate(task["Artifacts"] or [], start=1):
        if not art["GetterSource"]:
            errs.append(f"Artifact {i} validation failed: source must be specified")
    for svc in task["Services"] or []:
        errs.extend(_validate_service(svc, labels))
    return errs


def _validate_templates(task: dict[str, Any]) -> list[str]:
    errs = []
    for i, tmpl in enumerate(task["Templates"] or [], start=1):
        if not tmpl["DestPath"]:
            errs.append(
                f"Template {i} validation failed: Must specify a destination for the template"
            )
        if not tmpl["SourcePath"] and not tmpl["EmbeddedTmpl"]:
            errs.append(
                f"Template {i} validation failed: Must specify a source path or have an embedded template"
            )
        if tmpl["ChangeMode"] not in ("restart", "noop", "signal", "script"):
            errs.append(
                f"Template {i} validation failed: Invalid change mode ({tmpl['ChangeMode']})"
            )
        if tmpl["ChangeMode"] == "signal" and tmpl["Envvars"]:
            errs.append(
                f"Template {i} validation failed: cannot use signals with env var templates"
            )
    return errs


def spec_view(job: dict[str, Any]) -> dict[str, Any]:
    """The part of a job that decides whether a register is a new version."""
    return {k: val for k, val in job.items() if k not in SERVER_FIELDS}


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return spec_view(old) != spec_view(new)


def _group_core(job: dict[str, Any], group: str) -> Any:
    tg = next((g for g in job["TaskGroups"] if g["Name"] == group), None)
    if tg is None:
        return None
    core = {
        k: val
        for k, val in tg.items()
        if k not in ("Count", "Update", "Scaling", "Migrate", "Services")
    }
    core["Tasks"] = [{k: val for k, val in t.items() if k != "Services"} for t in tg["Tasks"]]
    return core, job["Meta"], job["Datacenters"], job["Constraints"]


def group_destructive(old_job: dict[str, Any], new_job: dict[str, Any], group: str) -> bool:
    """Does moving an allocation of ``group`` from old_job to new_job need a new allocation?"""
    return _group_core(old_job, group) != _group_core(new_job, group)
