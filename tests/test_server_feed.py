"""Pages built from commit deltas (the live path) equal pages read from the store, over one or several commits."""

from __future__ import annotations

import orjson
import pytest

import vfs
from server.feed import PageSpec, page_from_deltas, read_delta, read_page
from vfs.wire import PathFilter

SPECS = {
    "all": PageSpec("/", None, (), 256, 0),
    "inline": PageSpec("/", None, (), 256, 65536),
    "prefix": PageSpec("/d", None, (), 256, 1000),
    "globs": PageSpec("/", ("**/*.md",), (), 256, 0),
    "ignore": PageSpec("/", None, ("*.tmp", "e/"), 256, 65536),
    "small-batch": PageSpec("/", None, (), 2, 0),
}


def history() -> tuple[vfs.Workspace, list]:
    """A workspace and the delta of each of its commits (read right after it, as the writer does)."""
    ws = vfs.Workspace(":memory:")
    ops = [
        lambda: ws.write_file("/d/a.md", b"one", parents=True),
        lambda: ws.write_file("/d/b.tmp", b"x" * 5000),
        lambda: ws.write_file("/d/a.md", b"two"),  # the same path again: coalesced to its last state
        lambda: ws.mkdir("/e/f", parents=True),
        lambda: ws.write_file("/e/f/c.md", b"c"),
        lambda: ws.rename("/d", "/g"),  # tombstones for the old paths, entries for the new
        lambda: ws.symlink("/g/a.md", "/link.md"),
        lambda: ws.write_file("/big.bin", bytes(range(256)) * 400),  # 100 KiB: content not carried
        lambda: ws.rm("/e", recursive=True),
        lambda: ws.write_file("/z.md", "é".encode()),
    ]
    deltas = []
    for op in ops:
        op()
        deltas.append(read_delta(ws, ws.rev, 65536))
    assert all(d is not None for d in deltas)
    return ws, deltas


@pytest.mark.parametrize("name", sorted(SPECS))
def test_merged_deltas_equal_a_store_read(name: str) -> None:
    ws, deltas = history()
    spec = SPECS[name]
    filt = PathFilter(spec.prefix, spec.globs, spec.ignore)
    compared = 0
    for start in range(len(deltas)):
        after = deltas[start].after
        for end in range(start + 1, len(deltas) + 1):
            page = page_from_deltas(deltas[start:end], spec, filt, {})
            if end < len(deltas):
                if page is not None:
                    assert page.cursor == deltas[end - 1].cursor
                continue  # the store would read on to the end of the log
            truth = read_page(ws, spec, filt, after, {})
            if page is None:  # only when the deltas cannot tell: more entries than a page holds
                assert truth.more and truth.count == spec.limit
                continue
            if truth.more:  # exactly a full page left: the store cannot know it is the last one
                assert orjson.loads(page.entries_json) == orjson.loads(truth.entries_json)
                continue
            assert (page.entries_json, page.cursor, page.count) == (truth.entries_json, truth.cursor, truth.count)
            compared += 1
    assert compared >= (1 if spec.limit < 8 else 3)


def test_prebuilt_frames_are_what_websockets_would_send() -> None:
    """`text_frame` builds the bytes the fan-out and the co-editing relay write to every socket:
    the same as the websockets library's own serialisation of a server text frame, at every
    length boundary of the header."""
    from websockets.frames import Frame, Opcode

    from server.rawsocket import text_frame

    for n in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
        assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False), n
