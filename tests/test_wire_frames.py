"""vfs.wire.frames: binary chunk frames round-trip; a frame out of place is EBADMSG."""

from __future__ import annotations

import pytest

from vfs import wire as p

HASH = "ab" * 32


def test_chunk_frames() -> None:
    frame = p.encode_chunk_frame(p.FRAME_PUT, HASH, b"payload")
    assert frame[0] == 1 and frame[1:33] == bytes.fromhex(HASH) and frame[33:] == b"payload"
    assert len(frame) == p.FRAME_HEADER + 7
    decoded = p.decode_chunk_frame(frame, expect=p.FRAME_PUT)
    assert decoded.hash == HASH and bytes(decoded.data) == b"payload"
    with pytest.raises(p.ProtocolError) as info:
        p.decode_chunk_frame(frame, expect=p.FRAME_CHUNK)
    assert info.value.code == p.EBADMSG
    with pytest.raises(p.ProtocolError):
        p.decode_chunk_frame(frame[:20], expect=p.FRAME_PUT)
