"""`wsfs history` / `restore` and HTTP history against a real server: a file's history follows it across a
directory rename and a hard link, each version names its author (the writing token's name), and the authors
survive a server restart (they are stored with the versions, not remembered).

Ground truth is the server's store read through the Python client.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from cli_fixtures import ok, run
from client_py import Client


@pytest.fixture
def server(cli_server):
    return cli_server




def as_token(server, token: str, call):
    async def go():
        async with Client(server.url, token=token) as c:
            return await call(c.workspace("demo"))
    return asyncio.run(go())


def test_history_follows_a_directory_rename_and_names_authors(server, capsys):
    ann = server.token("demo", "write", name="ann")
    bob = server.token("demo", "write", name="bob")
    as_token(server, ann, lambda ws: ws.write_file("/h/f.txt", b"by ann", parents=True))
    first = as_token(server, ann, lambda ws: ws.stat("/h/f.txt")).rev
    as_token(server, bob, lambda ws: ws.write_file("/h/f.txt", b"by bob"))
    ok(capsys, "mv", "/h", "/h2")  # the admin token moves it
    versions = [json.loads(line) for line in ok(capsys, "history", "--json", "/h2/f.txt").splitlines()]
    assert [(v["kind"], v["path"], v["origin"]) for v in versions] == [
        ("file", "/h2/f.txt", "/h/f.txt"), ("file", "/h/f.txt", None), ("file", "/h/f.txt", None),
    ]
    assert [v["author"] for v in versions[1:]] == ["bob", "ann"]
    assert versions[0]["author"]  # the mover: the admin token's name
    old = [json.loads(line) for line in ok(capsys, "history", "--json", "/h/f.txt").splitlines()]
    assert (old[0]["kind"], old[0]["origin"]) == ("move", "/h2/f.txt")
    text = ok(capsys, "history", "/h2/f.txt")  # the table shows the authors and the earlier name
    assert "ann" in text and "bob" in text and "/h/f.txt" in text
    # restore a version from before the rename, at the current path
    assert ok(capsys, "restore", "/h2/f.txt", str(first)).startswith(f"/h2/f.txt restored from rev {first}")
    assert as_token(server, ann, lambda ws: ws.read_file("/h2/f.txt")) == b"by ann"
    code, _, err = run(capsys, "restore", "/h/f.txt", str(old[0]["rev"]))
    assert code == 3 and "renamed" in err  # a move holds no content


def test_http_history_follows_a_hard_link_and_authors_survive_a_restart(server):
    ann = server.token("demo", "write", name="ann")
    as_token(server, ann, lambda ws: ws.write_file("/a.txt", b"one"))
    as_token(server, ann, lambda ws: ws.link("/a.txt", "/b.txt"))
    as_token(server, server.admin, lambda ws: ws.write_file("/a.txt", b"two"))
    asyncio.run(server.arestart())
    body = httpx.get(f"{server.url}/api/workspaces/demo/history/b.txt",
                     headers={"Authorization": f"Bearer {ann}"}).json()
    listed = [(v["path"], v["author"]) for v in body["versions"]]
    assert listed[1:] == [("/b.txt", "ann"), ("/a.txt", "ann")]  # the link, then the first write as /a.txt
    assert listed[0][0] == "/b.txt" and listed[0][1] not in (None, "ann")  # the admin's write, under both names
    contents = [as_token(server, ann, lambda ws, r=v["rev"]: ws.read_file("/b.txt", rev=r)) for v in body["versions"]]
    assert contents == [b"two", b"one", b"one"]
