"""HCL -> API JSON conversion of the fake's /v1/jobs/parse (reference: mapping table)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.nomad.jobspec import JobspecError, parse_duration, parse_job

GOLDEN = Path(__file__).parent / "golden"


def job(body: str, header: str = 'job "app" {') -> dict[str, Any]:
    return parse_job(f"{header}\n{body}\n}}\n")


def group(body: str) -> dict[str, Any]:
    parsed = job(f'group "g" {{\n{body}\ntask "t" {{\ndriver = "docker"\n}}\n}}')
    return parsed["TaskGroups"][0]


def task(body: str) -> dict[str, Any]:
    parsed = job(f'group "g" {{\ntask "t" {{\ndriver = "docker"\n{body}\n}}\n}}')
    return parsed["TaskGroups"][0]["Tasks"][0]


@pytest.mark.parametrize("name", ["web", "build"])
def test_golden_examples(name: str) -> None:
    parsed = parse_job((GOLDEN / f"{name}.nomad.hcl").read_text())
    golden = GOLDEN / f"{name}.parse.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(parsed, indent=2, sort_keys=True) + "\n")
    assert parsed == json.loads(golden.read_text())


def test_service_job_mapping_highlights() -> None:
    parsed = parse_job((GOLDEN / "web.nomad.hcl").read_text())
    tg = parsed["TaskGroups"][0]
    t = tg["Tasks"][0]
    assert (
        parsed["ID"],
        parsed["Name"],
        parsed["Update"]["Canary"],
        parsed["Update"]["MinHealthyTime"],
    ) == ("yurt-myapp", "yurt-myapp", 1, 10 * 10**9)
    assert tg["Networks"][0]["DynamicPorts"] == [
        {"Label": "http", "Value": 0, "To": 5000, "HostNetwork": "", "IgnoreCollision": False}
    ]
    assert tg["Networks"][0]["ReservedPorts"] is None
    svc = tg["Services"][0]
    assert (
        svc["PortLabel"] == "http"
        and svc["Checks"][0]["Interval"] == 10 * 10**9
        and svc["CanaryTags"] == ["canary"]
    )
    assert svc["Tags"][1] == "traefik.http.routers.myapp.rule=Host(`myapp.example.com`)"
    assert t["Env"] == {"PORT": "${NOMAD_PORT_http}"}  # run-time interpolation kept verbatim
    assert t["Config"]["auth"] == [
        {"username": "yurt", "password": "secret"}
    ]  # nested config block -> list
    assert (
        t["Templates"][0]["Envvars"] is True
        and t["Templates"][0]["Perms"] == "0644"
        and t["Templates"][0]["Splay"] == 5 * 10**9
    )
    assert "{{ $k }}={{ $v | toJSON }}" in t["Templates"][0]["EmbeddedTmpl"]
    assert t["Vault"] == {
        "Policies": None, "Role": "yurt-apps", "Namespace": None, "Cluster": "", "Env": True, "DisableFile": False,
        "ChangeMode": "restart", "ChangeSignal": None, "AllowTokenExpiration": None,
    }  # fmt: skip
    assert (
        t["Identity"] is None
        and t["Identities"][0]["Name"] == "vault_default"
        and t["Identities"][0]["TTL"] == 3600 * 10**9
    )
    assert t["LogConfig"]["MaxFiles"] == 5 and t["Resources"]["MemoryMaxMB"] == 512


def test_parameterized_job_mapping() -> None:
    parsed = parse_job((GOLDEN / "build.nomad.hcl").read_text())
    assert parsed["ParameterizedJob"] == {
        "Payload": "forbidden",
        "MetaRequired": ["app", "build_id", "commit", "image"],
        "MetaOptional": ["cache_ref"],
    }
    art = parsed["TaskGroups"][0]["Tasks"][0]["Artifacts"][0]
    assert art["RelativeDest"] == "local/src" and art["GetterOptions"] == {"archive": "tar.gz"}


def test_normalizations() -> None:
    tg = group('network {\nport "db" {\nstatic = 5432\n}\nport "http" {}\n}')
    assert tg["Networks"][0]["ReservedPorts"][0]["Value"] == 5432
    assert [p["Label"] for p in tg["Networks"][0]["DynamicPorts"]] == ["http"]
    t = task('identity {\naud = ["x"]\n}\nlifecycle {\nhook = "prestart"\n}')
    assert (
        t["Identity"]["Audience"] == ["x"]
        and t["Identities"] is None
        and t["Lifecycle"]["Hook"] == "prestart"
    )
    parsed = job(
        'vault {\nrole = "r"\n}\ngroup "g" {\ntask "a" {\ndriver = "x"\n}\ntask "b" {\ndriver = "x"\nvault {\nrole = "own"\n}\n}\n}'
    )
    assert [t["Vault"]["Role"] for t in parsed["TaskGroups"][0]["Tasks"]] == [
        "r",
        "own",
    ]  # copied, not merged
    assert "_vault" not in parsed
    parsed = job(
        'constraint {\ndistinct_hosts = true\n}\nconstraint {\nattribute = "${meta.rack}"\nregexp = "^a"\n}\nperiodic {\ncron = "@daily"\n}\n'
    )
    assert [(c["Operand"], c["RTarget"]) for c in parsed["Constraints"]] == [
        ("distinct_hosts", "true"),
        ("regexp", "^a"),
    ]
    assert parsed["Periodic"]["SpecType"] == "cron"
    assert group("scaling {\nmax = 3\n}")["Scaling"]["Type"] == "horizontal"


def test_meta_block_and_attribute_forms_and_source_order() -> None:
    assert job('meta = {\na = "1"\nb = 2\n}')["Meta"] == {"a": "1", "b": "2"}
    assert job("meta {\nflag = true\n}")["Meta"] == {"flag": "true"}
    parsed = job(
        'group "zz" {\ntask "t" {\ndriver = "x"\n}\n}\ngroup "aa" {\ntask "t" {\ndriver = "x"\n}\n}'
    )
    assert [g["Name"] for g in parsed["TaskGroups"]] == ["zz", "aa"]  # source order, not sorted


def test_strings_and_escapes() -> None:
    t = task(
        'env {\nA = "$${NOT_INTERPOLATED}"\nB = "x-${node.unique.id}-y"\nC = "say \\"hi\\""\n}'
    )
    assert t["Env"] == {"A": "${NOT_INTERPOLATED}", "B": "x-${node.unique.id}-y", "C": 'say "hi"'}


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400 * 10**9
    assert parse_duration("250ms") == 250 * 10**6
    assert parse_duration("0") == 0
    with pytest.raises(ValueError):
        parse_duration("10")
    assert task("kill_timeout = 1000")["KillTimeout"] == 1000  # a bare number is nanoseconds


@pytest.mark.parametrize(
    ("hcl", "message"),
    [
        ("bogus = 1", 'An argument named "bogus" is not expected here'),
        ("bogus {\n}", 'Blocks of type "bogus" are not expected here'),
        ("update = {\nmax_parallel = 1\n}", 'Did you mean to define a block of type "update"?'),
        ('datacenters = "dc1"', "list of string required"),
        ('priority = "50"', "a whole number is required"),
        ('update {\nauto_revert = "yes"\n}', "bool required"),
        ('update {\nmin_healthy_time = "10 seconds"\n}', "invalid duration"),
        ("update {\n}\nupdate {\n}", 'Only one "update" block is allowed'),
        ('update "x" {\n}', "No labels are expected for update blocks"),
        ("group {\n}", "All group blocks must have 1 labels"),
        ("priority = 50 + 1", "accepts only literal values"),
        ('region = upper("x")', "accepts only literal values"),
        ("region = var.region", "accepts only literal values"),
        ('region = "${var.region}"', "HCL variables are not supported"),
        ('region = "${upper("x")}"', "plain run-time references"),
        ('region = "%{ if true }x%{ endif }"', "no %{ } directives"),
        ('meta {\na = "1"\n}\nmeta = {\nb = "2"\n}', "both as an argument and as a block"),
        (
            'group "g" {\ntask "t" {\ndriver = "x"\nconfig = {\nimage = "y"\n}\n}\n}',
            'block of type "config"',
        ),
        (
            'group "g" {\ntask "t" {\ndriver = "x"\nscaling "cpu" {\nmax = 1\n}\n}\n}',
            'Blocks of type "scaling"',
        ),
    ],
)
def test_rejects(hcl: str, message: str) -> None:
    with pytest.raises(JobspecError, match=None) as err:
        job(hcl)
    assert message in str(err.value)
    assert str(err.value).startswith("input.hcl:")


def test_rejects_bad_syntax_and_file_shape() -> None:
    with pytest.raises(JobspecError, match="Invalid single-argument block definition"):
        parse_job('job "x" { type = "service" group "g" {} }')  # [I:hashicorp/nomad#15386]
    with pytest.raises(JobspecError, match="only one job block"):
        parse_job('job "a" {\n}\njob "b" {\n}\n')
    with pytest.raises(JobspecError, match="HCL variables"):
        parse_job('variable "x" {\n}\njob "a" {\n}\n')
    with pytest.raises(JobspecError, match="HCL JSON syntax"):
        parse_job('{"job": {}}')
