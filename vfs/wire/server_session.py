"""The server's side of one WebSocket session, sans-I/O.

`ServerSession` takes the frames a connection receives and says what they
mean: the first must be a hello of a version we speak (else an error and
close 4000); after it, text frames are client messages and binary frames are
chunk uploads; a second hello is EPROTO. It answers errors (counting them:
past `max_errors` the connection is closed 1008), keeps the connection's
subscriptions by id, merges its presence, and coalesces the presence events
it still owes the client. The adapter (`server/ws_api.py`) does the reading,
the writing and the store calls.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from vfs.wire.codec import decode_client, negotiate
from vfs.wire.coedit import OpenDocuments
from vfs.wire.errors import EBADMSG, EPROTO, ProtocolError, exception_to_error
from vfs.wire.fields import RequestId
from vfs.wire.frames import FRAME_PUT, FRAME_PUT_MANY, ChunkFrame, decode_chunk_frame, decode_put_many_frame
from vfs.wire.limits import CLOSE_BAD_HELLO, CLOSE_POLICY, FEATURES, LIMITS
from vfs.wire.messages import (
    ClientMessage,
    Error,
    Hello,
    Presence,
    PresenceEvent,
    ServerHello,
    Subscribe,
    Unsubscribe,
)
from vfs.wire.session import Close, SessionState, require_state

S = TypeVar("S")  # what the adapter keeps per subscription (its task, cursor, ...)

PEER_FIELDS = ("name", "color", "file", "cursor")


class HelloRefused(Exception):
    """The first frame was not an acceptable hello: send `error`, then close with `close`."""

    def __init__(self, error: ProtocolError):
        super().__init__(error.message)
        self.error = error
        self.close = Close(CLOSE_BAD_HELLO, error.code)


class ErrorReply:
    """An error to send, and whether it was one too many (then `close` is set)."""

    __slots__ = ("error", "close")

    def __init__(self, error: ProtocolError, close: Close | None):
        self.error = error
        self.close = close

    @property
    def message(self) -> Error:
        return self.error.to_message()


class ServerSession(Generic[S]):
    """One connection's protocol state on the server."""

    def __init__(self, session_id: str, *, max_errors: int):
        self.session_id = session_id
        self.max_errors = max_errors
        self.state = SessionState.AWAITING_HELLO
        self.hello: Hello | None = None
        self.version: int | None = None
        self.errors = 0
        self.subscriptions: dict[RequestId, S] = {}
        self.presence: dict[str, Any] | None = None  # this connection's own peer state, once it joined
        self.outbox = PresenceOutbox()
        self.coedit = OpenDocuments()  # the documents this connection co-edits (vfs.wire.coedit)

    # -- the hello ----------------------------------------------------------------

    def receive_hello(self, frame: str | bytes | None) -> Hello:
        """Accept the first frame (`None`: it was not a text frame) or raise `HelloRefused`."""
        require_state(self.state, SessionState.AWAITING_HELLO, "receive a hello")
        try:
            if frame is None:
                raise ProtocolError(EBADMSG, "the first frame must be a hello text frame")
            hello = decode_client(frame)
            if not isinstance(hello, Hello):
                raise ProtocolError(EPROTO, f"the first frame must be a hello, not {hello.TYPE!r}")
            self.version = negotiate(hello)
        except ProtocolError as e:
            self.state = SessionState.CLOSED
            raise HelloRefused(e) from None
        self.hello = hello
        self.state = SessionState.OPEN
        return hello

    def server_hello(self, *, server: str, workspace: str, scope: str, rev: int) -> ServerHello:
        """Our hello, once the client's was accepted."""
        require_state(self.state, SessionState.OPEN, "send the server hello")
        assert self.version is not None
        return ServerHello(
            protocol=self.version,
            server=server,
            workspace=workspace,
            session=self.session_id,
            scope=scope,
            rev=rev,
            cursor=str(rev),
            limits=dict(LIMITS),
            features=FEATURES,
        )

    def no_hello(self) -> Close:
        """The client said nothing in time."""
        self.state = SessionState.CLOSED
        return Close(CLOSE_BAD_HELLO, "no hello")

    # -- frames after the hello ----------------------------------------------------

    def receive_text(self, frame: str | bytes) -> ClientMessage:
        """A client message; raises `ProtocolError` (with its request id when readable)."""
        require_state(self.state, SessionState.OPEN, "receive a message")
        msg = decode_client(frame)
        if isinstance(msg, Hello):
            raise ProtocolError(EPROTO, "hello was already exchanged", field="type")
        return msg

    def receive_chunk(self, frame: bytes) -> ChunkFrame:
        """A chunk upload (a PUT frame); any other binary frame is EBADMSG."""
        require_state(self.state, SessionState.OPEN, "receive a chunk")
        return decode_chunk_frame(frame, expect=FRAME_PUT)

    def receive_chunks(self, frame: bytes) -> list[ChunkFrame]:
        """The chunk uploads of a PUT or a PUT_MANY frame (`FEATURE_PUT_MANY`), in order; any
        other binary frame, or a malformed one, is EBADMSG (nothing of it is taken)."""
        if not frame or frame[0] != FRAME_PUT_MANY:
            return [self.receive_chunk(frame)]
        require_state(self.state, SessionState.OPEN, "receive a chunk")
        return decode_put_many_frame(frame)

    def error_reply(self, exc: BaseException, id: RequestId | None = None) -> ErrorReply:
        """The error frame answering `exc` (for request `id` unless it names its own).

        Every error counts: one past `max_errors` and the connection is closed 1008,
        so a client cannot make the server answer garbage forever.
        """
        err = exception_to_error(exc)
        if err.id is None:
            err.id = id
        self.errors += 1
        close = Close(CLOSE_POLICY, "too many errors") if self.errors > self.max_errors else None
        return ErrorReply(err, close)

    def close(self) -> list[S]:
        """The protocol is over: the subscriptions it still had, to stop."""
        self.state = SessionState.CLOSED
        subs = list(self.subscriptions.values())
        self.subscriptions.clear()
        return subs

    @property
    def closed(self) -> bool:
        return self.state is SessionState.CLOSED

    # -- subscriptions -------------------------------------------------------------

    def check_subscribe(self, msg: Subscribe) -> None:
        """Refuse a subscription id still in use (before any work is done for it)."""
        if msg.id in self.subscriptions:
            raise ProtocolError(EPROTO, f"subscription id {msg.id!r} is already in use", field="id", id=msg.id)

    def add_subscription(self, sub_id: RequestId, sub: S) -> None:
        if sub_id in self.subscriptions:
            raise ProtocolError(EPROTO, f"subscription id {sub_id!r} is already in use", field="id", id=sub_id)
        self.subscriptions[sub_id] = sub

    def unsubscribe(self, msg: Unsubscribe) -> S:
        """The subscription `msg` ends (ENOENT if there is none of that id)."""
        sub = self.subscriptions.pop(msg.sub, None)
        if sub is None:
            raise ProtocolError("ENOENT", f"no subscription {msg.sub!r}", id=msg.id)
        return sub

    def drop_subscription(self, sub_id: RequestId) -> S | None:
        """A subscription that failed on its own; None if it was already gone."""
        return self.subscriptions.pop(sub_id, None)

    # -- presence ------------------------------------------------------------------

    def update_presence(self, msg: Presence) -> tuple[str, dict[str, Any]] | None:
        """Merge a presence message; the (op, peer) to publish to the others, or None.

        `update` before any `join` is a join; fields not given keep their value;
        `leave` without a join says nothing.
        """
        if msg.op == "leave":
            return self.leave()
        op = "join" if self.presence is None else "update"
        state = dict(self.presence or {"session": self.session_id, **dict.fromkeys(PEER_FIELDS)})
        for key in PEER_FIELDS:
            value = getattr(msg, key)
            if value is not None:
                state[key] = value
        self.presence = state
        return op, state

    def leave(self) -> tuple[str, dict[str, Any]] | None:
        """This connection leaves (explicitly, or it closed): what to publish, if it had joined."""
        if self.presence is None:
            return None
        self.presence = None
        return "leave", {"session": self.session_id}

    def author(self, default: str) -> str:
        """Who this connection's writes are by: its presence name when it gave one, else `default`."""
        return (self.presence or {}).get("name") or default


class PresenceOutbox:
    """The presence events owed to one client, latest state per peer (never a backlog).

    A peer that joined and updated before the client heard of it is still a
    `join`; one that joined and left unseen is not mentioned at all.
    """

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}

    def add(self, op: str, peer: dict[str, Any]) -> bool:
        """Owe the client this event; True if there is now something to send."""
        session = peer["session"]
        prev = self._pending.get(session)
        if prev is not None and prev[0] == "join" and op == "update":
            op = "join"  # the receiver has not seen the join yet
        if prev is not None and prev[0] == "join" and op == "leave":
            del self._pending[session]  # joined and left unseen: nothing to say
            return False
        self._pending[session] = (op, peer)
        return True

    def take(self) -> list[PresenceEvent]:
        """The events owed now, once each (what is added meanwhile waits for the next take)."""
        pending, self._pending = self._pending, {}
        return [PresenceEvent(op=op, peer=peer) for op, peer in pending.values()]

    def __len__(self) -> int:
        return len(self._pending)
