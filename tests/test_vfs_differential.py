"""The store against Linux: same random call sequences, same results, same errnos, same tree.

A hypothesis state machine drives a `vfs.Workspace` (a real SQLite file) and
a temporary directory (through `os`) with the same operations, and after
every step checks that both gave the same result or the same error (type and
errno) and that the whole trees are identical: kinds, modes, sizes, bytes,
symlink targets, nlink, and which paths are hard links of each other.

Store path `/x/y` maps to `<tmpdir>/x/y`. A 4-name alphabet and depth <= 3
make operations collide often (renames over existing entries, symlinks to
directories in the middle of paths, dangling symlinks, loops).

Deliberate differences, kept out of the generated sequences and pinned by the
edge-case tests at the end of this module instead:
- umask: the store never applies one. The test process runs with umask 022
  and only uses modes without group/other write bits, which 022 leaves
  intact; directories created by `mkdir(parents=True)` are 0o755 on both.
- `/` itself is never the target of rm/rmdir/rename/unlink (the temp dir is
  not a root): `rm("/")` raises EPERM in the store.
- Trailing slashes are normalised away by the store (Linux would say
  ENOTDIR for `file/`), so none are generated.
- Absolute symlink targets are not generated (on disk they would leave the
  temp dir); relative targets use `..` only where it cannot climb above the
  root (on disk it would leave the temp dir, the store clamps it at `/`).
- Not compared: directory sizes, directory mtimes, atime, ctime, inode
  numbers (hard-link identity is compared as groups of paths instead).
  Directory nlink is compared (2 + subdirectories, as ext4 counts it).
- `copy` is compared with `shutil.copy2`, except that a directory
  destination is EISDIR in the store (copy2 would copy into it).
- `rm` has no `os` twin: it is compared with GNU `rm` semantics (see
  `disk_rm`): a symlink is removed, never followed; a directory needs
  `recursive` unless it is empty; `force` ignores ENOENT/ENOTDIR only.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import stat as st
import tempfile

import hypothesis_profiles  # noqa: F401  (registers and loads the profile)
import pytest
from hypothesis import strategies as hs
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from vfs_strategies import (
    disk_link_groups,
    disk_snapshot,
    disk_stat_view,
    vfs_link_groups,
    vfs_snapshot,
    vfs_stat_view,
)

import vfs

NAMES = ("a", "b", "é", "x y")  # unicode and a space; "x y" < "é" in UTF-8 byte order
DIR_MODES = (0o755, 0o700, 0o750)
FILE_MODES = (0o644, 0o600, 0o755, 0o640)
SIZES = (0, 1, 7, 100, 20_000, 70_000, 300_000)  # 70k/300k span several chunks

paths = hs.lists(hs.sampled_from(NAMES), min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


datas = hs.one_of(
    hs.binary(max_size=40),
    hs.builds(payload, hs.integers(0, 3), hs.sampled_from(SIZES)),
)
offsets = hs.one_of(hs.sampled_from((0, 1, 16_384, 65_536, 299_990)), hs.integers(0, 120))
targets = hs.tuples(
    hs.booleans(),  # leading "../" (kept only where it cannot climb above the root)
    hs.lists(hs.sampled_from(NAMES + ("zz",)), min_size=1, max_size=3),  # "zz": always dangling
)

# ---------------------------------------------------------------- os twins


def disk_write_file(real: str, data: bytes) -> None:
    with open(real, "wb") as f:  # O_CREAT|O_TRUNC: keeps the inode, follows symlinks
        f.write(data)


def disk_write_range(real: str, offset: int, data: bytes) -> None:
    fd = os.open(real, os.O_WRONLY)  # pwrite needs an existing file
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def disk_read_range(real: str, offset: int, size: int) -> bytes:
    fd = os.open(real, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def disk_read_file(real: str) -> bytes:
    with open(real, "rb") as f:
        return f.read()


def disk_rm(real: str, recursive: bool, force: bool) -> None:
    """GNU `rm [-r] [-f] [-d]`: what `Workspace.rm` is compared with."""
    try:
        s = os.lstat(real)
        if not st.S_ISDIR(s.st_mode):
            os.unlink(real)
        elif recursive:
            _rmtree(real)
        else:
            os.rmdir(real)  # empty: removed; otherwise ENOTEMPTY (force does not hide it)
    except OSError as e:
        if not (force and e.errno in (errno.ENOENT, errno.ENOTDIR)):
            raise


def _rmtree(real: str) -> None:
    for entry in os.scandir(real):
        if entry.is_dir(follow_symlinks=False):
            _rmtree(entry.path)
        else:
            os.unlink(entry.path)
    os.rmdir(real)


def disk_copy(src: str, dst: str) -> None:
    """`shutil.copy2` (content, mode, mtime; follows a symlink source), but never "into" a directory."""
    os.stat(src)  # the source's errors come first, as in cp and copy2
    if os.path.isdir(dst):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), dst)
    shutil.copy2(src, dst)


def disk_readdir(real: str) -> list[tuple]:
    out = []
    for name in os.listdir(real):
        s = os.lstat(os.path.join(real, name))
        kind = {st.S_IFREG: "file", st.S_IFDIR: "dir", st.S_IFLNK: "symlink"}[st.S_IFMT(s.st_mode)]
        out.append((name, kind, s.st_size if kind != "dir" else None))
    return sorted(out, key=lambda e: e[0].encode())


def vfs_readdir(ws: vfs.Workspace, path: str) -> list[tuple]:
    return [(e.name, e.kind, e.size if e.kind != "dir" else None) for e in ws.readdir(path)]


# ---------------------------------------------------------------- the machine


class Outcome:
    """A call's result or its error, in a form both sides can be compared on."""

    def __init__(self, fn):
        self.value = self.error = None
        try:
            self.value = fn()
        except OSError as e:
            self.error = e

    def key(self):
        if self.error is not None:
            return ("error", type(self.error).__name__, errno.errorcode.get(self.error.errno))
        return ("ok", self.value)


class DifferentialMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="vfs-diff-")
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root, 0o755)
        self.ws = vfs.Workspace(os.path.join(self.tmp, "store.db"))
        self.log: list[str] = []

    def teardown(self):
        self.ws.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def real(self, path: str) -> str:
        return self.root + path

    def both(self, desc: str, on_vfs, on_disk, *, vfs_view=None, disk_view=None):
        """Run one call on each side; same result or same (type, errno), else fail."""
        self.log.append(desc)
        mine, theirs = Outcome(lambda: on_vfs(self.ws)), Outcome(on_disk)
        if mine.error is None and vfs_view:
            mine.value = vfs_view(mine.value)
        if theirs.error is None and disk_view:
            theirs.value = disk_view(theirs.value)
        assert mine.key() == theirs.key(), (
            f"{desc}: store gave {mine.key()!r}, Linux gave {theirs.key()!r}"
            f" ({mine.error!r} / {theirs.error!r}); steps so far: {self.log}"
        )
        if mine.error is not None:
            assert isinstance(mine.error.filename, str), f"{desc}: error without filename"

    def stat_after(self, path: str, follow: bool = True):
        """For mutators returning a Stat: compare it with what Linux reports afterwards."""
        real = self.real(path)
        return disk_stat_view(os.stat(real) if follow else os.lstat(real), real)

    # ---- mutations

    @rule(path=paths, mode=hs.sampled_from(DIR_MODES))
    def mkdir(self, path, mode):
        self.both(f"mkdir({path!r}, {oct(mode)})", lambda ws: ws.mkdir(path, mode=mode) and None,
                  lambda: os.mkdir(self.real(path), mode))

    @rule(path=paths, mode=hs.sampled_from(DIR_MODES), exist_ok=hs.booleans())
    def makedirs(self, path, mode, exist_ok):
        self.both(
            f"makedirs({path!r}, {oct(mode)}, exist_ok={exist_ok})",
            lambda ws: ws.mkdir(path, parents=True, exist_ok=exist_ok, mode=mode) and None,
            lambda: os.makedirs(self.real(path), mode, exist_ok=exist_ok),
        )

    @rule(path=paths, data=datas)
    def write_file(self, path, data):
        self.both(
            f"write_file({path!r}, <{len(data)} bytes>)",
            lambda ws: vfs_stat_view(ws.write_file(path, data)),
            lambda: disk_write_file(self.real(path), data) or self.stat_after(path),
        )

    @rule(path=paths, offset=offsets, data=datas)
    def write_range(self, path, offset, data):
        self.both(
            f"write_range({path!r}, {offset}, <{len(data)} bytes>)",
            lambda ws: vfs_stat_view(ws.write_range(path, offset, data)),
            lambda: disk_write_range(self.real(path), offset, data) or self.stat_after(path),
        )

    @rule(path=paths, size=hs.one_of(hs.sampled_from(SIZES), hs.integers(0, 50)))
    def truncate(self, path, size):
        self.both(
            f"truncate({path!r}, {size})",
            lambda ws: vfs_stat_view(ws.truncate(path, size)),
            lambda: os.truncate(self.real(path), size) or self.stat_after(path),
        )

    @rule(src=paths, dst=paths)
    def rename(self, src, dst):
        self.both(f"rename({src!r}, {dst!r})", lambda ws: ws.rename(src, dst) and None,
                  lambda: os.rename(self.real(src), self.real(dst)))

    @rule(src=paths, dst=paths)
    def link(self, src, dst):
        # CPython calls link(2) on Linux: a symlink source is linked itself, never followed.
        self.both(f"link({src!r}, {dst!r})", lambda ws: ws.link(src, dst) and None,
                  lambda: os.link(self.real(src), self.real(dst)))

    @rule(path=paths, spec=targets)
    def symlink(self, path, spec):
        up, names = spec
        text = ("../" if up and path.count("/") >= 2 else "") + "/".join(names)
        self.both(f"symlink({text!r}, {path!r})", lambda ws: ws.symlink(text, path) and None,
                  lambda: os.symlink(text, self.real(path)))

    @rule(src=paths, dst=paths)
    def copy(self, src, dst):
        real_src, real_dst = self.real(src), self.real(dst)
        if os.path.exists(real_src) and os.path.exists(real_dst) and os.path.samefile(real_src, real_dst):
            return  # cp refuses "same file"; the store's answer there is not pinned
        self.both(f"copy({src!r}, {dst!r})", lambda ws: ws.copy(src, dst) and None,
                  lambda: disk_copy(real_src, real_dst))

    @rule(path=paths)
    def unlink(self, path):
        self.both(f"unlink({path!r})", lambda ws: ws.unlink(path) and None,
                  lambda: os.unlink(self.real(path)))

    @rule(path=paths)
    def rmdir(self, path):
        self.both(f"rmdir({path!r})", lambda ws: ws.rmdir(path) and None,
                  lambda: os.rmdir(self.real(path)))

    @rule(path=paths, recursive=hs.booleans(), force=hs.booleans())
    def rm(self, path, recursive, force):
        self.both(
            f"rm({path!r}, recursive={recursive}, force={force})",
            lambda ws: ws.rm(path, recursive=recursive, force=force) and None,
            lambda: disk_rm(self.real(path), recursive, force),
        )

    @rule(path=paths, mode=hs.sampled_from(FILE_MODES + DIR_MODES))
    def chmod(self, path, mode):
        self.both(f"chmod({path!r}, {oct(mode)})", lambda ws: ws.chmod(path, mode) and None,
                  lambda: os.chmod(self.real(path), mode))

    @rule(path=paths, mtime=hs.sampled_from((1_000_000.5, 1_700_000_000.25)))
    def utime(self, path, mtime):
        self.both(
            f"utime({path!r}, {mtime})",
            lambda ws: ws.utime(path, mtime) and None,
            lambda: os.utime(self.real(path), (mtime, mtime)),
        )
        if os.path.isfile(self.real(path)):
            assert self.ws.stat(path).mtime == pytest.approx(os.stat(self.real(path)).st_mtime, abs=1e-3)

    @rule(path=paths, mode=hs.sampled_from(("r+b", "ab", "wb", "xb")), offset=offsets, data=datas,
          cut=hs.none() | hs.sampled_from((0, 3, 70_000)))
    def open_write(self, path, mode, offset, data, cut):
        """A file object session: seek, write, maybe truncate, close (one commit in the store)."""

        def session(f) -> int:
            if mode != "ab":
                f.seek(offset)
            f.write(data)
            if cut is not None:
                f.truncate(cut)
            return f.tell()

        def on_vfs(ws):
            with ws.open(path, mode) as f:
                return session(f)

        def on_disk():
            with open(self.real(path), mode) as f:
                return session(f)

        self.both(f"open({path!r}, {mode!r}) seek {offset} write <{len(data)} bytes> truncate {cut}",
                  on_vfs, on_disk)

    # ---- checks

    @rule(path=paths)
    def read_file(self, path):
        self.both(f"read_file({path!r})", lambda ws: ws.read_file(path),
                  lambda: disk_read_file(self.real(path)))

    @rule(path=paths, offset=offsets, size=hs.sampled_from((0, 1, 10, 70_000)))
    def read_range(self, path, offset, size):
        self.both(f"read_range({path!r}, {offset}, {size})", lambda ws: ws.read_range(path, offset, size),
                  lambda: disk_read_range(self.real(path), offset, size))

    @rule(path=paths)
    def stat(self, path):
        self.both(f"stat({path!r})", lambda ws: vfs_stat_view(ws.stat(path)),
                  lambda: disk_stat_view(os.stat(self.real(path)), self.real(path)))

    @rule(path=paths)
    def lstat(self, path):
        self.both(f"lstat({path!r})", lambda ws: vfs_stat_view(ws.lstat(path)),
                  lambda: disk_stat_view(os.lstat(self.real(path)), self.real(path)))

    @rule(path=paths)
    def lstat_if_exists(self, path):
        """None exactly where Linux's lstat says ENOENT because the name itself is missing."""
        def on_disk():
            real = self.real(path)
            if not os.path.lexists(real) and os.path.isdir(os.path.dirname(real)):
                return None
            return disk_stat_view(os.lstat(real), real)

        def on_vfs(ws):
            found = ws.lstat_if_exists(path)
            return None if found is None else vfs_stat_view(found)

        self.both(f"lstat_if_exists({path!r})", on_vfs, on_disk)

    @rule(path=paths)
    def readlink(self, path):
        self.both(f"readlink({path!r})", lambda ws: ws.readlink(path),
                  lambda: os.readlink(self.real(path)))

    @rule(path=hs.one_of(hs.just("/"), paths))
    def readdir(self, path):
        self.both(f"readdir({path!r})", lambda ws: vfs_readdir(ws, path),
                  lambda: disk_readdir(self.real(path).rstrip("/")))

    @rule(path=paths)
    def exists(self, path):
        self.both(f"exists({path!r})", lambda ws: ws.exists(path),
                  lambda: os.path.exists(self.real(path)))

    @invariant()
    def trees_identical(self):
        mine, theirs = vfs_snapshot(self.ws, dir_nlink=True), disk_snapshot(self.root, dir_nlink=True)
        if mine != theirs:
            diff = {p: (mine.get(p), theirs.get(p)) for p in mine.keys() | theirs.keys()
                    if mine.get(p) != theirs.get(p)}
            raise AssertionError(f"trees differ (store, Linux): {diff}; steps: {self.log}")
        assert vfs_link_groups(self.ws, mine) == disk_link_groups(self.root, theirs), self.log
        for path, node in mine.items():
            if node.kind == "file":
                # Both sides stamp "now" on their own clock; only a gross error can fail this.
                assert self.ws.lstat(path).mtime == pytest.approx(
                    os.lstat(self.real(path)).st_mtime, abs=30), (path, self.log)


@pytest.fixture(autouse=True)
def umask_022():
    """See the module docstring: fixed umask, modes it cannot alter."""
    old = os.umask(0o022)
    yield
    os.umask(old)


TestDifferential = DifferentialMachine.TestCase


# ---------------------------------------------------------------- path edge cases
# Where Linux has an answer the disk is asked too; where the store deliberately
# differs (NUL, relative paths, `..` clamped at `/`), the SPEC is the truth.


@pytest.fixture()
def pair(tmp_path):
    """A store and an empty real directory, for single-call comparisons."""
    root = tmp_path / "root"
    root.mkdir()
    with vfs.Workspace(str(tmp_path / "store.db")) as ws:
        yield ws, str(root)


def _errno_of(fn) -> int | None:
    try:
        fn()
    except OSError as e:
        return e.errno
    return None


ODD_NAMES = [
    "naïve file (1).txt", "emoji 🎉", "tab\there", "back\\slash", "new\nline", "-dash",
    "café", "cafe\u0301", "#hash?*[x]", "ünïcödé" * 3, " leading and trailing ", "...", "..a",
]


def test_odd_names_round_trip_like_linux(pair):
    ws, root = pair
    for i, name in enumerate(ODD_NAMES):
        ws.write_file("/" + name, f"{i}")
        disk_write_file(os.path.join(root, name), f"{i}".encode())
    assert vfs_snapshot(ws) == disk_snapshot(root)
    assert vfs_readdir(ws, "/") == disk_readdir(root)
    # NFC and NFD spellings are two different names (no Unicode normalisation).
    assert ws.read_file("/café") == b"6" and ws.read_file("/cafe\u0301") == b"7"


def test_name_length_limit_is_255_bytes_like_linux(pair):
    ws, root = pair
    for name in ["n" * 255, "é" * 127 + "a", "n" * 256, "é" * 128]:
        want = _errno_of(lambda: disk_write_file(os.path.join(root, name), b"x"))
        got = _errno_of(lambda: ws.write_file("/" + name, b"x"))
        assert got == want, (len(name.encode()), got, want)
        assert _errno_of(lambda: ws.mkdir("/d" + name)) == _errno_of(lambda: os.mkdir(os.path.join(root, "d" + name)))
    assert _errno_of(lambda: ws.write_file("/" + "n" * 256, b"x")) == errno.ENAMETOOLONG


def test_long_paths(pair):
    ws, _ = pair
    parts = ["p" * 200 + str(i) for i in range(19)]  # ~3.8 KB: under the 4096-byte limit
    deep = "/" + "/".join(parts)
    ws.mkdir(deep, parents=True)
    ws.write_file(deep + "/f", b"deep")
    assert ws.read_file(deep + "/f") == b"deep"
    too_long = deep + "/" + "/".join(["q" * 200] * 2)  # ~4.2 KB
    assert _errno_of(lambda: ws.mkdir(too_long, parents=True)) == errno.ENAMETOOLONG
    assert _errno_of(lambda: ws.stat(too_long)) == errno.ENAMETOOLONG


def test_normalisation_and_dotdot_never_climbs_above_root(pair):
    ws, _ = pair
    ws.mkdir("/a")
    ws.write_file("/a//./c", b"1")
    assert ws.read_file("/a/c") == b"1"
    assert ws.read_file("/a/b/../c") == b"1"  # `..` is lexical: /a/b need not exist
    assert ws.read_file("/../../a/c") == b"1"
    assert ws.read_file("/a/../../../a/c") == b"1"
    assert ws.read_file("/a/c/") == b"1"  # trailing slash dropped (Linux: ENOTDIR)
    ws.write_file("/../top", b"2")
    assert ws.read_file("/top") == b"2"
    assert [e.name for e in ws.readdir("/..")] == ["a", "top"]
    assert ws.stat("/..").kind == "dir"


@pytest.mark.parametrize("bad", ["relative", "a/b", "", "/a\0b", "/\0", "./a"])
def test_nul_and_relative_paths_are_einval(pair, bad):
    ws, _ = pair
    # os raises ValueError for NUL; the store answers EINVAL as SPEC.md says.
    for call in (lambda: ws.stat(bad), lambda: ws.write_file(bad, b"x"), lambda: ws.mkdir(bad),
                 lambda: ws.read_file(bad)):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EINVAL, bad
    assert [e.name for e in ws.readdir("/")] == []


@pytest.mark.parametrize("hops", [39, 40, 41])
def test_symlink_chain_limit_matches_linux(pair, hops):
    """Linux follows at most 40 symlinks per lookup (MAXSYMLINKS); so must the store."""
    ws, root = pair
    ws.write_file("/target", b"end")
    disk_write_file(os.path.join(root, "target"), b"end")
    for i in range(hops):
        nxt = "target" if i == hops - 1 else f"l{i + 1}"
        ws.symlink(nxt, f"/l{i}")
        os.symlink(nxt, os.path.join(root, f"l{i}"))
    want = _errno_of(lambda: disk_read_file(os.path.join(root, "l0")))
    assert _errno_of(lambda: ws.read_file("/l0")) == want
    assert _errno_of(lambda: ws.stat("/l0")) == _errno_of(lambda: os.stat(os.path.join(root, "l0")))
    assert (want == errno.ELOOP) == (hops > 40)


def test_symlink_loops_are_eloop(pair):
    ws, _ = pair
    ws.symlink("/b", "/a")
    ws.symlink("/a", "/b")
    ws.symlink("self", "/self")
    for call in (lambda: ws.read_file("/a"), lambda: ws.stat("/a/x"), lambda: ws.write_file("/a/x", b""),
                 lambda: ws.read_file("/self"), lambda: ws.write_file("/self", b"x")):
        assert _errno_of(call) == errno.ELOOP
    assert ws.lstat("/a").kind == "symlink"
    assert ws.exists("/a") is False


def test_symlink_to_directory_in_the_middle_of_a_path(pair):
    ws, _ = pair
    ws.mkdir("/real/dir", parents=True)
    ws.write_file("/real/dir/f", b"via")
    ws.symlink("/real", "/abs")  # absolute target: resolved inside the store
    ws.symlink("real/dir", "/rel")
    ws.mkdir("/deep")
    ws.symlink("../real", "/deep/up")  # relative to the link's own directory
    assert ws.read_file("/abs/dir/f") == b"via"
    assert ws.read_file("/rel/f") == b"via"
    assert ws.read_file("/deep/up/dir/f") == b"via"
    ws.write_file("/abs/dir/g", b"new")
    assert ws.read_file("/real/dir/g") == b"new"
    ws.symlink("../../../../real", "/deep/clamped")  # `..` in a target also stops at `/`
    assert ws.read_file("/deep/clamped/dir/f") == b"via"
    assert ws.readlink("/abs") == "/real"
    assert ws.stat("/abs/dir").kind == "dir" and ws.lstat("/abs").kind == "symlink"
    assert ws.lstat("/abs").mode == st.S_IFLNK | 0o777


def test_root_is_protected(pair):
    ws, _ = pair
    ws.write_file("/keep", b"x")
    with pytest.raises(PermissionError) as info:
        ws.rm("/", recursive=True, force=True)
    assert info.value.errno == errno.EPERM
    for call in (lambda: ws.rmdir("/"), lambda: ws.unlink("/"), lambda: ws.rename("/", "/x")):
        with pytest.raises(OSError):
            call()
    assert _errno_of(lambda: ws.mkdir("/")) == errno.EEXIST
    assert _errno_of(lambda: ws.write_file("/", b"x")) == errno.EISDIR
    assert ws.read_file("/keep") == b"x" and ws.stat("/").kind == "dir"


def test_the_store_ignores_the_process_umask(pair):
    """Deliberate difference: modes are what the caller asked for, whatever the umask."""
    ws, _ = pair
    old = os.umask(0o077)
    try:
        ws.mkdir("/d", mode=0o775)
        ws.write_file("/f", b"")
        ws.mkdir("/p/q", parents=True)
    finally:
        os.umask(old)
    assert ws.stat("/d").mode == st.S_IFDIR | 0o775
    assert ws.stat("/f").mode == st.S_IFREG | 0o644
    assert ws.stat("/p").mode == st.S_IFDIR | 0o755
