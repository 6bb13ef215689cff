"""Tree queries (walk, find, ls, grep, du) and the smaller API promises.

`walk` is compared with `os.walk` on the same tree built on disk; the other
queries have no `os` twin and are checked against SPEC.md directly.
"""

from __future__ import annotations

import errno
import os
import random

import pytest

import vfs

TREE_FILES = {
    "/src/main.py": b"import os\nprint('hello')\n",
    "/src/util/helpers.py": b"def helper():\n    return 42  # TODO\n",
    "/src/util/data.bin": bytes(range(256)) * 4,
    "/docs/readme.md": b"# Title\nsome TODO here\nmore\nTODO again\n",
    "/docs/a b/notes.txt": b"Case Matters\ncase matters\n",
    "/empty.txt": b"",
}


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        for path, data in TREE_FILES.items():
            ws.write_file(path, data, parents=True)
            os.makedirs(os.path.dirname(str(root) + path), exist_ok=True)
            with open(str(root) + path, "wb") as f:
                f.write(data)
        for target, link in (("src", "/srclink"), ("missing", "/dangling")):
            ws.symlink(target, link)
            os.symlink(target, str(root) + link)
        ws.mkdir("/src/emptydir")
        os.mkdir(str(root) + "/src/emptydir")
        yield ws, str(root)


def test_walk_matches_os_walk(tree):
    ws, root = tree
    mine = [(top, sorted(dirs), sorted(files)) for top, dirs, files in ws.walk("/")]
    theirs = []
    for top, dirs, files in os.walk(root):  # symlinked dirs are listed in dirs, never entered
        rel = os.path.relpath(top, root)
        theirs.append(("/" if rel == "." else "/" + rel, sorted(dirs), sorted(files)))
    assert sorted(mine) == sorted(theirs)
    assert mine[0][0] == "/"  # top-down


def test_find_is_depth_first_in_name_order_and_does_not_enter_symlinks(tree):
    ws, _ = tree
    assert ws.find("/src") == ["/src/emptydir", "/src/main.py", "/src/util", "/src/util/data.bin",
                               "/src/util/helpers.py"]
    everything = ws.find("/")
    assert "/srclink" in everything and not any(p.startswith("/srclink/") for p in everything)
    assert ws.find("/", kind="file") == ["/docs/a b/notes.txt", "/docs/readme.md", "/empty.txt",
                                         "/src/main.py", "/src/util/data.bin", "/src/util/helpers.py"]
    assert ws.find("/", limit=2) == everything[:2]


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("*.py", ["/src/main.py", "/src/util/helpers.py"]),  # no `/`: the name, at any depth (find -name)
        ("main.*", ["/src/main.py"]),
        ("src/*.py", ["/src/main.py"]),  # with `/`: the relative path, `*` inside one name
        ("**/*.py", ["/src/main.py", "/src/util/helpers.py"]),
        ("src/**", None),  # everything under src
        ("docs/?????????", ["/docs/readme.md"]),
        ("docs/a b/*", ["/docs/a b/notes.txt"]),
    ],
)
def test_find_patterns(tree, pattern, expected):
    ws, _ = tree
    got = ws.find("/", pattern)
    if expected is None:
        assert set(got) >= {"/src/main.py", "/src/util/helpers.py", "/src/util/data.bin"}
        assert all(p.startswith("/src/") for p in got)
    else:
        assert got == expected


def test_find_errors(tree):
    ws, _ = tree
    for path, code in (("/missing", errno.ENOENT), ("/empty.txt", errno.ENOTDIR)):
        with pytest.raises(OSError) as info:
            ws.find(path)
        assert info.value.errno == code


def test_ls_lists_files_only_segment_aware(tree):
    ws, _ = tree
    ws.write_file("/docs-old/x", b"1", parents=True)
    assert ws.ls("/docs") == ["/docs/a b/notes.txt", "/docs/readme.md"]
    assert ws.ls("/docs/readme.md") == ["/docs/readme.md"]
    assert ws.ls("/nothing") == []
    assert ws.ls("/") == sorted([*TREE_FILES, "/docs-old/x"], key=lambda p: p.encode())


def test_du_counts_logical_bytes_once_per_inode(tree):
    ws, _ = tree
    total = sum(len(d) for d in TREE_FILES.values())
    assert ws.du("/") == total
    assert ws.du("/src") == sum(len(d) for p, d in TREE_FILES.items() if p.startswith("/src/"))
    ws.link("/src/main.py", "/src/again.py")
    assert ws.du("/src") == sum(len(d) for p, d in TREE_FILES.items() if p.startswith("/src/"))


def test_grep_literal_regex_case_include_context_limit(tree):
    ws, _ = tree
    todo = ws.grep("TODO")
    assert [(m.path, m.line_number) for m in todo] == [
        ("/docs/readme.md", 2), ("/docs/readme.md", 4), ("/src/util/helpers.py", 2)]
    assert todo[0].line == "some TODO here"
    assert [m.path for m in ws.grep("case matters", ignore_case=True)] == ["/docs/a b/notes.txt"] * 2
    assert [m.line_number for m in ws.grep(r"^def \w+\(", regex=True)] == [1]
    assert [m.path for m in ws.grep("TODO", include="**/*.py")] == ["/src/util/helpers.py"]
    (m,) = ws.grep("some", path="/docs/readme.md", context=1)
    assert m.context == ("# Title", "more")  # the lines around the match
    assert len(ws.grep("TODO", limit=2)) == 2
    assert ws.grep("\x00") == []  # the binary file is skipped
    assert ws.grep(".", path="/docs", regex=True, limit=1)[0].path.startswith("/docs/")


def test_grep_streams_and_finds_lines_across_chunk_boundaries(tmp_path):
    rnd = random.Random(4)
    lines = [("line %06d " % i + "".join(rnd.choice("abcdefgh ") for _ in range(rnd.randrange(20, 120))))
             for i in range(40_000)]
    lines[31_337] = "needle in the haystack"
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        ws.write_file("/big.txt", "\n".join(lines).encode())
        assert len(ws.entry("/big.txt").chunks) > 10
        (m,) = ws.grep("needle")
        assert (m.line_number, m.line) == (31_338, "needle in the haystack")
        boundary_hits = 0
        offset = 0
        for _, size in ws.entry("/big.txt").chunks[:-1]:  # every line that straddles a chunk cut
            offset += size
            text = "\n".join(lines)
            start = text.rfind("\n", 0, offset) + 1
            line = text[start:text.find("\n", offset)]
            if line and line != "needle in the haystack":
                found = ws.grep(line)
                assert any(g.line == line for g in found), line
                boundary_hits += 1
        assert boundary_hits > 5


def test_readdir_pagination_is_stable(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        names = ["b", "a", "é", "Z", "a b", "\uE000", "\U00010000", "aa"]
        for n in names:
            ws.write_file("/" + n, b"")
        full = ws.readdir("/")
        assert [e.name for e in full] == sorted(names, key=lambda n: n.encode())
        pages = [ws.readdir("/", limit=3, offset=o) for o in range(0, len(names), 3)]
        assert [e for p in pages for e in p] == full
        assert ws.readdir("/", limit=0) == [] and ws.readdir("/", offset=100) == []


def test_if_match_is_checked_inside_the_write(tmp_path):
    with vfs.Workspace(str(tmp_path / "s.db")) as ws:
        first = ws.write_file("/f", b"one").hash
        second = ws.write_file("/f", b"two", if_match=first).hash
        rev = ws.rev
        with pytest.raises(vfs.PreconditionFailed) as info:
            ws.write_file("/f", b"three", if_match=first)
        assert info.value.current == second and ws.rev == rev and ws.read_file("/f") == b"two"
        with pytest.raises(vfs.PreconditionFailed):
            ws.write_file("/f", b"three", if_match="")  # "" means: must not exist
        ws.write_file("/new", b"x", if_match="")
        assert ws.read_file("/new") == b"x"


def test_readonly_workspace_refuses_writes(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as ws:
        ws.write_file("/f", b"x")
    with vfs.Workspace(path, readonly=True) as ro:
        assert ro.read_file("/f") == b"x"
        for call in (lambda: ro.write_file("/g", b""), lambda: ro.mkdir("/d"), lambda: ro.unlink("/f")):
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno == errno.EROFS


def test_a_second_workspace_object_sees_committed_state(tmp_path):
    path = str(tmp_path / "s.db")
    with vfs.Workspace(path) as writer, vfs.Workspace(path) as reader:
        writer.write_file("/f", b"1")
        assert reader.read_file("/f") == b"1"
        writer.rename("/f", "/g")
        assert not reader.exists("/f") and reader.read_file("/g") == b"1"
        assert reader.rev == writer.rev
