"""An upload's chunks appended to a staged pack of its own outside the write lock
(`vfs.packs.StagedPack`) and adopted by the one transaction that commits the file
(`StoredChunks(staged=...)`, `vfs.chunkstore.adopt_staged`): the file reads back whole with its
exact id, every catalogue row names bytes that hash to it, and what a failed or killed upload
left behind goes (its staged file at close or with the next gc, an adopted pack no row names
with compaction)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

import vfs
from vfs.chunks import cut
from vfs.content import StoredChunks
from vfs.packs import StagedPack, pack_dir
from test_vfs_packs import fsck

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def stage(store: Path, data: bytes) -> StoredChunks:
    """What the server's `_Arriving` hands the commit: cut, hashed, appended, synced."""
    staged = StagedPack(pack_dir(str(store)))
    pieces = list(cut(data))
    positions = staged.append_many(pieces)
    staged.sync()
    chunks = tuple((blake3.blake3(p).digest(), len(p)) for p in pieces)
    return StoredChunks(chunks, blake3.blake3(data).digest(), staged, tuple(positions))


def names(store: Path) -> list[str]:
    return sorted(os.listdir(pack_dir(str(store))))


def test_a_staged_upload_is_adopted_by_its_commit(tmp_path: Path) -> None:
    store, data = tmp_path / "a.db", os.urandom(9 * MiB)
    with vfs.Workspace(str(store), history_keep=1, history_days=0) as ws:
        content = stage(store, data)
        assert any(n.startswith("staged-") for n in names(store))
        try:
            ws.write_file("/big", content)
        finally:
            content.staged.close()  # type: ignore[union-attr]
        assert ws.read_file("/big") == data and ws.stat("/big").hash == blake3.blake3(data).hexdigest()
        assert all(n.endswith(".pack") for n in names(store))  # the staged file became a pack
        live = fsck(store)
        assert sum(live.values()) == len(data)
        ws.gc()
        assert ws.read_file("/big") == data
        ws.write_file("/after", os.urandom(3 * MiB))  # the next append goes at the adopted pack's end
        assert fsck(store) and ws.read_file("/big") == data


def test_a_refused_commit_or_known_chunks_leave_no_new_pack(tmp_path: Path) -> None:
    store, data = tmp_path / "b.db", os.urandom(9 * MiB)
    with vfs.Workspace(str(store)) as ws:
        content = stage(store, data)
        with pytest.raises(vfs.PreconditionFailed):
            try:
                ws.write_file("/big", content, if_match="0" * 64)
            finally:
                content.staged.close()  # type: ignore[union-attr]
        assert not ws.exists("/big") and names(store) == []
        ws.write_file("/big", data)  # stored the usual way
        before = names(store)
        again = stage(store, data)  # every chunk already catalogued: nothing to adopt
        try:
            ws.write_file("/copy", again)
        finally:
            again.staged.close()  # type: ignore[union-attr]
        assert names(store) == before and ws.read_file("/copy") == data
        fsck(store)


def test_a_store_without_packs_reads_the_staged_bytes_back(tmp_path: Path) -> None:
    store, data = tmp_path / "c.db", random.Random(14).randbytes(9 * MiB)  # (seeded: the same chunks each run)
    with vfs.Workspace(str(store), chunk_backend="sqlite") as ws:
        content = stage(store, data)
        try:
            ws.write_file("/big", content)
        finally:
            content.staged.close()  # type: ignore[union-attr]
        assert ws.read_file("/big") == data and names(store) == []
    fsck(store)


# Stages a new version of /big and commits it, stopping for good inside the commit once the staged
# file is linked in as a pack (synced) and its rows written, before COMMIT; or, with "stage",
# once the staged file is written, before any commit. Then it is killed.
HOLDER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[2]); sys.path.insert(0, sys.argv[2] + "/tests")
import vfs, vfs.packs
from test_vfs_staged_packs import stage
adopt = vfs.packs.Packs.adopt
def adopt_then_hold(self, staged):
    number = adopt(self, staged)
    print("adopted", flush=True)
    time.sleep(60)
vfs.packs.Packs.adopt = adopt_then_hold
content = stage(__import__("pathlib").Path(sys.argv[1]), os.urandom(9 << 20))
if sys.argv[3] == "stage":
    print("adopted", flush=True)
    time.sleep(60)
with vfs.Workspace(sys.argv[1]) as ws:
    ws.write_file("/big", content)
"""


def killed_at(store: Path, where: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store), str(ROOT), where],
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"adopted\n"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("where", ["stage", "commit"])
def test_an_upload_killed_before_its_commit_leaves_the_old_file_and_gc_takes_its_bytes(
        tmp_path: Path, where: str) -> None:
    store, old = tmp_path / "d.db", os.urandom(5 * MiB)
    with vfs.Workspace(str(store), history_keep=1, history_days=0) as ws:
        ws.write_file("/big", old)
    live = StagedPack(pack_dir(str(store)))  # another upload, still under way: kept by gc
    try:
        killed_at(store, where)
        left = [n for n in names(store) if n != os.path.basename(live.path)]
        assert sum(os.path.getsize(os.path.join(pack_dir(str(store)), n)) for n in left) > len(old) + 8 * MiB
        with vfs.Workspace(str(store), history_keep=1, history_days=0) as ws:
            assert ws.read_file("/big") == old and ws.stat("/big").hash == blake3.blake3(old).hexdigest()
            fsck(store)
            ws.gc()
            assert ws.read_file("/big") == old
        assert os.path.exists(live.path)
        assert not any(n.startswith("staged-") and n != os.path.basename(live.path) for n in names(store))
        total = sum(os.path.getsize(os.path.join(pack_dir(str(store)), n)) for n in names(store))
        assert total <= 2 * sum(fsck(store).values()), "gc left the killed upload's bytes"
    finally:
        live.close()
    assert not os.path.exists(live.path)


def test_only_a_packs_store_stages_uploads(tmp_path: Path) -> None:
    from vfs.chunkstore import stages_uploads

    vfs.Workspace(str(tmp_path / "p.db")).close()
    vfs.Workspace(str(tmp_path / "s.db"), chunk_backend="sqlite").close()
    assert stages_uploads(str(tmp_path / "p.db"))
    assert not stages_uploads(str(tmp_path / "s.db"))
    assert not stages_uploads(str(tmp_path / "none.db")) and not (tmp_path / "none.db").exists()
