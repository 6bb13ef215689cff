"""One shared document: a co-edited text file while at least one editor has it open.

The document is a `pycrdt.Doc` whose `Y.Text` is the file's text. Editors'
Yjs messages are applied here and relayed to the other editors at once;
each update is also appended to the store's update log (`vfs.coedit_log`),
and the editor's `ok` waits for that append, so what is acknowledged
survives a crash. The text is written to the file as an ordinary revision
(authored by whoever edited since the last write) once nobody typed for
`FLUSH_DELAY`, at the latest `FLUSH_DELAY_MAX` after the first edit it
does not hold yet (typing without a pause writes every 0.8 s, not on each
pause of a quarter second), and when the last editor leaves; that write compacts the log into a
snapshot in the same transaction. The write is conditional on the content
the document last saw in the file: if the file changed from outside in
between, the outside text is merged in first (`server.coedit_merge`) and
the write retried, so no write is ever overwritten unseen.

Memory per document: the Yjs state (about the text's size plus edit
metadata), one base state, the latest awareness state per editor client,
and per editor an outbox that is merged into one update when it grows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

import blake3
from pycrdt import Doc, Text

from vfs.coedit_log import SavedDocument
from vfs.errors import PreconditionFailed
from vfs.wire import (
    COEDIT_MAX_BYTES,
    COEDIT_TEXT,
    AwarenessEntry,
    Coedit,
    CoeditClosed,
    ProtocolError,
    YAwareness,
    YSync,
    awareness_message,
    decode_awareness,
    encode,
    encode_awareness,
    sync_step1,
    sync_step2,
    sync_update,
)
from vfs.wire.coedit import SYNC_STEP1

from server.coedit_editor import Editor, Relay, update_frame, y_frame
from server.coedit_merge import new_document, outside_edit, text_of

if TYPE_CHECKING:
    from server.coedit_logger import UpdateLogWriter
    from server.stores import WorkspaceHandle
    from server.ws_api import Session

log = logging.getLogger("wsfs.server.coedit")

FLUSH_DELAY = 0.25  # seconds without an edit before a small file is written (the contract: at most 1 s)
FLUSH_DELAY_MAX = 0.8  # ... a file at the size limit (each write costs the whole text and state); and the
# longest any edit waits for its write while typing goes on
AWARENESS_BATCH = 0.05  # seconds awareness changes are gathered before one relay (a cursor moves per keystroke)
WRITE_RETRIES = 8  # conditional writes retried after merging a racing outside write


class DocumentEnded(Exception):
    """The document cannot go on (file deleted, now binary or too large): `code`, `message`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def decode_text(data: bytes, path: str) -> str:
    """The file's text, or the error that keeps it out of co-editing."""
    if len(data) > COEDIT_MAX_BYTES:
        raise DocumentEnded("EFBIG", f"{path} is {len(data)} bytes; co-editing takes files up to "
                                     f"{COEDIT_MAX_BYTES} bytes (save it with If-Match instead)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise DocumentEnded("EINVAL", f"{path} is not UTF-8 text; binary files are saved with If-Match, "
                                      "not co-edited")
    return text


def content_id(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


class SharedDocument:
    """The live document of one path in one workspace."""

    def __init__(self, handle: WorkspaceHandle, path: str, on_empty: Callable[[SharedDocument], None],
                 log_writer: UpdateLogWriter):
        self.handle = handle
        self.path = path
        self.doc = Doc()
        self.text = self.doc.get(COEDIT_TEXT, type=Text)
        self.base = b""  # the state whose text the file held at `file_hash`
        self.file_hash: str | None = None
        self.editors: dict[Session, Editor] = {}
        self.awareness: dict[int, AwarenessEntry] = {}
        self.authors: set[str] = set()
        self.dirty = False
        self.ended = False
        self.lock = asyncio.Lock()  # one write or merge at a time
        self._on_empty = on_empty
        self._flush_timer: asyncio.TimerHandle | None = None
        self._edited = 0.0  # loop time of the last edit
        self._unsaved_since = 0.0  # ... of the first edit the file does not hold yet
        self._size_bound = 0  # at least the text's size in bytes (an update adds at most its own size)
        self._log = log_writer  # the workspace's update-log writer (server/coedit_logger.py)
        self._aware_pending: dict[int, tuple[AwarenessEntry, Editor]] = {}  # awareness not yet relayed
        self._aware_timer: asyncio.TimerHandle | None = None
        self.relay = Relay()  # sends to the editors

    # -- loading --------------------------------------------------------------------

    async def load(self) -> None:
        """Build the document from the store: its saved state and log, merged with the file as it is now."""
        path = self.path

        def read(ws: Any) -> tuple[str | None, bytes | None, SavedDocument | None]:
            try:
                st = ws.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and st.kind != "file":
                raise IsADirectoryError(21, "only regular files can be co-edited", path)
            if st is not None and st.size > COEDIT_MAX_BYTES:
                raise ProtocolError("EFBIG", f"{path} is {st.size} bytes; co-editing takes files up to "
                                              f"{COEDIT_MAX_BYTES} bytes (save it with If-Match instead)",
                                    path=path, limit=COEDIT_MAX_BYTES)
            data = ws.read_file(path) if st is not None else None
            return (st.hash if st else None), data, ws.coedit_log.load(path)

        file_hash, data, saved = await self.handle.write(read, op="coedit_load")
        try:
            text = decode_text(data, path) if data is not None else ""
        except DocumentEnded as e:
            raise ProtocolError(e.code, e.message, path=path) from None
        if saved is not None:
            self._log.saw(saved.seq)  # its compaction below may drop the rows read here
        if saved is not None and (data is not None or saved.file_hash is None):
            for update in [saved.snapshot, *saved.updates] if saved.snapshot else saved.updates:
                self.doc.apply_update(update)
            self.base, self.file_hash = saved.base, saved.file_hash
            if file_hash != saved.file_hash:
                await self._merge_locked(file_hash, text)
            self.dirty = bool(saved.updates) or text_of(self.doc) != text
        else:
            fresh = new_document(text)
            self.doc.apply_update(fresh.get_update())
            self.base, self.file_hash = fresh.get_update(), file_hash
        await self._compact(self.file_hash, self.base if self.dirty else None)
        self._size_bound = len(self.text)
        if self.dirty:
            self.schedule_flush()

    async def _compact(self, file_hash: str | None, base: bytes | None = None) -> None:
        snapshot, upto = self.doc.get_update(), self._log.seen  # every row up to `upto` is in it
        await self.handle.write(lambda ws: ws.coedit_log.compact(self.path, snapshot, base, file_hash, upto),
                                op="coedit_compact")

    # -- editors --------------------------------------------------------------------

    def join(self, session: Session, step1: bytes | None) -> Editor:
        """Add an editor; queue what it needs to catch up (sent once `Editor.start` runs)."""
        editor = Editor(session, self.path, self.relay)
        self.editors[session] = editor
        if step1 is not None:
            editor.send(sync_step2(self.doc.get_update(self._state_vector(step1))))
        editor.send(sync_step1(self.doc.get_state()))
        if self.awareness:
            editor.send(awareness_message(encode_awareness(list(self.awareness.values()))))
        return editor

    @staticmethod
    def _state_vector(step1: bytes) -> bytes | None:
        from vfs.wire import read_y_message

        msg = read_y_message(step1)
        if not isinstance(msg, YSync) or msg.step != SYNC_STEP1:
            raise ProtocolError("EPROTO", "coedit_open: y must be a sync step 1", field="y")
        return msg.data or None

    def leave(self, session: Session) -> None:
        editor = self.editors.pop(session, None)
        if editor is None:
            return
        editor.stop()
        for client in editor.clients:  # its goodbye below is the last word on its clients
            self._aware_pending.pop(client, None)
        gone = [AwarenessEntry(c, self.awareness[c].clock + 1, None) for c in editor.clients if c in self.awareness]
        for entry in gone:
            del self.awareness[entry.client]
        if gone:
            self._broadcast_raw(awareness_message(encode_awareness(gone)), None)
        if not self.editors:
            self._spawn(self._close_when_empty())

    async def _close_when_empty(self) -> None:
        try:
            await self.flush()
        except Exception as e:  # noqa: BLE001 - the workspace closed under us: the log keeps the text
            log.warning("co-edited %s: not written on close (%s); kept in the update log", self.path, e)
        if not self.editors and not self.ended:
            self.ended = True
            self.relay.stop()
            self._on_empty(self)

    # -- messages from editors ---------------------------------------------------------

    def receive(self, session: Session, msg: YSync | YAwareness, request_id: Any = None) -> Editor:
        """Apply one editor's message; its `ok` (for a `request_id`) is queued once what it carries
        is stored. Returns the editor (its receive loop waits on `Editor.wait_acks`)."""
        editor = self.editors[session]
        if isinstance(msg, YAwareness):
            self._awareness(editor, msg.data)
        elif msg.step == SYNC_STEP1:
            editor.send(sync_step2(self.doc.get_update(msg.data or None)))
        elif msg.carries_update:
            self._update(session, editor, msg.data, request_id)
            return editor
        if request_id is not None:
            editor.ack_now(request_id)
        return editor

    def _update(self, session: Session, editor: Editor, update: bytes, request_id: Any) -> None:
        session.principal.require(session.workspace, "write")
        try:
            self.doc.apply_update(update)
        except ValueError as e:
            raise ProtocolError("EBADMSG", f"y update does not decode: {e}", field="y") from None
        # logged first: its commit runs before the relay's pass of this loop turn, so the `ok`
        # and the relayed update leave together (group-committed with the workspace's other updates)
        self._log.store(self.path, update, editor.acker(request_id) if request_id is not None else None)
        frame = update_frame(self.path, update)  # encoded once for every editor
        for other, peer in self.editors.items():
            if other is not session:
                peer.send_update(update, frame)
        self.authors.add(session.author)
        self.dirty = True
        self.schedule_flush()
        self._size_bound += len(update)  # an update inserts at most its own size: no length read per keystroke
        if self._size_bound > COEDIT_MAX_BYTES:
            self._size_bound = len(self.text)  # pycrdt's length is in UTF-8 bytes, as the limit is
            if self._size_bound > COEDIT_MAX_BYTES:
                self._spawn(self._outgrown())

    def _awareness(self, editor: Editor, data: bytes) -> None:
        """Take an editor's awareness entries; they are relayed `AWARENESS_BATCH` later, together
        with every other awareness change meanwhile (a browser sends one per cursor move)."""
        for entry in decode_awareness(data):
            known = self.awareness.get(entry.client)
            if known is not None and known.clock > entry.clock:
                continue
            editor.clients.add(entry.client)
            if entry.state is None:
                self.awareness.pop(entry.client, None)
            else:
                self.awareness[entry.client] = entry
            self._aware_pending[entry.client] = (entry, editor)
        if self._aware_pending and self._aware_timer is None and not self.ended:
            self._aware_timer = asyncio.get_running_loop().call_later(AWARENESS_BATCH, self._relay_awareness)

    def _relay_awareness(self) -> None:
        """One awareness message with the newest entry of each changed client, to every editor
        (an editor's own entries are left out of its copy); each sender's newest state
        becomes its connection's presence."""
        self._aware_timer = None
        pending, self._aware_pending = self._aware_pending, {}
        if self.ended or not pending:
            return
        senders = {editor for _, editor in pending.values()}
        everyone = y_frame(self.path, awareness_message(encode_awareness([e for e, _ in pending.values()])))
        for peer in self.editors.values():
            if peer not in senders:
                peer.put(everyone)  # the same frame for all of them
                continue
            others = [e for e, editor in pending.values() if editor is not peer]
            if others:
                peer.send(awareness_message(encode_awareness(others)))
        from server.coedit import feed_presence

        for sender in senders:
            states = [e.state for e, editor in pending.values() if editor is sender and e.state is not None]
            if states and self.editors.get(sender.session) is sender:
                feed_presence(sender.session, self.path, states[-1])

    def _broadcast_raw(self, y: bytes, sender: Session | None) -> None:
        frame = y_frame(self.path, y)  # built once for every editor
        for other, peer in self.editors.items():
            if other is not sender:
                peer.put(frame)

    # -- the file --------------------------------------------------------------------------

    def schedule_flush(self) -> None:
        """An edit: the file is written once nobody typed for a moment (one timer per write, not per edit)."""
        loop = asyncio.get_running_loop()
        self._edited = loop.time()
        if self._flush_timer is None and not self.ended:
            self._unsaved_since = self._edited
            self._flush_timer = loop.call_later(self._quiet_time(), self._flush_due)

    def _quiet_time(self) -> float:
        self._size_bound = size = len(self.text)
        return FLUSH_DELAY + (FLUSH_DELAY_MAX - FLUSH_DELAY) * min(1.0, size / COEDIT_MAX_BYTES)

    def _flush_due(self) -> None:
        self._flush_timer = None
        if self.ended:
            return
        loop = asyncio.get_running_loop()
        wait = min(self._edited + self._quiet_time(), self._unsaved_since + FLUSH_DELAY_MAX) - loop.time()
        if wait > 0.01:  # still typing: later, but never past FLUSH_DELAY_MAX after the first unsaved edit
            self._flush_timer = loop.call_later(wait, self._flush_due)
            return
        self._spawn(self.flush())

    async def flush(self) -> None:
        """Write the text to the file if it changed (merging a racing outside write first)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        async with self.lock:
            for _ in range(WRITE_RETRIES):
                if not self.dirty or self.ended:
                    return
                try:
                    await self._write_locked()
                    return
                except PreconditionFailed:
                    await self.check_outside_locked()
            log.warning("co-edited %s: gave up writing after %d racing outside writes", self.path, WRITE_RETRIES)
            self.schedule_flush()

    async def _write_locked(self) -> None:
        logged = self._log.logged()  # what was typed so far is logged first: its rows can then be dropped
        if logged is not None:
            await logged
        text = text_of(self.doc)
        data = text.encode("utf-8")
        state, upto = self.doc.get_update(), self._log.seen  # every log row up to `upto` is in `state`
        expected, path = self.file_hash, self.path
        authors = ", ".join(sorted(self.authors)) or None
        self.dirty, self.authors = False, set()
        new_hash = content_id(data)

        def write(ws: Any) -> tuple[str, list[int]]:
            made: list[int] = []
            forget = ws.on_commit(made.append)  # this thread, right after our COMMIT: its exact revision
            try:
                with ws.transaction():
                    if new_hash != expected:
                        if expected is None:
                            if ws.exists(path):
                                raise PreconditionFailed(path, "", ws.stat(path).hash)
                            ws.write_file(path, data)
                        else:
                            ws.write_file(path, data, if_match=expected)
                    ws.coedit_log.compact(path, state, None, new_hash, upto)
            finally:
                forget()
            return new_hash, made

        try:
            self.file_hash, made = await self.handle.write(write, author=authors, op="coedit_write")
        except BaseException:
            self.dirty = True
            self.authors |= set((authors or "").split(", ")) - {""}
            raise
        self.handle.coedit.wrote(made)  # announced to the registry after this: no outside check for them
        self.base = state

    # -- writes from outside ------------------------------------------------------------------

    async def check_outside(self) -> None:
        async with self.lock:
            await self.check_outside_locked()

    async def check_outside_locked(self) -> None:
        """Merge the file into the document if it changed since the document last saw it."""
        if self.ended:
            return
        known, path = self.file_hash, self.path

        def read(ws: Any) -> tuple[str | None, bytes | None]:
            try:
                st = ws.stat(path)
            except FileNotFoundError:
                return None, None
            if st.kind != "file" or st.hash == known:
                return st.hash if st.kind == "file" else "", None
            if st.size > COEDIT_MAX_BYTES:
                return st.hash, b"\0" * (COEDIT_MAX_BYTES + 1)
            return st.hash, ws.read_file(path)

        file_hash, data = await self.handle.read(read, op="coedit_check")
        if file_hash == known:
            return
        try:
            if file_hash is None:
                raise DocumentEnded("ENOENT", f"{path} was deleted while co-edited; the deletion stands "
                                               "(each editor still holds the text: write it to keep it)")
            if data is None:
                raise DocumentEnded("EISDIR", f"{path} is no longer a regular file")
            text = decode_text(data, path)
        except DocumentEnded as e:
            await self.end(e.code, e.message)
            return
        await self._merge_locked(file_hash, text)
        await self._compact(file_hash, self.base)

    async def _merge_locked(self, file_hash: str | None, text: str) -> None:
        update, new_base = outside_edit(self.base, text)
        self.doc.apply_update(update)
        self._size_bound = len(self.text)
        self.base, self.file_hash = new_base, file_hash
        for peer in self.editors.values():
            peer.send_update(update)
        if text_of(self.doc) != text:
            self.dirty = True
            self.schedule_flush()

    async def _outgrown(self) -> None:
        """The text grew past the limit: write it, then end (the file keeps the If-Match flow)."""
        await self.flush()
        await self.end("EFBIG", f"{self.path} grew past {COEDIT_MAX_BYTES} bytes, the co-editing limit; "
                                "it is saved, edit it with If-Match from here")

    async def end(self, code: str, message: str) -> None:
        """The document stops: every editor hears why; what was typed stays in the store's log."""
        if self.ended:
            return
        self.ended = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        closed = encode(CoeditClosed(path=self.path, code=code, message=message))
        for session, editor in list(self.editors.items()):
            editor.stop()
            session.proto.coedit.close(self.path)
            self._spawn(_send_quietly(session, closed))
        self.editors.clear()
        self.relay.stop()
        self._on_empty(self)

    # -- helpers -----------------------------------------------------------------------------

    _tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        SharedDocument._tasks.add(task)
        task.add_done_callback(_finished)


def _finished(task: asyncio.Task[Any]) -> None:
    SharedDocument._tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("co-editing task failed", exc_info=task.exception())


async def _send_quietly(session: Session, payload: bytes) -> None:
    try:
        await session.send_json(payload)
    except Exception:  # noqa: BLE001 - the editor is gone: nothing to tell
        pass

