"""Co-editing (SPEC §7) through the Python client against a real server on real sockets.

Two editors type into one file at once and converge; the file read over
HTTP becomes the document's text; writes from outside merge into the open
document; the document is refused for binary and oversized files.
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from client_py import Client
from client_py.coedit import CoeditDoc
from client_fixtures import RestartableServer
from vfs.errors import PreconditionFailed
from vfs.wire import COEDIT_MAX_BYTES

PATH = "/notes/todo.md"


async def until(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll `predicate` (sync or async) until truthy, within a bounded deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(interval)


async def file_text(ws, path: str = PATH) -> str:
    return (await ws.read_file(path)).decode()


@pytest.fixture
async def clients(server: RestartableServer):
    async with Client(server.url, token=server.admin, name="alice") as a, \
            Client(server.url, token=server.admin, name="bob") as b:
        yield a.workspace("demo"), b.workspace("demo")


async def test_two_editors_typing_at_once_converge_and_the_file_is_the_text(clients):
    wa, wb = clients
    await wa.mkdir("/notes", exist_ok=True)
    await wa.write_file(PATH, b"top\nbottom\n")
    async with await wa.coedit(PATH) as a, await wb.coedit(PATH) as b:
        assert str(a.text) == str(b.text) == "top\nbottom\n"
        for i in range(20):  # a at the start, b at the end, interleaved without waiting for each other
            a.text.insert(0, f"a{i}\n")
            b.text.insert(len(b.text), f"b{i}\n")
            await asyncio.sleep(0)
        await asyncio.gather(a.synced(), b.synced())
        await until(lambda: str(a.text) == str(b.text) and "a19" in str(a.text) and "b19" in str(b.text))
        text = str(a.text)
        for i in range(20):
            assert f"a{i}\n" in text and f"b{i}\n" in text
        assert "top\nbottom\n" in text
        await until(lambda: file_text(wa), timeout=5)
        await until(lambda: _equals(file_text(wa), text), timeout=5)


async def _equals(coro, expected: str) -> bool:
    return (await coro) == expected


async def test_http_put_while_open_merges_into_the_document(clients):
    """A writer from outside edits what it read (If-Match, as the demo's save does); the editor
    types meanwhile. Whichever reaches the file first, both sides' lines end up in both."""
    wa, wb = clients
    await wa.write_file("/plan.md", b"one\ntwo\nthree\n")
    async with await wa.coedit("/plan.md") as a:
        a.text.insert(0, "typed first\n")
        await a.synced()
        a.text.insert(len(a.text), "typed last\n")  # not waited for: may or may not be in the file yet
        for _attempt in range(20):
            seen = await wb.stat("/plan.md")
            current = await wb.read_file("/plan.md")
            try:
                await wb.write_file("/plan.md", current + b"written outside\n", if_match=seen.hash)
                break
            except PreconditionFailed:
                continue  # the document wrote in between: read again
        else:
            raise AssertionError("the outside write never got its turn")
        await until(lambda: "written outside" in str(a.text), timeout=5)
        await a.synced()
        text = str(a.text)
        for line in ("typed first\n", "one\ntwo\nthree\n", "typed last\n", "written outside\n"):
            assert line in text
        await until(lambda: _equals(file_text(wb, "/plan.md"), str(a.text)), timeout=5)
        assert str(a.text) == text  # nothing else moved


async def _changed(ws, path: str, etag: str) -> bool:
    return (await ws.stat(path)).hash != etag


async def test_binary_and_oversized_files_are_refused_with_a_clear_error(clients):
    wa, _ = clients
    await wa.write_file("/img.bin", b"\x89PNG\x00\x01\x02")
    with pytest.raises(OSError) as info:
        await wa.coedit("/img.bin")
    assert "binary" in str(info.value) and "If-Match" in str(info.value)
    await wa.write_file("/big.txt", b"x" * (COEDIT_MAX_BYTES + 1))
    with pytest.raises(OSError) as info:
        await wa.coedit("/big.txt")
    assert "EFBIG" in repr(info.value) or info.value.errno == 27
    await wa.mkdir("/dir")
    with pytest.raises(IsADirectoryError):
        await wa.coedit("/dir")


async def test_a_refused_document_is_released(clients):
    """A refused join leaves nothing behind: the document's observer refers back to it through
    pycrdt's Rust side, which Python's collector cannot see, so a refused document once lived (with
    its closed connection) until the process ended."""
    wa, _ = clients
    await wa.write_file("/refused.bin", b"\x89PNG\x00\x01")

    def live_documents() -> int:
        gc.collect()
        return sum(isinstance(o, CoeditDoc) for o in gc.get_objects())

    before = live_documents()
    for _ in range(3):
        with pytest.raises(OSError):
            await wa.coedit("/refused.bin")
    assert live_documents() == before


async def test_a_document_outgrowing_the_limit_is_saved_then_ended_with_efbig(clients):
    wa, _ = clients
    await wa.write_file("/grow.txt", b"small\n")
    doc = await wa.coedit("/grow.txt")
    try:
        doc.text.insert(len(doc.text), "y" * COEDIT_MAX_BYTES)
        await until(lambda: doc.error is not None, timeout=20)
        assert isinstance(doc.error, OSError) and doc.error.errno == 27  # EFBIG
        assert "If-Match" in str(doc.error)
        assert await wa.read_file("/grow.txt") == b"small\n" + b"y" * COEDIT_MAX_BYTES  # saved first
    finally:
        await doc.close()


async def test_a_replica_push_to_an_open_file_merges_into_the_document(clients, server, tmp_path):
    from client_py import Backoff, Replica

    wa, _ = clients
    await wa.write_file("/synced.md", b"first\n")
    async with await wa.coedit("/synced.md") as doc:
        doc.text.insert(len(doc.text), "typed in the document\n")
        await doc.synced()
        await until(lambda: _equals(file_text(wa, "/synced.md"), "first\ntyped in the document\n"), timeout=5)
        local = tmp_path / "replica"
        async with Replica(server.url, "demo", local, token=server.admin,
                           backoff=Backoff(base=0.05, cap=0.3, retries=None)) as replica:
            await replica.sync_once()
            with open(local / "synced.md", "a") as f:
                f.write("pushed by a replica\n")
            summary = await replica.sync_once()
            assert summary.uploaded == 1 and not summary.conflicts
        await until(lambda: "pushed by a replica" in str(doc.text), timeout=5)
        doc.text.insert(0, "typed after\n")
        await doc.synced()
        expected = "typed after\nfirst\ntyped in the document\npushed by a replica\n"
        assert str(doc.text) == expected
        await until(lambda: _equals(file_text(wa, "/synced.md"), expected), timeout=5)


async def test_a_python_editors_presence_is_renewed_so_others_keep_it_past_their_timeout(clients):
    """y-protocols editors drop a state not renewed within 30 s; ours renews it (here every 0.2 s,
    against a watcher that drops after 1 s). An editor that does not renew is the control: the
    watcher drops it, which shows the timeout really ran while the renewing one stayed."""
    wa, wb = clients
    await wa.write_file("/presence.md", b"here\n")
    renewing = await wa.coedit("/presence.md", awareness_renew=0.2)
    silent = await wb.coedit("/presence.md", awareness_renew=3600)
    watcher = await wb.coedit("/presence.md", name="watcher", awareness_timeout=1.0)
    try:
        await renewing.set_awareness({"cursor": {"anchor": 0, "head": 0}})
        me, quiet = renewing.doc.client_id, silent.doc.client_id
        await until(lambda: me in watcher.peers and quiet in watcher.peers, timeout=5)
        await until(lambda: quiet not in watcher.peers, timeout=10)  # > 1 s without a renewal: dropped
        assert me in watcher.peers
        assert watcher.peers[me]["user"]["name"] == "alice"
        assert watcher.peers[me]["cursor"] == {"anchor": 0, "head": 0}  # the renewal keeps the whole state
        await asyncio.sleep(1.5)  # another whole timeout: still there
        assert me in watcher.peers
    finally:
        for doc in (renewing, silent, watcher):
            await doc.close()


async def test_a_file_deleted_while_open_stays_deleted_and_the_editor_keeps_its_unsaved_text(clients):
    """Deletion wins (no editor silently brings the file back), and nothing typed is lost: the
    document ends with ENOENT and `doc.text` still holds everything, the last keystroke included."""
    wa, wb = clients
    await wa.write_file("/gone.md", b"start\n")
    doc = await wa.coedit("/gone.md")
    try:
        doc.text.insert(len(doc.text), "typed just before\n")
        await doc.synced()  # stored in the log; the 0.25 s write of the file has most likely not run
        await wb.unlink("/gone.md")
        await until(lambda: doc.error is not None, timeout=10)
        assert isinstance(doc.error, FileNotFoundError)
        assert "deletion stands" in str(doc.error)
        assert str(doc.text) == "start\ntyped just before\n"
        await asyncio.sleep(1.0)  # past the longest write delay: the ended document wrote nothing
        assert not await wa.exists("/gone.md")
        await wa.write_file("/gone.md", str(doc.text).encode())  # keeping it is one ordinary write
        assert await file_text(wa, "/gone.md") == "start\ntyped just before\n"
    finally:
        await doc.close()
