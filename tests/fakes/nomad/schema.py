"""The shape of Nomad's ``api.Job``: one table that drives both the HCL converter and the strict
JSON checker of the fake.

Each object type lists its fields with the Go field name (the JSON key, since ``api.*`` structs
carry no json tags), a kind, the HCL name from the ``hcl:"..."`` tag, and whether the Go field
is a pointer (null when unset) or a value (zero when unset). Sources: [N:api/jobs.go,
api/tasks.go, api/services.go, api/resources.go, api/scaling.go, api/constraint.go] and the
mapping table at the end of reference/nomad-consul-vault.md.

Real Nomad decodes request bodies leniently (unknown keys dropped, keys matched
case-insensitively) [N:command/agent/http.go decodeBody]. ``check_json`` is the fake's stricter
replacement: every key must be a known field spelled exactly, and every value must have the
Go type (integers for durations and counts, strings for meta values, base64 for ``[]byte``).
Fields of ``api.Job`` the fake does not model (Multiregion, Connect, CSI plugins, ...) are
rejected as unsupported rather than silently accepted.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

# Kinds. "obj"/"objs"/"objmap" carry the name of another object type in Field.obj.
STR, INT, UINT, BOOL, DUR, FLOAT = "str", "int", "uint", "bool", "dur", "float"
STRS, MAP, ANY, BYTES = "strs", "map", "any", "bytes"
OBJ, OBJS, OBJMAP, STRSMAP = "obj", "objs", "objmap", "strsmap"


@dataclass(frozen=True)
class Field:
    json: str
    kind: str
    hcl: str | None = None
    obj: str | None = None
    ptr: bool = True
    either: bool = False  # HCL: may be written as a block or as an attribute (meta, env, ...)


def f(
    json: str,
    kind: str,
    hcl: str | None = None,
    obj: str | None = None,
    *,
    ptr: bool = True,
    either: bool = False,
) -> Field:
    return Field(json, kind, hcl, obj, ptr, either)


def v(
    json: str, kind: str, hcl: str | None = None, obj: str | None = None, *, either: bool = False
) -> Field:
    """A non-pointer Go field: zero value when unset."""
    return Field(json, kind, hcl, obj, False, either)


_CONSTRAINT = [
    v("LTarget", STR, "attribute"),
    v("RTarget", STR, "value"),
    v("Operand", STR, "operator"),
]

OBJECTS: dict[str, list[Field]] = {
    "Job": [
        f("Region", STR, "region"),
        f("Namespace", STR, "namespace"),
        f("ID", STR, "id"),
        f("Name", STR, "name"),
        f("Type", STR, "type"),
        f("Priority", INT, "priority"),
        f("AllAtOnce", BOOL, "all_at_once"),
        f("Datacenters", STRS, "datacenters"),
        f("NodePool", STR, "node_pool"),
        f("Constraints", OBJS, "constraint", "Constraint"),
        f("Affinities", OBJS, "affinity", "Affinity"),
        f("TaskGroups", OBJS, "group", "TaskGroup"),
        f("Update", OBJ, "update", "UpdateStrategy"),
        f("Multiregion", OBJ, None, "Unsupported"),
        f("Spreads", OBJS, "spread", "Spread"),
        f("Periodic", OBJ, "periodic", "PeriodicConfig"),
        f("ParameterizedJob", OBJ, "parameterized", "ParameterizedJobConfig"),
        f("Reschedule", OBJ, "reschedule", "ReschedulePolicy"),
        f("Migrate", OBJ, "migrate", "MigrateStrategy"),
        f("Meta", MAP, "meta", either=True),
        f("UI", OBJ, None, "Unsupported"),
        # Set by the server; accepted so that a GET job can be posted back unchanged.
        f("ConsulToken", STR),
        f("VaultToken", STR),
        f("Stop", BOOL),
        f("ParentID", STR),
        f("Dispatched", BOOL),
        f("DispatchIdempotencyToken", STR),
        f("Payload", BYTES),
        f("ConsulNamespace", STR),
        f("VaultNamespace", STR),
        f("NomadTokenID", STR),
        f("Status", STR),
        f("StatusDescription", STR),
        f("Stable", BOOL),
        f("Version", UINT),
        f("SubmitTime", INT),
        f("CreateIndex", UINT),
        f("ModifyIndex", UINT),
        f("JobModifyIndex", UINT),
        f("VersionTag", OBJ, None, "JobVersionTag"),
    ],
    "JobVersionTag": [v("Name", STR), v("Description", STR), v("TaggedTime", INT)],
    "TaskGroup": [
        f("Name", STR),
        f("Count", INT, "count"),
        f("Constraints", OBJS, "constraint", "Constraint"),
        f("Affinities", OBJS, "affinity", "Affinity"),
        f("Tasks", OBJS, "task", "Task"),
        f("Spreads", OBJS, "spread", "Spread"),
        f("Volumes", OBJMAP, "volume", "VolumeRequest"),
        f("RestartPolicy", OBJ, "restart", "RestartPolicy"),
        f("Disconnect", OBJ, None, "Unsupported"),
        f("ReschedulePolicy", OBJ, "reschedule", "ReschedulePolicy"),
        f("EphemeralDisk", OBJ, "ephemeral_disk", "EphemeralDisk"),
        f("Update", OBJ, "update", "UpdateStrategy"),
        f("Migrate", OBJ, "migrate", "MigrateStrategy"),
        f("Networks", OBJS, "network", "NetworkResource"),
        f("Meta", MAP, "meta", either=True),
        f("Services", OBJS, "service", "Service"),
        f("ShutdownDelay", DUR, "shutdown_delay"),
        f("StopAfterClientDisconnect", DUR),
        f("MaxClientDisconnect", DUR),
        f("Scaling", OBJ, "scaling", "ScalingPolicy"),
        f("Consul", OBJ, "consul", "Consul"),
        f("PreventRescheduleOnLost", BOOL, "prevent_reschedule_on_lost"),
    ],
    "Task": [
        v("Name", STR),
        v("Driver", STR, "driver"),
        v("User", STR, "user"),
        f("Lifecycle", OBJ, "lifecycle", "TaskLifecycle"),
        f("Config", ANY, "config"),
        f("Constraints", OBJS, "constraint", "Constraint"),
        f("Affinities", OBJS, "affinity", "Affinity"),
        f("Env", MAP, "env", either=True),
        f("Services", OBJS, "service", "Service"),
        f("Resources", OBJ, "resources", "Resources"),
        f("RestartPolicy", OBJ, "restart", "RestartPolicy"),
        f("Meta", MAP, "meta", either=True),
        f("KillTimeout", DUR, "kill_timeout"),
        f("LogConfig", OBJ, "logs", "LogConfig"),
        f("Artifacts", OBJS, "artifact", "TaskArtifact"),
        f("Vault", OBJ, "vault", "Vault"),
        f("Consul", OBJ, "consul", "Consul"),
        f("Templates", OBJS, "template", "Template"),
        f("DispatchPayload", OBJ, "dispatch_payload", "DispatchPayloadConfig"),
        f("VolumeMounts", OBJS, "volume_mount", "VolumeMount"),
        f("CSIPluginConfig", OBJ, None, "Unsupported"),
        v("Leader", BOOL, "leader"),
        v("ShutdownDelay", DUR, "shutdown_delay"),
        v("KillSignal", STR, "kill_signal"),
        v("Kind", STR, "kind"),
        f("ScalingPolicies", OBJS, None, "Unsupported"),
        f("Identity", OBJ, None, "WorkloadIdentity"),  # HCL: `identity` is split, see jobspec.py
        f("Identities", OBJS, None, "WorkloadIdentity"),
        f("Actions", OBJS, None, "Unsupported"),
    ],
    "Constraint": _CONSTRAINT,
    "Affinity": [*_CONSTRAINT, f("Weight", INT, "weight")],
    "Spread": [
        v("Attribute", STR, "attribute"),
        f("Weight", INT, "weight"),
        v("SpreadTarget", OBJS, "target", "SpreadTarget"),
    ],
    "SpreadTarget": [v("Value", STR), v("Percent", UINT, "percent")],
    "UpdateStrategy": [
        f("Stagger", DUR, "stagger"),
        f("MaxParallel", INT, "max_parallel"),
        f("HealthCheck", STR, "health_check"),
        f("MinHealthyTime", DUR, "min_healthy_time"),
        f("HealthyDeadline", DUR, "healthy_deadline"),
        f("ProgressDeadline", DUR, "progress_deadline"),
        f("Canary", INT, "canary"),
        f("AutoRevert", BOOL, "auto_revert"),
        f("AutoPromote", BOOL, "auto_promote"),
    ],
    "PeriodicConfig": [
        f("Enabled", BOOL, "enabled"),
        f("Spec", STR, "cron"),
        v("Specs", STRS, "crons"),
        f("SpecType", STR),
        f("ProhibitOverlap", BOOL, "prohibit_overlap"),
        f("TimeZone", STR, "time_zone"),
    ],
    "ParameterizedJobConfig": [
        v("Payload", STR, "payload"),
        v("MetaRequired", STRS, "meta_required"),
        v("MetaOptional", STRS, "meta_optional"),
    ],
    "RestartPolicy": [
        f("Interval", DUR, "interval"),
        f("Attempts", INT, "attempts"),
        f("Delay", DUR, "delay"),
        f("Mode", STR, "mode"),
        f("RenderTemplates", BOOL, "render_templates"),
    ],
    "ReschedulePolicy": [
        f("Attempts", INT, "attempts"),
        f("Interval", DUR, "interval"),
        f("Delay", DUR, "delay"),
        f("DelayFunction", STR, "delay_function"),
        f("MaxDelay", DUR, "max_delay"),
        f("Unlimited", BOOL, "unlimited"),
    ],
    "MigrateStrategy": [
        f("MaxParallel", INT, "max_parallel"),
        f("HealthCheck", STR, "health_check"),
        f("MinHealthyTime", DUR, "min_healthy_time"),
        f("HealthyDeadline", DUR, "healthy_deadline"),
    ],
    "EphemeralDisk": [
        f("Sticky", BOOL, "sticky"),
        f("Migrate", BOOL, "migrate"),
        f("SizeMB", INT, "size"),
    ],
    "VolumeRequest": [
        v("Name", STR),
        v("Type", STR, "type"),
        v("Source", STR, "source"),
        v("Sticky", BOOL, "sticky"),
        v("ReadOnly", BOOL, "read_only"),
        v("AccessMode", STR, "access_mode"),
        v("AttachmentMode", STR, "attachment_mode"),
        v("PerAlloc", BOOL, "per_alloc"),
    ],
    "NetworkResource": [
        v("Mode", STR, "mode"),
        v("Device", STR, "device"),
        v("CIDR", STR, "cidr"),
        v("IP", STR, "ip"),
        f("DNS", OBJ, "dns", "DNSConfig"),
        v("ReservedPorts", OBJS, None, "Port"),
        v("DynamicPorts", OBJS, None, "Port"),
        v("Hostname", STR, "hostname"),
        f("MBits", INT, "mbits"),
        f("CNI", OBJ, None, "Unsupported"),
    ],
    "Port": [
        v("Label", STR),
        v("Value", INT, "static"),
        v("To", INT, "to"),
        v("HostNetwork", STR, "host_network"),
        v("IgnoreCollision", BOOL, "ignore_collision"),
    ],
    "DNSConfig": [
        v("Servers", STRS, "servers"),
        v("Searches", STRS, "searches"),
        v("Options", STRS, "options"),
    ],
    "Service": [
        v("Name", STR, "name"),
        v("Tags", STRS, "tags"),
        v("CanaryTags", STRS, "canary_tags"),
        v("EnableTagOverride", BOOL, "enable_tag_override"),
        v("PortLabel", STR, "port"),
        v("AddressMode", STR, "address_mode"),
        v("Address", STR, "address"),
        v("Checks", OBJS, "check", "ServiceCheck"),
        f("CheckRestart", OBJ, "check_restart", "CheckRestart"),
        f("Connect", OBJ, None, "Unsupported"),
        v("Meta", MAP, "meta", either=True),
        v("CanaryMeta", MAP, "canary_meta", either=True),
        v("TaggedAddresses", MAP, "tagged_addresses", either=True),
        v("TaskName", STR, "task"),
        v("OnUpdate", STR, "on_update"),
        f("Identity", OBJ, None, "Unsupported"),
        f("Weights", OBJ, None, "Unsupported"),
        v("Provider", STR, "provider"),
        v("Cluster", STR, "cluster"),
        v("Kind", STR, "kind"),
    ],
    "ServiceCheck": [
        v("Name", STR, "name"),
        v("Type", STR, "type"),
        v("Command", STR, "command"),
        v("Args", STRS, "args"),
        v("Path", STR, "path"),
        v("Protocol", STR, "protocol"),
        v("PortLabel", STR, "port"),
        v("Expose", BOOL, "expose"),
        v("AddressMode", STR, "address_mode"),
        v("Advertise", STR, "advertise"),
        v("Interval", DUR, "interval"),
        v("Timeout", DUR, "timeout"),
        v("InitialStatus", STR, "initial_status"),
        v("Notes", STR, "notes"),
        v("TLSServerName", STR, "tls_server_name"),
        v("TLSSkipVerify", BOOL, "tls_skip_verify"),
        v("Header", STRSMAP, "header"),
        v("Method", STR, "method"),
        f("CheckRestart", OBJ, "check_restart", "CheckRestart"),
        v("GRPCService", STR, "grpc_service"),
        v("GRPCUseTLS", BOOL, "grpc_use_tls"),
        v("TaskName", STR, "task"),
        v("SuccessBeforePassing", INT, "success_before_passing"),
        v("FailuresBeforeCritical", INT, "failures_before_critical"),
        v("FailuresBeforeWarning", INT, "failures_before_warning"),
        v("Body", STR, "body"),
        v("OnUpdate", STR, "on_update"),
    ],
    "CheckRestart": [
        v("Limit", INT, "limit"),
        f("Grace", DUR, "grace"),
        v("IgnoreWarnings", BOOL, "ignore_warnings"),
    ],
    "ScalingPolicy": [
        v("ID", STR),
        v("Namespace", STR),
        v("Type", STR),
        v("Target", MAP),
        f("Min", INT, "min"),
        f("Max", INT, "max"),
        v("Policy", ANY, "policy"),
        f("Enabled", BOOL, "enabled"),
        v("CreateIndex", UINT),
        v("ModifyIndex", UINT),
    ],
    "Consul": [
        v("Namespace", STR, "namespace"),
        v("Cluster", STR, "cluster"),
        v("Partition", STR, "partition"),
    ],
    "TaskLifecycle": [v("Hook", STR, "hook"), v("Sidecar", BOOL, "sidecar")],
    "Resources": [
        f("CPU", INT, "cpu"),
        f("Cores", INT, "cores"),
        f("MemoryMB", INT, "memory"),
        f("MemoryMaxMB", INT, "memory_max"),
        f("DiskMB", INT, "disk"),
        v("Networks", OBJS, "network", "NetworkResource"),
        v("Devices", OBJS, None, "Unsupported"),
        f("NUMA", OBJ, None, "Unsupported"),
        f("IOPS", INT, "iops"),
        f("SecretsMB", INT, "secrets"),
    ],
    "LogConfig": [
        f("MaxFiles", INT, "max_files"),
        f("MaxFileSizeMB", INT, "max_file_size"),
        f("Disabled", BOOL, "disabled"),
        f("Enabled", BOOL),
    ],
    "TaskArtifact": [
        f("GetterSource", STR, "source"),
        v("GetterOptions", MAP, "options", either=True),
        v("GetterHeaders", MAP, "headers", either=True),
        f("GetterMode", STR, "mode"),
        f("GetterInsecure", BOOL, "insecure"),
        f("RelativeDest", STR, "destination"),
        v("Chown", BOOL, "chown"),
    ],
    "Vault": [
        v("Policies", STRS, "policies"),
        v("Role", STR, "role"),
        f("Namespace", STR, "namespace"),
        v("Cluster", STR, "cluster"),
        f("Env", BOOL, "env"),
        f("DisableFile", BOOL, "disable_file"),
        f("ChangeMode", STR, "change_mode"),
        f("ChangeSignal", STR, "change_signal"),
        f("AllowTokenExpiration", BOOL, "allow_token_expiration"),
    ],
    "Template": [
        f("SourcePath", STR, "source"),
        f("DestPath", STR, "destination"),
        f("EmbeddedTmpl", STR, "data"),
        f("ChangeMode", STR, "change_mode"),
        f("ChangeScript", OBJ, "change_script", "ChangeScript"),
        f("ChangeSignal", STR, "change_signal"),
        f("Splay", DUR, "splay"),
        f("Perms", STR, "perms"),
        f("Uid", INT, "uid"),
        f("Gid", INT, "gid"),
        f("LeftDelim", STR, "left_delimiter"),
        f("RightDelim", STR, "right_delimiter"),
        f("Envvars", BOOL, "env"),
        f("VaultGrace", DUR, "vault_grace"),
        f("Wait", OBJ, "wait", "WaitConfig"),
        f("ErrMissingKey", BOOL, "error_on_missing_key"),
        f("Once", BOOL, "once"),
    ],
    "ChangeScript": [
        f("Command", STR, "command"),
        v("Args", STRS, "args"),
        f("Timeout", DUR, "timeout"),
        f("FailOnError", BOOL, "fail_on_error"),
        f("RunOnFirstRender", BOOL, "run_on_first_render"),
    ],
    "WaitConfig": [f("Min", DUR, "min"), f("Max", DUR, "max")],
    "WorkloadIdentity": [
        v("Name", STR, "name"),
        v("Audience", STRS, "aud"),
        v("ChangeMode", STR, "change_mode"),
        v("ChangeSignal", STR, "change_signal"),
        v("Env", BOOL, "env"),
        v("File", BOOL, "file"),
        v("Filepath", STR, "filepath"),
        v("ServiceName", STR, "service_name"),
        v("TTL", DUR, "ttl"),
        v("ExtraClaims", MAP, "extra_claims", either=True),
    ],
    "DispatchPayloadConfig": [v("File", STR, "file")],
    "VolumeMount": [
        f("Volume", STR, "volume"),
        f("Destination", STR, "destination"),
        f("ReadOnly", BOOL, "read_only"),
        f("PropagationMode", STR, "propagation_mode"),
        f("SELinuxLabel", STR, "selinux_label"),
    ],
}

#: Request bodies, keyed by a name used in the HTTP layer. [N:api/jobs.go, nomad/structs/structs.go]
REQUESTS: dict[str, list[Field]] = {
    # HCLv1 was removed in 1.9 [reference §1.1], so the fake treats it as unknown.
    "JobsParseRequest": [v("JobHCL", STR), v("Variables", STR), v("Canonicalize", BOOL)],
    "JobRegisterRequest": [
        f("Job", OBJ, None, "Job"),
        f("Submission", OBJ, None, "JobSubmission"),
        v("EnforceIndex", BOOL),
        v("JobModifyIndex", UINT),
        v("PolicyOverride", BOOL),
        v("PreserveCounts", BOOL),
        v("PreserveResources", BOOL),
        v("EvalPriority", INT),
        v("Region", STR),
        v("Namespace", STR),
        v("SecretID", STR),
    ],
    "JobSubmission": [
        v("Source", STR),
        v("Format", STR),
        v("VariableFlags", MAP),
        v("Variables", STR),
    ],
    "JobRevertRequest": [
        v("JobID", STR),
        v("JobVersion", UINT),
        f("EnforcePriorVersion", UINT),
        v("ConsulToken", STR),
        v("VaultToken", STR),
        v("Region", STR),
        v("Namespace", STR),
        v("SecretID", STR),
    ],
    "JobStabilityRequest": [
        v("JobID", STR),
        v("JobVersion", UINT),
        v("Stable", BOOL),
        v("Region", STR),
        v("Namespace", STR),
        v("SecretID", STR),
    ],
    "JobDispatchRequest": [
        v("JobID", STR),
        v("Payload", BYTES),
        v("Meta", MAP),
        v("IdPrefixTemplate", STR),
        v("Priority", INT),
        v("Region", STR),
        v("Namespace", STR),
        v("SecretID", STR),
    ],
    "ScalingRequest": [
        f("Count", INT),
        v("Target", MAP),
        v("Message", STR),
        v("Error", BOOL),
        v("Meta", ANY),
        v("PolicyOverride", BOOL),
        v("JobModifyIndex", UINT),
        v("EnforceIndex", BOOL),
        v("Region", STR),
        v("Namespace", STR),
        v("SecretID", STR),
    ],
    "DeploymentPromoteRequest": [
        v("DeploymentID", STR),
        v("All", BOOL),
        v("Groups", STRS),
        v("Region", STR),
        v("Namespace", STR),
        v("SecretID", STR),
    ],
    "DeploymentFailRequest": [
        v("DeploymentID", STR),
        v("Region", STR),
        v("Namespace", STR),
        v("SecretID", STR),
    ],
    "JobTagRequest": [
        v("Version", UINT),
        v("Description", STR),
        v("Region", STR),
        v("Namespace", STR),
        v("SecretID", STR),
    ],
}

_BY_JSON = {
    name: {fld.json: fld for fld in fields} for name, fields in {**OBJECTS, **REQUESTS}.items()
}


def fields_of(obj: str) -> dict[str, Field]:
    return _BY_JSON[obj]


class JSONTypeError(ValueError):
    """A body that real Nomad would drop or fail to decode; the message names the JSON path."""


def check_json(value: Any, obj: str, path: str = "") -> None:
    """Raise JSONTypeError unless ``value`` is a valid JSON object of the named type."""
    if not isinstance(value, dict):
        raise JSONTypeError(f"{path or 'body'}: expected a JSON object, got {_tname(value)}")
    known = fields_of(obj)
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        fld = known.get(key)
        if fld is None:
            hint = _case_hint(key, known)
            raise JSONTypeError(f"{where}: unknown field (real Nomad silently ignores it){hint}")
        if fld.obj == "Unsupported" and item is not None:
            raise JSONTypeError(f"{where}: not supported by the fake Nomad")
        _check_value(item, fld, where)


def _case_hint(key: str, known: dict[str, Field]) -> str:
    for name in known:
        if name.lower() == key.lower():
            return f"; did you mean {name!r}? (Nomad matches keys case-insensitively, the fake does not)"
    return ""


def _tname(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "bool",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _check_value(item: Any, fld: Field, where: str) -> None:  # noqa: C901 - one branch per kind
    if item is None:
        return
    kind = fld.kind
    if kind == STR and not isinstance(item, str):
        raise JSONTypeError(f"{where}: expected a string, got {_tname(item)}")
    if kind in (INT, UINT, DUR) and (isinstance(item, bool) or not isinstance(item, int)):
        unit = " (durations are integer nanoseconds)" if kind == DUR else ""
        raise JSONTypeError(f"{where}: expected an integer{unit}, got {_tname(item)} {item!r}")
    if kind == UINT and item < 0:
        raise JSONTypeError(f"{where}: expected an unsigned integer, got {item}")
    if kind == BOOL and not isinstance(item, bool):
        raise JSONTypeError(f"{where}: expected a bool, got {_tname(item)}")
    if kind == FLOAT and (isinstance(item, bool) or not isinstance(item, (int, float))):
        raise JSONTypeError(f"{where}: expected a number, got {_tname(item)}")
    if kind == STRS and not (isinstance(item, list) and all(isinstance(x, str) for x in item)):
        raise JSONTypeError(f"{where}: expected an array of strings")
    if kind == MAP and not (
        isinstance(item, dict) and all(isinstance(x, str) for x in item.values())
    ):
        raise JSONTypeError(
            f"{where}: expected an object of string values (meta/env values must be strings)"
        )
    if kind == STRSMAP and not (
        isinstance(item, dict)
        and all(isinstance(x, list) and all(isinstance(s, str) for s in x) for x in item.values())
    ):
        raise JSONTypeError(f"{where}: expected an object of string arrays")
    if kind == ANY and not isinstance(item, dict):
        raise JSONTypeError(f"{where}: expected an object, got {_tname(item)}")
    if kind == BYTES:
        _check_base64(item, where)
    if kind == OBJ:
        check_json(item, fld.obj or "", where)
    if kind == OBJS:
        if not isinstance(item, list):
            raise JSONTypeError(f"{where}: expected an array, got {_tname(item)}")
        for i, elem in enumerate(item):
            check_json(elem, fld.obj or "", f"{where}[{i}]")
    if kind == OBJMAP:
        if not isinstance(item, dict):
            raise JSONTypeError(f"{where}: expected an object, got {_tname(item)}")
        for key, elem in item.items():
            check_json(elem, fld.obj or "", f"{where}.{key}")


def _check_base64(item: Any, where: str) -> None:
    if not isinstance(item, str):
        raise JSONTypeError(f"{where}: expected a base64 string ([]byte), got {_tname(item)}")
    try:
        base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise JSONTypeError(
            f"{where}: not valid base64 ([]byte fields are base64 in JSON)"
        ) from exc


def empty(obj: str) -> dict[str, Any]:
    """An object of the named type with every field unset (null or the Go zero value)."""
    return {fld.json: zero(fld) for fld in OBJECTS[obj]}


def zero(fld: Field) -> Any:
    if fld.ptr or fld.kind in (STRS, MAP, ANY, OBJ, OBJS, OBJMAP, STRSMAP, BYTES):
        return None
    return {STR: "", INT: 0, UINT: 0, DUR: 0, BOOL: False, FLOAT: 0.0}[fld.kind]
