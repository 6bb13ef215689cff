"""The remote mount shows only permission bits: never setuid, setgid or sticky from a server (issue 17)."""

from __future__ import annotations

from pathlib import Path

from server_fixtures import LiveServer

W = "/api/workspaces/demo"


def test_remote_mount_drops_setuid_and_setgid_keeps_sticky(live_server: LiveServer, tmp_path: Path) -> None:
    from client_py.mount.remote_backend import RemoteBackend

    with live_server.http() as c:  # the server stores what a (hostile or careless) writer chose
        c.put(f"{W}/files/suid.sh", content=b"#!/bin/sh\n")
        assert c.post(f"{W}/ops", json={"op": "chmod", "path": "/suid.sh", "mode": 0o4777}).status_code == 200
        c.post(f"{W}/ops", json={"op": "mkdir", "path": "/shared", "mode": 0o3775})
        assert c.get(f"{W}/stat/suid.sh").json()["mode"] & 0o7777 == 0o4777
    backend = RemoteBackend(live_server.url, "demo", token=live_server.admin, cache_dir=str(tmp_path / "cache")).start()
    try:
        assert backend.lstat("/suid.sh").mode & 0o7777 == 0o777
        assert backend.stat("/shared").mode & 0o7777 == 0o1775  # sticky kept: it only restricts
        assert backend.lstat("/suid.sh").kind == "file" and backend.lstat("/shared").kind == "dir"
    finally:
        backend.close()
