"""Binary WebSocket frames: one chunk of content with its hash.

Layout: 1 byte kind (`FRAME_PUT` client -> server, `FRAME_CHUNK` server ->
client), 32 bytes raw BLAKE3 hash, then the chunk bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfs.wire.errors import EBADMSG, EMSGSIZE, ProtocolError
from vfs.wire.limits import MAX_CHUNK_PAYLOAD

FRAME_PUT = 0x01  # client -> server: store this chunk
FRAME_CHUNK = 0x02  # server -> client: a chunk you asked for with `get`
HASH_BYTES = 32
FRAME_HEADER = 1 + HASH_BYTES


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
