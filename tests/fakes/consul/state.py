"""The fake Consul's data: one node, a service catalog fed by the fake Nomad, and a KV store.

Shapes follow the Consul API docs [C:catalog.mdx, health.mdx, kv.mdx]:
``/v1/catalog/service/:name`` rows are flat (``ServiceAddress`` may be "", then ``Address``
applies), ``/v1/health/service/:name`` entries are ``{Node, Service, Checks}`` and include the
node's ``serfHealth`` check, ``?passing`` keeps only entries whose checks are all passing
(``warning`` is not passing). Services registered for Nomad allocations use Nomad's IDs
``_nomad-task-<alloc>-<task or group-G>-<service>-<port>`` and meta ``external-source: nomad``
[N:client/serviceregistration/id.go; N:command/agent/consul/service_client.go].

All methods must be called with the shared lock held (see ``tests.fakes.cluster``); every
write bumps the Consul raft index, which the HTTP layer uses for blocking queries.
"""

from __future__ import annotations

import base64
import copy
import threading
from dataclasses import dataclass, field
from typing import Any

NODE = "fake-node-1"
NODE_ADDRESS = "127.0.0.1"
DATACENTER = "dc1"


@dataclass
class KVEntry:
    key: str
    value: bytes
    flags: int
    create_index: int
    modify_index: int

    def api(self, with_value: bool = True) -> dict[str, Any]:
        return {
            "LockIndex": 0,
            "Key": self.key,
            "Flags": self.flags,
            "Value": base64.b64encode(self.value).decode() if with_value and self.value else None,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


@dataclass
class ServiceInstance:
    id: str
    name: str
    tags: list[str]
    address: str
    port: int
    meta: dict[str, str]
    checks: list[dict[str, Any]] = field(default_factory=list)
    create_index: int = 0
    modify_index: int = 0


class ConsulState:
    """Catalog and KV; guarded by the cluster-wide condition passed in."""

    def __init__(self, cond: threading.Condition) -> None:
        self.cond = cond
        self.index = 1
        self.catalog_index = 1
        self.kv_index = 1
        self.services: dict[str, ServiceInstance] = {}
        self.kv: dict[str, KVEntry] = {}
        self.serf_index = 1

    def _bump(self) -> int:
        self.index += 1
        self.cond.notify_all()
        return self.index

    # -- catalog ---------------------------------------------------------------------------
    def register(self, inst: ServiceInstance) -> None:
        idx = self._bump()
        old = self.services.get(inst.id)
        inst.create_index = old.create_index if old else idx
        inst.modify_index = idx
        for check in inst.checks:
            check.setdefault("CreateIndex", idx)
            check["ModifyIndex"] = idx
        self.services[inst.id] = inst
        self.catalog_index = idx

    def deregister(self, service_id: str) -> None:
        if self.services.pop(service_id, None) is not None:
            self.catalog_index = self._bump()

    def set_check_status(self, service_id: str, status: str, output: str = "") -> None:
        inst = self.services.get(service_id)
        if inst is None or all(c["Status"] == status for c in inst.checks):
            return
        idx = self._bump()
        for check in inst.checks:
            check["Status"], check["Output"], check["ModifyIndex"] = status, output, idx
        inst.modify_index = idx
        self.catalog_index = idx

    def service_index(self, name: str) -> int:
        rows = [s.modify_index for s in self.services.values() if s.name == name]
        return max(rows) if rows else self.catalog_index

    def catalog_services(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"consul": []}
        for inst in self.services.values():
            tags = out.setdefault(inst.name, [])
            tags.extend(t for t in inst.tags if t not in tags)
        return out

    def instances(self, name: str, tag: list[str]) -> list[ServiceInstance]:
        rows = [
            s for s in self.services.values() if s.name == name and all(t in s.tags for t in tag)
        ]
        return sorted(rows, key=lambda s: s.id)

    def catalog_service(self, name: str, tag: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "ID": "00000000-0000-0000-0000-000000000001",
                "Node": NODE,
                "Address": NODE_ADDRESS,
                "Datacenter": DATACENTER,
                "TaggedAddresses": {"lan": NODE_ADDRESS, "wan": NODE_ADDRESS},
                "NodeMeta": {"consul-network-segment": ""},
                "ServiceKind": "",
                "ServiceID": s.id,
                "ServiceName": s.name,
                "ServiceTags": list(s.tags),
                "ServiceAddress": s.address,
                "ServiceWeights": {"Passing": 1, "Warning": 1},
                "ServiceMeta": dict(s.meta),
                "ServicePort": s.port,
                "ServiceEnableTagOverride": False,
                "CreateIndex": s.create_index,
                "ModifyIndex": s.modify_index,
            }
            for s in self.instances(name, tag)
        ]

    def health_service(self, name: str, tag: list[str], passing: bool) -> list[dict[str, Any]]:
        out = []
        for s in self.instances(name, tag):
            checks = [self._serf_check(), *copy.deepcopy(s.checks)]
            if passing and any(c["Status"] != "passing" for c in checks):
                continue
            out.append(
                {
                    "Node": {"ID": "00000000-0000-0000-0000-000000000001", "Node": NODE, "Address": NODE_ADDRESS, "Datacenter": DATACENTER,
                             "TaggedAddresses": {"lan": NODE_ADDRESS, "wan": NODE_ADDRESS}, "Meta": {}, "CreateIndex": 1, "ModifyIndex": 1},
                    "Service": {"ID": s.id, "Service": s.name, "Tags": list(s.tags), "Address": s.address, "Meta": dict(s.meta),
                                "Port": s.port, "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
                                "CreateIndex": s.create_index, "ModifyIndex": s.modify_index},
                    "Checks": checks,
                }
            )  # fmt: skip
        return out

    def _serf_check(self) -> dict[str, Any]:
        return {
            "Node": NODE, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
            "Notes": "", "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "",
            "ServiceTags": [], "Type": "", "CreateIndex": 1, "ModifyIndex": self.serf_index,
        }  # fmt: skip

    # -- KV ----------------------------------------------------------------------------------
    def kv_get(self, key: str, recurse: bool) -> list[KVEntry]:
        if recurse:
            return [e for k, e in sorted(self.kv.items()) if k.startswith(key)]
        entry = self.kv.get(key)
        return [entry] if entry else []

    def kv_key_index(self, key: str, recurse: bool) -> int:
        rows = self.kv_get(key, recurse)
        return (
            max((e.modify_index for e in rows), default=self.kv_index)
            if not recurse
            else self.kv_index
        )

    def kv_put(self, key: str, value: bytes, flags: int, cas: int | None) -> bool:
        existing = self.kv.get(key)
        if cas is not None and (existing.modify_index if existing else 0) != cas:
            return False
        idx = self._bump()
        self.kv[key] = KVEntry(key, value, flags, existing.create_index if existing else idx, idx)
        self.kv_index = idx
        return True

    def kv_delete(self, key: str, recurse: bool, cas: int | None) -> bool:
        if cas is not None:
            existing = self.kv.get(key)
            if existing is None or existing.modify_index != cas:
                return False
        doomed = [k for k in self.kv if (k.startswith(key) if recurse else k == key)]
        if doomed:
            for k in doomed:
                del self.kv[k]
            self.kv_index = self._bump()
        return True
