"""Domain service: custom hostnames routed to an app, besides its default APP.BASE_DOMAIN.

One hostname belongs to one app. Hosts of the form ``NAME.BASE_DOMAIN`` (one label under the
base domain) are reserved for apps' default hosts, so a custom domain can never take the
address of an app that exists now or is created later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from controller.db.models import App, Domain
from controller.errors import Conflict, InvalidParams, NotFound
from controller.names import check_hostname
from controller.runtime.base import Runtime
from controller.settings import Settings


@dataclass(frozen=True)
class DomainView:
    hostname: str
    app: str
    default: bool  # the app's own APP.BASE_DOMAIN host, which cannot be removed
    created_at: datetime | None


class DomainService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Any], runtime: Runtime) -> None:
        self.settings = settings
        self.sessions = sessions
        self.runtime = runtime
        # Called after a domain of the app was added or removed, when routes live in the app's
        # job (the nomad runtime: its routing tags) rather than in the local router.
        self.on_change: Callable[[App], None] | None = None

    def default_host(self, app: App) -> str:
        return f"{app.name}.{self.settings.base_domain}"

    def list(self, app: App) -> list[DomainView]:
        with self.sessions() as s:
            rows = s.scalars(
                select(Domain).where(Domain.app_id == app.id).order_by(Domain.hostname)
            ).all()
        own = DomainView(self.default_host(app), app.name, True, None)
        return [own, *(DomainView(d.hostname, app.name, False, d.created_at) for d in rows)]

    def add(self, app: App, hostname: object) -> DomainView:
        host = check_hostname(hostname)
        self._check_not_reserved(app, host)
        try:
            with self.sessions.begin() as s:
                taken = s.get(Domain, host)
                if taken is not None:
                    owner = s.get(App, taken.app_id)
                    who = (
                        "this app"
                        if taken.app_id == app.id
                        else f"the app {owner.name if owner else '?'}"
                    )
                    raise Conflict(f"The domain {host} is already routed to {who}.")
                row = Domain(hostname=host, app_id=app.id)
                s.add(row)
        except IntegrityError as exc:  # a concurrent add of the same host won
            raise Conflict(f"The domain {host} is already taken.") from exc
        self.runtime.apply_routes()
        if self.on_change is not None:
            self.on_change(app)
        return DomainView(host, app.name, False, row.created_at)

    def remove(self, app: App, hostname: str) -> DomainView:
        host = check_hostname(hostname)
        if host == self.default_host(app):
            raise InvalidParams(f"{host} is the app's default host; it cannot be removed.")
        with self.sessions.begin() as s:
            row = s.get(Domain, host)
            if row is None or row.app_id != app.id:
                raise NotFound(f"The domain {host} is not routed to {app.name}.")
            view = DomainView(host, app.name, False, row.created_at)
            s.delete(row)
        self.runtime.apply_routes()
        if self.on_change is not None:
            self.on_change(app)
        return view

    def _check_not_reserved(self, app: App, host: str) -> None:
        base = self.settings.base_domain.lower()
        if host == base:
            raise InvalidParams(
                f"{host} is the server's base domain; it cannot be an app's domain."
            )
        prefix, _, rest = host.partition(".")
        if rest == base:
            if prefix == app.name:
                raise Conflict(f"{host} is already {app.name}'s default host.")
            raise InvalidParams(
                f"{host} is reserved for an app named {prefix!r} (hosts NAME.{base} are apps' "
                "default hosts); use another domain."
            )
