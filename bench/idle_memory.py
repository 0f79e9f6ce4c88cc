"""Benchmark 5, idle memory: RSS (and PSS, which does not count shared pages twice) of the
platform (controller + supervisord + Caddy, and OpenBao when the server starts one) with no app (the baseline, same run) and with 10
small apps deployed (tests/fixtures/apps/web: a stdlib HTTP server, procfile buildpack), and
the apps' own memory, read from /proc after the platform has been idle for a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from harness import (
    TINY,
    Server,
    cmdline,
    descendants,
    loadavg,
    log,
    machine,
    rss_kib,
    save,
    wait_for_body,
    yurt_server,
)

APPS = int(os.environ.get("BENCH_MEM_APPS", "10"))
SETTLE_S = 5.0


def pss_kib(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def group(pids: list[int]) -> dict[str, Any]:
    return {
        "processes": len(pids),
        "rss_mib": round(sum(rss_kib(p) for p in pids) / 1024, 1),
        "pss_mib": round(sum(pss_kib(p) for p in pids) / 1024, 1),
        "commands": sorted({cmdline(p)[:80] for p in pids}),
    }


def measure(srv: Server) -> dict[str, Any]:
    caddy, supervisord = srv.caddy_pid(), srv.supervisord_pid()
    if caddy is None or supervisord is None:
        raise RuntimeError("no pid file for Caddy or supervisord")
    caddy_tree = [caddy, *descendants(caddy)]
    children = [p for p in descendants(srv.proc.pid) if p not in caddy_tree]
    openbao = [p for p in children if "bao" in cmdline(p).split(" ", 1)[0]]
    controller = [srv.proc.pid] + [p for p in children if p not in openbao]
    apps = descendants(supervisord)
    parts = {
        "controller": group(controller),
        "supervisord": group([supervisord]),
        "caddy": group(caddy_tree),
    }
    if openbao:  # the config-vars store, when the server runs one
        parts["openbao"] = group(openbao)
    platform = {
        "rss_mib": round(sum(p["rss_mib"] for p in parts.values()), 1),
        "pss_mib": round(sum(p["pss_mib"] for p in parts.values()), 1),
    }
    return {**parts, "platform": platform, "apps": group(apps)}


def main() -> None:
    load_before = loadavg()
    log(f"idle memory: platform with 0 and {APPS} apps; load {load_before}")
    with yurt_server("memory") as srv:
        time.sleep(SETTLE_S)
        empty = measure(srv)
        log(f"no app: platform RSS {empty['platform']['rss_mib']} MiB")
        for i in range(1, APPS + 1):
            app = f"bmem{os.getpid()}-{i}"
            work = srv.create_app(app, TINY)
            srv.push(work)
            wait_for_body(srv.router_port, srv.host(app), "web.1", timeout=60)
            log(f"deployed {app} ({i}/{APPS})")
        time.sleep(SETTLE_S)
        full = measure(srv)
        log(
            f"{APPS} apps: platform RSS {full['platform']['rss_mib']} MiB, "
            f"apps RSS {full['apps']['rss_mib']} MiB"
        )
    save(
        "idle_memory",
        {
            "machine": machine(),
            "load_before": load_before,
            "apps_deployed": APPS,
            "app": "tests/fixtures/apps/web (python3 http.server, procfile buildpack)",
            "no_apps": empty,
            "with_apps": full,
            "platform_growth_mib": round(
                full["platform"]["rss_mib"] - empty["platform"]["rss_mib"], 1
            ),
            "rss_per_app_mib": round(full["apps"]["rss_mib"] / APPS, 1),
        },
    )


if __name__ == "__main__":
    main()
