"""Benchmark 2, push-to-live cold: the first push of a new app (new name, so an empty build
cache: the Python buildpack keeps pip's cache and the virtualenv per app), ``git push`` start ->
the router answers 200.

Baseline, interleaved with it in the same run: the floor by hand, in a temp dir: fresh venv
(same interpreter) + ``pip install -r requirements.txt`` (empty pip cache) + the Procfile's web
command + first 200.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from apps import floor_cold
from harness import HELLO, Server, loadavg, log, machine, save, stats, timed_push, yurt_server

ROUNDS = int(os.environ.get("BENCH_COLD_ROUNDS", "5"))
TARGET_RATIO = 1.3


def cold_push(srv: Server, name: str) -> dict[str, float]:
    work = srv.create_app(name, HELLO)
    result, lines = timed_push(srv, work, name, "Hello", timeout=600)
    text = "\n".join(lines)
    if "Creating a virtualenv" not in text or "Downloading" not in text:
        raise RuntimeError(f"the first build of {name} was not cold:\n{text}")
    return result


def main() -> None:
    load_before = loadavg()
    log(f"push-to-live cold: {ROUNDS} rounds, each against the floor by hand; load {load_before}")
    pushes, floors = [], []
    with yurt_server("push-cold") as srv:
        for i in range(1, ROUNDS + 1):
            result = cold_push(srv, f"bcold{os.getpid()}-{i}")
            log(f"round {i}: first push live after {result['live_s']:.2f}s")
            pushes.append(result)
            with tempfile.TemporaryDirectory(prefix="yurt-bench-floor-") as scratch:
                floor = floor_cold(HELLO, Path(scratch))
            log(f"round {i}: floor {floor['total_s']:.2f}s")
            floors.append({k: round(v, 3) for k, v in floor.items()})
    live = stats([float(p["live_s"]) for p in pushes])
    floor_total = stats([f["total_s"] for f in floors])
    # Each push is paired with the floor measured right after it, so drifting machine load
    # cancels out; the median of those ratios is the figure.
    ratios = [float(p["live_s"]) / f["total_s"] for p, f in zip(pushes, floors, strict=True)]
    ratio = statistics.median(ratios)
    save(
        "push_cold",
        {
            "machine": machine(),
            "load_before": load_before,
            "pushes": pushes,
            "floors": floors,
            "live": live,
            "floor": floor_total,
            "ratios": [round(r, 2) for r in ratios],
            "ratio": round(ratio, 2),
            "ratio_of_medians": round(live["median"] / floor_total["median"], 2),
            "target_ratio": TARGET_RATIO,
            "met": ratio <= TARGET_RATIO,
        },
    )


if __name__ == "__main__":
    main()
