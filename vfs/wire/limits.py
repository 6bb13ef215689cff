"""Protocol version, size limits and WebSocket close codes: the numbers both sides agree on."""

from __future__ import annotations

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

# ---------------------------------------------------------------- limits

MAX_TEXT_FRAME = 8 * 1024 * 1024  # bytes of one JSON text frame
MAX_CHUNK_PAYLOAD = 4 * 1024 * 1024  # bytes of chunk data in one binary frame
MAX_HASHES = 4096  # hashes in one `has` / `get`
MAX_PUSH_ENTRIES = 4096  # entries in one `push`
MAX_INLINE = 1024 * 1024  # largest `inline_max` a subscriber may ask for
DEFAULT_BATCH = 256  # change entries per `changes` message
MAX_BATCH = 1024
MAX_GLOBS = 64
MAX_IGNORE_PATTERN = 255  # bytes of one `ignore` pattern
MAX_PRESENCE_FIELD = 256  # bytes of name / color; `cursor` encoded at most 1 KiB
MAX_ID_LEN = 64
MAX_PATTERN = 4096  # bytes of a `grep` pattern, a glob or an `include`
MAX_GREP_CONTEXT = 100  # lines of context around a `grep` match
INT64_MAX = 2**63 - 1  # every integer that reaches SQLite (sizes, offsets, revisions, cursors)
MTIME_MAX = 2**33  # |mtime| in seconds (years 1697-2242): stored as int64 nanoseconds, fits os.utime
TRANSPORT_MAX_FRAME = 16 * 1024 * 1024  # above this the transport closes with 1009
GC_GRACE = 3600  # seconds `POST .../gc` spares unnamed chunks stored (or uploaded again) for, unless ?grace=
MAX_GC_GRACE = 10 * 365 * 86400

LIMITS: dict[str, int] = {
    # what the server announces in its hello
    "max_text_frame": MAX_TEXT_FRAME,
    "max_chunk": MAX_CHUNK_PAYLOAD,
    "max_hashes": MAX_HASHES,
    "max_push_entries": MAX_PUSH_ENTRIES,
    "max_inline": MAX_INLINE,
    "max_batch": MAX_BATCH,
}

# ---------------------------------------------------------------- features
# What a server speaks beyond the version's first form, listed in its hello's `features` (a
# server older than a feature does not list it: a client uses one only when it is listed).
FEATURE_PUT_MANY = "put_many"  # binary frame 0x03: several chunk uploads in one frame
FEATURE_FILE_SET_MTIME = "file_set_mtime"  # `set_mtime` on a pushed file entry, not only a directory's
FEATURES: tuple[str, ...] = (FEATURE_PUT_MANY, FEATURE_FILE_SET_MTIME)

# ---------------------------------------------------------------- close codes

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down
CLOSE_BAD_DATA = 1007  # a text frame that is not valid UTF-8
CLOSE_POLICY = 1008  # flood, too many errors, token revoked
CLOSE_TOO_BIG = 1009  # frame above the transport limit
CLOSE_INTERNAL = 1011
CLOSE_BAD_HELLO = 4000  # missing/invalid hello or unsupported protocol version
CLOSE_WORKSPACE_GONE = 4404  # the workspace was deleted while connected
