"""`wsfs store convert --chunks sqlite|packs STORE.db`: move a store's chunk bytes between backends.

A plain `wsfs serve` keeps big chunks in pack files beside the store
(`vfs/packs.py`). Litestream replicates the store file only, so a cluster
node refuses such a store (no other node could read those bytes). Offline,
with no server on the store (the exclusive store lock is taken), this moves
every packed chunk into `chunk_data` (`--chunks sqlite`), records the
backend, makes the store durable and removes the pack directory; the store
then joins a cluster, where new bulk chunks go to the object store
(`server/cluster/objectchunks.py`) and the old ones are read from the
replicated file. `--chunks packs` is the way back for a single node.

A crash at any point leaves a readable store: each batch moves rows and
bytes in one transaction, and the packs are removed only once no row names
them and the WAL is synced.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from typing import Any

from vfs.chunkstore import PACKS, SQLITE, PackedChunks
from vfs.db import Db
from vfs.packs import pack_dir, sync_wal

BATCH = 256  # chunks moved per transaction


@dataclass
class Converted:
    backend: str  # what the store records now
    chunks: int  # chunks moved
    bytes: int


def convert(path: str, to: str) -> Converted:
    """Move every chunk of the store at `path` to backend `to` (`sqlite` or `packs`)."""
    if to not in (SQLITE, PACKS):
        raise ValueError(f"--chunks must be {SQLITE} or {PACKS}, got {to!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if to == SQLITE:
        moved = _run(path, None, _unpack_batch)
        Db(path, exclusive=True, chunk_backend=SQLITE).close()  # records sqlite (no chunk is packed now)
        sync_wal(path)
        shutil.rmtree(pack_dir(path), ignore_errors=True)
    else:
        moved = _run(path, PACKS, _pack_batch)
        conn = sqlite3.connect(path)
        try:
            conn.execute("VACUUM")  # give the inline bytes' pages back to the file system
        finally:
            conn.close()
    return Converted(to, *moved)


def _run(path: str, backend: str | None, step: Any) -> tuple[int, int]:
    db = Db(path, exclusive=True, chunk_backend=backend)
    try:
        if db.chunks.backend not in (SQLITE, PACKS):
            raise ValueError(f"{path} keeps chunks in {db.chunks.backend!r}: not convertible offline")
        count = size = 0
        while True:
            with db.tx():
                n, b = step(db)
            if not n:
                return count, size
            count, size = count + n, size + b
    finally:
        db.close()


def _unpack_batch(db: Db) -> tuple[int, int]:
    rows = db.conn.execute("SELECT id, pack, pos, size FROM chunks WHERE pack IS NOT NULL LIMIT ?", (BATCH,)).fetchall()
    packed = db.chunks
    if rows and not isinstance(packed, PackedChunks):
        raise ValueError(f"{db.path} names packed chunks but does not record pack files")
    for chunk_id, number, position, size in rows:
        assert isinstance(packed, PackedChunks)
        data = packed.packs.read(number, position, size)
        db.conn.execute("INSERT OR REPLACE INTO chunk_data(id, data) VALUES(?, ?)", (chunk_id, data))
        db.conn.execute("UPDATE chunks SET pack = NULL, pos = NULL WHERE id = ?", (chunk_id,))
    return len(rows), sum(r[3] for r in rows)


def _pack_batch(db: Db) -> tuple[int, int]:
    assert isinstance(db.chunks, PackedChunks)
    packs = db.chunks.packs
    rows = db.conn.execute("SELECT c.id, d.data FROM chunks c JOIN chunk_data d ON d.id = c.id "
                           "WHERE c.pack IS NULL LIMIT ?", (BATCH,)).fetchall()
    for chunk_id, data in rows:
        number, position = packs.next_position(len(data))
        packs.append(data)
        db.conn.execute("UPDATE chunks SET pack = ?, pos = ? WHERE id = ?", (number, position, chunk_id))
        db.conn.execute("DELETE FROM chunk_data WHERE id = ?", (chunk_id,))
    return len(rows), sum(len(r[1]) for r in rows)


def register(subparsers: Any) -> None:
    """`wsfs store convert`: registered by `wsfs/cli.py` (COMMAND_MODULES)."""
    store = subparsers.add_parser("store", help="maintain a workspace store file offline")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION")
    convert_parser = actions.add_parser(
        "convert", help="move a store's chunk bytes between backends (stop the server first)",
        description="Move every chunk of STORE.db into SQLite (`--chunks sqlite`: what a cluster node "
                    "can replicate; removes the pack files) or into pack files (`--chunks packs`).")
    convert_parser.add_argument("--chunks", required=True, choices=(SQLITE, PACKS),
                                help="where every chunk's bytes go: sqlite (inside the store file, as a cluster "
                                     "needs) or packs (pack files beside it, a single node's default)")
    convert_parser.add_argument("store_path", metavar="STORE.db",
                                help="the workspace store file (no server or mount may have it open)")
    convert_parser.set_defaults(func=_main)
    store.set_defaults(func=lambda args: store.print_help(sys.stderr) or 2)


def _main(args: argparse.Namespace) -> int:
    try:
        done = convert(args.store_path, args.chunks)
    except (OSError, ValueError) as exc:
        print(f"wsfs store convert: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, FileNotFoundError) else 1
    print(f"{args.store_path}: {done.chunks} chunks ({done.bytes} bytes) moved; chunk backend {done.backend}")
    return 0
