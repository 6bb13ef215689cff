"""Directory listings kept by the kernel (`FOPEN_CACHE_DIR`) under libfuse's path API.

The kernel keeps a directory's listing in its page cache when the OPENDIR
reply says `cache_readdir` (and `keep_cache`, or the next open drops it),
and resets it itself whenever the directory changes through the mount or
its mtime moves. A local store has this mount as its only writer, so a
listing, once read, can be served by the kernel until it changes: the second
`git status` in a 3,000-directory tree then sends no READDIR at all.

libfuse 3.14 and 3.15's high-level API drop these flags: `fuse_lib_opendir`
replies with the low-level `fuse_file_info`, setting only its `fh` (3.16.1
copies them from the path-level one). So for those versions the mount wraps
the session's low-level `opendir` (`struct fuse_session.op.opendir`): the
wrapper sets the two flags on the low-level `fuse_file_info` and calls
libfuse's own function, which replies with them. The struct layout is
libfuse's private one, checked against the running session (its mount
point and its /dev/fuse descriptor) before anything is written; any other
version, or a mismatch, leaves the session untouched (listings then come
from the daemon every time, as before).
"""

from __future__ import annotations

import ctypes
import logging
import os

import mfusepy

log = logging.getLogger("wsfs.mount")

_lib = mfusepy._libfuse  # the libfuse mfusepy loaded
_LAYOUT_VERSIONS = (314, 315)  # fuse_version() of the releases whose layout is below and that drop the flags
_OPS_OFFSET = 40  # offsetof(struct fuse_session, op): char*, int, int, void*, void*, int, int
_OPENDIR_SLOT = 20  # fuse_lowlevel_ops: init destroy lookup forget getattr setattr readlink mknod mkdir unlink
#                    rmdir symlink rename link open read write flush release fsync *opendir*
_LL_OPENDIR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(mfusepy.fuse_file_info))


class _Session(ctypes.Structure):
    """The head of libfuse 3.14/3.15's `struct fuse_session` (lib/fuse_i.h), up to `op`."""

    _fields_ = [
        ("mountpoint", ctypes.c_char_p),
        ("exited", ctypes.c_int),
        ("fd", ctypes.c_int),
        ("io", ctypes.c_void_p),
        ("mo", ctypes.c_void_p),
        ("debug", ctypes.c_int),
        ("deny_others", ctypes.c_int),
    ]


assert ctypes.sizeof(_Session) == _OPS_OFFSET


def keep_listings(fuse: int | None, mountpoint: str) -> _LL_OPENDIR | None:
    """Make every OPENDIR reply ask the kernel to keep the listing; the wrapper, to keep alive.

    Call in the libfuse thread before the first OPENDIR (from `init`). None:
    not done (another libfuse version, or the session does not look as expected)."""
    version = _lib.fuse_version()
    if version not in _LAYOUT_VERSIONS or not fuse:
        log.info("libfuse %d: directory listings are not kept by the kernel", version)
        return None
    get_session = _lib.fuse_get_session
    get_session.argtypes, get_session.restype = [ctypes.c_void_p], ctypes.c_void_p
    address = get_session(fuse)
    if not address or not _looks_like_ours(_Session.from_address(address), mountpoint):
        log.warning("libfuse session layout not as expected: directory listings are not kept by the kernel")
        return None
    slot = ctypes.c_void_p.from_address(address + _OPS_OFFSET + _OPENDIR_SLOT * ctypes.sizeof(ctypes.c_void_p))
    if not slot.value:
        return None
    original = _LL_OPENDIR(slot.value)

    def opendir(req: int, ino: int, info: ctypes._Pointer) -> None:
        try:
            fields = info.contents
            fields.cache_readdir = 1
            fields.keep_cache = 1  # (otherwise the kernel drops the kept listing at every open)
        finally:
            original(req, ino, info)  # always: libfuse's own opendir is what answers the request

    wrapper = _LL_OPENDIR(opendir)
    slot.value = ctypes.cast(wrapper, ctypes.c_void_p).value
    log.info("directory listings are kept by the kernel")
    return wrapper


def _looks_like_ours(session: _Session, mountpoint: str) -> bool:
    """Is this our session: our mount point, and a descriptor open on /dev/fuse?"""
    try:
        device = os.readlink(f"/proc/self/fd/{session.fd}")
    except OSError:
        return False
    named = session.mountpoint or b""
    # (abspath, never realpath: resolving the mount point would ask this very daemon, which is busy here)
    return device == "/dev/fuse" and os.path.abspath(named.decode(errors="replace")) == os.path.abspath(mountpoint)
