"""PUT bodies: big ones spooled, then written to the store from a mapping of the spool file; small
ones read as bytes straight off the ASGI messages."""

from __future__ import annotations

import os
import socket
import time

import blake3
import orjson

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


def _raw_put(port: int, head: str, pieces: list[bytes], pause: float = 0.05) -> bytes:
    """Send a request head, then its body in `pieces` (each in its own segment, `pause` apart), and
    return the whole response (the server closes after it: `Connection: close`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head.encode())
        for piece in pieces:
            time.sleep(pause)
            sock.sendall(piece)
        out = bytearray()
        for _ in range(200):  # bounded: the response is a few hundred bytes
            data = sock.recv(65536)
            if not data:
                break
            out += data
        return bytes(out)


def test_a_small_body_in_pieces_and_repeated_headers(live_server: LiveServer) -> None:
    """A small PUT's body is read straight off the ASGI messages: one that arrives in several pieces
    is stored whole. Headers are looked up in one dict per request: a repeated header means its
    first value, as Starlette's `Headers.get` (a bad second token, a wrong second `If-Match`
    change nothing). The JSON reply carries its length, type and ETag."""
    data = b"0123456789" * 10
    etag = f'"{blake3.blake3(data).hexdigest()}"'
    head = (f"PUT {W}/files/pieces.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live_server.admin}\r\n"
            f"Authorization: Bearer not-a-token\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n")
    reply = _raw_put(live_server.port, head, [data[:7], data[7:60], data[60:]])
    status_line, _, rest = reply.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 201"), reply
    fields = dict(line.split(b": ", 1) for line in headers.split(b"\r\n"))
    assert fields[b"content-type"] == b"application/json"
    assert int(fields[b"content-length"]) == len(body)
    assert fields[b"etag"].decode() == etag
    assert orjson.loads(body)["size"] == len(data)
    with live_server.http() as c:
        assert c.get(f"{W}/files/pieces.txt").content == data
    # the first If-Match holds (it matches): the write is done; the other order is refused
    new = b"new"
    for first, second, status in ((etag, '"' + "0" * 64 + '"', b"200"), ('"' + "0" * 64 + '"', etag, b"412")):
        head = (f"PUT {W}/files/pieces.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live_server.admin}\r\n"
                f"If-Match: {first}\r\nIf-Match: {second}\r\nContent-Length: {len(new)}\r\nConnection: close\r\n\r\n")
        reply = _raw_put(live_server.port, head, [new])
        assert reply.startswith(b"HTTP/1.1 " + status), reply
        if status == b"200":
            etag = f'"{blake3.blake3(new).hexdigest()}"'
    with live_server.http() as c:
        assert c.get(f"{W}/files/pieces.txt").content == new


def test_a_small_body_cut_short_commits_nothing(live_server: LiveServer) -> None:
    """A client that leaves in the middle of a small body: nothing is written, the server goes on."""
    with live_server.http() as c:
        rev = c.get(W).json()["rev"]
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall((f"PUT {W}/files/cut.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live_server.admin}\r\n"
                      "Content-Length: 100\r\n\r\n").encode() + b"x" * 40)
        time.sleep(0.1)
    with live_server.http() as c:
        for _ in range(50):  # bounded: the server sees the disconnect within a loop turn or two
            time.sleep(0.02)
            assert c.get(f"{W}/files/cut.txt").status_code == 404
        assert c.get(W).json()["rev"] == rev
        assert c.put(f"{W}/files/cut.txt", content=b"whole").status_code == 201


def _pieces(data: bytes, sizes: tuple[int, ...]):
    """`data` in pieces of the given sizes, cycled (odd sizes: batch ends fall inside chunks)."""
    at, i = 0, 0
    while at < len(data):
        yield data[at : at + sizes[i % len(sizes)]]
        at += sizes[i % len(sizes)]
        i += 1


def test_a_big_put_stored_as_it_arrives_is_cut_as_a_whole_write_would_be(live_server: LiveServer) -> None:
    """A body of 19 MiB (stored batch by batch while it arrives, `_Arriving`) ends with the chunk
    list the store's own cut of the whole gives, its exact content id, and its bytes; a second
    PUT of the same bytes keeps that list; an identical body with a failed precondition commits
    nothing."""
    from vfs.chunks import cut

    data = os.urandom(19 * 1024 * 1024 + 12345)
    expected = [[blake3.blake3(piece).hexdigest(), len(piece)] for piece in cut(data)]
    etag = f'"{blake3.blake3(data).hexdigest()}"'
    with live_server.http() as c:
        headers = {"Content-Length": str(len(data))}
        r = c.put(f"{W}/files/arriving.bin", content=_pieces(data, (65536, 1000003, 7, 300000)), headers=headers)
        assert r.status_code == 201, r.text
        assert r.headers["etag"] == etag and r.json()["size"] == len(data)
        entry = c.get(f"{W}/entry/arriving.bin").json()
        assert entry["chunks"] == expected and entry["hash"] == etag.strip('"')
        assert c.get(f"{W}/files/arriving.bin").content == data
        rev = entry["rev"]
        r = c.put(f"{W}/files/arriving.bin", content=_pieces(data, (1 << 20,)), headers={**headers, "If-Match": etag})
        assert r.status_code == 200 and r.headers["etag"] == etag
        assert c.get(f"{W}/entry/arriving.bin").json()["chunks"] == expected
        r = c.put(f"{W}/files/arriving.bin", content=_pieces(data, (1 << 20,)),
                  headers={**headers, "If-Match": '"' + "0" * 64 + '"'})
        assert r.status_code == 412
        assert c.get(f"{W}/entry/arriving.bin").json()["rev"] >= rev
        assert c.get(f"{W}/files/arriving.bin").content == data


def test_a_big_body_cut_short_commits_nothing_and_a_retry_is_whole(live_server: LiveServer) -> None:
    """A client that leaves after 12 MiB of a declared 20 MiB (some batches already stored):
    no file appears, and the full PUT afterwards stores exactly its bytes."""
    data = os.urandom(20 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=30) as sock:
        sock.sendall((f"PUT {W}/files/cut.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {live_server.admin}\r\n"
                      f"Content-Length: {len(data)}\r\n\r\n").encode())
        sock.sendall(data[: 12 * 1024 * 1024])
        time.sleep(0.2)
    with live_server.http() as c:
        for _ in range(50):  # bounded: the server sees the disconnect within a loop turn or two
            time.sleep(0.02)
            assert c.get(f"{W}/files/cut.bin").status_code == 404
        r = c.put(f"{W}/files/cut.bin", content=data)
        assert r.status_code == 201 and r.headers["etag"] == f'"{blake3.blake3(data).hexdigest()}"'
        assert c.get(f"{W}/files/cut.bin").content == data
