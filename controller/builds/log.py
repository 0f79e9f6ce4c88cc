"""A build's log: appended by the runner, followed live by any number of readers.

The file in the data dir is the record; a Condition wakes followers when lines arrive or the
build ends, so ``builds:output`` and the pushing git client see output as it happens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path


class LogCapExceeded(Exception):
    pass


class BuildLog:
    def __init__(self, path: Path, cap: int) -> None:
        self.path = path
        self.cap = cap
        self._size = path.stat().st_size if path.exists() else 0
        self._closed = False
        self._cond = threading.Condition()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("ab")

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes, force: bool = False) -> None:
        """Append output; raise LogCapExceeded once the cap is passed.

        ``force`` writes past the cap: for the platform's own closing lines (the reason a build
        failed must reach the pusher even when the buildpack flooded the log).
        """
        with self._cond:
            if self._closed:
                return
            room = self.cap - self._size
            over = not force and len(data) > room
            if over:
                data = data[: max(room, 0)]
            self._fh.write(data)
            self._fh.flush()
            self._size += len(data)
            self._cond.notify_all()
        if over:
            raise LogCapExceeded(f"the build log passed its cap of {self.cap} bytes")

    def line(self, text: str) -> None:
        self.write((text + "\n").encode())

    def close(self) -> None:
        with self._cond:
            if not self._closed:
                self._closed = True
                self._fh.close()
            self._cond.notify_all()

    def follow(self, poll: float = 1.0) -> Iterator[bytes]:
        """Yield the log from the start, then new output until the log is closed."""
        with self.path.open("rb") as fh:
            while True:
                chunk = fh.read(65536)
                if chunk:
                    yield chunk
                    continue
                with self._cond:
                    if self._closed and fh.tell() >= self._size:
                        return
                    if fh.tell() >= self._size:
                        self._cond.wait(poll)


def read_all(path: Path) -> Iterator[bytes]:
    """Yield a finished build's log (nothing if it was never written)."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        while chunk := fh.read(65536):
            yield chunk
