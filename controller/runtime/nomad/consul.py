"""The small Consul client the nomad runtime needs: which instances of a service are healthy.

Built on py-consul, with two of its habits neutralised: it prefers ``$CONSUL_HTTP_TOKEN`` over
the ``token`` it is given, and reads ``CONSUL_HTTP_*`` variables for anything left out; here
every setting comes from ``NomadSettings`` (which ``from_env`` fills from the same variables).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import consul
import requests

from controller.errors import YurtError
from controller.runtime.nomad.client import NomadSettings

# Consul's aggregated status: the worst check wins (maintenance counts as worst).
_SEVERITY = {"passing": 0, "warning": 1, "critical": 2, "maintenance": 3}


class ConsulError(YurtError):
    """Consul could not be asked (down, refusing Yurt's token, failing): the API answers 502."""

    status = 502
    id = "consul_error"


@dataclass(frozen=True)
class ServiceInstance:
    """One registered instance of a service and its aggregated health (node checks included,
    as ``?passing`` and Traefik count them, reference §4, §5.1)."""

    id: str
    node: str
    address: str
    port: int
    tags: tuple[str, ...]
    status: str  # passing, warning, critical or maintenance
    meta: Mapping[str, str]

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ServiceInstance:
        service = entry.get("Service") or {}
        node = entry.get("Node") or {}
        checks = entry.get("Checks") or []
        status = max(
            (str(c.get("Status")) for c in checks),
            key=lambda s: _SEVERITY.get(s, _SEVERITY["critical"]),
            default="passing",
        )
        return cls(
            id=str(service.get("ID") or ""),
            node=str(node.get("Node") or ""),
            # An empty service address means the node's (§4).
            address=str(service.get("Address") or node.get("Address") or ""),
            port=int(service.get("Port") or 0),
            tags=tuple(service.get("Tags") or ()),
            status=status,
            meta=dict(service.get("Meta") or {}),
        )


class ConsulClient:
    def __init__(self, settings: NomadSettings) -> None:
        self.settings = settings
        url = urlsplit(settings.consul_addr)
        verify: bool | str = settings.consul_ca_cert or True
        self._consul = consul.Consul(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 8500),
            scheme=url.scheme,
            token=settings.consul_token,
            verify=verify,
            connections_timeout=settings.timeout,
        )
        self._consul.token = settings.consul_token  # py-consul let $CONSUL_HTTP_TOKEN win

    def service_health(self, name: str, passing: bool = True) -> list[ServiceInstance]:
        """Instances of service ``name``; with ``passing`` only those whose checks all pass."""
        with self._calling(f"health of service {name!r}"):
            _, entries = self._consul.health.service(name, passing=passing)
        return [ServiceInstance.from_entry(e) for e in entries or []]

    @contextmanager
    def _calling(self, call: str) -> Iterator[None]:
        try:
            yield
        except consul.ACLPermissionDenied as exc:
            raise self._error(call, f"403 {exc}") from None
        except consul.ConsulException as exc:
            raise self._error(call, str(exc)) from None
        except requests.RequestException as exc:
            reason = f"cannot reach Consul at {self.settings.consul_addr} ({type(exc).__name__})"
            raise self._error(call, reason) from None

    def _error(self, call: str, text: str) -> ConsulError:
        text = " ".join(text.split())[:2000]
        if self.settings.consul_token:
            text = text.replace(self.settings.consul_token, "<redacted>")
        return ConsulError(f"Consul {call} failed: {text}")
