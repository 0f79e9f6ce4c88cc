"""Incremental decoding of Nomad's log stream (``GET /v1/client/fs/logs/:alloc``).

The body is a sequence of JSON objects with no delimiter: ``{"Offset": n, "Data": "<base64>",
"File": "..."}`` frames, ``{"FileEvent": "file truncated"}`` notices, and ``{}`` heartbeats
about once a second (reference §1.9, pitfall 15). It arrives in arbitrary pieces, so a frame may
be split across reads. ``FrameDecoder`` finds frame boundaries at the byte level (the bytes
``{``, ``}``, ``"`` and ``\\`` never occur inside a multi-byte UTF-8 sequence), so it works on
any split, never re-scans what it has already consumed and holds at most one partial frame.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

_OPEN, _CLOSE, _QUOTE, _BACKSLASH = ord("{"), ord("}"), ord('"'), ord("\\")
_WHITESPACE = frozenset(b" \t\r\n")


class FrameError(ValueError):
    """The stream is not a sequence of JSON frames (the message says what was wrong)."""


@dataclass(frozen=True)
class LogFrame:
    """One decoded frame; a heartbeat has no data and no event."""

    data: bytes = b""
    offset: int | None = None
    file: str = ""
    file_event: str = ""

    @property
    def heartbeat(self) -> bool:
        return not self.data and not self.file_event and self.offset is None


class FrameDecoder:
    """Feed bytes as they arrive; get back every frame completed by them."""

    def __init__(self, max_frame: int = 1024 * 1024) -> None:
        self._buf = bytearray()
        self._scan = 0  # how far _buf has been scanned for the current frame
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._max_frame = max_frame

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (0 at a frame boundary)."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[LogFrame]:
        self._buf.extend(chunk)
        frames: list[LogFrame] = []
        while True:
            end = self._frame_end()
            if end is None:
                break
            raw = bytes(self._buf[:end])
            del self._buf[:end]
            self._scan = 0
            frames.append(_decode(raw))
        if len(self._buf) > self._max_frame:
            raise FrameError(f"log frame larger than {self._max_frame} bytes")
        return frames

    def _frame_end(self) -> int | None:  # noqa: C901 - a small byte-level state machine
        """The end of the first complete frame in the buffer, or None (state kept for later)."""
        buf = self._buf
        while self._scan < len(buf):
            byte = buf[self._scan]
            self._scan += 1
            if self._depth == 0:
                if byte in _WHITESPACE:
                    continue
                if byte != _OPEN:
                    raise FrameError(f"expected '{{' between log frames, got {bytes([byte])!r}")
                self._depth = 1
            elif self._in_string:
                if self._escaped:
                    self._escaped = False
                elif byte == _BACKSLASH:
                    self._escaped = True
                elif byte == _QUOTE:
                    self._in_string = False
            elif byte == _QUOTE:
                self._in_string = True
            elif byte == _OPEN:
                self._depth += 1
            elif byte == _CLOSE:
                self._depth -= 1
                if self._depth == 0:
                    return self._scan
        return None


def _decode(raw: bytes) -> LogFrame:
    try:
        obj: Any = json.loads(raw)
    except ValueError as exc:
        raise FrameError(f"malformed log frame: {exc}") from exc
    if not isinstance(obj, dict):
        raise FrameError("log frame is not a JSON object")
    try:
        data = base64.b64decode(obj.get("Data") or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError("log frame Data is not base64") from exc
    offset = obj.get("Offset")
    return LogFrame(
        data=data,
        offset=offset if isinstance(offset, int) else None,
        file=str(obj.get("File") or ""),
        file_event=str(obj.get("FileEvent") or ""),
    )
