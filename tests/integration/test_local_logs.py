"""``yurt logs`` on the local runtime: every line is time-stamped as it is written, so past lines
of all instances (and of stdout and stderr) come back merged in time order."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.conftest import Server
from tests.integration.test_local_operate import processes, release_dir, wait_until
from tests.integration.test_local_runtime import change, deploy_app

pytestmark = pytest.mark.integration

# Waits for the test to write "tick-at" (a moment in epoch seconds) into the release dir, then
# ticker.N prints "tick K" at that moment + K * 0.3 s for its own K (odd for ticker.2, even for
# ticker.1), alternating stdout and stderr in pairs; so the ticks of both instances interleave
# in time, K = 0..7. On SIGTERM it says so and ends with a line without a line feed.
TICKER = """
import os, signal, sys, time
from pathlib import Path
dyno = os.environ["DYNO"]
n = int(dyno.split(".")[1])
def bye(*_):
    print(dyno, "got SIGTERM", flush=True)
    sys.stdout.write(dyno + " bye without a line feed")
    sys.stdout.flush()
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
while not Path("tick-at").exists():
    time.sleep(0.05)
start = float(Path("tick-at").read_text())
for k in range(n - 1, 8, 2):
    time.sleep(max(start + k * 0.3 - time.time(), 0))
    print("tick", k, file=sys.stderr if k % 4 >= 2 else sys.stdout, flush=True)
while True:
    time.sleep(1)
"""


def stampers(app_logs: Path) -> list[str]:
    """Command lines of live processes naming a file in ``app_logs`` (stampers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if str(app_logs).encode() in cmdline and stat.rpartition(")")[2].split()[0] != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[-200:])
    return found


def test_logs_merge_instances_and_streams_in_time_order(server: Server, tmp_path: Path) -> None:
    work = deploy_app(server, tmp_path)
    procfile = "web: python3 server.py\nticker: python3 ticker.py\n"
    change(server, work, "ticker", Procfile=procfile, ticker__py=TICKER)
    server.git("push", "yurt", "main", cwd=work)
    server.api("PATCH", "/api/apps/web/formation", json={"ticker": 2})
    wait_until(
        lambda: {p.get("state") for n, p in processes(server).items() if "ticker" in n} == {"up"},
        what="two tickers up",
    )
    (release_dir(server, "web", 2) / "tick-at").write_text(str(time.time() + 1))
    expected = [f"ticker.{k % 2 + 1} | tick {k}" for k in range(2, 8)]

    def last_six() -> list[str] | None:
        out = server.cli("logs", "-n", "6", "--ps", "ticker", "-a", "web").stdout.splitlines()
        return out if out and out[-1].endswith("tick 7") else None

    assert wait_until(last_six, 30, "tick 7") == expected
    # All of the app's output: the ticks are still in order among the web lines.
    everything = server.api("GET", "/api/apps/web/logs?lines=1000").text.splitlines()
    ticks = [line for line in everything if "| tick " in line]
    assert ticks == [f"ticker.{k % 2 + 1} | tick {k}" for k in range(8)]
    assert any(line.startswith("web.1 | ") for line in everything)
    # One instance, by name.
    one = server.cli("logs", "-n", "100", "--ps", "ticker.2", "-a", "web").stdout.splitlines()
    assert one == [f"ticker.2 | tick {k}" for k in (1, 3, 5, 7)]

    # Each line was stamped when written, in a file of the app's own, private to its user.
    app_logs = (server.data_dir / "apps" / "web" / "logs").resolve()
    [ticker1] = app_logs.glob("web-v2-ticker-1.log")
    first = ticker1.read_text().splitlines()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tick 0", first), first
    if os.geteuid() == 0:
        import pwd

        uid = pwd.getpwnam("yurt-web").pw_uid
        assert (app_logs.stat().st_uid, app_logs.stat().st_mode & 0o777) == (uid, 0o700)
        assert (app_logs.parent.stat().st_mode & 0o077) == 0

    # ps:stop: SIGTERM reaches each ticker (not only its stamper), its last words are kept, it
    # exits cleanly, and no stamper is left behind.
    assert stampers(app_logs)
    server.cli("ps:stop", "-a", "web")
    for n in (1, 2):
        log = app_logs / f"web-v2-ticker-{n}.log"
        wait_until(lambda: "bye" in log.read_text(), 5, "the last words")  # noqa: B023
        text = log.read_text()
        assert f"ticker.{n} got SIGTERM" in text
        assert text.endswith(f"ticker.{n} bye without a line feed\n")
    supervisord_log = (server.data_dir / "logs" / "supervisor" / "supervisord.log").read_text()
    assert "stopped: web-v2-ticker-1 (exit status 0)" in supervisord_log
    assert "stopped: web-v2-ticker-2 (exit status 0)" in supervisord_log
    wait_until(lambda: not stampers(app_logs), 10, "no stamper left")
