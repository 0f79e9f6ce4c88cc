"""The router's DNS responder: what Caddy asks for upstreams (dnslib as the client side)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from controller.runtime.local import router_dns
from controller.runtime.local.router_dns import TARGET, answer, srv_name, write_table
from tests.conftest import free_port

TABLE = {"web": [8001, 8002], "idle": []}


def ask(name: str, qtype: str, table: dict[str, list[int]] = TABLE) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    reply = answer(query.pack(), table)
    assert reply is not None
    parsed = DNSRecord.parse(reply)
    assert parsed.header.id == query.header.id and parsed.header.qr == 1
    return parsed


def test_srv_answers_one_record_per_instance_on_the_loopback_target() -> None:
    reply = ask("web.web.yurt.", "SRV")
    assert reply.header.rcode == RCODE.NOERROR
    records = [(rr.rtype, str(rr.rname), rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr]
    assert sorted(records) == [
        (QTYPE.SRV, "web.web.yurt.", 8001, TARGET),
        (QTYPE.SRV, "web.web.yurt.", 8002, TARGET),
    ]
    assert all(rr.ttl == 0 for rr in reply.rr)
    assert [str(rr.rdata) for rr in reply.ar] == ["127.0.0.1"]  # the target's A, as a hint


def test_the_target_name_resolves_to_loopback() -> None:
    reply = ask(TARGET, "A")
    assert [(rr.rtype, str(rr.rdata)) for rr in reply.rr] == [(QTYPE.A, "127.0.0.1")]
    six = ask(TARGET, "AAAA")  # no data, not an error: a dual-stack lookup still succeeds
    assert six.header.rcode == RCODE.NOERROR and six.rr == []


def test_names_are_case_insensitive() -> None:
    assert len(ask("WEB.Web.Yurt.", "SRV").rr) == 2


def test_an_app_without_instances_has_no_records() -> None:
    reply = ask(srv_name("idle"), "SRV")
    assert reply.header.rcode == RCODE.NOERROR and reply.rr == []


@pytest.mark.parametrize("name", ["nobody.web.yurt.", "example.com.", "web.yurt.", "localhost."])
def test_unknown_names_are_nxdomain(name: str) -> None:
    reply = ask(name, "SRV")
    assert reply.header.rcode == RCODE.NXDOMAIN and reply.rr == []


def test_garbage_and_replies_get_no_answer() -> None:
    assert answer(b"\x00\x01garbage", TABLE) is None
    reply = DNSRecord.question("web.web.yurt.", "SRV").reply()
    assert answer(reply.pack(), TABLE) is None


# --- the process, as supervisord runs it ---------------------------------------------------------


@contextlib.contextmanager
def responder_process(table: Path) -> Iterator[str]:
    """``python -m controller.runtime.local.router_dns`` on a free port: its address."""
    listen = f"127.0.0.1:{free_udp_port()}"
    argv = [sys.executable, "-m", "controller.runtime.local.router_dns"]
    proc = subprocess.Popen([*argv, "--listen", listen, "--table", str(table)])
    try:
        assert router_dns.wait_ready(listen, timeout=10)
        yield listen
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        proc.kill()
        proc.wait()


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    table = tmp_path / "router-dns.json"
    write_table(table, {"web": [8001]})
    with responder_process(table) as listen:
        yield listen, table


def free_udp_port() -> int:
    for _ in range(20):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free UDP port")


def query(listen: str, name: str, qtype: str) -> DNSRecord:
    host, _, port = listen.rpartition(":")
    data = DNSRecord.question(name, qtype).send(host, int(port), timeout=2)
    return DNSRecord.parse(data)


def test_process_answers_over_udp_and_follows_the_table_file(
    responder: tuple[str, Path],
) -> None:
    listen, table = responder
    assert [rr.rdata.port for rr in query(listen, "web.web.yurt.", "SRV").rr] == [8001]
    assert str(query(listen, TARGET, "A").rr[0].rdata) == "127.0.0.1"
    assert query(listen, "other.web.yurt.", "SRV").header.rcode == RCODE.NXDOMAIN
    write_table(table, {"web": [8003, 8002], "other": [9000]})
    deadline = time.monotonic() + 2
    while sorted(rr.rdata.port for rr in query(listen, "web.web.yurt.", "SRV").rr) != [8002, 8003]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert [rr.rdata.port for rr in query(listen, "other.web.yurt.", "SRV").rr] == [9000]
