"""HCL2 job file -> Nomad API JSON, as ``POST /v1/jobs/parse`` returns it (Canonicalize=false).

The structure comes from ``hclscan`` (blocks, labels, order, attribute vs block), the values
from ``pygohcl``; ``schema.OBJECTS`` says which names exist, their JSON names and types.
Unknown arguments or blocks, the wrong form (attribute for a block), wrong label counts and
wrong value types are rejected like gohcl does [N:jobspec2/types.config.go, gohcl schema from
the ``hcl:"..."`` tags]; values are converted like cty would (numbers and bools to strings
where a string is expected) except that strings are *not* converted to numbers or bools (the
fake is stricter: ``count = "2"`` is an error).

Normalizations applied even without Canonicalize, as jobspec2 does [N:jobspec2/parse_job.go
normalizeJob, normalizeNetworkPorts, normalizeTemplates, normalizeVault,
normalizeChangeScript; N:jobspec2/hcl_conversions.go]: ID/Name from the job label; ports split
into DynamicPorts/ReservedPorts; template, change_script and vault defaults; job- and
group-level ``vault`` pushed into tasks without one (copied, not merged); the unnamed or
``default`` identity moved to ``Task.Identity``; ``Periodic.SpecType = "cron"``; group
``Scaling.Type = "horizontal"``; constraint shorthands and the default operand ``=``.
Durations become integer nanoseconds [N:jobspec2/hcl_conversions.go decodeDuration].
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pygohcl

from . import schema
from .hclscan import Block, HCLScanError, escape_interpolations, scan
from .schema import (
    ANY,
    BOOL,
    DUR,
    FLOAT,
    INT,
    MAP,
    OBJ,
    OBJMAP,
    OBJS,
    STR,
    STRS,
    STRSMAP,
    UINT,
    Field,
)

NS_PER = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_BLOCK_KINDS = (OBJ, OBJS, OBJMAP, ANY, STRSMAP)
#: object types created from a labelled block, and the field the label fills
_LABEL_FIELD = {
    "TaskGroup": "Name",
    "Task": "Name",
    "Port": "Label",
    "VolumeRequest": "Name",
    "SpreadTarget": "Value",
}
_CONSTRAINT_SHORTHAND = (
    "regexp",
    "version",
    "semver",
    "set_contains",
    "set_contains_all",
    "set_contains_any",
)


class JobspecError(ValueError):
    """A parse failure; the HTTP layer prefixes it with ``Failed to parse job: ``."""


def parse_duration(text: str) -> int:
    """Go ``time.ParseDuration`` to integer nanoseconds."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s == "0":
        return 0
    total, pos = 0.0, 0
    for m in _DUR_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * NS_PER[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * round(total)


def parse_job(hcl: str) -> dict[str, Any]:
    """Parse one ``job`` block to an ``api.Job`` dict; raise JobspecError like Nomad's parser."""
    if hcl.lstrip(" ").startswith("{"):
        raise JobspecError("the fake does not support the HCL JSON syntax; send native HCL")
    try:
        pygohcl.loads(hcl)  # the real HCL parser decides what is syntactically valid
        scanned = scan(hcl)
        values = pygohcl.loads(escape_interpolations(hcl, scanned.template_spans))
    except (pygohcl.HCLParseError, pygohcl.HCLInternalError) as exc:
        raise JobspecError(
            str(exc).replace("invalid HCL: ", "").replace("tmp.hcl", "input.hcl")
        ) from exc
    except HCLScanError as exc:
        raise JobspecError(str(exc)) from exc
    return _Converter().file(scanned.body, values)


def _err(node: Any, summary: str, detail: str = "") -> JobspecError:
    text = f"input.hcl:{node.line},{node.col}: {summary}"
    return JobspecError(f"{text}; {detail}" if detail else text)


class _Converter:
    """Walks the scanned block tree and the pygohcl values side by side."""

    def __init__(self) -> None:
        self.block_hooks: dict[
            tuple[str, str], Callable[[dict[str, Any], list[Block], list[dict[str, Any]]], None]
        ] = {
            ("NetworkResource", "port"): self._ports,
            ("Task", "identity"): self._identities,
            ("Job", "vault"): self._outer_vault,
            ("TaskGroup", "vault"): self._outer_vault,
        }

    # -- entry points ---------------------------------------------------------------------
    def file(self, body: Block, values: dict[str, Any]) -> dict[str, Any]:
        for attr in body.attrs:
            raise _err(
                attr,
                "Unsupported argument",
                f'An argument named "{attr.name}" is not expected here.',
            )
        for block in body.blocks:
            if block.type in ("variable", "locals"):
                raise _err(
                    block, "Unsupported block type", "HCL variables are not supported by the fake"
                )
            if block.type != "job":
                raise _err(
                    block,
                    "Unsupported block type",
                    f'Blocks of type "{block.type}" are not expected here.',
                )
        jobs = body.children("job")
        if len(jobs) != 1:
            raise JobspecError(
                "input.hcl: exactly one job block is required"
                if not jobs
                else "input.hcl: only one job block is allowed"
            )
        block = jobs[0]
        if len(block.labels) != 1:
            raise _err(block, "Missing name for job", "All job blocks must have 1 labels (name).")
        label = block.labels[0]
        job = self.obj("Job", block, values["job"][label])
        job["ID"] = job["ID"] if job["ID"] is not None else label
        job["Name"] = job["Name"] if job["Name"] is not None else label
        self._push_down_vault(job)
        return job

    # -- generic object conversion ----------------------------------------------------------
    def obj(self, typ: str, block: Block, values: dict[str, Any]) -> dict[str, Any]:
        out = schema.empty(typ)
        by_hcl = {fld.hcl: fld for fld in schema.OBJECTS[typ] if fld.hcl}
        attr_names = {a.name for a in block.attrs}
        for attr in block.attrs:
            if any(b.type == attr.name for b in block.blocks):
                raise _err(
                    attr,
                    "Duplicate definition",
                    f'"{attr.name}" is set both as an argument and as a block',
                )
            if typ in ("Constraint", "Affinity") and attr.name in (
                *_CONSTRAINT_SHORTHAND,
                "distinct_hosts",
                "distinct_property",
            ):
                self._constraint_shorthand(out, attr, values.get(attr.name))
                continue
            fld = by_hcl.get(attr.name)
            if fld is None:
                raise _err(
                    attr,
                    "Unsupported argument",
                    f'An argument named "{attr.name}" is not expected here.',
                )
            if fld.kind in _BLOCK_KINDS and not fld.either:
                raise _err(
                    attr,
                    "Unsupported argument",
                    f'An argument named "{attr.name}" is not expected here. Did you mean to define a block of type "{attr.name}"?',
                )
            out[fld.json] = self.value(fld, values.get(attr.name), attr)
        for btype, blocks in _group_by_type(block.blocks):
            bodies = _block_values(values, btype, blocks)
            hook = self.block_hooks.get((typ, btype))
            if hook is not None:
                hook(out, blocks, bodies)
                continue
            fld = by_hcl.get(btype)
            if (
                fld is None
                or (fld.kind not in _BLOCK_KINDS and not fld.either)
                or btype in attr_names
            ):
                raise _err(
                    blocks[0],
                    "Unsupported block type",
                    f'Blocks of type "{btype}" are not expected here.',
                )
            out[fld.json] = self.block_field(fld, blocks, bodies)
        _POST.get(typ, lambda o: None)(out)
        return out

    def block_field(self, fld: Field, blocks: list[Block], bodies: list[dict[str, Any]]) -> Any:
        if fld.kind in (OBJ, MAP, ANY, STRSMAP) and len(blocks) > 1:
            raise _err(
                blocks[1],
                f"Duplicate {blocks[1].type} block",
                f'Only one "{blocks[1].type}" block is allowed.',
            )
        sub = fld.obj or ""
        label_field = _LABEL_FIELD.get(sub)
        for b in blocks:
            want = 1 if label_field else 0
            if len(b.labels) != want:
                if want:
                    raise _err(
                        b,
                        f"Missing name for {b.type}",
                        f"All {b.type} blocks must have 1 labels (name).",
                    )
                raise _err(
                    b,
                    f"Extraneous label for {b.type}",
                    f"No labels are expected for {b.type} blocks.",
                )
        if fld.kind == MAP:
            return self.string_map(blocks[0], bodies[0])
        if fld.kind == STRSMAP:
            return self.header_map(blocks[0], bodies[0])
        if fld.kind == ANY:
            return self.free_form(blocks[0], bodies[0])
        items = []
        for b, body in zip(blocks, bodies, strict=True):
            item = self.obj(sub, b, body)
            if label_field:
                item[label_field] = b.labels[0]
            items.append(item)
        if fld.kind == OBJ:
            return items[0]
        if fld.kind == OBJMAP:
            return {item[label_field or "Name"]: item for item in items}
        return items

    # -- values ------------------------------------------------------------------------------
    def value(self, fld: Field, raw: Any, node: Any) -> Any:
        if raw is None:
            return schema.zero(fld)
        try:
            return _convert(fld.kind, raw)
        except (TypeError, ValueError) as exc:
            raise _err(
                node,
                "Incorrect attribute value type",
                f'Inappropriate value for attribute "{node.name}": {exc}.',
            ) from exc

    def string_map(self, block: Block, body: dict[str, Any]) -> dict[str, str]:
        if block.blocks:
            raise _err(
                block.blocks[0],
                "Unsupported block type",
                f'Blocks are not allowed inside "{block.type}".',
            )
        out = {}
        for attr in block.attrs:
            try:
                out[attr.name] = _convert(STR, body[attr.name])
            except (TypeError, ValueError) as exc:
                raise _err(attr, "Incorrect attribute value type", f"{exc}.") from exc
        return out

    def header_map(self, block: Block, body: dict[str, Any]) -> dict[str, list[str]]:
        if block.blocks:
            raise _err(
                block.blocks[0],
                "Unsupported block type",
                f'Blocks are not allowed inside "{block.type}".',
            )
        out = {}
        for attr in block.attrs:
            try:
                out[attr.name] = _convert(STRS, body[attr.name])
            except (TypeError, ValueError) as exc:
                raise _err(attr, "Incorrect attribute value type", f"{exc}.") from exc
        return out

    def free_form(self, block: Block, body: dict[str, Any]) -> dict[str, Any]:
        """``config {}``-like bodies: attributes pass through, nested blocks become lists."""
        out: dict[str, Any] = {a.name: body.get(a.name) for a in block.attrs}
        for btype, blocks in _group_by_type(block.blocks):
            for b in blocks:
                if b.labels:
                    raise _err(
                        b,
                        "Unsupported block",
                        "the fake does not support labelled blocks inside free-form bodies",
                    )
            bodies = _block_values(body, btype, blocks)
            out[btype] = [self.free_form(b, v) for b, v in zip(blocks, bodies, strict=True)]
        return out

    # -- special blocks ----------------------------------------------------------------------
    def _ports(
        self, out: dict[str, Any], blocks: list[Block], bodies: list[dict[str, Any]]
    ) -> None:
        fld = Field("ports", OBJS, "port", "Port")
        ports = self.block_field(fld, blocks, bodies)
        dynamic = [p for p in ports if not p["Value"]]
        reserved = [p for p in ports if p["Value"]]
        out["DynamicPorts"] = dynamic or None
        out["ReservedPorts"] = reserved or None

    def _identities(
        self, out: dict[str, Any], blocks: list[Block], bodies: list[dict[str, Any]]
    ) -> None:
        items = self.block_field(
            Field("Identities", OBJS, "identity", "WorkloadIdentity"), blocks, bodies
        )
        named = []
        for b, item in zip(blocks, items, strict=True):
            if item["Name"] in ("", "default"):
                if out["Identity"] is not None:
                    raise _err(
                        b, "Duplicate identity block", "only one default identity is allowed"
                    )
                out["Identity"] = item
            else:
                named.append(item)
        out["Identities"] = named or None

    def _outer_vault(
        self, out: dict[str, Any], blocks: list[Block], bodies: list[dict[str, Any]]
    ) -> None:
        vault = self.block_field(Field("Vault", OBJ, "vault", "Vault"), blocks, bodies)
        out["_vault"] = vault

    def _constraint_shorthand(self, out: dict[str, Any], attr: Any, raw: Any) -> None:
        value = self.value(Field(attr.name, STR), raw, attr)
        if attr.name == "distinct_hosts":
            out["Operand"], out["RTarget"] = "distinct_hosts", value
        elif attr.name == "distinct_property":
            out["Operand"], out["LTarget"] = "distinct_property", value
        else:
            out["Operand"], out["RTarget"] = attr.name, value

    def _push_down_vault(self, job: dict[str, Any]) -> None:
        job_vault = job.pop("_vault", None)
        for tg in job["TaskGroups"] or []:
            group_vault = tg.pop("_vault", None) or job_vault
            for task in tg["Tasks"] or []:
                if task["Vault"] is None and group_vault is not None:
                    task["Vault"] = copy.deepcopy(group_vault)


def _group_by_type(blocks: list[Block]) -> list[tuple[str, list[Block]]]:
    order: dict[str, list[Block]] = {}
    for b in blocks:
        order.setdefault(b.type, []).append(b)
    return list(order.items())


def _block_values(values: dict[str, Any], btype: str, blocks: list[Block]) -> list[dict[str, Any]]:
    """Align pygohcl's merged output with the block occurrences found by the scanner."""
    raw = values.get(btype)
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, b in enumerate(blocks):
        entry = raw
        if b.labels:
            entry = (raw or {}).get(b.labels[0])
            n = seen.get(b.labels[0], 0)
            seen[b.labels[0]] = n + 1
            if isinstance(entry, list):
                entry = entry[n]
        elif isinstance(entry, list):
            entry = entry[i]
        out.append(entry if isinstance(entry, dict) else {})
    return out


def _convert(kind: str, raw: Any) -> Any:  # noqa: C901 - one branch per kind
    if kind == STR:
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, (int, float)):
            return _number_text(raw)
        if isinstance(raw, str):
            return raw
        raise TypeError(f"string required, got {type(raw).__name__}")
    if kind in (INT, UINT):
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise TypeError(f"a whole number is required, got {raw!r}")
        if kind == UINT and raw < 0:
            raise ValueError(f"a non-negative number is required, got {raw}")
        return raw
    if kind == FLOAT:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise TypeError(f"number required, got {raw!r}")
        return raw
    if kind == BOOL:
        if not isinstance(raw, bool):
            raise TypeError(f"bool required, got {raw!r}")
        return raw
    if kind == DUR:
        if isinstance(raw, bool):
            raise TypeError("duration required, got bool")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str):
            return parse_duration(raw)
        raise TypeError(f"duration required, got {raw!r}")
    if kind == STRS:
        if not isinstance(raw, list):
            raise TypeError(f"list of string required, got {type(raw).__name__}")
        return [_convert(STR, x) for x in raw]
    if kind == MAP:
        if not isinstance(raw, dict):
            raise TypeError(f"map of string required, got {type(raw).__name__}")
        return {k: _convert(STR, x) for k, x in raw.items()}
    raise TypeError(f"unsupported kind {kind}")


def _number_text(n: float) -> str:
    if isinstance(n, float) and n.is_integer():
        return str(int(n))
    return str(n)


# -- per-type normalizations (jobspec2/parse_job.go) -----------------------------------------
def _post_template(t: dict[str, Any]) -> None:
    t["ChangeMode"] = t["ChangeMode"] or "restart"
    t["Perms"] = t["Perms"] if t["Perms"] is not None else "0644"
    t["Splay"] = t["Splay"] if t["Splay"] is not None else 5 * 10**9
    t["ErrMissingKey"] = bool(t["ErrMissingKey"])


def _post_change_script(c: dict[str, Any]) -> None:
    c["Args"] = c["Args"] if c["Args"] is not None else []
    c["Timeout"] = c["Timeout"] if c["Timeout"] is not None else 5 * 10**9
    c["FailOnError"] = bool(c["FailOnError"])
    c["RunOnFirstRender"] = bool(c["RunOnFirstRender"])


def _post_vault(vault: dict[str, Any]) -> None:
    vault["Env"] = True if vault["Env"] is None else vault["Env"]
    vault["DisableFile"] = bool(vault["DisableFile"])
    vault["ChangeMode"] = vault["ChangeMode"] or "restart"


def _post_constraint(c: dict[str, Any]) -> None:
    c["Operand"] = c["Operand"] or "="


def _post_periodic(p: dict[str, Any]) -> None:
    if p["Spec"] or p["Specs"]:
        p["SpecType"] = "cron"


def _post_scaling(s: dict[str, Any]) -> None:
    s["Type"] = s["Type"] or "horizontal"


_POST: dict[str, Callable[[dict[str, Any]], None]] = {
    "Template": _post_template,
    "ChangeScript": _post_change_script,
    "Vault": _post_vault,
    "Constraint": _post_constraint,
    "Affinity": _post_constraint,
    "PeriodicConfig": _post_periodic,
    "ScalingPolicy": _post_scaling,
}
