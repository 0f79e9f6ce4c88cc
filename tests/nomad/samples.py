"""Job spec inputs shared by the tests, and helpers to send rendered HCL to the fake Nomad."""

from __future__ import annotations

from typing import Any

import requests

from controller.runtime.nomad.jobspec import (
    AppJobSpec,
    BuildJobSpec,
    HealthCheck,
    ReleaseJobSpec,
    Resources,
)
from tests.fakes import FakeCluster

DIGEST = "sha256:" + "3f" * 32
IMAGE = f"registry.service.consul:5000/shop@{DIGEST}"
BUILD_ID = "01J9Z3K8Q4W6E2R5T7Y9A1B3C5"


def typical_app(**overrides: Any) -> AppJobSpec:
    """web + worker, two hosts, config version 3, routed by Traefik and Fabio."""
    values: dict[str, Any] = {
        "app": "shop",
        "release": 7,
        "build_id": BUILD_ID,
        "image": IMAGE,
        "processes": {
            "web": "gunicorn shop.wsgi --bind 0.0.0.0:$PORT",
            "worker": "celery -A shop worker",
        },
        "formation": {"web": 2, "worker": 1},
        "hosts": ("shop.apps.example.com", "www.shop.example"),
        "router": "both",
        "health_check": HealthCheck(path="/healthz"),
        "config_version": 3,
        "resources": {"worker": Resources(cpu=300, memory=512, memory_max=768)},
        "description": "Deploy 1a2b3c4",
    }
    values.update(overrides)
    return AppJobSpec(**values)


def build_job(**overrides: Any) -> BuildJobSpec:
    values: dict[str, Any] = {
        "builder_image": "registry.service.consul:5000/yurt-builder:1",
        "controller_url": "http://192.168.56.11:7100",
    }
    values.update(overrides)
    return BuildJobSpec(**values)


def release_job(**overrides: Any) -> ReleaseJobSpec:
    return ReleaseJobSpec.for_app(typical_app(), "python manage.py migrate --noinput", **overrides)


def parse(cluster: FakeCluster, hcl: str) -> dict[str, Any]:
    """POST /v1/jobs/parse through python-nomad; the fake rejects anything gohcl would."""
    job: dict[str, Any] = cluster.nomad_client().jobs.parse(hcl)
    return job


def register(cluster: FakeCluster, job: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/jobs with the parsed job; the fake rejects unknown fields and wrong types."""
    resp = requests.post(f"{cluster.nomad_addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert resp.status_code == 200, resp.text
    reply: dict[str, Any] = resp.json()
    return reply


def registered(
    cluster: FakeCluster, job: dict[str, Any], version: int | None = None
) -> dict[str, Any]:
    """The job as the fake stored it (canonicalized), at ``version`` or the latest."""
    url = f"{cluster.nomad_addr}/v1/job/{job['ID']}"
    params = {"namespace": job["Namespace"]}
    if version is None:
        resp = requests.get(url, params=params, timeout=10)
        assert resp.status_code == 200, resp.text
        stored: dict[str, Any] = resp.json()
        return stored
    resp = requests.get(f"{url}/versions", params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    (match,) = [v for v in resp.json()["Versions"] if v["Version"] == version]
    return dict(match)
