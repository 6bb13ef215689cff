"""The co-editing wire (vfs/wire/coedit.py): y-protocols payloads as Yjs and pycrdt write them,
the `coedit*` messages, and the per-connection document rules."""

from __future__ import annotations

import base64

import pycrdt
import pytest
from pycrdt import Doc, Text

from vfs.wire import (
    COEDIT_TEXT,
    AwarenessEntry,
    Coedit,
    CoeditClosed,
    CoeditOpen,
    OpenDocuments,
    ProtocolError,
    YAwareness,
    YSync,
    awareness_message,
    decode_awareness,
    decode_client,
    decode_server,
    encode,
    encode_awareness,
    peer_from_awareness,
    read_y_message,
    sync_step1,
    sync_step2,
    sync_update,
)
from vfs.wire.coedit import SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE


def _doc(text: str) -> Doc:
    doc = Doc()
    doc.get(COEDIT_TEXT, type=Text).insert(0, text)
    return doc


def test_sync_payloads_are_byte_identical_to_pycrdt():
    doc = _doc("héllo " * 100)  # > 127 bytes: multi-byte varint lengths
    assert sync_step1(doc.get_state()) == pycrdt.create_sync_message(doc)
    update = doc.get_update()
    assert sync_update(update) == pycrdt.create_update_message(update)
    other = Doc()
    reply = pycrdt.handle_sync_message(sync_step1(other.get_state())[1:], doc)
    assert reply is not None and sync_step2(doc.get_update(other.get_state())) == reply


def test_read_y_message_parses_every_kind():
    doc = _doc("abc")
    assert read_y_message(pycrdt.create_sync_message(doc)) == YSync(SYNC_STEP1, doc.get_state())
    assert read_y_message(sync_step2(doc.get_update())) == YSync(SYNC_STEP2, doc.get_update())
    msg = read_y_message(pycrdt.create_update_message(doc.get_update()))
    assert msg == YSync(SYNC_UPDATE, doc.get_update()) and msg.carries_update
    assert not read_y_message(sync_update(b"\x00\x00")).carries_update
    assert read_y_message(awareness_message(b"\x00")) == YAwareness(b"\x00")


@pytest.mark.parametrize("payload, why", [
    (b"", "truncated"),
    (b"\x07\x00", "unknown kind"),
    (b"\x00\x05\x00", "unknown sync step"),
    (b"\x00\x02\x09abc", "runs past the end"),
    (b"\x00\x02" + b"\xff" * 12, "varint"),
])
def test_bad_y_messages_are_ebadmsg_naming_the_problem(payload, why):
    with pytest.raises(ProtocolError) as info:
        read_y_message(payload)
    assert info.value.code == "EBADMSG" and why in info.value.message


def test_awareness_round_trips_with_pycrdt():
    doc = Doc()
    awareness = pycrdt.Awareness(doc)
    awareness.set_local_state({"user": {"name": "ann", "color": "#f00"}, "cursor": {"anchor": 1, "head": 4}})
    theirs = awareness.encode_awareness_update([doc.client_id])
    [entry] = decode_awareness(theirs)
    assert entry.client == doc.client_id and entry.state["user"]["name"] == "ann"
    ours = encode_awareness([AwarenessEntry(7, 3, {"user": {"name": "bo"}}), AwarenessEntry(9, 2, None)])
    other = pycrdt.Awareness(Doc())
    other.apply_awareness_update(ours, "test")
    assert other.states[7] == {"user": {"name": "bo"}} and 9 not in other.states
    assert decode_awareness(ours)[1].state is None


def test_presence_takes_name_colour_and_cursor_from_awareness_and_skips_the_rest():
    state = {"user": {"name": "ann", "color": "#f00", "x": 1}, "cursor": {"anchor": 1, "head": 2}, "other": 5}
    assert peer_from_awareness(state) == {"name": "ann", "color": "#f00", "cursor": {"anchor": 1, "head": 2}}
    assert peer_from_awareness({"user": {"name": "x" * 300}, "cursor": {"big": "y" * 2000}}) == {}
    assert peer_from_awareness({"user": "not an object"}) == {}


def test_messages_round_trip_and_normalise_the_path():
    y = sync_step1(b"\x00")
    for msg in (CoeditOpen(id=1, path="/a.md", y=y), CoeditOpen(id="x", path="/a.md"),
                Coedit(path="/a.md", y=y, id=3), Coedit(path="/a.md", y=y)):
        assert decode_client(encode(msg)) == msg
    closed = CoeditClosed(path="/a.md", code="ENOENT", message="deleted")
    assert decode_server(encode(closed)) == closed
    assert decode_server(encode(Coedit(path="/a.md", y=y))) == Coedit(path="/a.md", y=y)
    raw = {"type": "coedit", "path": "/n//./a.md", "y": base64.b64encode(y).decode()}
    assert decode_client(encode_dict(raw)).path == "/n/a.md"


def encode_dict(d: dict) -> bytes:
    import orjson

    return orjson.dumps(d)


@pytest.mark.parametrize("frame, field", [
    ({"type": "coedit", "id": 5, "path": "/a", "y": "not base64!"}, "y"),
    ({"type": "coedit", "id": 5, "path": "/a"}, "y"),
    ({"type": "coedit", "id": 5, "path": "rel", "y": ""}, "path"),
    ({"type": "coedit", "id": 5, "path": "/a\x00b", "y": ""}, "path"),
    ({"type": "coedit_open", "path": "/a"}, "id"),
    ({"type": "coedit_close", "id": 1}, "path"),
])
def test_bad_coedit_frames_are_eproto_naming_the_field(frame, field):
    with pytest.raises(ProtocolError) as info:
        decode_client(encode_dict(frame))
    assert info.value.code == "EPROTO" and info.value.extra.get("field") == field


def test_open_documents_refuse_double_joins_unknown_paths_and_too_many():
    docs = OpenDocuments()
    docs.open("/a", 1)
    with pytest.raises(ProtocolError, match="already open"):
        docs.open("/a", 2)
    with pytest.raises(ProtocolError, match="not open"):
        docs.require("/b", 3)
    docs.require("/a", 4)
    assert docs.close("/a") and not docs.close("/a")
    for i in range(64):
        docs.open(f"/f{i}", i)
    with pytest.raises(ProtocolError, match="at most 64"):
        docs.open("/one-more", 99)
