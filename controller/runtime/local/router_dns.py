"""The router's upstream table, served as DNS so Caddy can follow deploys without a config load.

Each app's route in Caddy gets its upstreams from an SRV lookup (``dynamic_upstreams`` with the
``srv`` source, refreshed every few hundred milliseconds) of ``<app>.web.yurt.``, answered here
with one record per routable web instance: target :data:`TARGET`, port the instance's port.
SRV targets must be names, and Caddy dials ``<target>:<port>`` with the resolver of its HTTP
transport, pointed here too, so :data:`TARGET` gets an A answer, ``127.0.0.1``.

A deploy then only rewrites the table, and Caddy never starts a new server for it, which would
close every idle keep-alive connection (see docs/local-runtime.md).

The responder runs as a supervisord program (``python -m controller.runtime.local.router_dns``),
not in the controller: Caddy needs its answers for every new upstream connection, and apps keep
serving while the controller restarts. The controller writes the table as a JSON file (atomic
rename); the responder reloads it when the file changes, checked on every query.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, SRV, A, DNSRecord

ZONE = "yurt."
TARGET = "loopback." + ZONE  # the SRV target; answers A 127.0.0.1
TARGET_ADDRESS = "127.0.0.1"
PROGRAM = "yurt-router-dns"  # its supervisord program
MAX_PACKET = 4096


def srv_name(app: str) -> str:
    """The SRV name Caddy looks up for an app's web instances."""
    return f"{app}.web.{ZONE}"


def write_table(path: Path, upstreams: Mapping[str, Sequence[int]]) -> None:
    """Replace the table file in one rename: app -> ports of its routable web instances."""
    text = json.dumps({"apps": {app: sorted(ports) for app, ports in upstreams.items()}})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".router-dns-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_table(path: Path) -> dict[str, list[int]]:
    try:
        raw = json.loads(path.read_text())
        return {str(app): [int(p) for p in ports] for app, ports in raw["apps"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def answer(query: bytes, upstreams: Mapping[str, Sequence[int]]) -> bytes | None:
    """The reply to one DNS query packet; None for a packet that is not a query."""
    try:
        request = DNSRecord.parse(query)
    except Exception:  # dnslib raises its own DNSError and others on garbage
        return None
    if request.header.qr or not request.questions:
        return None
    reply = request.reply()
    reply.header.ra = 0
    q = request.q
    name = str(q.qname).lower()
    apps = {srv_name(app): ports for app, ports in upstreams.items()}
    if name == TARGET:
        if q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(q.qname, QTYPE.A, ttl=0, rdata=A(TARGET_ADDRESS)))
        # AAAA and others: no data (NOERROR, empty), so a dual-stack lookup still succeeds.
    elif name in apps:
        if q.qtype in (QTYPE.SRV, QTYPE.ANY):
            for port in apps[name]:
                reply.add_answer(RR(q.qname, QTYPE.SRV, ttl=0, rdata=SRV(0, 1, port, TARGET)))
            if apps[name]:
                reply.add_ar(RR(TARGET, QTYPE.A, ttl=0, rdata=A(TARGET_ADDRESS)))
    else:
        reply.header.rcode = RCODE.NXDOMAIN
    return bytes(reply.pack())


class _Table:
    """The table file, read again when it changes (a rename gives it a new inode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self.upstreams: dict[str, list[int]] = {}

    def current(self) -> dict[str, list[int]]:
        try:
            st = self.path.stat()
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key != self._key:
            self._key = key
            self.upstreams = read_table(self.path) if key is not None else {}
        return self.upstreams


def serve(listen: str, table_path: Path) -> None:
    host, _, port = listen.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host or "127.0.0.1", int(port)))
    table = _Table(table_path)
    print(f"answering for the router on udp {listen} from {table_path}", flush=True)
    while True:
        data, peer = sock.recvfrom(MAX_PACKET)
        reply = answer(data, table.current())
        if reply is not None:
            with contextlib.suppress(OSError):  # the asker is gone
                sock.sendto(reply, peer)


def probe(listen: str, timeout: float = 0.5) -> bool:
    """Whether a responder answers on ``listen`` (a query for :data:`TARGET`)."""
    host, _, port = listen.rpartition(":")
    query = DNSRecord.question(TARGET, "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query.pack(), (host or "127.0.0.1", int(port)))
            data, _ = sock.recvfrom(MAX_PACKET)
        except OSError:
            return False
    try:
        reply = DNSRecord.parse(data)
    except Exception:
        return False
    return reply.header.id == query.header.id and any(rr.rtype == QTYPE.A for rr in reply.rr)


def wait_ready(listen: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(listen, timeout=0.2):
            return True
        time.sleep(0.05)
    return False


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", required=True, help="loopback HOST:PORT (UDP)")
    parser.add_argument("--table", required=True, type=Path, help="the table file (JSON)")
    args = parser.parse_args(argv)
    serve(args.listen, args.table)


if __name__ == "__main__":
    main()
