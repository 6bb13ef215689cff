"""Mounting and unmounting: libfuse options, the daemon, `--background`.

The daemon is always a plain foreground process; `--background` starts it
as a detached child and waits until the mount is live, so there is never a
fork after SQLite or libfuse threads exist.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import mfusepy

import vfs
from client_py.mount.ops import WsfsOperations

log = logging.getLogger("wsfs.mount")

MOUNT_WAIT_SECONDS = 60.0  # a remote mount loads the tree's metadata first
LOCAL_CACHE_SECONDS = 60.0  # kernel attribute/name cache for a local store (see fuse_options)


class _Fuse(mfusepy.FUSE):
    """mfusepy drops rename(2) flags; pass them on (RENAME_NOREPLACE, RENAME_EXCHANGE)."""

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        return self.operations.rename(old.decode(self.encoding, self.errors), new.decode(self.encoding, self.errors), flags)

    def truncate_fuse_3(self, path: bytes | None, length: int, fip) -> int:
        # mfusepy drops the file handle; ftruncate on an unlinked file needs it.
        fh = fip.contents.fh if fip else None
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        return self.operations.truncate(decoded, length, fh)

    def getattr_fuse_3(self, path: bytes | None, buf, fip) -> int:
        # The hottest request: fill the struct directly (see WsfsOperations.fill_stat).
        ctypes.memset(buf, 0, ctypes.sizeof(mfusepy.c_stat))
        fh = fip.contents.fh if fip else None
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        return self.operations.fill_stat(decoded, fh, buf.contents)

    def write(self, path: bytes | None, buf, size: int, offset: int, fip) -> int:
        # The kernel's buffer as a view, copied once, into the spool (mfusepy copies
        # it to a bytes object first: a second copy of every byte written).
        data = memoryview(ctypes.cast(buf, ctypes.POINTER(ctypes.c_char * size)).contents).cast("B")
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        return self.operations.write(decoded, data, offset, fip.contents.fh)

    def create(self, path: bytes, mode: int, fip) -> int:
        # mfusepy inspects the signature of `create` on every call (~50 us); ours is fixed.
        info = fip.contents
        info.fh = self.operations.create(path.decode(self.encoding, self.errors), mode, info.flags)
        return 0


def fuse_options(*, local: bool, follows_stream: bool = False) -> dict:
    """libfuse options. Why each one:

    - use_ino: st_ino comes from the store, so hard links share an inode number.
    - no hard_remove: libfuse keeps an open file that loses its last name under
      a `.fuse_hidden*` stand-in, which `WsfsOperations` keeps in memory only (the
      store removes the name at once, so rename stays atomic), so fstat on the
      descriptor still finds the inode; it keeps reading what it snapshotted at open.
    - default_permissions: the kernel checks mode/uid/gid for non-root callers.
    - allow_other (as root): other users can enter the mount at all.
    - kernel_cache (local store only: the mount is its only writer): the page
      cache survives open(), so re-reads never reach Python.
    - attr/entry/negative timeouts: the kernel caches stat results and names
      (60 s for a local store, which only this mount writes: every change
      reaches the kernel through it, and the other names of a hard-linked
      file are invalidated explicitly; 0.5 s in remote mode so changes made
      elsewhere show within a second). `git status` in a 10k-file tree
      stats every file: served from these caches it never reaches Python.
      `follows_stream` (remote mode): the mount drops what the change stream
      reports changed (`notify.StreamInvalidator`), so names and attributes get
      the local store's 60 s too; absent names are still asked for every time.
    """
    timeout = LOCAL_CACHE_SECONDS if local or follows_stream else 0.5
    options = {
        "use_ino": True,
        "default_permissions": True,
        "attr_timeout": timeout,
        "entry_timeout": timeout,
        "negative_timeout": LOCAL_CACHE_SECONDS if local else 0.0,
        # Explicit, not just libfuse's default: set-id bits stored in a workspace (a remote
        # one included) never take effect here, and device nodes cannot be opened.
        "nosuid": True,
        "nodev": True,
        "fsname": "wsfs",
        "subtype": "wsfs",
    }
    if local:
        options["kernel_cache"] = True
    if os.getuid() == 0:
        options["allow_other"] = True
    return options


APIS = ("path", "lowlevel")  # libfuse's path API through mfusepy; its low-level API (lowlevel/)


def default_api() -> str:
    """`--api`'s default, local or remote: $WSFS_MOUNT_API, else the low-level API (it passes
    every mount test and pjdfstest as the path API does, local and remote; docs/mount.md)."""
    return os.environ.get("WSFS_MOUNT_API") or "lowlevel"


def run_foreground(operations: WsfsOperations, mountpoint: str, *, local: bool, debug: bool = False,
                   follows_stream: bool = False, api: str = "path") -> None:
    """Serve the mount until it is unmounted (or SIGINT/SIGTERM)."""
    # One libfuse thread by default: every operation takes the mount's lock
    # anyway, and ctypes callbacks on libfuse's own threads pay for a fresh
    # Python thread state per call (create 1,000 files: 2.4x slower measured).
    single = os.environ.get("WSFS_MOUNT_THREADS", "single") != "multi"
    operations.mountpoint = mountpoint
    if api == "lowlevel":
        from client_py.mount.lowlevel import adapter

        # The timeouts of `fuse_options`, per reply: a local store's everywhere; remote, names and
        # attributes as long (the change stream drops what changed elsewhere), and no page cache
        # kept across opens. Absent names too when the mount follows the stream: a name made
        # elsewhere drops the kernel's absent entry (`invalidate.py`; race-free, unlike on the
        # path API: see there), where the path API keeps none.
        options = fuse_options(local=local, follows_stream=follows_stream)
        negative = options["negative_timeout"] if local or not follows_stream else LOCAL_CACHE_SECONDS
        adapter.serve(operations, mountpoint, timeout=options["attr_timeout"], keep_cache=local, threads=not single,
                      debug=debug, negative_timeout=negative)
        return
    _Fuse(operations, mountpoint, foreground=True, debug=debug, nothreads=single,
          **fuse_options(local=local, follows_stream=follows_stream))


def mount_local(store: str, mountpoint: str, *, debug: bool = False, api: str | None = None,
                commit: dict[str, float] | None = None) -> None:
    """Mount a local store. `commit`: the group commit's `idle` and `max_age` seconds if not the
    defaults (`client_py.mount.group`)."""
    store = os.path.abspath(store)

    # Opened before mounting, so a bad or busy store fails here, clearly. Exclusive:
    # the kernel caches what it saw, so no other process may write the store meanwhile.
    # path_max=None: the kernel limits what each caller passes (relative to its own
    # directory); from the workspace root, a deep tree may be longer than PATH_MAX.
    # checkpoints="background": no request waits behind a WAL checkpoint's copy and fsyncs.
    workspace = vfs.Workspace(store, exclusive=True, path_max=None, checkpoints="background")
    operations = WsfsOperations(lambda: workspace, statfs_dir=os.path.dirname(store), commit=commit)
    # The only writer: the kernel may keep directory listings (the low-level API: by protocol).
    api = api or default_api()
    operations.cache_dirs = api == "path"
    run_foreground(operations, mountpoint, local=True, debug=debug, api=api)


def start_background(argv: list[str], mountpoint: str, log_file: str | None = None) -> int:
    """Run `wsfs mount ARGV` (without --background) detached; return its pid once mounted."""
    child = _spawn(argv, log_file, detach=True)
    wait_mounted(mountpoint, child.poll)
    return child.pid


def _spawn(argv: list[str], log_file: str | None, *, detach: bool) -> subprocess.Popen:
    """Start `python -m client_py.mount ARGV`, its output appended to `log_file`."""
    command = [sys.executable, "-m", "client_py.mount", *argv]
    if not log_file:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=detach,
        )
    with open(log_file, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=detach)


def wait_mounted(mountpoint: str, exited: Callable[[], int | None] = lambda: None) -> None:
    """Block until `mountpoint` is a FUSE mount (bounded), or the daemon died."""
    deadline = time.monotonic() + MOUNT_WAIT_SECONDS
    while time.monotonic() < deadline:
        if is_mounted(mountpoint):
            return
        code = exited()
        if code is not None:
            raise RuntimeError(f"mount daemon exited with status {code} before {mountpoint} was mounted")
        time.sleep(0.05)
    raise TimeoutError(f"{mountpoint} was not mounted within {MOUNT_WAIT_SECONDS:.0f}s")


def is_mounted(mountpoint: str) -> bool:
    """True if /proc/mounts lists a wsfs FUSE mount at `mountpoint` (even a dead one)."""
    target = os.path.realpath(mountpoint)
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and _unescape(fields[1]) == target and fields[2].startswith("fuse"):
                return True
    return False


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def unmount(mountpoint: str, *, lazy: bool = False) -> None:
    """Unmount cleanly: the daemon commits every buffered write, then exits."""
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    command = [tool, "-u", *(["-z"] if lazy else []), mountpoint] if tool else ["umount", *(["-l"] if lazy else []), mountpoint]
    subprocess.run(command, check=True)


class MountProcess:
    """A mount daemon run as a child process; the context manager always unmounts.

    For tests, benchmarks and scripts: `with MountProcess(["STORE.db"], mnt) as m:`
    mounts, `m.pid` is the daemon, and leaving the block unmounts (lazily if
    the daemon is gone or the mount is busy) and reaps the daemon.
    """

    def __init__(self, source: list[str], mountpoint: str, *, log_file: str | None = None, extra: list[str] = ()):
        self.argv = ["mount", *source, mountpoint, *extra]
        self.mountpoint = mountpoint
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> MountProcess:
        self.process = _spawn(self.argv, self.log_file, detach=False)
        try:
            wait_mounted(self.mountpoint, self.process.poll)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 30.0) -> int | None:
        """Unmount (clean if possible) and wait for the daemon; return its exit status."""
        if is_mounted(self.mountpoint):
            try:
                unmount(self.mountpoint)
            except subprocess.CalledProcessError:
                unmount(self.mountpoint, lazy=True)
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)
