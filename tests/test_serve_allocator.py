"""`wsfs serve` and `python -m server serve` run on the C library's malloc (server/allocator.py):
they execute themselves again with PYTHONMALLOC=malloc, keeping their process id and serving as
before; an allocator already named in the environment is left as given.

Ground truth is the running server's own environment, read from /proc/PID/environ."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server_fixtures import ServerProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/environ")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _without_allocator() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}


def _healthy(url: str, deadline: float) -> bool:
    """The URL is printed as uvicorn starts: poll until it answers (bounded by `deadline`)."""
    while time.monotonic() < deadline:
        try:
            return httpx.get(url + "/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            time.sleep(0.05)
    return False


def test_python_m_server_serve_runs_on_malloc_under_its_own_pid(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    server = ServerProcess(tmp_path / "data")
    try:
        environ = _environ(server.proc.pid)
        assert environ.get("PYTHONMALLOC") == "malloc"  # the Popen's pid: exec kept it
        assert environ.get("MALLOC_ARENA_MAX") == "1"  # one arena: the pool threads' leftovers trimmable
        assert httpx.put(f"{server.url}/api/workspaces/demo/files/a.txt", content=b"hi",
                         headers={"Authorization": f"Bearer {server.admin}"}, timeout=10).status_code in (200, 201)
    finally:
        server.stop()


def test_an_allocator_given_in_the_environment_is_kept(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"PYTHONMALLOC": "pymalloc"})
    try:
        assert _environ(server.proc.pid).get("PYTHONMALLOC") == "pymalloc"
    finally:
        server.stop()


def test_an_arena_count_given_in_the_environment_is_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    server = ServerProcess(tmp_path / "data", env={"MALLOC_ARENA_MAX": "3"})
    try:
        environ = _environ(server.proc.pid)
        assert environ.get("PYTHONMALLOC") == "malloc" and environ.get("MALLOC_ARENA_MAX") == "3"
    finally:
        server.stop()


def test_the_wsfs_entry_point_serves_on_malloc(tmp_path: Path) -> None:
    wsfs = Path(sys.executable).parent / "wsfs"
    proc = subprocess.Popen([str(wsfs), "serve", "--data", str(tmp_path / "d"), "--port", "0", "--no-seed"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_without_allocator())
    try:
        url = ""
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the server exits; the deadline bounds a silent hang below
            if "open the demo:" in line:
                url = line.split("open the demo:", 1)[1].strip().split("/?token=")[0]
                break
            assert time.monotonic() < deadline
        assert url, "the server printed no URL"
        assert _environ(proc.pid).get("PYTHONMALLOC") == "malloc"
        assert _healthy(url, deadline)
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
