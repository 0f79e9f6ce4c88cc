"""Write BENCHMARKS.md from bench/results/*.json (and the load samples bench/run took), then
append bench/notes.md, the hand-written analysis."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from typing import Any

from harness import RESULTS, ROOT, machine

OUT = ROOT / "BENCHMARKS.md"
NOTES = ROOT / "bench" / "notes.md"
ORDER = ["push_warm", "push_cold", "zero_downtime", "router_overhead", "idle_memory"]


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def load_samples() -> list[tuple[float, float]]:
    path = RESULTS / "loadavg.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out.append((float(parts[0]), float(parts[1])))
    return out


def load_during(res: dict[str, Any], samples: list[tuple[float, float]]) -> str:
    """1-min load average seen while the benchmark ran: min-max (samples every 5 s)."""
    seen = [v for t, v in samples if res.get("started", 0) - 5 <= t <= res.get("finished", 0)]
    if not seen:
        return f"{res.get('load_before', '?')} before, {res.get('load_after', '?')} after"
    return f"{min(seen):.2f}-{max(seen):.2f} (1-min, {len(seen)} samples)"


def yes(flag: object) -> str:
    return "**yes**" if flag else "**no**"


def header(results: dict[str, dict[str, Any]]) -> list[str]:
    any_res = next(iter(results.values()))
    m = any_res.get("machine") or machine()
    dates = sorted(r["date"] for r in results.values())
    commits = sorted({r["commit"] for r in results.values()})
    return [
        "# Benchmarks",
        "",
        "Figures of the local runtime (issue #3), written by `make bench` (`bench/run` runs "
        "`bench/*.py`, each against its own `yurt server --stop-apps` with a temp data dir and "
        "free loopback ports, then `bench/report.py` writes this file; the analysis at the end "
        "is `bench/notes.md`). Every figure is compared with a baseline measured in the same "
        "run. Rerun some: `BENCH_ONLY='zero_downtime router_overhead' make bench`.",
        "",
        f"- Run: {dates[0]} to {dates[-1]}",
        f"- Commit: {', '.join(commits)} (`+dirty`: uncommitted changes in the tree, "
        "which other work was editing meanwhile)",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, `nproc` = {m['nproc']} |",
        f"| RAM | {m['ram_gib']} GiB |",
        f"| OS | {m['os']}, kernel {m['kernel']} |",
        f"| Python | {m['python']} (the controller's venv) |",
        f"| Runs as | {m['user']} (per-app users, as in CI) |",
        "| Shared | yes: other engineers ran test suites on it during the run; the load "
        "during each benchmark is in its section |",
        "",
    ]


def summary(r: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["## Summary", "", "| Benchmark | Figure | Baseline (same run) | Ratio | Target | Met |"]
    rows.append("|---|---|---|---|---|---|")
    if w := r.get("push_warm"):
        rows.append(
            f"| 1. push-to-live, warm | median {w['live']['median']:.2f} s "
            f"(min {w['live']['min']:.2f}, max {w['live']['max']:.2f}, n={w['live']['n']}) "
            f"| restart by hand {w['floor_restart']['median']:.2f} s | {w['ratio']}x "
            f"| median <= {w['target_s']:.0f} s | {yes(w['met'])} |"
        )
    if c := r.get("push_cold"):
        rows.append(
            f"| 2. push-to-live, cold | median {c['live']['median']:.2f} s (n={c['live']['n']}) "
            f"| floor by hand {c['floor']['median']:.2f} s | {c['ratio']}x (median of "
            "paired ratios) "
            f"| <= {c['target_ratio']}x | {yes(c['met'])} |"
        )
    if z := r.get("zero_downtime"):
        d, i = z["deploys"], z["idle"]
        rows.append(
            f"| 3. zero downtime | {d['failed']} failed + {d['non_2xx']} non-2xx of "
            f"{d['requests']}; p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms "
            f"| idle: p50 {i['p50_ms']} ms, p99 {i['p99_ms']} ms "
            f"| p50 {z['p50_ratio']}x, p99 {z['p99_ratio']}x | 0 failed "
            f"| {yes(z['met'])}{diagnostic_caveat()} |"
        )
    if o := r.get("router_overhead"):
        for mode, s in o["summary"].items():
            rows.append(
                f"| 4. router overhead ({mode}) | {s['router_rps']} req/s via Caddy "
                f"| {s['direct_rps']} req/s direct | {s['ratio']}x "
                f"| >= {o['target_ratio']}x | {yes(s['met'])} |"
            )
    if m := r.get("idle_memory"):
        n, full, empty = m["apps_deployed"], m["with_apps"], m["no_apps"]
        rows.append(
            f"| 5. idle memory, {n} apps | platform RSS {full['platform']['rss_mib']} MiB "
            f"(PSS {full['platform']['pss_mib']}); apps {full['apps']['rss_mib']} MiB "
            f"| platform with no app: {empty['platform']['rss_mib']} MiB "
            f"| +{m['platform_growth_mib']} MiB | none | - |"
        )
    return [*rows, ""]


def diagnostic_caveat() -> str:
    """The main zero-downtime figure can pass by luck: say so when a diagnostic run of the
    current code failed (runs of older code are named *_before_* and kept as history)."""
    bad = []
    for path in sorted(RESULTS.glob("zero_downtime_*.json")):
        if "prototype" in path.stem or "_before_" in path.stem:
            continue
        x = json.loads(path.read_text())
        codes = Counter(f["status"] for p in (x, x.get("naive_client")) if p for f in p["failures"])
        codes.pop(0, None)  # client-side errors: the keep-alive race, covered in 3.
        for code, n in sorted(codes.items()):
            bad.append(f"{n} x HTTP {code} at {x['rate']:.0f} req/s ({path.stem})")
    if not bad:
        return ""
    return f" in this run, but: {', '.join(bad)}; see 3."


def section_warm(w: dict[str, Any], samples: list[tuple[float, float]]) -> list[str]:
    rows = [
        "## 1. Push-to-live, warm",
        "",
        "examples/hello-python already deployed; each round commits a change of the greeting "
        "string in app.py and times `git push` start -> the router (Caddy, Host header) answers "
        "with the new string (polled every 20 ms). Columns: seconds from push start to each line "
        "of the push output. Baseline: the same release started by hand (its Procfile command "
        "with its built virtualenv, start -> first 200).",
        "",
        f"Date {w['date']}, commit {w['commit']}, load {load_during(w, samples)}. "
        f"First (cold) push of the app: {w['first_push_s']} s.",
        "",
        "| Round | Build starts | Compress | Releasing | Starting | Healthy | Switched "
        "| Push ends | **Live** |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in enumerate(w["rounds"], 1):
        keys = ("build", "compress", "release", "starting", "healthy", "switch", "push_end")
        cells = " | ".join(f"{r.get(k, float('nan')):.2f}" for k in keys)
        rows.append(f"| {n} | {cells} | **{r['live_s']:.2f}** |")
    lv, fl = w["live"], w["floor_restart"]
    rows += [
        "",
        f"Push-to-live: median **{lv['median']:.2f} s**, min {lv['min']:.2f}, max {lv['max']:.2f}"
        f" (n={lv['n']}); target median <= {w['target_s']:.0f} s: {yes(w['met'])}. Restart by "
        f"hand: median {fl['median']:.2f} s (min {fl['min']:.2f}, max {fl['max']:.2f}, "
        f"n={fl['n']}); ratio {w['ratio']}x.",
        "",
    ]
    return rows


def section_cold(c: dict[str, Any], samples: list[tuple[float, float]]) -> list[str]:
    rows = [
        "## 2. Push-to-live, cold",
        "",
        "First push of a new app (new name: the Python buildpack's cache, pip's included, is "
        "per app, so it starts empty; the output is checked for `Creating a virtualenv` and "
        "`Downloading`), push start -> first 200 through the router. Interleaved with the floor "
        "by hand in a temp dir: `python3.11 -m venv` + `pip install -r requirements.txt` (empty "
        "`PIP_CACHE_DIR`, clean environment like the build's) + the Procfile's web command + "
        "first 200.",
        "",
        f"Date {c['date']}, commit {c['commit']}, load {load_during(c, samples)}.",
        "",
        "Cold push columns: seconds from push start to the build starting, the venv being "
        "created (`Creating a virtualenv` -> `Installing requirements`), pip done "
        "(`Discovering process types`), the new app answering. Floor columns: each step's "
        "duration.",
        "",
        "| Round | Build starts | venv | pip done | **Live** | Floor: venv | pip | start + 200 "
        "| **Floor total** | Ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for n, (p, f, ratio) in enumerate(zip(c["pushes"], c["floors"], c["ratios"], strict=True), 1):
        venv = p.get("pip", nan) - p.get("venv", nan)
        rows.append(
            f"| {n} | {p.get('build', nan):.2f} | {venv:.2f} | {p.get('types', nan):.2f} "
            f"| **{p['live_s']:.2f}** | {f['venv_s']:.2f} | {f['pip_s']:.2f} | {f['start_s']:.2f} "
            f"| **{f['total_s']:.2f}** | {ratio}x |"
        )
    rows += [
        "",
        f"Cold push median {c['live']['median']:.2f} s (min {c['live']['min']:.2f}, max "
        f"{c['live']['max']:.2f}); floor median {c['floor']['median']:.2f} s (min "
        f"{c['floor']['min']:.2f}, max {c['floor']['max']:.2f}). Median of the paired ratios: "
        f"**{c['ratio']}x** (ratio of the medians: {c.get('ratio_of_medians', '-')}x); target "
        f"<= {c['target_ratio']}x: {yes(c['met'])}.",
        "",
    ]
    return rows


def failure_groups(failures: list[dict[str, Any]]) -> list[str]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for f in failures:
        kind = f"HTTP {f['status']}" if f["status"] else f["error"].split(":")[0]
        groups.setdefault(kind, []).append(f)
    rows = []
    for kind, items in groups.items():
        loads = [f["from_caddy_load_s"] for f in items if f["from_caddy_load_s"] is not None]
        stops = [
            f["from_old_instance_stop_s"]
            for f in items
            if f["from_old_instance_stop_s"] is not None
        ]
        msgs: Counter[str] = Counter()
        for f in items if kind.startswith("HTTP 5") else ():  # Caddy's upstream errors
            for e in f.get("caddy_errors", []):
                msgs[re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", str(e.get("msg")))] += 1
        line = (
            f"- **{kind}** x{len(items)}: sent {min(loads):+.3f} to {max(loads):+.3f} s "
            "from the nearest Caddy config load"
            if loads
            else f"- **{kind}** x{len(items)}"
        )
        if stops:
            line += f", {min(stops):+.3f} to {max(stops):+.3f} s from the nearest old-instance stop"
        line += f"; kept-alive connection: {sum(1 for f in items if f['reused_connection'])}"
        line += f"/{len(items)}"
        if msgs:
            line += "; Caddy logged: " + "; ".join(f"`{m}`" for m in list(msgs)[:2])
        rows.append(line + ".")
    return rows


def zd_row(label: str, s: dict[str, Any]) -> str:
    return (
        f"| {label} | {s['duration_s']} | {s['requests']} | {s['rate']} | {s['failed']} "
        f"| {s['non_2xx']} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} |"
    )


def section_zero(z: dict[str, Any], samples: list[tuple[float, float]]) -> list[str]:
    rows = [
        "## 3. Zero downtime",
        "",
        f"{z['rate']:.0f} req/s through the router ({z['workers']} threads, one kept-alive "
        "connection each, open-loop pacing, every request recorded, none retried) during 5 "
        "consecutive deploys of examples/hello-python (greeting changed each time; each push "
        "waits until live) and 1 `yurt rollback`, plus 3 s after it (old instances retiring). "
        "Idle: the same duration of the same load just before. The *careful* client checks a "
        "kept-alive connection before reusing it, as urllib3, Go's net/http and browsers do; "
        "the *naive* pass (raw `http.client`, separate deploys) does not.",
        "",
        f"Date {z['date']}, commit {z['commit']}, load {load_during(z, samples)}.",
        "",
        "| Window | Seconds | Requests | req/s | Failed | Non-2xx | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
        zd_row("idle (careful client)", z["idle"]),
        zd_row("**5 deploys + rollback (careful)**", z["deploys"]),
    ]
    naive = z.get("naive_client")
    if naive:
        rows.append(zd_row("idle (naive client)", naive["idle"]))
        rows.append(zd_row("5 deploys + rollback (naive)", naive["deploys"]))
    rows += [
        "",
        f"Careful client: **{z['deploys']['failed'] + z['deploys']['non_2xx']} failed or "
        f"non-2xx** (target 0: {yes(z['met'])}); p50 {z['p50_ratio']}x, p99 {z['p99_ratio']}x "
        f"idle. Caddy config loads during the deploys: {z['caddy_loads_during_deploys']}; "
        f"kept-alive connections Caddy had closed when the client next used them: "
        f"{z['dropped_keepalive_conns']['deploys']} (idle window: "
        f"{z['dropped_keepalive_conns']['idle']}). Caddy's access log for the app in that "
        f"window: {z['caddy_access_log_statuses_during_deploys']}. After the rollback the "
        f"router serves the previous release: {yes(z['rollback_serves_previous_release'])}.",
        "",
        "Deploys under this load (push start -> live, s): "
        + ", ".join(
            f"{e['live_s']:.2f}" for e in z["events"] if str(e["what"]).startswith("deploy")
        )
        + f"; rollback {z['events'][-1]['end_s']:.2f}.",
        "",
    ]
    for label, p in (("careful", z), ("naive", naive)):
        if p and p["failures"]:
            rows += [
                f"Failed requests ({label} client), grouped:",
                "",
                *failure_groups(p["failures"]),
            ]
            rows.append("")
    for path in sorted(RESULTS.glob("zero_downtime_*.json")):
        rows += extra_zero(json.loads(path.read_text()), path.stem)
    return rows


def extra_zero(x: dict[str, Any], name: str) -> list[str]:
    """A diagnostic run kept beside the main one (same script, other settings)."""
    where = x.get("note") or f"commit {x['commit']}"
    rows = [
        f"Diagnostic run `{RESULTS.name}/{name}.json` ({x['rate']:.0f} req/s, {x['date']}, "
        f"{where}, load {x['load_before']} before, {x['load_after']} after):",
        "",
        "| Window | Seconds | Requests | req/s | Failed | Non-2xx | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
        zd_row("idle (careful)", x["idle"]),
        zd_row("deploys (careful)", x["deploys"]),
    ]
    if x.get("naive_client"):
        rows.append(zd_row("idle (naive)", x["naive_client"]["idle"]))
        rows.append(zd_row("deploys (naive)", x["naive_client"]["deploys"]))
    rows.append("")
    for label, p in (("careful", x), ("naive", x.get("naive_client"))):
        if p and p["failures"]:
            rows += [f"Failed requests ({label} client):", "", *failure_groups(p["failures"]), ""]
    return rows


def section_router(o: dict[str, Any], samples: list[tuple[float, float]]) -> list[str]:
    rows = [
        "## 4. Router overhead",
        "",
        f"`{o['generator']}` against {o['app']}: straight to the web instance's port vs "
        f"through Caddy (Host header), back to back in each of {o['rounds']} rounds; req/s are "
        "medians, the ratio is the median of the rounds' ratios. "
        "gunicorn's sync workers close every connection, so with keep-alive the client keeps "
        "its connections to Caddy but must reconnect for each request when direct; "
        "`-disable-keepalive` compares one new connection per request on both paths.",
        "",
        f"Date {o['date']}, commit {o['commit']}, load {load_during(o, samples)}.",
        "",
        "| Client connections | Direct req/s | Via Caddy req/s | Ratio | Direct p50 ms "
        "| Caddy p50 ms | Errors | Met (>= 0.8x) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, s in o["summary"].items():
        rows.append(
            f"| {mode} | {s['direct_rps']} | {s['router_rps']} | **{s['ratio']}x** "
            f"| {s['direct_p50_ms']} | {s['router_p50_ms']} | {s['errors']} | {yes(s['met'])} |"
        )
    rows += ["", "Each round (req/s, direct / Caddy):", ""]
    for mode, runs in o["runs"].items():
        pairs = zip(runs["direct"], runs["router"], strict=True)
        rows.append(f"- {mode}: " + ", ".join(f"{d['rps']:.0f} / {r['rps']:.0f}" for d, r in pairs))
    return [*rows, ""]


def section_memory(m: dict[str, Any], samples: list[tuple[float, float]]) -> list[str]:
    e, f = m["no_apps"], m["with_apps"]
    rows = [
        "## 5. Idle memory",
        "",
        f"RSS and PSS (shared pages split between the processes sharing them) from /proc, "
        f"{m['apps_deployed']} apps of {m['app']}, each deployed and answering, then 5 s idle. "
        "Controller: the `yurt server` process (and its children other than Caddy and OpenBao, "
        "none when idle); openbao: the config-vars store the server starts; apps: every "
        "process under supervisord. Baseline: the same server before any app.",
        "",
        f"Date {m['date']}, commit {m['commit']}, load {load_during(m, samples)}.",
        "",
        f"| Process | No app: RSS MiB | PSS MiB | {m['apps_deployed']} apps: RSS MiB | PSS MiB |",
        "|---|---|---|---|---|",
    ]
    for key in ("controller", "supervisord", "caddy", "openbao", "platform", "apps"):
        if key not in e or key not in f:
            continue
        a, b = e[key], f[key]
        label = {"platform": "**platform total**", "apps": "apps"}.get(key, key)
        count = f" ({b['processes']} processes)" if key == "apps" else ""
        rows.append(
            f"| {label}{count} | {a['rss_mib']} | {a['pss_mib']} | {b['rss_mib']} "
            f"| {b['pss_mib']} |"
        )
    rows += [
        "",
        f"The platform grows by {m['platform_growth_mib']} MiB RSS for {m['apps_deployed']} apps;"
        f" each app's own process is {m['rss_per_app_mib']} MiB RSS.",
        "",
    ]
    return rows


SECTIONS = {
    "push_warm": section_warm,
    "push_cold": section_cold,
    "zero_downtime": section_zero,
    "router_overhead": section_router,
    "idle_memory": section_memory,
}


def main() -> None:
    results = {name: res for name in ORDER if (res := load(name)) is not None}
    if not results:
        raise SystemExit("no results in bench/results: run make bench")
    samples = load_samples()
    lines = header(results) + summary(results)
    for name, res in results.items():
        lines += SECTIONS[name](res, samples)
    all_loads = [v for _, v in samples]
    if all_loads:
        lines.insert(
            lines.index("## Summary"),
            f"Load average (1-min) during the whole run: min {min(all_loads):.2f}, median "
            f"{statistics.median(all_loads):.2f}, max {max(all_loads):.2f} on {results[next(iter(results))]['machine']['nproc']} "
            "CPUs.\n",
        )
    if NOTES.exists():
        lines += ["", NOTES.read_text().rstrip(), ""]
    OUT.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({time.strftime('%H:%M:%S')})")


if __name__ == "__main__":
    main()
