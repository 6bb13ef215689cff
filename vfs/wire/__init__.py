"""The wsfs wire protocol, sans-I/O: every message and wire value defined once.

Both the server and `client_py` import this package, so the two sides cannot
drift apart. Nothing here does I/O: it turns bytes/str into validated objects
and objects into bytes, and maps errors to wire codes and HTTP statuses both
ways. `docs/protocol.md` is the prose version; when they disagree, this code
is the bug to fix *and* the doc is. Validation raises `ProtocolError`, whose
`code`/`message` go straight into an error reply, so a malformed frame or body
always gets an answer naming the problem.

Which module holds what (import from `vfs.wire` itself; every public name is
re-exported here):

- `limits`   protocol version, size limits (`LIMITS`), WebSocket close codes
- `errors`   error codes, `STATUS_BY_CODE`, `ProtocolError`, exception <-> error
- `fields`   field validation of decoded JSON, request ids, workspace names, `is_hash`
- `values`   value types (stat, dir entry, version, change, ...) to and from wire dicts
- `globs`    the one glob and ignore matcher: `glob_to_regex`, `IgnoreMatcher`, the subscription `PathFilter`
- `frames`   binary chunk frames (`FRAME_PUT`, `FRAME_CHUNK`, `encode/decode_chunk_frame`)
- `messages` the WebSocket message classes (`Hello`, `Subscribe`, ..., `Changes`)
- `codec`    text frames <-> messages (`decode_client`, `decode_server`, `encode`), `negotiate`
- `http`     the HTTP op table (`OPS`: op name -> its fields) and every HTTP body,
             query value and header the API parses (`parse_op`, `parse_push`,
             `parse_range`, `parse_if_match`, ...)
- `routes`   every HTTP route and the WebSocket path, once (`ROUTES`, `build`);
             the server mounts from it, the clients build URLs from it
- `session`, `server_session`, `client_session`
             the WebSocket session as sans-I/O state machines (`ServerSession`,
             `ClientSession`): which frame is legal when, request and subscription
             ids, error counting; `server/ws_api.py` and `client_py/session.py`
             are their I/O adapters
"""

from __future__ import annotations

from vfs.wire.limits import (
    CLOSE_BAD_HELLO,
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_WORKSPACE_GONE,
    DEFAULT_BATCH,
    LIMITS,
    MAX_BATCH,
    MAX_CHUNK_PAYLOAD,
    MAX_GLOBS,
    MAX_IGNORE_PATTERN,
    MAX_HASHES,
    MAX_ID_LEN,
    MAX_INLINE,
    MAX_PRESENCE_FIELD,
    MAX_PUSH_ENTRIES,
    MAX_TEXT_FRAME,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    TRANSPORT_MAX_FRAME,
)
from vfs.wire.errors import (
    EACCES,
    EAUTH,
    EBADMSG,
    EBADOBJECT,
    ECURSORTOOOLD,
    EINTERNAL,
    EMISSINGOBJECTS,
    EMSGSIZE,
    EPRECONDITION,
    EPROTO,
    EPROTONOSUPPORT,
    ERANGE,
    ESHUTDOWN,
    STATUS_BY_CODE,
    ProtocolError,
    error_body,
    error_to_exception,
    exception_to_error,
    status_for,
)
from vfs.wire.fields import (
    HASH_RE,
    RequestId,
    is_hash,
    valid_workspace_name,
)
from vfs.wire.values import (
    apply_result_from_wire,
    apply_result_to_wire,
    base_to_wire,
    change_from_wire,
    change_to_wire,
    conflict_from_wire,
    conflict_to_wire,
    direntry_from_wire,
    direntry_to_wire,
    entry_data,
    gcstats_from_wire,
    gcstats_to_wire,
    grepmatch_from_wire,
    grepmatch_to_wire,
    parse_base,
    stat_from_wire,
    stat_to_wire,
    version_from_wire,
    version_to_wire,
)
from vfs.wire.globs import (
    IgnoreMatcher,
    PathFilter,
    glob_to_regex,
)
from vfs.wire.frames import (
    FRAME_CHUNK,
    FRAME_HEADER,
    FRAME_PUT,
    HASH_BYTES,
    ChunkFrame,
    decode_chunk_frame,
    encode_chunk_frame,
)
from vfs.wire.messages import (
    CaughtUp,
    Changes,
    ClientMessage,
    Error,
    Get,
    Has,
    Hello,
    Ok,
    Ping,
    Presence,
    PresenceEvent,
    Push,
    ServerHello,
    ServerMessage,
    Subscribe,
    Unsubscribe,
)
from vfs.wire.codec import (
    decode_client,
    decode_server,
    encode,
    negotiate,
)
from vfs.wire.http import (
    OPS,
    Op,
    parse_flag,
    parse_mode,
    parse_op,
)

from vfs.wire.session import (
    Close,
    SessionState,
    WrongState,
)
from vfs.wire.server_session import (
    ErrorReply,
    HelloRefused,
    PresenceOutbox,
    ServerSession,
)
from vfs.wire.client_session import (
    BadFrame,
    ChunkReceived,
    ClientSession,
    GetDone,
    Outstanding,
    Replied,
    ServerError,
    SubscriptionMessage,
    close_error,
)

__all__ = [
    "CLOSE_BAD_HELLO",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_WORKSPACE_GONE",
    "DEFAULT_BATCH",
    "LIMITS",
    "MAX_BATCH",
    "MAX_CHUNK_PAYLOAD",
    "MAX_GLOBS",
    "MAX_IGNORE_PATTERN",
    "MAX_HASHES",
    "MAX_ID_LEN",
    "MAX_INLINE",
    "MAX_PRESENCE_FIELD",
    "MAX_PUSH_ENTRIES",
    "MAX_TEXT_FRAME",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "TRANSPORT_MAX_FRAME",
    "EACCES",
    "EAUTH",
    "EBADMSG",
    "EBADOBJECT",
    "ECURSORTOOOLD",
    "EINTERNAL",
    "EMISSINGOBJECTS",
    "EMSGSIZE",
    "EPRECONDITION",
    "EPROTO",
    "EPROTONOSUPPORT",
    "ERANGE",
    "ESHUTDOWN",
    "STATUS_BY_CODE",
    "ProtocolError",
    "error_body",
    "error_to_exception",
    "exception_to_error",
    "status_for",
    "HASH_RE",
    "RequestId",
    "is_hash",
    "valid_workspace_name",
    "apply_result_from_wire",
    "apply_result_to_wire",
    "base_to_wire",
    "change_from_wire",
    "change_to_wire",
    "conflict_from_wire",
    "conflict_to_wire",
    "direntry_from_wire",
    "direntry_to_wire",
    "entry_data",
    "gcstats_from_wire",
    "gcstats_to_wire",
    "grepmatch_from_wire",
    "grepmatch_to_wire",
    "parse_base",
    "stat_from_wire",
    "stat_to_wire",
    "version_from_wire",
    "version_to_wire",
    "IgnoreMatcher",
    "PathFilter",
    "glob_to_regex",
    "FRAME_CHUNK",
    "FRAME_HEADER",
    "FRAME_PUT",
    "HASH_BYTES",
    "ChunkFrame",
    "decode_chunk_frame",
    "encode_chunk_frame",
    "CaughtUp",
    "Changes",
    "ClientMessage",
    "Error",
    "Get",
    "Has",
    "Hello",
    "Ok",
    "Ping",
    "Presence",
    "PresenceEvent",
    "Push",
    "ServerHello",
    "ServerMessage",
    "Subscribe",
    "Unsubscribe",
    "decode_client",
    "decode_server",
    "encode",
    "negotiate",
    "OPS",
    "Op",
    "parse_flag",
    "parse_mode",
    "parse_op",
    "Close",
    "SessionState",
    "WrongState",
    "ErrorReply",
    "HelloRefused",
    "PresenceOutbox",
    "ServerSession",
    "BadFrame",
    "ChunkReceived",
    "ClientSession",
    "GetDone",
    "Outstanding",
    "Replied",
    "ServerError",
    "SubscriptionMessage",
    "close_error",
]
