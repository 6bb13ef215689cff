"""Binary WebSocket frames: chunks of content with their hashes.

Layout: 1 byte kind (`FRAME_PUT` client -> server, `FRAME_CHUNK` server ->
client), 32 bytes raw BLAKE3 hash, then the chunk bytes. `FRAME_PUT_MANY`
(client -> server, to a server whose hello lists `FEATURE_PUT_MANY`) carries
several uploads: 1 byte kind, then per chunk 32 bytes raw hash, 4 bytes
big-endian length, the bytes. One frame per chunk cost a mount one socket
send each (an untar uploads ~8,400 chunks) and the server one WebSocket
message each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vfs.wire.errors import EBADMSG, EMSGSIZE, ProtocolError
from vfs.wire.limits import MAX_CHUNK_PAYLOAD

FRAME_PUT = 0x01  # client -> server: store this chunk
FRAME_CHUNK = 0x02  # server -> client: a chunk you asked for with `get`
FRAME_PUT_MANY = 0x03  # client -> server: store these chunks (a server that lists FEATURE_PUT_MANY)
HASH_BYTES = 32
FRAME_HEADER = 1 + HASH_BYTES
PUT_MANY_ENTRY = HASH_BYTES + 4  # raw hash, 4-byte big-endian length, then the bytes
MAX_PUT_MANY = 4096  # chunks in one FRAME_PUT_MANY
PUT_MANY_BYTES = 1 << 20  # a client closes a FRAME_PUT_MANY past this many chunk bytes


@dataclass(frozen=True, slots=True)
class ChunkFrame:
    kind: int  # FRAME_PUT or FRAME_CHUNK
    hash: str  # lowercase hex
    data: bytes | memoryview


def encode_chunk_frame(kind: int, hash_hex: str, data: bytes | memoryview) -> bytes:
    """Binary frame: 1 byte kind, 32 bytes raw BLAKE3 hash, then the chunk bytes."""
    return bytes([kind]) + bytes.fromhex(hash_hex) + bytes(data)


def decode_chunk_frame(frame: bytes, *, expect: int) -> ChunkFrame:
    """Parse a binary frame; `expect` is the kind allowed in this direction."""
    if len(frame) < FRAME_HEADER:
        raise ProtocolError(EBADMSG, f"binary frame shorter than its {FRAME_HEADER}-byte header")
    kind = frame[0]
    if kind != expect:
        raise ProtocolError(EBADMSG, f"binary frame kind 0x{kind:02x} not allowed here (expected 0x{expect:02x})")
    if len(frame) - FRAME_HEADER > MAX_CHUNK_PAYLOAD:
        raise ProtocolError(EMSGSIZE, f"chunk larger than {MAX_CHUNK_PAYLOAD} bytes")
    return ChunkFrame(kind=kind, hash=frame[1:FRAME_HEADER].hex(), data=memoryview(frame)[FRAME_HEADER:])


def encode_put_many_frames(chunks: Iterable[tuple[str, bytes | memoryview]], *,
                           max_bytes: int = PUT_MANY_BYTES) -> list[bytes]:
    """`FRAME_PUT_MANY` frames carrying `chunks` in order: a frame ends once it holds `max_bytes`
    of chunk bytes or `MAX_PUT_MANY` chunks (a chunk of up to 4 MiB goes whole in its frame)."""
    frames: list[bytes] = []
    parts: list[bytes | memoryview] = [_PUT_MANY_KIND]
    size = count = 0
    for hash_hex, data in chunks:
        parts += (bytes.fromhex(hash_hex), len(data).to_bytes(4, "big"), data)
        size += len(data)
        count += 1
        if size >= max_bytes or count >= MAX_PUT_MANY:
            frames.append(b"".join(parts))
            parts, size, count = [_PUT_MANY_KIND], 0, 0
    if count:
        frames.append(b"".join(parts))
    return frames


def decode_put_many_frame(frame: bytes) -> list[ChunkFrame]:
    """The chunks of a `FRAME_PUT_MANY` (whole or EBADMSG: nothing of a malformed frame is taken)."""
    view = memoryview(frame)
    if len(view) < 1 or view[0] != FRAME_PUT_MANY:
        raise ProtocolError(EBADMSG, "not a PUT_MANY frame")
    chunks: list[ChunkFrame] = []
    at, end = 1, len(view)
    while at < end:
        if end - at < PUT_MANY_ENTRY:
            raise ProtocolError(EBADMSG, f"PUT_MANY frame cut inside a chunk header at byte {at}")
        size = int.from_bytes(view[at + HASH_BYTES : at + PUT_MANY_ENTRY], "big")
        if size > MAX_CHUNK_PAYLOAD:
            raise ProtocolError(EMSGSIZE, f"chunk larger than {MAX_CHUNK_PAYLOAD} bytes")
        start = at + PUT_MANY_ENTRY
        if end - start < size:
            raise ProtocolError(EBADMSG, f"PUT_MANY frame cut inside a chunk at byte {end}")
        chunks.append(ChunkFrame(kind=FRAME_PUT, hash=view[at : at + HASH_BYTES].hex(), data=view[start : start + size]))
        if len(chunks) > MAX_PUT_MANY:
            raise ProtocolError(EBADMSG, f"more than {MAX_PUT_MANY} chunks in one PUT_MANY frame")
        at = start + size
    if not chunks:
        raise ProtocolError(EBADMSG, "PUT_MANY frame without a chunk")
    return chunks


_PUT_MANY_KIND = bytes([FRAME_PUT_MANY])
