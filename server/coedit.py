"""Co-editing on the workspace WebSocket: which documents are open, and who edits them.

`server/ws_api.py` hands every `coedit_open`, `coedit` and `coedit_close`
to `dispatch`, and calls `leave_all` when a connection ends. Each
workspace's open documents live in one `Documents` registry, which also
listens to the workspace's commits (as a hub listener, like a WebSocket
session) so a write from outside (HTTP PUT, a replica's push, the mount, a
restore) is merged into the open document it touches. A document closes
once its last editor left and its text is written (`SharedDocument`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from vfs.wire import Coedit, CoeditClose, CoeditOpen, Ok, Presence, encode

from server.coedit_doc import SharedDocument, log
from server.coedit_logger import UpdateLogWriter

if TYPE_CHECKING:
    from server.hub import Hub
    from server.stores import WorkspaceHandle
    from server.ws_api import Session

COEDIT_MESSAGES = (CoeditOpen, Coedit, CoeditClose)
CHECK_PAGE = 4096  # change-log entries read per step when looking for writes to open documents


class Documents:
    """The open documents of one workspace; a hub listener for its commits."""

    def __init__(self, handle: WorkspaceHandle, hub: Hub):
        self.handle = handle  # the registry is the handle's `coedit` attribute: it lives as long
        self.name = handle.name
        self.hub = hub
        self.session = f"coedit:{self.name}"  # the hub's listener key; never a client's session id
        self.token_id = ""  # no token: revoking one never closes the registry
        self.docs: dict[str, SharedDocument] = {}
        self.log_writer = UpdateLogWriter(handle)  # one group commit for all its documents
        self._loading: dict[str, asyncio.Future[SharedDocument]] = {}
        self._checking: asyncio.Task[Any] | None = None
        self._again = False
        self._cursor: Any = None  # where the change log was last read (None while no document is open)
        self.own_revs: set[int] = set()  # revisions our documents' writes made, not yet announced
        self._heard = 0  # the revision of the last commit announced to us

    async def join(self, session: Session, path: str, step1: bytes | None) -> Any:
        doc = await self._open(path)
        return doc, doc.join(session, step1)

    async def _open(self, path: str) -> SharedDocument:
        doc = self.docs.get(path)
        if doc is not None and not doc.ended:
            return doc
        pending = self._loading.get(path)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[SharedDocument] = asyncio.get_running_loop().create_future()
        self._loading[path] = fut
        try:
            if self._cursor is None:  # read before the file is: a write in between is checked, not missed
                self._cursor = await self.handle.read(lambda ws: ws.cursor(), op="coedit_cursor")
            doc = SharedDocument(self.handle, path, self._closed, self.log_writer)
            await doc.load()
            if not self.docs:
                self._heard = self.hub.head(self.name)
                self.hub.listen(self.name, self)
            self.docs[path] = doc
            fut.set_result(doc)
            return doc
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: joiners waiting on it re-raise it
            raise
        finally:
            del self._loading[path]

    def _closed(self, doc: SharedDocument) -> None:
        if self.docs.get(doc.path) is doc:
            del self.docs[doc.path]
        if not self.docs:
            self.hub.unlisten(self.name, self)
            if not self._loading:
                self._cursor = None
                self.log_writer.close()  # its own connection; reopened by the next append

    def wrote(self, revs: list[int]) -> None:
        """A document's write committed `revs` (their announcements follow)."""
        self.own_revs.update(r for r in revs if r > self._heard)

    def get(self, path: str) -> SharedDocument | None:
        return self.docs.get(path)

    # -- the hub's listener interface ---------------------------------------------------

    def on_commit(self, rev: int) -> None:
        """Something committed: check the open documents whose files it touched (one pass at a time).

        A document's own write, announced right after the commit before it, touched nothing
        another writer did: no check (its entries are read with the next one's)."""
        heard, self._heard = self._heard, rev
        if self.own_revs:
            own = rev in self.own_revs
            self.own_revs = {r for r in self.own_revs if r > rev}
            if own and heard == rev - 1:
                return
        if self._checking is not None and not self._checking.done():
            self._again = True
            return
        self._checking = asyncio.ensure_future(self._check_all())

    async def _check_all(self) -> None:
        """Read the change log from our cursor; check each open document whose path it names."""
        while self.docs and self._cursor is not None:
            self._again = False
            cursor = self._cursor
            page = await self.handle.read(lambda ws: ws.changes_page(cursor, limit=CHECK_PAGE), op="coedit_changes")
            self._cursor = page.cursor
            for path in sorted({c.path for c in page.entries} & self.docs.keys()):
                doc = self.docs.get(path)
                if doc is not None:
                    await doc.check_outside()
            if not page.more and not self._again:
                return

    def on_presence(self, op: str, peer: dict[str, Any]) -> None:
        pass  # presence reaches editors through their own sessions

    def on_close(self, code: int, reason: str) -> None:
        pass  # each editor's session is closed too, and leaves its documents


def documents(session: Session) -> Documents:
    """The registry of `session`'s workspace."""
    return session.handle.coedit


async def recover(handle: WorkspaceHandle) -> list[str]:
    """Write into their files the documents whose acknowledged updates are only in the log
    (the server stopped before writing them, e.g. kill -9); the paths written.

    `server.store_set.Stores.get` runs it when it opens a store, before anyone else can use it,
    so the files are whole whether or not an editor ever comes back. A document that cannot
    be written (the path is now a directory, a binary file...) keeps its log for an editor."""
    registry = handle.coedit
    paths = await handle.read(lambda ws: ws.coedit_log.logged(), op="coedit_recover")
    written = []
    for path in paths:
        if path in registry.docs:
            continue
        try:
            doc = await registry._open(path)
        except Exception as e:  # noqa: BLE001 - e.g. the file became binary: its log waits for an editor
            log.warning("co-edited %s: not recovered (%s)", path, e)
            continue
        if not doc.editors:
            await doc._close_when_empty()
        written.append(path)
    return written


async def dispatch(session: Session, msg: CoeditOpen | Coedit | CoeditClose) -> None:
    """Serve one co-editing message of `session` (frames are handled in order)."""
    registry = documents(session)
    if isinstance(msg, CoeditOpen):
        session.proto.coedit.open(msg.path, msg.id)
        try:
            doc, editor = await registry.join(session, msg.path, msg.y)
        except BaseException:
            session.proto.coedit.close(msg.path)
            raise
        await session.send_json(encode(Ok(id=msg.id, result={"path": msg.path, "file_hash": doc.file_hash})))
        editor.start()
    elif isinstance(msg, Coedit):
        session.proto.coedit.require(msg.path, msg.id)
        doc = registry.get(msg.path)
        assert doc is not None  # an open path always has its document (an ended one was closed for it)
        editor = doc.receive(session, msg.message(), msg.id)  # its `ok` goes out through its outbox, in order
        if msg.id is not None:
            await editor.wait_acks()
    else:
        if session.proto.coedit.close(msg.path):
            doc = registry.get(msg.path)
            if doc is not None:
                doc.leave(session)
        await session.send_json(encode(Ok(id=msg.id)))


def leave_all(session: Session) -> None:
    """The connection ended: it leaves every document it had open."""
    registry = session.handle.coedit
    for path in list(session.proto.coedit.paths):
        session.proto.coedit.close(path)
        doc = registry.get(path)
        if doc is not None:
            doc.leave(session)


def feed_presence(session: Session, path: str, state: dict[str, Any]) -> None:
    """An editor's awareness becomes its connection's presence (file = the document, its cursor;
    its name and colour where the connection gave none: a renamed browser tab's presence is newer
    than the name its awareness state still carries)."""
    from vfs.wire import peer_from_awareness

    fields = peer_from_awareness(state)
    own = session.proto.presence or {}
    for key in ("name", "color"):  # the connection's own presence wins: awareness only fills gaps
        if own.get(key):
            fields.pop(key, None)
    event = session.proto.update_presence(Presence(op="update", file=path, **fields))
    session._publish_presence(event)
