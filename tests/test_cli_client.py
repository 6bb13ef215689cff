"""The client's `wsfs` subcommands: exit codes (by kind of failure, one line on stderr), --help, round trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_fixtures import run
from client_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["sync", "ls", "cat", "put", "get", "rm", "mv", "mkdir", "stat", "watch", "history", "restore",
            "workspaces", "token", "cp", "chmod", "ln", "find", "grep", "du", "tree", "conflicts", "serve"]


@pytest.fixture
def server(cli_server):
    return cli_server



@pytest.mark.parametrize("command", COMMANDS)
def test_help_for_every_command(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and out.startswith("usage: ") and command in out


@pytest.mark.parametrize("argv", [["cat"], ["put"], ["mv", "/a"], ["sync", "http://x"], ["restore", "/a", "notanumber"],
                                  ["ls", "--no-such-flag"], ["token", "explode"]])
def test_usage_errors_exit_2(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "usage:" in err


@pytest.mark.parametrize("argv, named", [(["chmod", "u+q", "/a"], "'u+q'"),
                                         (["conflicts", "resolve", "--keep", "mine"], "COPY"),
                                         (["put", "-", "-q"], "destination"),
                                         (["token", "create", "--read", "--data", "/nonexistent"], "workspace")])
def test_bad_combinations_exit_2_naming_the_problem(capsys, argv, named):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and named in err


def test_round_trip(server, capsys, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello\n")
    assert run(capsys, "put", str(src), "/docs/hello.txt", "-p", "-q")[0] == 0
    code, out, _ = run(capsys, "ls", "/docs")
    assert code == 0 and out.split() == ["hello.txt"]
    code, out, _ = run(capsys, "ls", "-l", "/")
    assert code == 0 and "docs/" in out
    code, out, _ = run(capsys, "cat", "/docs/hello.txt")
    assert code == 0 and out == "hello\n"
    dst = tmp_path / "back.txt"
    assert run(capsys, "get", "/docs/hello.txt", str(dst), "-q")[0] == 0
    assert dst.read_bytes() == b"hello\n"
    assert run(capsys, "mkdir", "-p", "/x/y")[0] == 0
    assert run(capsys, "mv", "/docs/hello.txt", "/x/y/moved.txt")[0] == 0
    code, out, _ = run(capsys, "stat", "/x/y/moved.txt")
    assert code == 0 and json.loads(out)["size"] == 6
    src.write_bytes(b"second version\n")
    run(capsys, "put", str(src), "/x/y/moved.txt", "-q")
    code, out, _ = run(capsys, "history", "/x/y/moved.txt", "--json")
    versions = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(versions) >= 2
    old = min(v["rev"] for v in versions if v["kind"] == "file")
    assert run(capsys, "restore", "/x/y/moved.txt", str(old))[0] == 0
    assert run(capsys, "cat", "/x/y/moved.txt")[1] == "hello\n"
    code, out, _ = run(capsys, "ls", "-R", "/")
    assert "/x/y/moved.txt" in out.split()
    assert run(capsys, "rm", "-r", "/x")[0] == 0
    assert run(capsys, "rm", "-f", "/x")[0] == 0


def test_errors_exit_by_kind_with_one_line(server, capsys):
    code, out, err = run(capsys, "cat", "/missing.txt")
    assert code == 3 and out == ""  # not found
    assert err.count("\n") == 1 and "No such file or directory" in err and "/missing.txt" in err
    code, _, err = run(capsys, "rm", "/")
    assert code == 4 and err.count("\n") == 1  # EPERM: permission
    code, _, err = run(capsys, "ls", "--token", "wsfs_bad", "/")
    assert code == 4 and err.count("\n") == 1 and "token" in err and "demo-token" not in err
    assert run(capsys, "mkdir", "/d")[0] == 0
    code, _, err = run(capsys, "mkdir", "/d")
    assert code == 5 and "File exists" in err  # conflict
    code, _, err = run(capsys, "ls", "-w", "bad name!", "/")
    assert code == 2 and "'bad name!'" in err and "admin" not in err


def test_no_token_says_where_one_is(server, capsys, monkeypatch):
    monkeypatch.delenv("WSFS_TOKEN")
    code, _, err = run(capsys, "ls", "/")
    assert code == 4 and err.count("\n") == 1 and "$WSFS_TOKEN" in err and "wsfs-data/demo-token" in err


@pytest.mark.parametrize("command", ["ls", "watch"])  # watch waits out a restart, not a server that never was
def test_unreachable_server_exit_6_naming_the_url(capsys, command):
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, command, "--url", url, "--token", "t", "/")
    assert code == 6 and url in err and err.count("\n") == 1


def test_put_from_stdin_and_get_to_stdout(server, tmp_path):
    env = {**os.environ, "WSFS_URL": server.url, "WSFS_TOKEN": server.admin}
    put = subprocess.run([sys.executable, "-m", "wsfs", "put", "-", "/stdin.bin"], input=b"\x00\x01piped",
                         cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert put.returncode == 0, put.stderr
    got = subprocess.run([sys.executable, "-m", "wsfs", "get", "/stdin.bin", "-"], cwd=ROOT, env=env,
                         capture_output=True, timeout=60)
    assert got.returncode == 0 and got.stdout == b"\x00\x01piped"


def test_watch_prints_events_from_a_cursor(server, capsys, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"x")
    for name in ("a", "b", "c"):
        run(capsys, "put", str(src), f"/w/{name}", "-p", "-q")
    code, out, _ = run(capsys, "watch", "/w", "--after", "", "--count", "4", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["path"] for e in events] == ["/w", "/w/a", "/w/b", "/w/c"]
    assert all(e["cursor"] for e in events)


def test_sync_once(server, capsys, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"synced")
    run(capsys, "put", str(src), "/in/f.txt", "-p", "-q")
    local = tmp_path / "rep"
    code, out, _ = run(capsys, "sync", server.url, "demo", str(local), "--once", "-q")
    assert code == 0 and out.startswith("synced demo")
    assert (local / "in" / "f.txt").read_bytes() == b"synced"


def test_admin_helpers(server, capsys):
    assert run(capsys, "workspaces", "create", "proj")[0] == 0
    code, out, _ = run(capsys, "workspaces")
    assert code == 0 and "proj" in out.split()
    code, out, _ = run(capsys, "token", "create", "proj", "--write", "--name", "ci")
    secret = out.strip()
    assert code == 0 and secret.startswith("wsfs_")
    assert run(capsys, "ls", "-w", "proj", "--token", secret, "/")[0] == 0
    code, out, _ = run(capsys, "token", "list", "--json")
    token_id = next(t["id"] for t in map(json.loads, out.splitlines()) if t["name"] == "ci")
    assert run(capsys, "token", "revoke", token_id)[0] == 0
    assert run(capsys, "ls", "-w", "proj", "--token", secret, "/")[0] == 4
    assert run(capsys, "token", "revoke", token_id)[0] == 3
    assert run(capsys, "workspaces", "delete", "proj")[0] == 0
    assert run(capsys, "workspaces", "create")[0] == 2


def test_token_family_picks_the_data_dir_here_unless_a_server_is_named(capsys, tmp_path, monkeypatch):
    from server.auth import TokenStore

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WSFS_URL", raising=False)
    (tmp_path / "wsfs-data").mkdir()
    store = TokenStore(tmp_path / "wsfs-data")
    store.create(None, "admin", "made-here")
    store.close()
    code, out, _ = run(capsys, "token", "list")  # ./wsfs-data exists and no server is named: the data dir
    assert code == 0 and out.splitlines()[1].endswith("made-here")
    code, _, err = run(capsys, "token", "list", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t")
    assert code == 6 and "cannot reach" in err  # a named server is asked, even with ./wsfs-data here
    code, _, err = run(capsys, "token", "list", "--data", "wsfs-data", "--url", "http://127.0.0.1:1")
    assert code == 2 and "not both" in err
