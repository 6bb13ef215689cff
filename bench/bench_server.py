"""Server benchmarks: change fan-out and large HTTP transfers, each against a bare baseline in the same run.

    .venv/bin/python bench/bench_server.py              # full run (1/10/100/500 subscribers, 256 MiB)
    .venv/bin/python bench/bench_server.py --quick      # small smoke run

Fan-out: N WebSocket subscribers (one client process: this one) watch the
`demo` workspace of a real `wsfs serve` subprocess. A writer pushes one file
per commit over its own WebSocket.
- latency: 100 commits/s for 2 s; per delivery, time from the writer sending
  the push to a subscriber receiving the entry (an upper bound of
  commit -> receipt); p50/p99 over all deliveries;
- throughput: M pushes pipelined as fast as the server takes them;
  deliveries/s = entries received by all subscribers / elapsed time.
The baseline is a bare Starlette broadcast endpoint on the same uvicorn
settings (`for ws in clients: await ws.send_text(m)`, same message size),
run in its own subprocess, measured the same way.

Transfers: PUT then GET of one 256 MiB file through wsfs, against the same
uvicorn serving a plain file with StaticFiles (download) and an endpoint
that writes the request body straight to a file (upload).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import blake3
import httpx
import orjson
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- servers


class Proc:
    """A server subprocess that prints `URL <url>` (baseline) or the wsfs demo line."""

    def __init__(self, cmd: list[str], cwd: Path | None = None, stderr: Any = subprocess.DEVNULL):
        """`cwd`: the source tree the server runs from (default this one; another for A/B runs);
        `stderr`: where its log goes (default nowhere)."""
        self.proc = subprocess.Popen(cmd, cwd=cwd or ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.admin = ""
        self.url = ""
        deadline = time.monotonic() + 30
        while not self.url and time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            if "admin token" in line:
                self.admin = line.rsplit(" ", 1)[1].strip()
            if "open the demo:" in line:
                self.url = line.split("open the demo:", 1)[1].strip().split("/?token=")[0]
            if line.startswith("URL "):
                self.url = line.split()[1]
        if not self.url:
            self.stop()
            raise RuntimeError(f"server did not start: {cmd}")
        for _ in range(200):
            try:
                httpx.get(self.url + "/healthz", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def baseline_app(static_dir: str) -> Any:
    """The bare stack: uvicorn + Starlette, a broadcast loop, a static file, a body-to-file upload."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect

    clients: set[WebSocket] = set()

    async def sub(ws: WebSocket) -> None:
        await ws.accept()
        clients.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(ws)

    async def pub(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                msg = await ws.receive_text()
                for c in list(clients):
                    await c.send_text(msg)
        except WebSocketDisconnect:
            pass

    async def upload(request: Any) -> JSONResponse:
        size = 0
        with open(os.path.join(static_dir, "upload.bin"), "wb") as f:
            async for part in request.stream():
                f.write(part)
                size += len(part)
        return JSONResponse({"size": size})

    async def healthz(request: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/healthz", healthz), Route("/upload", upload, methods=["PUT"]),
        WebSocketRoute("/sub", sub), WebSocketRoute("/pub", pub),
        Mount("/static", StaticFiles(directory=static_dir)),
    ])


def run_baseline_server(static_dir: str) -> None:
    import uvicorn

    from server.runner import bind, make_config

    sock = bind("127.0.0.1", 0)
    print(f"URL http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = make_config(baseline_app(static_dir), lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


# ---------------------------------------------------------------- fan-out


class Receivers:
    """N subscriber connections; records receipt time per (write index) delivery."""

    def __init__(self) -> None:
        self.conns: list[Any] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.received: dict[int, list[float]] = {}
        self.count = 0

    def record(self, indexes: list[int]) -> None:
        now = time.perf_counter()
        for i in indexes:
            self.received.setdefault(i, []).append(now)
        self.count += len(indexes)

    async def reader(self, conn: Any, parse: Any) -> None:
        try:
            async for frame in conn:
                self.record(parse(frame))
        except Exception:  # noqa: BLE001 - connection closed at the end of a phase
            pass

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# Receivers only extract write indexes, with a regex rather than a JSON parse, so the
# client process (500 receivers in one Python process) costs as little as it can for both sides.
_WSFS_PATH = re.compile(r'"path":"/b/(\d+)"')
_BASE_I = re.compile(r'"i":(\d+)')


def _wsfs_indexes(frame: Any) -> list[int]:
    return [int(x) for x in _WSFS_PATH.findall(frame)] if frame.startswith('{"type":"changes"') else []


def _base_indexes(frame: Any) -> list[int]:
    return [int(x) for x in _BASE_I.findall(frame)]


async def open_wsfs_receivers(url: str, token: str, n: int) -> Receivers:
    rec = Receivers()
    ws_url = url.replace("http://", "ws://") + f"/api/workspaces/demo/ws?token={token}"

    async def one() -> None:
        conn = await connect(ws_url, compression=None, max_size=2**24, open_timeout=60)
        await conn.send(orjson.dumps({"type": "hello", "protocol": 1}).decode())
        while orjson.loads(await conn.recv()).get("type") != "hello":
            pass
        await conn.send(orjson.dumps({"type": "subscribe", "id": "b", "after": "now", "prefix": "/b"}).decode())
        while orjson.loads(await conn.recv()).get("type") != "caught_up":
            pass
        rec.conns.append(conn)
        rec.tasks.append(asyncio.create_task(rec.reader(conn, _wsfs_indexes)))

    for start in range(0, n, 50):
        await asyncio.gather(*(one() for _ in range(start, min(n, start + 50))))
    return rec


async def open_base_receivers(url: str, n: int) -> Receivers:
    rec = Receivers()

    async def one() -> None:
        conn = await connect(url.replace("http://", "ws://") + "/sub", compression=None, open_timeout=60)
        rec.conns.append(conn)
        rec.tasks.append(asyncio.create_task(rec.reader(conn, _base_indexes)))

    for start in range(0, n, 50):
        await asyncio.gather(*(one() for _ in range(start, min(n, start + 50))))
    await asyncio.sleep(0.2)
    return rec


class WsfsWriter:
    """Pushes one file per commit (content already stored, so no chunk upload)."""

    def __init__(self, conn: Any, chunk_hash: str, size: int):
        self.conn, self.hash, self.size = conn, chunk_hash, size
        self.replies = 0
        self.reader = asyncio.create_task(self._drain())

    @classmethod
    async def open(cls, url: str, token: str) -> WsfsWriter:
        data = b"x" * 100
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            c.put("/api/workspaces/demo/files/seed", content=data)
        conn = await connect(url.replace("http://", "ws://") + f"/api/workspaces/demo/ws?token={token}",
                             compression=None)
        await conn.send(orjson.dumps({"type": "hello", "protocol": 1}).decode())
        while orjson.loads(await conn.recv()).get("type") != "hello":
            pass
        return cls(conn, blake3.blake3(data).hexdigest(), len(data))

    async def _drain(self) -> None:
        try:
            async for frame in self.conn:
                if orjson.loads(frame).get("type") == "ok":
                    self.replies += 1
        except Exception:  # noqa: BLE001
            pass

    async def send(self, i: int) -> None:
        entry = {"path": f"/b/{i}", "kind": "file", "mode": 0o100644, "mtime": 1.0, "size": self.size,
                 "hash": self.hash, "chunks": [[self.hash, self.size]]}
        await self.conn.send(orjson.dumps({"type": "push", "id": i, "changes": [entry]}).decode())

    async def close(self) -> None:
        await self.conn.close()
        self.reader.cancel()


class BaseWriter:
    def __init__(self, conn: Any):
        self.conn = conn
        self.pad = "p" * 300  # about the size of a wsfs change message

    @classmethod
    async def open(cls, url: str) -> BaseWriter:
        return cls(await connect(url.replace("http://", "ws://") + "/pub", compression=None))

    async def send(self, i: int) -> None:
        await self.conn.send(orjson.dumps({"i": i, "pad": self.pad}).decode())

    async def close(self) -> None:
        await self.conn.close()


async def wait_count(rec: Receivers, target: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while rec.count < target:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def measure(writer: Any, rec: Receivers, n: int, first_index: int, latency_events: int,
                  burst: int, server: Proc) -> dict[str, float]:
    # latency at 100 events/s
    sent: dict[int, float] = {}
    base = rec.count
    cpu_lat0 = server.cpu_seconds()
    for k in range(latency_events):
        i = first_index + k
        sent[i] = time.perf_counter()
        await writer.send(i)
        await asyncio.sleep(max(0.0, sent[i] + 0.01 - time.perf_counter()))
    await wait_count(rec, base + latency_events * n, 30)
    cpu_lat = server.cpu_seconds() - cpu_lat0
    lat = [t - sent[i] for i in sent for t in rec.received.get(i, [])]
    lat.sort()
    # throughput: a pipelined burst
    start_index = first_index + latency_events
    base = rec.count
    cpu0 = server.cpu_seconds()
    t0 = time.perf_counter()
    for k in range(burst):
        await writer.send(start_index + k)
    complete = await wait_count(rec, base + burst * n, 120)
    elapsed = time.perf_counter() - t0
    got = rec.count - base
    cpu = server.cpu_seconds() - cpu0
    return {
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else float("nan"),
        "lat_deliveries": len(lat),
        "lat_server_us_per_delivery": 1e6 * cpu_lat / max(len(lat), 1),
        "deliveries_per_s": got / elapsed,
        "server_us_per_delivery": 1e6 * cpu / max(got, 1),
        "complete": float(complete),
    }


async def fanout(sizes: list[int], latency_events: int, burst_deliveries: int) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--switch-interval", os.environ["WSFS_SWITCH"]] if os.environ.get("WSFS_SWITCH") else []
        wsfs = Proc([sys.executable, "-m", "server", "serve", "--data", f"{tmp}/data", "--port", "0", *extra])
        base = Proc([sys.executable, __file__, "--baseline-server", tmp])
        try:
            index = 0
            for n in sizes:
                burst = max(50, min(2000, burst_deliveries // n))
                row: dict[str, Any] = {"subscribers": n, "burst": burst}
                for name, opener in (("wsfs", "w"), ("bare", "b")):
                    if opener == "w":
                        rec = await open_wsfs_receivers(wsfs.url, wsfs.admin, n)
                        writer: Any = await WsfsWriter.open(wsfs.url, wsfs.admin)
                    else:
                        rec = await open_base_receivers(base.url, n)
                        writer = await BaseWriter.open(base.url)
                    row[name] = await measure(writer, rec, n, index, latency_events, burst,
                                              wsfs if opener == "w" else base)
                    index += latency_events + burst
                    await writer.close()
                    await rec.close()
                row["ratio"] = row["wsfs"]["deliveries_per_s"] / row["bare"]["deliveries_per_s"]
                results.append(row)
                print_fanout_row(row)
        finally:
            wsfs.stop()
            base.stop()
    return results


def print_fanout_row(row: dict[str, Any]) -> None:
    w, b = row["wsfs"], row["bare"]
    print(f"  {row['subscribers']:>4} subs | at 100/s: wsfs p50 {w['p50_ms']:6.2f} ms p99 {w['p99_ms']:6.2f} ms "
          f"{w['lat_server_us_per_delivery']:5.1f} srv-us/deliv, bare p50 {b['p50_ms']:6.2f} ms p99 {b['p99_ms']:6.2f} ms "
          f"{b['lat_server_us_per_delivery']:5.1f} srv-us/deliv", flush=True)
    print(f"  {row['subscribers']:>4} subs | burst:    "
          f"wsfs {w['deliveries_per_s']:7.0f} deliv/s {w['server_us_per_delivery']:5.1f} srv-us/deliv"
          f"{'' if w['complete'] else ' (INCOMPLETE)'} | "
          f"bare {b['deliveries_per_s']:7.0f} deliv/s "
          f"{b['server_us_per_delivery']:5.1f} srv-us/deliv | throughput ratio {row['ratio']:.2f}", flush=True)


# ---------------------------------------------------------------- transfers


async def ws_upload(url: str, token: str, payload: bytes) -> float:
    """MB/s of WebSocket PUT frames (64 KiB chunks, as a replica pushes new content), confirmed by `has`."""
    from client_py.client import Client

    chunks = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    hashes = [blake3.blake3(c).hexdigest() for c in chunks]
    async with Client(url, token=token) as client:
        session = await client.connect("demo")
        try:
            t0 = time.perf_counter()
            for digest, chunk in zip(hashes, chunks):
                await session.put_chunk(digest, chunk)
            missing = await session.has(hashes)
            elapsed = time.perf_counter() - t0
        finally:
            await session.close()
    assert not missing, f"{len(missing)} uploaded chunks are missing"
    return len(payload) / elapsed / 1e6


def _put_body(payload: bytes):
    view = memoryview(payload)
    for i in range(0, len(payload), 1 << 20):
        yield bytes(view[i : i + (1 << 20)])


def timed_put(client: httpx.Client, url: str, payload: bytes) -> float:
    """MB/s of one PUT of `payload`, sent in 1 MiB pieces with its length declared."""
    t0 = time.perf_counter()
    r = client.put(url, content=_put_body(payload), headers={"Content-Length": str(len(payload))})
    r.raise_for_status()
    return len(payload) / (time.perf_counter() - t0) / 1e6


def timed_get(client: httpx.Client, url: str, payload: bytes) -> float:
    t0 = time.perf_counter()
    got = 0
    digest = blake3.blake3()
    with client.stream("GET", url) as r:
        r.raise_for_status()
        for part in r.iter_bytes(1 << 20):
            got += len(part)
            digest.update(part)
    assert got == len(payload)
    rate = len(payload) / (time.perf_counter() - t0) / 1e6
    assert digest.hexdigest() == blake3.blake3(payload).hexdigest()
    return rate


def transfers(size: int, pairs: int = 1, root: Path | None = None) -> dict[str, Any]:
    """PUT rounds (`pairs` of them: every server once per round, the order rotating, fresh random
    bytes each round so no dedup helps), then one GET and the WebSocket upload. Per PUT: MB/s and
    the server's CPU seconds; `root`: another tree's `wsfs serve` ("old") in the same rounds."""
    out: dict[str, Any] = {"rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        payload = os.urandom(size)  # random content: no dedup helps wsfs
        Path(tmp, "static.bin").write_bytes(payload)
        wsfs = Proc([sys.executable, "-m", "server", "serve", "--data", f"{tmp}/data", "--port", "0"])
        base = Proc([sys.executable, __file__, "--baseline-server", tmp])
        old = Proc([sys.executable, "-m", "server", "serve", "--data", f"{tmp}/old", "--port", "0"],
                   cwd=root) if root else None
        servers = {"wsfs": wsfs, "bare": base, **({"old": old} if old else {})}
        try:
            clients = {k: httpx.Client(base_url=v.url, timeout=600,
                                       headers={"Authorization": f"Bearer {v.admin}"} if v.admin else {})
                       for k, v in servers.items()}
            urls = {"wsfs": "/api/workspaces/demo/files/big.bin", "old": "/api/workspaces/demo/files/big.bin",
                    "bare": "/upload"}
            names = list(servers)
            body = payload
            for r in range(pairs):
                body = payload if r == 0 else os.urandom(size)
                row: dict[str, float] = {"load": os.getloadavg()[0]}
                for k in names[r % len(names):] + names[: r % len(names)]:
                    cpu0 = servers[k].cpu_seconds()
                    row[k] = timed_put(clients[k], urls[k], body)
                    row[k + ":cpu"] = servers[k].cpu_seconds() - cpu0
                out["rounds"].append(row)
            out["wsfs_download_MBps"] = timed_get(clients["wsfs"], urls["wsfs"], body)  # what the last round put
            out["bare_download_MBps"] = timed_get(clients["bare"], "/static/static.bin", payload)
            for c in clients.values():
                c.close()
            # fresh random bytes: chunks the PUTs above stored would be deduplicated for free
            out["wsfs_ws_upload_MBps"] = asyncio.run(ws_upload(wsfs.url, wsfs.admin, os.urandom(size)))
        finally:
            for proc in servers.values():
                proc.stop()
    rounds = out["rounds"]
    out["wsfs_upload_MBps"] = median([r["wsfs"] for r in rounds])
    out["bare_upload_MBps"] = median([r["bare"] for r in rounds])
    out["upload_ratio"] = median([r["wsfs"] / r["bare"] for r in rounds])
    out["ws_upload_ratio"] = out["wsfs_ws_upload_MBps"] / out["bare_upload_MBps"]
    out["download_ratio"] = out["wsfs_download_MBps"] / out["bare_download_MBps"]
    return out


def print_put_rounds(size: int, t: dict[str, Any]) -> None:
    """One line per PUT round: MB/s, server CPU s and the ratios to the bare endpoint (and old/new)."""
    print(f"PUT of {size >> 20} MiB by round (MB/s, server CPU s; ratio = wsfs MB/s ÷ bare MB/s):")
    for i, r in enumerate(t["rounds"]):
        parts = [f"{k} {r[k]:.0f} MB/s {r[k + ':cpu']:.2f} s" for k in ("wsfs", "old", "bare") if k in r]
        extra = f", old ratio {r['old'] / r['bare']:.2f}, new/old CPU {r['wsfs:cpu'] / r['old:cpu']:.2f}" if "old" in r else ""
        print(f"  round {i + 1} (load {r['load']:.1f}): " + "; ".join(parts) + f"; ratio {r['wsfs'] / r['bare']:.2f}"
              + f", wsfs CPU ÷ bare CPU {r['wsfs:cpu'] / max(r['bare:cpu'], 0.01):.2f}" + extra)


# ---------------------------------------------------------------- small writes


SMALL_BODY = b"x" * 100
_OK_ID = re.compile(rb'"type":"ok","id":(\d+)')


class RawHttp:
    """One keep-alive HTTP/1.1 connection spoken by hand (cheaper than httpx: the client must cost
    less than the servers it measures); one request at a time. `bench_scale.py` uses it too."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> RawHttp:
        host, port = url.split("://", 1)[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, body: bytes, token: str) -> int:
        """Send one request, read the whole answer; its status."""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n\r\n")
        self.writer.write(head.encode() + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in headers.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return int(headers[9:12])

    async def put(self, path: str, body: bytes, token: str) -> int:
        return await self.request("PUT", path, body, token)

    def close(self) -> None:
        self.writer.close()


class RawWs:
    """One WebSocket spoken by hand: the upgrade, masked text frames out, frames cut from the stream
    in; `request` sends one message and waits for the `ok` (or error) carrying its id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, path: str) -> RawWs:
        host, port = url.split("://", 1)[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head[:60].decode("latin-1"))
        return cls(reader, writer)

    def send(self, payload: bytes) -> None:
        n = len(payload)
        head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
        self.writer.write(head + b"\0\0\0\0" + payload)  # a zero mask: the server unmasks it all the same

    async def frame(self) -> tuple[int, bytes]:
        b0, b1 = await self.reader.readexactly(2)
        size = b1 & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return b0 & 0x0F, await self.reader.readexactly(size)

    async def until(self, prefix: bytes) -> bytes:
        """Frames until a text frame starting with `prefix` (pings answered, presence and others skipped)."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x9:
                n = len(payload)
                self.writer.write(bytes((0x8A, 0x80 | n)) + b"\0\0\0\0" + payload)
            elif opcode == 0x8:
                raise ConnectionError(f"closed: {payload[:2].hex()} {payload[2:]!r}")
            elif opcode == 0x1 and payload.startswith(prefix):
                return payload

    async def close(self) -> None:
        self.writer.close()


def push_message(i: int, path: str, digest: str) -> bytes:
    """A `push` of one entry: a 100 B file whose content the store already has (so no chunk upload),
    a new mtime each time (so every push commits)."""
    return orjson.dumps({"type": "push", "id": i, "changes": [
        {"path": path, "kind": "file", "mode": 0o100644, "mtime": 1.0 + i, "size": len(SMALL_BODY),
         "hash": digest, "chunks": [[digest, len(SMALL_BODY)]]}]})


async def small_writes(kind: str, url: str, token: str, names: list[str], clients: int,
                       seconds: float) -> dict[str, float]:
    """`clients` writers, each writing back to back (one write in flight) for `seconds`: HTTP PUT of
    100 B (`kind` "put") or a WebSocket push of one entry ("push"). Writer k's i-th write goes to
    workspace `names[(k + i) % len(names)]`, so even one writer spreads over every workspace (a
    pushing writer holds one socket per workspace it writes to). Writes/s, p50/p99 ms."""
    digest = blake3.blake3(SMALL_BODY).hexdigest()
    spread = len(names) if clients < len(names) else 1  # workspaces each writer writes to
    conns: list[Any] = []  # writer k's connection to workspace (k + j) % len(names): conns[k * spread + j]
    for k in range(clients):
        for j in range(spread):
            if kind == "put":
                conns.append(await RawHttp.open(url) if j == 0 else conns[k * spread])
            else:
                ws = await RawWs.open(url, f"/api/workspaces/{names[(k + j) % len(names)]}/ws?token={token}")
                ws.send(orjson.dumps({"type": "hello", "protocol": 1}))
                await ws.until(b'{"type":"hello"')
                conns.append(ws)
    lat: list[float] = []
    failed: list[Any] = []
    stop = time.perf_counter() + seconds

    async def loop(k: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            j = i % spread
            conn, name = conns[k * spread + j], names[(k + j) % len(names)]
            t0 = time.perf_counter()
            if kind == "put":
                status = await conn.put(f"/api/workspaces/{name}/files/s{k}_{i % 50}", SMALL_BODY, token)
                if status >= 300:
                    failed.append(status)
            else:
                conn.send(push_message(i, f"/p/{k}_{i % 50}", digest))
                reply = await conn.until(b'{"type":')
                while not reply.startswith(b'{"type":"ok"') and not reply.startswith(b'{"type":"error"'):
                    reply = await conn.until(b'{"type":')
                if not reply.startswith(b'{"type":"ok"'):
                    failed.append(reply[:120])
            lat.append((time.perf_counter() - t0) * 1000)
            i += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    for c in dict.fromkeys(conns):
        closing = c.close()  # (a RawWs closes with its close frame: awaited; a RawHttp at once)
        if closing is not None:
            await closing
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(lat)} writes failed, e.g. {failed[0]!r}")
    lat.sort()
    return {"per_s": len(lat) / elapsed, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
            "count": float(len(lat))}


def small_bare_app() -> Any:
    """The bare endpoint for small writes: the same routes as wsfs's PUT and WebSocket, no store.
    PUT reads the body and answers a JSON of the size of wsfs's (a file's stat, with its ETag); the
    WebSocket answers `hello`, then each message with an `ok` of the size of a push's, after parsing
    it (as wsfs parses every frame)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    digest = "0" * 64
    reply = orjson.dumps({"path": "/s0_0", "kind": "file", "size": 100, "mtime": 1764900000.123456, "mode": 33188,
                          "rev": 12345, "hash": digest, "nlink": 1})
    hello = orjson.dumps({"type": "hello", "protocol": 1, "session": "s1", "rev": 1, "server": "bare"}).decode()

    async def put(request: Request) -> Response:
        await request.body()
        return Response(reply, media_type="application/json", headers={"ETag": f'"{digest}"'})

    async def healthz(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
            await websocket.send_text(hello)
            while True:
                msg = orjson.loads(await websocket.receive_text())
                path = msg["changes"][0]["path"]
                await websocket.send_text(orjson.dumps({"type": "ok", "id": msg["id"], "applied": [path],
                                                        "unchanged": [], "conflicts": [], "rev": 12345}).decode())
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[Route("/healthz", healthz),
                             Route("/api/workspaces/{ws}/files/{path:path}", put, methods=["PUT"]),
                             WebSocketRoute("/api/workspaces/{ws}/ws", ws)])


def run_small_bare_server() -> None:
    """The bare endpoint on uvicorn with `wsfs serve`'s own settings (`server.runner.make_config`:
    the same HTTP parser, loop, WebSocket implementation and limits)."""
    import uvicorn

    from server.runner import bind, make_config

    sock = bind("127.0.0.1", 0)
    print(f"URL http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(make_config(small_bare_app(), lifespan="off")).run(sockets=[sock])


def start_small_wsfs(data: str, root: Path | None, env: list[str] | None = None) -> Proc:
    """`env`: KEY=VALUE settings for this server's process only (an A/B of a setting: `--root-env`)."""
    saved = dict(os.environ)
    os.environ.update(item.split("=", 1) for item in env or ())
    try:
        return Proc([sys.executable, "-m", "server", "serve", "--data", data, "--port", "0", "--no-seed",
                     "--log-level", "warning"], cwd=root)
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def prepare_small(server: Proc, names: list[str]) -> None:
    """Create the workspaces and store the pushes' 100 B content in each (so a push needs no upload)."""
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}) as c:
        for name in names:
            r = await c.put(f"/api/workspaces/{name}")
            if r.status_code >= 300 and r.status_code != 409:
                raise RuntimeError(f"creating {name}: {r.status_code} {r.text}")
            (await c.put(f"/api/workspaces/{name}/files/seed", content=SMALL_BODY)).raise_for_status()


def cpu_of(proc: Proc) -> float:
    return proc.cpu_seconds()


_JOBS_LINE = re.compile(r'^wsfs_write_jobs_total\{where="(loop|pool)"\} (\S+)$', re.M)


def write_jobs(proc: Proc) -> dict[str, float]:
    """The server's write jobs so far by where they ran (`wsfs_write_jobs`: "loop", "pool"); {} for the
    bare endpoint or a tree before the metric."""
    if not proc.admin:
        return {}
    text = httpx.get(proc.url + "/metrics", headers={"Authorization": f"Bearer {proc.admin}"}, timeout=30).text
    return {where: float(n) for where, n in _JOBS_LINE.findall(text)}


async def small_section(args: argparse.Namespace) -> None:
    """Every point (kind x workspaces x clients) `--pairs` times; in each round the servers (wsfs,
    the `--root` tree's wsfs if given, the bare endpoint) take turns, their order rotating. Prints
    each run, then medians: writes/s and server CPU per write, wsfs ÷ bare (writes/s) and, with
    `--root`, this tree's CPU per write against the other's and in how many rounds it was lower."""
    names = [f"small{i}" for i in range(10)]
    with tempfile.TemporaryDirectory(prefix="wsfs-bench-small-") as tmp:
        servers: dict[str, Proc] = {}
        try:
            servers["wsfs"] = start_small_wsfs(f"{tmp}/new", None)
            if args.root:
                servers["old"] = start_small_wsfs(f"{tmp}/old", Path(args.root), args.root_env)
            servers["bare"] = Proc([sys.executable, __file__, "--small-bare-server"])
            for name, server in servers.items():
                if name != "bare":
                    await prepare_small(server, names)
            results: dict[tuple[str, int, int, str], list[dict[str, float]]] = {}
            order = list(servers)
            for kind in args.small_kinds:
                for nws in (1, 10):
                    for clients in args.small_clients:
                        for k in range(args.pairs):
                            turn = order[k % len(order):] + order[:k % len(order)]
                            for name in turn:
                                server = servers[name]
                                await small_writes(kind, server.url, server.admin or "x", names[:nws], clients, 0.3)
                                jobs0 = write_jobs(server)
                                c0 = cpu_of(server)
                                r = await small_writes(kind, server.url, server.admin or "x", names[:nws], clients,
                                                       args.small_seconds)
                                r["us"] = 1e6 * (cpu_of(server) - c0) / max(1.0, r["count"])
                                jobs = write_jobs(server)
                                if jobs and jobs0:  # the share of the writes that took the writer pool
                                    ran = {w: jobs.get(w, 0) - jobs0.get(w, 0) for w in ("loop", "pool")}
                                    r["pool"] = 100 * ran["pool"] / max(1.0, ran["loop"] + ran["pool"])
                                results.setdefault((kind, nws, clients, name), []).append(r)
                            print(small_round(kind, nws, clients, {n: results[(kind, nws, clients, n)][-1]
                                                                   for n in servers}), flush=True)
                        med = {n: {key: median([r[key] for r in results[(kind, nws, clients, n)]])
                                   for key in ("per_s", "p50", "p99", "us", "pool")
                                   if all(key in r for r in results[(kind, nws, clients, n)])} for n in servers}
                        line = "MEDIAN " + small_round(kind, nws, clients, med)
                        if args.root:
                            new, old = results[(kind, nws, clients, "wsfs")], results[(kind, nws, clients, "old")]
                            wins = sum(1 for a, b in zip(new, old) if a["us"] < b["us"])
                            line += (f" | new/old CPU x{med['wsfs']['us'] / med['old']['us']:.2f}, lower in "
                                     f"{wins}/{len(new)}")
                        print(line + f" | load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            for server in servers.values():
                server.stop()


def median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def small_round(kind: str, nws: int, clients: int, rows: dict[str, dict[str, float]]) -> str:
    what = "PUT 100 B" if kind == "put" else "WS push 1"
    bare = rows["bare"]
    parts = [f"{what} {clients:>2} cl {nws:>2} ws"]
    for name, r in rows.items():
        pool = f" pool {r['pool']:3.0f} %" if "pool" in r else ""
        parts.append(f"{name} {r['per_s']:6.0f}/s p50 {r['p50']:5.1f} p99 {r['p99']:5.1f} ms {r['us']:4.0f} µs CPU{pool}")
    ratios = ", ".join(f"{name} {r['per_s'] / bare['per_s']:.2f}" for name, r in rows.items() if name != "bare")
    cpu = ", ".join(f"{name} {r['us'] / bare['us']:.1f}" for name, r in rows.items() if name != "bare")
    return " | ".join(parts) + f" | ÷ bare writes/s: {ratios} | CPU per write ÷ bare: {cpu}"


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--baseline-server", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--skip-fanout", action="store_true")
    parser.add_argument("--skip-transfer", action="store_true")
    parser.add_argument("--transfers", action="store_true", help="only the transfers (PUT rounds, GET, WebSocket upload)")
    parser.add_argument("--put-pairs", type=int, default=3, help="rounds of the transfers' PUT (every server once each)")
    parser.add_argument("--subs", type=lambda t: [int(x) for x in t.split(",")], help="e.g. 1,10,100,500")
    parser.add_argument("--small", action="store_true", help="only the small-writes section")
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--small-kinds", type=lambda t: t.split(","), default=["put", "push"], help="put,push")
    parser.add_argument("--small-clients", type=lambda t: [int(x) for x in t.split(",")], default=[1, 10, 50])
    parser.add_argument("--small-seconds", type=float, default=2.0)
    parser.add_argument("--pairs", type=int, default=3, help="rounds of every small-writes point")
    parser.add_argument("--root", help="another source tree (git archive REV | tar -x -C DIR): its wsfs too, "
                                       "interleaved with this one's in the small-writes section")
    parser.add_argument("--root-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the --root server only (repeatable); with --root . an A/B of a "
                             "setting, e.g. --root . --root-env PYTHONMALLOC=pymalloc")
    parser.add_argument("--small-bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        run_baseline_server(args.baseline_server)
        return
    if args.small_bare_server:
        run_small_bare_server()
        return
    sizes = args.subs or ([1, 10] if args.quick else [1, 10, 100, 500])
    others = os.popen("ps -eo pcpu= | awk '$1 > 20' | wc -l").read().strip()
    print(f"# bench_server: {os.cpu_count()} cpus; other processes above 20% CPU: {others}")
    if args.small:
        args.skip_fanout = args.skip_transfer = True
    if args.transfers:
        args.skip_small = args.skip_fanout = True
    if not args.skip_small:
        print(f"small writes (load average {os.getloadavg()}):", flush=True)
        asyncio.run(small_section(args))
    if not args.skip_fanout:
        print("fan-out (latency at 100 commits/s; throughput from a pipelined burst):")
        asyncio.run(fanout(sizes, 50 if args.quick else 200, 5_000 if args.quick else 40_000))
    if not args.skip_transfer:
        size = (16 if args.quick else 256) << 20
        t = transfers(size, args.put_pairs, Path(args.root) if args.root else None)
        print_put_rounds(size, t)
        print(f"HTTP transfer of {size >> 20} MiB: upload wsfs {t['wsfs_upload_MBps']:.0f} MB/s vs bare "
              f"{t['bare_upload_MBps']:.0f} MB/s (medians; ratio {t['upload_ratio']:.2f}, median by round); download wsfs "
              f"{t['wsfs_download_MBps']:.0f} MB/s vs static {t['bare_download_MBps']:.0f} MB/s "
              f"(ratio {t['download_ratio']:.2f})")
        print(f"WebSocket chunk upload of {size >> 20} MiB (64 KiB PUT frames): {t['wsfs_ws_upload_MBps']:.0f} MB/s "
              f"vs bare HTTP upload {t['bare_upload_MBps']:.0f} MB/s (ratio {t['ws_upload_ratio']:.2f})")


if __name__ == "__main__":
    main()
