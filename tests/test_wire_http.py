"""vfs.wire.http: `POST .../ops` bodies and query values."""

from __future__ import annotations

import pytest

from vfs import wire as p

HASH = "ab" * 32


def test_ops_parse() -> None:
    op = p.parse_op({"op": "mkdir", "path": "/a", "parents": True})
    assert op.args == {"path": "/a", "parents": True, "exist_ok": False, "mode": 0o755}
    assert p.parse_op({"op": "rename", "src": "/a", "dst": "/b", "if_match": HASH}).if_match == HASH
    for bad in ({"op": "mkdir"}, {"op": "nope"}, {"op": "truncate", "path": "/a", "size": "3"}, {"op": "rm", "path": "a"}):
        with pytest.raises(p.ProtocolError) as info:
            p.parse_op(bad)
        assert info.value.status == 422
    assert p.parse_mode("644") == 0o644 and p.parse_mode("0o755") == 0o755 and p.parse_mode(None) is None
    with pytest.raises(p.ProtocolError):
        p.parse_mode("9")
    assert p.parse_flag("1") and not p.parse_flag("0") and not p.parse_flag(None)
