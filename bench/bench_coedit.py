"""Co-editing: keystroke -> other editor latency and server CPU per keystroke, wsfs vs Hocuspocus.

    .venv/bin/python bench/bench_coedit.py [--keystrokes 300] [--only 2,10,50,100x2] [--cursors]

The same workload runs against `wsfs serve` (co-editing over the workspace
WebSocket, protocol §5.11, every update stored in the update log before it
is acknowledged) and against `@hocuspocus/server` (bench/hocuspocus: no
extensions, documents in memory, nothing stored), in the same run:

- scenarios: one document with 2, 10 and 50 editors, and 100 documents of
  2 editors each;
- each editor is its own WebSocket with its own pycrdt document, in this
  process; a keystroke is one character appended by one editor (taking
  turns), sent as a Yjs update; its latency is the time until each other
  editor of that document has received it (so a 50-editor keystroke gives
  49 samples). One keystroke per document is in flight at a time, with a
  short pause between keystrokes (typing, not a flood); with `--cursors`
  each keystroke is followed by an awareness update (the caret moved), as
  a browser's editor sends;
- server CPU is the server process's user+system time over the keystroke
  phase (from /proc), divided by the keystrokes.

Printed: p50/p99 latency and CPU per keystroke for each server, and the
ratio wsfs / Hocuspocus. The clients share this process (and the machine's
cores) with nothing else of the bench, so latency includes their decoding;
both servers pay it alike. Goals (issue 13): p50 <= 30 ms, p99 <= 100 ms
at 50 editors; CPU per keystroke no worse than Hocuspocus.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from pycrdt import Doc, Text
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vfs.wire import (  # noqa: E402
    COEDIT_TEXT,
    AwarenessEntry,
    awareness_message,
    encode_awareness,
    read_y_message,
    sync_step1,
    sync_step2,
    sync_update,
)
from vfs.wire.coedit import SYNC_STEP1, YSync, read_bytes, read_varuint, write_varuint  # noqa: E402

HOCUSPOCUS_DIR = ROOT / "bench" / "hocuspocus"
PAUSE = 0.005  # seconds between one document's keystrokes


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- servers


class WsfsServer:
    name = "wsfs"

    def __init__(self, data: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--data", str(data), "--port", "0", "--no-seed"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.admin = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "admin token" in line:
                self.admin = line.rsplit(" ", 1)[1].strip()
            if "open the demo:" in line:
                self.url = line.split("open the demo:", 1)[1].strip().split("/?token=")[0]
                break
        self.ws_url = self.url.replace("http://", "ws://") + "/api/workspaces/demo/ws"
        wait_healthy(self.url)

    async def editor(self, doc_name: str) -> Editor:
        ws = await connect(self.ws_url, additional_headers={"Authorization": f"Bearer {self.admin}"},
                           compression=None, max_size=None)
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1}).decode())
        await ws.recv()
        editor = Editor(ws, f"/{doc_name}.txt", wsfs=True)
        await ws.send(orjson.dumps({"type": "coedit_open", "id": 0, "path": editor.path,
                                    "y": base64.b64encode(sync_step1(editor.doc.get_state())).decode()}).decode())
        return editor

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


class HocuspocusServer:
    name = "hocuspocus"

    def __init__(self) -> None:
        if not (HOCUSPOCUS_DIR / "node_modules" / "@hocuspocus" / "server").exists():
            subprocess.run(["npm", "ci", "--silent"], cwd=HOCUSPOCUS_DIR, check=True)
        self.proc = subprocess.Popen(["node", "server.mjs"], cwd=HOCUSPOCUS_DIR, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline().split()[1])
        self.ws_url = f"ws://127.0.0.1:{port}"

    async def editor(self, doc_name: str) -> Editor:
        ws = await connect(self.ws_url, compression=None, max_size=None)
        editor = Editor(ws, doc_name, wsfs=False)
        await ws.send(editor.hp_frame(2, b"\x00" + _varstring("token")))  # Auth, Token, "token"
        await ws.send(editor.hp_frame(0, sync_step1(editor.doc.get_state())[1:]))
        return editor

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def wait_healthy(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} never became healthy")
        time.sleep(0.05)


def _varstring(text: str) -> bytes:
    out = bytearray()
    raw = text.encode()
    write_varuint(out, len(raw))
    return bytes(out) + raw


# ---------------------------------------------------------------------- editors


@dataclass
class Editor:
    """One WebSocket, one local document; counts the updates it received."""

    ws: Any
    path: str
    wsfs: bool
    doc: Doc = field(default_factory=Doc)
    received: int = 0
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    stamps: list[float] = field(default_factory=list)
    clock: int = 0  # of this editor's awareness state

    def __post_init__(self) -> None:
        self.text = self.doc.get(COEDIT_TEXT, type=Text)

    def hp_frame(self, kind: int, body: bytes) -> bytes:
        return _varstring(self.path) + bytes([kind]) + body

    async def type_one(self, char: str, cursor: bool = False) -> None:
        before = self.doc.get_state()
        self.text.insert(len(self.text), char)
        update = self.doc.get_update(before)
        if self.wsfs:
            b64 = base64.b64encode(sync_update(update)).decode()
            await self.ws.send(orjson.dumps({"type": "coedit", "id": 1, "path": self.path, "y": b64}).decode())
        else:
            await self.ws.send(self.hp_frame(0, sync_update(update)[1:]))
        if cursor:  # what a browser sends with each keystroke: its caret moved
            self.clock += 1
            state = {"user": {"name": f"e{self.doc.client_id % 1000}"}, "cursor": {"anchor": len(self.text)}}
            y = awareness_message(encode_awareness([AwarenessEntry(self.doc.client_id, self.clock, state)]))
            if self.wsfs:
                await self.ws.send(orjson.dumps({"type": "coedit", "path": self.path,
                                                 "y": base64.b64encode(y).decode()}).decode())
            else:
                await self.ws.send(self.hp_frame(1, y[1:]))

    async def reader(self) -> None:
        async for frame in self.ws:
            msg = self._decode(frame)
            if msg is None:
                continue
            if isinstance(msg, YSync) and msg.step == SYNC_STEP1:
                reply = sync_step2(self.doc.get_update(msg.data))
                if self.wsfs:
                    await self.ws.send(orjson.dumps({"type": "coedit", "path": self.path,
                                                     "y": base64.b64encode(reply).decode()}).decode())
                else:
                    await self.ws.send(self.hp_frame(0, reply[1:]))
                continue
            if isinstance(msg, YSync) and msg.data != b"\x00\x00":
                self.doc.apply_update(msg.data)
                if self.synced.is_set():
                    self.received += 1
                    self.stamps.append(time.perf_counter())
                    self.arrived.set()
            if isinstance(msg, YSync):
                self.synced.set()

    def _decode(self, frame: Any) -> Any:
        if self.wsfs:
            if isinstance(frame, bytes):
                return None
            d = orjson.loads(frame)
            return read_y_message(base64.b64decode(d["y"])) if d.get("type") == "coedit" else None
        _name, pos = read_bytes(frame, 0)  # Hocuspocus: document name, message type, then the y-protocols body
        kind, pos = read_varuint(frame, pos)
        return read_y_message(b"\x00" + frame[pos:]) if kind == 0 else None


# ---------------------------------------------------------------------- the run


async def run_scenario(server: Any, docs: int, editors: int, keystrokes: int,
                       cursors: bool = False) -> tuple[list[float], float]:
    groups = []
    for d in range(docs):
        groups.append([await server.editor(f"doc{d}-{editors}") for _ in range(editors)])
    readers = [asyncio.ensure_future(e.reader()) for g in groups for e in g]
    await asyncio.wait_for(asyncio.gather(*(e.synced.wait() for g in groups for e in g)), 60)
    await asyncio.sleep(0.3)
    latencies: list[float] = []
    per_doc = max(1, keystrokes // docs)

    async def typist(group: list[Editor]) -> None:
        for k in range(per_doc):
            author = group[k % len(group)]
            others = [e for e in group if e is not author]
            counts = [e.received for e in others]
            t0 = time.perf_counter()
            await author.type_one("abcdefghijklmnopqrstuvwxyz"[k % 26], cursors)
            for e, c in zip(others, counts):
                while e.received <= c:
                    e.arrived.clear()
                    await asyncio.wait_for(e.arrived.wait(), 30)
                latencies.append(e.stamps[c] - t0)
            await asyncio.sleep(PAUSE)

    pid = server.proc.pid
    cpu0 = cpu_seconds(pid)
    await asyncio.gather(*(typist(g) for g in groups))
    cpu = (cpu_seconds(pid) - cpu0) / (per_doc * docs)
    for r in readers:
        r.cancel()
    for g in groups:
        for e in g:
            await e.ws.close()
    return latencies, cpu


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keystrokes", type=int, default=300)
    parser.add_argument("--only", default="2,10,50,100x2")
    parser.add_argument("--cursors", action="store_true",
                        help="each keystroke also sends an awareness update (the caret moved), as a browser does")
    args = parser.parse_args()
    scenarios = []
    for item in args.only.split(","):
        docs, _, editors = item.partition("x")
        scenarios.append((int(docs), int(editors)) if editors else (1, int(docs)))
    print(f"co-editing bench: {args.keystrokes} keystrokes per scenario, {os.cpu_count()} cores; "
          "latency = keystroke -> each other editor" + ("; an awareness update with each keystroke" if args.cursors else ""))
    print(f"{'scenario':<16}{'server':<12}{'p50 ms':>8}{'p99 ms':>8}{'CPU µs/key':>12}")
    with tempfile.TemporaryDirectory(prefix="wsfs-bench-coedit-") as tmp:
        servers = [WsfsServer(Path(tmp) / "data"), HocuspocusServer()]
        try:
            for docs, editors in scenarios:
                label = f"{editors} editors" if docs == 1 else f"{docs} docs x {editors}"
                rows = {}
                for server in servers:
                    lat, cpu = await run_scenario(server, docs, editors, args.keystrokes, args.cursors)
                    rows[server.name] = (pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3, cpu * 1e6)
                    print(f"{label:<16}{server.name:<12}{rows[server.name][0]:>8.1f}{rows[server.name][1]:>8.1f}"
                          f"{rows[server.name][2]:>12.0f}")
                w, h = rows["wsfs"], rows["hocuspocus"]
                print(f"{label:<16}{'wsfs/hp':<12}{w[0] / h[0]:>8.2f}{w[1] / h[1]:>8.2f}{w[2] / max(h[2], 1e-9):>12.2f}")
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    asyncio.run(main())
