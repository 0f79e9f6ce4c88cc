"""Benchmark 4, router overhead: throughput of the example app through Caddy (Host header) vs
straight to its web instance's port, with the same load generator (``hey``, fixed concurrency,
fixed duration), alternated in the same run. Target: router >= 0.8x direct.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess

from harness import HELLO, loadavg, log, machine, save, tool_version, wait_for_body, yurt_server

TARGET_RATIO = 0.8
ROUNDS = int(os.environ.get("BENCH_ROUTER_ROUNDS", "4"))
DURATION = os.environ.get("BENCH_ROUTER_DURATION", "5s")
CONCURRENCY = 20


def hey(url: str, host: str | None, extra: list[str]) -> dict[str, object]:
    argv = ["hey", "-z", DURATION, "-c", str(CONCURRENCY), "-t", "10", *extra]
    if host:
        argv += ["-host", host]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=120, check=True)
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    pct = dict(re.findall(r"(\d+)%+ in ([\d.]+) secs", out))
    codes = {k: int(v) for k, v in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = sum(int(n) for n in re.findall(r"\[(\d+)\]\s+Get ", out))
    if "Error distribution" in out and not errors:
        errors = -1  # present but not parsed: keep the text
    return {
        "rps": rps,
        "p50_ms": round(float(pct.get("50", "nan")) * 1000, 2),
        "p99_ms": round(float(pct.get("99", "nan")) * 1000, 2),
        "status": codes,
        "errors": errors,
        "raw_tail": out[-600:] if errors else "",
    }


MODES = {"keep-alive": [], "no keep-alive": ["-disable-keepalive"]}


def median_rps(results: list[dict[str, object]]) -> float:
    return round(statistics.median(float(r["rps"]) for r in results), 1)  # type: ignore[arg-type]


def main() -> None:
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed: apt-get install -y hey (bench/run does it as root)")
    load_before = loadavg()
    log(f"router overhead: hey -c {CONCURRENCY} -z {DURATION}, {ROUNDS} rounds; load {load_before}")
    runs: dict[str, dict[str, list[dict[str, object]]]] = {
        mode: {"direct": [], "router": []} for mode in MODES
    }
    with yurt_server("router") as srv:
        app = f"brouter{os.getpid()}"
        work = srv.create_app(app, HELLO)
        srv.push(work)
        wait_for_body(srv.router_port, srv.host(app), "Hello", timeout=60)
        [port] = srv.web_ports(app)
        for i in range(1, ROUNDS + 1):
            for mode, extra in MODES.items():
                direct = hey(f"http://127.0.0.1:{port}/", None, extra)
                routed = hey(f"http://127.0.0.1:{srv.router_port}/", srv.host(app), extra)
                runs[mode]["direct"].append(direct)
                runs[mode]["router"].append(routed)
                log(
                    f"round {i}, {mode}: direct {direct['rps']} req/s, router {routed['rps']} req/s"
                )
    summary = {}
    for mode, res in runs.items():
        d_rps, r_rps = median_rps(res["direct"]), median_rps(res["router"])
        # Each round measures both paths back to back: the median of those paired ratios
        # cancels the load other work puts on the machine between rounds.
        ratio = statistics.median(
            float(r["rps"]) / float(d["rps"])  # type: ignore[arg-type]
            for d, r in zip(res["direct"], res["router"], strict=True)
        )
        summary[mode] = {
            "direct_rps": d_rps,
            "router_rps": r_rps,
            "ratio": round(ratio, 2),
            "direct_p50_ms": statistics.median(float(r["p50_ms"]) for r in res["direct"]),  # type: ignore[arg-type]
            "router_p50_ms": statistics.median(float(r["p50_ms"]) for r in res["router"]),  # type: ignore[arg-type]
            "errors": sum(int(r["errors"]) for r in res["direct"] + res["router"]),  # type: ignore[call-overload]
            "met": ratio >= TARGET_RATIO,
        }
    save(
        "router_overhead",
        {
            "machine": machine(),
            "load_before": load_before,
            "generator": f"{tool_version(['dpkg-query', '-W', 'hey'])}: "
            f"hey -z {DURATION} -c {CONCURRENCY}",
            "app": "examples/hello-python (gunicorn, 2 sync workers)",
            "rounds": ROUNDS,
            "runs": runs,
            "summary": summary,
            "target_ratio": TARGET_RATIO,
            "met": all(m["met"] for m in summary.values()),
        },
    )


if __name__ == "__main__":
    main()
