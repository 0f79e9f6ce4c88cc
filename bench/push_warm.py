"""Benchmark 1, push-to-live warm: the app is deployed, a commit changes only a string in its
code, and we time ``git push`` start -> the router answers with the new string.

Baseline in the same run: restarting the same release by hand (its Procfile command with its
already-built virtualenv, start -> first 200), the part of a deploy no platform can skip.
"""

from __future__ import annotations

import os
import uuid

from apps import run_by_hand, set_greeting, venv_env
from harness import (
    HELLO,
    loadavg,
    log,
    machine,
    save,
    stats,
    timed_push,
    wait_for_body,
    yurt_server,
)

ROUNDS = int(os.environ.get("BENCH_WARM_ROUNDS", "7"))
FLOOR_ROUNDS = 5
TARGET_S = 3.0


def main() -> None:
    log(f"push-to-live warm: {ROUNDS} rounds; load {loadavg()}")
    load_before = loadavg()
    with yurt_server("push-warm") as srv:
        app = f"bwarm{os.getpid()}"
        work = srv.create_app(app, HELLO)
        log(f"first deploy of {app} (fills the build cache)")
        first = srv.push(work)
        wait_for_body(srv.router_port, srv.host(app), "Hello", timeout=60)
        rounds = []
        for i in range(1, ROUNDS + 1):
            token = f"Hello, warm push {i} {uuid.uuid4().hex[:8]}!"
            srv.commit(work, f"warm push {i}", set_greeting(token))
            result, _ = timed_push(srv, work, app, token, timeout=180)
            log(f"round {i}: live after {result['live_s']:.2f}s ({result})")
            rounds.append(result)
        release = max(
            (srv.data_dir / "apps" / app / "releases").glob("v*"),
            key=lambda p: int(v) if (v := p.name[1:].partition("-")[0]).isdigit() else -1,
        )
        env = venv_env(release / ".yurt" / "python", release)
        floors = []
        for _ in range(FLOOR_ROUNDS):
            floors.append(run_by_hand(release, env))
        log(f"floor (restart by hand) median {sorted(floors)[len(floors) // 2]:.2f}s")
    live = stats([r["live_s"] for r in rounds])
    floor = stats(floors)
    save(
        "push_warm",
        {
            "machine": machine(),
            "load_before": load_before,
            "first_push_s": round(first, 2),
            "rounds": rounds,
            "live": live,
            "floor_restart": floor,
            "ratio": round(live["median"] / floor["median"], 2),
            "target_s": TARGET_S,
            "met": live["median"] <= TARGET_S,
        },
    )


if __name__ == "__main__":
    main()
