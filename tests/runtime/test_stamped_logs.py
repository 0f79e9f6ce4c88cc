"""Time-stamped program output: the stamper against a real supervisord, and the merging of
stamped log files by time (the history part of ``yurt logs``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import sys
import time
from pathlib import Path

import pytest

from controller.runtime.local import supervisor as supervisor_module
from controller.runtime.local.runtime import (
    _history,
    _LogFile,
    _new_lines,
    _open_log,
    log_stamp,
    split_stamp,
)
from controller.runtime.local.supervisor import Program, ProgramInfo, Supervisor
from tests.conftest import wait_for
from tests.runtime import test_supervisor
from tests.runtime.test_supervisor import in_state, is_running, python_program

dirs = test_supervisor.dirs  # fixtures
sup = test_supervisor.sup

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (.*)$")

# stdout and stderr alternately, 50 ms apart; on SIGTERM a line, then last words without a
# line feed, then exit 0.
CHATTY = """
import os, signal, sys, time
def bye(signum, frame):
    print("got SIGTERM", flush=True)
    sys.stdout.write("last words without a line feed")
    sys.stdout.flush()
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
for n in range(6):
    stream = sys.stdout if n % 2 == 0 else sys.stderr
    print(f"line {n} on {stream.name}", file=stream, flush=True)
    time.sleep(0.05)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def stamped(sup: Supervisor, name: str, script: str, **kw: object) -> tuple[Program, Path]:
    program = python_program(sup, name, script, **kw)
    log = sup.logs_dir / "stamped" / f"{name}.log"
    return dataclasses.replace(program, stamped_log=log), log


def text_of(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def stamped_lines(log: Path) -> list[tuple[str, str]]:
    out = []
    for line in log.read_text().splitlines():
        found = STAMPED.match(line)
        assert found, f"not stamped: {line!r}"
        out.append((line[:24], found.group(1)))
    return out


def stampers(path: Path) -> list[int]:
    """Processes whose command line names ``path`` (the stamper of that log)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in cmdline.split(b"\0") and is_running(int(entry.name)):
                pids.append(int(entry.name))
    return pids


needs_perl = pytest.mark.skipif(supervisor_module.PERL_BINARY is None, reason="needs perl")


@needs_perl
def test_output_is_stamped_in_order_and_sigterm_reaches_the_program(sup: Supervisor) -> None:
    sup.start()
    program, log = stamped(sup, "chatty", CHATTY, stopwaitsecs=10)
    sup.add(program)
    wait_for(lambda: "ready" in text_of(log))
    info = sup.info("chatty")
    assert isinstance(info, ProgramInfo)
    # supervisord's process is the program itself; the stamper is its child.
    assert Path(f"/proc/{info.pid}/cmdline").read_bytes().startswith(sys.executable.encode())
    [stamper] = stampers(log)
    assert f"PPid:\t{info.pid}\n" in Path(f"/proc/{stamper}/status").read_text()
    sup.stop("chatty")
    assert sup.info("chatty").exit_status == 0  # type: ignore[union-attr]
    wait_for(lambda: not stampers(log), 5, "the stamper to exit")
    lines = stamped_lines(log)
    assert [text for _stamp, text in lines] == [
        "line 0 on <stdout>",
        "line 1 on <stderr>",
        "line 2 on <stdout>",
        "line 3 on <stderr>",
        "line 4 on <stdout>",
        "line 5 on <stderr>",
        "ready",
        "got SIGTERM",
        "last words without a line feed",
    ]
    stamps = [stamp for stamp, _text in lines]
    assert stamps == sorted(stamps)
    assert stamps[5] > stamps[0]  # 50 ms apart: milliseconds are real (Time::HiRes)
    assert abs(time.time() - _epoch(stamps[-1])) < 30  # UTC
    # Nothing escaped the stamper into supervisord's own file.
    assert not program.log_file.exists() or program.log_file.read_text() == ""
    sup.remove("chatty")


def _epoch(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


@needs_perl
def test_a_crash_keeps_its_exit_status_and_last_words(sup: Supervisor) -> None:
    sup.start()
    script = "import sys; print('first'); sys.stdout.write('dying words'); sys.exit(3)"
    program, log = stamped(sup, "crasher", script, startsecs=1, startretries=0)
    sup.add(program)
    info = wait_for(in_state(sup, "crasher", "FATAL"), 20, "FATAL")
    assert isinstance(info, ProgramInfo) and info.exit_status == 3
    wait_for(lambda: "dying words" in text_of(log), 5, "the last words")
    assert [text for _s, text in stamped_lines(log)] == ["first", "dying words"]
    wait_for(lambda: not stampers(log), 5, "the stamper to exit")
    sup.remove("crasher")


@needs_perl
def test_a_program_killed_after_its_grace_period_takes_its_stamper_along(
    sup: Supervisor,
) -> None:
    sup.start()
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(1000)"
    program, log = stamped(sup, "stubborn", script, stopwaitsecs=1)
    sup.add(program)
    wait_for(lambda: "up" in text_of(log))
    assert stampers(log)
    sup.remove("stubborn")
    wait_for(lambda: not stampers(log), 5, "the stamper to die")


@needs_perl
def test_the_stamper_rotates_its_file_with_a_size_cap(sup: Supervisor) -> None:
    sup.start()
    script = "import time\nfor n in range(400):\n    print(f'{n:04d} ' + 'x' * 60, flush=True)\n    time.sleep(0.002)\ntime.sleep(1000)"
    program, log = stamped(sup, "loud", script, log_max_bytes=4000, log_backups=2)
    sup.add(program)
    wait_for(lambda: "0399 " in text_of(log), 20, "all lines")
    sizes = [
        p.stat().st_size for p in (log, log.with_name("loud.log.1"), log.with_name("loud.log.2"))
    ]
    assert all(size < 4000 + 66 * 64 for size in sizes), sizes  # cap + what one read can hold
    assert not log.with_name("loud.log.3").exists()
    # What rotation kept reads back in order, from the rotated files on.
    files = [_LogFile("loud.1", log)]
    history = _history(files, 10_000)
    numbers = [int(text[:4]) for _stamp, _label, text in history]
    assert numbers == sorted(numbers) and numbers[-1] == 399 and len(numbers) > 60
    sup.remove("loud")


@needs_perl
def test_the_stamper_is_started_before_the_apps_environment(sup: Supervisor) -> None:
    """Config vars such as PERL5OPT must not reach the stamper (it starts before the env file
    is sourced), and they still reach the program."""
    sup.start()
    script = "import os; print(os.environ['PERL5OPT'], flush=True); import time; time.sleep(1000)"
    program, log = stamped(sup, "perlish", script, env={"PERL5OPT": "-Mno::such::module"})
    sup.add(program)
    wait_for(lambda: text_of(log), 10)
    assert [text for _s, text in stamped_lines(log)] == ["-Mno::such::module"]
    sup.remove("perlish")


# -- merging (no supervisord) ---------------------------------------------------------------


def write(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_split_stamp() -> None:
    assert split_stamp("2024-05-01T12:00:00.123Z hello") == ("2024-05-01T12:00:00.123Z", "hello")
    assert split_stamp("2024-05-01T12:00:00.123Z ") == ("2024-05-01T12:00:00.123Z", "")
    assert split_stamp("2024-05-01T12:00:00Z hello") == (None, "2024-05-01T12:00:00Z hello")
    assert split_stamp("hello") == (None, "hello")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", log_stamp(0)) is not None
    assert log_stamp(1714564800.5) == "2024-05-01T12:00:00.500Z"


def test_history_merges_instances_by_time_and_keeps_the_global_last_n(tmp_path: Path) -> None:
    web1 = write(
        tmp_path / "web1.log",
        "2024-05-01T12:00:00.100Z a",
        "2024-05-01T12:00:00.300Z c",
        "2024-05-01T12:00:00.500Z e",
        "2024-05-01T12:00:00.600Z f",
        "2024-05-01T12:00:00.700Z g",
    )
    web2 = write(
        tmp_path / "web2.log",
        "2024-05-01T12:00:00.200Z b",
        "2024-05-01T12:00:00.400Z d",
        "2024-05-01T12:00:00.800Z h",
    )
    files = [_LogFile("web.1", web1), _LogFile("web.2", web2)]
    merged = [(label, text) for _k, label, text in _history(files, 100)]
    assert merged == [
        ("web.1", "a"),
        ("web.2", "b"),
        ("web.1", "c"),
        ("web.2", "d"),
        ("web.1", "e"),
        ("web.1", "f"),
        ("web.1", "g"),
        ("web.2", "h"),
    ]
    assert [text for _k, _l, text in _history(files, 4)] == ["e", "f", "g", "h"]
    assert _history(files, 0) == []
    assert files[0].offset == web1.stat().st_size  # following starts at the end


def test_unstamped_lines_are_oldest_and_keep_their_file_order(tmp_path: Path) -> None:
    old = write(tmp_path / "sup.log", "legacy 1", "legacy 2", "2024-05-01T12:00:00.250Z yurt: note")
    new = write(tmp_path / "app.log", "2024-05-01T12:00:00.100Z x", "2024-05-01T12:00:00.300Z y")
    files = [_LogFile("web.1", old), _LogFile("web.1", new)]
    assert [text for _k, _l, text in _history(files, 10)] == [
        "legacy 1",
        "legacy 2",
        "x",
        "yurt: note",
        "y",
    ]


def test_history_reads_rotated_files_when_the_current_one_is_short(tmp_path: Path) -> None:
    log = write(tmp_path / "w.log", "2024-05-01T12:00:03.000Z three")
    write(tmp_path / "w.log.1", "2024-05-01T12:00:01.000Z one", "2024-05-01T12:00:02.000Z two")
    write(tmp_path / "w.log.2", "2024-05-01T12:00:00.000Z zero")
    files = [_LogFile("web.1", log)]
    assert [t for _k, _l, t in _history(files, 2)] == ["two", "three"]
    assert [t for _k, _l, t in _history(files, 10)] == ["zero", "one", "two", "three"]


def test_new_lines_follow_rotation_and_merge_by_time(tmp_path: Path) -> None:
    a = write(tmp_path / "a.log", "2024-05-01T12:00:00.000Z a0")
    b = write(tmp_path / "b.log")
    files = [_LogFile("web.1", a), _LogFile("web.2", b)]
    _history(files, 10)
    assert _new_lines(files) == []
    with a.open("a") as fh:
        fh.write("2024-05-01T12:00:02.000Z a2\n2024-05-01T12:00:03.000Z partial")
    with b.open("a") as fh:
        fh.write("2024-05-01T12:00:01.000Z b1\n")
    assert [(label, text) for _k, label, text in _new_lines(files)] == [
        ("web.2", "b1"),
        ("web.1", "a2"),
    ]
    # The stamper finishes the line, then rotates; the rest of the old file is not lost.
    with a.open("a") as fh:
        fh.write(" line\n")
    a.rename(tmp_path / "a.log.1")
    write(a, "2024-05-01T12:00:04.000Z a4")
    assert [text for _k, _l, text in _new_lines(files)] == ["partial line", "a4"]


def test_logs_are_read_only_from_plain_files(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret", "root only")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "web.log").symlink_to(secret)
    os.link(secret, tmp_path / "logs" / "hard.log")
    os.mkfifo(tmp_path / "logs" / "fifo.log")
    write(tmp_path / "logs" / "ok.log", "fine")
    (tmp_path / "linked").symlink_to(tmp_path / "logs")
    os.close(_open_log(tmp_path / "logs" / "ok.log"))
    for path in ("logs/web.log", "logs/hard.log", "logs/fifo.log", "linked/ok.log"):
        with pytest.raises(OSError):
            os.close(_open_log(tmp_path / path))
    files = [_LogFile("web.1", tmp_path / "logs" / "web.log")]
    assert _history(files, 10) == [] and _new_lines(files) == []
