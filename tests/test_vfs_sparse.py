"""Zero-extension and writes far past EOF store no run of zeros (issue 17's holes item, issue 14).

`truncate` up and `write_range` past EOF append entries of one shared
all-zero chunk instead of cutting and hashing the zeros, so their cost
follows the number of chunk entries, not the bytes; an edit inside the
zeros re-chunks only its neighbourhood. Content is checked against what
the bytes must be; content ids of these files are not read here (deriving
one hashes every byte, see test_vfs_content_id.py for that contract).
"""

from __future__ import annotations

import tracemalloc

import pytest

import vfs

GiB = 1 << 30
MiB = 1 << 20


@pytest.fixture()
def ws(tmp_path):
    with vfs.Workspace(str(tmp_path / "store.db")) as store:
        yield store


def test_truncate_to_64_gib_stores_no_zeros_and_reads_back(ws):
    ws.write_file("/f", b"head-bytes")
    kept = ws.gc().chunks_kept
    tracemalloc.start()
    try:
        ws.truncate("/f", 64 * GiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB, f"zero-extension held {peak:,} bytes"
    assert ws.stat("/f").size == 64 * GiB
    assert ws.gc().chunks_kept - kept <= 4, "a run of zeros is one shared chunk (plus the re-cut old tail)"
    assert ws.read_range("/f", 0, 16) == b"head-bytes" + bytes(6)
    assert ws.read_range("/f", 64 * GiB - 5, 100) == bytes(5)
    assert ws.read_range("/f", 37 * GiB + 12345, 1000) == bytes(1000)


def test_a_write_far_past_eof_fills_the_gap_with_zeros_in_bounded_memory(ws):
    ws.write_file("/f", b"abc")
    tracemalloc.start()
    try:
        ws.write_range("/f", 32 * GiB + 7, b"far")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB, f"the gap held {peak:,} bytes"
    assert ws.stat("/f").size == 32 * GiB + 10
    assert ws.read_range("/f", 0, 8) == b"abc" + bytes(5)
    assert ws.read_range("/f", 32 * GiB, 100) == bytes(7) + b"far"


def test_edits_inside_the_zeros_read_back_and_add_few_chunks(ws):
    ws.write_file("/f", b"")
    ws.truncate("/f", 8 * GiB)
    kept = ws.gc().chunks_kept
    edits = {3 * GiB + 123: b"x" * 5000, 5 * GiB: b"aligned", 8 * GiB - 3: b"end"}
    for offset, data in edits.items():
        ws.write_range("/f", offset, data)
    assert ws.stat("/f").size == 8 * GiB
    assert ws.gc().chunks_kept - kept <= 4 * len(edits)
    for offset, data in edits.items():
        assert ws.read_range("/f", offset - 10, len(data) + 20)[: len(data) + 10] == bytes(10) + data
    assert ws.read_range("/f", 4 * GiB, 64) == bytes(64)


def test_shrinking_a_sparse_file_keeps_its_head(ws):
    ws.write_file("/f", b"0123456789")
    ws.truncate("/f", 16 * GiB)
    ws.write_range("/f", 2 * GiB, b"mid")
    ws.truncate("/f", 4)
    assert ws.read_file("/f") == b"0123"
    ws.truncate("/f", 2 * MiB + 3)
    assert ws.read_file("/f") == b"0123" + bytes(2 * MiB - 1)


def test_a_small_zero_extension_equals_the_bytes(ws):
    data = bytes(range(256)) * 300
    ws.write_file("/f", data)
    ws.truncate("/f", len(data) + 3 * MiB + 17)
    assert ws.read_file("/f") == data + bytes(3 * MiB + 17)
    with vfs.Workspace(":memory:") as other:
        other.write_file("/g", data + bytes(3 * MiB + 17))
        assert other.stat("/g").hash == ws.stat("/f").hash
