"""Rendered job specs: golden files, the strict fake Nomad accepts them (parse + register), and
the JSON has what the runtime relies on."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pygohcl
import pytest
import requests

from controller.runtime.nomad import jobspec
from controller.runtime.nomad.jobspec import (
    AppJobSpec,
    HealthCheck,
    JobSpecError,
    render_app_job,
    render_build_job,
    render_release_job,
)
from tests.cluster.cluster_files import VAGRANT, read_env_file
from tests.fakes import FakeCluster
from tests.nomad.samples import (
    BUILD_ID,
    DIGEST,
    build_job,
    parse,
    register,
    registered,
    release_job,
    typical_app,
)

GOLDEN = Path(__file__).parent / "golden"

CASES: dict[str, Callable[[], str]] = {
    "app-typical": lambda: render_app_job(typical_app()),
    "app-web-only-traefik-tcp-no-config": lambda: render_app_job(
        typical_app(
            processes={"web": None},
            formation={"web": 1},
            hosts=("shop.apps.example.com",),
            router="traefik",
            health_check=HealthCheck(),
            config_version=None,
            resources={},
            description="",
        )
    ),
    "app-three-types-fabio": lambda: render_app_job(
        typical_app(
            processes={"web": "bin/web", "worker": "bin/worker", "clock": "bin/clock"},
            formation={"web": 3, "worker": 2},
            router="fabio",
        )
    ),
    "build": lambda: render_build_job(build_job()),
    "release": lambda: render_release_job(release_job(run="5f0c2a9e4b7d4c1e8a3b6d9f2e1c4a7b")),
}


def tasks(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["Name"]: t for tg in job["TaskGroups"] for t in tg["Tasks"]}


def groups(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tg["Name"]: tg for tg in job["TaskGroups"]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    """Set YURT_UPDATE_GOLDEN=1 to rewrite the files after an intended change, then review the diff."""
    rendered = CASES[name]()
    path = GOLDEN / f"{name}.hcl"
    if os.environ.get("YURT_UPDATE_GOLDEN") == "1":
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no {path.name}: run with YURT_UPDATE_GOLDEN=1 and review it"
    assert rendered == path.read_text(encoding="utf-8")
    pygohcl.loads(rendered)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fake_nomad_parses_and_registers(manual_cluster: FakeCluster, name: str) -> None:
    manual_cluster.create_namespace("yurt-release")  # as the cluster's provisioning does
    job = parse(manual_cluster, CASES[name]())
    reply = register(manual_cluster, job)
    assert reply["JobModifyIndex"] > 0
    assert registered(manual_cluster, job)["Version"] == 0


def test_app_job_json_has_what_the_runtime_relies_on(manual_cluster: FakeCluster) -> None:
    spec = typical_app()
    job = parse(manual_cluster, render_app_job(spec))
    assert (job["ID"], job["Namespace"], job["Type"]) == ("shop", "yurt", "service")
    assert job["Meta"] == {
        "yurt_app": "shop",
        "yurt_release": "v7",
        "yurt_build": BUILD_ID,
        "yurt_config_version": "3",
        "yurt_description": "Deploy 1a2b3c4",
        "yurt_formation": "web=2,worker=1",
    }
    web, worker = groups(job)["web"], groups(job)["worker"]
    assert [tg["Name"] for tg in job["TaskGroups"]] == ["web", "worker"]
    assert (web["Count"], worker["Count"]) == (2, 1)
    assert web["Update"]["Canary"] == 2 and web["Update"]["AutoPromote"] is True
    assert web["Update"]["AutoRevert"] is True and web["Update"]["HealthCheck"] == "checks"
    assert worker["Update"]["Canary"] is None and worker["Update"]["AutoRevert"] is True
    assert worker["Services"] is None and worker["Networks"] is None
    assert web["Networks"][0]["DynamicPorts"][0] | {"Value": 0} == {
        "Label": "http", "Value": 0, "To": 5000, "HostNetwork": "", "IgnoreCollision": False,
    }  # fmt: skip
    (service,) = web["Services"]
    assert (service["Name"], service["PortLabel"], service["Provider"]) == (
        "shop-web",
        "http",
        "consul",
    )
    assert service["CanaryTags"] is None  # canaries carry the production tags
    (check,) = service["Checks"]
    assert (check["Type"], check["Path"], check["CheckRestart"]["Limit"]) == ("http", "/healthz", 3)
    assert web["ShutdownDelay"] == 10 * 10**9
    for task in tasks(job).values():
        assert task["Config"]["image"] == f"registry.service.consul:5000/shop@{DIGEST}"
        assert task["Vault"]["Role"] == "yurt-app" and not task["Vault"]["Policies"]
        assert task["Vault"]["Env"] is False
        assert task["Identities"][0]["Name"] == "vault_default"
        assert task["Identities"][0]["Audience"] == ["vault.io"]
        (template,) = task["Templates"]
        assert 'secret "secret/data/yurt/apps/shop?version=3"' in template["EmbeddedTmpl"]
        assert (template["Envvars"], template["DestPath"]) == (True, "secrets/config.env")
        assert template["ChangeMode"] == "noop"
    assert tasks(job)["web"]["Env"] == {"PORT": "5000"}
    assert tasks(job)["web"]["Config"]["ports"] == ["http"]
    assert tasks(job)["worker"]["Config"]["args"] == ["/bin/sh", "-c", "celery -A shop worker"]
    resources = tasks(job)["worker"]["Resources"]
    assert (resources["CPU"], resources["MemoryMB"], resources["MemoryMaxMB"]) == (300, 512, 768)


def test_app_without_config_has_no_vault(manual_cluster: FakeCluster) -> None:
    for version in (None, 0):
        job = parse(manual_cluster, render_app_job(typical_app(config_version=version)))
        for task in tasks(job).values():
            assert (
                task["Vault"] is None and task["Templates"] is None and task["Identities"] is None
            )
        assert "yurt_config_version" not in job["Meta"]


def test_tcp_check_without_a_healthcheck_path(manual_cluster: FakeCluster) -> None:
    job = parse(manual_cluster, render_app_job(typical_app(health_check=HealthCheck())))
    (check,) = groups(job)["web"]["Services"][0]["Checks"]
    assert (check["Type"], check["Path"]) == ("tcp", "")


@pytest.mark.parametrize(
    ("router", "expected"),
    [
        ("traefik", ["traefik.enable=true",
                     "traefik.http.routers.shop-web.rule=Host(`shop.apps.example.com`) || Host(`www.shop.example`)",
                     "traefik.http.routers.shop-web.entrypoints=web"]),
        ("fabio", ["urlprefix-shop.apps.example.com/", "urlprefix-www.shop.example/"]),
    ],
)  # fmt: skip
def test_routing_tags_per_router(router: str, expected: list[str]) -> None:
    assert typical_app(router=router).routing_tags == expected
    assert typical_app(router="both").routing_tags == [
        *typical_app(router="traefik").routing_tags,
        *typical_app(router="fabio").routing_tags,
    ]
    assert typical_app(hosts=()).routing_tags == []


def test_routing_tags_are_identical_across_releases(manual_cluster: FakeCluster) -> None:
    """Traefik deletes a router whose instances disagree about it (reference §5.1): old and new
    instances run side by side during a deployment, so nothing release-specific may be a tag."""
    v7 = typical_app()
    v8 = typical_app(
        release=8,
        build_id="01J9Z4M2N6P8Q0R2S4T6V8W0X2",
        image="registry.service.consul:5000/shop@sha256:" + "c4" * 32,
        config_version=4,
        description="Set DATABASE_URL",
    )
    first = parse(manual_cluster, render_app_job(v7))
    second = parse(manual_cluster, render_app_job(v8))
    register(manual_cluster, first)
    register(manual_cluster, second)
    old, new = registered(manual_cluster, first, 0), registered(manual_cluster, second, 1)
    old_svc, new_svc = groups(old)["web"]["Services"][0], groups(new)["web"]["Services"][0]
    assert old_svc["Tags"] == new_svc["Tags"] == v7.routing_tags
    assert old_svc["Name"] == new_svc["Name"]
    assert (old_svc["Meta"]["yurt_release"], new_svc["Meta"]["yurt_release"]) == ("v7", "v8")
    assert old["Meta"]["yurt_release"] != new["Meta"]["yurt_release"]
    assert "?version=4" in tasks(new)["web"]["Templates"][0]["EmbeddedTmpl"]


def test_unchanged_release_inputs_still_make_a_new_version(manual_cluster: FakeCluster) -> None:
    """Same image and config, new release (e.g. a restart): the meta differs, so Nomad rolls out."""
    job = parse(manual_cluster, render_app_job(typical_app()))
    register(manual_cluster, job)
    again = parse(manual_cluster, render_app_job(typical_app(release=8)))
    register(manual_cluster, again)
    assert registered(manual_cluster, again)["Version"] == 1


def test_web_with_no_instances_has_no_canaries(manual_cluster: FakeCluster) -> None:
    job = parse(manual_cluster, render_app_job(typical_app(formation={"worker": 1})))
    update = groups(job)["web"]["Update"]
    assert (groups(job)["web"]["Count"], update["Canary"], update["AutoPromote"]) == (0, None, None)
    register(manual_cluster, job)


def test_build_job_json(manual_cluster: FakeCluster) -> None:
    job = parse(manual_cluster, render_build_job(build_job()))
    assert (job["ID"], job["Namespace"], job["Type"]) == ("yurt-build", "default", "batch")
    assert job["ParameterizedJob"] == {
        "Payload": "forbidden",
        "MetaRequired": ["app", "build_id", "commit", "image", "build_token"],
        "MetaOptional": ["buildpack", "stack_image"],
    }
    (group,) = job["TaskGroups"]
    assert group["RestartPolicy"]["Attempts"] == 0 and group["ReschedulePolicy"]["Attempts"] == 0
    (task,) = group["Tasks"]
    (artifact,) = task["Artifacts"]
    assert artifact["GetterSource"] == (
        "http://192.168.56.11:7100/internal/builds/${NOMAD_META_build_id}/source.tar.gz"
    )
    # The token is a run-time reference to dispatch meta, never a value in the spec.
    assert artifact["GetterHeaders"] == {"Authorization": "Bearer ${NOMAD_META_build_token}"}
    assert task["Config"] == {"image": "registry.service.consul:5000/yurt-builder:1"}


def test_build_job_dispatches_with_the_required_meta(manual_cluster: FakeCluster) -> None:
    register(manual_cluster, parse(manual_cluster, render_build_job(build_job())))
    meta = {
        "app": "shop",
        "build_id": BUILD_ID,
        "commit": "1a2b3c4d",
        "image": "r/shop:1",
        "build_token": "t",
    }
    # Not python-nomad's dispatch_job: it sends idempotency_token in the body, which Nomad
    # ignores (it is a query parameter) and the fake refuses.
    resp = requests.post(
        f"{manual_cluster.nomad_addr}/v1/job/yurt-build/dispatch",
        params={"idempotency_token": "1a2b3c4d"},
        json={"Meta": meta},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    child = manual_cluster.nomad_client().job.get_job(resp.json()["DispatchedJobID"])
    assert child["Meta"] == {"yurt_kind": "build", **meta}


def test_release_job_json(manual_cluster: FakeCluster) -> None:
    job = parse(manual_cluster, render_release_job(release_job(run="r1")))
    # the app's job ID (Vault's policy is keyed on nomad_job_id) in the release namespace
    assert (job["ID"], job["Namespace"], job["Type"]) == ("shop", "yurt-release", "batch")
    assert job["Meta"]["yurt_release"] == "v7" and job["Meta"]["yurt_run"] == "r1"
    assert "yurt_run" not in parse(manual_cluster, render_release_job(release_job()))["Meta"]
    (group,) = job["TaskGroups"]
    assert group["RestartPolicy"]["Attempts"] == 0 and group["ReschedulePolicy"]["Attempts"] == 0
    (task,) = group["Tasks"]
    assert task["Config"]["args"] == ["/bin/sh", "-c", "python manage.py migrate --noinput"]
    assert task["Config"]["image"].endswith(DIGEST)
    assert task["Vault"]["Role"] == "yurt-app"
    assert "?version=3" in task["Templates"][0]["EmbeddedTmpl"]


def test_restart_nonces_are_group_meta(manual_cluster: FakeCluster) -> None:
    job = parse(manual_cluster, render_app_job(typical_app(restarts={"worker": "n1"})))
    assert groups(job)["worker"]["Meta"] == {"yurt_restart": "n1"}
    assert groups(job)["web"]["Meta"] is None
    with pytest.raises(JobSpecError, match="unknown process type 'clock'"):
        typical_app(restarts={"clock": "n1"})


def test_defaults_are_the_cluster_contract() -> None:
    contract = read_env_file(VAGRANT / "cluster.env")
    spec = typical_app()
    assert spec.namespace == contract["YURT_NOMAD_NAMESPACE"]
    assert spec.datacenters == (contract["YURT_DATACENTER"],)
    assert spec.vault_role == contract["YURT_VAULT_ROLE"]
    assert spec.vault_audience == contract["YURT_VAULT_AUDIENCE"]
    assert spec.kv_path == f"{contract['YURT_KV_MOUNT']}/data/{contract['YURT_KV_PREFIX']}/shop"
    assert spec.job_id == "shop"  # the Vault policy scopes secrets by nomad_job_id
    assert spec.traefik_entrypoints == (contract["YURT_TRAEFIK_ENTRYPOINT"],)
    assert build_job().registry == contract["YURT_REGISTRY_ADDR"]


# -- the template environment ---------------------------------------------------------------------


class Missing:
    """A spec proxy that lacks one attribute, as a typo in a template would."""

    def __init__(self, spec: AppJobSpec, name: str) -> None:
        self._spec, self._name = spec, name

    def __getattr__(self, name: str) -> Any:
        if name == self._name:
            raise AttributeError(name)
        return getattr(self._spec, name)


@pytest.mark.parametrize(
    "name",
    ["job_id", "namespace", "datacenters", "job_meta", "groups", "deploy", "web_port",
     "service_name", "routing_tags", "health_check", "image", "has_config", "vault_role",
     "secret_env_template"],
)  # fmt: skip
def test_a_missing_value_is_an_error_not_an_empty_string(name: str) -> None:
    with pytest.raises(jinja2.UndefinedError, match=name):
        jobspec.render("app.nomad.hcl.j2", spec=Missing(typical_app(), name))


def test_partials_are_never_rendered_alone() -> None:
    for partial in sorted(p.name for p in jobspec.jobspecs_dir().glob("_*.j2")):
        with pytest.raises(ValueError, match="partial"):
            jobspec.render(partial, spec=typical_app())


def test_every_printed_value_goes_through_hcl() -> None:
    env = jobspec._environment()
    with pytest.raises(jinja2.TemplateError, match="hcl-quoted"):
        env.from_string('x = "[[ name ]]"').render(name="a")
    with pytest.raises(jinja2.TemplateAssertionError, match="default"):
        env.from_string("x = [[ name | default('') | hcl ]]")
    assert (
        env.from_string("x = [[ name | hcl ]] # {{ go }}").render(name="a") == 'x = "a" # {{ go }}'
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image": "registry.service.consul:5000/shop:latest"}, "pinned by digest"),
        ({"processes": {"web": "x", "bad type": "y"}}, "process type"),
        ({"formation": {"web": 1, "ghost": 1}}, "unknown process type"),
        ({"formation": {"web": -1}}, "invalid count"),
        ({"router": "nginx"}, "router must be"),
        ({"release": 0}, "release versions"),
        ({"build_id": "not-a-ulid"}, "build id"),
        ({"kv_path": 'secret/data/a" }}{{ x'}, "KV v2"),
        ({"env": {"BAD-KEY": "v"}}, "env var name"),
        ({"env": {"PORT": "1"}}, "PORT"),
        ({"job_id": "Shop_1"}, "DNS labels"),
    ],
)
def test_invalid_inputs_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        typical_app(**overrides)
