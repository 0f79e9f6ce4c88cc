"""Benchmark 3, zero downtime: ~100 req/s through the router (keep-alive, every request's outcome
and latency recorded) during 5 consecutive deploys (code changes) and 1 ``yurt rollback``.
Failed and non-2xx requests must be 0. Latency during the deploys is compared with the same
duration of idle load just before them, same run.

Every failed request is matched with the nearest Caddy config load (caddy.log) and the nearest
old-instance stop (supervisord.log), to tell the causes apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from apps import set_greeting
from harness import (
    HELLO,
    Load,
    Sample,
    Server,
    loadavg,
    log,
    machine,
    save,
    summarize,
    timed_push,
    wait_for_body,
    yurt_server,
)

DEPLOYS = 5
RATE = float(os.environ.get("BENCH_ZD_RATE", "100"))
WORKERS = 10
IDLE_MAX_S = float(os.environ.get("BENCH_ZD_IDLE", "45"))
WARMUP_S = 2.0
TAIL_S = 3.0
# A second pass with a client that reuses kept-alive connections without checking them first
# (raw http.client), to show what Caddy closing idle connections on a config load costs such
# clients. BENCH_ZD_NAIVE=0 skips it.
NAIVE = os.environ.get("BENCH_ZD_NAIVE", "1") != "0"
NAIVE_IDLE_S = 10.0
# Another name keeps a diagnostic run (e.g. BENCH_ZD_RATE=300) beside the main figures; the
# report shows bench/results/zero_downtime_*.json as extra rows.
RESULT = os.environ.get(
    "BENCH_ZD_RESULT", "zero_downtime"
)  # load kept after the rollback, while its old instance retires


SUPERVISOR_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \w+ (.*)$")


def caddy_log(srv: Server) -> list[dict[str, Any]]:
    entries = []
    for line in (srv.logs_dir / "router" / "caddy.log").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    return entries


def caddy_loads(srv: Server) -> list[float]:
    """Wall times Caddy finished a config load."""
    return [float(e["ts"]) for e in caddy_log(srv) if e.get("msg") == "load complete"]


def caddy_errors(srv: Server) -> list[dict[str, Any]]:
    """Caddy's own error and warning lines about requests (e.g. why it answered 502)."""
    return [
        {k: e.get(k) for k in ("ts", "level", "logger", "msg", "error", "upstream", "duration")}
        for e in caddy_log(srv)
        if e.get("level") in ("error", "warn")
        and str(e.get("logger", "")).startswith("http.")
        and "skipped" not in str(e.get("msg"))
    ]


def supervisor_events(srv: Server, app: str) -> list[tuple[float, str]]:
    """(wall time, text) of supervisord's spawned/waiting/stopped lines for the app."""
    found = []
    path = srv.logs_dir / "supervisor" / "supervisord.log"
    for line in path.read_text(errors="replace").splitlines():
        m = SUPERVISOR_LINE.match(line)
        if not m or app not in line:
            continue
        stamp = time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000
        found.append((stamp, m[3]))
    return found


def access_log_statuses(srv: Server, app: str, start: float, end: float) -> dict[str, int]:
    """Status codes Caddy logged for the app between start and end (a cross-check)."""
    counts: dict[str, int] = {}
    path = srv.logs_dir / "router" / app / "router.log"
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if start <= float(entry.get("ts", 0)) <= end:
            key = str(entry.get("status"))
            counts[key] = counts.get(key, 0) + 1
    return counts


def nearest(t: float, times: list[float]) -> float | None:
    """Signed seconds from the nearest of ``times`` to ``t`` (positive: t is after it)."""
    return round(min((t - x for x in times), key=abs), 3) if times else None


def explain(
    bad: list[Sample],
    loads: list[float],
    stops: list[tuple[float, str]],
    errors: list[dict[str, Any]],
    dropped: list[float],
) -> list[dict[str, Any]]:
    """Each failed request with what happened around it: the nearest Caddy config load and
    old-instance stop (signed seconds, positive: the request was sent after it), and, for a
    5xx, Caddy's error lines logged while it was in flight."""
    stop_times = [t for t, text in stops if text.startswith(("waiting", "stopped"))]
    out = []
    for s in bad:
        # Caddy's error lines are about upstreams: only an HTTP 5xx can have caused one.
        window = s.latency + 0.05
        near = [e for e in errors if s.status >= 500 and 0 <= float(e["ts"]) - s.t <= window]
        out.append(
            {
                "t": round(s.t, 3),
                "status": s.status,
                "error": s.error,
                "body": s.body,
                "latency_ms": round(s.latency * 1000, 1),
                "reused_connection": s.reused,
                "from_caddy_load_s": nearest(s.t, loads),
                "from_old_instance_stop_s": nearest(s.t, stop_times),
                "dropped_conns_within_1s": sum(1 for d in dropped if abs(d - s.t) <= 1),
                "caddy_errors": near,
            }
        )
    return out


def timeline(
    srv: Server, app: str, loads: list[float], start: float, end: float
) -> list[tuple[float, str]]:
    """Caddy loads and supervisord's lines for the app during the deploys, by time."""
    events = [(t, "caddy: load complete") for t in loads]
    events += [(t, f"supervisord: {text}") for t, text in supervisor_events(srv, app)]
    return sorted((round(t, 3), text) for t, text in events if start <= t <= end)


def deploy_all(srv: Server, work: Path, app: str) -> tuple[list[dict[str, Any]], str]:
    """5 deploys then a rollback; returns the events and the body the rollback must serve."""
    events: list[dict[str, Any]] = []
    tokens = []
    for i in range(1, DEPLOYS + 1):
        token = f"Hello, deploy {i} {uuid.uuid4().hex[:8]}!"
        tokens.append(token)
        srv.commit(work, f"deploy {i}", set_greeting(token))
        t0 = time.time()
        marks, _ = timed_push(srv, work, app, token, timeout=300)
        events.append({"what": f"deploy {i}", "t0": t0, **marks})
        log(f"deploy {i}: live after {marks['live_s']:.2f}s")
    t0 = time.time()
    srv.cli("rollback", "-a", app)
    events.append({"what": "rollback", "t0": t0, "end_s": round(time.time() - t0, 3)})
    log(f"rollback: done after {time.time() - t0:.2f}s")
    return events, tokens[-2]


def run_pass(srv: Server, work: Path, app: str, idle_s: float, careful: bool) -> dict[str, Any]:
    """Idle load, then 5 deploys + a rollback under the same load; the figures of both windows."""
    load = Load(srv.router_port, srv.host(app), rate=RATE, workers=WORKERS, check_dropped=careful)
    with load:
        load_start = time.time()
        log(f"idle load for {idle_s:.0f}s ({'careful' if careful else 'naive'} keep-alive client)")
        time.sleep(idle_s)
        deploy_start = time.time()
        events, expected = deploy_all(srv, work, app)
        time.sleep(TAIL_S)
        deploy_end = time.time()
    final = wait_for_body(srv.router_port, srv.host(app), expected, timeout=10)
    loads = caddy_loads(srv)
    duration = deploy_end - deploy_start
    idle_start = max(load_start + WARMUP_S, deploy_start - duration)
    idle = [s for s in load.samples if idle_start <= s.t < deploy_start]
    during = [s for s in load.samples if deploy_start <= s.t <= deploy_end]
    bad = [s for s in load.samples if not 200 <= s.status < 300]
    idle_sum, during_sum = summarize(idle), summarize(during)
    log(f"idle: {idle_sum}")
    log(f"deploys: {during_sum}")
    return {
        "client": "careful" if careful else "naive",
        "idle": idle_sum,
        "deploys": during_sum,
        "all": summarize(load.samples),
        "p50_ratio": round(during_sum["p50_ms"] / idle_sum["p50_ms"], 2),
        "p99_ratio": round(during_sum["p99_ms"] / idle_sum["p99_ms"], 2),
        "dropped_keepalive_conns": {
            "idle": sum(1 for d in load.dropped if idle_start <= d < deploy_start),
            "deploys": sum(1 for d in load.dropped if deploy_start <= d <= deploy_end),
        },
        "caddy_loads_during_deploys": sum(1 for t in loads if deploy_start <= t <= deploy_end),
        "caddy_access_log_statuses_during_deploys": access_log_statuses(
            srv, app, deploy_start, deploy_end
        ),
        "rollback_serves_previous_release": bool(final),
        "events": events,
        "note": os.environ.get("BENCH_NOTE", ""),
        "failures": explain(
            bad, loads, supervisor_events(srv, app), caddy_errors(srv), load.dropped
        ),
        "timeline": timeline(srv, app, loads, deploy_start, deploy_end),
        "met": not bad,
    }


def main() -> None:
    load_before = loadavg()
    log(f"zero downtime: {RATE:.0f} req/s, {DEPLOYS} deploys + 1 rollback; load {load_before}")
    with yurt_server("zero-downtime") as srv:
        app = f"bzd{os.getpid()}"
        work = srv.create_app(app, HELLO)
        srv.push(work)
        wait_for_body(srv.router_port, srv.host(app), "Hello", timeout=60)
        careful = run_pass(srv, work, app, IDLE_MAX_S, careful=True)
        naive = run_pass(srv, work, app, NAIVE_IDLE_S, careful=False) if NAIVE else None
    save(
        RESULT,
        {
            "machine": machine(),
            "load_before": load_before,
            "rate": RATE,
            "workers": WORKERS,
            **careful,
            "naive_client": naive,
        },
    )


if __name__ == "__main__":
    main()
