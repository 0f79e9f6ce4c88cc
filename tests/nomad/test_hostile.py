"""No value can escape its HCL string: hostile commands, env values and meta go through the real
templates, the real HCL parser and the strict fake Nomad, and come back exactly as given, in the
job structure the template meant. Values with a meaning in a second language (domains in
Traefik rules and Fabio tags, paths in a Go template) are refused before rendering."""

from __future__ import annotations

from typing import Any

import pygohcl
import pytest

from controller.runtime.nomad.jobspec import (
    HealthCheck,
    JobSpecError,
    ReleaseJobSpec,
    render_app_job,
    render_release_job,
)
from tests.fakes import FakeCluster
from tests.nomad.samples import build_job, parse, register, typical_app
from tests.nomad.test_hcl import HOSTILE


def check_structure(hcl_text: str, job_id: str) -> None:
    """pygohcl sees one job block with the intended label, and nothing beside it."""
    parsed = pygohcl.loads(hcl_text)
    assert list(parsed) == ["job"]
    assert list(parsed["job"]) == [job_id]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_round_trip_through_the_fake(manual_cluster: FakeCluster, text: str) -> None:
    spec = typical_app(
        processes={"web": text, "worker": "run " + text},
        env={"HOSTILE": text, "PLAIN": "x"},
        description=text,
    )
    rendered = render_app_job(spec)
    check_structure(rendered, "shop")
    job = parse(manual_cluster, rendered)

    assert [tg["Name"] for tg in job["TaskGroups"]] == ["web", "worker"]
    for tg in job["TaskGroups"]:
        assert [t["Name"] for t in tg["Tasks"]] == [tg["Name"]]
    web, worker = (tg["Tasks"][0] for tg in job["TaskGroups"])
    assert web["Config"] == {
        "image": spec.image, "ports": ["http"], "args": ["/bin/sh", "-c", text],
    }  # fmt: skip
    assert worker["Config"]["args"] == ["/bin/sh", "-c", "run " + text]
    assert web["Env"] == {"HOSTILE": text, "PLAIN": "x", "PORT": "5000"}
    assert worker["Env"] == {"HOSTILE": text, "PLAIN": "x"}
    expected_meta = {
        "yurt_app": "shop",
        "yurt_release": "v7",
        "yurt_build": spec.build_id,
        "yurt_config_version": "3",
        "yurt_formation": spec.formation_text,
    }
    assert job["Meta"] == expected_meta | ({"yurt_description": text} if text else {})
    assert web["Templates"][0]["EmbeddedTmpl"] == spec.secret_env_template
    register(manual_cluster, job)


@pytest.mark.parametrize("text", [t for t in HOSTILE if t.strip()], ids=lambda t: repr(t)[:20])
def test_hostile_release_commands(manual_cluster: FakeCluster, text: str) -> None:
    spec = ReleaseJobSpec.for_app(typical_app(), text)
    rendered = render_release_job(spec)
    check_structure(rendered, "shop")
    job = parse(manual_cluster, rendered)
    ((task,),) = [tg["Tasks"] for tg in job["TaskGroups"]]
    assert task["Config"]["args"] == ["/bin/sh", "-c", text]


@pytest.mark.parametrize(
    "host",
    [
        "a`) || PathPrefix(`/",  # Traefik rule injection
        "shop.example/ redirect=301,https://evil",  # Fabio tag options
        'x"; } job "y" {',
        '${env("HOME")}.example',
        "Shop.Example.com",
        "shop..example",
        "-shop.example",
        "shop.example.",
        "*.example.com",
        "ünï.example",
        "shop.example\n",
        "",
        "a" * 64 + ".example",
    ],
)
def test_hostile_domains_are_refused(host: str) -> None:
    with pytest.raises(JobSpecError, match="domain"):
        typical_app(hosts=("ok.example.com", host))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kv_path": 'secret/data/shop?version=1" }}{{ with secret "secret/data/other'}, "KV v2"),
        ({"kv_path": "secret/data/shop }}{{ x"}, "KV v2"),
        ({"processes": {"web": "x", 'web" {': "y"}}, "process type"),
        ({"processes": {"web": "x", "wörker": "y"}}, "process type"),
        ({"app": 'shop" {'}, "app name"),
        ({"vault_role": 'yurt-app"\n'}, "cluster setting"),
        ({"env": {"A=B": "v"}}, "env var name"),
    ],
)
def test_values_with_a_second_meaning_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        typical_app(**overrides)


@pytest.mark.parametrize("path", ['/x" } job "y" {', "/x y", "/x\n", "x", "/${x}\t"])
def test_hostile_health_check_paths_are_refused(path: str) -> None:
    with pytest.raises(JobSpecError, match="health check path"):
        HealthCheck(path=path)


@pytest.mark.parametrize(
    "url", ['http://c/"; }', "http://c/${x}", "ftp://c", "http://c/a b", "http://c/\n"]
)
def test_hostile_controller_urls_are_refused(url: str) -> None:
    with pytest.raises(JobSpecError, match="controller URL"):
        build_job(controller_url=url)
