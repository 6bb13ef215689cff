"""A remote mount keeps working across a cluster failover (SPEC §6: any client, any node).

The mount talks to node C; the workspace's owner A is killed with SIGKILL;
writes through the mount reach the next owner, and writes made elsewhere
after the failover show up in the mount (its change stream resumes from its
cursor after the 1012 close or the lost bridge).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from client_py.mount.runner import MountProcess
from tests.cluster_fixtures import RedisServer, admin_token

pytestmark = pytest.mark.timeout(120)
WAIT = 30.0  # seconds any one step may take (lease expiry, takeover, restore, reconnect)


def _until(check, what: str) -> object:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            value = check()
        except OSError:  # the mount answers EIO/EAGAIN while no node acknowledges: try again
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _write(path: Path, body: bytes) -> bool:
    path.write_bytes(body)
    return True


async def test_a_remote_mount_keeps_working_across_a_failover(cluster_nodes, redis_server: RedisServer,
                                                               tmp_path: Path) -> None:
    token = admin_token(redis_server.url)
    a, b, c = cluster_nodes(3)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=auth, timeout=30) as http:
        assert http.put(f"{a.url}/api/workspaces/mnt").status_code == 201
        assert http.put(f"{a.url}/api/workspaces/mnt/files/one.txt", content=b"one").status_code in (200, 201)
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir()
        extra = ["--token", token, "--cache", str(tmp_path / "cache")]
        with MountProcess([c.url, "mnt"], str(mountpoint), log_file=str(tmp_path / "mount.log"), extra=extra):
            assert (mountpoint / "one.txt").read_bytes() == b"one"
            a.kill()
            # a write through the mount lands on whichever node took the workspace over
            await asyncio.to_thread(_until, lambda: _write(mountpoint / "two.txt", b"two"), "mount write after kill")
            got = _until(lambda: (r := http.get(f"{b.url}/api/workspaces/mnt/files/two.txt")).status_code == 200
                         and r, "two.txt on the new owner")
            assert got.content == b"two"
            # and a write made elsewhere after the failover reaches the mount through its stream
            assert http.put(f"{b.url}/api/workspaces/mnt/files/three.txt", content=b"three").status_code in (200, 201)
            seen = await asyncio.to_thread(_until, lambda: (mountpoint / "three.txt").exists()
                                           and (mountpoint / "three.txt").read_bytes(), "three.txt in the mount")
            assert seen == b"three"
            assert sorted(os.listdir(mountpoint)) == ["one.txt", "three.txt", "two.txt"]
