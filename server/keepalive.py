"""WebSocket keepalive pings for every socket from one timer: `Keepalive`.

uvicorn pings each WebSocket itself: per socket and per interval, a timer to
send the ping, a second one for its pong's deadline, a random payload, and
the frame built through the protocol object. At 10,000 idle subscribers and
the default 20 s interval that is 500 pings/s, about half of an idle
server's CPU (docs/server.md, "Many workspaces on one node"). Here `wsfs
serve` turns uvicorn's pings off (`server/runner.py`) and one timer ticks
every `interval / SLOTS` seconds (at most every second): each socket sits
in one slot of a wheel, so a tick visits only the sockets due (those
registered that long ago, modulo the interval) and writes each the same
pre-built 6-byte ping frame. No per-socket timer, no per-ping allocation.

A visit knows whether the last ping was answered from the protocol's
`pending_ping_payload`, which uvicorn's `handle_pong` clears when the pong
comes; a pong that arrives alone between frames (the usual case) is taken
before websockets' parser instead (`take_pongs`), which clears it the same
way at a fraction of the cost (the replaced `data_received` is handed back to
the transport with `set_protocol`: uvloop's transports keep the bound method
they were given, asyncio's look it up per read).

Any other bytes from the client also prove it alive: the same wrapper sets
the socket's `heard` flag (one attribute store per read, no clock), so a pong
queued behind a big upload on a slow link does not get the client dropped,
and a socket heard from since its last visit is not pinged at that visit at
all (a client pinging us, or pushing, keeps itself alive). Each ping's
deadline sits in a second wheel, `timeout` seconds on: a socket whose ping
is then still unanswered and which sent nothing since is failed with
uvicorn's own `keepalive_timeout` (close 1011, transport closed), as
uvicorn would. So a client that only answers pings and then goes silent is
dropped at most `interval + timeout` after its last pong (30 + 15 s by
default); one whose last bytes were data, at most `2 x interval + timeout`.
Only uvicorn's websockets-sansio protocol is recognised (`RawSocket`);
under another server its own pings stay on and this is never started.

A closing socket whose peer takes no bytes is **aborted** (`linger`): a
transport closed with unsent data waits for the buffer to drain, which a
peer that stopped reading (or vanished) never lets happen, so the socket, its
buffer and (after a keepalive drop, where uvicorn queues no disconnect) the
whole session stayed until the peer went, and uvicorn's shutdown waited on it
(or failed on it: `send_close` on a connection the peer is closing). When a
session ends, or the keepalive drops it, with bytes still queued, the socket
gets `timeout` seconds per check to take some; one that took none is aborted,
and a server shutdown aborts them all at once (`abort_lingering`).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from websockets.protocol import State
from websockets.streams import StreamReader

from server.rawsocket import RawSocket

PAYLOAD = b"wsfs"
PING = bytes((0x89, len(PAYLOAD))) + PAYLOAD  # FIN + ping, unmasked (a server frame), 4-byte payload
_PAYLOAD_INT = int.from_bytes(PAYLOAD, "big")
_AT_EOF = StreamReader.at_eof.__code__
SLOTS = 20  # wheel slots per interval (a tick each), so each tick visits about a twentieth of the sockets
MAX_TICK = 1.0  # seconds: a tick at least this often, so a socket's first ping is at most this late
INTERVAL = 30.0  # `wsfs serve`'s defaults (--ws-ping-interval, --ws-ping-timeout): 333 pings/s at 10,000 sockets
TIMEOUT = 15.0


class Pinged(RawSocket):
    """A socket the keepalive pings: `heard` is set by every read but our pongs' (`take_pongs`) and
    cleared by its visit; `due` is the tick of its ping's deadline (0: none pending)."""

    __slots__ = ("due", "heard")

    def __init__(self, protocol: Any):
        super().__init__(protocol)
        self.heard = False
        self.due = 0


class Keepalive:
    """Pings every registered socket once per `interval` unless it was heard from since the last one;
    drops those that sent nothing in the `timeout` after a ping."""

    def __init__(self, interval: float, timeout: float | None, pinging: bool = True):
        """`pinging=False`: uvicorn pings the sockets itself (a cluster node, `WSFS_SERVER_PINGS=0`,
        the app under plain uvicorn); this one only lingers closing sockets (`linger`)."""
        self.pinging = pinging
        self.interval = interval
        self.timeout = timeout
        self.tick = min(MAX_TICK, interval / SLOTS)
        self.slots: list[dict[int, Pinged]] = [{} for _ in range(max(1, round(interval / self.tick)))]
        self.pos = 0
        self.ticks = 0  # ticks so far: the deadline wheel's clock
        self.wait = None if timeout is None else max(1, math.ceil(timeout / self.tick - 1e-9))  # ticks to a deadline
        self.pings = 0
        self.pongs_taken = 0  # pongs answered by `take_pongs` (before websockets' parser)
        self.skipped = 0  # visits that sent no ping: the socket was heard from within the interval
        self.heard_late = 0  # pings unanswered at their deadline whose socket sent other bytes: kept
        self.dropped = 0
        self.aborted = 0  # closing sockets whose peer took nothing for `timeout`: aborted (`linger`)
        self.lingering: dict[int, RawSocket] = {}  # id -> socket whose session ended with bytes queued
        self.stopping = False  # set by `abort_lingering`: a server stop aborts such sockets at once
        self._where: dict[int, int] = {}  # id(socket) -> its slot
        self._due: dict[int, list[Pinged]] = {}  # tick -> sockets whose ping's deadline it is
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._where)

    def add(self, raw: Pinged) -> None:
        """Ping `raw` from one interval from now on (the slot just visited comes round last)."""
        take_pongs(raw, self)
        key = id(raw)
        slot = self.pos
        self.slots[slot][key] = raw
        self._where[key] = slot
        if self._timer is None:
            self._loop = asyncio.get_running_loop()
            self._timer = self._loop.call_later(self.tick, self._tick)

    def discard(self, raw: RawSocket) -> None:
        slot = self._where.pop(id(raw), None)
        if slot is not None:
            self.slots[slot].pop(id(raw), None)

    def linger(self, raw: RawSocket) -> None:
        """`raw`'s session is over (or dropped): abort its transport unless it is gone or its peer takes
        bytes, checked every `timeout` seconds (a buffer that never drains would hold it for ever)."""
        if raw.protocol.disconnected or not raw.transport.get_write_buffer_size() or id(raw) in self.lingering:
            return  # nothing queued (uvicorn's close finishes at once), or watched already
        if self.stopping:  # the server is stopping: nobody waits for a peer that may never read
            self.aborted += 1
            raw.transport.abort()
            return
        loop = asyncio.get_running_loop()
        self.lingering[id(raw)] = raw
        delay = self.timeout if self.timeout is not None else TIMEOUT

        def check(left: int) -> None:
            if raw.protocol.disconnected:
                self.lingering.pop(id(raw), None)
                return
            size = raw.transport.get_write_buffer_size()
            if 0 < size < left:  # the peer took some: it may still be reading the last pages
                loop.call_later(delay, check, size)
                return
            self.lingering.pop(id(raw), None)
            self.aborted += 1
            raw.transport.abort()  # connection_lost follows: uvicorn queues the disconnect, forgets it

        loop.call_later(delay, check, raw.transport.get_write_buffer_size())

    async def abort_lingering(self) -> None:
        """Shutdown: abort every lingering socket now, and let their `connection_lost` run (so uvicorn's
        shutdown does not meet them half-closed)."""
        self.stopping = True  # and those whose session ends from now on (uvicorn's shutdown waits for them)
        sockets = list(self.lingering.values())
        self.lingering.clear()
        for raw in sockets:
            if not raw.protocol.disconnected:
                self.aborted += 1
                raw.transport.abort()
        for _ in range(10):  # bounded: an abort's connection_lost runs at the loop's next iteration
            if all(raw.protocol.disconnected for raw in sockets):
                return
            await asyncio.sleep(0)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        assert self._loop is not None
        self.ticks += 1
        self.pos = (self.pos + 1) % len(self.slots)
        now = self._loop.time()
        for raw in list(self.slots[self.pos].values()):
            try:
                self._visit(raw, now)
            except Exception:  # noqa: BLE001 - a socket gone mid-visit: its session discards it
                pass
        for raw in self._due.pop(self.ticks, ()):
            try:
                self._deadline(raw)
            except Exception:  # noqa: BLE001 - as above
                pass
        if self._where:
            self._timer = self._loop.call_later(self.tick, self._tick)
        else:
            self._timer = None
            self._due.clear()  # their sockets are gone

    @staticmethod
    def _closed(raw: Pinged) -> bool:
        p = raw.protocol
        return p.close_sent or raw.transport.is_closing() or raw.conn.state is not State.OPEN

    def _visit(self, raw: Pinged, now: float) -> None:
        if self._closed(raw):
            return
        p = raw.protocol
        if raw.heard:  # bytes came since the last visit, within the interval: alive, no ping needed
            raw.heard = False
            p.pending_ping_payload = None
            raw.due = 0
            self.skipped += 1
            return
        if p.pending_ping_payload is not None:  # unanswered: its deadline (a timeout longer than the
            return                              # interval) comes round in the deadline wheel
        p.pending_ping_payload = PAYLOAD  # uvicorn's handle_pong and `take_pongs` clear it when the pong comes
        p.ping_sent_at = now
        raw.transport.write(PING)
        self.pings += 1
        if self.wait is not None:
            raw.due = self.ticks + self.wait
            self._due.setdefault(raw.due, []).append(raw)

    def _deadline(self, raw: Pinged) -> None:
        """`timeout` after a ping: drop the socket if the pong has not come and nothing else has either."""
        if raw.due != self.ticks or raw.protocol.pending_ping_payload is None or self._closed(raw):
            return  # answered, or a later ping's deadline, or closing anyway
        raw.due = 0
        if raw.heard:  # other bytes came after the ping (a pong may be queued behind them): alive
            raw.protocol.pending_ping_payload = None
            self.heard_late += 1
            return
        self.dropped += 1
        raw.protocol.keepalive_timeout()  # uvicorn's own: close 1011 "keepalive ping timeout", transport closed
        self.discard(raw)
        # ... which ends only once its queued bytes are out: a peer that took none of them gets aborted
        # (uvicorn queues no disconnect here: until connection_lost the session would wait for ever)
        self.linger(raw)


def _at_frame_boundary(conn: Any) -> bool:
    """Is websockets' parser waiting for the first byte of a frame (not inside one)? Its generator
    chain (ServerProtocol.parse -> Protocol.parse -> ...) then ends in `StreamReader.at_eof`, the
    only place it waits between frames."""
    inner = conn.parser.gi_yieldfrom
    if inner is not None:
        inner = inner.gi_yieldfrom
    return inner is not None and inner.gi_code is _AT_EOF


def take_pongs(raw: Pinged, keepalive: Keepalive) -> None:
    """Wrap the protocol's `data_received`: any read but our pong sets `raw.heard` (one attribute
    store, the only cost on the push path), and a segment that is exactly one masked pong (10 bytes)
    carrying our payload, arriving between frames, clears `pending_ping_payload` as uvicorn's
    `handle_pong` would, without the generator-based parse and event round (~70 us each, most of an
    idle server's remaining CPU). Everything goes to uvicorn as before but that pong."""
    protocol = raw.protocol
    received = protocol.data_received
    conn = protocol.conn
    known = hasattr(getattr(conn, "parser", None), "gi_yieldfrom")  # the websockets parser `take_pongs` reads

    def data_received(data: bytes) -> None:
        if (len(data) == 10 and data[0] == 0x8A and data[1] == 0x84 and protocol.pending_ping_payload == PAYLOAD
                and known and int.from_bytes(data[2:6], "big") ^ int.from_bytes(data[6:], "big") == _PAYLOAD_INT
                and not conn.reader.buffer and _at_frame_boundary(conn)):
            protocol.pending_ping_payload = None
            keepalive.pongs_taken += 1
            return
        raw.heard = True
        received(data)

    protocol.data_received = data_received
    transport = getattr(protocol, "transport", None)
    if transport is not None and transport.get_protocol() is protocol:
        # uvloop's transport keeps the bound `data_received` it saw at `set_protocol` (asyncio's looks
        # it up per read): hand it the protocol again so it takes this one.
        transport.set_protocol(protocol)


def keepalive_for(send: Any, keepalive: Keepalive) -> RawSocket | None:
    """The socket behind a session's ASGI `send`, registered for pings with the server's `Keepalive`
    when it pings and the socket is uvicorn's websockets-sansio (else uvicorn pings it); None when
    the socket is not reachable. The caller discards it, then `linger`s it, whoever pings."""
    found = RawSocket.of(send)
    if found is None or not hasattr(found.protocol, "disconnected"):
        return None
    if not keepalive.pinging:
        return found  # uvicorn pings it; we only linger it when its session ends
    if not all(hasattr(found.protocol, a) for a in ("pending_ping_payload", "ping_sent_at", "keepalive_timeout")):
        return None
    raw = Pinged(found.protocol)
    keepalive.add(raw)
    return raw
