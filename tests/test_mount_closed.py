"""A small file created in a local mount stays pending past its close, until the group
transaction commits (`OpenFileOps._keep_closed`): git's object dance (create a temporary
name, write, close, link it to the object's name, unlink the temporary name) then
reaches the store as one file under its final name (`link_pending`, `unlink_pending`)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import vfs
from mount_fixtures import mount_store, stat_fields
from mount_api import mount_api  # noqa: F401  (every test here on each API)


def _write(path: Path, data: bytes, mode: int = 0o444) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _store_with_dir(tmp_path: Path) -> tuple[Path, tuple]:
    store = tmp_path / "store.db"
    with vfs.Workspace(str(store)) as ws:
        ws.mkdir("/d")
        return store, ws.cursor()


# One group for the whole dance: with the default 10 ms idle commit, a pause of the test process
# (a loaded machine) between the close and the link commits the file under its first name, which is
# then rightly in the change log.
ONE_GROUP = ["--commit-idle", "60", "--commit-max-age", "60"]


def test_object_dance_stores_only_the_final_name(tmp_path: Path):
    store, cursor = _store_with_dir(tmp_path)
    with mount_store(tmp_path, store, ONE_GROUP) as m:
        d = Path(m.mountpoint) / "d"
        _write(d / "tmp_obj_1", b"blob one")
        closed = os.stat(d / "tmp_obj_1")
        assert closed.st_size == 8 and closed.st_nlink == 1
        time.sleep(0.3)  # a pause as a loaded machine makes one: no commit comes in it (ONE_GROUP)
        os.link(d / "tmp_obj_1", d / "obj1")
        both = os.stat(d / "obj1")
        assert both.st_ino == closed.st_ino and both.st_nlink == 2 and os.stat(d / "tmp_obj_1").st_nlink == 2
        os.unlink(d / "tmp_obj_1")
        assert not (d / "tmp_obj_1").exists()
        seen = stat_fields(os.stat(d / "obj1"))
        assert seen[2] == 1 and seen[0] == closed.st_ino
        assert (d / "obj1").read_bytes() == b"blob one"  # (an open stores it first)
        assert os.listdir(d) == ["obj1"]
        parent = stat_fields(os.stat(d))
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/d/obj1") == b"blob one" and ws.lstat("/d/obj1").ino == closed.st_ino
        assert not ws.exists("/d/tmp_obj_1")
        # No trace of a name no revision ever showed (the store used to log its tombstone).
        assert [c.path for c in ws.changes(after=cursor)] == ["/d/obj1"]
    with mount_store(tmp_path, store) as m:  # what the kernel was told is what the store kept
        d = Path(m.mountpoint) / "d"
        assert stat_fields(os.stat(d / "obj1")) == seen
        assert stat_fields(os.stat(d)) == parent


def test_names_kept_and_attributes_changed_after_close_are_stored(tmp_path: Path):
    store, _ = _store_with_dir(tmp_path)
    with mount_store(tmp_path, store) as m:
        d = Path(m.mountpoint) / "d"
        _write(d / "a", b"two names")
        os.link(d / "a", d / "b")  # both names stay
        os.chmod(d / "b", 0o600)  # on the pending file: every name shows it
        os.utime(d / "a", ns=(1_000_000_000, 2_000_000_000))
        _write(d / "c", b"moved")
        os.link(d / "c", d / "e")
        os.unlink(d / "e")  # the other name goes this time
        os.mkdir(Path(m.mountpoint) / "other")
        _write(d / "f", b"elsewhere")
        os.link(d / "f", Path(m.mountpoint) / "other/f")  # another directory: the store links
        os.unlink(d / "f")
        seen = {name: stat_fields(os.stat(d / name)) for name in ("a", "b", "c")}
        assert seen["a"] == seen["b"] and seen["a"][2] == 2 and seen["a"][1] & 0o777 == 0o600
        assert seen["a"][5] == 2_000_000_000 and seen["c"][2] == 1
        parent = stat_fields(os.stat(d))
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/d/b") == b"two names" and ws.lstat("/d/a").ino == ws.lstat("/d/b").ino
        assert ws.read_file("/d/c") == b"moved" and not ws.exists("/d/e")
        assert ws.read_file("/other/f") == b"elsewhere" and not ws.exists("/d/f")
    with mount_store(tmp_path, store) as m:
        d = Path(m.mountpoint) / "d"
        assert {name: stat_fields(os.stat(d / name)) for name in ("a", "b", "c")} == seen
        assert stat_fields(os.stat(d)) == parent


def test_git_repository_made_in_the_mount_is_sound(tmp_path: Path):
    store, _ = _store_with_dir(tmp_path)
    env = {**os.environ, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
    with mount_store(tmp_path, store) as m:
        repo = Path(m.mountpoint) / "repo"
        repo.mkdir()
        for i in range(30):
            (repo / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"], ["fsck", "--strict"]):
            subprocess.run(git + args, check=True, env=env, timeout=120, capture_output=True)
        head = subprocess.run(git + ["rev-parse", "HEAD"], check=True, env=env, timeout=60,
                              capture_output=True, text=True).stdout
    with mount_store(tmp_path, store) as m:  # after a remount: every object as git wrote it
        repo = Path(m.mountpoint) / "repo"
        git = ["git", "-C", str(repo)]
        subprocess.run(git + ["fsck", "--strict"], check=True, env=env, timeout=120, capture_output=True)
        status = subprocess.run(git + ["status", "--porcelain"], check=True, env=env, timeout=60,
                                capture_output=True, text=True).stdout
        assert status == ""
        assert subprocess.run(git + ["rev-parse", "HEAD"], check=True, env=env, timeout=60,
                              capture_output=True, text=True).stdout == head
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert not [p for p in ws.find("/repo/.git/objects") if "tmp_obj" in p]


def _tree(root: Path) -> dict:
    """Every entry under `root`: (mode, uid, gid, mtime_ns, size or None for a directory)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                                            None if path.is_dir() else st.st_size)
    return out


def _archive(tmp_path: Path) -> Path:
    """A tarball whose directories have their own owners, modes and old times (`tar -x` sets them at its end)."""
    import io
    import tarfile

    archive = tmp_path / "t.tar"
    with tarfile.open(archive, "w") as tar:  # (each directory before its contents, as `tar -c` writes them)
        for i, (name, file) in enumerate([("a", "a/f"), ("a/b", "a/b/g"), ("a/b/c", "a/b/c/h"), ("e", "e/k")]):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.uid, info.gid = tarfile.DIRTYPE, 0o750 - i, 1_000_000 + i, 1234 + i, 99
            tar.addfile(info)
            data = f"content {i}\n".encode() * (i + 1)
            info = tarfile.TarInfo(file)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), 0o640, 2_000_000 + i, 4321, 77
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_tar_directory_attributes_held_and_stored_as_told(tmp_path: Path):
    store, _ = _store_with_dir(tmp_path)
    archive = _archive(tmp_path)
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(disk)], check=True, timeout=60)
    with mount_store(tmp_path, store) as m:
        into = Path(m.mountpoint) / "d"
        subprocess.run(["tar", "-xf", str(archive), "-C", str(into)], check=True, timeout=60)
        told = _tree(into)
        ctimes = {name: os.lstat(into / name).st_ctime_ns for name in told}
        assert told == _tree(disk)  # modes, owners, times as the disk has them
        assert (into / "a/b/c/h").read_bytes() == (disk / "a/b/c/h").read_bytes()
    with mount_store(tmp_path, store) as m:  # what the kernel was told is what the store kept
        into = Path(m.mountpoint) / "d"
        assert _tree(into) == told
        assert {name: os.lstat(into / name).st_ctime_ns for name in told} == ctimes


def test_held_directory_changes_meet_later_requests_in_order(tmp_path: Path):
    store, _ = _store_with_dir(tmp_path)
    with mount_store(tmp_path, store) as m:
        d = Path(m.mountpoint) / "d"
        os.chmod(d, 0o700)
        os.utime(d, ns=(5_000_000_000, 6_000_000_000))
        (d / "new").write_bytes(b"x")  # a create after the held times: the directory's mtime moves
        after_create = os.stat(d)
        assert after_create.st_mtime_ns > 6_000_000_000 and after_create.st_mode & 0o777 == 0o700
        os.utime(d, ns=(7_000_000_000, 8_000_000_000))
        os.chown(d, 1000, 1000)
        os.chmod(d, 0o755)
        held = stat_fields(os.stat(d))
        assert held[5] == 8_000_000_000 and held[1] & 0o777 == 0o755 and held[3] == 1000
        os.rename(d / "new", d / "renamed")  # a rename in it stores the held changes first
        moved = stat_fields(os.stat(d))
        assert moved[5] > 8_000_000_000 and moved[1:5] == held[1:5]
    with vfs.Workspace(str(store), readonly=True) as ws:
        st = ws.lstat("/d")
        assert (st.mode & 0o777, st.uid, st.gid, st.mtime_ns) == (0o755, 1000, 1000, moved[5])
        assert st.ctime_ns == moved[6]


def test_directories_held_together_keep_their_order_with_pending_files(tmp_path: Path):
    """Several directories' attribute changes held at once, files still pending in each (a
    mkdir no longer stores them, nor does the hold): a directory's held times outlast the
    files made in it before them, and a mkdir or create in a held directory moves its times
    after them; what the kernel was told is what the store keeps."""
    store, _ = _store_with_dir(tmp_path)
    names = ("a", "b", "c")
    with mount_store(tmp_path, store) as m:
        d = Path(m.mountpoint) / "d"
        for name in names:
            (d / name).mkdir()
            _write(d / name / "f", b"made before the hold")
        for i, name in enumerate(names):
            os.chown(d / name, 1000 + i, 1000)
            os.utime(d / name, ns=(1_000_000_000 + i, 2_000_000_000 + i))
        told_a = stat_fields(os.stat(d / "a"))
        assert told_a[5] == 2_000_000_000 and told_a[3] == 1000
        (d / "b" / "sub").mkdir()  # a new name in a held directory: its times move after the held ones
        _write(d / "c" / "g", b"made after the hold")
        told = {name: stat_fields(os.stat(d / name)) for name in names}
        assert told["a"] == told_a
        assert told["b"][5] > 2_000_000_001 and told["b"][3] == 1001 and told["b"][2] == 3
        assert told["c"][5] > 2_000_000_002 and told["c"][3] == 1002
        assert sorted(os.listdir(d / "c")) == ["f", "g"]
    with mount_store(tmp_path, store) as m:
        d = Path(m.mountpoint) / "d"
        assert {name: stat_fields(os.stat(d / name)) for name in names} == told
        assert (d / "a" / "f").read_bytes() == b"made before the hold"


def test_a_stored_files_attribute_change_leaves_pending_files_pending(tmp_path: Path):
    """git freshens an object it already has with utime(2) between its object dances: a
    chmod, chown or utimens of a stored file moves no directory and names no pending file,
    so the closed files kept pending stay so (they used to be stored first, each such call
    a small batch). The dance across it still ends as one file under its final name, and
    what the kernel was told of both files and the directory is what the store keeps."""
    store = tmp_path / "store.db"
    with vfs.Workspace(str(store)) as ws:
        ws.mkdir("/d")
        ws.write_file("/d/old", b"an object git has")
        cursor = ws.cursor()
    with mount_store(tmp_path, store, ONE_GROUP) as m:
        d = Path(m.mountpoint) / "d"
        _write(d / "tmp_obj_1", b"blob one")
        os.link(d / "tmp_obj_1", d / "obj1")
        os.utime(d / "old", ns=(3_000_000_000, 4_000_000_000))  # (git's freshen)
        os.chmod(d / "old", 0o444)
        os.chown(d / "old", 1000, 1000)
        os.unlink(d / "tmp_obj_1")
        told = {name: stat_fields(os.stat(d / name)) for name in ("obj1", "old")}
        parent = stat_fields(os.stat(d))
        assert told["old"][5] == 4_000_000_000 and told["old"][1] & 0o777 == 0o444 and told["old"][3] == 1000
    with vfs.Workspace(str(store), readonly=True) as ws:
        assert ws.read_file("/d/obj1") == b"blob one" and not ws.exists("/d/tmp_obj_1")
        # (stored before the utime, the pending file's temporary name left its tombstone in the log)
        assert sorted({c.path for c in ws.changes(after=cursor)}) == ["/d/obj1", "/d/old"]
    with mount_store(tmp_path, store) as m:
        d = Path(m.mountpoint) / "d"
        assert {name: stat_fields(os.stat(d / name)) for name in ("obj1", "old")} == told
        assert stat_fields(os.stat(d)) == parent
