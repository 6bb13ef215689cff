"""The file-tool commands of `wsfs` against a real server: cp, chmod, ln, find, grep, du, tree, ls -l,
recursive put/get, "into an existing directory", --json, history and restore refusals, conflicts.

Each command runs through `wsfs.cli.main` (the real argument parser and the real client over HTTP); the
results are checked against the server's store through the Python client, the ground truth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import pytest

from cli_fixtures import ok, run
from client_fixtures import tree_of
from client_py import Client
from client_py.conflicts import conflict_name
from wsfs.cli import build_parser


@pytest.fixture
def server(cli_server):
    return cli_server




def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def remote(server, call):
    """Run `call(ws)` on the demo workspace through the Python client: what the store really holds."""
    async def go():
        async with Client(server.url, token=server.admin) as c:
            return await call(c.workspace("demo"))
    return asyncio.run(go())


def put_text(server, path: str, data: bytes) -> None:
    remote(server, lambda ws: ws.write_file(path, data, parents=True))


def test_every_option_has_help_text():
    """Every option and every positional of every command (mount and umount included) says what it is."""
    missing = []

    def visit(parser: argparse.ArgumentParser, trail: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    visit(sub, f"{trail} {name}")
            elif action.help is None:
                missing.append(f"{trail} {'/'.join(action.option_strings) or action.dest}")

    visit(build_parser(), "wsfs")
    assert missing == []


def test_a_client_command_builds_only_the_clients_parser() -> None:
    """`wsfs sync ...` and friends import neither the server, the mount nor the cluster (start-up time);
    every other command, and `wsfs` alone, still gets the whole parser."""
    import subprocess
    import sys

    probe = ("import sys; from wsfs.cli import build_parser; p = build_parser({arg}); "
             "print(sorted(m for m in ('server.cli', 'client_py.mount.cli', 'server.cluster.convert') if m in sys.modules), "
             "'serve' in p._subparsers._group_actions[0].choices, 'sync' in p._subparsers._group_actions[0].choices)")
    for arg, expect in (("'sync'", "[] False True"), ("'ls'", "[] False True"),
                        ("'serve'", "['client_py.mount.cli', 'server.cli', 'server.cluster.convert'] True True"),
                        ("None", "['client_py.mount.cli', 'server.cli', 'server.cluster.convert'] True True")):
        done = subprocess.run([sys.executable, "-c", probe.format(arg=arg)], capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == expect, (arg, done.stdout, done.stderr)


def test_a_command_imports_only_the_transport_it_speaks(server, tmp_path):
    """Start-up time: `ls` (HTTP) loads neither websockets, the replica nor httpx's own CLI (click, rich,
    pygments); `sync --once` (WebSockets) loads no httpx at all. Run as the shell would: a fresh process."""
    import subprocess
    import sys

    heavy = ("websockets", "httpx", "click", "pygments", "rich", "client_py.replica")
    probe = ("import sys; from wsfs.cli import main; code = main({argv!r}); "
             f"print(code, sorted(m for m in {heavy!r} if m in sys.modules))")
    put_text(server, "/a.txt", b"a")
    for argv, expect in ((["ls", "/"], "0 ['httpx']"),
                         (["sync", server.url, "demo", str(tmp_path / "replica"), "--once", "-q"], "0 ['client_py.replica', 'websockets']")):
        done = subprocess.run([sys.executable, "-c", probe.format(argv=argv)], capture_output=True, text=True,
                              timeout=60)
        assert done.stdout.strip().splitlines()[-1] == expect, (argv, done.stdout, done.stderr)
    assert (tmp_path / "replica" / "a.txt").read_bytes() == b"a"


def test_ls_long_shows_mode_bits_and_symlink_targets(server, capsys):
    put_text(server, "/d/run.sh", b"#!/bin/sh\n")
    ok(capsys, "chmod", "755", "/d/run.sh")
    ok(capsys, "ln", "-s", "run.sh", "/d/link")
    long = ok(capsys, "ls", "-l", "/d").splitlines()
    assert long[0].startswith("lrwxrwxrwx") and long[0].endswith("link -> run.sh")
    assert long[1].startswith("-rwxr-xr-x") and long[1].endswith(" run.sh")
    entries = {e["name"]: e for e in lines(ok(capsys, "ls", "--json", "/d"))}
    assert entries["run.sh"]["mode"] == 0o755 and entries["link"]["target"] == "run.sh"


def test_chmod_octal_symbolic_and_recursive(server, capsys):
    put_text(server, "/p/a.txt", b"a")
    put_text(server, "/p/q/b.txt", b"b")
    ok(capsys, "chmod", "600", "/p/a.txt")
    assert remote(server, lambda ws: ws.stat("/p/a.txt")).mode & 0o7777 == 0o600
    ok(capsys, "chmod", "u+x,g+r", "/p/a.txt")
    assert remote(server, lambda ws: ws.stat("/p/a.txt")).mode & 0o7777 == 0o740
    ok(capsys, "chmod", "-R", "go-rwx", "/p")
    for path in ("/p", "/p/q", "/p/a.txt", "/p/q/b.txt"):
        assert remote(server, lambda ws: ws.stat(path)).mode & 0o077 == 0, path
    ok(capsys, "chmod", "-R", "a+rX", "/p")  # X: directories (and executables) only
    assert remote(server, lambda ws: ws.stat("/p/q")).mode & 0o7777 == 0o755
    assert remote(server, lambda ws: ws.stat("/p/q/b.txt")).mode & 0o7777 == 0o644


def test_cp_is_server_side_and_shares_chunks(server, capsys):
    data = os.urandom(3 << 20)
    put_text(server, "/big.bin", data)
    remote(server, lambda ws: ws.gc())
    chunks_before = remote(server, lambda ws: ws.gc()).chunks_kept
    ok(capsys, "mkdir", "/dir")
    ok(capsys, "cp", "/big.bin", "/dir")  # into the existing directory
    assert remote(server, lambda ws: ws.read_file("/dir/big.bin")) == data
    assert remote(server, lambda ws: ws.gc()).chunks_kept == chunks_before  # not one new chunk
    put_text(server, "/t/x/y.txt", b"y")
    remote(server, lambda ws: ws.symlink("x/y.txt", "/t/l"))
    code, _, err = run(capsys, "cp", "/t", "/t2")
    assert code == 5 and "-r" in err
    ok(capsys, "cp", "-r", "/t", "/t2")
    assert remote(server, lambda ws: ws.find("/t2")) == ["/t2/l", "/t2/x", "/t2/x/y.txt"]
    assert remote(server, lambda ws: ws.readlink("/t2/l")) == "x/y.txt"


def test_mv_and_ln_into_an_existing_directory(server, capsys):
    put_text(server, "/README.md", b"readme")
    ok(capsys, "mkdir", "/src")
    ok(capsys, "mv", "/README.md", "/src")  # EISDIR before: now into it, as mv(1)
    assert remote(server, lambda ws: ws.read_file("/src/README.md")) == b"readme"
    ok(capsys, "ln", "/src/README.md", "/hard.md")
    a, b = remote(server, lambda ws: asyncio.gather(ws.stat("/src/README.md"), ws.stat("/hard.md")))
    assert a.ino == b.ino and a.nlink == 2
    ok(capsys, "mkdir", "/empty")
    ok(capsys, "mv", "-T", "/empty", "/renamed")
    assert remote(server, lambda ws: ws.exists("/renamed")) and not remote(server, lambda ws: ws.exists("/empty"))


def test_find_glob_rule_agrees_in_python_cli_and_http(server, capsys):
    for path in ("/a.md", "/x/b.md", "/x/y/c.md", "/x/y/d.txt"):
        put_text(server, path, b".")
    by_name = ["/a.md", "/x/b.md", "/x/y/c.md"]
    assert remote(server, lambda ws: ws.find("/", "*.md")) == by_name  # Python (over HTTP, the store's rule)
    assert ok(capsys, "find", "--name", "*.md").split() == by_name
    assert [e["path"] for e in lines(ok(capsys, "find", "/", "--name", "*.md", "--json"))] == by_name
    assert ok(capsys, "find", "/x", "--name", "y/*.md").split() == ["/x/y/c.md"]  # with '/': relative path
    assert ok(capsys, "find", "--name", "x/*").split() == ["/x/b.md", "/x/y"]
    assert ok(capsys, "find", "-t", "d").split() == ["/x", "/x/y"]


def test_grep_prints_matches_and_exits_1_without_any(server, capsys):
    put_text(server, "/n/a.txt", b"one\nTODO two\nthree\n")
    put_text(server, "/n/b.md", b"todo: b\n")
    assert ok(capsys, "grep", "TODO").splitlines() == ["/n/a.txt:2:TODO two"]
    assert ok(capsys, "grep", "-i", "-l", "todo", "/n").splitlines() == ["/n/a.txt", "/n/b.md"]
    assert ok(capsys, "grep", "-C", "1", "TODO").splitlines() == ["/n/a.txt-1-one", "/n/a.txt:2:TODO two",
                                                                "/n/a.txt-3-three"]
    assert lines(ok(capsys, "grep", "-E", "t[wh]", "--json"))[0]["line_number"] == 2
    code, out, err = run(capsys, "grep", "nowhere")
    assert code == 1 and out == "" and err == ""


def test_du_and_tree(server, capsys):
    put_text(server, "/d/a", b"x" * 1000)
    put_text(server, "/d/e/b", b"y" * 24)
    remote(server, lambda ws: ws.link("/d/a", "/d/e/same"))  # a hard link counts once
    rows = lines(ok(capsys, "du", "-d", "1", "-a", "--json", "/d"))
    assert rows == [{"path": "/d/a", "bytes": 1000}, {"path": "/d/e", "bytes": 1024}, {"path": "/d", "bytes": 1024}]
    assert ok(capsys, "du", "-d", "1", "/d") == "1024\t/d/e\n1024\t/d\n"  # directories only, as du(1)
    assert ok(capsys, "du", "-H", "/d") == "1.0 KiB\t/d\n"
    remote(server, lambda ws: ws.symlink("../a", "/d/e/to-a"))
    assert ok(capsys, "tree", "/d").splitlines() == ["/d", "├── a", "└── e/", "    ├── b", "    ├── same",
                                                     "    └── to-a -> ../a", "", "1 directory, 4 files"]
    assert [e["kind"] for e in lines(ok(capsys, "tree", "--json", "/d"))] == ["file", "dir", "file", "file", "symlink"]
    assert ok(capsys, "tree", "-L", "1", "/d").splitlines()[:3] == ["/d", "├── a", "└── e/"]


def test_recursive_put_and_get_round_trip(server, capsys, tmp_path):
    src = tmp_path / "proj"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "deep" / "blob.bin").write_bytes(os.urandom(200_000))
    (src / "run.sh").write_bytes(b"#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "link").symlink_to("a.txt")
    code, _, err = run(capsys, "put", str(src), "/", "-q")
    assert code == 5 and "-r" in err
    ok(capsys, "mkdir", "/up")
    out = ok(capsys, "put", "-r", str(src), "/up", "-q")  # into the existing directory
    assert out.startswith("/up/proj: 3 files")
    assert remote(server, lambda ws: ws.stat("/up/proj/run.sh")).mode & 0o7777 == 0o755
    assert remote(server, lambda ws: ws.readlink("/up/proj/link")) == "a.txt"
    back = tmp_path / "back"
    back.mkdir()
    ok(capsys, "get", "-r", "/up/proj", str(back), "-q")  # into the existing local directory
    assert tree_of(back / "proj") == tree_of(src)
    code, _, err = run(capsys, "get", "/up/proj", str(tmp_path / "x"), "-q")
    assert code == 5 and "-r" in err and not (tmp_path / "x").exists()


def test_history_of_nothing_or_a_directory_fails_clearly(server, capsys):
    code, out, err = run(capsys, "history", "/nope")
    assert code == 3 and out == "" and "/nope" in err
    ok(capsys, "mkdir", "/dir")
    code, out, err = run(capsys, "history", "/dir")
    assert code == 5 and "directory" in err
    put_text(server, "/gone.txt", b"was here")
    remote(server, lambda ws: ws.unlink("/gone.txt"))
    kinds = [v["kind"] for v in lines(ok(capsys, "history", "/gone.txt", "--json"))]
    assert kinds == ["delete", "file"]  # a deleted file keeps its history


def test_restore_refuses_a_revision_without_a_version_and_brings_back_the_mode(server, capsys):
    put_text(server, "/r.sh", b"v1")
    v1 = remote(server, lambda ws: ws.stat("/r.sh")).rev
    ok(capsys, "chmod", "755", "/r.sh")
    put_text(server, "/r.sh", b"v2")
    v2 = remote(server, lambda ws: ws.stat("/r.sh")).rev
    put_text(server, "/other", b"another path's revision")
    other = remote(server, lambda ws: ws.stat("/other")).rev
    for rev in (99999, other, v1 + 1):  # future; a revision of another path; the chmod's revision
        code, _, err = run(capsys, "restore", "/r.sh", str(rev))
        assert code == 3 and f"revision {rev}" in err
    assert remote(server, lambda ws: ws.read_file("/r.sh")) == b"v2"
    assert ok(capsys, "restore", "/r.sh", str(v1)).startswith(f"/r.sh restored from rev {v1}: 2 bytes, mode 644")
    st = remote(server, lambda ws: ws.stat("/r.sh"))
    assert (remote(server, lambda ws: ws.read_file("/r.sh")), st.mode & 0o7777) == (b"v1", 0o644)
    ok(capsys, "restore", "/r.sh", str(v2))
    st = remote(server, lambda ws: ws.stat("/r.sh"))
    assert (remote(server, lambda ws: ws.read_file("/r.sh")), st.mode & 0o7777) == (b"v2", 0o755)


def test_watch_refuses_a_cursor_from_the_future(server, capsys):
    code, out, err = run(capsys, "watch", "--after", "99999")
    assert code == 2 and out == "" and "99999" in err and "ahead" in err
    code, _, err = run(capsys, "watch", "--after", "banana")
    assert code == 2 and "banana" in err


def test_conflicts_list_diff_and_resolve(server, capsys):
    copies = {}
    for name, theirs, mine in (("a.md", b"theirs a\n", b"mine a\n"), ("b.md", b"theirs b\n", b"mine b\n"),
                               ("c.md", b"theirs c\n", b"mine c\n")):
        put_text(server, f"/n/{name}", theirs)
        copies[name] = conflict_name(f"/n/{name}", "laptop", 1_790_000_000.0)
        put_text(server, copies[name], mine)
    listed = lines(ok(capsys, "conflicts", "--json"))
    assert sorted(c["path"] for c in listed) == sorted(copies.values())
    assert {c["original"] for c in listed} == {"/n/a.md", "/n/b.md", "/n/c.md"}
    code, out, _ = run(capsys, "conflicts", "diff", copies["a.md"])
    assert code == 1 and "-theirs a" in out and "+mine a" in out
    ok(capsys, "conflicts", "resolve", copies["a.md"], "--keep", "mine")
    ok(capsys, "conflicts", "resolve", copies["b.md"], "--keep", "theirs")
    ok(capsys, "conflicts", "resolve", copies["c.md"], "--keep", "both")
    assert remote(server, lambda ws: ws.read_file("/n/a.md")) == b"mine a\n"
    assert remote(server, lambda ws: ws.read_file("/n/b.md")) == b"theirs b\n"
    assert remote(server, lambda ws: ws.read_file("/n/c.md")) == b"theirs c\n"
    left = remote(server, lambda ws: ws.find("/n"))
    assert [p for p in left if p not in ("/n/a.md", "/n/b.md", "/n/c.md")] == [copies["c.md"].replace(".conflict-", ".")]
    assert ok(capsys, "conflicts") == ""
    code, _, err = run(capsys, "conflicts", "resolve", "/n/a.md", "--keep", "mine")
    assert code == 2 and "not a conflict copy" in err


def test_listing_commands_speak_json(server, capsys):
    put_text(server, "/j/f.txt", b"f")
    assert lines(ok(capsys, "ls", "-R", "--json", "/j")) == [{"path": "/j/f.txt"}]
    assert {"name": "demo"} in lines(ok(capsys, "workspaces", "--json"))
    assert any(t["name"] == "test-admin" for t in lines(ok(capsys, "token", "list", "--json")))
    assert [v["kind"] for v in lines(ok(capsys, "history", "--json", "/j/f.txt"))] == ["file"]
    assert lines(ok(capsys, "du", "--json", "/j")) == [{"path": "/j", "bytes": 1}]


def test_a_replica_conflict_found_listed_and_resolved_from_the_cli(server, capsys, tmp_path):
    put_text(server, "/doc.md", b"base\n")
    local = tmp_path / "rep"
    ok(capsys, "sync", server.url, "demo", str(local), "--once", "-q")
    (local / "doc.md").write_bytes(b"mine\n")
    put_text(server, "/doc.md", b"theirs\n")
    code, out, err = run(capsys, "sync", server.url, "demo", str(local), "--once", "-q", "--host", "laptop")
    assert code == 0 and "1 conflict(s)" in out and "wsfs conflicts resolve" in err
    [copy] = lines(ok(capsys, "conflicts", "--json"))
    assert copy["original"] == "/doc.md" and copy["host"] == "laptop"
    ok(capsys, "conflicts", "resolve", "--all", "--keep", "mine")
    ok(capsys, "sync", server.url, "demo", str(local), "--once", "-q")
    assert sorted(p.name for p in local.iterdir() if p.name != ".wsfs") == ["doc.md"]
    assert (local / "doc.md").read_bytes() == b"mine\n"


def test_ls_long_of_a_big_flat_directory_matches_each_entrys_lstat(server, capsys):
    async def make(ws):
        for i in range(40):
            await ws.write_file(f"/flat/f{i:02}", b"x" * i, parents=True)
            if i % 3 == 0:
                await ws.chmod(f"/flat/f{i:02}", 0o700 + i % 8)
        await ws.symlink("f01", "/flat/link")
    remote(server, make)
    gets = server.metric("wsfs_http_requests_total", method="GET", status="200")
    listed = lines(ok(capsys, "ls", "--json", "/flat"))
    assert len(listed) == 41
    # lstat, readdir, one snapshot, and the first /metrics scrape itself: not one stat per entry
    assert server.metric("wsfs_http_requests_total", method="GET", status="200") - gets <= 4

    async def truth(ws):
        return [await ws.lstat(e["path"]) for e in listed]
    for entry, st in zip(listed, remote(server, truth)):
        assert (entry["kind"], entry["size"], entry["mode"], entry["hash"], entry["target"]) == \
            (st.kind, st.size, st.mode & 0o7777, st.hash, st.target), entry["path"]
    long = ok(capsys, "ls", "-l", "/flat").splitlines()
    assert long[3].startswith("-rwx----wx") and long[3].endswith(" f03")
    assert long[-1].startswith("lrwxrwxrwx") and long[-1].endswith("link -> f01")


def test_the_sync_bar_shows_binary_units_and_no_unknown_total():
    from rich.progress import Progress

    from client_py.cli.sync import _bytes_column

    column = _bytes_column()
    progress = Progress(column, disable=True)
    task_id = progress.add_task("sync", total=None, completed=3 << 20)
    [task] = progress.tasks
    assert str(column.render(task)) == "3.0 MiB"  # the old bar said "3.1/? MB"
    progress.update(task_id, total=10 << 20)
    assert str(column.render(task)) == "3.0 MiB / 10.0 MiB"


def test_options_before_a_conflicts_action_still_count(server, capsys):
    ok(capsys, "workspaces", "create", "proj")
    copy = conflict_name("/x.txt", "pc", 1_790_000_000.0)

    async def make(c):
        ws = c.workspace("proj")
        await ws.write_file("/x.txt", b"theirs")
        await ws.write_file(copy, b"mine")

    async def go():
        async with Client(server.url, token=server.admin) as c:
            await make(c)
    asyncio.run(go())
    ok(capsys, "conflicts", "-w", "proj", "resolve", "--all", "--keep", "theirs")  # -w before the action
    assert [c["path"] for c in lines(ok(capsys, "conflicts", "list", "-w", "proj", "--json"))] == []
    assert ok(capsys, "cat", "-w", "proj", "/x.txt") == "theirs"


def test_ls_long_shows_fifos_sockets_and_devices_with_their_type_letter(server, capsys):
    """Special files made through a mount show as such (p, s, c, b), never as regular files."""
    import stat

    remote(server, lambda ws: ws.mkdir("/special", parents=True))
    for name, mode, rdev in [("pipe", stat.S_IFIFO | 0o644, 0), ("sock", stat.S_IFSOCK | 0o755, 0),
                             ("tty", stat.S_IFCHR | 0o620, os.makedev(4, 1)),
                             ("disk", stat.S_IFBLK | 0o660, os.makedev(8, 0))]:
        remote(server, lambda ws, n=name, m=mode, r=rdev: ws.mknod(f"/special/{n}", m, r))
    shown = {line.split()[-1]: line.split()[0] for line in ok(capsys, "ls", "-l", "/special").splitlines()}
    assert shown == {"pipe": "prw-r--r--", "sock": "srwxr-xr-x", "tty": "crw--w----", "disk": "brw-rw----"}


def test_find_type_selects_special_files_as_find_does(server, capsys):
    import stat

    remote(server, lambda ws: ws.mkdir("/kinds", parents=True))
    put_text(server, "/kinds/plain.txt", b"x")
    remote(server, lambda ws: ws.mknod("/kinds/pipe", stat.S_IFIFO | 0o600))
    remote(server, lambda ws: ws.mknod("/kinds/tty", stat.S_IFCHR | 0o600, os.makedev(4, 2)))
    assert ok(capsys, "find", "/kinds", "-type", "p").split() == ["/kinds/pipe"]
    assert ok(capsys, "find", "/kinds", "--type", "char").split() == ["/kinds/tty"]
    assert ok(capsys, "find", "/kinds", "-type", "f").split() == ["/kinds/plain.txt"]
