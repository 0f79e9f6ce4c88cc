"""Decoding Nomad's concatenated-JSON log frames, however the bytes are split."""

from __future__ import annotations

import base64
import json

import pytest

from controller.runtime.nomad.logframes import FrameDecoder, FrameError, LogFrame


def frame(data: bytes, offset: int) -> bytes:
    return json.dumps(
        {"Offset": offset, "Data": base64.b64encode(data).decode(), "File": "alloc/logs/t.stdout.0"}
    ).encode()


STREAM = (
    frame(b"-----> Building\n", 16)
    + b"{}"
    + frame('caf\u00e9 {"json"} \\ done\n'.encode(), 40)
    + b'{"FileEvent":"file truncated"}'
    + b"\n{}"
)


@pytest.mark.parametrize("piece", [1, 2, 3, 7, len(STREAM)])
def test_any_split_gives_the_same_frames(piece: int) -> None:
    decoder, frames = FrameDecoder(), []
    for start in range(0, len(STREAM), piece):
        frames.extend(decoder.feed(STREAM[start : start + piece]))
    assert decoder.pending == 0
    assert [f.data for f in frames if f.data] == [
        b"-----> Building\n",
        'caf\u00e9 {"json"} \\ done\n'.encode(),
    ]
    assert [f.offset for f in frames] == [16, None, 40, None, None]
    assert [f.heartbeat for f in frames] == [False, True, False, False, True]
    assert frames[3] == LogFrame(file_event="file truncated")


def test_partial_frame_is_held_back() -> None:
    decoder = FrameDecoder()
    whole = frame(b"x" * 100, 100)
    assert decoder.feed(whole[:50]) == []
    assert decoder.pending == 50
    (done,) = decoder.feed(whole[50:])
    assert done.data == b"x" * 100


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"oops", "expected '{'"),
        (b'{"Data": "not base64!"}', "not base64"),
        (b'{"Data": tru}', "malformed log frame"),
    ],
)
def test_garbage_is_an_error(body: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        FrameDecoder().feed(body)


def test_an_unterminated_frame_cannot_grow_forever() -> None:
    decoder = FrameDecoder(max_frame=1000)
    with pytest.raises(FrameError, match="larger than 1000"):
        decoder.feed(b'{"Data": "' + b"A" * 2000)
