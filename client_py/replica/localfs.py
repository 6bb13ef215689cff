"""The replica's directory, touched only through safe, fd-relative calls.

Whatever the server sends, nothing is written outside `root`:
- a workspace path is split into names, and any name that is empty, `.`,
  `..`, contains NUL, or is the reserved `.wsfs` at the top is refused;
- directories are opened one name at a time from the root's file
  descriptor with `O_NOFOLLOW | O_DIRECTORY`, so a symlink anywhere on the
  way (planted by the server or by anyone) stops the walk instead of being
  followed out of the tree;
- files are written as a hidden temp file (`.wsfs-tmp-*`, `.wsfs-part-*`)
  in the destination directory, then renamed over the destination by
  directory fds (atomic; same directory also keeps ext4's inode allocation
  spread like the tree itself, ~1.5x faster than one shared temp directory);
  nothing is ever opened for writing through a symlink;
- symlinks are created as symlinks, and only when their target stays
  inside the tree lexically (no absolute target, no `..` climbing out);
- modes keep only the permission bits (`rwx` for user, group, other): a
  server can never make the replica plant a setuid, setgid or sticky file
  (`local_mode`).
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import secrets
import stat as statmod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

STATE_DIR = ".wsfs"
TMP_DIR = "tmp"
TMP_PREFIX = ".wsfs-tmp-"  # a file being written (random suffix)
PART_PREFIX = ".wsfs-part-"  # a partial download, named by its content id so a restart resumes it


def is_temp_name(name: str) -> bool:
    """Our own in-flight files: never synced, removed when found stale."""
    return name.startswith((TMP_PREFIX, PART_PREFIX))


@dataclass(frozen=True, slots=True)
class TempFile:
    """A temp file: `dir` is the workspace path of its directory (None: `.wsfs/tmp`)."""

    dir: str | None
    name: str
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ValueError):
    """A path or symlink that would reach outside the replica (refused, reported)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path!r}: {reason}")


@functools.lru_cache(maxsize=16384)
def split_path(path: str) -> tuple[str, ...]:
    """Names of a workspace path, refusing anything that could escape or hit `.wsfs` (memoised: hot)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise UnsafePath(str(path), "not an absolute workspace path")
    if path == "/":
        return ()
    names = tuple(path[1:].split("/"))
    for name in names:
        if name in ("", ".", "..") or "\x00" in name:
            raise UnsafePath(path, f"invalid name {name!r}")
        if len(name.encode("utf-8", "surrogateescape")) > 255:
            raise UnsafePath(path, "name longer than 255 bytes")
    if names[0] == STATE_DIR:
        raise UnsafePath(path, f"{STATE_DIR} is reserved for the replica's own state")
    return names


SPECIAL_BITS = statmod.S_ISUID | statmod.S_ISGID | statmod.S_ISVTX


def local_mode(mode: int) -> int:
    """A mode from the server as the replica applies it: the file type and the 0o777 permission bits,
    which any user may set on their own files; never setuid, setgid or sticky (run as root, a
    server-sent 0o4777 would otherwise plant a setuid-root file)."""
    return mode & ~SPECIAL_BITS


def symlink_stays_inside(path: str, target: str) -> bool:
    """Does `target`, read relative to the link's directory, stay inside the tree (lexically)?"""
    if not target or target.startswith("/") or "\x00" in target:
        return False
    depth = path.count("/") - 1  # directories between the root and the link
    for name in target.split("/"):
        if name == "..":
            depth -= 1
            if depth < 0:
                return False
        elif name not in ("", "."):
            depth += 1
    return True


class LocalTree:
    """fd-relative operations on the replica's directory (paths are workspace paths)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.root_fd = os.open(self.root, _DIR_FLAGS)
        os.makedirs(os.path.join(self.root, STATE_DIR, TMP_DIR), exist_ok=True)
        self.tmp_fd = os.open(os.path.join(self.root, STATE_DIR, TMP_DIR), _DIR_FLAGS)
        self._dir_cache: dict[tuple[str, ...], int] | None = None
        # Directories found missing during a batch (a fresh replica's files all sit in directories
        # the batch has yet to make): siblings skip the failing open. Anything that creates clears it.
        self._absent: set[tuple[str, ...]] = set()
        # Temp names: one random token per tree and a counter (a token per file cost a getrandom each).
        self._tmp_token = secrets.token_hex(6)
        self._tmp_count = itertools.count()

    def temp_name(self) -> str:
        """A fresh `.wsfs-tmp-*` name (created with O_EXCL: never an existing file)."""
        return f"{TMP_PREFIX}{self._tmp_token}-{next(self._tmp_count):x}"

    def close(self) -> None:
        self._drop_cache()
        for fd in (self.root_fd, self.tmp_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- walking --------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Reuse directory fds for the duration of one batch (dropped by anything that moves or removes)."""
        if self._dir_cache is not None:  # nested: the outer batch owns the cache
            yield
            return
        self._dir_cache = {}
        try:
            yield
        finally:
            self._drop_cache()
            self._dir_cache = None
            self._absent.clear()

    def _drop_cache_except(self, keep: int) -> None:
        """Forget cached directories (a subtree is about to go), but keep `keep` open: it is in use."""
        if self._dir_cache:
            for key, fd in list(self._dir_cache.items()):
                if fd != keep:
                    os.close(fd)
                    del self._dir_cache[key]

    def _drop_cache(self) -> None:
        self._absent.clear()
        if self._dir_cache:
            for fd in self._dir_cache.values():
                os.close(fd)
            self._dir_cache.clear()

    @contextmanager
    def parent_dir(self, path: str, *, create: bool = False, dir_mode: int = 0o755) -> Iterator[tuple[int, str]]:
        """(fd of the parent directory, last name). Refuses symlinked or non-directory parents."""
        names = split_path(path)
        if not names:
            raise UnsafePath(path, "the root itself")
        fd, owned = self._dir_fd(names[:-1], path, create, dir_mode)
        try:
            yield fd, names[-1]
        finally:
            if owned:
                os.close(fd)

    def _dir_fd(self, names: tuple[str, ...], path: str, create: bool, dir_mode: int) -> tuple[int, bool]:
        """fd of the directory `names` below the root, and whether the caller must close it."""
        if create and self._absent:
            self._absent.clear()  # it may make some of them
        cache = self._dir_cache
        start, fd, owned = 0, self.root_fd, False
        if cache:
            hit = cache.get(names)
            if hit is not None:
                return hit, False
            for i in range(len(names) - 1, 0, -1):
                hit = cache.get(names[:i])
                if hit is not None:
                    start, fd = i, hit
                    break
        try:
            for i in range(start, len(names)):
                try:
                    nfd = self._open_child_dir(fd, names, i, path, create, dir_mode)
                except FileNotFoundError:
                    if cache is not None:
                        self._absent.update((names[: i + 1], names))
                    raise
                if owned:
                    os.close(fd)
                fd, owned = nfd, True
                if cache is not None and len(cache) < 256:
                    cache[names[: i + 1]] = fd
                    owned = False
        except BaseException:
            if owned:
                os.close(fd)
            raise
        return fd, owned

    @staticmethod
    def _open_child_dir(fd: int, names: tuple[str, ...], i: int, path: str, create: bool, dir_mode: int) -> int:
        name = names[i]
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, dir_mode | 0o700, dir_fd=fd)
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                where = "/" + "/".join(names[: i + 1])
                if statmod.S_ISLNK(st.st_mode):
                    raise UnsafePath(path, f"goes through the symlink {where}") from None
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", where) from None
            raise

    def lstat(self, path: str) -> os.stat_result | None:
        """The local object at `path` (not followed), or None (also when a parent is missing or a symlink)."""
        if path == "/":
            return os.stat(self.root_fd)
        try:  # `parent_dir` inlined: this runs for every entry of every batch
            names = split_path(path)
            parent = names[:-1]
            if parent in self._absent:
                return None
            fd, owned = self._dir_fd(parent, path, False, 0o755)
        except (FileNotFoundError, NotADirectoryError, UnsafePath):
            return None
        try:
            return os.stat(names[-1], dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            if owned:
                os.close(fd)

    def scandir(self, path: str) -> list[tuple[str, os.stat_result]]:
        """(name, lstat) of each entry of a directory; [] if it is not a real directory."""
        return self.scandir_known(path, None)  # type: ignore[return-value]  # no `inodes`: every entry has its lstat

    def scandir_known(self, path: str, inodes: Mapping[str, int] | None) -> list[tuple[str, os.stat_result | None]]:
        """`scandir`, except that a regular file named in `inodes` (name -> inode) that is still that
        inode comes with None instead of its lstat: the directory entry itself gives type and inode,
        so no `lstat` is made for it (a rescan right after a pull skips the files the pull made)."""
        try:
            if path == "/":
                fd = os.dup(self.root_fd)
            else:
                with self.parent_dir(path) as (pfd, name):
                    fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        except (OSError, UnsafePath):
            return []
        try:
            out: list[tuple[str, os.stat_result | None]] = []
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        if inodes and inodes.get(entry.name) == entry.inode() and entry.is_file(follow_symlinks=False):
                            out.append((entry.name, None))
                            continue
                        out.append((entry.name, entry.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        continue
            return out
        finally:
            os.close(fd)

    @contextmanager
    def open_read(self, path: str) -> Iterator[int]:
        """A read fd on a regular file (never through a symlink, never anything else).

        Opened non-blocking, then checked: whatever sits at `path` by now (a FIFO
        made in the replica, a device) is refused with an OSError instead of being
        opened for real (opening a FIFO for reading blocks until a writer comes).
        """
        with self.parent_dir(path) as (pfd, name):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=pfd)
        try:
            if not statmod.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
            yield fd
        finally:
            os.close(fd)

    def readlink(self, path: str) -> str:
        with self.parent_dir(path) as (fd, name):
            return os.readlink(name, dir_fd=fd)

    # -- writing --------------------------------------------------------------------

    def temp_for(self, path: str, name: str | None = None, *, keep: bool = False) -> tuple[TempFile, int]:
        """Create (or with `keep`, reopen) a temp file beside `path`; falls back to `.wsfs/tmp`
        when the destination directory cannot be made (the entry will be refused later)."""
        name = name or self.temp_name()
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if keep else os.O_TRUNC)
        parent = path.rsplit("/", 1)[0] or "/"
        try:
            dfd, owned = self._dir_fd(split_path(parent), path, True, 0o755)
            where: str | None = parent
        except (OSError, UnsafePath):
            dfd, owned, where = self.tmp_fd, False, None
        try:
            return TempFile(where, name), os.open(name, flags, 0o600, dir_fd=dfd)
        finally:
            if owned:
                os.close(dfd)

    @contextmanager
    def _temp_dir(self, tmp: TempFile, beside: str | None = None, beside_fd: int = -1) -> Iterator[int]:
        """fd of the directory holding `tmp`; `beside_fd` when that is the parent of `beside` (the usual case)."""
        if tmp.dir is None:
            yield self.tmp_fd
            return
        if beside is not None and beside_fd >= 0 and (beside.rsplit("/", 1)[0] or "/") == tmp.dir:
            yield beside_fd
            return
        fd, owned = self._dir_fd(split_path(tmp.dir), tmp.dir, False, 0o755)
        try:
            yield fd
        finally:
            if owned:
                os.close(fd)

    def temp_unlink(self, tmp: TempFile) -> None:
        try:
            with self._temp_dir(tmp) as fd:
                os.unlink(tmp.name, dir_fd=fd)
        except (OSError, UnsafePath):
            pass

    def tmp_names(self) -> list[str]:
        return os.listdir(self.tmp_fd)

    def install(self, tmp: TempFile, path: str, st: os.stat_result | None = None) -> os.stat_result:
        """Atomically move a finished temp file to `path` (replacing a file or symlink there).

        `st`: the temp file's fstat, taken by the writer after its last change
        (a rename keeps inode, size and mtime), which saves a stat of the result.
        The rename is tried first: only when a directory is in the way is it cleared.
        """
        with self.parent_dir(path, create=True) as (fd, name), self._temp_dir(tmp, path, fd) as sfd:
            try:
                os.rename(tmp.name, name, src_dir_fd=sfd, dst_dir_fd=fd)
            except (IsADirectoryError, OSError) as e:
                if e.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                    raise
                self._clear_for(fd, name, path, keep_files=True)
                os.rename(tmp.name, name, src_dir_fd=sfd, dst_dir_fd=fd)
            return st if st is not None else os.stat(name, dir_fd=fd, follow_symlinks=False)

    def write_file(self, path: str, data: bytes, mode: int, mtime_ns: int, *, fsync: bool = False) -> os.stat_result:
        """The file at `path` now holds `data` (mode, mtime): a temp file beside it, renamed over it; its stat.

        `install(temp_for(...))` in one step for bytes already in memory (small
        files, the most common entry of a first sync): one directory lookup, the
        temp file created with its final mode (a `fchmod` only if the umask
        narrowed it), the rename tried first.
        """
        names = split_path(path)
        if not names:
            raise UnsafePath(path, "the root itself")
        dfd, owned = self._dir_fd(names[:-1], path, True, 0o755)
        try:
            tmp, perm = self.temp_name(), mode & 0o7777
            fd = os.open(tmp, _NEW_FLAGS, perm, dir_fd=dfd)
            try:
                view, done = memoryview(data), 0
                while done < len(data):
                    done += os.write(fd, view[done:])
                if fsync:
                    os.fdatasync(fd)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
                st = os.fstat(fd)
                if st.st_mode & 0o7777 != perm:  # the umask took bits away
                    os.fchmod(fd, perm)
                    st = os.fstat(fd)
            except BaseException:
                os.close(fd)
                _unlink_quietly(tmp, dfd)
                raise
            os.close(fd)
            self._rename_over(dfd, tmp, names[-1], path)
            return st
        finally:
            if owned:
                os.close(dfd)

    def _rename_over(self, dfd: int, tmp: str, name: str, path: str) -> None:
        """Rename `tmp` over `name` in one directory; a directory in the way is cleared first."""
        try:
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as e:
            if e.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                _unlink_quietly(tmp, dfd)
                raise
            try:
                self._clear_for(dfd, name, path, keep_files=True)
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                _unlink_quietly(tmp, dfd)
                raise

    def unlink_name(self, dir_path: str, name: str) -> None:
        """Remove one entry of a directory (stale temp files found by a scan)."""
        try:
            fd, owned = self._dir_fd(split_path(dir_path), dir_path, False, 0o755)
        except (OSError, UnsafePath):
            return
        try:
            os.unlink(name, dir_fd=fd)
        except OSError:
            pass
        finally:
            if owned:
                os.close(fd)

    def make_dir(self, path: str, mode: int) -> os.stat_result:
        if path == "/":
            return os.stat(self.root_fd)
        perm = (mode & 0o7777) | 0o700  # stay writable by us, or no child could be synced
        with self.parent_dir(path, create=True) as (fd, name):
            try:  # the common case, a new directory: made with its mode unless the umask narrows it
                os.mkdir(name, perm, dir_fd=fd)
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if statmod.S_ISDIR(st.st_mode) and st.st_mode & 0o7777 == perm:
                    return st
            except FileExistsError:
                pass
            self._clear_for(fd, name, path, keep_dirs=True)
            try:
                os.mkdir(name, perm, dir_fd=fd)
            except FileExistsError:
                pass
            dfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            try:
                os.chmod(dfd, perm)
                return os.fstat(dfd)
            finally:
                os.close(dfd)

    def make_symlink(self, path: str, target: str, mtime: float | None) -> os.stat_result:
        if not symlink_stays_inside(path, target):
            raise UnsafePath(path, f"symlink target {target!r} points outside the replica")
        with self.parent_dir(path, create=True) as (fd, name):
            tmp = f".wsfs-link-{os.getpid()}-{name}"[:255]
            try:
                os.unlink(tmp, dir_fd=fd)
            except FileNotFoundError:
                pass
            os.symlink(target, tmp, dir_fd=fd)
            self._clear_for(fd, name, path, keep_files=True)
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            if mtime:
                os.utime(name, ns=(int(mtime * 1e9),) * 2, dir_fd=fd, follow_symlinks=False)
            return os.stat(name, dir_fd=fd, follow_symlinks=False)

    def _clear_for(self, fd: int, name: str, path: str, *, keep_files: bool = False, keep_dirs: bool = False) -> None:
        """Remove what is at `name` when it is of the wrong kind to be replaced in place."""
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        is_dir = statmod.S_ISDIR(st.st_mode)
        if is_dir and not keep_dirs:
            self._drop_cache_except(fd)
            remove_tree(fd, name)
        elif not is_dir and keep_dirs:
            os.unlink(name, dir_fd=fd)
        # keep_files: rename(2) replaces a file or symlink atomically

    def remove(self, path: str) -> None:
        """Remove a file, symlink or whole directory (never following symlinks)."""
        try:
            with self.parent_dir(path) as (fd, name):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if statmod.S_ISDIR(st.st_mode):
                    self._drop_cache_except(fd)
                    remove_tree(fd, name)
                else:
                    os.unlink(name, dir_fd=fd)
        except (FileNotFoundError, NotADirectoryError):
            pass

    def rmdir(self, path: str) -> bool:
        try:
            with self.parent_dir(path) as (fd, name):
                self._drop_cache_except(fd)
                os.rmdir(name, dir_fd=fd)
            return True
        except OSError:
            return False

    def rename(self, src: str, dst: str) -> None:
        with self.parent_dir(src) as (sfd, sname), self.parent_dir(dst, create=True) as (dfd, dname):
            os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
        self._drop_cache()  # a directory may have moved: cached fds would follow it

    def restamp_file(self, path: str, mode: int, mtime: float) -> os.stat_result:
        """Give the regular file at `path` the mode and mtime of a change whose content it already holds."""
        with self.open_read(path) as fd:
            os.fchmod(fd, mode & 0o7777)
            ns = int(mtime * 1e9)
            os.utime(fd, ns=(ns, ns))
            return os.fstat(fd)

    def syncfs(self) -> None:
        """Flush the file system holding the replica (once per batch, instead of fsync per file)."""
        libc = _libc()
        if libc is None or libc.syncfs(self.root_fd) != 0:
            os.sync()


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """The C library with `syncfs` (loaded once: `ctypes.CDLL` per batch cost ~0.2 ms each), or None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs  # noqa: B018 - AttributeError here when the C library lacks it
        return libc
    except (OSError, AttributeError):
        return None


def _unlink_quietly(name: str, dir_fd: int) -> None:
    """Remove our own temp file after a failure (the failure is what gets reported)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def remove_tree(parent_fd: int, name: str) -> None:
    """rm -r by directory fds; symlinks inside are unlinked, never followed."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, is_dir in entries:
            if is_dir:
                remove_tree(fd, child)
            else:
                try:
                    os.unlink(child, dir_fd=fd)
                except FileNotFoundError:
                    pass
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)
