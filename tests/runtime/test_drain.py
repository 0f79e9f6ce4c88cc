"""Old web instances are stopped only once nothing waits on their port (see _port_busy)."""

from __future__ import annotations

import socket
import time

from controller.runtime.local.runtime import _port_busy, _wait_drained


def test_a_queued_connection_keeps_the_port_busy_until_accepted_and_read() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        assert not _port_busy({port})
        client = socket.create_connection(("127.0.0.1", port))
        try:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
            assert _port_busy({port})  # in the accept queue
            conn, _ = listener.accept()
            with conn:
                time.sleep(0.05)
                assert _port_busy({port})  # accepted, request not read
                conn.recv(4096)
                time.sleep(0.05)
                assert not _port_busy({port})
                assert not _port_busy({port + 1 if port < 65535 else port - 1})
        finally:
            client.close()


def test_wait_drained_returns_after_the_minimum_when_quiet_and_caps_at_the_maximum() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        _wait_drained({port}, 0.2, 5.0)
        assert 0.2 <= time.monotonic() - started < 2.0
        client = socket.create_connection(("127.0.0.1", port))  # never accepted
        try:
            started = time.monotonic()
            _wait_drained({port}, 0.0, 0.5)
            assert 0.5 <= time.monotonic() - started < 2.0
        finally:
            client.close()
