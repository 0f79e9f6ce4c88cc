"""Turn service views into the API's JSON shapes (one place, so the API stays consistent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controller.apps.service import AppView
from controller.builds.service import BuildView
from controller.domains.service import DomainView
from controller.keys.service import KeyView
from controller.releases.service import ReleaseView
from controller.runtime.base import ProcessView


def ts(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def app_json(app: AppView) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "buildpack": app.buildpack,
        "git_url": app.git_url,
        "ssh_git_url": app.ssh_git_url,
        "web_url": app.web_url,
        "current_release": f"v{app.current_release}" if app.current_release else None,
        "formation": app.formation,
        "stopped": app.stopped,
        "processes": app.processes,
        "created_at": ts(app.created_at),
        "updated_at": ts(app.updated_at),
    }


def build_json(build: BuildView) -> dict[str, Any]:
    slug = None
    if build.slug_size is not None:
        slug = {"size": build.slug_size, "checksum": build.slug_checksum}
    return {
        "id": build.id,
        "app": build.app,
        "status": build.status,
        "commit": build.commit,
        "ref": build.ref,
        "buildpack": build.buildpack,
        "error": build.error,
        "slug": slug,
        "image": build.image,
        "process_types": build.process_types,
        "created_at": ts(build.created_at),
        "started_at": ts(build.started_at),
        "finished_at": ts(build.finished_at),
    }


def key_json(key: KeyView) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "fingerprint": key.fingerprint,
        "public_key": key.public_key,
        "created_at": ts(key.created_at),
    }


def release_json(r: ReleaseView) -> dict[str, Any]:
    return {
        "id": r.id,
        "app": r.app,
        "version": r.version,
        "name": f"v{r.version}",
        "description": r.description,
        "status": r.status,
        "current": r.current,
        "build_id": r.build_id,
        "commit": r.commit,
        "slug_checksum": r.slug_checksum,
        "image": r.image,
        "process_types": r.process_types,
        "config_version": r.config_version,
        "error": r.error,
        "created_at": ts(r.created_at),
        "finished_at": ts(r.finished_at),
    }


def process_json(p: ProcessView) -> dict[str, Any]:
    return {
        "type": p.type,
        "number": p.number,
        "name": f"{p.type}.{p.number}",
        "state": p.state,
        "release": f"v{p.release}",
        "started_at": ts(p.started_at),
        "restarts": p.restarts,
        "exit_status": p.exit_status,
        "port": p.port,
    }


def domain_json(d: DomainView) -> dict[str, Any]:
    return {
        "hostname": d.hostname,
        "app": d.app,
        "default": d.default,
        "created_at": ts(d.created_at),
    }
