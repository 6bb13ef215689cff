"""vfs.wire messages: every message round-trips through the codec; validation names the bad field."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hypothesis_profiles  # noqa: F401
import vfs
from vfs import wire as p

HASH = "ab" * 32
hashes = st.text("0123456789abcdef", min_size=64, max_size=64)
paths = st.lists(st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1,
                         max_size=8), min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
ids = st.integers(-(2**31), 2**31) | st.text(max_size=p.MAX_ID_LEN)
cursors = st.builds(vfs.Cursor, st.integers(0, 2**40), st.none() | paths)

changes = st.builds(
    vfs.Change,
    path=paths,
    kind=st.sampled_from(["file", "dir", "symlink", "delete"]),
    rev=st.integers(0, 2**40),
    mode=st.integers(0, 0o177777),
    mtime=st.floats(0, 2e9),
    size=st.integers(0, 2**40),
    hash=st.none() | hashes,
    chunks=st.lists(st.tuples(hashes, st.integers(0, 2**18)), max_size=3).map(tuple),
    target=st.none() | st.text(max_size=20),
)

def _is_ignore_pattern(text: str) -> bool:
    """What the wire accepts in `ignore` (a gitignore line pathspec takes); the rest is refused, see test_hardening_wire."""
    try:
        p.check_ignore(text)
    except ValueError:
        return False
    return True


client_messages = st.one_of(
    st.builds(p.Hello, protocol=st.integers(0, 10), client=st.none() | st.text(max_size=10)),
    st.builds(p.Subscribe, id=ids, prefix=paths, globs=st.none() | st.lists(st.text(max_size=8), max_size=3).map(tuple),
              ignore=st.lists(st.text(max_size=8).filter(_is_ignore_pattern), max_size=3).map(tuple),
              after=st.none() | st.just("now") | cursors, inline_max=st.integers(0, p.MAX_INLINE),
              batch_max=st.integers(1, p.MAX_BATCH)),
    st.builds(p.Unsubscribe, id=ids, sub=ids),
    st.builds(p.Has, id=ids, hashes=st.lists(hashes, max_size=5).map(tuple)),
    st.builds(p.Get, id=ids, hashes=st.lists(hashes, max_size=5).map(tuple)),
    st.builds(p.Push, id=ids, changes=st.lists(changes, max_size=4).map(tuple),
              base=st.none() | cursors | st.dictionaries(paths, st.integers(0, 99), max_size=3)),
    st.builds(p.Presence, op=st.sampled_from(["join", "update", "leave"]), name=st.none() | st.text(max_size=10),
              color=st.none() | st.text(max_size=10), file=st.none() | paths,
              cursor=st.none() | st.fixed_dictionaries({"anchor": st.integers(0, 99), "head": st.integers(0, 99)}),
              id=st.none() | ids),
    st.builds(p.Ping, id=ids),
)


@given(client_messages)
def test_client_messages_round_trip(msg) -> None:
    decoded = p.decode_client(p.encode(msg))
    if isinstance(msg, p.Subscribe) and isinstance(msg.after, vfs.Cursor):
        assert decoded.after == msg.after
    assert decoded == msg


@given(changes, st.none() | st.binary(max_size=50), st.none() | st.text(max_size=10))
def test_change_entries_round_trip(change, data, author) -> None:
    wire = orjson.loads(orjson.dumps(p.change_to_wire(change, data=data, author=author)))
    assert p.change_from_wire(wire) == change
    assert p.entry_data(wire) == data
    assert wire["cursor"] == str(change.cursor)
    assert wire.get("author") == author


def test_server_messages_round_trip() -> None:
    msgs = [
        p.ServerHello(protocol=1, server="wsfs/x", workspace="demo", session="s1", scope="read", rev=3, cursor="3",
                      limits=dict(p.LIMITS)),
        p.Ok(id=4, result={"missing": [HASH]}),
        p.Error(code="ENOENT", message="gone", id="x", extra={"path": "/a"}),
        p.Changes(sub="s", entries=[p.change_to_wire(vfs.Change("/a", "delete", 3))], cursor="3", coalesced=True),
        p.CaughtUp(sub=1, cursor="3:/a"),
        p.PresenceEvent(op="sync", peers=[{"session": "s2", "name": "bo"}]),
        p.PresenceEvent(op="leave", peer={"session": "s2"}),
    ]
    for msg in msgs:
        assert p.decode_server(p.encode(msg)) == msg


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ("nope", p.EBADMSG, None),
        ("[]", p.EBADMSG, None),
        ('{"type": "subscribe", "id": 1, "after": "x:y"}', p.EPROTO, "after"),
        ('{"type": "subscribe", "id": [1]}', p.EPROTO, "id"),
        ('{"type": "has", "id": 1, "hashes": ["' + "A" * 64 + '"]}', p.EPROTO, "hashes"),
        ('{"type": "push", "id": 1, "changes": [{"kind": "file"}]}', p.EPROTO, "path"),
        ('{"type": "push", "id": 1, "changes": [{"path": "/a", "kind": "file", "size": -1}]}', p.EPROTO, "size"),
        ('{"type": "presence", "name": 5}', p.EPROTO, "name"),
        ('{"type": "zzz"}', p.EPROTO, "type"),
    ],
)
def test_validation_names_the_problem(frame: str, code: str, field: str | None) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.decode_client(frame)
    assert info.value.code == code
    assert info.value.extra.get("field") == field
    if field is not None:
        assert repr(field) in info.value.message


def test_request_id_survives_validation_errors() -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.decode_client('{"type": "get", "id": "r7", "hashes": 3}')
    assert info.value.id == "r7"
    assert info.value.to_message().to_wire()["id"] == "r7"


def test_oversize_text_frame() -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.decode_client(b" " * (p.MAX_TEXT_FRAME + 1))
    assert info.value.code == p.EMSGSIZE and info.value.status == 413


def test_negotiate() -> None:
    assert p.negotiate(p.Hello(protocol=1)) == 1
    with pytest.raises(p.ProtocolError) as info:
        p.negotiate(p.Hello(protocol=2))
    assert info.value.code == p.EPROTONOSUPPORT and info.value.extra["supported"] == [1]


def test_is_hash() -> None:
    assert p.is_hash(HASH) and p.HASH_RE.match(HASH)
    assert not p.is_hash(HASH.upper()) and not p.is_hash(HASH[:-1]) and not p.is_hash(HASH + "0")
