"""The server as a real process: `serve` output and tokens, SIGTERM, SIGKILL mid-upload, bounded memory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import blake3
import httpx
import pytest

import vfs
from server_fixtures import ROOT, ServerProcess, WsClient


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_serve_prints_demo_url_and_admin_token_once(tmp_path) -> None:
    first = ServerProcess(tmp_path / "d", seed=True)
    try:
        assert first.admin and first.admin.startswith("wsfs_")
        assert first.demo_url.startswith("http://127.0.0.1:") and "/?token=wsfs_" in first.demo_url
        with httpx.Client(base_url=first.url) as c:
            demo = c.get("/api/workspaces/demo", params={"token": first.demo_token})
            assert demo.status_code == 200 and demo.json()["name"] == "demo"
            # the demo token is scoped to demo only
            assert c.get("/api/tokens", params={"token": first.demo_token}).status_code == 403
            assert c.get("/api/tokens", headers={"Authorization": f"Bearer {first.admin}"}).status_code == 200
            # `wsfs serve` seeds the new demo workspace; the user then writes over it
            assert "second window" in c.get("/api/workspaces/demo/files/README.md", params={"token": first.demo_token}).text
            c.put("/api/workspaces/demo/files/kept.txt", content=b"kept", params={"token": first.demo_token})
            c.put("/api/workspaces/demo/files/README.md", content=b"mine", params={"token": first.demo_token})
    finally:
        first.stop()
    assert oct(os.stat(tmp_path / "d" / "demo-token").st_mode & 0o777) == "0o600"
    assert first.admin not in (tmp_path / "d" / "server.db").read_bytes().decode("latin-1")  # stored hashed
    second = ServerProcess(tmp_path / "d", seed=True)
    try:
        assert second.admin is None  # shown once
        assert second.demo_token == first.demo_token
        with httpx.Client(base_url=second.url, headers={"Authorization": f"Bearer {first.admin}"}) as c:
            assert c.get("/api/workspaces/demo/files/kept.txt").content == b"kept"
            assert c.get("/api/workspaces/demo/files/README.md").content == b"mine"  # not seeded again
    finally:
        second.stop()


def test_token_cli(tmp_path) -> None:
    data = tmp_path / "d"
    server = ServerProcess(data)
    try:
        made = cli("token", "create", "demo", "--read", "--name", "alice", "--data", str(data))
        assert made.returncode == 0, made.stderr
        secret = made.stdout.strip()
        assert secret.startswith("wsfs_")
        listed = cli("token", "list", "--data", str(data))
        line = next(ln for ln in listed.stdout.splitlines() if "alice" in ln)
        token_id = line.split()[0]
        assert secret not in listed.stdout
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as c:
            assert c.get("/api/workspaces/demo").status_code == 200
            assert c.put("/api/workspaces/demo/files/x", content=b"x").status_code == 403
            assert cli("token", "revoke", token_id, "--data", str(data)).returncode == 0
            assert c.get("/api/workspaces/demo").status_code == 401  # revoked from another process
        assert cli("token", "revoke", token_id, "--data", str(data)).returncode == 1
        assert cli("token", "create", "nosuch", "--write", "--data", str(data)).returncode == 1
        admin = cli("token", "create", "--admin", "--data", str(data)).stdout.strip()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin}"}) as c:
            assert c.put("/api/workspaces/made-by-cli-admin").status_code == 201
    finally:
        server.stop()


def test_non_loopback_bind_warns(tmp_path) -> None:
    server = ServerProcess(tmp_path / "d", "--host", "0.0.0.0")
    try:
        deadline = time.monotonic() + 10
        while not any("WARNING" in ln and "TLS" in ln for ln in server.stderr_lines):
            assert time.monotonic() < deadline, server.stderr_lines
            time.sleep(0.05)
    finally:
        server.stop()


async def test_sigterm_closes_websockets_with_1001_and_loses_no_acknowledged_write(tmp_path) -> None:
    server = ServerProcess(tmp_path / "d")
    acked: dict[str, bytes] = {}
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}) as c:
            i = 0
            while not stop.is_set() and i < 5000:
                body = f"write {i}".encode() * 50
                try:
                    r = c.put(f"/api/workspaces/demo/files/w/{i % 50}?parents=1", content=body)
                except httpx.TransportError:
                    return
                if r.status_code in (200, 201):
                    acked[f"/w/{i % 50}"] = body
                i += 1

    try:
        client = await WsClient.open(server.ws_url(token=server.admin))
        await client.request({"type": "subscribe", "id": "s", "after": "now"})
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        await client.next_event("changes", sub="s")  # writes are flowing
        server.signal(signal.SIGTERM)
        assert await client.close_code(timeout=30) == 1001
        assert server.wait(30) == 0
        stop.set()
        thread.join(30)
    finally:
        stop.set()
        server.kill()
    assert acked
    with vfs.Workspace(tmp_path / "d" / "workspaces" / "demo.db") as ws:
        for path, body in acked.items():
            assert ws.read_file(path) == body


def test_sigkill_mid_upload_leaves_file_wholly_old_or_new(tmp_path) -> None:
    data = tmp_path / "d"
    old = os.urandom(2 * 1024 * 1024)
    new = os.urandom(24 * 1024 * 1024)
    outcomes = []
    admin = None
    for delay in (0.05, 0.4, 1.0):
        server = ServerProcess(data)
        try:
            admin = server.admin or admin  # printed on the first start only
            headers = {"Authorization": f"Bearer {admin}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
                assert c.put("/api/workspaces/demo/files/f.bin", content=old).status_code in (200, 201)
                sent = threading.Event()

                def body():
                    for i in range(0, len(new), 1 << 20):
                        yield new[i : i + (1 << 20)]
                        sent.set()
                        time.sleep(0.02)

                def upload():
                    try:
                        c.put("/api/workspaces/demo/files/f.bin", content=body())
                    except httpx.TransportError:
                        pass

                t = threading.Thread(target=upload, daemon=True)
                t.start()
                assert sent.wait(20)
                time.sleep(delay)
                server.signal(signal.SIGKILL)
                server.wait()
                t.join(30)
        finally:
            server.kill()
        with vfs.Workspace(data / "workspaces" / "demo.db") as ws:
            content = ws.read_file("/f.bin")
            assert ws.stat("/f.bin").hash == blake3.blake3(content).hexdigest()
        assert content in (old, new), "mixed content after SIGKILL"
        outcomes.append(content == new)
    assert outcomes.count(False) >= 1  # at least one kill landed mid-upload


@pytest.mark.parametrize(("n_warmup", "n_writes"), [(1500, 2000), pytest.param(2000, 10_000, marks=pytest.mark.slow)])
async def test_slow_subscriber_keeps_server_memory_bounded_then_converges(tmp_path, n_warmup: int,
                                                                         n_writes: int) -> None:
    """A subscriber stops reading during N writes: server RSS stays flat, then it converges, coalesced."""
    # SQLite caches and malloc arenas grow during the first ~2000 writes whether or
    # not anyone subscribes (measured: same curve with no subscriber), so measure
    # after a warm-up; the subscriber is stalled throughout.
    n_paths, size = 150, 16 * 1024
    # the stalled client answers no pings: keep uvicorn's keepalive from dropping it on a slow machine
    server = ServerProcess(tmp_path / "d", "--ws-ping-interval", "300")
    try:
        url = server.ws_url(token=server.admin)
        slow = await WsClient.open(url, max_queue=1, ping_interval=None)  # stops reading TCP once a frame is buffered
        await slow.request({"type": "subscribe", "id": "slow", "after": "now", "inline_max": 65536, "batch_max": 64})
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"},
                                     timeout=60) as http:
            blob = os.urandom(size)

            async def write(i: int) -> None:
                body = blob[: size - 8] + i.to_bytes(8, "big")
                r = await http.put(f"/api/workspaces/demo/files/s/{i % n_paths}?parents=1", content=body)
                assert r.status_code in (200, 201)

            for start in range(0, n_warmup, 50):
                await asyncio.gather(*(write(i) for i in range(start, start + 50)))
            rss_before = rss_peak = server.rss()
            for start in range(n_warmup, n_warmup + n_writes, 50):
                await asyncio.gather(*(write(i) for i in range(start, start + 50)))
                rss_peak = max(rss_peak, server.rss())
            end = (await http.get("/api/workspaces/demo")).json()["cursor"]
            truth = {e["path"]: e["hash"] for e in
                     (await http.get("/api/workspaces/demo/changes", params={"prefix": "/s"})).json()["entries"]
                     if e["path"].startswith("/s/")}
        # an unbounded per-subscriber queue would hold every message: n_writes * ~22 KiB (base64 inline),
        # 43 MiB for 2000 writes, 215 MiB for 10,000; allow a fifth of that (allocator and SQLite noise)
        queued = n_writes * size * 4 // 3
        growth = rss_peak - rss_before
        print(f"server RSS growth while the subscriber stalled: {growth / 2**20:.1f} MiB "
              f"(a queue would need {queued / 2**20:.0f} MiB)")
        assert growth < max(16 * 2**20, queued // 5), f"server RSS grew {growth / 2**20:.1f} MiB"
        got, coalesced = [], False
        target = vfs.Cursor.parse(end)
        while True:
            ev = await slow.next_event("changes", timeout=30, sub="slow")
            got.extend(ev["entries"])
            coalesced |= ev["coalesced"]
            if vfs.Cursor.parse(ev["cursor"]) >= target:
                break
        final = {}
        for e in got:
            final[e["path"]] = e["hash"]
        assert {p: x for p, x in final.items() if p.startswith("/s/")} == truth
        assert coalesced
        assert len(got) < n_warmup + n_writes  # intermediate states were skipped, not queued
        await slow.close()
    finally:
        server.stop()


async def test_change_feed_names_authors_after_a_restart(tmp_path) -> None:
    """Who wrote a change is kept with its version in the store: a subscriber catching up after the
    server restarted still sees the author (it was null: the feed only had the process's memory)."""
    first = ServerProcess(tmp_path / "d")
    try:
        with httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {first.admin}"}) as c:
            carol = c.post("/api/tokens", json={"workspace": "demo", "scope": "write", "name": "carol"}).json()["token"]
            c.put("/api/workspaces/demo/files/first.txt", content=b"first")  # a cursor past the start
            before = c.get("/api/workspaces/demo/changes").json()["cursor"]
        with httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {carol}"}) as c:
            assert c.put("/api/workspaces/demo/files/by-carol.txt", content=b"hello").status_code in (200, 201)
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0
    finally:
        first.kill()
    second = ServerProcess(tmp_path / "d")
    try:
        client = await WsClient.open(second.ws_url(token=carol))
        await client.request({"type": "subscribe", "id": "s", "after": before})
        event = await client.next_event("changes", sub="s")
        assert [(e["path"], e.get("author")) for e in event["entries"]] == [("/by-carol.txt", "carol")]
        await client.close()
    finally:
        second.kill()
