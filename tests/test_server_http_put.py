"""Big PUT bodies: spooled, then written to the store from a mapping of the spool file."""

from __future__ import annotations

import os

import blake3

from server_fixtures import LiveServer

W = "/api/workspaces/demo"


def test_a_big_put_twice_and_a_refused_one_leave_the_right_bytes(live_server: LiveServer) -> None:
    """Above the in-memory spool and the store's hash-beside size: the content id is exact, an
    identical rewrite (which returns before the id's hash thread is done with the mapping) keeps it,
    and a PUT refused by its precondition changes nothing."""
    data = os.urandom(9 * 1024 * 1024 + 7)
    etag = f'"{blake3.blake3(data).hexdigest()}"'
    with live_server.http() as c:
        r = c.put(f"{W}/files/big.bin", content=data)
        assert r.status_code == 201 and r.headers["etag"] == etag and r.json()["size"] == len(data)
        r = c.put(f"{W}/files/big.bin", content=data, headers={"If-Match": etag})
        assert r.status_code == 200 and r.headers["etag"] == etag
        other = os.urandom(2 * 1024 * 1024)
        r = c.put(f"{W}/files/big.bin", content=other, headers={"If-Match": '"' + "0" * 64 + '"'})
        assert r.status_code == 412
        r = c.get(f"{W}/files/big.bin")
        assert r.content == data and r.headers["etag"] == etag
        r = c.put(f"{W}/files/other.bin", content=other)
        assert r.status_code == 201 and c.get(f"{W}/files/other.bin").content == other


def test_small_puts_answer_created_or_replaced_and_a_refused_one_commits_nothing(live_server: LiveServer) -> None:
    """A small PUT looks up whether its file existed inside its own transaction (201 / 200), a
    conditional one takes it from its precondition; a refused one (a directory, a missing parent,
    a failed precondition) rolls back: no revision, the next write works."""
    with live_server.http() as c:
        assert c.put(f"{W}/files/d/x.txt", content=b"1", params={"parents": "1"}).status_code == 201
        assert c.put(f"{W}/files/d/x.txt", content=b"2").status_code == 200
        rev = c.get(W).json()["rev"]
        for path, headers, status in (("d", {}, None), ("nope/x.txt", {}, 404),
                                      ("d/x.txt", {"If-None-Match": "*"}, 412),
                                      ("d/y.txt", {"If-Match": '"' + "0" * 64 + '"'}, 412)):
            r = c.put(f"{W}/files/{path}", content=b"4", headers=headers)
            assert r.status_code >= 400 and (status is None or r.status_code == status), (path, r.status_code)
        assert c.get(W).json()["rev"] == rev
        assert c.get(f"{W}/files/d/x.txt").content == b"2"
        assert c.put(f"{W}/files/d/y.txt", content=b"5", headers={"If-None-Match": "*"}).status_code == 201
        assert c.put(f"{W}/files/d/y.txt", content=b"6").status_code == 200
        assert c.get(f"{W}/files/d/y.txt").content == b"6"
