"""vfs.wire sessions: the WebSocket session state machines, frame by frame, without a socket."""

from __future__ import annotations

import asyncio
import errno

import blake3
import orjson
import pytest

import vfs
from vfs import wire as p

DATA = b"chunk bytes"
HASH = blake3.blake3(DATA).hexdigest()
OTHER = blake3.blake3(b"other").hexdigest()


def text(msg: p.ClientMessage | p.ServerMessage) -> str:
    return p.encode(msg).decode()


# -- server ------------------------------------------------------------------------------


def open_server(max_errors: int = 100) -> p.ServerSession[str]:
    s: p.ServerSession[str] = p.ServerSession("s1", max_errors=max_errors)
    s.receive_hello(text(p.Hello(protocol=1)))
    return s


def test_server_hello_opens_the_session() -> None:
    s: p.ServerSession[str] = p.ServerSession("s1", max_errors=100)
    assert s.state is p.SessionState.AWAITING_HELLO
    hello = s.receive_hello(text(p.Hello(protocol=1, client="t")))
    assert hello.client == "t" and s.state is p.SessionState.OPEN and s.version == 1
    ours = s.server_hello(server="wsfs/x", workspace="demo", scope="write", rev=7)
    assert (ours.session, ours.rev, ours.cursor, ours.protocol) == ("s1", 7, "7", 1)
    assert ours.limits == p.LIMITS


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (None, p.EBADMSG),  # a binary first frame
        ("not json", p.EBADMSG),
        (text(p.Ping(id=1)), p.EPROTO),
        (text(p.Hello(protocol=7)), p.EPROTONOSUPPORT),
    ],
)
def test_server_refuses_a_bad_first_frame(frame: str | None, code: str) -> None:
    s: p.ServerSession[str] = p.ServerSession("s1", max_errors=100)
    with pytest.raises(p.HelloRefused) as info:
        s.receive_hello(frame)
    assert info.value.error.code == code
    assert info.value.close == p.Close(p.CLOSE_BAD_HELLO, code)
    assert s.closed
    if code == p.EPROTONOSUPPORT:
        assert info.value.error.extra["supported"] == [1]


def test_server_no_hello_in_time() -> None:
    s: p.ServerSession[str] = p.ServerSession("s1", max_errors=100)
    assert s.no_hello() == p.Close(p.CLOSE_BAD_HELLO, "no hello") and s.closed


def test_server_messages_only_after_the_hello() -> None:
    s: p.ServerSession[str] = p.ServerSession("s1", max_errors=100)
    with pytest.raises(p.WrongState):
        s.receive_text(text(p.Ping(id=1)))
    with pytest.raises(p.WrongState):
        s.server_hello(server="x", workspace="w", scope="read", rev=0)
    s.receive_hello(text(p.Hello(protocol=1)))
    assert s.receive_text(text(p.Ping(id=1))) == p.Ping(id=1)
    with pytest.raises(p.WrongState):
        s.receive_hello(text(p.Hello(protocol=1)))


def test_server_second_hello_is_eproto() -> None:
    s = open_server()
    with pytest.raises(p.ProtocolError) as info:
        s.receive_text(text(p.Hello(protocol=1)))
    assert info.value.code == p.EPROTO and info.value.extra["field"] == "type"


def test_server_chunk_frames_must_be_puts() -> None:
    s = open_server()
    chunk = s.receive_chunk(p.encode_chunk_frame(p.FRAME_PUT, HASH, DATA))
    assert chunk.hash == HASH and bytes(chunk.data) == DATA
    with pytest.raises(p.ProtocolError) as info:
        s.receive_chunk(p.encode_chunk_frame(p.FRAME_CHUNK, HASH, DATA))
    assert info.value.code == p.EBADMSG


def test_server_counts_errors_and_closes_past_the_limit() -> None:
    s = open_server(max_errors=2)
    first = s.error_reply(FileNotFoundError(errno.ENOENT, "gone", "/a"), id=4)
    assert first.close is None and first.message.to_wire()["id"] == 4 and first.error.code == "ENOENT"
    own = s.error_reply(p.ProtocolError(p.EPROTO, "bad", id="r7"), id=9)
    assert own.error.id == "r7" and own.close is None  # the error's own id wins
    third = s.error_reply(RuntimeError("secret"))
    assert third.error.code == p.EINTERNAL and "secret" not in third.error.message
    assert third.close == p.Close(p.CLOSE_POLICY, "too many errors") and s.errors == 3


def test_server_subscription_ids() -> None:
    s = open_server()
    sub = p.Subscribe(id="a")
    s.check_subscribe(sub)
    s.add_subscription("a", "task-a")
    with pytest.raises(p.ProtocolError) as info:
        s.check_subscribe(sub)
    assert (info.value.code, info.value.id, info.value.extra["field"]) == (p.EPROTO, "a", "id")
    with pytest.raises(p.ProtocolError):
        s.add_subscription("a", "again")
    with pytest.raises(p.ProtocolError) as info:
        s.unsubscribe(p.Unsubscribe(id=5, sub="zz"))
    assert (info.value.code, info.value.id) == ("ENOENT", 5)
    assert s.unsubscribe(p.Unsubscribe(id=6, sub="a")) == "task-a" and not s.subscriptions
    s.add_subscription("b", "task-b")
    assert s.drop_subscription("b") == "task-b" and s.drop_subscription("b") is None
    s.add_subscription("c", "task-c")
    assert s.close() == ["task-c"] and s.closed and not s.subscriptions


def test_server_presence_merges_and_leaves() -> None:
    s = open_server()
    assert s.update_presence(p.Presence(op="leave")) is None  # never joined: nothing to say
    op, peer = s.update_presence(p.Presence(op="update", name="ann"))  # type: ignore[misc]
    assert op == "join" and peer == {"session": "s1", "name": "ann", "color": None, "file": None, "cursor": None}
    op, peer = s.update_presence(p.Presence(op="update", file="/a"))  # type: ignore[misc]
    assert op == "update" and peer["name"] == "ann" and peer["file"] == "/a"
    assert s.author("token-name") == "ann"
    assert s.update_presence(p.Presence(op="leave")) == ("leave", {"session": "s1"})
    assert s.leave() is None and s.author("token-name") == "token-name"


def test_presence_outbox_keeps_the_latest_state_per_peer() -> None:
    box = p.PresenceOutbox()
    assert box.add("join", {"session": "a", "name": "1"})
    assert box.add("update", {"session": "a", "name": "2"})
    assert box.add("update", {"session": "b"})
    taken = [(e.op, e.peer) for e in box.take()]
    assert taken == [("join", {"session": "a", "name": "2"}), ("update", {"session": "b"})]
    assert box.take() == [] and len(box) == 0
    assert box.add("join", {"session": "c"})
    assert not box.add("leave", {"session": "c"})  # joined and left unseen
    assert box.add("update", {"session": "d"}) and box.add("leave", {"session": "d"})
    assert [(e.op, e.peer) for e in box.take()] == [("leave", {"session": "d"})]


# -- client ------------------------------------------------------------------------------

SERVER_HELLO = p.ServerHello(protocol=1, server="wsfs/x", workspace="demo", session="s9", scope="write", rev=3,
                             cursor="3", limits=dict(p.LIMITS))


def open_client() -> p.ClientSession[str, str, str]:
    c: p.ClientSession[str, str, str] = p.ClientSession()
    c.receive_hello(text(SERVER_HELLO))
    return c


def test_client_hello_frame() -> None:
    frame = orjson.loads(p.ClientSession.hello_frame("me/1", {"name": "ann"}))
    assert frame == {"type": "hello", "protocol": p.PROTOCOL_VERSION, "client": "me/1", "presence": {"name": "ann"}}
    assert p.decode_client(p.ClientSession.hello_frame("me/1")) == p.Hello(protocol=1, client="me/1")


def test_client_accepts_the_server_hello() -> None:
    c: p.ClientSession[str, str, str] = p.ClientSession()
    assert c.state is p.SessionState.AWAITING_HELLO
    assert c.receive_hello(text(SERVER_HELLO)) == SERVER_HELLO and c.hello == SERVER_HELLO
    assert c.state is p.SessionState.OPEN
    with pytest.raises(p.WrongState):
        c.receive_hello(text(SERVER_HELLO))


@pytest.mark.parametrize(
    ("frame", "raised", "code"),
    [
        (b"\x02" + bytes(40), p.ProtocolError, p.EBADMSG),
        (text(p.Ok(id=1)), p.ProtocolError, p.EPROTO),
        (text(p.Error(code=p.EPROTONOSUPPORT, message="no", extra={"supported": [1]})), OSError, None),
        (text(p.Error(code=p.EACCES, message="no")), PermissionError, None),
    ],
)
def test_client_refuses_anything_but_a_hello_first(frame: str | bytes, raised: type, code: str | None) -> None:
    c: p.ClientSession[str, str, str] = p.ClientSession()
    with pytest.raises(raised) as info:
        c.receive_hello(frame)
    if code is not None:
        assert info.value.code == code
    if raised is OSError:
        assert info.value.errno == errno.EPROTONOSUPPORT  # the server's error, as vfs would raise it
    assert c.closed


def test_client_replies_go_to_their_waiter() -> None:
    c = open_client()
    a, b = c.start_request("wait-a"), c.start_request("wait-b")
    assert a != b
    assert c.receive_text(text(p.Ok(id=b, result={"x": 1}))) == p.Replied("wait-b", result={"x": 1})
    failed = c.receive_text(text(p.Error(code="ENOENT", message="gone", id=a, extra={"path": "/a"})))
    assert isinstance(failed, p.Replied) and failed.waiter == "wait-a"
    assert isinstance(failed.error, FileNotFoundError) and failed.error.filename == "/a"
    assert c.receive_text(text(p.Ok(id=a))) is None  # answered already: nobody waits
    unsolicited = c.receive_text(text(p.Error(code=p.EBADMSG, message="?")))
    assert isinstance(unsolicited, p.ServerError) and unsolicited.error.code == p.EBADMSG
    bad = c.receive_text("not json")
    assert isinstance(bad, p.BadFrame) and bad.error.code == p.EBADMSG


def test_client_forget_drops_an_unsent_request() -> None:
    c = open_client()
    rid = c.start_request("w")
    c.forget(rid)
    assert c.receive_text(text(p.Ok(id=rid))) is None
    gid = c.start_get([HASH], "g")
    c.forget(gid)
    with pytest.raises(p.ProtocolError):
        c.receive_chunk(p.encode_chunk_frame(p.FRAME_CHUNK, HASH, DATA))


def test_client_gets_take_chunks_in_order() -> None:
    c = open_client()
    with pytest.raises(ValueError):
        c.start_get(["0" * 64] * (p.MAX_HASHES + 1), "too many")
    first = c.start_get([OTHER, HASH], "g1")
    second = c.start_get([HASH], "g2")
    got = c.receive_chunk(p.encode_chunk_frame(p.FRAME_CHUNK, HASH, DATA))  # OTHER skipped: the server lacks it
    assert (got.get, got.hash, bytes(got.data)) == ("g1", HASH, DATA) and c.bytes_received == len(DATA)
    with pytest.raises(p.ProtocolError) as info:  # g1 has nothing more to come
        c.receive_chunk(p.encode_chunk_frame(p.FRAME_CHUNK, HASH, DATA))
    assert info.value.code == p.EBADMSG
    assert c.receive_text(text(p.Ok(id=first, result={"missing": [OTHER]}))) == p.GetDone("g1", [OTHER])
    assert c.receive_chunk(p.encode_chunk_frame(p.FRAME_CHUNK, HASH, DATA)).get == "g2"
    done = c.receive_text(text(p.Error(code="EIO", message="disk", id=second)))
    assert isinstance(done, p.GetDone) and done.get == "g2" and isinstance(done.error, OSError)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (p.encode_chunk_frame(p.FRAME_CHUNK, HASH, DATA), p.EBADMSG),  # no get outstanding
        (p.encode_chunk_frame(p.FRAME_PUT, HASH, DATA), p.EBADMSG),  # wrong direction
        (b"\x02short", p.EBADMSG),
    ],
)
def test_client_chunk_out_of_place(frame: bytes, code: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        open_client().receive_chunk(frame)
    assert info.value.code == code


def test_client_chunk_must_hash_to_its_id() -> None:
    c = open_client()
    c.start_get([HASH], "g")
    with pytest.raises(p.ProtocolError) as info:
        c.receive_chunk(p.encode_chunk_frame(p.FRAME_CHUNK, HASH, b"forged"))
    assert info.value.code == p.EBADOBJECT


def test_client_subscription_messages() -> None:
    c = open_client()
    sid = c.new_subscription_id()
    c.start_subscription(sid, "sub", "reply")
    assert c.receive_text(text(p.Ok(id=sid, result={"cursor": "3"}))) == p.Replied("reply", result={"cursor": "3"})
    changes = p.Changes(sub=sid, entries=[p.change_to_wire(vfs.Change("/a", "delete", 4))], cursor="4")
    assert c.receive_text(text(changes)) == p.SubscriptionMessage("sub", changes)
    assert c.receive_text(text(p.CaughtUp(sub="other", cursor="4"))) is None
    c.end_subscription(sid)
    assert c.receive_text(text(p.CaughtUp(sub=sid, cursor="4"))) is None


def test_client_subscription_ended_by_an_error() -> None:
    """An `error` naming a live subscription ends it (the server stops reading for it), carrying
    the error its consumer raises; later frames for it are nobody's."""
    c = open_client()
    sid = c.new_subscription_id()
    c.start_subscription(sid, "sub", "reply")
    c.receive_text(text(p.Ok(id=sid, result={"cursor": "0"})))
    ended = c.receive_text(text(p.Error(code=p.ECURSORTOOOLD, message="old", id=sid,
                                        extra={"cursor": "2~5:/a", "horizon": 7})))
    assert isinstance(ended, p.SubscriptionEnded) and ended.sub == "sub"
    assert isinstance(ended.error, vfs.CursorTooOld) and ended.error.horizon == 7
    assert c.receive_text(text(p.CaughtUp(sub=sid, cursor="9"))) is None
    again = c.receive_text(text(p.Error(code=p.ECURSORTOOOLD, message="old", id=sid)))
    assert isinstance(again, p.ServerError)


def test_client_presence_peers() -> None:
    c = open_client()
    c.receive_text(text(p.PresenceEvent(op="sync", peers=[{"session": "a"}, {"nope": 1}])))
    assert c.peers == {"a": {"session": "a"}}
    c.receive_text(text(p.PresenceEvent(op="join", peer={"session": "b", "name": "bo"})))
    c.receive_text(text(p.PresenceEvent(op="leave", peer={"session": "a"})))
    assert c.peers == {"b": {"session": "b", "name": "bo"}}


def test_client_close_hands_back_every_waiter_once() -> None:
    c = open_client()
    c.start_request("r")
    c.start_get([HASH], "g")
    c.start_subscription(c.new_subscription_id(), "s", "sr")
    assert c.close() == p.Outstanding(replies=["r", "sr"], gets=["g"], subscriptions=["s"])
    assert c.closed and c.close() is None
    assert c.receive_text(text(p.Ok(id=1))) is None  # frames after the end are nobody's


def test_close_codes_mean_something() -> None:
    assert isinstance(p.close_error(p.CLOSE_WORKSPACE_GONE, "", "ws://x"), FileNotFoundError)
    assert isinstance(p.close_error(p.CLOSE_POLICY, "", "ws://x"), PermissionError)
    err = p.close_error(p.CLOSE_BAD_HELLO, "EPROTO", "ws://x")
    assert isinstance(err, p.ProtocolError) and err.code == p.EPROTO
    assert p.close_error(p.CLOSE_GOING_AWAY, "", "ws://x") is None and p.close_error(None, "", "ws://x") is None


# -- the client adapter's subscription queue --------------------------------------------


def test_subscription_drain_nowait() -> None:
    from client_py.errors import ConnectionLost
    from client_py.session import Subscription

    async def main() -> None:
        sub = Subscription(None, "s1", queue_size=4)  # type: ignore[arg-type]
        assert sub.drain_nowait() == []
        first, second = p.CaughtUp(sub="s1", cursor="1"), p.CaughtUp(sub="s1", cursor="2")
        sub._queue.put_nowait(first)
        sub._queue.put_nowait(second)
        sub._fail(ConnectionLost("gone"))
        assert sub.drain_nowait() == [first, second]  # what came before the failure is kept
        with pytest.raises(ConnectionLost):
            sub.drain_nowait()
        with pytest.raises(ConnectionLost):
            await sub.next()

    asyncio.run(main())
