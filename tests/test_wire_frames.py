"""vfs.wire.frames: binary chunk frames round-trip; a frame out of place is EBADMSG."""

from __future__ import annotations

import orjson
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


def test_put_many_frames_round_trip_and_split_by_size() -> None:
    chunks = [(f"{i:02x}" * 32, bytes([i]) * (i * 100)) for i in range(1, 9)]  # (one of them ...
    chunks.append(("cd" * 32, b""))  # ... empty: a chunk may be 0 bytes)
    [frame] = p.encode_put_many_frames(chunks)
    assert frame[0] == p.FRAME_PUT_MANY == 0x03
    assert frame[1:33] == bytes.fromhex(chunks[0][0]) and frame[33:37] == (100).to_bytes(4, "big")
    decoded = p.decode_put_many_frame(frame)
    assert [(c.kind, c.hash, bytes(c.data)) for c in decoded] == [(p.FRAME_PUT, h, d) for h, d in chunks]
    split = p.encode_put_many_frames(chunks, max_bytes=1000)  # a frame closes once it holds 1000 bytes
    assert [len(p.decode_put_many_frame(f)) for f in split] == [4, 2, 2, 1]
    assert [c for f in split for c in p.decode_put_many_frame(f)] == decoded
    assert p.encode_put_many_frames([]) == []


@pytest.mark.parametrize("cut", [1, 20, 36, 37, 136])
def test_a_malformed_put_many_frame_is_ebadmsg(cut: int) -> None:
    [frame] = p.encode_put_many_frames([(HASH, b"x" * 100), ("cd" * 32, b"y")])
    with pytest.raises(p.ProtocolError) as info:
        p.decode_put_many_frame(frame[:cut])  # (cut in a header or in the bytes, or nothing in it)
    assert info.value.code == p.EBADMSG


def test_put_many_limits() -> None:
    big = bytes([p.FRAME_PUT_MANY]) + bytes.fromhex(HASH) + (p.MAX_CHUNK_PAYLOAD + 1).to_bytes(4, "big")
    with pytest.raises(p.ProtocolError) as info:
        p.decode_put_many_frame(big)
    assert info.value.code == p.EMSGSIZE
    many = p.encode_put_many_frames([(HASH, b"")] * (p.MAX_PUT_MANY + 1))
    assert [len(p.decode_put_many_frame(f)) for f in many] == [p.MAX_PUT_MANY, 1]
    with pytest.raises(p.ProtocolError):
        p.decode_put_many_frame(b"".join([many[0], many[1][1:]]))


def test_the_server_session_takes_both_upload_frames_and_lists_the_features() -> None:
    session = p.ServerSession("s1", max_errors=100)
    session.receive_hello(p.encode(p.Hello(protocol=1)))
    hello = session.server_hello(server="wsfs/x", workspace="demo", scope="write", rev=0)
    assert set(hello.features) == {p.FEATURE_PUT_MANY, p.FEATURE_FILE_SET_MTIME}
    assert p.decode_server(p.encode(hello)).features == hello.features
    one = session.receive_chunks(p.encode_chunk_frame(p.FRAME_PUT, HASH, b"a"))
    assert [(c.hash, bytes(c.data)) for c in one] == [(HASH, b"a")]
    [frame] = p.encode_put_many_frames([(HASH, b"a"), ("cd" * 32, b"bb")])
    assert [(c.hash, bytes(c.data)) for c in session.receive_chunks(frame)] == [(HASH, b"a"), ("cd" * 32, b"bb")]
    with pytest.raises(p.ProtocolError):
        session.receive_chunks(p.encode_chunk_frame(p.FRAME_CHUNK, HASH, b"a"))  # (server -> client only)


def test_a_hello_without_features_or_with_odd_ones() -> None:
    base = {"type": "hello", "protocol": 1, "server": "s", "workspace": "w", "session": "x", "scope": "read",
            "rev": 0, "cursor": "0"}
    assert p.decode_server(orjson.dumps(base)).features == ()  # (a server older than the field)
    assert p.decode_server(orjson.dumps({**base, "features": "put_many"})).features == ()
    assert p.decode_server(orjson.dumps({**base, "features": ["put_many", 3, "later"]})).features == ("put_many", "later")
