"""The fake Consul through py-consul: catalog and health fed by allocations, KV, blocking, ACLs."""

from __future__ import annotations

import threading
import time
from typing import Any

import consul
import pytest
import requests

from tests.fakes import FakeCluster

JOB = """
job "shop" {
  group "web" {
    count = 2
    network {
      port "http" {}
    }
    service {
      name = "shop"
      port = "http"
      tags = ["traefik.enable=true", "urlprefix-shop.test/"]
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "web" {
      driver = "docker"
      config {
        image = "shop:1"
      }
    }
  }
}
"""


def deploy(cluster: FakeCluster) -> None:
    n = cluster.nomad_client()
    n.jobs.register_job({"Job": n.jobs.parse(JOB)})


def test_catalog_and_health_follow_allocations(manual_cluster: FakeCluster) -> None:
    c = manual_cluster.consul_client()
    manual_cluster.set_outcome("shop", "web", "unhealthy")
    deploy(manual_cluster)
    manual_cluster.advance()
    index, services = c.catalog.services()
    assert services["shop"] == ["traefik.enable=true", "urlprefix-shop.test/"]
    _, rows = c.catalog.service("shop")
    allocs = {a["ID"]: a for a in manual_cluster.allocations("shop")}
    assert len(rows) == 2
    for row in rows:
        alloc_id = row["ServiceID"].removeprefix("_nomad-task-")[:36]
        assert row["ServiceID"] == f"_nomad-task-{alloc_id}-group-web-shop-http"
        assert (
            alloc_id in allocs
            and row["ServiceAddress"] == "127.0.0.1"
            and row["ServicePort"] >= 20000
        )
        assert row["ServiceMeta"] == {"external-source": "nomad"}
    _, entries = c.health.service("shop")
    assert [[ch["Status"] for ch in e["Checks"]] for e in entries] == [["passing", "critical"]] * 2
    assert c.health.service("shop", passing=True)[1] == []
    _, tagged = c.catalog.service("shop", tag="urlprefix-shop.test/")
    assert len(tagged) == 2
    n = manual_cluster.nomad_client()
    n.job.deregister_job("shop")
    assert c.catalog.service("shop")[1] == [] and int(c.catalog.services()[0]) > int(index)


def test_blocking_health_query_wakes_on_registration() -> None:
    with FakeCluster(tick=0.01) as cluster:
        c = cluster.consul_client()
        index, _ = c.health.service("shop", passing=True)
        result: dict[str, Any] = {}

        def watch() -> None:
            result["value"] = c.health.service("shop", passing=True, index=index, wait="5s")

        watcher = threading.Thread(target=watch)
        watcher.start()
        time.sleep(0.1)
        deploy(cluster)
        watcher.join(timeout=10)
        new_index, entries = result["value"]
        assert int(new_index) > int(index) and entries


def test_kv_roundtrip_cas_and_recurse(manual_cluster: FakeCluster) -> None:
    c = manual_cluster.consul_client()
    assert c.kv.get("yurt/apps/shop/lock")[1] is None
    assert c.kv.put("yurt/apps/shop/lock", "owner-1", cas=0) is True
    assert c.kv.put("yurt/apps/shop/lock", "owner-2", cas=0) is False  # cas=0: create only
    _, entry = c.kv.get("yurt/apps/shop/lock")
    assert entry["Value"] == b"owner-1"  # py-consul decodes the base64 value
    assert c.kv.put("yurt/apps/shop/lock", "owner-2", cas=entry["ModifyIndex"] + 1) is False
    assert c.kv.put("yurt/apps/shop/lock", "owner-2", cas=entry["ModifyIndex"]) is True
    c.kv.put("yurt/apps/shop/config/a", "1")
    c.kv.put("yurt/apps/other", b"\x00\xff")
    _, rows = c.kv.get("yurt/apps/shop/", recurse=True)
    assert [r["Key"] for r in rows] == ["yurt/apps/shop/config/a", "yurt/apps/shop/lock"]
    _, keys = c.kv.get("yurt/apps/", keys=True, separator="/")
    assert keys == ["yurt/apps/other", "yurt/apps/shop/"]
    raw = requests.get(f"{manual_cluster.consul_addr}/v1/kv/yurt/apps/other?raw", timeout=10)
    assert raw.content == b"\x00\xff"
    assert (
        requests.get(f"{manual_cluster.consul_addr}/v1/kv/missing", timeout=10).status_code == 404
    )
    assert c.kv.delete("yurt/apps/shop/lock", cas=1) is False
    assert c.kv.delete("yurt/apps/shop/", recurse=True) is True
    assert c.kv.get("yurt/apps/shop/", recurse=True)[1] is None


def test_blocking_kv_get() -> None:
    with FakeCluster(tick=None) as cluster:
        c = cluster.consul_client()
        c.kv.put("k", "1")
        index, _ = c.kv.get("k")
        start = time.monotonic()
        same, _ = c.kv.get("k", index=index, wait="200ms")
        assert same == index and time.monotonic() - start >= 0.15
        threading.Timer(0.1, lambda: c.kv.put("k", "2")).start()
        newer, entry = c.kv.get("k", index=index, wait="5s")
        assert int(newer) > int(index) and entry["Value"] == b"2"


def test_acl_token() -> None:
    with FakeCluster(tick=None, consul_token="c0nsul") as cluster:
        r = requests.get(f"{cluster.consul_addr}/v1/catalog/services", timeout=10)
        assert (r.status_code, r.text) == (403, "Permission denied")
        r = requests.get(
            f"{cluster.consul_addr}/v1/kv/x", headers={"X-Consul-Token": "bad"}, timeout=10
        )
        assert (r.status_code, r.text) == (403, "ACL not found")
        assert "consul" in cluster.consul_client().catalog.services()[1]
        with pytest.raises(consul.ACLPermissionDenied):
            consul.Consul(
                host="127.0.0.1", port=cluster.consul_port, token="bad"
            ).catalog.services()


def test_unsupported_parameters_are_rejected(manual_cluster: FakeCluster) -> None:
    r = requests.get(
        f"{manual_cluster.consul_addr}/v1/health/service/shop",
        params={"filter": 'Service.Tags contains "x"'},
        timeout=10,
    )
    assert r.status_code == 400 and "filter" in r.text
    r = requests.get(f"{manual_cluster.consul_addr}/v1/agent/self", timeout=10)
    assert r.json()["Config"]["Datacenter"] == "dc1"
