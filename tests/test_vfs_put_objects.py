"""`Sync.put_objects(hashed=True)`: ids the caller computed itself are stored as given (the remote
mount's written chunks, hashed as they were cut); without it every id is checked."""

from __future__ import annotations

from pathlib import Path

import blake3
import pytest

import vfs
from vfs.sync import MAX_OBJECT


def test_hashed_ids_are_taken_as_given_and_unhashed_ones_checked(tmp_path: Path):
    data, other = b"chunk bytes", b"other bytes"
    right, wrong = blake3.blake3(data).hexdigest(), blake3.blake3(other).hexdigest()
    with vfs.Workspace(str(tmp_path / "a.db")) as ws:
        assert ws.put_objects([(right, data)], hashed=True) == [right]
        assert dict(ws.read_objects([right])) == {right: data}
        with pytest.raises(vfs.BadObject):
            ws.put_objects([(wrong, data)])  # an upload's id is checked
        # Taken as given: the trust is the caller's (never for an id that came with its bytes).
        assert ws.put_objects([(wrong, data)], hashed=True) == [wrong]
        with pytest.raises(ValueError):
            ws.put_objects([(None, data)], hashed=True)
        with pytest.raises(vfs.BadObject):
            big = b"\0" * (MAX_OBJECT + 1)
            ws.put_objects([(blake3.blake3(big).hexdigest(), big)], hashed=True)
