"""ctypes over libfuse 3's low-level API (`fuse_lowlevel.h`): the structs, the request slots,
the reply and notify functions, and a session (new, mount, loop, unmount, destroy).

Callbacks are ctypes functions called by libfuse's own C loop (`fuse_session_loop`), as
mfusepy runs its path-API callbacks; the library handle and the shared structs
(`struct stat`, `struct statvfs`, `struct fuse_file_info`, `struct fuse_conn_info`) are
mfusepy's. pyfuse3 was measured and is slower (docs/mount.md, "A low-level binding: the
floor measured"). The `fuse_lowlevel_ops` layout is libfuse 3.14's; `check_version`
refuses another major version.

Each request handler must reply exactly once (`fuse_reply_*`), except `forget`,
`forget_multi` (`fuse_reply_none`) and `init`/`destroy` (no reply).
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable
from ctypes import POINTER, c_char_p, c_double, c_int, c_int64, c_size_t, c_uint, c_uint64, c_void_p

import mfusepy
from mfusepy import c_stat, c_statvfs, fuse_conn_info, fuse_file_info

lib = mfusepy._libfuse  # libfuse3.so.3 (mfusepy has no public accessor)

__all__ = ["Args", "Ctx", "EntryParam", "ForgetData", "SLOTS", "Session", "c_stat", "c_statvfs", "fuse_conn_info",
           "fuse_file_info", "lib"]


class EntryParam(ctypes.Structure):
    """`struct fuse_entry_param`: a LOOKUP/MKDIR/CREATE... reply (ino 0 = a cached negative entry)."""

    _fields_ = [("ino", c_uint64), ("generation", c_uint64), ("attr", c_stat),
                ("attr_timeout", c_double), ("entry_timeout", c_double)]


class Args(ctypes.Structure):
    """`struct fuse_args`."""

    _fields_ = [("argc", c_int), ("argv", POINTER(c_char_p)), ("allocated", c_int)]


class Ctx(ctypes.Structure):
    """`struct fuse_ctx`: who made the request."""

    _fields_ = [("uid", c_uint), ("gid", c_uint), ("pid", c_int), ("umask", c_uint)]


class ForgetData(ctypes.Structure):
    """`struct fuse_forget_data`: one entry of a BATCH_FORGET."""

    _fields_ = [("ino", c_uint64), ("nlookup", c_uint64)]


Req, Ino, FI = c_void_p, c_uint64, POINTER(fuse_file_info)
# fuse_lowlevel_ops (libfuse 3.14), in order: name -> (slot, argument types)
SLOTS: dict[str, tuple[int, list]] = {
    "init": (0, [c_void_p, c_void_p]), "destroy": (1, [c_void_p]), "lookup": (2, [Req, Ino, c_char_p]),
    "forget": (3, [Req, Ino, c_uint64]), "getattr": (4, [Req, Ino, FI]),
    "setattr": (5, [Req, Ino, POINTER(c_stat), c_int, FI]), "readlink": (6, [Req, Ino]),
    "mknod": (7, [Req, Ino, c_char_p, c_uint, c_uint64]), "mkdir": (8, [Req, Ino, c_char_p, c_uint]),
    "unlink": (9, [Req, Ino, c_char_p]), "rmdir": (10, [Req, Ino, c_char_p]),
    "symlink": (11, [Req, c_char_p, Ino, c_char_p]), "rename": (12, [Req, Ino, c_char_p, Ino, c_char_p, c_uint]),
    "link": (13, [Req, Ino, Ino, c_char_p]), "open": (14, [Req, Ino, FI]),
    "read": (15, [Req, Ino, c_size_t, c_int64, FI]), "write": (16, [Req, Ino, c_void_p, c_size_t, c_int64, FI]),
    "flush": (17, [Req, Ino, FI]), "release": (18, [Req, Ino, FI]), "fsync": (19, [Req, Ino, c_int, FI]),
    "opendir": (20, [Req, Ino, FI]), "readdir": (21, [Req, Ino, c_size_t, c_int64, FI]),
    "releasedir": (22, [Req, Ino, FI]), "fsyncdir": (23, [Req, Ino, c_int, FI]), "statfs": (24, [Req, Ino]),
    "getxattr": (26, [Req, Ino, c_char_p, c_size_t]), "access": (29, [Req, Ino, c_int]),
    "create": (30, [Req, Ino, c_char_p, c_uint, FI]), "forget_multi": (38, [Req, c_size_t, POINTER(ForgetData)]),
    "readdirplus": (41, [Req, Ino, c_size_t, c_int64, FI]),
}  # fmt: skip
OPS_SLOTS = 44  # sizeof(struct fuse_lowlevel_ops) / sizeof(void *) in 3.14
NO_REPLY = ("init", "destroy")  # (forget and forget_multi reply with fuse_reply_none)

FUSE_CAP_AUTO_INVAL_DATA = 1 << 12
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14
# setattr's to_set bits (fuse_lowlevel.h)
SET_MODE, SET_UID, SET_GID, SET_SIZE, SET_ATIME, SET_MTIME = 1, 2, 4, 8, 16, 32
SET_ATIME_NOW, SET_MTIME_NOW = 128, 256


def _declare() -> None:
    for name, restype, argtypes in [
        ("fuse_reply_err", c_int, [Req, c_int]), ("fuse_reply_none", None, [Req]),
        ("fuse_reply_entry", c_int, [Req, POINTER(EntryParam)]),
        ("fuse_reply_create", c_int, [Req, POINTER(EntryParam), FI]),
        ("fuse_reply_attr", c_int, [Req, POINTER(c_stat), c_double]), ("fuse_reply_readlink", c_int, [Req, c_char_p]),
        ("fuse_reply_open", c_int, [Req, FI]), ("fuse_reply_write", c_int, [Req, c_size_t]),
        ("fuse_reply_buf", c_int, [Req, c_void_p, c_size_t]), ("fuse_reply_statfs", c_int, [Req, POINTER(c_statvfs)]),
        ("fuse_req_ctx", POINTER(Ctx), [Req]),
        ("fuse_add_direntry", c_size_t, [Req, c_void_p, c_size_t, c_char_p, POINTER(c_stat), c_int64]),
        ("fuse_add_direntry_plus", c_size_t, [Req, c_void_p, c_size_t, c_char_p, POINTER(EntryParam), c_int64]),
        ("fuse_session_new", c_void_p, [POINTER(Args), c_void_p, c_size_t, c_void_p]),
        ("fuse_session_mount", c_int, [c_void_p, c_char_p]), ("fuse_session_loop", c_int, [c_void_p]),
        ("fuse_session_loop_mt", c_int, [c_void_p, c_void_p]),
        ("fuse_session_unmount", None, [c_void_p]), ("fuse_session_destroy", None, [c_void_p]),
        ("fuse_session_exit", None, [c_void_p]),
        ("fuse_set_signal_handlers", c_int, [c_void_p]), ("fuse_remove_signal_handlers", None, [c_void_p]),
        ("fuse_lowlevel_notify_inval_inode", c_int, [c_void_p, Ino, c_int64, c_int64]),
        ("fuse_lowlevel_notify_inval_entry", c_int, [c_void_p, Ino, c_char_p, c_size_t]),
        ("fuse_version", c_int, []),
    ]:
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes


_declare()


def check_version() -> None:
    """The slot table above is libfuse 3's (3.14 here); refuse anything else clearly."""
    version = lib.fuse_version()  # 3.14 -> 314
    if version // 100 != 3 or version < 312:
        raise RuntimeError(f"the low-level binding needs libfuse 3.12 or later, found {version // 100}.{version % 100}")


def ops_table(handlers: dict[str, Callable]) -> tuple[ctypes.Array, list]:
    """A `struct fuse_lowlevel_ops` with `handlers` (name -> Python function taking the slot's
    arguments) in their slots; absent ones stay NULL (libfuse answers ENOSYS). Returns the
    table and the ctypes callbacks, which must stay referenced while the session runs."""
    table, keep = (c_void_p * OPS_SLOTS)(), []
    for name, function in handlers.items():
        slot, argtypes = SLOTS[name]
        callback = ctypes.CFUNCTYPE(None, *argtypes)(function)
        keep.append(callback)
        table[slot] = ctypes.cast(callback, c_void_p)
    return table, keep


def conn_info(conn: int) -> fuse_conn_info:
    """The `struct fuse_conn_info` `init` receives (its address), as a ctypes struct."""
    return fuse_conn_info.from_address(conn)


def caller(req: int) -> Ctx:
    """The uid, gid, pid and umask of the process that made `req`."""
    return lib.fuse_req_ctx(req).contents


def fill_timespec(spec, ns: int) -> None:
    spec.tv_sec, spec.tv_nsec = divmod(ns, 1_000_000_000)


def timespec_ns(spec) -> int:
    return spec.tv_sec * 1_000_000_000 + spec.tv_nsec


class Session:
    """One `struct fuse_session`: created from libfuse mount options (`-o ...`) and an ops table."""

    def __init__(self, argv: list[bytes], handlers: dict[str, Callable]):
        check_version()
        self._table, self._keep = ops_table(handlers)
        args = Args(len(argv), (c_char_p * len(argv))(*argv), 0)
        self._argv = args  # (libfuse keeps pointers into it)
        self.se = lib.fuse_session_new(ctypes.byref(args), self._table, ctypes.sizeof(self._table), None)
        if not self.se:
            raise RuntimeError("fuse_session_new failed (see libfuse's message above)")

    def mount(self, mountpoint: str) -> None:
        if lib.fuse_session_mount(self.se, mountpoint.encode()):
            raise RuntimeError(f"fuse_session_mount failed for {mountpoint}")

    def loop(self, *, threads: bool = False) -> int:
        """Serve requests until unmounted or SIGINT/SIGTERM/SIGHUP (libfuse's handlers:
        they end the loop, so the caller unmounts and destroys cleanly)."""
        previous = signal.signal(signal.SIGINT, signal.SIG_DFL)  # (libfuse only replaces default handlers)
        if lib.fuse_set_signal_handlers(self.se):
            raise RuntimeError("fuse_set_signal_handlers failed")
        try:
            return lib.fuse_session_loop_mt(self.se, None) if threads else lib.fuse_session_loop(self.se)
        finally:
            lib.fuse_remove_signal_handlers(self.se)
            signal.signal(signal.SIGINT, previous)

    def close(self) -> None:
        """Unmount (if still mounted) and free the session; libfuse calls `destroy` first."""
        if self.se:
            lib.fuse_session_unmount(self.se)
            lib.fuse_session_destroy(self.se)
            self.se = None

    def inval_inode(self, ino: int, offset: int = 0, length: int = 0) -> int:
        """Drop the kernel's attributes of `ino` (and its pages in [offset, offset+length);
        length 0: all, -1: none). Never from inside a request on the same inode's data."""
        return lib.fuse_lowlevel_notify_inval_inode(self.se, ino, offset, length) if self.se else 0

    def inval_entry(self, parent: int, name: bytes) -> int:
        """Drop the kernel's entry `name` in directory `parent`. Not from inside a request
        that holds that directory's lock in the kernel (unlink, rename ... in it)."""
        return lib.fuse_lowlevel_notify_inval_entry(self.se, parent, name, len(name)) if self.se else 0
