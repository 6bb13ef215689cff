"""The client's side of one WebSocket session, sans-I/O.

`ClientSession` builds the hello, checks the server's, numbers requests,
and turns each frame the server sends into an event naming who waits for
it: the reply of a request, the end of a `get`, a chunk of the oldest
outstanding `get` (verified against its hash), a message of a subscription.
It keeps the presence peers up to date. What a waiter *is* (a future, a
queue) is the adapter's business (`client_py/session.py`): the session only
hands it back, typed by the three parameters `R` (a request's waiter), `G`
(a get's) and `Sub` (a subscription).

Text frames are `str`, binary frames `bytes`, as the `websockets` library
delivers them.
"""

from __future__ import annotations

import collections
import errno
from dataclasses import dataclass
from typing import Any, Generic, Mapping, TypeVar

import blake3
import orjson

from vfs.wire.codec import decode_server
from vfs.wire.coedit import Coedit, CoeditClosed
from vfs.wire.errors import EBADMSG, EBADOBJECT, EPROTO, ProtocolError
from vfs.wire.fields import RequestId
from vfs.wire.frames import FRAME_CHUNK, decode_chunk_frame
from vfs.wire.limits import (
    CLOSE_BAD_HELLO,
    CLOSE_POLICY,
    CLOSE_WORKSPACE_GONE,
    MAX_HASHES,
    PROTOCOL_VERSION,
)
from vfs.wire.messages import CaughtUp, Changes, Error, Ok, PresenceEvent, ServerHello
from vfs.wire.session import SessionState, require_state

R = TypeVar("R")
G = TypeVar("G")
Sub = TypeVar("Sub")


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replied(Generic[R]):
    """Request answered: `result` (the ok's fields) or `error` (what to raise)."""

    waiter: R
    result: dict[str, Any] | None = None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class GetDone(Generic[G]):
    """A `get` finished: its chunks are all delivered; `missing` the server lacked, or `error`."""

    get: G
    missing: list[str]
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class ChunkReceived(Generic[G]):
    """A chunk of `get`, its bytes verified against `hash`."""

    get: G
    hash: str
    data: memoryview


@dataclass(frozen=True, slots=True)
class SubscriptionMessage(Generic[Sub]):
    """A `changes` or `caught_up` for subscription `sub`, in the order received."""

    sub: Sub
    message: Changes | CaughtUp


@dataclass(frozen=True, slots=True)
class SubscriptionEnded(Generic[Sub]):
    """An `error` naming a live subscription: the server ended it (e.g. `ECURSORTOOOLD` while
    paging); `error` is what the consumer of `sub` should raise once it has read what came before."""

    sub: Sub
    error: BaseException


@dataclass(frozen=True, slots=True)
class CoeditEvent:
    """A `coedit` or `coedit_closed` for the document of `message.path` (the adapter routes it)."""

    message: Coedit | CoeditClosed


@dataclass(frozen=True, slots=True)
class ServerError:
    """An `error` answering no request we know (worth a log line, nothing to do)."""

    error: Error


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A text frame that does not parse: ignored, so a newer server's extras cannot break us."""

    error: ProtocolError


@dataclass(frozen=True, slots=True)
class Outstanding(Generic[R, G, Sub]):
    """Who still waited when the session closed: each must be failed."""

    replies: list[R]
    gets: list[G]
    subscriptions: list[Sub]


class _PendingGet(Generic[G]):
    """An outstanding `get`: the hashes whose chunk may still come, in request order."""

    __slots__ = ("get", "pending")

    def __init__(self, get: G, hashes: list[str]):
        self.get = get
        self.pending = collections.deque(hashes)


# -- the session ---------------------------------------------------------------------


def close_error(code: int | None, reason: str, where: str) -> Exception | None:
    """What a close code from the server means, or None for a lost connection (worth a retry)."""
    if code == CLOSE_WORKSPACE_GONE:
        return FileNotFoundError(errno.ENOENT, f"workspace deleted ({where})", where)
    if code == CLOSE_POLICY:
        why = reason or "token revoked or too many errors"
        return PermissionError(errno.EACCES, f"connection closed by policy: {why}")
    if code == CLOSE_BAD_HELLO:
        return ProtocolError(EPROTO, f"server refused the hello: {reason}")
    return None


class ClientSession(Generic[R, G, Sub]):
    """One connection's protocol state on the client."""

    def __init__(self) -> None:
        self.state = SessionState.AWAITING_HELLO
        self.hello: ServerHello | None = None
        self.peers: dict[str, dict[str, Any]] = {}  # presence: session id -> peer
        self.bytes_received = 0  # chunk payload bytes received
        self._next_id = 0
        self._replies: dict[RequestId, R] = {}
        self._gets: dict[RequestId, _PendingGet[G]] = {}
        self._get_order: collections.deque[RequestId] = collections.deque()  # chunks come for the oldest first
        self._subs: dict[str, Sub] = {}
        self._ended = False  # `close` has handed out who was waiting

    # -- the hello ----------------------------------------------------------------

    @staticmethod
    def hello_frame(client: str, presence: Mapping[str, Any] | None = None) -> str:
        """Our first frame; `presence` joins at once (its fields are the server's to check)."""
        msg: dict[str, Any] = {"type": "hello", "protocol": PROTOCOL_VERSION, "client": client}
        if presence:
            msg["presence"] = dict(presence)
        return orjson.dumps(msg).decode()

    def receive_hello(self, frame: str | bytes) -> ServerHello:
        """The server's first frame: its hello, else what to raise (its error, or EBADMSG/EPROTO)."""
        require_state(self.state, SessionState.AWAITING_HELLO, "receive the server hello")
        self.state = SessionState.CLOSED  # until the hello is found good
        if isinstance(frame, bytes):
            raise ProtocolError(EBADMSG, "server sent a binary frame before its hello")
        reply = decode_server(frame)
        if isinstance(reply, Error):
            raise reply.to_exception()
        if not isinstance(reply, ServerHello):
            raise ProtocolError(EPROTO, f"expected the server's hello, got {type(reply).__name__}")
        self.hello = reply
        self.state = SessionState.OPEN
        return reply

    # -- requests -----------------------------------------------------------------

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def start_request(self, waiter: R) -> int:
        """A new request id whose `ok`/`error` goes to `waiter`."""
        rid = self.new_id()
        self._replies[rid] = waiter
        return rid

    def start_get(self, hashes: list[str], get: G) -> int:
        """A new `get` id: its chunks, then its end, go to `get`."""
        if len(hashes) > MAX_HASHES:
            raise ValueError(f"at most {MAX_HASHES} hashes per get")
        rid = self.new_id()
        self._gets[rid] = _PendingGet(get, hashes)
        self._get_order.append(rid)
        return rid

    def new_subscription_id(self) -> str:
        return f"s{self.new_id()}"

    def start_subscription(self, sub_id: str, sub: Sub, waiter: R) -> None:
        """Route subscription `sub_id`'s messages to `sub`, and the reply to its `subscribe` to `waiter`."""
        self._subs[sub_id] = sub
        self._replies[sub_id] = waiter

    def end_subscription(self, sub_id: str) -> None:
        """Stop routing messages of `sub_id` (those still coming are dropped)."""
        self._subs.pop(sub_id, None)

    def forget(self, rid: RequestId) -> None:
        """The request was never sent (or its subscription not made): drop what waits for it."""
        self._replies.pop(rid, None)
        if self._gets.pop(rid, None) is not None:
            self._get_order.remove(rid)
        self._subs.pop(str(rid), None)

    # -- frames from the server ---------------------------------------------------------

    def receive_text(
        self, frame: str | bytes
    ) -> (Replied[R] | GetDone[G] | SubscriptionMessage[Sub] | SubscriptionEnded[Sub] | CoeditEvent | ServerError
          | BadFrame | None):
        """What a text frame means; None when nobody needs to hear of it."""
        if self.state is not SessionState.OPEN:
            return None
        try:
            msg = decode_server(frame)
        except ProtocolError as e:
            return BadFrame(e)
        if isinstance(msg, (Ok, Error)) and msg.id is not None:
            done = self._complete(msg)
            if done is not None:
                return done
            if isinstance(msg, Error) and (ended := self._subs.pop(str(msg.id), None)) is not None:
                return SubscriptionEnded(ended, msg.to_exception())
        if isinstance(msg, (Changes, CaughtUp)):
            sub = self._subs.get(str(msg.sub))
            return None if sub is None else SubscriptionMessage(sub, msg)
        if isinstance(msg, (Coedit, CoeditClosed)):
            return CoeditEvent(msg)
        if isinstance(msg, PresenceEvent):
            self._on_presence(msg)
        elif isinstance(msg, Error):
            return ServerError(msg)
        return None

    def receive_chunk(self, frame: bytes) -> ChunkReceived[G]:
        """A CHUNK frame for the oldest outstanding `get`.

        Raises `ProtocolError` for a frame out of place, a chunk not asked for, or
        bytes that do not hash to their id: the server is broken, close the session.
        Chunks the server skips are the ones its `ok` reports missing.
        """
        require_state(self.state, SessionState.OPEN, "receive a chunk")
        chunk = decode_chunk_frame(frame, expect=FRAME_CHUNK)
        if not self._get_order:
            raise ProtocolError(EBADMSG, "CHUNK frame without an outstanding get")
        get = self._gets[self._get_order[0]]
        if not get.pending or chunk.hash not in get.pending:
            raise ProtocolError(EBADMSG, f"unexpected chunk {chunk.hash}")
        while get.pending and get.pending[0] != chunk.hash:
            get.pending.popleft()  # skipped ones are reported as missing by the ok
        get.pending.popleft()
        if blake3.blake3(chunk.data).hexdigest() != chunk.hash:
            raise ProtocolError(EBADOBJECT, f"chunk bytes do not hash to {chunk.hash}")
        self.bytes_received += len(chunk.data)
        return ChunkReceived(get.get, chunk.hash, memoryview(chunk.data))

    def close(self) -> Outstanding[R, G, Sub] | None:
        """The connection ended: everyone still waiting (None if it had ended already)."""
        if self._ended:
            return None
        self._ended = True
        self.state = SessionState.CLOSED
        left = Outstanding(
            replies=list(self._replies.values()),
            gets=[g.get for g in self._gets.values()],
            subscriptions=list(self._subs.values()),
        )
        self._replies.clear()
        self._gets.clear()
        self._get_order.clear()
        self._subs.clear()
        return left

    @property
    def closed(self) -> bool:
        return self.state is SessionState.CLOSED

    # -- internals ----------------------------------------------------------------------

    def _complete(self, msg: Ok | Error) -> Replied[R] | GetDone[G] | None:
        rid = msg.id
        assert rid is not None
        get = self._gets.pop(rid, None)
        if get is not None:
            if self._get_order and self._get_order[0] == rid:
                self._get_order.popleft()
            else:
                self._get_order.remove(rid)
            if isinstance(msg, Ok):
                return GetDone(get.get, list(msg.result.get("missing", [])))
            return GetDone(get.get, [], msg.to_exception())
        if rid not in self._replies:
            return None
        waiter = self._replies.pop(rid)
        if isinstance(msg, Ok):
            return Replied(waiter, result=msg.result)
        return Replied(waiter, error=msg.to_exception())

    def _on_presence(self, msg: PresenceEvent) -> None:
        if msg.op == "sync":
            self.peers = {p["session"]: p for p in msg.peers or [] if isinstance(p, dict) and "session" in p}
        elif msg.peer and "session" in msg.peer:
            if msg.op == "leave":
                self.peers.pop(msg.peer["session"], None)
            else:
                self.peers[msg.peer["session"]] = msg.peer
