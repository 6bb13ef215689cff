"""`Workspace.open()` and `Workspace.open_ino()`: real binary file objects over the store.

Readers see the content as it was when they opened (chunks are immutable,
so a snapshot of the chunk list is enough). Writers work on a local spool
(memory, then a temp file past 8 MiB) and commit it as one transaction on
flush/close: a program writing in small pieces makes one revision, not one
per write, and other readers never see a half-written file.

    workspace  ->  fileobj  ->  content, namespace
"""

from __future__ import annotations

import errno
import io
import tempfile

from vfs.chunkreader import open_chunks
from vfs.chunks import unpack
from vfs.content import Content
from vfs.db import Db
from vfs.errors import fs_error
from vfs.namespace import Namespace
from vfs.schema import KIND_DIR, KIND_FILE

SPOOL_IN_MEMORY = 8 << 20
_MODES = {"rb", "wb", "ab", "xb", "r+b", "w+b", "a+b", "x+b"}


class SpooledWriter(io.BufferedIOBase):
    """A read/write file whose content is committed to the store on flush/close."""

    def __init__(self, names: Namespace, content: Content, path: str, mode: str):
        self._names = names
        self._content = content
        self.name = path
        self.mode = mode
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        self._append = mode.startswith("a")
        self._readable = "+" in mode or mode.startswith("r")
        self._dirty = False
        self._prepare(mode)

    def _prepare(self, mode: str) -> None:
        exists = self._names.exists(self.name)
        if mode.startswith("x") and (exists or self._is_dangling_link()):
            raise fs_error(errno.EEXIST, self.name)
        if mode.startswith("r") and not exists:
            self._names.stat(self.name)  # raises the precise error (ENOENT, ENOTDIR, ...)
        if mode.startswith(("r", "a")) and exists:
            for piece in self._content.iter_file(self.name):
                self._spool.write(piece)
            self._spool.seek(0 if mode.startswith("r") else io.SEEK_END, io.SEEK_SET if mode.startswith("r") else 0)
            if mode.startswith("a"):
                self._spool.seek(0, io.SEEK_END)
        else:
            # Creating or truncating happens at open, as with open(2).
            self._content.write_file(self.name, b"")

    def _is_dangling_link(self) -> bool:
        try:
            return self._names.lstat(self.name).kind == "symlink"
        except OSError:
            return False

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if not self._readable:
            raise io.UnsupportedOperation("file not open for reading")
        return self._spool.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def write(self, data) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to closed file")
        if self._append:
            self._spool.seek(0, io.SEEK_END)
        written = self._spool.write(data)
        self._dirty = self._dirty or written > 0  # an empty write issues no write(2): nothing to commit
        return written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._spool.seek(offset, whence)

    def tell(self) -> int:
        return self._spool.tell()

    def truncate(self, size: int | None = None) -> int:
        """Shrink or zero-extend, as ftruncate(2) (BytesIO alone would not extend)."""
        self._dirty = True
        position = self._spool.tell()
        size = position if size is None else size
        end = self._spool.seek(0, io.SEEK_END)
        zeros = bytes(min(size - end, 1 << 20)) if size > end else b""
        while end < size:  # in 1 MiB steps: `truncate -s 10G` must not allocate 10 GiB
            end += self._spool.write(zeros[: size - end])
        if not zeros:
            self._spool.truncate(size)
        self._spool.seek(position)
        return size

    def flush(self) -> None:
        """Commit the spool as the file's new content (one transaction)."""
        if self.closed or not self._dirty:
            return
        position = self._spool.tell()
        self._spool.seek(0)
        self._content.write_file(self.name, _Slice(self._spool))
        self._spool.seek(position)
        self._dirty = False

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self._spool.close()
            super().close()


class _Slice:
    """Expose only `read` of the spool, so the chunker streams it."""

    def __init__(self, spool):
        self._spool = spool

    def read(self, n: int = -1) -> bytes:
        return self._spool.read(n)


def open_file(names: Namespace, content: Content, path: str, mode: str = "rb"):
    if mode not in _MODES:
        raise ValueError(f"invalid mode {mode!r}: expected one of {sorted(_MODES)}")
    if mode == "rb":
        return content.open_reader(path)
    return SpooledWriter(names, content, path, mode)


_FILE_OF = "SELECT kind, chunks FROM nodes WHERE ino = ?"


def open_ino(db: Db, ino: int) -> io.BufferedReader:
    """A reader of inode `ino`'s content as it is now: what `open(path, "rb")` gives for a
    path naming it, found by one primary-key row instead of a walk of the path's
    components. A FUSE mount of a local store knows the inode of every open file (git
    reads ~6,200 of them in an `add -A`: the walks were ~7 % of the mount's CPU), and a
    file renamed or given another name since its open is still that inode.
    ENOENT: no such inode (never was, or its last name went); EISDIR: a directory;
    EINVAL: any other kind that is not a regular file (a symlink's inode is not followed)."""
    row = db.conn.execute(_FILE_OF, (ino,)).fetchone()
    name = f"<inode {ino}>"
    if row is None:
        raise fs_error(errno.ENOENT, name)
    if row[0] != KIND_FILE:
        raise fs_error(errno.EISDIR if row[0] == KIND_DIR else errno.EINVAL, name)
    return open_chunks([(entry.id, entry.size) for entry in unpack(row[1])], db.chunks.read, name)
