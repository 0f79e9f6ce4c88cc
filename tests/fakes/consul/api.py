"""HTTP routes of the fake Consul agent: catalog, health, KV, a minimal agent/self.

Blocking queries use ``X-Consul-Index`` with ``?index=&wait=`` [C:features/blocking.mdx]; KV
values are base64 in JSON, ``?raw`` returns the bytes, ``PUT`` answers ``true``/``false`` and
``?cas=0`` means create-only [C:kv.mdx]. Tokens: ``X-Consul-Token``, ``Authorization: Bearer``
or ``?token=`` [C:api-structure.mdx]. Stricter than Consul: with an ACL token configured, any
request without a valid token is 403 (real Consul's anonymous token may filter lists to empty
instead), and unsupported query parameters (``filter``, ``near``, ``node-meta``...) are 400.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..httpbase import HTTPError, Request, Response, Router, parse_wait, wait_for_index
from .state import DATACENTER, ConsulState

QUERY = {"dc", "index", "wait", "stale", "consistent", "cached", "token", "pretty", "ns"}


class ConsulAPI:
    def __init__(self, state: ConsulState, stopped: threading.Event, token: str | None) -> None:
        self.state = state
        self.cond = state.cond
        self.stopped = stopped
        self.token = token
        r = self.router = Router()
        r.add(r"/v1/catalog/services", "GET", self.services)
        r.add(r"/v1/catalog/service/(.+)", "GET", self.catalog_service)
        r.add(r"/v1/health/service/(.+)", "GET", self.health_service)
        r.add(r"/v1/kv/(.*)", "GET", self.kv_get)
        r.add(r"/v1/kv/(.*)", "PUT", self.kv_put)
        r.add(r"/v1/kv/(.*)", "DELETE", self.kv_delete)
        r.add(r"/v1/agent/self", "GET", self.agent_self)
        r.add(r"/v1/status/leader", "GET", lambda req: Response.json("127.0.0.1:8300"))

    def __call__(self, req: Request) -> Response:
        self._auth(req)
        dc = req.arg("dc")
        if dc and dc != DATACENTER:
            raise HTTPError(500, "No path to datacenter")
        return self.router.dispatch(req)

    def _auth(self, req: Request) -> None:
        if self.token is None:
            return
        given = req.headers.get("x-consul-token") or req.arg("token") or ""
        auth = req.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            raise HTTPError(403, "Permission denied")
        if given != self.token:
            raise HTTPError(403, "ACL not found")

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
        headers = {
            "X-Consul-Index": str(index),
            "X-Consul-KnownLeader": "true",
            "X-Consul-LastContact": "0",
        }
        if isinstance(data, Response):
            data.headers.update(headers)
            return data
        return Response.json(data, headers=headers)

    def services(self, req: Request) -> Response:
        return self._query(req, lambda: self.state.catalog_index, self.state.catalog_services)

    def catalog_service(self, req: Request, name: str) -> Response:
        tags = req.query.get("tag", [])
        return self._query(
            req,
            lambda: self.state.service_index(name),
            lambda: self.state.catalog_service(name, tags),
            frozenset({"tag"}),
        )

    def health_service(self, req: Request, name: str) -> Response:
        tags = req.query.get("tag", [])
        passing = req.has("passing") and req.arg("passing") not in ("false", "0")
        return self._query(req, lambda: self.state.service_index(name), lambda: self.state.health_service(name, tags, passing),
                           frozenset({"tag", "passing"}))  # fmt: skip

    def agent_self(self, req: Request) -> Response:
        req.check_params({"token", "pretty"})
        return Response.json({
            "Config": {"Datacenter": DATACENTER, "NodeName": "fake-node-1", "NodeID": "00000000-0000-0000-0000-000000000001",
                       "Server": True, "Version": "1.20.0", "Revision": "fake"},
            "Member": {"Name": "fake-node-1", "Addr": "127.0.0.1", "Port": 8301, "Status": 1},
            "Meta": {},
        })  # fmt: skip

    def kv_get(self, req: Request, key: str) -> Response:
        recurse, keys, raw = req.has("recurse"), req.has("keys"), req.has("raw")
        separator = req.arg("separator") or ""

        def produce() -> Any:
            if keys:
                found = sorted({_cut(e.key, key, separator) for e in self.state.kv_get(key, True)})
                if not found:
                    return Response(404, b"")
                return found
            rows = self.state.kv_get(key, recurse)
            if not rows:
                return Response(404, b"")
            if raw:
                return Response(200, rows[0].value, {"Content-Type": "application/octet-stream"})
            return [e.api() for e in rows]

        return self._query(req, lambda: self.state.kv_key_index(key, recurse or keys), produce,
                           frozenset({"recurse", "keys", "separator", "raw"}))  # fmt: skip

    def kv_put(self, req: Request, key: str) -> Response:
        req.check_params({"dc", "cas", "flags", "token", "pretty", "ns"})
        if not key:
            raise HTTPError(400, "Missing key name")
        if len(req.body) > 512 * 1024:
            raise HTTPError(413, "Value exceeds 524288 byte limit")
        cas, flags = req.int_arg("cas"), req.int_arg("flags") or 0
        with self.cond:
            ok = self.state.kv_put(key, req.body, flags, cas)
        return Response.json(ok)

    def kv_delete(self, req: Request, key: str) -> Response:
        req.check_params({"dc", "cas", "recurse", "token", "pretty", "ns"})
        with self.cond:
            ok = self.state.kv_delete(key, req.has("recurse"), req.int_arg("cas"))
        return Response.json(ok)


def _cut(full: str, prefix: str, separator: str) -> str:
    if not separator:
        return full
    rest = full[len(prefix) :]
    pos = rest.find(separator)
    return full if pos < 0 else full[: len(prefix) + pos + len(separator)]
