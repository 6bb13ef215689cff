"""Resume after SIGKILL: a replica process killed mid-download, restarted, fetches only what it lacks.

Bytes are counted by the server (`wsfs_ws_bytes_total{direction="out"}`),
so nothing the killed process received and lost goes uncounted.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client_fixtures import RestartableServer, tree_of
from client_py import Client

ROOT = Path(__file__).resolve().parent.parent


def _sync_process(server: RestartableServer, local: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "wsfs", "sync", server.url, "demo", str(local), "--once", "-q"]
    env = {**os.environ, "WSFS_TOKEN": server.admin}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _partial_bytes(local: Path) -> int:
    """Bytes on disk in partial downloads (`.wsfs-part-*`, beside their destination)."""
    total = 0
    for dirpath, _dirs, files in os.walk(local):
        for name in files:
            if name.startswith(".wsfs-part-"):
                try:
                    total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
                except FileNotFoundError:
                    pass
    return total


async def _resume_case(tmp_path: Path, files: int, file_size: int) -> None:
    server = RestartableServer(tmp_path / "data")
    try:
        async with Client(server.url, token=server.admin) as c:
            ws = c.workspace("demo")
            rng = hashlib.blake2b(b"seed")
            for i in range(files):  # incompressible, no duplicate chunks
                data = b"".join(hashlib.blake2b(rng.digest() + i.to_bytes(4, "big") + j.to_bytes(4, "big")).digest()
                                for j in range(file_size // 64))
                await ws.write_file(f"/tree/f{i:03d}.bin", data, parents=True)
            unique = await ws.du("/")
            local = tmp_path / "rep"
            before = server.metric("wsfs_ws_bytes_total", direction="out")

            proc = _sync_process(server, local)
            deadline = time.monotonic() + 120
            killed_at = 0
            while proc.poll() is None and time.monotonic() < deadline:
                got = _partial_bytes(local)
                if got >= unique // 3:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = got
                    break
                time.sleep(0.002)
            out, err = proc.communicate(timeout=60)
            assert killed_at, f"the first run finished before it could be killed: {out} {err}"

            proc = _sync_process(server, local)
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            after = server.metric("wsfs_ws_bytes_total", direction="out")
            local_tree = tree_of(local)
            assert sorted(k for k in local_tree if k.startswith("tree/")) == [f"tree/f{i:03d}.bin" for i in range(files)]
            for i in (0, files - 1):
                assert local_tree[f"tree/f{i:03d}.bin"] == await ws.read_file(f"/tree/f{i:03d}.bin")
            sent = after - before
            print(f"unique {unique} B, killed at {killed_at} B on disk, server sent {sent} B = {sent / unique:.3f}x")
            assert sent <= 1.1 * unique, f"server sent {sent} bytes for {unique} unique bytes (killed at {killed_at})"
            assert sent >= unique  # and it really did transfer the tree (the counter works)
    finally:
        server.stop()


async def test_resume_after_sigkill_mid_download(tmp_path):
    await _resume_case(tmp_path, files=10, file_size=4 * 1024 * 1024)  # 40 MiB


@pytest.mark.slow
async def test_resume_after_sigkill_mid_download_200mib(tmp_path):
    await _resume_case(tmp_path, files=50, file_size=4 * 1024 * 1024)
