"""`wsfs store convert`: a single node's store with pack files becomes one a cluster can replicate, and back."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

import vfs
from server.cluster.convert import convert, register
from vfs.packs import pack_dir

MIB = 1 << 20


def _backend(path: Path) -> str:
    ws = vfs.Workspace(path, readonly=True)
    try:
        return ws._db.chunks.backend
    finally:
        ws.close()


def _content(path: Path) -> dict[str, bytes]:
    ws = vfs.Workspace(path, readonly=True)
    try:
        return {p: ws.read_file(p) for p in ("/big.bin", "/small.txt")}
    finally:
        ws.close()


def test_packs_to_sqlite_and_back_keeps_every_byte(tmp_path: Path) -> None:
    store = tmp_path / "w.db"
    ws = vfs.Workspace(store)  # a new store on disk keeps bulk chunks in pack files
    ws.write_file("/big.bin", os.urandom(5 * MIB))
    ws.write_file("/small.txt", b"small")
    ws.close()
    before = _content(store)
    assert _backend(store) == "packs" and os.listdir(pack_dir(str(store)))

    done = convert(str(store), "sqlite")
    assert done.backend == "sqlite" and done.chunks > 0 and done.bytes >= 3 * MIB
    assert not os.path.exists(pack_dir(str(store)))  # nothing outside the file Litestream replicates
    assert _backend(store) == "sqlite" and _content(store) == before
    vfs.Workspace(store, chunk_backend="sqlite").close()  # what a cluster node asked for before (was refused)

    done = convert(str(store), "packs")
    assert done.backend == "packs" and done.bytes >= 5 * MIB
    assert _backend(store) == "packs" and _content(store) == before
    assert store.stat().st_size < 2 * MIB  # the inline bytes' pages went back to the file system


def test_a_store_in_use_is_not_converted(tmp_path: Path) -> None:
    store = tmp_path / "busy.db"
    ws = vfs.Workspace(store)
    ws.write_file("/a", b"a")
    try:
        with pytest.raises(OSError):  # StoreBusy: a writer holds it (a server, a mount)
            convert(str(store), "sqlite")
    finally:
        ws.close()


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="wsfs")
    register(parser.add_subparsers(dest="command"))
    store = tmp_path / "c.db"
    ws = vfs.Workspace(store)
    ws.write_file("/big.bin", os.urandom(2 * MIB))
    ws.close()
    args = parser.parse_args(["store", "convert", "--chunks", "sqlite", str(store)])
    assert args.func(args) == 0
    assert "chunk backend sqlite" in capsys.readouterr().out
    missing = parser.parse_args(["store", "convert", "--chunks", "sqlite", str(tmp_path / "none.db")])
    assert missing.func(missing) == 3
